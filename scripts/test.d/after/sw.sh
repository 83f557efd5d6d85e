#!/usr/bin/env bash
# The browser SDK: unit tests (node's test runner), a fresh build checked against dist/, sizes,
# then the browser tests in headless Chromium (scripts/test.d/chromium.sh installs it): against
# the loopback stand-in server, and against a real `aviso serve` with the mock push service (the
# widget and worker, and the console at /console/ with axe-core on every page).
set -euo pipefail
cd "$(dirname "$0")/../../../sw"
npm ci --no-audit --no-fund --loglevel=error
npm test
npm run size
cargo build --workspace --bins --quiet
npm run e2e
