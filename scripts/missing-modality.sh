#!/usr/bin/env bash
# The missing-modality comparison of a label-efficiency experiment: segment the test
# subjects of every fine-tuning run with some modalities absent (the model fills them from its
# templates, with zeros when it has none, exactly as `brainmvp segment` and the page do), score
# them, and put the Dice beside the run's own test Dice with every modality present.
#
# Usage: scripts/missing-modality.sh EXPERIMENT_OUT COHORT DROPPED...
#   e.g. scripts/missing-modality.sh study/run2 study/cohort flair
#   DROPPED: flair, t1, t1c, t2 (BraTS file names: _flair, _t1, _t1ce, _t2), or `none` (drops
#   nothing: a check that `segment` reproduces the run's own test evaluation).
# Writes EXPERIMENT_OUT/missing-<dropped>/<run>/{pred/,evaluation.csv} and
# EXPERIMENT_OUT/missing-<dropped>.csv: run,id,region,dice_all,dice_missing.
# BRAINMVP names the binary (default: brainmvp on the PATH). Runs done already are skipped.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
experiment=$1 cohort=$2
shift 2
dropped=("$@")
brainmvp=${BRAINMVP:-brainmvp}
tag=$(IFS=-; echo "${dropped[*]}")
out="$experiment/missing-$tag"
declare -A suffix=([flair]=flair [t1]=t1 [t1c]=t1ce [t2]=t2)
for modality in "${dropped[@]}"; do
  if [ "$modality" != none ] && [ -z "${suffix[$modality]:-}" ]; then
    echo "missing-modality.sh: unknown modality '$modality' (flair, t1, t1c, t2 or none)" >&2
    exit 2
  fi
done

kept_arguments() { # subject folder, id → the --<modality> arguments of the kept modalities
  local folder=$1 id=$2 modality
  for modality in flair t1 t1c t2; do
    [[ " ${dropped[*]} " == *" $modality "* ]] && continue
    printf -- '--%s\n%s\n' "$modality" "$folder/${id}_${suffix[$modality]}.nii.gz"
  done
}

segment_run() { # fine-tuning run folder → $out/<run>/evaluation.csv
  local run=$1 name target id
  name=$(basename "$run")
  target="$out/$name"
  [ -f "$target/evaluation.csv" ] && return
  rm -rf "$target" && mkdir -p "$target/pred" "$target/truth"
  for id in $(tail -n +2 "$run/test/evaluation.csv" | cut -d, -f1 | sort -u); do
    mapfile -t arguments < <(kept_arguments "$cohort/$id" "$id")
    "$brainmvp" segment --model "$run/model" "${arguments[@]}" \
      --out "$target/pred/${id}_seg.nii.gz" > "$target/pred/$id.log" 2>&1 \
      || { echo "$name $id: segment failed, see $target/pred/$id.log" >&2; exit 1; }
    ln -sf "$(realpath "$cohort/$id/${id}_seg.nii.gz")" "$target/truth/${id}_seg.nii.gz"
  done
  "$brainmvp" evaluate --pred "$target/pred" --truth "$target/truth" --labels brats \
    --out "$target/scoring" > "$target/evaluate.log" 2>&1
  mv "$target/scoring/evaluation.csv" "$target/evaluation.csv"
}

mkdir -p "$out"
for run in "$experiment"/finetune/*/; do
  run=${run%/}
  [ -f "$run/summary.json" ] || continue
  echo "== $(basename "$run") without ${dropped[*]}"
  segment_run "$run"
done

# Join each run's own test Dice (all modalities) with the Dice without the dropped ones.
{
  echo "run,id,region,dice_all,dice_missing"
  for table in "$out"/*/evaluation.csv; do
    name=$(basename "$(dirname "$table")")
    awk -F, -v run="$name" 'NR == FNR { if (FNR > 1) all[$1 "," $2] = $3; next }
      FNR > 1 { print run "," $1 "," $2 "," all[$1 "," $2] "," $3 }' \
      "$experiment/finetune/$name/test/evaluation.csv" "$table"
  done
} > "$out.csv"
echo "wrote $out.csv"
