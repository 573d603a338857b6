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
HOST=(--release --workspace)
TEST_FEATURES=(--features brainmvp-trainer/mpi,brainmvp-trainer/wgpu)
# The tests build our own crates at opt-level 1 (dependencies, burn-flex's kernels among them, stay
# at the release profile's 3). At opt-level 1 rustc shares generic instances between crates: the
# trainer's integration tests reuse the trainer library's instances of every model on every
# backend instead of compiling them again (215 s → 24 s), and the whole of our crates builds in
# 8 min instead of 12 on 2 cores; the tests run 40 s longer (3.5 → 4.2 min). Results are the same:
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
