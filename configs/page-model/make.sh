#!/usr/bin/env bash
# Rebuilds the page's bundled model (www/assets/demo-model.bmvp) from nothing but ../shared: the
# commands that made it (docs/results.md, "The page's model on real patients"), about 1 h on 2 CPU
# cores. No real reference map is read.
#   configs/page-model/make.sh [OUT]        (from the repository root; OUT default runs/page-model)
# The pre-training cohort's 60 synthetic subjects were made by the generator of commit 3b60a0e
# (realistic lesions, before the look-alike spots); `git checkout 3b60a0e` to rebuild them exactly.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mkdir -p "${1:-runs/page-model}" && cd "${1:-runs/page-model}" && pwd)
brainmvp=${BRAINMVP:-$root/target/release/brainmvp}
shared=${BRAINMVP_SHARED:-$root/../shared/data}
cd "$out"
realistic=(--spacing-mm 2 --lesion-style realistic --domain-randomisation 1 --no-tumour-fraction 0.15
  --low-grade-fraction 0.25 --missing-modality-fraction 0 --deformation-mm 6 --bias-strength 0.3 --noise-max 0.08)

# 1. Pre-training cohort: the real patients' four images (links, renamed where our names differ),
#    ICBM152 T1/T2/PD, Colin27 T1 and 60 synthetic subjects; BrainMVP pre-training, 800 steps.
"$brainmvp" synth --out synth-pretrain --subjects 120 --seed 29 "${realistic[@]}"
mkdir -p pretrain-cohort/ICBM152 pretrain-cohort/Colin27
for case in "$shared"/real/*/; do
  name=$(basename "$case")
  mkdir -p "pretrain-cohort/$name"
  for image in "$case"*.nii.gz; do
    ln -sf "$image" "pretrain-cohort/$name/$(basename "$image" | sed 's/_fla_/_flair_/')"
  done
done
ln -sf "$shared/mri/icbm152-2mm/avg152T1.nii.gz" pretrain-cohort/ICBM152/ICBM152_t1.nii.gz
ln -sf "$shared/mri/icbm152-2mm/avg152T2.nii.gz" pretrain-cohort/ICBM152/ICBM152_t2.nii.gz
ln -sf "$shared/mri/icbm152-2mm/avg152PD.nii.gz" pretrain-cohort/ICBM152/ICBM152_pd.nii.gz
ln -sf "$shared/mri/colin27/ch2bet.nii.gz" pretrain-cohort/Colin27/Colin27_t1.nii.gz
for i in $(seq -w 0 59); do ln -sfn "$out/synth-pretrain/SynthBraTS_000$i" "pretrain-cohort/SynthBraTS_000$i"; done
"$brainmvp" prepare pretrain-cohort --out pretrain-cache --config "$here/prepare.toml"
"$brainmvp" pretrain --config "$here/pretrain.toml"

# 2. Fine-tuning cohort: 160 realistic synthetic subjects; fine-tune from the pre-trained encoder.
"$brainmvp" synth --out synth-finetune --subjects 160 --seed 30 "${realistic[@]}"
"$brainmvp" prepare synth-finetune --out finetune-cache --config "$here/prepare.toml"
"$brainmvp" finetune --config "$here/finetune.toml" --init pretrain/export

# 3. The page's file, and its figures on the real patients and healthy brains.
"$brainmvp" export --model finetune/model --out demo-model.bmvp
"$brainmvp" evaluate --model demo-model.bmvp --cases "$shared/real" --healthy "$shared/mri" --out real-cases
