#!/usr/bin/env bash
# Set up and run every test of brainmvp on a fresh Debian machine with Rust (what CI runs).
#   native: fmt, clippy, all unit + integration tests (release; CPU backend; clippy checks CUDA/NCCL)
#   web:    wasm32 build of the viewer with trunk, then the headless-Chromium WebGPU test
# Env: SKIP_WEB=1 skips the browser part (for quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stage() { printf '\n=== %s (%ds elapsed)\n' "$*" "$(( $(date +%s) - start ))"; }

# Tests run on the CPU backend (the MPI ones under mpirun), so they are built without CUDA:
# instantiating every generic of brainmvp-trainer for the CUDA backend as well takes its release
# build from 70 s to 240 s on 2 cores, on the critical path of every run. Clippy checks the CUDA
# backend and the NCCL engine (type check and lints of every line behind those features; the
# CUDA libraries are loaded at run time, so there is nothing for a linker to find missing).
# The same holds for the CLI's `--device wgpu` (feature `wgpu`): the tests build `wgpu-lib`, burn's
# wgpu backend and the GPU kernels without the verbs, and hold the models on it to the official
# outputs on Mesa's lavapipe; clippy checks the verbs on wgpu. Every verb instantiated for wgpu
# took the trainer library 412 s to build instead of 95 (2 cores, opt-level 1, 2026-12-07); the
# integration tests, which now instantiate their wgpu checks themselves, 103 s instead of 24.
HOST=(--release --workspace)
TEST_FEATURES=(--features brainmvp-trainer/mpi,brainmvp-trainer/wgpu-lib)
# The tests build our own crates at opt-level 1 (dependencies, burn-flex's kernels among them, stay
# at the release profile's 3). At opt-level 1 rustc shares generic instances between crates: the
# trainer's integration tests reuse the trainer library's instances of every model on every
# backend instead of compiling them again (215 s → 24 s). Cold on 2 cores (2026-12-07) the host
# build took 14.8 min instead of 20 and the tests 4.5 min instead of 3.5. Results are the same:
# rustc does not reorder floating-point arithmetic at any level. `target/release/brainmvp`, which
# the browser tests compare with, is this build.
TEST_PROFILE=()
for crate in brainmvp-core brainmvp-trainer brainmvp-web brainmvp-tests; do
  TEST_PROFILE+=(--config "profile.release.package.$crate.opt-level=1")
done
CHECK_FEATURES=(--features brainmvp-trainer/cuda,brainmvp-trainer/nccl,brainmvp-trainer/mpi,brainmvp-trainer/wgpu)

stage "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

stage "host packages (OpenMPI for the mpi feature and the mpirun tests)"
./scripts/setup-host.sh

stage "format"
cargo fmt --all --check

stage "host tests (release): core, CLI, integration, web-viewer host tests"
cargo test "${HOST[@]}" "${TEST_FEATURES[@]}" "${TEST_PROFILE[@]}" --no-fail-fast

stage "clippy (host, with the CUDA backend and the NCCL engine)"
cargo clippy "${HOST[@]}" "${CHECK_FEATURES[@]}" --all-targets -- -D warnings

if [ "${SKIP_WEB:-0}" != 1 ]; then
  stage "web: setup (wasm32 target, wasm-bindgen-cli, trunk, chromium, npm)"
  ./scripts/setup-web.sh
  stage "clippy (web-viewer, wasm32)"
  cargo clippy --release -p brainmvp-web --target wasm32-unknown-unknown -- -D warnings
  stage "web: build and browser tests"
  ./tests/browser/run.sh
fi

stage "all tests passed"
