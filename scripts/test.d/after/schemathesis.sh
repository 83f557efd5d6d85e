#!/usr/bin/env bash
# The API against its own OpenAPI document (schemathesis from PyPI, in a venv under target/).
exec "$(dirname "$0")/../../schemathesis.sh"
