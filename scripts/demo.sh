#!/usr/bin/env bash
# The main job: `brainmvp demo` (synthesise, prepare, pre-train, fine-tune, evaluate, export,
# segment), then the web page built with trunk, and the line that serves it on localhost.
#   ./scripts/demo.sh [OUT]   (default OUT: demo-output)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-output}

# What the demo needs: the CLI on the CPU backend without jemalloc (a 2-minute C build that the
# demo's tiny model does not need; a plain `cargo build --release -p brainmvp-trainer` adds it for
# real runs), then the page with its SIMD module only (BRAINMVP_PLAIN_WASM=0: the plain module
# for browsers without WebAssembly SIMD is a second wasm build; scripts/build-plain-wasm.sh adds
# it). Cold times on 2 cores: README, "Development".
start=$SECONDS
cargo build --release -p brainmvp-trainer --no-default-features --features flex
echo "demo.sh: the CLI built in $((SECONDS - start)) s"
./target/release/brainmvp demo --out "$out"
echo "demo.sh: the closing table after $((SECONDS - start)) s"

echo
echo "== the web page (trunk build --release → www/dist)"
./scripts/setup-web.sh --build-only
(cd www && BRAINMVP_PLAIN_WASM=0 trunk build --release)
echo "demo.sh: the page built after $((SECONDS - start)) s"

echo
echo "Open the viewer (bundled demo model and sample case; load $out/model.bmvp with the model picker):"
echo "  ./target/release/brainmvp serve www/dist"
