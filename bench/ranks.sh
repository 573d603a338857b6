#!/usr/bin/env bash
# Data-parallel scaling on the CPU: step time of 2 MPI ranks against 1 process.
#   bench/ranks.sh [BRAINMVP_BINARY] [OUT_DIR]
# Needs a binary built with the `mpi` feature and OpenMPI's mpirun. Makes a 6-subject synthetic
# cohort at 2 mm from ../shared/data/mri, then runs the tiny UniFormer pre-training job (crop
# 64³, batch 2 per rank or micro-batch) three ways and prints the median step time (steps 3 on):
#   1 process,  all cores, accumulation 2   (global batch 4)
#   2 ranks,    half the cores each, accumulation 1 (global batch 4: the same work)
#   1 process,  half the cores, accumulation 1  (one rank's share alone: the ideal rank step)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/brainmvp}
out=${2:-$(mktemp -d /tmp/brainmvp-ranks.XXXX)}
steps=${STEPS:-14}
cores=$(nproc)
half=$(( cores / 2 > 0 ? cores / 2 : 1 ))
mkdir -p "$out"
export RUST_LOG=warn OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
if [ ! -d "$out/cache" ]; then
  "$bin" synth --subjects 6 --seed 3 --spacing-mm 2 --out "$out/cohort" \
    --templates "$root/../shared/data/mri/icbm152-2mm" >/dev/null
  printf '[preprocess]\ntarget_spacing_mm = 2.0\n' > "$out/prepare.toml"
  "$bin" prepare "$out/cohort" --out "$out/cache" --config "$out/prepare.toml" >/dev/null
fi
job() { # $1 = accumulation
  cat <<TOML
cache = "$out/cache"
seed = 7
steps = $steps
[model]
arch = "uniformer-tiny"
[model.templates]
canvas = [96, 96, 96]
modalities = ["flair", "t1", "t1c", "t2", "pd"]
[data]
crop_size = [64, 64, 64]
batch_size = 2
workers = 1
[optim]
accumulation = $1
[checkpoint]
every = 1000
TOML
}
job 2 > "$out/acc2.toml"
job 1 > "$out/acc1.toml"
median_step() { # metrics.jsonl -> median step_s of steps 3..
  python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
times = [r["step_s"] for r in rows if r["step"] >= 3]
print(f"{statistics.median(times):.3f}")
PY
}
rm -rf "$out/one" "$out/two" "$out/half"
RAYON_NUM_THREADS=$cores "$bin" pretrain --config "$out/acc2.toml" --out "$out/one" >/dev/null
RAYON_NUM_THREADS=$half mpirun -np 2 --oversubscribe --bind-to none -x RAYON_NUM_THREADS \
  "$bin" pretrain --config "$out/acc1.toml" --out "$out/two" >/dev/null
RAYON_NUM_THREADS=$half "$bin" pretrain --config "$out/acc1.toml" --out "$out/half" >/dev/null
one=$(median_step "$out/one/metrics.jsonl")
two=$(median_step "$out/two/metrics.jsonl")
half_step=$(median_step "$out/half/metrics.jsonl")
allreduce=$(python3 - "$out/two/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
print(f'{statistics.median(r["allreduce_s"] for r in rows if r["step"] >= 3):.3f}')
PY
)
echo "cores: $cores; tiny UniFormer, 64³ crops, global batch 4, median of steps 3-$steps"
echo "| run | step s | samples/s |"
echo "|---|---|---|"
echo "| 1 process, $cores threads, accumulation 2 | $one | $(python3 -c "print(f'{4/$one:.2f}')") |"
echo "| 2 MPI ranks, $half thread(s) each | $two (all-reduce incl. waiting: $allreduce) | $(python3 -c "print(f'{4/$two:.2f}')") |"
echo "| 1 process, $half thread(s), accumulation 1 (one rank's share alone) | $half_step | $(python3 -c "print(f'{2/$half_step:.2f}')") |"
echo "speed-up of 2 ranks over 1 process: $(python3 -c "print(f'{$one/$two:.2f}')"); rank efficiency (ideal rank step / 2-rank step): $(python3 -c "print(f'{$half_step/$two:.2f}')")"
