#!/usr/bin/env python3
"""Compare two BraTS label maps of the same grid: ours against the official pipeline's.

Prints (and with --json appends to a JSON-lines file) the voxel agreement (% of the voxels with
the same label), the Dice between the two maps per region and the voxels per label of each:

- TC (tumour core) = labels 1 and the enhancing label,
- WT (whole tumour) = every non-zero label (1, 2 and the enhancing label),
- ET (enhancing tumour) = the enhancing label (3, BraTS 2023; --et-label 4 for BraTS 2021).

Dice = 2 |A ∩ B| / (|A| + |B|); 1 when the region is empty in both maps. With --images (the
case's input scans, on the same grid), the disagreement is also split into voxels inside the
head (any scan > 0, the official pipeline's foreground) and outside it: an untrained model labels
background as tumour, and a variant that segments a larger box disagrees there. The two files
must have the same shape and affine (within 1e-4 mm): a label map on another grid is refused,
never resampled. Labels are read as nibabel gives them and rounded to integers.

Used by tests/reference/official_pipeline_full.sh (see there); needs numpy and nibabel:

    python3 tests/reference/compare_label_maps.py OURS.nii.gz OFFICIAL.nii.gz \\
        [--name CASE] [--json results.jsonl] [--min-agreement 99.9] [--images T1 T1C T2 FLAIR]

Exit status 0, or 1 when --min-agreement is given and the agreement (%) is below it.
"""

import argparse
import json
import sys

import nibabel as nib
import numpy as np


def load(path):
    image = nib.load(path)
    data = np.asanyarray(image.dataobj)
    return np.rint(data).astype(np.int64), image.affine


def dice(a, b):
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def counts(label):
    values, numbers = np.unique(label, return_counts=True)
    return {str(int(v)): int(n) for v, n in zip(values, numbers)}


def foreground_of(paths, shape, affine):
    """Voxels where any of the scans is above 0 (MONAI's is_positive over the channels)."""
    mask = np.zeros(shape, bool)
    for path in paths:
        image = nib.load(path)
        if image.shape != shape or not np.allclose(image.affine, affine, atol=1e-4):
            sys.exit(f"{path}: not on the label maps' grid")
        mask |= np.asanyarray(image.dataobj) > 0
    return mask


def compare(ours, official, et_label, foreground=None):
    regions = {
        "TC": lambda m: (m == 1) | (m == et_label),
        "WT": lambda m: m > 0,
        "ET": lambda m: m == et_label,
    }
    same = int((ours == official).sum())
    split = {}
    if foreground is not None:
        differ = ours != official
        inside = int(foreground.sum())
        split = {"foreground_voxels": inside,
                 "differing_in_foreground": int((differ & foreground).sum()),
                 "differing_outside_foreground": int((differ & ~foreground).sum()),
                 "agreement_in_foreground_percent":
                     100.0 * (1.0 - (differ & foreground).sum() / max(inside, 1))}
    return {
        "voxels": int(ours.size),
        "agreeing_voxels": same,
        "agreement_percent": 100.0 * same / ours.size,
        "dice": {name: dice(region(ours), region(official)) for name, region in regions.items()},
        "region_voxels": {name: {"ours": int(region(ours).sum()),
                                 "official": int(region(official).sum())}
                          for name, region in regions.items()},
        "label_voxels": {"ours": counts(ours), "official": counts(official)},
        **split,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ours")
    parser.add_argument("official")
    parser.add_argument("--name", default="", help="a name for the printed line and the JSON")
    parser.add_argument("--et-label", type=int, default=3)
    parser.add_argument("--json", help="append the result as one JSON line to this file")
    parser.add_argument("--min-agreement", type=float,
                        help="exit 1 when the agreement (%%) is below this")
    parser.add_argument("--images", nargs="+",
                        help="the case's scans: split the disagreement inside/outside the head")
    args = parser.parse_args()

    ours, ours_affine = load(args.ours)
    official, official_affine = load(args.official)
    if ours.shape != official.shape:
        sys.exit(f"{args.name or args.ours}: shapes differ: ours {ours.shape}, "
                 f"official {official.shape}")
    if not np.allclose(ours_affine, official_affine, atol=1e-4):
        sys.exit(f"{args.name or args.ours}: affines differ:\nours\n{ours_affine}\n"
                 f"official\n{official_affine}")
    foreground = (foreground_of(args.images, ours.shape, official_affine) if args.images
                  else None)
    result = compare(ours, official, args.et_label, foreground)
    result = {"name": args.name, "ours": args.ours, "official": args.official, **result}

    d = result["dice"]
    print(f"{args.name or args.ours}: agreement {result['agreement_percent']:.5f} % "
          f"({result['voxels'] - result['agreeing_voxels']} of {result['voxels']} voxels differ); "
          f"Dice TC {d['TC']:.4f} WT {d['WT']:.4f} ET {d['ET']:.4f}")
    if foreground is not None:
        print(f"  in the head (any scan > 0, {result['foreground_voxels']} voxels): agreement "
              f"{result['agreement_in_foreground_percent']:.5f} %; differing voxels inside "
              f"{result['differing_in_foreground']}, "
              f"outside {result['differing_outside_foreground']}")
    labels = sorted(set(result["label_voxels"]["ours"]) | set(result["label_voxels"]["official"]),
                    key=int)
    for label in labels:
        print(f"  label {label}: ours {result['label_voxels']['ours'].get(label, 0)}, "
              f"official {result['label_voxels']['official'].get(label, 0)}")
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps(result) + "\n")
    if args.min_agreement is not None and result["agreement_percent"] < args.min_agreement:
        print(f"{args.name or args.ours}: agreement below {args.min_agreement} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
