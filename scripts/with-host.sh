#!/usr/bin/env bash
# Run a command against a real host: start `rte serve` with the example plugins on a
# scratch SQLite database and an admin token, export RTE_URL and RTE_TOKEN, run the
# command, stop the host. Expects the `rte` binary and the plugins to be built
# (scripts/test.sh runs `cargo test` first, which builds both).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
rte="$target/debug/rte"
[ -x "$rte" ] || cargo build --locked --bin rte
work="$(mktemp -d)"
mkdir -p "$work/plugins"
cp "$target"/plugins/wasm32-wasip2/release/{bank,testkit}.wasm "$work/plugins/"
port="${RTE_HOST_PORT:-18080}"
token="t-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$rte" serve --listen "127.0.0.1:$port" --database-url "sqlite://$work/host.db" \
  --plugins-dir "$work/plugins" --sagas-file sagas.toml --set retry_interval=50ms \
  --admin-token "$token" >"$work/host.log" 2>&1 &
host=$!
trap 'kill $host 2>/dev/null || true; wait $host 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
if ! curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; then
  echo "host did not become ready:" >&2
  cat "$work/host.log" >&2
  exit 1
fi
export RTE_URL="http://127.0.0.1:$port" RTE_TOKEN="$token"
if ! "$@"; then
  echo "host log (last lines):" >&2
  tail -n 50 "$work/host.log" >&2
  exit 1
fi
