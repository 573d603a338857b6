#!/usr/bin/env python3
"""NIfTI-2 fixtures written by nibabel, with their NIfTI-1 twins and nibabel's view of them.

Crops small pieces of the real MRI in ../shared/data/mri (paths from the project root), writes
each as a NIfTI-1 file with nibabel, then converts that file to NIfTI-2 with `nibabel.Nifti2Image`:
the same raw voxels, and every header field copied from the NIfTI-1 header (NIfTI-1's float32
fields widen exactly to NIfTI-2's float64), so a reader must decode both to the same values and the
same affine. Writes into core/tests/fixtures/nifti2/ (about 40 KB in all):

- `<case>.nii` or `<case>.nii.gz`   the NIfTI-2 file
- `<case>.nifti1.nii.gz`            its NIfTI-1 twin (what it came from)
- `expected.json`                   what nibabel reads from each NIfTI-2 file: dims, datatype, byte
                                    order, sform/qform codes, scl_slope/scl_inter, the affine,
                                    statistics and a few voxel values of the first volume (float64)

The cases cover both byte orders, .nii and .nii.gz, uint8, int16 and float32, scl_slope and
scl_inter, sform + qform, qform only, an oblique sform only, and a 4-D file (two volumes).

Run from the repository root (written with nibabel 5.4.2, numpy 2.4.6, Python 3):

    python3 -m venv /tmp/nib && /tmp/nib/bin/pip install nibabel numpy
    /tmp/nib/bin/python tests/reference/make_nifti2.py

The output is deterministic (gzip timestamps are zeroed); rerunning rewrites the same files.
"""

import gzip
import io
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MRI = ROOT.parent / "shared" / "data" / "mri"
OUT = ROOT / "core" / "tests" / "fixtures" / "nifti2"

# name, source, crop start, crop size, on-disk dtype, big-endian, gzip, form codes, scaling, extra
CASES = [
    dict(
        name="t1_u8_slope_sform_qform_le",
        source="icbm152-2mm/avg152T1.nii.gz",
        start=(38, 44, 36), size=(16, 20, 16), dtype="uint8", big_endian=False, gzip=False,
        sform_code=4, qform_code=4, slope=None,  # keep the source's scl_slope (1/255)
    ),
    dict(
        name="anatomical_i16_slope_qform_be",
        source="fixtures/anatomical.nii",
        start=(10, 12, 6), size=(12, 16, 12), dtype="int16", big_endian=True, gzip=True,
        sform_code=0, qform_code=1, slope=(0.5, -3.0),
    ),
    dict(
        name="ch2_f32_oblique_sform_le",
        source="colin27/ch2.nii.gz",
        start=(84, 102, 92), size=(12, 12, 12), dtype="float32", big_endian=False, gzip=True,
        sform_code=2, qform_code=0, slope=(1.0, 0.0), oblique=True,
    ),
    dict(
        name="t1_i16_4d_be",
        source="icbm152-2mm/avg152T1.nii.gz",
        start=(40, 50, 40), size=(10, 12, 8), dtype="int16", big_endian=True, gzip=False,
        sform_code=2, qform_code=2, slope=(1.0, 0.0), volumes=2,
    ),
]

# Fields with the same name and meaning in both headers (everything but the layout's own).
SKIPPED_FIELDS = {"sizeof_hdr", "magic", "vox_offset", "eol_check", "unused_str"}


def raw_header(path):
    """The header exactly as stored (nibabel's image headers have scl_slope/inter consumed)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return nib.Nifti1Header.from_fileobj(io.BytesIO(data))


def oblique(affine):
    """`affine` turned by 20 degrees about z and 10 about x: a sform no axis-aligned grid has."""
    def turn(axis, degrees):
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(4)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        return r
    return turn(2, 20) @ turn(0, 10) @ affine


def crop(case):
    """Raw (unscaled) voxels of the crop, its affine, and the source's stored header."""
    source = MRI / case["source"]
    image = nib.load(source)
    header = raw_header(source)
    start, size = case["start"], case["size"]
    window = tuple(slice(s, s + n) for s, n in zip(start, size))
    raw = np.asarray(image.dataobj.get_unscaled())[window]
    if case["dtype"] == "float32":
        # Non-integer values: the source's scaled intensities plus a smooth ramp.
        ramp = np.linspace(0.0, 1.0, raw.size).reshape(raw.shape)
        raw = (np.asarray(image.dataobj)[window] + 0.123 * ramp).astype(np.float32)
    else:
        raw = raw.astype(case["dtype"])
    if case.get("volumes", 1) > 1:
        raw = np.stack([raw, (raw.max() - raw).astype(raw.dtype)], axis=-1)
    affine = image.affine @ nib.affines.from_matvec(np.eye(3), start)
    if case.get("oblique"):
        affine = oblique(affine)
    return raw, affine, header


def write_nifti1(case, raw, affine, source_header, path):
    """The NIfTI-1 twin: the source's header with the crop's dims, forms, scaling and byte order."""
    header = source_header.copy()
    if case["big_endian"] != (header.endianness == ">"):
        header = header.as_byteswapped()
    header.set_data_dtype(raw.dtype)
    header.set_data_shape(raw.shape)
    header.set_qform(affine, code=case["qform_code"])
    header.set_sform(affine, code=case["sform_code"])
    image = nib.Nifti1Image(raw, None, header=header)
    slope, inter = case["slope"] or (source_header["scl_slope"], source_header["scl_inter"])
    image.header.set_slope_inter(slope, inter)
    save(image, path)


def write_nifti2(twin_path, raw, path):
    """The NIfTI-2 file: the twin's stored header copied field by field, and the same raw voxels."""
    twin = raw_header(twin_path)
    header = nib.Nifti2Header(endianness=twin.endianness)
    for name in twin.keys():
        if name not in SKIPPED_FIELDS and name in header.keys():
            header[name] = twin[name]
    image = nib.Nifti2Image(raw, None, header=header)
    image.header.set_slope_inter(float(twin["scl_slope"]), float(twin["scl_inter"]))
    save(image, path)


def save(image, path):
    """Write `image`, gzip with a zero timestamp when the name ends in .gz (reproducible bytes)."""
    plain = io.BytesIO()
    image.to_file_map({"image": nib.FileHolder(fileobj=plain), "header": nib.FileHolder(fileobj=plain)})
    data = plain.getvalue()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(data)


def expected(case, path, twin_path):
    """What nibabel reads from the NIfTI-2 file, checked against its NIfTI-1 twin."""
    image, twin = nib.load(path), nib.load(twin_path)
    assert isinstance(image, nib.Nifti2Image) and isinstance(twin, nib.Nifti1Image)
    header = raw_header_any(path)
    assert header["sizeof_hdr"] == 540 and header.endianness == (">" if case["big_endian"] else "<")
    assert np.array_equal(image.affine, twin.affine), (image.affine, twin.affine)
    data = image.get_fdata()
    assert np.array_equal(data, twin.get_fdata())
    first = data[..., 0] if data.ndim == 4 else data
    shape = first.shape
    samples = [(0, 0, 0), tuple(n - 1 for n in shape), tuple(n // 2 for n in shape), (3, 5, 7)]
    return dict(
        file=path.name,
        nifti1_twin=twin_path.name,
        dims=list(image.shape),
        datatype=str(image.get_data_dtype().newbyteorder("=")),
        big_endian=case["big_endian"],
        sform_code=int(header["sform_code"]),
        qform_code=int(header["qform_code"]),
        scl_slope=float(header["scl_slope"]),
        scl_inter=float(header["scl_inter"]),
        affine=image.affine.tolist(),
        first_volume=dict(
            sum=float(first.sum()),
            sum_of_squares=float((first * first).sum()),
            min=float(first.min()),
            max=float(first.max()),
            samples=[dict(ijk=list(ijk), value=float(first[ijk])) for ijk in samples],
        ),
    )


def raw_header_any(path):
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return nib.Nifti2Header.from_fileobj(io.BytesIO(data))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for case in CASES:
        raw, affine, source_header = crop(case)
        twin_path = OUT / f"{case['name']}.nifti1.nii.gz"
        path = OUT / (case["name"] + (".nii.gz" if case["gzip"] else ".nii"))
        write_nifti1(case, raw, affine, source_header, twin_path)
        write_nifti2(twin_path, raw, path)
        cases.append(expected(case, path, twin_path))
    truth = dict(
        written_by=f"tests/reference/make_nifti2.py (nibabel {nib.__version__}, numpy {np.__version__})",
        cases=cases,
    )
    (OUT / "expected.json").write_text(json.dumps(truth, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(cases)} cases into {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
