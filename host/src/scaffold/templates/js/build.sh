#!/bin/sh
# Build dist/{{name}}.wasm with componentize-qjs (QuickJS in a component), from npm:
# `npm install` fetches the version package.json pins, or set COMPONENTIZE_QJS to its path.
# `rte build` runs this, then checks the component.
set -eu
cd "$(dirname "$0")"
qjs=${COMPONENTIZE_QJS:-node_modules/.bin/componentize-qjs}
if [ ! -x "$qjs" ]; then
  command -v npm >/dev/null || { echo "build.sh: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
  npm install --no-audit --no-fund --loglevel=error
fi
mkdir -p dist
# `--sync`: the host calls steps without the component-model async ABI.
"$qjs" --wit wit --world plugin --js main.js --sync --output dist/{{name}}.wasm.tmp >/dev/null
mv dist/{{name}}.wasm.tmp dist/{{name}}.wasm
