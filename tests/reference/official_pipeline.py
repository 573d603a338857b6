#!/usr/bin/env python3
"""The official BrainMVP downstream test pipeline on real cases: label maps for brainmvp's parity tests.

What `brainmvp segment` must reproduce for an imported official-class UniUnet checkpoint is the
official test path: `Downstream/test.py` with the `mode='test'` transform of
`Downstream/dataset/transforms.py::custom_transform` and `Downstream/train_utils.py::inference`.
This script runs exactly those official objects (imported from the folder named by the environment
variable BRAINMVP_OFFICIAL, a checkout of github shaohao011/BrainMVP; none of it is copied here):

1. MONAI `LoadImaged` of the four modalities, stacked channel-first in the official order
   T1, T1C, T2, FLAIR (the order of `get_modality_names` in `Downstream/dataset/
   multimodal_dataset.py`, whose templates `RandomChannelCutmixd` swaps in channel by channel; the
   image order itself comes from each dataset's JSON list). BraTS 2023 names: t1n, t1c, t2w, t2f;
   BraTS-Toolkit names: t1, t1c, t2, fla.
2. `ScaleIntensityRangePercentilesd(lower=5, upper=95, b_min=0, b_max=1, channel_wise=True)` on the
   raw, unclipped volume (float32): (x - p5) / (p95 - p5) per channel.
3. `Orientationd(axcodes='RAS')`, 4. `Spacingd(pixdim=1 mm, bilinear)`,
5. `CropForegroundd(source_key='image', margin=1)` (foreground: any channel > 0),
6. `train_utils.inference`: `Downstream/inference_util.py::sliding_window_inference` (the official
   fork of MONAI's, not MONAI's own) with a cube ROI, sw_batch_size 1, overlap 0.5, constant blending,
7. `train_utils.post_trans`: sigmoid, then AsDiscrete(threshold=0.5), i.e. sigmoid(logit) >= 0.5 per
   channel (TC, WT, ET),
8. back onto the input grid with MONAI's `Invertd(nearest_interp=True)` over the same transform
   (inverse crop = zero padding, inverse Spacing with nearest, inverse Orientation); the official
   test stops before this (it scores on the cropped RAS grid), brainmvp writes on the input grid.

The label map: ET -> the enhancing label (3, BraTS 2023; `--et-label 4` for BraTS 2021), else
TC -> 1, else WT -> 2, else 0.

Two deliberate choices, both recorded in the JSON:
- CropForegroundd's `allow_smaller` is set to True, the default of MONAI 1.4.0 that the official
  requirements.txt pins. MONAI >= 1.5 changed the default to False, which lets the margin run past
  the volume's edge and pads there with zeros; on whole BraTS volumes the brain does not touch the
  edges and the two agree, on the cropped fixture they do not.
- CPU, float32, no autocast. The official test runs under CUDA autocast (fp16 convolutions and
  matmuls); `train_utils.inference` is called as it is, and its `torch.cuda.amp.autocast()` does
  nothing to CPU tensors. Threads: torch.set_num_threads(2).

The official val transform also loads a label; it is given an all-zero map (written next to the
inputs in a temporary folder), which touches nothing of the image path.

Run (venv with torch 2.12.1, MONAI 1.6.1, nibabel 5.4.2, numpy 2.4.6, timm 1.0.31, einops 0.8.2, PyYAML):

    BRAINMVP_OFFICIAL=/path/to/BrainMVP python3 tests/reference/official_pipeline.py --fixture
    BRAINMVP_OFFICIAL=/path/to/BrainMVP python3 tests/reference/official_pipeline.py \\
        --full CASE_DIR... --out DIR
    BRAINMVP_OFFICIAL=/path/to/BrainMVP python3 tests/reference/official_pipeline.py \\
        --ablation CASE_DIR --out DIR [--variants VARIANT...]

The official commit recorded in the JSON is BRAINMVP_OFFICIAL_COMMIT if set, otherwise
`git rev-parse --short HEAD` in BRAINMVP_OFFICIAL_GIT_DIR (a bare git dir) or in BRAINMVP_OFFICIAL.

`--fixture` (CI, about a minute): the tiny official-class UniUnet of tests/reference/fixtures/
uniunet.pt (built as make_golden.py builds it) with 32^3 windows, on a 72x80x64 crop of the real
case BraTS-GLI-00001-000 (from ../shared/data/real/, or --data) around its tumour, cut with
nibabel's `img.slicer` (the affine follows), and on the same crop with its voxel size changed to
(1.2, 0.9, 1.5) mm (the affine's columns scaled, same voxels) so that Spacingd resamples. The
cropped inputs go to a temporary folder (never into the repository); written into
tests/reference/fixtures/official_pipeline/: `<case>_label.nii.gz` (uint8, on the cropped input
grid, the input's affine) and official_pipeline.json (the crop box, settings, versions, counts and
the intermediates: percentiles, RAS/Spacing/CropForeground shapes and boxes, window count).

`--full` (not CI; for docs/official-parity.md): a seeded UniFormer-S UniUnet
(`UniUnet(input_shape=96, in_channels=4, out_channels=3, multi_scale=True)` after
torch.manual_seed(20250611), its biases, norms and BatchNorm running statistics randomised as
make_golden.py --full does), saved as DIR/official_uniunet.pt ({'epoch', 'state_dict'} as the
official trainer saves it, plain keys) for brainmvp to import; then the pipeline at 96^3 on each
case: DIR/<case>_official.nii.gz and DIR/<case>_official.json. tests/reference/
official_pipeline_full.sh compares `brainmvp segment` with these.

`--ablation` (not CI; for docs/official-parity.md): which step of brainmvp's old preprocessing of
an imported UniUnet (the pre-training pipeline) moved its label map away from the official one.
One whole case through the official pipeline with steps of the official transform replaced, each
variant one run of the same code (model DIR/official_uniunet.pt from --full, or --model; the same
sliding window, threshold and inverse): `percentiles-of-centre-crop` (percentiles taken over the
RAS 1 mm volume cropped by the official pre-training `CenterCropForeground`, the foreground box
widened to be symmetric about the volume centre; the scaling domain alone), `centre-crop`
(`CropForegroundd(margin=1)` replaced by the official `CenterCropForegroundd`, margin 0: the crop
and hence the window placement alone), `clip` (`clip=True` alone), `official` (no change: a check
of this path); '+' joins steps into one variant. Writes DIR/<case>_ablation-<variant>.nii.gz and
.json (with the comparison against DIR/<case>_official.nii.gz when present: agreement, Dice per
region, disagreement inside and outside the head). About 5 minutes per variant on 2 cores.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# make_golden.py puts the official folders on sys.path (and exits without BRAINMVP_OFFICIAL); its
# import has no other side effects. Its builders make the tiny official-class UniUnet.
import make_golden as golden  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import monai  # noqa: E402
from monai.data import MetaTensor  # noqa: E402
from monai.transforms import CropForegroundd, Invertd, Spacingd, Orientationd  # noqa: E402
from monai.transforms import LoadImaged, ScaleIntensityRangePercentilesd  # noqa: E402
from monai.transforms import Compose, Orientation, Spacing  # noqa: E402
from monai.transforms import ScaleIntensityRange, ScaleIntensityRangePercentiles  # noqa: E402
from monai.utils import convert_to_dst_type, convert_to_tensor  # noqa: E402
from monai.data.meta_obj import get_track_meta  # noqa: E402
from monai.transforms.utils import generate_spatial_bounding_box, is_positive  # noqa: E402
from monai.transforms.utils_pytorch_numpy_unification import percentile  # noqa: E402

from dataset.transforms import custom_transform  # noqa: E402  (official val/test transform)
from train_utils import inference, post_trans  # noqa: E402  (official inference, post-processing)
# the official pre-training crop (--ablation)
from utils.custom_trans import CenterCropForeground, CenterCropForegroundd  # noqa: E402

down = golden.down  # Downstream/model/Uni_unet.py

OFFICIAL_ALLOW_SMALLER = True  # MONAI 1.4.0's default (official requirements.txt); False from 1.5
MODALITIES = ["t1", "t1c", "t2", "flair"]
# File-name tokens per modality: BraTS 2023 (t1n, t1c, t2w, t2f), BraTS 2021 / BraTS-Toolkit.
MODALITY_TOKENS = {"t1": ["t1n", "t1"], "t1c": ["t1c", "t1ce", "t1gd"], "t2": ["t2w", "t2"],
                   "flair": ["t2f", "fla", "flair"]}
CHANNELS = ["TC", "WT", "ET"]

FIXTURE_CASE = "BraTS-GLI-00001-000"
# Voxel box in the source file's index order (LPS there): x 120..191 reaches past the brain's edge
# (x < 189) so CropForeground cuts something; y and z lie inside the head. It holds the whole
# tumour core (x 139..178, y 77..127, z 39..87 in BraTS23_1) and most of the oedema.
FIXTURE_BOX_START = [120, 72, 36]
FIXTURE_BOX_SIZE = [72, 80, 64]
FIXTURE_ANISOTROPIC_PIXDIM = [1.2, 0.9, 1.5]
FIXTURE_ROI = 32
OVERLAP = 0.5  # hard-coded in train_utils.inference


def official_commit():
    if os.environ.get("BRAINMVP_OFFICIAL_COMMIT"):
        return os.environ["BRAINMVP_OFFICIAL_COMMIT"]
    git_dir = os.environ.get("BRAINMVP_OFFICIAL_GIT_DIR")
    command = (["git", f"--git-dir={git_dir}"] if git_dir
               else ["git", "-C", golden.OFFICIAL]) + ["rev-parse", "--short", "HEAD"]
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions():
    import einops
    import timm
    return {"python": platform.python_version(), "torch": torch.__version__,
            "monai": monai.__version__, "numpy": np.__version__, "nibabel": nib.__version__,
            "timm": timm.__version__, "einops": einops.__version__,
            "official_commit": official_commit()}


def find_modalities(case_dir):
    """The four modality files of a case folder, in the official channel order."""
    names = sorted(n for n in os.listdir(case_dir) if n.endswith((".nii", ".nii.gz")))
    found = []
    for modality in MODALITIES:
        match = None
        for token in MODALITY_TOKENS[modality]:
            hits = [n for n in names if token in re.split(r"[-_.]", n.lower())]
            if len(hits) > 1:
                sys.exit(f"{case_dir}: several files for {modality}: {hits}")
            if hits:
                match = hits[0]
                break
        if match is None:
            sys.exit(f"{case_dir}: no {modality} file among {names}")
        found.append(os.path.join(case_dir, match))
    return found


def zero_label(reference_path, folder):
    """An all-zero label map on the input grid (the official transform loads a label)."""
    image = nib.load(reference_path)
    path = os.path.join(folder, "zero_label.nii.gz")
    label = nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine, image.header)
    label.set_data_dtype(np.uint8)
    nib.save(label, path)
    return path


def official_transform(roi):
    transform = custom_transform(patch_shape=roi, mode="test")
    croppers = [t for t in transform.transforms if isinstance(t, CropForegroundd)]
    assert len(croppers) == 1
    croppers[0].cropper.allow_smaller = OFFICIAL_ALLOW_SMALLER
    return transform


class CountingPredictor(torch.nn.Module):
    """The model, counting the windows the official sliding window hands it."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.windows = 0

    def forward(self, x, location=None):
        self.windows += x.shape[0]
        return self.model(x, location)


def combine(binary, et_label):
    """[3, ...] 0/1 channels (TC, WT, ET) -> a label map."""
    tc, wt, et = (binary[i] > 0.5 for i in range(3))
    label = np.zeros(tc.shape, np.uint8)
    label[wt] = 2
    label[tc] = 1
    label[et] = et_label
    return label


def counts(label):
    values, numbers = np.unique(label, return_counts=True)
    return {str(int(v)): int(n) for v, n in zip(values, numbers)}


def affine_list(affine):
    return np.asarray(affine, dtype=np.float64).round(6).tolist()


def percentiles_of(image):
    """The p5/p95 ScaleIntensityRangePercentiles uses (MONAI's `percentile`, on the float32
    channel as LoadImaged gives it), and numpy's float64 ones for comparison."""
    channels = torch.as_tensor(image).float()
    out = {"p5": [], "p95": [], "p5_float64": [], "p95_float64": []}
    for channel in channels:
        out["p5"].append(float(percentile(channel, 5)))
        out["p95"].append(float(percentile(channel, 95)))
        values = channel.numpy().astype(np.float64)
        out["p5_float64"].append(float(np.percentile(values, 5)))
        out["p95_float64"].append(float(np.percentile(values, 95)))
    numel = int(channels[0].numel())
    out["function"] = ("torch.quantile (float32, linear)" if numel <= 1_000_000 else
                       "numpy.percentile on the float32 array (linear)")
    out["why"] = ("monai.transforms.utils_pytorch_numpy_unification.percentile: torch.quantile for "
                  "tensors of at most 1e6 elements, numpy.percentile above (per channel here)")
    out["voxels_per_channel"] = numel
    return out


def run_pipeline(image_paths, model, roi, et_label, workdir, transform=None):
    """The official test pipeline on one case (or `transform`, a variant of the official transform
    for --ablation); returns (label map on the input grid, record)."""
    started = time.time()
    transform = official_transform(roi) if transform is None else transform
    data = {"image": list(image_paths), "label": zero_label(image_paths[0], workdir)}
    record = {"inputs": [os.path.basename(p) for p in image_paths]}
    # Compose applies its transforms one after the other (nothing lazy here): the same steps,
    # one at a time, to keep the intermediates.
    for step in transform.transforms:
        before = data.get("image")
        data = step(data)
        image = data["image"]
        if isinstance(step, LoadImaged):
            record["input_shape"] = list(image.shape[1:])
            record["input_affine"] = affine_list(image.affine)
            record["input_axcodes"] = "".join(nib.aff2axcodes(image.affine.numpy()))
            record["percentiles"] = percentiles_of(image)
        elif isinstance(step, ScaleIntensityRangePercentilesd):
            record["scaled_dtype"] = str(image.dtype)
            if step.scaler.clip:  # --ablation only: the official transform does not clip
                record["clip"] = True
            if isinstance(step.scaler, CentreCropPercentiles):
                record["percentiles_used"] = step.scaler.record
        elif isinstance(step, Orientationd):
            record["ras_shape"] = list(image.shape[1:])
            record["ras_affine"] = affine_list(image.affine)
        elif isinstance(step, Spacingd):
            ops = image.applied_operations[-1]
            record["spacing"] = {
                "pixdim": [1.0, 1.0, 1.0], "mode": "bilinear", "padding_mode": "border",
                "align_corners": False,
                # MONAI's own test (spatial_resample): unchanged affine (atol 1e-3) and shape
                # -> the image is returned as it is, no interpolation.
                "resampled": not (np.allclose(ops["extra_info"]["src_affine"],
                                              image.affine, atol=1e-3)
                                  and record["ras_shape"] == list(image.shape[1:])),
                "compute_dtype": ops["extra_info"]["dtype"],
                "shape_rule": "round(extent / 1 mm) + 1 per axis, np.round (half to even)",
                "output_to_input_voxel": affine_list(np.linalg.solve(
                    np.asarray(ops["extra_info"]["src_affine"], np.float64),
                    np.asarray(image.affine, np.float64))),
                "shape": list(image.shape[1:]),
                "affine": affine_list(image.affine),
            }
        elif isinstance(step, CropForegroundd):
            start = [int(v) for v in data["foreground_start_coord"]]
            end = [int(v) for v in data["foreground_end_coord"]]
            record["crop_foreground"] = {
                "margin": 1, "allow_smaller": OFFICIAL_ALLOW_SMALLER,
                "foreground": "any channel > 0 (select_fn is_positive)",
                "start": start, "end": end, "shape": list(image.shape[1:]),
                "grid": "the RAS 1 mm grid after Spacingd; start/end clamped to it "
                        "(allow_smaller=True)",
            }
            # What MONAI >= 1.5's default (allow_smaller=False) would cut: the margin may run past
            # the edges, padded with zeros there.
            box = generate_spatial_bounding_box(before, is_positive, None, 1, False)
            record["crop_foreground"]["if_allow_smaller_false"] = {
                "start": [int(v) for v in box[0]], "end": [int(v) for v in box[1]]}
        elif isinstance(step, CenterCropForegroundd):  # --ablation: the pre-training crop
            start = [int(v) for v in data["foreground_start_coord"]]
            end = [int(v) for v in data["foreground_end_coord"]]
            record["crop_foreground"] = {
                "transform": "CenterCropForegroundd (official utils/custom_trans.py, the "
                             "pre-training crop): the foreground box (any channel > 0) widened "
                             "to be symmetric about the volume centre, margin 0",
                "start": start, "end": end, "shape": list(image.shape[1:]),
            }
    preprocess_s = time.time() - started

    image = data["image"]
    predictor = CountingPredictor(model).eval()
    started = time.time()
    with torch.no_grad():
        logits = inference(image.as_tensor().unsqueeze(0).float(), predictor, patch_shape=roi)
    inference_s = time.time() - started
    logits = logits[0]
    binary = post_trans(logits)
    binary = (binary.as_tensor() if isinstance(binary, MetaTensor) else binary).float()
    record["sliding_window"] = {
        "function": "Downstream/inference_util.py::sliding_window_inference (via "
                    "train_utils.inference)",
        "roi": [roi] * 3, "overlap": OVERLAP, "sw_batch_size": 1, "mode": "constant",
        "input_shape": list(image.shape[1:]), "windows": predictor.windows,
    }
    magnitude = logits.abs()
    record["logits"] = {
        "min": [float(c.min()) for c in logits], "max": [float(c.max()) for c in logits],
        "mean": [float(c.mean()) for c in logits],
        "voxels_abs_below_1e-3": [int((m < 1e-3).sum()) for m in magnitude],
        "voxels_abs_below_1e-2": [int((m < 1e-2).sum()) for m in magnitude],
    }
    record["threshold"] = "sigmoid(logit) >= 0.5 per channel (train_utils.post_trans)"
    record["channel_voxels_cropped_grid"] = {name: int(binary[i].sum())
                                             for i, name in enumerate(CHANNELS)}
    record["label_counts_cropped_grid"] = counts(combine(binary.numpy(), et_label))

    # Back onto the input grid: MONAI's inverse of the same transform, nearest for the labels.
    pred = MetaTensor(binary)  # Invertd gives it the image's meta and transform trace
    inverted = Invertd(keys="pred", transform=transform, orig_keys="image",
                       nearest_interp=True)({"image": image, "pred": pred})["pred"]
    inverted = torch.as_tensor(inverted).numpy()
    assert list(inverted.shape[1:]) == record["input_shape"], (inverted.shape, record)
    label = combine(inverted, et_label)
    record["inversion"] = ("monai.transforms.Invertd(keys='pred', transform=<the official "
                           "transform>, orig_keys='image', nearest_interp=True) of the 0/1 "
                           "channels; label map combined after")
    record["label_counts"] = counts(label)
    record["timing_s"] = {"preprocess": round(preprocess_s, 2), "inference": round(inference_s, 2)}
    return label, record


def save_label(label, reference_path, path):
    source = nib.load(reference_path)
    header = source.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    image = nib.Nifti1Image(label.astype(np.uint8), source.affine, header)
    nib.save(image, path)


def common_meta(roi, et_label):
    return {
        "made_by": "tests/reference/official_pipeline.py",
        "modality_order": MODALITIES,
        "modality_files": {"BraTS 2023": ["t1n", "t1c", "t2w", "t2f"],
                           "BraTS-Toolkit": ["t1", "t1c", "t2", "fla"]},
        "channels": CHANNELS,
        "label_convention": {"ET": et_label, "TC (not ET)": 1, "WT (not TC, not ET)": 2,
                             "background": 0},
        "roi": [roi] * 3, "overlap": OVERLAP, "sw_batch_size": 1,
        "transform": ["LoadImaged", "ScaleIntensityRangePercentilesd(5, 95, 0, 1, channel_wise)",
                      "Orientationd(RAS)", "Spacingd(1 mm, bilinear)",
                      "CropForegroundd(image, margin=1, allow_smaller=True)"],
        "precision": "float32 on CPU, no autocast (the official test: CUDA autocast, fp16)",
        "versions": versions(),
    }


# --- fixture -----------------------------------------------------------------------------------

def tiny_uniunet():
    """The tiny official-class UniUnet of fixtures/uniunet.pt, built as make_golden.py builds it."""
    cfg = golden.Config(False)
    golden.small_classes(cfg)
    model = down.UniUnet(input_shape=cfg.roi, in_channels=4, out_channels=3,
                         init_channels=cfg.widths[0], multi_scale=True)
    state = torch.load(os.path.join(HERE, "fixtures", "uniunet.pt"), map_location="cpu")
    model.load_state_dict(state, strict=True)
    assert cfg.roi == FIXTURE_ROI
    return model.eval()


def write_crops(case_dir, folder):
    """The fixture's two inputs: the box of each modality, and the same voxels at another size."""
    sources = find_modalities(case_dir)
    box = tuple(slice(s, s + n) for s, n in zip(FIXTURE_BOX_START, FIXTURE_BOX_SIZE))
    cases = {"crop_1mm": [], "crop_anisotropic": []}
    for source in sources:
        crop = nib.load(source).slicer[box]
        name = os.path.basename(source)
        for case in cases:
            os.makedirs(os.path.join(folder, case), exist_ok=True)
        path = os.path.join(folder, "crop_1mm", name)
        nib.save(crop, path)
        cases["crop_1mm"].append(path)
        affine = crop.affine @ np.diag(FIXTURE_ANISOTROPIC_PIXDIM + [1.0])
        scaled = nib.Nifti1Image(np.asanyarray(crop.dataobj), affine, crop.header.copy())
        scaled.set_qform(affine, code=int(crop.header["qform_code"]))
        scaled.set_sform(affine, code=int(crop.header["sform_code"]))
        path = os.path.join(folder, "crop_anisotropic", name)
        nib.save(scaled, path)
        check = nib.load(path)
        assert np.allclose(check.header.get_zooms(), FIXTURE_ANISOTROPIC_PIXDIM)
        assert np.allclose(check.affine, affine, atol=1e-5)
        cases["crop_anisotropic"].append(path)
    return sources, cases


def fixture(args):
    out_dir = os.path.join(HERE, "fixtures", "official_pipeline")
    os.makedirs(out_dir, exist_ok=True)
    model = tiny_uniunet()
    case_dir = os.path.join(args.data, FIXTURE_CASE)
    meta = common_meta(FIXTURE_ROI, args.et_label)
    meta["model"] = ("tests/reference/fixtures/uniunet.pt: the tiny official-class UniUnet 4 -> 3 "
                     "of make_golden.py (UniFormer depths [1,1,1,1], widths [8,16,32,64], "
                     "head_dim 8, input_shape 32, multi_scale=True), eval mode")
    with tempfile.TemporaryDirectory(prefix="official_pipeline_") as folder:
        sources, cases = write_crops(case_dir, folder)
        meta["crop"] = {
            "source_case": FIXTURE_CASE,
            "source_files": [os.path.basename(s) for s in sources],
            "start": FIXTURE_BOX_START, "size": FIXTURE_BOX_SIZE,
            "index_order": "the source file's voxel index order (i, j, k; LPS there)",
            "how": "nibabel img.slicer[start:start+size, ...] (affine translated, header kept, "
                   "int16 kept)",
        }
        meta["anisotropic"] = {
            "pixdim": FIXTURE_ANISOTROPIC_PIXDIM,
            "how": "the crop's voxels unchanged; affine = crop affine @ diag(1.2, 0.9, 1.5, 1) "
                   "(columns scaled), qform and sform codes kept",
        }
        meta["cases"] = {}
        for case, paths in cases.items():
            label, record = run_pipeline(paths, model, FIXTURE_ROI, args.et_label,
                                         os.path.dirname(paths[0]))
            name = f"{case}_label.nii.gz"
            save_label(label, paths[0], os.path.join(out_dir, name))
            record["label_file"] = name
            meta["cases"][case] = record
            report(case, record)
    with open(os.path.join(out_dir, "official_pipeline.json"), "w") as handle:
        json.dump(meta, handle, indent=1)
        handle.write("\n")
    total = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    print(f"wrote {out_dir}: {total} bytes")


def report(case, record):
    labels = record["label_counts"]
    nonzero = [k for k in labels if k != "0"]
    trivial = len(labels) == 1
    print(f"{case}: input {record['input_shape']} {record['input_axcodes']}, "
          f"after Spacing {record['spacing']['shape']} (resampled: "
          f"{record['spacing']['resampled']}), crop {record['crop_foreground']['start']}.."
          f"{record['crop_foreground']['end']} -> {record['crop_foreground']['shape']}, "
          f"{record['sliding_window']['windows']} windows, p5 {record['percentiles']['p5']}, "
          f"p95 {record['percentiles']['p95']}")
    print(f"  label counts {labels} (cropped grid {record['label_counts_cropped_grid']}), "
          f"channels {record['channel_voxels_cropped_grid']}, timings {record['timing_s']}"
          + ("  TRIVIAL (one label only)" if trivial else
             f"  ({len(nonzero)} tumour labels)"), flush=True)


# --- full size ---------------------------------------------------------------------------------

def full_uniunet(out_dir):
    torch.manual_seed(golden.SEED)
    model = down.UniUnet(input_shape=96, in_channels=4, out_channels=3, multi_scale=True)
    generator = torch.Generator().manual_seed(golden.SEED)
    state = golden.randomise(model, generator)
    path = os.path.join(out_dir, "official_uniunet.pt")
    torch.save({"epoch": 0, "state_dict": state}, path)
    print(f"wrote {path}", flush=True)
    return model.eval()


def full(args):
    os.makedirs(args.out, exist_ok=True)
    model = full_uniunet(args.out)
    for case_dir in args.full:
        case = os.path.basename(os.path.normpath(case_dir))
        paths = find_modalities(case_dir)
        print(f"{case}: {[os.path.basename(p) for p in paths]}", flush=True)
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="official_pipeline_") as folder:
            label, record = run_pipeline(paths, model, 96, args.et_label, folder)
        meta = common_meta(96, args.et_label)
        meta["model"] = ("official_uniunet.pt: UniUnet(input_shape=96, in_channels=4, "
                         "out_channels=3, multi_scale=True) after torch.manual_seed(20250611), "
                         "vectors randomised as make_golden.py --full, eval mode")
        meta["case"] = case
        meta.update(record)
        save_label(label, paths[0], os.path.join(args.out, f"{case}_official.nii.gz"))
        with open(os.path.join(args.out, f"{case}_official.json"), "w") as handle:
            json.dump(meta, handle, indent=1)
            handle.write("\n")
        report(case, record)
        print(f"{case}: {time.time() - started:.1f} s in all", flush=True)


# --- ablation ----------------------------------------------------------------------------------
#
# Which step of brainmvp's old preprocessing (the pre-training pipeline, applied to an imported
# UniUnet before it recorded the official one) moved its label map away from the official one:
# the official transform with one step replaced at a time, the same model, the same sliding
# window (constant blending in both: nothing to ablate there), the same inverse.

class CentreCropPercentiles(ScaleIntensityRangePercentiles):
    """ScaleIntensityRangePercentiles (channel-wise) whose percentiles are taken where the
    pre-training pipeline takes them: over the volume in RAS at 1 mm, cropped by the official
    `CenterCropForeground` (utils/custom_trans.py: the foreground box of the raw volume, any
    channel > 0, widened to be symmetric about the volume centre, margin 0), with MONAI's
    `percentile` as ScaleIntensityRangePercentiles calls it. The scaling itself applies to the whole
    raw volume as the official transform's does (the crop and its position stay official)."""

    def __call__(self, img):
        probe = MetaTensor(convert_to_tensor(img, track_meta=False).clone(),
                           affine=img.affine.clone())
        probe = Spacing(pixdim=(1.0, 1.0, 1.0), mode="bilinear")(
            Orientation(axcodes="RAS")(probe))
        start, end = CenterCropForeground().compute_bounding_box(probe)
        region = convert_to_tensor(probe, track_meta=False)[
            (slice(None),) + tuple(slice(int(a), int(b)) for a, b in zip(start, end))]
        img = convert_to_tensor(img, track_meta=get_track_meta())
        img_t = convert_to_tensor(img, track_meta=False)
        self.record = {"domain": "RAS 1 mm volume cropped by CenterCropForeground (margin 0)",
                       "domain_start": [int(v) for v in start],
                       "domain_end": [int(v) for v in end], "p5": [], "p95": []}
        channels = []
        for channel, part in zip(img_t, region):
            a_min = percentile(part, self.lower)
            a_max = percentile(part, self.upper)
            self.record["p5"].append(float(a_min))
            self.record["p95"].append(float(a_max))
            scaler = ScaleIntensityRange(a_min=a_min, a_max=a_max, b_min=self.b_min,
                                         b_max=self.b_max, clip=self.clip, dtype=self.dtype)
            scaled = scaler(channel)
            channels.append(convert_to_tensor(scaled, track_meta=False))
        return convert_to_dst_type(torch.stack(channels), dst=img, dtype=self.dtype)[0]


ABLATION_STEPS = {
    "percentiles-of-centre-crop": "percentiles over the foreground crop symmetric about the volume "
                                  "centre (the pre-training pipeline's domain) instead of the raw "
                                  "volume; everything else official",
    "centre-crop": "CropForegroundd(margin=1) replaced by the official CenterCropForegroundd "
                   "(margin 0, symmetric about the volume centre: the pre-training crop); the "
                   "windows tile that box",
    "clip": "ScaleIntensityRangePercentilesd with clip=True",
    "official": "the official transform itself (a check of the ablation path: must equal the "
                "--full map)",
}
ABLATION_DEFAULT = ["percentiles-of-centre-crop", "centre-crop", "clip"]


def ablation_transform(roi, variant):
    """The official test transform with the steps named in `variant` ('+'-joined) replaced."""
    steps = set(variant.split("+"))
    unknown = steps - set(ABLATION_STEPS)
    if unknown:
        sys.exit(f"unknown ablation step(s) {sorted(unknown)}; known: {sorted(ABLATION_STEPS)}")
    transforms = []
    for step in official_transform(roi).transforms:
        if isinstance(step, ScaleIntensityRangePercentilesd):
            clip = "clip" in steps
            if "percentiles-of-centre-crop" in steps:
                step = ScaleIntensityRangePercentilesd(keys=["image"], lower=5, upper=95, b_min=0.0,
                                                       b_max=1.0, clip=clip, channel_wise=True)
                step.scaler = CentreCropPercentiles(5, 95, 0.0, 1.0, clip=clip, channel_wise=True)
            elif clip:
                step = ScaleIntensityRangePercentilesd(keys=["image"], lower=5, upper=95, b_min=0.0,
                                                       b_max=1.0, clip=True, channel_wise=True)
        elif isinstance(step, CropForegroundd) and "centre-crop" in steps:
            step = CenterCropForegroundd(keys=["image", "label"], source_key="image")
        transforms.append(step)
    return Compose(transforms)


def load_full_uniunet(path):
    model = down.UniUnet(input_shape=96, in_channels=4, out_channels=3, multi_scale=True)
    state = torch.load(path, map_location="cpu")
    model.load_state_dict(state["state_dict"], strict=True)
    return model.eval()


def ablation(args):
    import compare_label_maps as compare  # beside this script

    os.makedirs(args.out, exist_ok=True)
    model_path = args.model or os.path.join(args.out, "official_uniunet.pt")
    model = load_full_uniunet(model_path)
    case_dir = args.ablation
    case = os.path.basename(os.path.normpath(case_dir))
    paths = find_modalities(case_dir)
    official_path = os.path.join(args.out, f"{case}_official.nii.gz")
    print(f"{case}: {[os.path.basename(p) for p in paths]}, model {model_path}", flush=True)
    for variant in args.variants:
        started = time.time()
        transform = ablation_transform(96, variant)
        with tempfile.TemporaryDirectory(prefix="official_ablation_") as folder:
            label, record = run_pipeline(paths, model, 96, args.et_label, folder, transform)
        meta = common_meta(96, args.et_label)
        meta["transform"] = [type(t).__name__ for t in transform.transforms]
        meta["ablation"] = {"variant": variant,
                            "steps": {s: ABLATION_STEPS[s] for s in variant.split("+")}}
        meta["model"] = model_path
        meta["case"] = case
        meta.update(record)
        name = f"{case}_ablation-{variant}"
        save_label(label, paths[0], os.path.join(args.out, f"{name}.nii.gz"))
        if os.path.exists(official_path):
            ours = np.rint(label).astype(np.int64)
            official = np.rint(np.asanyarray(nib.load(official_path).dataobj)).astype(np.int64)
            foreground = compare.foreground_of(paths, official.shape,
                                               nib.load(official_path).affine)
            result = compare.compare(ours, official, args.et_label, foreground)
            meta["against_official"] = result
            d = result["dice"]
            print(f"{name}: agreement with the official map {result['agreement_percent']:.4f} % "
                  f"(in the head {result['agreement_in_foreground_percent']:.4f} %), Dice TC "
                  f"{d['TC']:.4f} WT {d['WT']:.4f} ET {d['ET']:.4f}", flush=True)
        with open(os.path.join(args.out, f"{name}.json"), "w") as handle:
            json.dump(meta, handle, indent=1)
            handle.write("\n")
        report(name, record)
        if "percentiles_used" in record:
            print(f"  percentiles used: {record['percentiles_used']}", flush=True)
        print(f"{name}: {time.time() - started:.1f} s in all", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fixture", action="store_true", help="the cropped CI fixture")
    mode.add_argument("--full", nargs="+", metavar="CASE_DIR", help="whole real cases")
    mode.add_argument("--ablation", metavar="CASE_DIR",
                      help="one whole case through variants of the official transform")
    parser.add_argument("--out", help="output folder for --full and --ablation (--ablation reads "
                                      "<case>_official.nii.gz and official_uniunet.pt there)")
    parser.add_argument("--model",
                        help="--ablation: the checkpoint (default OUT/official_uniunet.pt)")
    parser.add_argument("--variants", nargs="+", default=ABLATION_DEFAULT,
                        help="--ablation: steps replaced, one variant each ('+' joins steps): "
                             + "; ".join(f"{k}: {v}" for k, v in ABLATION_STEPS.items()))
    parser.add_argument("--data", default=os.path.normpath(
        os.path.join(HERE, "..", "..", "..", "shared", "data", "real")),
        help="folder of the real cases (for --fixture)")
    parser.add_argument("--et-label", type=int, default=3, help="label of ET (3, or 4 for 2021)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if (args.full or args.ablation) and not args.out:
        parser.error("--full and --ablation need --out")
    if args.fixture:
        fixture(args)
    elif args.ablation:
        ablation(args)
    else:
        full(args)


if __name__ == "__main__":
    main()
