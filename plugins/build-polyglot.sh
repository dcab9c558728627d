#!/usr/bin/env bash
# Build the Python and JavaScript example plugins into OUT_DIR: python.wasm and js.wasm.
#
# Installs what is missing first: componentize-py into a virtualenv in OUT_DIR (from PyPI),
# and the pinned npm packages of plugins/js (`npm ci`). A component whose sources are older
# than it is not rebuilt, so a second run takes about a second.
#
# Usage: plugins/build-polyglot.sh OUT_DIR
set -euo pipefail

COMPONENTIZE_PY=0.25.1

[[ $# -eq 1 ]] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
plugins=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
wit=$(dirname "$plugins")/wit/0.1.0
mkdir -p "$1"
out=$(cd "$1" && pwd)

# One build at a time per output directory.
exec 9>"$out/.build.lock"
flock 9

# Whether $1 is missing or older than any of the other files.
stale() {
  local target=$1 src
  shift
  [[ -f $target ]] || return 0
  for src in "$@"; do
    [[ $src -nt $target ]] && return 0
  done
  return 1
}

# Build to a temporary name, then rename: a failed build never leaves a half component.
publish() {
  mv "$out/$1.tmp" "$out/$1"
  echo "built $out/$1 ($(stat -c %s "$out/$1") bytes)"
}

# Python: componentize-py bundles a CPython interpreter with the app.
venv=$out/venv
cpy=$venv/bin/componentize-py
if [[ "$("$cpy" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY" ]]; then
  echo "installing componentize-py $COMPONENTIZE_PY"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi
if stale "$out/python.wasm" "$plugins/python/app.py" "$wit"/*.wit "$cpy"; then
  # Build from a copy, so the interpreter's bytecode cache stays out of the source tree.
  src=$out/python-src
  rm -rf "$src"
  mkdir -p "$src"
  cp "$plugins/python/app.py" "$src/"
  (cd "$src" && "$cpy" --quiet -d "$wit" -w plugin componentize app -p . -o "$out/python.wasm.tmp")
  publish python.wasm
fi

# JavaScript: componentize-qjs embeds QuickJS; `--sync` avoids the component-model async ABI.
js=$plugins/js
qjs=$js/node_modules/.bin/componentize-qjs
if [[ ! -x $qjs || $js/package-lock.json -nt $js/node_modules/.package-lock.json ]]; then
  echo "installing npm packages in $js"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
if stale "$out/js.wasm" "$js/steps.js" "$wit"/*.wit "$js/package-lock.json"; then
  (cd "$js" && "$qjs" --wit "$wit" --world plugin --js steps.js --sync --output "$out/js.wasm.tmp" >/dev/null)
  publish js.wasm
fi
