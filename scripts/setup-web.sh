#!/usr/bin/env bash
# Install what the web build and the headless-browser test need, from the package registries only
# (crates.io, Debian, npm); idempotent and quick when everything is already there.
#   - the wasm32-unknown-unknown Rust target
#   - Debian chromium (headless browser with WebGPU on SwiftShader)
#   - wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock (trunk runs offline)
#   - trunk (pinned below)
#   - npm packages of tests/browser (playwright-core, from package-lock.json)
# wasm-opt is not used: Debian's binaryen 108 breaks the module (see www/index.html).
# Debian packages need root (CI runs this as root); without root and with packages missing it
# stops with the apt-get line to run.
#   --build-only: only what `trunk build` needs (no chromium, no npm packages)
set -euo pipefail
build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14

step_start=$SECONDS
step_done() {
  echo "setup-web: $1 ($((SECONDS - step_start)) s)"
  step_start=$SECONDS
}

# --- Rust target ---------------------------------------------------------------------------
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
step_done "rust target wasm32-unknown-unknown"

# --- Debian packages -----------------------------------------------------------------------
missing=()
[ "$build_only" = 1 ] || [ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-web: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
step_done "debian package chromium"

# --- wasm-bindgen-cli at the Cargo.lock version --------------------------------------------
bindgen_version=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;q}' Cargo.lock)
if [ -z "$bindgen_version" ]; then
  echo "setup-web: no wasm-bindgen package in Cargo.lock" >&2
  exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
  # --locked first. The lock file published with wasm-bindgen-cli 0.2.130 names webpki-roots
  # 1.0.11, which the registry reachable here does not serve (1.0.10 is the newest): then
  # resolve afresh (only the CLI's own dependencies change; the version installed is the same).
  # No default features: they are the TLS stack (rustls, ring) of the test runner's WebDriver
  # download, which the `wasm-bindgen` binary never uses. Its own code unoptimised except the
  # crates that parse and write the module (walrus, wasmparser, wasm-encoder, the CLI support):
  # 80 s to install instead of 138 s on 2 cores, and the same 2.2 s per module bound.
  bindgen_install=(cargo install wasm-bindgen-cli --version "=$bindgen_version" --no-default-features
    --config 'profile.release.package.walrus.opt-level=2'
    --config 'profile.release.package.wasmparser.opt-level=2'
    --config 'profile.release.package.wasm-encoder.opt-level=2'
    --config 'profile.release.package.wasm-bindgen-cli-support.opt-level=2')
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false
  if ! "${bindgen_install[@]}" --locked; then
    echo "setup-web: the published lock file does not resolve here; installing without --locked" >&2
    "${bindgen_install[@]}"
  fi
  unset CARGO_PROFILE_RELEASE_OPT_LEVEL CARGO_PROFILE_RELEASE_LTO \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS CARGO_PROFILE_RELEASE_DEBUG
fi
step_done "wasm-bindgen-cli $bindgen_version"

# --- trunk ---------------------------------------------------------------------------------
# 0.21.14: the newest trunk for Rust < 1.96 (0.22.1 needs 1.96.1). No default features: no
# update check (it would query crates.io on every run) and no TLS stack (rustls and ring are for
# `trunk serve --tls` and its downloader; the page is served by `brainmvp serve` and trunk runs
# offline).
# Trunk's own release profile is fat LTO with one codegen unit: 497 s to install on 2 cores.
# Trunk only runs cargo and wasm-bindgen and copies files, so it is built unoptimised, without
# LTO and without debug info: 196 s with rustls, the same www/dist byte for byte, a `trunk build`
# 3 s slower (2026-12-05); 154 s without a TLS stack (2026-12-06; the cold times are in the
# README, "Development").
if [ "$(trunk --version 2>/dev/null | awk '{print $2}')" != "$TRUNK_VERSION" ]; then
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install trunk --version "=$TRUNK_VERSION" --locked --no-default-features
fi
step_done "trunk $TRUNK_VERSION"

# --- npm packages for the browser test -----------------------------------------------------
[ "$build_only" = 1 ] && exit 0
if ! (cd tests/browser && npm ls --depth=0 >/dev/null 2>&1); then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
step_done "npm packages in tests/browser"
