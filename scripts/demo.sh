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
# The page's tools (wasm-bindgen-cli, trunk; a first run installs them) build meanwhile at the
# lowest priority, in the cycles the CLI's build and the demo leave idle (the demo keeps about
# one core of two busy); their log is target/setup-web.log. They run in their own session, so
# that they stop with the demo, whose scheduling group (Linux's autogroup) is set to the lowest
# priority too: a nice value alone counts only within a group, and the tools took half the CPU.
start=$SECONDS
mkdir -p target
nice -n 19 setsid bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null || true
  exec ./scripts/setup-web.sh --build-only' >target/setup-web.log 2>&1 &
tools=$!
trap 'kill -- -"$tools" 2>/dev/null || true' EXIT # its own process group: stopped with the demo
cargo build --release -p brainmvp-trainer --no-default-features --features flex
echo "demo.sh: the CLI built in $((SECONDS - start)) s"
./target/release/brainmvp demo --out "$out"
echo "demo.sh: the closing table after $((SECONDS - start)) s"

echo
echo "== the web page (trunk build --release → www/dist)"
if ! wait "$tools"; then
  tail -n 20 target/setup-web.log >&2
  echo "demo.sh: installing the page's tools failed (target/setup-web.log)" >&2
  exit 1
fi
echo "demo.sh: the page's tools ready after $((SECONDS - start)) s"
(cd www && BRAINMVP_PLAIN_WASM=0 trunk build --release)
echo "demo.sh: the page built after $((SECONDS - start)) s"

echo
echo "Open the viewer (bundled demo model and sample case; load $out/model.bmvp with the model picker):"
echo "  ./target/release/brainmvp serve www/dist"
