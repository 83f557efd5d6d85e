#!/usr/bin/env bash
# The API against its own OpenAPI document: schemathesis (PyPI, in a venv under target/) with
# every check (`--checks all`: no 5xx, statuses, content types, headers and bodies as
# documented, data outside the schema refused, data inside it accepted) and every phase,
# stateful included (it follows the document's links to real notifications and profiles).
# Every operation but the NDJSON import (see below). The seed comes from the commit (below); it is
# printed so a failure can be replayed. Bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../../.."

venv=target/schemathesis-venv
if ! "$venv/bin/python" -c 'import schemathesis, cryptography' 2>/dev/null; then
  python3 -m venv "$venv"
  # cryptography: the hooks draw real P-256 points for the `p256-point` format.
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5' 'cryptography>=42'
fi

export AVISO_PUBLIC_RATE_LIMIT=1000000 AVISO_PUBLIC_APP_RATE_LIMIT=1000000
source scripts/test.d/after/serve-api.bash
api_key=$(serve_field api_key)

# The seed, unless SCHEMATHESIS_SEED is set: drawn from the commit under test, so each commit
# explores other inputs, and a clean clone of a commit starts from the seed a local run of it
# had (what follows depends on the server's answers too); random outside a git checkout.
if [[ -z ${SCHEMATHESIS_SEED:-} ]] && head=$(git rev-parse --verify --quiet HEAD 2>/dev/null); then
  seed=$((16#${head:0:8}))
else
  seed=${SCHEMATHESIS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
fi
echo "schemathesis seed: $seed (SCHEMATHESIS_SEED=$seed replays it)"
# Every operation but the NDJSON profile import, which schemathesis cannot serialize
# (tests/bad_input.rs feeds it arbitrary lines through the real router instead).
run() { # run CHECKS MAX_TIME
  PYTHONPATH=scripts/test.d/after SCHEMATHESIS_HOOKS=schemathesis_hooks \
  "$venv/bin/schemathesis" run "$base/openapi.json" \
    --header "Authorization: Bearer $api_key" \
    --exclude-path /v1/profile-imports \
    --checks "$1" \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
    --max-time "$2" \
    --workers 1 \
    --seed "$seed" \
    --suppress-health-check all \
    --warnings off
}
# The gate: every check, in every phase (the stateful one follows the document's links to real
# data). The two rules between fields that a JSON Schema cannot state are the hooks' (see
# schemathesis_hooks.py); everything else the document says, the server does.
run all "${SCHEMATHESIS_MAX_TIME:-180}"
