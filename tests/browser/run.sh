#!/usr/bin/env bash
# Build the web page (www/dist) with trunk and test it in headless Chromium.
# Needs what scripts/setup-web.sh installs (run that first).
set -euo pipefail
cd "$(dirname "$0")/../.."

start=$SECONDS
(cd www && trunk build --release)
echo "run.sh: trunk build --release took $((SECONDS - start)) s"

# The native CLI the browser's label maps are compared with (test-all.sh has built it already).
[ -x target/release/brainmvp ] || cargo build --release -p brainmvp-trainer

cd tests/browser
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
# One file at a time: each starts its own Chromium, and the machine may have two cores.
node --test --test-concurrency=1 --test-reporter=spec adapter.test.mjs viewer.test.mjs segment.test.mjs correct.test.mjs cpu-pool.test.mjs real-case.test.mjs official.test.mjs
