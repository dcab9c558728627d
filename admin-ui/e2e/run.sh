#!/usr/bin/env bash
# Start a real host with the example plugins on a scratch SQLite database, run the
# browser tests against it, and stop it. Expects the `rte` binary and the plugins to be
# built (scripts/test.sh runs `cargo test` first, which builds both).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
rte="$target/debug/rte"
[ -x "$rte" ] || cargo build --locked --bin rte
work="$(mktemp -d)"
mkdir -p "$work/plugins"
cp "$target"/plugins/wasm32-wasip2/release/{bank,testkit}.wasm "$work/plugins/"
port="${RTE_E2E_PORT:-18080}"
# The console runs with access control on, so the token prompt is tested too.
token="e2e-$RANDOM$RANDOM"
"$rte" serve --listen "127.0.0.1:$port" --database-url "sqlite://$work/e2e.db" \
  --plugins-dir "$work/plugins" --sagas-file sagas.toml --set retry_interval=50ms --admin-token "$token" \
  >"$work/host.log" 2>&1 &
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
cd admin-ui
RTE_URL="http://127.0.0.1:$port" RTE_TOKEN="$token" npm run e2e --silent || { echo "host log:" >&2; tail -n 50 "$work/host.log" >&2; exit 1; }
