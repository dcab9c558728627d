#!/usr/bin/env bash
# Build the example plugins into ./plugins and run the host on the embedded defaults
# (SQLite file rte.db, in-process locks); the console is at http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir "$target/plugins"
for wasm in "$target"/plugins/wasm32-wasip2/release/*.wasm; do
  cp "$wasm" plugins/
done
exec cargo run --release --locked --bin rte -- serve "$@"
