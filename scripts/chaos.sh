#!/usr/bin/env bash
# Run the chaos test (tests/tests/chaos.rs) RUNS times at a larger size, on PostgreSQL and
# MariaDB (both must be running, and redis-server on PATH), printing each run's summary lines
# and a final pass/fail count. Sizes: RTE_CHAOS_SAGAS (default 1000), RTE_CHAOS_ACCOUNTS
# (default 30), RTE_CHAOS_SECONDS (default 120), RTE_CHAOS_CONCURRENCY (default 12). Each run is bounded by RUN_TIMEOUT
# seconds (default 900). Exits non-zero when any run failed; logs stay in LOG_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
export RTE_CHAOS_SAGAS="${RTE_CHAOS_SAGAS:-1000}"
export RTE_CHAOS_ACCOUNTS="${RTE_CHAOS_ACCOUNTS:-30}"
export RTE_CHAOS_SECONDS="${RTE_CHAOS_SECONDS:-120}"
export RTE_REQUIRE_SERVICES=1
LOG_DIR="${LOG_DIR:-$(mktemp -d -t rte-chaos.XXXXXX)}"
mkdir -p "$LOG_DIR"

echo "==> building the chaos test"
cargo test --locked -p rte-tests --test chaos --no-run || exit 1

pass=0
fail=0
for run in $(seq 1 "$RUNS"); do
  log="$LOG_DIR/run-$run.log"
  echo "==> run $run of $RUNS ($RTE_CHAOS_SAGAS sagas, $RTE_CHAOS_ACCOUNTS accounts per database)"
  if timeout --kill-after=30 "$RUN_TIMEOUT" \
    cargo test --locked -p rte-tests --test chaos -- --nocapture --test-threads=2 >"$log" 2>&1; then
    pass=$((pass + 1))
    result=passed
  else
    fail=$((fail + 1))
    result=FAILED
  fi
  grep -E '^chaos |money is off|panicked at' "$log" | sed 's/^/    /'
  echo "    run $run $result (log: $log)"
done
echo "==> chaos: $pass passed, $fail failed of $RUNS runs"
[ "$fail" -eq 0 ]
