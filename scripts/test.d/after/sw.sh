#!/usr/bin/env bash
# The browser SDK: unit tests (node's test runner), a fresh build checked against dist/, sizes.
set -euo pipefail
cd "$(dirname "$0")/../../../sw"
npm ci --no-audit --no-fund --loglevel=error
npm test
npm run size
