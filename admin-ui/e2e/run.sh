#!/usr/bin/env bash
# The console's browser tests against a real host (with access control on, so the token
# prompt is tested too).
set -euo pipefail
cd "$(dirname "$0")/../.."
RTE_HOST_PORT="${RTE_E2E_PORT:-18080}" bash scripts/with-host.sh bash -c 'cd admin-ui && npm run e2e --silent'
