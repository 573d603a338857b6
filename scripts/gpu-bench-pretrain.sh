#!/usr/bin/env bash
# Prepared device check (run on a lent NVIDIA machine, e.g. through the `device` tool):
# correctness of the CUDA pre-training step against the CPU, then `brainmvp bench pretrain` at the
# official sizes (3 subjects, 6 crops of 96³, AdamW) with the peak GPU memory from nvidia-smi, then
# the kernel launches of one step by kernel (bench/launch_table.py).
# Expects target/release/brainmvp built here with `--features brainmvp-trainer/cuda` (carried over).
# Writes everything to ${OUT:-bench-out}/.
set -uo pipefail
BIN=${BIN:-target/release/brainmvp}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

# 1. The same tiny job on CUDA and on the CPU: the first losses must agree.
"$BIN" demo --out "$OUT/demo" > "$OUT/demo.log" 2>&1
for device in cpu cuda; do
  "$BIN" pretrain --config configs/pretrain-tiny-cpu.toml --cache "$OUT/demo/cache" \
    --out "$OUT/tiny-$device" --steps 5 --device "$device" > "$OUT/tiny-$device.log" 2>&1
  echo "tiny $device exit $?"
done
paste <(cut -c1-120 "$OUT/tiny-cpu/metrics.jsonl") <(cut -c1-120 "$OUT/tiny-cuda/metrics.jsonl") | head -5

# 2. Timings, sampling GPU memory every 50 ms in the background.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$OUT/memory.csv" &
SAMPLER=$!
"$BIN" bench pretrain --device cuda --arch uniformer-s --steps 10 --warmup 3 2>&1 | tee "$OUT/bench.txt"
kill "$SAMPLER"
echo "peak GPU memory (MiB): $(sort -n "$OUT/memory.csv" | tail -1)" | tee -a "$OUT/bench.txt"

# 3. Kernel launches of one official-size step (cubecl's profiling log, one step more in the
#    second run; bench/launch_table.py takes the difference): the table bench/RESULTS.md has for
#    the wgpu backend on lavapipe, now on CUDA, with brainmvp's GPU kernels and with burn's own
#    operations (`--burn-ops`); then the step time with burn's operations, for the speed-up.
for ops in kernels burn; do
  flag=$([ "$ops" = burn ] && echo --burn-ops)
  for steps in 1 2; do
    CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG="$OUT/launches-$ops-$steps.log" \
      "$BIN" bench pretrain --device cuda --arch uniformer-s --steps "$steps" --warmup 1 $flag \
      > /dev/null 2>&1
  done
  echo "launches per step, $ops:" | tee -a "$OUT/launches.md"
  python3 bench/launch_table.py "$OUT/launches-$ops-1.log" "$OUT/launches-$ops-2.log" \
    | tee -a "$OUT/launches.md"
done
"$BIN" bench pretrain --device cuda --arch uniformer-s --steps 10 --warmup 3 --burn-ops 2>&1 \
  | tee "$OUT/bench-burn-ops.txt"
