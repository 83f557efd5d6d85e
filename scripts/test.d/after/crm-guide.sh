#!/usr/bin/env bash
# docs/CRM.md, run: every ```sh block after the first two (starting the server, exporting its
# keys) is run in order against a fresh `aviso serve`, with the keys it printed, and every
# curl in them must answer 2xx. `--role api`: nothing is pushed or posted anywhere (the guide's
# endpoints and webhook URL are not on loopback).
set -euo pipefail
cd "$(dirname "$0")/../../.."

source scripts/test.d/after/serve-api.bash
export AVISO APP_ID API_KEY ADMIN_KEY IDENTITY_SECRET
AVISO=$base
APP_ID=$(serve_field app_id)
API_KEY=$(serve_field api_key)
ADMIN_KEY=$(serve_field admin_key)
IDENTITY_SECRET=$(serve_field identity_secret)
for v in AVISO APP_ID API_KEY ADMIN_KEY IDENTITY_SECRET; do
  [ -n "${!v}" ] || { echo "aviso serve did not print $v"; cat "$work/serve.out"; exit 1; }
done

# The blocks, split into files: block-01.sh, block-02.sh, …
awk -v dir="$work" '
  /^```sh$/ { n++; file = sprintf("%s/block-%02d.sh", dir, n); inside = 1; next }
  /^```$/   { inside = 0; next }
  inside    { print > file }
' docs/CRM.md
# One shell runs the blocks in turn (a block's variables reach the next, as in a reader's
# terminal); every curl fails on a non-2xx answer, showing it.
{
  echo 'curl() { command curl --fail-with-body --show-error "$@"; }'
  for block in "$work"/block-*.sh; do
    case "$(basename "$block")" in block-01.sh | block-02.sh) continue ;; esac
    echo "echo '==> $(basename "$block")' >&2"
    cat "$block"
  done
} >"$work/guide.sh"
ran=$(grep -c "^echo '==> block-" "$work/guide.sh")
if ! bash -euo pipefail "$work/guide.sh" >"$work/answer" 2>"$work/errors"; then
  failed=$(grep "^==> block-" "$work/errors" | tail -1 | cut -c5-)
  echo "docs/CRM.md: a block failed ($failed, counting every sh block from 01):"
  cat "$work/$failed"
  echo "--- its output and errors:"
  tail -5 "$work/answer"
  tail -5 "$work/errors"
  exit 1
fi
[ "$ran" -ge 8 ] || { echo "docs/CRM.md: only $ran blocks found"; exit 1; }
echo "docs/CRM.md: $ran blocks ran in order against aviso serve, every curl answered 2xx"
