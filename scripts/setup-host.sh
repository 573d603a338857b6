#!/usr/bin/env bash
# Install the Debian packages the host build and tests need beyond Rust (idempotent):
#   - libopenmpi-dev + openmpi-bin: the `mpi` feature links OpenMPI, and the MPI tests run
#     `mpirun -np 2` (docs/distributed.md)
#   - libclang-dev: the mpi crate generates its bindings with bindgen
#   - mesa-vulkan-drivers + libvulkan1: Mesa's lavapipe, a Vulkan driver on the CPU, on which the
#     `wgpu` feature's tests run burn's wgpu backend (native-trainer/tests/integration/wgpu_lavapipe.rs)
# Needs root when something is missing (CI runs as root); otherwise it prints the apt-get line.
set -euo pipefail
missing=()
command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
[ -e /usr/include/x86_64-linux-gnu/openmpi/mpi.h ] || [ -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] \
  || dpkg -s libopenmpi-dev >/dev/null 2>&1 || missing+=(libopenmpi-dev)
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || missing+=(libclang-dev)
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || missing+=(libvulkan1)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "setup-host: $(mpirun --version | head -n 1); Vulkan CPU driver: $(ls /usr/share/vulkan/icd.d/ 2>/dev/null | grep -c lvp) lavapipe ICD"
