#!/usr/bin/env bash
# Prepared device check of data-parallel training (docs/distributed.md), run on a lent NVIDIA
# machine with one GPU, the binary built here with
# `--features brainmvp-trainer/nccl,brainmvp-trainer/mpi` and carried over: the NCCL engine on a
# world of one (RANK=0, WORLD_SIZE=1; `engine = "nccl"` makes its calls run) against the plain
# CUDA run of the same tiny job. The losses must agree; allreduce_s gives the cost of one
# bucketed, host-staged all-reduce. NCCL needs libnccl.so.2 on LD_LIBRARY_PATH
# (e.g. pip install nvidia-nccl-cu12; its lib folder). Writes to ${OUT:-nccl-out}/.
set -uo pipefail
BIN=${BIN:-target/release/brainmvp}
OUT=${OUT:-nccl-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$BIN" demo --out "$OUT/demo" > "$OUT/demo.log" 2>&1
sed 's/^\[checkpoint\]/[distributed]\nengine = "nccl"\n\n[checkpoint]/' configs/pretrain-tiny-cpu.toml \
  > "$OUT/nccl.toml"
"$BIN" pretrain --config configs/pretrain-tiny-cpu.toml --cache "$OUT/demo/cache" \
  --out "$OUT/plain" --steps 20 --device cuda > "$OUT/plain.log" 2>&1
echo "plain cuda exit $?"
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29531 NCCL_DEBUG=INFO \
  "$BIN" pretrain --config "$OUT/nccl.toml" --cache "$OUT/demo/cache" \
  --out "$OUT/nccl" --steps 20 --device cuda > "$OUT/nccl.log" 2>&1
echo "nccl world-1 exit $?"
grep -E "engine nccl|replicas are identical|NCCL INFO (Bootstrap|NCCL version)" "$OUT/nccl.log" | head -5
python3 - "$OUT/plain/metrics.jsonl" "$OUT/nccl/metrics.jsonl" <<'PY'
import json, statistics, sys
def rows(path):
    return [json.loads(l) for l in open(path) if '"train"' in l]
plain, nccl = rows(sys.argv[1]), rows(sys.argv[2])
worst = max(abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-3) for a, b in zip(nccl, plain))
print(f"steps {len(nccl)} vs {len(plain)}; largest relative loss difference {worst:.2e}")
print(f"median step: plain {statistics.median(r['step_s'] for r in plain[2:]):.3f} s, "
      f"nccl {statistics.median(r['step_s'] for r in nccl[2:]):.3f} s, "
      f"all-reduce {statistics.median(r['allreduce_s'] for r in nccl[2:]):.4f} s")
PY
