#!/usr/bin/env bash
# Fuzz the live API from its own OpenAPI document with schemathesis (from PyPI): no request
# may produce a server error or a response that breaks the documented schema.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CARGO_TARGET_DIR:-target}/schemathesis-venv"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"
fi
RTE_HOST_PORT="${RTE_FUZZ_PORT:-18081}" bash scripts/with-host.sh bash -c '
  "'"$venv"'/bin/st" run "$RTE_URL/api/openapi.json" \
    -H "Authorization: Bearer $RTE_TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /api/events/stream \
    --max-examples 25 --request-timeout 20 --seed 1 --no-color
'
