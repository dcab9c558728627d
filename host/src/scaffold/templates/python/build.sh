#!/bin/sh
# Build dist/{{name}}.wasm with componentize-py (pip install componentize-py==0.25.1; or set
# COMPONENTIZE_PY to its path). `rte build` runs this, then checks the component.
set -eu
cd "$(dirname "$0")"
cpy=${COMPONENTIZE_PY:-componentize-py}
mkdir -p dist
"$cpy" -d wit -w plugin componentize app -p . -o dist/{{name}}.wasm.tmp
mv dist/{{name}}.wasm.tmp dist/{{name}}.wasm
