#!/usr/bin/env bash
# The page's plain WebAssembly module (no SIMD), for browsers without WebAssembly SIMD: trunk's
# post-build hook (www/Trunk.toml) runs this after trunk has built the SIMD module, and the page
# loads whichever the browser runs (www/wasm-loader.js). It is the same crate built without
# .cargo/config.toml's `+simd128`, in its own target folder (the flags differ, so it cannot share
# the SIMD build's artefacts), then bound by the same wasm-bindgen as trunk uses.
#
# Usage: scripts/build-plain-wasm.sh [OUT_DIR]   (default: $TRUNK_STAGING_DIR, else www/dist)
# BRAINMVP_PLAIN_WASM=0 skips it (scripts/demo.sh does: a second wasm build of every crate, for
# browsers from before 2021); the page then tells such a browser to run this script.
set -euo pipefail
if [ "${BRAINMVP_PLAIN_WASM:-1}" = 0 ]; then
  echo "BRAINMVP_PLAIN_WASM=0: no plain (no SIMD) module; scripts/build-plain-wasm.sh www/dist adds it"
  exit 0
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${TRUNK_STAGING_DIR:-$root/www/dist}}"
target_dir="$root/target/wasm-plain"
profile="${TRUNK_PROFILE:-release}"
profile_flag=(--release)
[[ "$profile" == "release" ]] || profile_flag=()
echo "building the plain (no SIMD) WebAssembly module into $out"
# An empty CARGO_ENCODED_RUSTFLAGS overrides the target's rustflags in .cargo/config.toml.
CARGO_ENCODED_RUSTFLAGS="" cargo build "${profile_flag[@]}" --target wasm32-unknown-unknown \
  -p brainmvp-web --target-dir "$target_dir" --manifest-path "$root/Cargo.toml"
[[ "$profile" == "release" ]] || profile="debug"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name brainmvp-web-plain \
  "$target_dir/wasm32-unknown-unknown/$profile/brainmvp_web.wasm"
