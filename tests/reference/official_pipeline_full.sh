#!/usr/bin/env bash
# The official BrainMVP test pipeline against `brainmvp segment`, at full size, on the three real
# cases (docs/official-parity.md, "The official test pipeline, end to end").
#
# What: `tests/reference/official_pipeline.py --full` ran the official test path (MONAI transforms
# of Downstream/dataset/transforms.py, the official sliding window, sigmoid >= 0.5, MONAI's
# inverse onto the input grid) with a seeded official-size UniUnet and wrote, into FULL_DIR,
# `official_uniunet.pt` and `<case>_official.nii.gz` / `<case>_official.json` per case. This
# script imports that checkpoint with `brainmvp import --arch uniunet --enhancing-label 3` (so the
# model records pipeline = "official-downstream"), runs `brainmvp segment` on each whole case
# (no --mirror, no --clean; the official channel order: --t1 t1n|t1, --t1c t1c, --t2 t2w|t2,
# --flair t2f|fla) and compares our label map with the official one
# (tests/reference/compare_label_maps.py): voxel agreement (%), Dice between the two maps per
# region (TC = 1,3; WT = 1,2,3; ET = 3), voxels per label, and the disagreement split into voxels
# inside the head (any scan > 0) and outside. It fails when a case agrees on fewer than
# MIN_AGREEMENT % (default 99.9) of its voxels.
#
# With --ablation it also runs BraTS-GLI-00001-000 with the preprocessing brainmvp used before
# the import recorded the official pipeline: a copy of the imported model folder whose model.json
# says `"pipeline": "pretraining", "clip": false` (old), and the same with
# `"recrop_after_scaling": false` (old-no-recrop); every other key as imported.
#
# Run (from anywhere; about 3-4 min per case and run on 2 CPU cores):
#
#   BRAINMVP_OFFICIAL=/path/to/BrainMVP python3 tests/reference/official_pipeline.py \
#       --full ../shared/data/real/{BraTS-GLI-00001-000,TCGA-DU-7294,BraTS-MET-00110-000} \
#       --out FULL_DIR
#   cargo build --release --features brainmvp-trainer/mpi
#   PYTHON=/path/to/venv/bin/python tests/reference/official_pipeline_full.sh FULL_DIR [WORK_DIR] [--ablation]
#
# Needs: the --full outputs in FULL_DIR; the brainmvp binary (BRAINMVP, default
# target/release/brainmvp); a Python with numpy and nibabel (PYTHON, default python3); the real
# cases (DATA, default ../shared/data/real beside the repository). Writes into WORK_DIR (default
# FULL_DIR/ours): model/ (the import), <case>_ours.nii.gz, <case>_segment.log, results.jsonl (one
# JSON line per comparison) and, with --ablation, model-old/, model-old-no-recrop/ and their maps.
# Nothing is written into the repository. CASES (space-separated names) picks other cases.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

ablation=0
positional=()
for arg in "$@"; do
    case $arg in
        --ablation) ablation=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) positional+=("$arg") ;;
    esac
done
if [ ${#positional[@]} -lt 1 ] || [ ${#positional[@]} -gt 2 ]; then
    echo "usage: $0 FULL_DIR [WORK_DIR] [--ablation]" >&2
    exit 2
fi
full_dir=$(cd "${positional[0]}" && pwd)
work_dir=${positional[1]:-$full_dir/ours}
mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)

brainmvp=${BRAINMVP:-$root/target/release/brainmvp}
python=${PYTHON:-python3}
data=${DATA:-$root/../shared/data/real}
cases=${CASES:-BraTS-GLI-00001-000 TCGA-DU-7294 BraTS-MET-00110-000}
min_agreement=${MIN_AGREEMENT:-99.9}
ablation_case=BraTS-GLI-00001-000

[ -x "$brainmvp" ] || { echo "no brainmvp binary at $brainmvp (cargo build --release --features brainmvp-trainer/mpi)" >&2; exit 1; }
[ -f "$full_dir/official_uniunet.pt" ] || { echo "$full_dir: no official_uniunet.pt (run official_pipeline.py --full first)" >&2; exit 1; }
"$python" -c 'import nibabel, numpy' || { echo "$python: needs nibabel and numpy (set PYTHON)" >&2; exit 1; }

# The one file of a case folder whose name, split at - _ ., holds one of the tokens (first token
# with a hit wins; several files for one token is an error). Same rule as official_pipeline.py.
modality_file() {
    local dir=$1; shift
    local token name hits
    for token in "$@"; do
        hits=()
        for path in "$dir"/*.nii "$dir"/*.nii.gz; do
            [ -e "$path" ] || continue
            name=$(basename "$path" | tr 'A-Z' 'a-z')
            if [[ "-${name//[_.]/-}-" == *"-$token-"* ]]; then hits+=("$path"); fi
        done
        if [ ${#hits[@]} -gt 1 ]; then echo "$dir: several files for $token: ${hits[*]}" >&2; exit 1; fi
        if [ ${#hits[@]} -eq 1 ]; then echo "${hits[0]}"; return; fi
    done
    echo "$dir: no file for any of $*" >&2
    exit 1
}

# scans CASE: the case's four files in the official channel order t1, t1c, t2, flair.
scans() {
    local dir=$data/$1
    modality_file "$dir" t1n t1
    modality_file "$dir" t1c t1ce t1gd
    modality_file "$dir" t2w t2
    modality_file "$dir" t2f fla flair
}

# segment MODEL CASE OUT: brainmvp segment on the whole case, official channel order.
segment() {
    local model=$1 case=$2 out=$3
    local files
    mapfile -t files < <(scans "$case")
    [ ${#files[@]} -eq 4 ] || exit 1
    local started=$SECONDS
    "$brainmvp" segment --model "$model" --t1 "${files[0]}" --t1c "${files[1]}" \
        --t2 "${files[2]}" --flair "${files[3]}" \
        --out "$out" > "${out%.nii.gz}_segment.log" 2>&1 \
        || { cat "${out%.nii.gz}_segment.log" >&2; exit 1; }
    echo "$case: brainmvp segment ($(basename "$model")) $((SECONDS - started)) s"
}

# compare NAME CASE OURS OFFICIAL [--min-agreement X]
compare() {
    local name=$1 case=$2 ours=$3 official=$4; shift 4
    local files
    mapfile -t files < <(scans "$case")
    "$python" "$here/compare_label_maps.py" "$ours" "$official" --name "$name" \
        --json "$work_dir/results.jsonl" --images "${files[@]}" "$@"
}

echo "== brainmvp import $full_dir/official_uniunet.pt -> $work_dir/model"
rm -rf "$work_dir/model"
"$brainmvp" import --torch "$full_dir/official_uniunet.pt" --arch uniunet --enhancing-label 3 \
    --out "$work_dir/model" > "$work_dir/import.log" 2>&1 || { cat "$work_dir/import.log" >&2; exit 1; }
grep -q '"pipeline": "official-downstream"' "$work_dir/model/model.json" \
    || { echo "the imported model does not record the official downstream pipeline" >&2; exit 1; }
: > "$work_dir/results.jsonl"

failed=0
for case in $cases; do
    official=$full_dir/${case}_official.nii.gz
    if [ ! -f "$official" ]; then echo "$case: no $official, skipped" >&2; failed=1; continue; fi
    echo "== $case"
    segment "$work_dir/model" "$case" "$work_dir/${case}_ours.nii.gz"
    compare "$case" "$case" "$work_dir/${case}_ours.nii.gz" "$official" \
        --min-agreement "$min_agreement" || failed=1
done

if [ $ablation = 1 ]; then
    official=$full_dir/${ablation_case}_official.nii.gz
    # name:model.json edits (the preprocessing brainmvp used before the import recorded the
    # official pipeline, then without its second crop)
    for variant in 'old:{"pipeline": "pretraining", "clip": false}' \
                   'old-no-recrop:{"pipeline": "pretraining", "clip": false, "recrop_after_scaling": false}'; do
        name=${variant%%:*}
        edits=${variant#*:}
        model=$work_dir/model-$name
        rm -rf "$model"
        cp -r "$work_dir/model" "$model"
        "$python" - "$model/model.json" "$edits" <<'EOF'
import json, sys
path, edits = sys.argv[1], json.loads(sys.argv[2])
with open(path) as handle:
    manifest = json.load(handle)
manifest["preprocess"].update(edits)
with open(path, "w") as handle:
    json.dump(manifest, handle, indent=2)
    handle.write("\n")
print(f"{path}: preprocess = {json.dumps(manifest['preprocess'])}")
EOF
        echo "== $ablation_case, $name"
        segment "$model" "$ablation_case" "$work_dir/${ablation_case}_ours-$name.nii.gz"
        compare "$ablation_case ($name)" "$ablation_case" \
            "$work_dir/${ablation_case}_ours-$name.nii.gz" "$official"
    done
fi

echo "results: $work_dir/results.jsonl"
exit $failed
