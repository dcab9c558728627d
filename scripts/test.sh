#!/usr/bin/env bash
# Run every test of the project: Rust unit and end-to-end tests (real plugins built for
# wasm32-wasip2, SQLite, and PostgreSQL/MariaDB/Redis when reachable), then the console's
# component and browser tests. Installs what the tests need on a fresh machine first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

log "toolchain and wasm target"
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install stable
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  log "promtool (checks the /metrics exposition)"
  (apt-get install -y -q prometheus >/dev/null 2>&1) || (apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null) || true
fi

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && command -v apt-get >/dev/null 2>&1; then
  log "nats-server (the broker of the waiting-step tests, each starts its own)"
  (apt-get install -y -q nats-server >/dev/null 2>&1) || (apt-get update -q >/dev/null && apt-get install -y -q nats-server >/dev/null)
fi

# The C step template (`rte new c`): Debian's clang, wasm-ld and wasi-libc, and wit-bindgen's
# C generator from crates.io (the Rust toolchain brings wasm-component-ld).
if ! [ -f /usr/include/wasm32-wasi/stdio.h ] && command -v apt-get >/dev/null 2>&1; then
  log "clang, lld and wasi-libc (the C step template)"
  c_pkgs="clang lld wasi-libc libclang-rt-14-dev-wasm32"
  # shellcheck disable=SC2086
  (apt-get install -y -q $c_pkgs >/dev/null 2>&1) || (apt-get update -q >/dev/null && apt-get install -y -q $c_pkgs >/dev/null)
fi
tools="$HOME/.cache/rte-tools"
if [ "$("$tools/bin/wit-bindgen" --version 2>/dev/null | cut -d' ' -f2)" != "0.63.0" ]; then
  log "wit-bindgen 0.63.0 (its C generator, for the C step template)"
  CARGO_TARGET_DIR="$tools/target" cargo install --quiet --locked wit-bindgen-cli --version 0.63.0 \
    --no-default-features --features c --root "$tools"
  rm -rf "$tools/target"
fi
export PATH="$PATH:$tools/bin"

if [ -f admin-ui/package.json ]; then
  log "console dependencies"
  if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get install -y -q chromium >/dev/null 2>&1) || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)
    fi
  fi
  (cd admin-ui && npm ci --no-audit --no-fund --loglevel=error)
fi

log "cargo test"
cargo test --workspace --locked -- --test-threads="${RTE_TEST_THREADS:-2}"

if [ -f admin-ui/package.json ]; then
  log "console component tests"
  (cd admin-ui && npm test --silent)
  log "console bundle matches its sources"
  (cd admin-ui && npm run build --silent >/dev/null)
  if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- admin-ui/dist; then
    echo "admin-ui/dist differs from a fresh build of admin-ui/src: run 'npm run build' in admin-ui and commit dist" >&2
    git diff --stat -- admin-ui/dist >&2
    exit 1
  fi
  if [ -f admin-ui/e2e/run.sh ]; then
    log "console browser tests"
    bash admin-ui/e2e/run.sh
  fi
fi
log "API fuzzing against the OpenAPI document"
bash scripts/schemathesis.sh

log "all tests passed"
