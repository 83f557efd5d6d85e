#!/usr/bin/env bash
# Runs schemathesis (PyPI) against the OpenAPI document served by a fresh `aviso serve`:
# no 5xx, no status, content type or body that breaks the schema. Bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi

cargo build --quiet --bin aviso
work=$(mktemp -d)
out="$work/serve.out"
AVISO_PUBLIC_RATE_LIMIT=100000 AVISO_ALLOWED_PUSH_HOSTS=127.0.0.1 AVISO_LOG=warn \
  target/debug/aviso serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$out" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  grep -q '^listening:' "$out" 2>/dev/null && break
  sleep 0.1
done
base=$(awk '/^listening:/ {print $2}' "$out")
api_key=$(awk '/api_key:/ {print $2}' "$out")
[ -n "$base" ] && [ -n "$api_key" ] || { echo "aviso serve did not start"; cat "$out"; exit 1; }

"$venv/bin/schemathesis" run "$base/openapi.json" \
  --header "Authorization: Bearer $api_key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-100}" \
  --workers 1 \
  --seed "${SCHEMATHESIS_SEED:-20261122}" \
  --suppress-health-check all \
  --warnings off \
  --exclude-path /v1/profile-imports
