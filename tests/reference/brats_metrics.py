#!/usr/bin/env python3
"""Reference numbers of the official BraTS challenge metrics, for `brainmvp evaluate --metrics brats`.

Runs the official `brats-evaluation` package (PyPI `brats-evaluation==0.0.10`, which runs
`panoptica`) on label maps and writes every number its parser reports into
`tests/reference/brats_metrics.json`; the Rust tests (`native-trainer/tests/integration/evaluate/
brats.rs`) must reproduce each of them. The package is AGPL-3: it is only *run* here, as an outside
reference, never copied, linked or shipped.

    python3 -m venv venv-brats && venv-brats/bin/pip install brats-evaluation==0.0.10 nibabel
    venv-brats/bin/python tests/reference/brats_metrics.py [--real ../shared/data/real] [--time]

Label maps:
- real: the reference label maps of `../shared/data/real/` (BraTS challenge algorithms' outputs, see
  its README) scored against each other; read from there, never copied into the repository.
- synthetic: small edge cases built below with numpy (deterministic: no random numbers except a
  seeded generator), written as gzip NIfTI (mtime 0, so identical bytes on every run) into
  `tests/reference/brats_synthetic/<case>-{pred,ref}.nii.gz` and committed.

BraTS 2021 label maps (4 = enhancing tumour, no 3) are mapped 4 -> 3 before the package sees them:
its `gli` config reads 3 as enhancing tumour and 4 as resection cavity (BraTS 2024).

Each "run" (one folder of cases in the package's terms) is evaluated case by case with
`evaluate_single_exam` and the `gli` config, then put through the package's own parser
(`parse_seg_results`) with the run's missing cases, whose CSV is read back: that table (per case and
region, plus the `mean`, `std`, `median` rows) is what the JSON holds, with the raw panoptica values
of every case. NaN and infinities are written as the strings "nan", "inf", "-inf" (JSON has none).
"""

import argparse
import gzip
import json
import math
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version

import nibabel as nib
import numpy as np
import pandas as pd
from brats_evaluation import config_path, evaluate_single_exam, parse_seg_results
from panoptica import Panoptica_Evaluator

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SYNTHETIC_DIR = os.path.join(HERE, "brats_synthetic")
JSON_PATH = os.path.join(HERE, "brats_metrics.json")

# Values of one region that the panoptica result holds and the parser reads.
RAW_KEYS = [
    "n_ref_instances", "n_pred_instances", "tp", "fp", "fn", "prec", "rec", "rq",
    "global_bin_dsc", "global_bin_nsd", "global_bin_hd95",
    "sq_dsc", "sq_dsc_std", "sq_nsd", "sq_nsd_std", "sq_hd95", "sq_hd95_std",
]

# Real pairs: (case folder, prediction, reference), paths relative to the shared `real/` folder.
REAL_PAIRS = [
    ("BraTS-GLI-00001-000", "BraTS-GLI-00001-000/reference/isen.nii.gz",
     "BraTS-GLI-00001-000/reference/BraTS23_1.nii.gz"),
    ("BraTS-GLI-00001-000-reversed", "BraTS-GLI-00001-000/reference/BraTS23_1.nii.gz",
     "BraTS-GLI-00001-000/reference/isen.nii.gz"),
] + [
    (f"TCGA-DU-7294-{name}", f"TCGA-DU-7294/reference/{name}.nii.gz",
     "TCGA-DU-7294/reference/mav.nii.gz")
    for name in ["hnfnetv1-20", "isen-20", "sanet0-20", "scan-20", "yixinmpl-20", "simple"]
]

# ---------------------------------------------------------------------------------------------
# Synthetic edge cases. Arrays are indexed [x, y, z] (NIfTI order); labels follow BraTS 2023
# (1 NETC, 2 SNFH, 3 ET, 4 RC) unless a case says otherwise.
# ---------------------------------------------------------------------------------------------
DIMS = (48, 40, 32)


def empty():
    return np.zeros(DIMS, dtype=np.uint8)


def box(volume, low, high, label):
    """Sets the voxels low <= [x, y, z] < high to label."""
    volume[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = label
    return volume


def ball(volume, centre, radius, label):
    """Sets the voxels whose centre lies within radius (voxels) of centre to label."""
    x, y, z = np.indices(DIMS)
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius ** 2
    volume[inside] = label
    return volume


def tumour(centre, radii, shift=(0, 0, 0)):
    """Oedema ball with an enhancing shell and a necrotic centre (radii: oedema, ET, NETC; a
    radius of 0 leaves that label out)."""
    centre = tuple(c + s for c, s in zip(centre, shift))
    volume = empty()
    for radius, label in zip(radii, (2, 3, 1)):
        if radius > 0:
            ball(volume, centre, radius, label)
    return volume


def case_overlapping_tumours():
    return tumour((22, 20, 15), (11, 7, 3), shift=(2, -1, 1)), tumour((22, 20, 15), (10, 6, 3))


def case_empty_prediction():
    return empty(), tumour((20, 20, 16), (9, 6, 2))


def case_empty_reference():
    return tumour((20, 20, 16), (9, 6, 2)), empty()


def case_both_empty():
    return empty(), empty()


def case_many_small_lesions():
    """Dozens of metastasis-like specks (1 to 30 voxels): missed, hit, split, extra."""
    rng = np.random.default_rng(20240613)
    reference, prediction = empty(), empty()
    for index in range(36):
        centre = (4 + (index % 6) * 8, 4 + (index // 6) * 6, 6 + (index % 5) * 5)
        radius = rng.uniform(0.4, 2.2)
        ball(reference, centre, radius, 3 if index % 3 else 1)
        fate = index % 4
        if fate == 0:  # found, shifted by one voxel
            ball(prediction, (centre[0] + 1, centre[1], centre[2]), radius, 3 if index % 3 else 1)
        elif fate == 1:  # found, grown
            ball(prediction, centre, radius + 0.8, 3)
        elif fate == 2:  # missed, with a false positive nearby
            ball(prediction, (centre[0], centre[1] + 3, centre[2]), 0.6, 2)
        # fate 3: missed
    return prediction, reference


def case_touching_lesions():
    """Lesions that touch only at an edge or a corner: one component with 26-connectivity (the
    package's), two with 6-connectivity; the prediction keeps them apart."""
    reference = empty()
    box(reference, (10, 10, 10), (16, 16, 16), 3)
    box(reference, (16, 16, 16), (22, 22, 22), 3)  # corner contact
    box(reference, (30, 10, 10), (36, 16, 16), 2)
    box(reference, (36, 16, 10), (42, 22, 16), 2)  # edge contact
    prediction = empty()
    box(prediction, (10, 10, 10), (16, 16, 16), 3)
    box(prediction, (17, 17, 17), (22, 22, 22), 3)
    box(prediction, (30, 10, 10), (36, 16, 16), 2)
    box(prediction, (37, 16, 10), (42, 22, 16), 2)
    return prediction, reference


def case_region_missing_one_side():
    """ET only in the reference, NETC only in the prediction, RC (label 4) only in the reference."""
    reference = tumour((18, 20, 16), (9, 6, 0))
    box(reference, (36, 8, 8), (42, 14, 14), 4)
    prediction = tumour((18, 20, 16), (9, 0, 3))
    prediction[prediction == 3] = 2
    return prediction, reference


def case_disjoint():
    """Lesions on both sides that never overlap: no match (lesion-wise HD95 infinite, global 373)."""
    reference = box(empty(), (4, 4, 4), (12, 12, 12), 2)
    prediction = box(empty(), (30, 24, 18), (38, 32, 26), 2)
    box(reference, (30, 4, 4), (34, 8, 8), 3)
    box(prediction, (4, 30, 20), (8, 34, 24), 3)
    return prediction, reference


def case_matching_optimum():
    """A matching where taking the best pair first loses: the maximal bipartite matching pairs
    P-B and Q-A (total Dice 0.95) instead of P-A (0.6) alone."""
    reference = empty()
    box(reference, (10, 10, 10), (20, 20, 12), 2)  # A
    box(reference, (20, 10, 10), (26, 20, 12), 2)  # B, touching A (one component with it)
    # Separate them by one voxel column so they stay two components.
    reference[20, :, :] = 0
    prediction = empty()
    box(prediction, (13, 10, 10), (26, 20, 12), 2)  # P over the right part of A and all of B
    box(prediction, (8, 10, 10), (12, 20, 12), 2)   # Q over the left edge of A
    return prediction, reference


def case_border():
    """Lesions cut by the volume's faces (their surface includes the border voxels)."""
    reference = box(empty(), (0, 0, 0), (8, 10, 6), 2)
    box(reference, (40, 30, 26), (48, 40, 32), 3)
    prediction = box(empty(), (0, 1, 0), (9, 10, 7), 2)
    box(prediction, (41, 30, 25), (48, 40, 32), 3)
    return prediction, reference


def case_resection_cavity():
    """BraTS 2024 post-operative maps: resection cavity (4) next to residual tumour."""
    reference = tumour((16, 20, 16), (8, 5, 2))
    ball(reference, (34, 20, 16), 6, 4)
    prediction = tumour((16, 20, 16), (8, 4, 2), shift=(1, 0, 0))
    ball(prediction, (35, 21, 16), 5, 4)
    return prediction, reference


def case_brats2021_labels():
    """BraTS 2021 convention on both sides (4 = enhancing): mapped 4 -> 3 before scoring."""
    prediction, reference = tumour((22, 20, 15), (11, 6, 2), shift=(0, 2, 0)), tumour((22, 20, 15), (10, 6, 3))
    prediction[prediction == 3] = 4
    reference[reference == 3] = 4
    return prediction, reference


# name -> (builder, voxel spacing in mm)
SYNTHETIC_CASES = {
    "overlapping-tumours": (case_overlapping_tumours, (1.0, 1.0, 1.0)),
    "empty-prediction": (case_empty_prediction, (1.0, 1.0, 1.0)),
    "empty-reference": (case_empty_reference, (1.0, 1.0, 1.0)),
    "both-empty": (case_both_empty, (1.0, 1.0, 1.0)),
    "many-small-lesions": (case_many_small_lesions, (1.0, 1.0, 1.0)),
    "touching-lesions": (case_touching_lesions, (1.0, 1.0, 1.0)),
    "region-missing-one-side": (case_region_missing_one_side, (1.0, 1.0, 1.0)),
    "disjoint": (case_disjoint, (1.0, 1.0, 1.0)),
    "matching-optimum": (case_matching_optimum, (1.0, 1.0, 1.0)),
    "border": (case_border, (1.0, 1.0, 1.0)),
    "resection-cavity": (case_resection_cavity, (1.0, 1.0, 1.0)),
    "brats2021-labels": (case_brats2021_labels, (1.0, 1.0, 1.0)),
    # Anisotropic voxels: the package applies SimpleITK's (x, y, z) spacing to the array axes
    # (z, y, x) in the lesion-wise metrics, and unit spacing in the global ones.
    "anisotropic": (case_overlapping_tumours, (0.8, 1.2, 2.5)),
}
# A case of the synthetic run with no prediction (the parser's missing-case convention).
MISSING_CASE = "missing-prediction"


def write_nifti(path, array, spacing):
    """A gzip NIfTI with the given spacing and no gzip time stamp (identical bytes every run)."""
    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    image = nib.Nifti1Image(array.astype(np.uint8), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    raw = image.to_bytes()
    with open(path, "wb") as out:
        out.write(gzip.compress(raw, mtime=0))


def brats2021_to_2023(array):
    """Maps a BraTS 2021 map (4 = enhancing, no 3) to the 2023 labels the package reads."""
    values = set(np.unique(array).tolist())
    if 4 in values and 3 not in values:
        array = array.copy()
        array[array == 4] = 3
        return array, "brats2021"
    return array, "brats2023"


def prepare_for_package(path, scratch, name):
    """The label map at path with BraTS 2021 labels mapped, written to scratch; its convention."""
    image = nib.load(path)
    array = np.asarray(image.dataobj)
    mapped, convention = brats2021_to_2023(array.astype(np.uint8))
    out = os.path.join(scratch, name)
    nib.save(nib.Nifti1Image(mapped, image.affine, image.header), out)
    return out, convention


def finite_or_text(value):
    """A JSON-safe number: NaN and infinities as strings, numpy scalars as Python numbers."""
    if value is None:
        return "nan"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def evaluate_run(evaluator, pairs, scratch, run_name, missing=()):
    """Scores the pairs (name, pred path, ref path, shown paths) with the package and its parser.

    Returns the cases (raw panoptica values per region) and the parser's table.
    """
    cases, metrics = [], []
    for name, prediction, reference, shown in pairs:
        pred_file, pred_convention = prepare_for_package(prediction, scratch, f"{name}-pred.nii.gz")
        ref_file, ref_convention = prepare_for_package(reference, scratch, f"{name}-ref.nii.gz")
        result = evaluate_single_exam(pred_file, ref_file, name, evaluator)
        if "error" in result:
            sys.exit(f"{name}: the package failed: {result['error']}")
        metrics.append(result)
        regions = {
            region: {key: finite_or_text(values.get(key)) for key in RAW_KEYS}
            for region, values in result.items()
            if isinstance(values, dict)
        }
        cases.append({
            "name": name,
            "prediction": shown[0],
            "reference": shown[1],
            "prediction_labels": pred_convention,
            "reference_labels": ref_convention,
            "regions": regions,
        })
    summary_json = os.path.join(scratch, f"{run_name}.json")
    with open(summary_json, "w") as out:
        json.dump({"metrics": metrics, "missings": list(missing)}, out, default=float)
    table_csv = os.path.join(scratch, f"{run_name}.csv")
    parse_seg_results(summary_json, table_csv)
    table = pd.read_csv(table_csv)
    columns = [c for c in table.columns if c != "subject_id"]
    rows = [
        {"subject_id": str(row["subject_id"]),
         "values": {c: finite_or_text(row[c]) for c in columns}}
        for _, row in table.iterrows()
    ]
    return cases, {"columns": columns, "rows": rows}


def synthetic_pairs():
    os.makedirs(SYNTHETIC_DIR, exist_ok=True)
    pairs = []
    for name, (build, spacing) in SYNTHETIC_CASES.items():
        prediction, reference = build()
        pred_path = os.path.join(SYNTHETIC_DIR, f"{name}-pred.nii.gz")
        ref_path = os.path.join(SYNTHETIC_DIR, f"{name}-ref.nii.gz")
        write_nifti(pred_path, prediction, spacing)
        write_nifti(ref_path, reference, spacing)
        shown = (os.path.relpath(pred_path, HERE), os.path.relpath(ref_path, HERE))
        pairs.append((name, pred_path, ref_path, shown))
    return pairs


def real_pairs(real_dir):
    pairs = []
    for name, prediction, reference in REAL_PAIRS:
        pairs.append((name, os.path.join(real_dir, prediction), os.path.join(real_dir, reference),
                      (f"real/{prediction}", f"real/{reference}")))
    return pairs


def time_package(evaluator, real_dir, repeats):
    """Seconds the package takes on BraTS-GLI-00001-000 (isen vs BraTS23_1), each of repeats:
    `evaluate_single_exam` on the files (reading included, as `brats-evaluate` runs) and
    `Panoptica_Evaluator.evaluate` on arrays already in memory. One core: run it under
    `taskset -c 0` with the thread variables (OMP_NUM_THREADS=1, ...) set to 1."""
    with tempfile.TemporaryDirectory() as scratch:
        _, prediction, reference, _ = real_pairs(real_dir)[0]
        pred_file, _ = prepare_for_package(prediction, scratch, "pred.nii.gz")
        ref_file, _ = prepare_for_package(reference, scratch, "ref.nii.gz")
        with_files, in_memory = [], []
        pred_array = np.asarray(nib.load(pred_file).dataobj).astype(np.uint8)
        ref_array = np.asarray(nib.load(ref_file).dataobj).astype(np.uint8)
        for _ in range(repeats):
            start = time.perf_counter()
            evaluate_single_exam(pred_file, ref_file, "timing", evaluator)
            with_files.append(time.perf_counter() - start)
            start = time.perf_counter()
            evaluator.evaluate(pred_array, ref_array, voxelspacing=(1.0, 1.0, 1.0))
            in_memory.append(time.perf_counter() - start)
    return {"with_files_s": with_files, "in_memory_s": in_memory,
            "best_with_files_s": min(with_files), "best_in_memory_s": min(in_memory)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", default=os.path.join(REPO, "..", "shared", "data", "real"),
                        help="the shared real-data folder (default ../shared/data/real)")
    parser.add_argument("--time", type=int, default=0, metavar="N",
                        help="only time the package N times on BraTS-GLI-00001-000 and print it")
    args = parser.parse_args()
    evaluator = Panoptica_Evaluator.load_from_config(str(config_path("gli")))
    if args.time:
        print(json.dumps(time_package(evaluator, args.real, args.time)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        synthetic_cases, synthetic_table = evaluate_run(
            evaluator, synthetic_pairs(), scratch, "synthetic", missing=[MISSING_CASE])
        real_cases, real_table = evaluate_run(evaluator, real_pairs(args.real), scratch, "real")
    document = {
        "about": "Official BraTS metrics (brats-evaluation's gli config and parse_seg_results) on "
                 "label maps, written by tests/reference/brats_metrics.py; NaN/inf as strings.",
        "versions": {
            "brats-evaluation": version("brats-evaluation"),
            "panoptica": version("panoptica"),
            "numpy": np.__version__,
            "scipy": version("scipy"),
            "pandas": pd.__version__,
            "connected-components-3d": version("connected-components-3d"),
            "SimpleITK": version("SimpleITK"),
            "python": platform.python_version(),
        },
        "config": "gli",
        "runs": {
            "synthetic": {"missing": [MISSING_CASE], "cases": synthetic_cases,
                          "table": synthetic_table},
            "real": {"missing": [], "cases": real_cases, "table": real_table},
        },
    }
    with open(JSON_PATH, "w") as out:
        json.dump(document, out, indent=1)
        out.write("\n")
    print(f"wrote {os.path.relpath(JSON_PATH, REPO)}")


if __name__ == "__main__":
    main()
