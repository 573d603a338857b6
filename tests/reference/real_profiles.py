#!/usr/bin/env python3
"""Intensity profiles of the tumour compartments of real BraTS cases, relative to white matter.

What the realistic synthetic tumours (`brainmvp synth --lesion-style realistic`,
core/src/synth/realistic.rs and randomise.rs) were shaped after. For each case folder of
`../shared/data/real` (or the folder given as the first argument) it reads the four modalities
and the reference label map the folder's README names, estimates normal white matter as the
tumour-free brain voxels above the 70th percentile of T1, and prints, per label and modality,
the 25th / 50th / 75th percentiles of intensity / median WM intensity, plus label volumes (ml).

The reference maps are only measured here, never trained on. Needs nibabel and numpy.
Usage: python3 tests/reference/real_profiles.py [REAL_DIR]
"""
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

CASES = {
    "BraTS-GLI-00001-000": (["t1n", "t1c", "t2w", "t2f"], "BraTS-GLI-00001-000-{}.nii.gz", "BraTS23_1.nii.gz"),
    "TCGA-DU-7294": (["t1", "t1c", "t2", "fla"], "TCGA-DU-7294_{}_bet.nii.gz", "mav.nii.gz"),
    "BraTS-MET-00110-000": (["t1n", "t1c", "t2w", "t2f"], "BraTS-MET-00110-000-{}.nii.gz", "aurora-t1c.nii.gz"),
}
MODALITIES = ["T1", "T1c", "T2", "FLAIR"]


def profile(folder: Path, tokens, pattern, reference):
    images = [nib.load(folder / pattern.format(t)).get_fdata().astype(np.float32) for t in tokens]
    labels = np.asarray(nib.load(folder / "reference" / reference).dataobj).astype(int)
    brain = (images[0] != 0) | (images[1] != 0)
    normal = brain & (labels == 0)
    white = normal & (images[0] > np.percentile(images[0][normal], 70))
    white_median = [float(np.median(image[white])) for image in images]
    print(f"{folder.name} (reference {reference}): brain {brain.sum() / 1000:.0f} ml")
    for label in sorted(set(np.unique(labels)) - {0}):
        mask = labels == label
        cells = []
        for name, image, median in zip(MODALITIES, images, white_median):
            q25, q50, q75 = (np.percentile(image[mask], q) / median for q in (25, 50, 75))
            cells.append(f"{name} {q50:.2f} ({q25:.2f}-{q75:.2f})")
        print(f"  label {label}: {mask.sum() / 1000:.1f} ml; " + "; ".join(cells))


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/real")
    print(f"nibabel {nib.__version__}, numpy {np.__version__}")
    for name, (tokens, pattern, reference) in CASES.items():
        if (root / name).is_dir():
            profile(root / name, tokens, pattern, reference)


if __name__ == "__main__":
    main()
