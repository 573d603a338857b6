#!/usr/bin/env bash
# The main job: `brainmvp demo` (synthesise, prepare, pre-train, fine-tune, evaluate, export,
# segment), then the web page built with trunk, and the line that serves it on localhost.
#   ./scripts/demo.sh [OUT]   (default OUT: demo-output)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-output}

cargo build --release -p brainmvp-trainer
./target/release/brainmvp demo --out "$out"

echo
echo "== the web page (trunk build --release → www/dist)"
./scripts/setup-web.sh --build-only
(cd www && trunk build --release)

echo
echo "Open the viewer (bundled demo model and sample case; load $out/model.bmvp with the model picker):"
echo "  ./target/release/brainmvp serve www/dist"
