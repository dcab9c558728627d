#!/bin/sh
# Build dist/{{name}}.wasm, a WebAssembly component, from C:
#   1. `wit-bindgen c` turns wit/saga.wit into gen/plugin.{c,h} and a component-type object;
#   2. clang compiles for wasm32-wasi against wasi-libc;
#   3. the Rust toolchain's `wasm-component-ld` links, with wasm-ld, and wraps the module
#      into a component (adapting WASI preview 1 to preview 2).
# `rte build` runs this, then checks the component. Tools, and where they come from:
#   clang, wasm-ld, wasi-libc: Debian 12: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
#   wit-bindgen (0.63):        cargo install wit-bindgen-cli --version 0.63.0 (or set WIT_BINDGEN)
#   wasm-component-ld:         ships with rustup's Rust toolchain (or set WASM_COMPONENT_LD;
#                              or cargo install wasm-component-ld)
set -eu
cd "$(dirname "$0")"

missing() {
  echo "build.sh: $1 not found. $2" >&2
  exit 1
}

cc=${CC_WASM:-clang}
wit_bindgen=${WIT_BINDGEN:-wit-bindgen}
command -v "$cc" >/dev/null ||
  missing "$cc" "On Debian 12: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"
command -v "$wit_bindgen" >/dev/null ||
  missing "wit-bindgen" "Install it: cargo install wit-bindgen-cli --version 0.63.0 (or set WIT_BINDGEN)"
ld=${WASM_COMPONENT_LD:-}
if [ -z "$ld" ] && command -v rustc >/dev/null; then
  ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/wasm-component-ld"
fi
[ -n "$ld" ] && [ -x "$ld" ] || ld=$(command -v wasm-component-ld || true)
[ -n "$ld" ] ||
  missing "wasm-component-ld" "It ships with rustup's Rust toolchain; or: cargo install wasm-component-ld (or set WASM_COMPONENT_LD)"
[ -f /usr/include/wasm32-wasi/stdio.h ] || [ -n "${CC_WASM:-}" ] ||
  missing "wasi-libc" "On Debian 12: apt-get install wasi-libc libclang-rt-14-dev-wasm32"

mkdir -p gen dist
"$wit_bindgen" c wit --world plugin --out-dir gen >/dev/null
flags="--target=wasm32-wasi -O2 -std=c11 -Wall -Werror -Igen"
for src in step.c rte_step.c gen/plugin.c; do
  "$cc" $flags -Wno-unused-parameter -c "$src" -o "dist/$(basename "$src" .c).o"
done
"$cc" --target=wasm32-wasi -mexec-model=reactor -fuse-ld="$ld" -o dist/{{name}}.wasm.tmp \
  dist/step.o dist/rte_step.o dist/plugin.o gen/plugin_component_type.o
rm -f dist/*.o
mv dist/{{name}}.wasm.tmp dist/{{name}}.wasm
