#!/usr/bin/env bash
# Before/after on PostgreSQL, over the REST API: the same `rte bench --url` run (3-step sagas
# of `test_kv_counter`, which reads a kv key and writes it back) against a host built from an
# older commit and one built from this checkout, interleaved, three times each.
#
#   scripts/bench-before-after.sh OLD_RTE NEW_RTE
#
# OLD_RTE, NEW_RTE: `rte` binaries (release builds). Needs PostgreSQL on 127.0.0.1:5432 (trust
# auth) and the example plugins built (scripts/bench.sh builds them). Both hosts get a pool of
# 32 connections, the older default. OLD_PLUGINS (optional) is a folder of `bank.wasm` and
# `testkit.wasm` built from the older commit, for an OLD_RTE that predates the plugins' WIT.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$(realpath "$1")" new="$(realpath "$2")"
target="${CARGO_TARGET_DIR:-target}"
plugins="$(realpath "$target/plugins/wasm32-wasip2/release")"
sagas="$(realpath sagas.toml)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins" "$work/old-plugins"
cp "$plugins"/{bank,testkit}.wasm "$work/plugins/"
cp "${OLD_PLUGINS:-$plugins}"/{bank,testkit}.wasm "$work/old-plugins/"
run() { # label binary plugins database port [--set ...]
  local label=$1 bin=$2 dir=$3 db=$4 port=$5
  shift 5
  psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" postgres
  # From the scratch folder, so neither host reads this checkout's rte.toml.
  (cd "$work" && RUST_LOG=warn exec "$bin" serve --listen "127.0.0.1:$port" \
    --database-url "postgres://postgres@127.0.0.1:5432/$db" --plugins-dir "$dir" \
    --sagas-file "$sagas" "$@" >"$work/$label.log" 2>&1) &
  local pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  printf '%-7s ' "$label"
  RUST_LOG=warn "$new" bench --url "http://127.0.0.1:$port" --step test_kv_counter --steps 3 \
    --sagas 2000 --concurrency 32 --json | tail -n1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
for _ in 1 2 3; do
  run before "$old" "$work/old-plugins" rte_bench_before 18091
  run after "$new" "$work/plugins" rte_bench_after 18092 --set database_max_connections=32
done
