#!/usr/bin/env bash
# Set up and run every test of brainmvp on a fresh Debian machine with Rust (what CI runs).
#   native: fmt, clippy, all unit + integration tests (release; CPU backend, CUDA backend compiled in)
#   web:    wasm32 build of the viewer with trunk, then the headless-Chromium WebGPU test
# Env: SKIP_WEB=1 skips the browser part (for quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stage() { printf '\n=== %s (%ds elapsed)\n' "$*" "$(( $(date +%s) - start ))"; }

# One package set and one feature set for every host cargo call below, so burn is compiled once
# (the CUDA backend and the NCCL engine are compiled in to prove they build; tests run on the CPU
# backend, the MPI ones under mpirun).
HOST=(--release --workspace --features brainmvp-trainer/cuda,brainmvp-trainer/nccl,brainmvp-trainer/mpi)

stage "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

stage "host packages (OpenMPI for the mpi feature and the mpirun tests)"
./scripts/setup-host.sh

stage "format"
cargo fmt --all --check

stage "host tests (release): core, CLI, integration, web-viewer host tests"
cargo test "${HOST[@]}" --no-fail-fast

stage "clippy (host)"
cargo clippy "${HOST[@]}" --all-targets -- -D warnings

if [ "${SKIP_WEB:-0}" != 1 ]; then
  stage "web: setup (wasm32 target, wasm-bindgen-cli, trunk, chromium, npm)"
  ./scripts/setup-web.sh
  stage "clippy (web-viewer, wasm32)"
  cargo clippy --release -p brainmvp-web --target wasm32-unknown-unknown -- -D warnings
  stage "web: build and browser tests"
  ./tests/browser/run.sh
fi

stage "all tests passed"
