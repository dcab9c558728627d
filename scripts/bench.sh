#!/usr/bin/env bash
# The full benchmark, one command: builds the example plugins and the host (release), then
# runs `rte bench` with 3-step sagas at concurrency 32 on the embedded SQLite (plus a mix
# where a tenth compensate, and kv steps with and without a version check), on PostgreSQL and MySQL/MariaDB when their URLs are given, the
# p99 run at concurrency 8, a 1 -> 3 parallel -> 1 saga against 5 steps in a row, the same
# sagas over the REST API of a host it starts (PostgreSQL),
# 10,000 sagas in flight for memory, and 10,000 sagas waiting for replies at once.
#
#   scripts/bench.sh                      # the full run
#   scripts/bench.sh --sagas 500 --json   # one run of `rte bench` with these flags
#
# Environment: RTE_BENCH_POSTGRES_URL, RTE_BENCH_MYSQL_URL (each a scratch database: the
# bench writes sagas and a scratch table into it), RTE_BENCH_REDIS_URL (locks in Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir "$target/plugins"
cargo build --release --locked -p rte-host --bin rte
plugins="$target/plugins/wasm32-wasip2/release"
bench() {
  echo
  echo "==> rte bench $*"
  RUST_LOG="${RUST_LOG:-warn}" "$target/release/rte" bench --plugins-dir "$plugins" "$@"
}

if [ $# -gt 0 ]; then
  bench "$@"
  exit
fi

redis=()
[ -n "${RTE_BENCH_REDIS_URL:-}" ] && redis=(--redis-url "$RTE_BENCH_REDIS_URL")
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
bench --sagas 5000 --steps 3 --concurrency 32 "${redis[@]}"
bench --sagas 3000 --steps 3 --concurrency 32 --fail-ratio 0.1 "${redis[@]}"
# What the plugin kv's version check costs: read-modify-write steps against blind writes.
bench --sagas 3000 --steps 3 --concurrency 32 --step test_kv_put "${redis[@]}"
bench --sagas 3000 --steps 3 --concurrency 32 --step test_kv_counter "${redis[@]}"
# A parallel group against steps in a row: 1 -> 3 parallel -> 1 against 5 steps.
bench --sagas 3000 --steps 5 --concurrency 32 --step test_branch "${redis[@]}"
bench --sagas 3000 --steps 5 --concurrency 32 --step test_branch --parallel 3 "${redis[@]}"
for url in "${RTE_BENCH_POSTGRES_URL:-}" "${RTE_BENCH_MYSQL_URL:-}"; do
  [ -n "$url" ] || continue
  bench --sagas 5000 --steps 3 --concurrency 32 --database-url "$url" "${redis[@]}"
  bench --sagas 3000 --steps 3 --concurrency 8 --database-url "$url" "${redis[@]}"
  bench --sagas 3000 --steps 5 --concurrency 32 --step test_branch --database-url "$url" "${redis[@]}"
  bench --sagas 3000 --steps 5 --concurrency 32 --step test_branch --parallel 3 --database-url "$url" "${redis[@]}"
done
# Both ways in one run: in-process, then over the REST API of a host the bench starts on
# the same database, completing and compensating, at concurrency 32 and 1.
if [ -n "${RTE_BENCH_POSTGRES_URL:-}" ]; then
  pg=(--database-url "$RTE_BENCH_POSTGRES_URL")
  bench --rest --sagas 3000 --steps 3 --concurrency 32 "${pg[@]}"
  bench --rest --sagas 3000 --steps 3 --concurrency 32 --fail-ratio 1 "${pg[@]}"
  bench --rest --sagas 500 --steps 3 --concurrency 1 "${pg[@]}"
fi
bench --in-flight 10000 --sleep-ms 20000
# 10,000 sagas waiting for a reply at once (memory), then every reply: reply to saga end.
if [ -n "${RTE_BENCH_POSTGRES_URL:-}" ]; then
  bench --waits 10000 --concurrency 32 --database-url "$RTE_BENCH_POSTGRES_URL"
else
  bench --waits 10000 --concurrency 32
fi
