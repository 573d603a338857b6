//! NIfTI-2 reading: files written by nibabel (`core/tests/fixtures/nifti2`, made by
//! `tests/reference/make_nifti2.py`) against nibabel's own reading of them and against the NIfTI-1
//! files they were converted from; hand-made headers in both byte orders; malformed headers; and
//! the writer's NIfTI-2 output for dims NIfTI-1 cannot hold.

use crate::support::scratch;
use brainmvp_core::nifti::{
    self, read_bytes, read_bytes_with_limits, Datatype, NiftiFormat, NiftiImage, OrientationSource,
    ReadLimits,
};
use brainmvp_core::{Affine, Volume};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;
use std::io::{Read, Write};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti2")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn read_ok(bytes: &[u8], name: &str) -> NiftiImage {
    read_bytes(bytes, name).unwrap_or_else(|err| panic!("{err}"))
}

fn expect_error(bytes: &[u8], name: &str, cause: &str) {
    let err = read_bytes(bytes, name).expect_err(name);
    let text = err.to_string();
    assert!(text.starts_with(&format!("{name}: ")), "{text}");
    assert!(text.contains(cause), "expected {cause:?} in {text}");
    assert!(!text.contains('\n'), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Files written by nibabel.

/// One case of `expected.json`: what nibabel reads from the NIfTI-2 file.
#[derive(Deserialize)]
struct Case {
    file: String,
    nifti1_twin: String,
    dims: Vec<usize>,
    datatype: String,
    big_endian: bool,
    sform_code: i32,
    qform_code: i32,
    affine: Affine,
    first_volume: FirstVolume,
}

#[derive(Deserialize)]
struct FirstVolume {
    sum: f64,
    sum_of_squares: f64,
    min: f64,
    max: f64,
    samples: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    ijk: [usize; 3],
    value: f64,
}

#[derive(Deserialize)]
struct Expected {
    cases: Vec<Case>,
}

fn expected_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let expected: Expected = serde_json::from_str(&text).unwrap();
    assert_eq!(expected.cases.len(), 4);
    expected.cases
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-6 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} vs nibabel's {expected}"
    );
}

/// The image agrees with what nibabel read from the same file.
fn check_against_nibabel(image: &NiftiImage, case: &Case) {
    let name = &case.file;
    assert_eq!(image.format, NiftiFormat::Nifti2, "{name}");
    assert_eq!(image.full_dims, case.dims, "{name}");
    assert_eq!(image.datatype.name(), case.datatype, "{name}");
    assert_eq!(image.big_endian, case.big_endian, "{name}");
    let source = match (case.sform_code > 0, case.qform_code > 0) {
        (true, _) => OrientationSource::Sform,
        (false, true) => OrientationSource::Qform,
        (false, false) => OrientationSource::Pixdim,
    };
    assert_eq!(image.orientation_source, source, "{name}");
    for (row, expected_row) in image.volume.affine.iter().zip(&case.affine) {
        for (&value, &expected) in row.iter().zip(expected_row) {
            assert!((value - expected).abs() < 1e-9, "{name}: affine {row:?}");
        }
    }
    let volume = &image.volume;
    let data: Vec<f64> = volume.data.iter().map(|&v| f64::from(v)).collect();
    let truth = &case.first_volume;
    assert_close(data.iter().sum(), truth.sum, name);
    assert_close(data.iter().map(|v| v * v).sum(), truth.sum_of_squares, name);
    assert_close(
        data.iter().copied().fold(f64::INFINITY, f64::min),
        truth.min,
        name,
    );
    assert_close(
        data.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        truth.max,
        name,
    );
    for sample in &truth.samples {
        let [x, y, z] = sample.ijk;
        assert_close(f64::from(volume.get(x, y, z)), sample.value, name);
    }
}

#[test]
fn nibabel_nifti2_files_read_as_nibabel_reads_them() {
    for case in expected_cases() {
        let image = nifti::read_path(&fixtures().join(&case.file)).unwrap();
        check_against_nibabel(&image, &case);
        let volumes = case.dims.get(3).copied().unwrap_or(1);
        assert_eq!(
            image.warnings.len(),
            usize::from(volumes > 1),
            "{:?}",
            image.warnings
        );
    }
}

#[test]
fn nifti2_files_equal_the_nifti1_files_they_came_from() {
    for case in expected_cases() {
        let nifti2 = nifti::read_path(&fixtures().join(&case.file)).unwrap();
        let nifti1 = nifti::read_path(&fixtures().join(&case.nifti1_twin)).unwrap();
        assert_eq!(nifti1.format, NiftiFormat::Nifti1);
        // NIfTI-1's f32 fields widen exactly to NIfTI-2's f64: everything is bit for bit equal.
        assert_eq!(nifti2.volume.dims, nifti1.volume.dims, "{}", case.file);
        assert_eq!(nifti2.volume.affine, nifti1.volume.affine, "{}", case.file);
        assert_eq!(nifti2.volume.data, nifti1.volume.data, "{}", case.file);
        assert_eq!(nifti2.datatype, nifti1.datatype);
        assert_eq!(nifti2.big_endian, nifti1.big_endian);
        assert_eq!(nifti2.full_dims, nifti1.full_dims);
        assert_eq!(nifti2.pixdim, nifti1.pixdim);
        assert_eq!(nifti2.orientation_source, nifti1.orientation_source);
        assert_eq!(nifti2.warnings, nifti1.warnings);
    }
}

#[test]
fn nifti2_reads_the_same_plain_and_gzipped() {
    for case in expected_cases() {
        let stored = std::fs::read(fixtures().join(&case.file)).unwrap();
        let (plain, packed) = if stored.starts_with(&[0x1f, 0x8b]) {
            (gunzip(&stored), stored)
        } else {
            (stored.clone(), gzip(&stored))
        };
        let from_plain = read_ok(&plain, "plain.nii");
        let from_packed = read_ok(&packed, "packed.nii.gz");
        check_against_nibabel(&from_plain, &case);
        assert_eq!(from_plain.volume.data, from_packed.volume.data);
        assert_eq!(from_plain.volume.affine, from_packed.volume.affine);
    }
}

#[test]
fn oblique_nifti2_reorients_to_ras_and_back() {
    // The oblique float32 case goes through to_ras like any NIfTI-1 file.
    let image = nifti::read_path(&fixtures().join("ch2_f32_oblique_sform_le.nii.gz")).unwrap();
    let (ras, reorientation) = nifti::to_ras(&image.volume);
    assert_eq!(reorientation.undo(&ras).unwrap().data, image.volume.data);
}

// ---------------------------------------------------------------------------------------------
// Hand-made NIfTI-2 headers, independent of the crate's writer (it also writes big-endian).

/// A single-file NIfTI-2 with an sform; `data` is appended at `vox_offset` as is.
#[derive(Clone)]
struct Spec2 {
    big_endian: bool,
    dim: [i64; 8],
    datatype: i16,
    vox_offset: i64,
    scl: [f64; 2],
    srow: [[f64; 4]; 3],
    magic: [u8; 8],
    data: Vec<u8>,
}

impl Spec2 {
    fn new(dims: [i64; 3], datatype: Datatype, big_endian: bool) -> Spec2 {
        Spec2 {
            big_endian,
            dim: [3, dims[0], dims[1], dims[2], 1, 1, 1, 1],
            datatype: datatype.code(),
            vox_offset: 544,
            scl: [1.0, 0.0],
            srow: [
                [0.0, 0.0, -1.5, 30.25],
                [2.0, 0.0, 0.0, -40.125],
                [0.0, 3.0, 0.0, 1.0e-3],
            ],
            magic: *b"n+2\0\r\n\x1a\n",
            data: Vec::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; 544];
        let be = self.big_endian;
        let mut put = |offset: usize, bytes: &[u8]| {
            out[offset..offset + bytes.len()].copy_from_slice(bytes);
        };
        macro_rules! ordered {
            ($value:expr) => {
                if be {
                    $value.to_be_bytes()
                } else {
                    $value.to_le_bytes()
                }
            };
        }
        put(0, &ordered!(540i32));
        put(4, &self.magic);
        put(12, &ordered!(self.datatype));
        for (i, &size) in self.dim.iter().enumerate() {
            put(16 + 8 * i, &ordered!(size));
        }
        for (i, pixdim) in [1.0f64, 1.5, 2.0, 3.0].iter().enumerate() {
            put(104 + 8 * i, &ordered!(pixdim));
        }
        put(168, &ordered!(self.vox_offset));
        put(176, &ordered!(self.scl[0]));
        put(184, &ordered!(self.scl[1]));
        put(348, &ordered!(2i32)); // sform_code
        for (r, row) in self.srow.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                put(400 + 32 * r + 8 * c, &ordered!(value));
            }
        }
        // Data at vox_offset, or at 544 when the offset is one a test means to be refused.
        out.resize(self.vox_offset.clamp(544, 1 << 16) as usize, 0);
        out.extend_from_slice(&self.data);
        out
    }
}

/// `values` as float64 in the given byte order.
fn raw_f64(values: &[f64], big_endian: bool) -> Vec<u8> {
    let order = |v: &f64| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    values.iter().flat_map(order).collect()
}

#[test]
fn hand_made_nifti2_in_both_byte_orders_with_scaling_and_sform() {
    let values: Vec<f64> = (0..24).map(|i| f64::from(i) * 0.25 - 2.0).collect();
    for big_endian in [false, true] {
        let mut spec = Spec2::new([4, 3, 2], Datatype::F64, big_endian);
        spec.scl = [2.0, 0.5];
        spec.data = raw_f64(&values, big_endian);
        let plain = spec.bytes();
        for (bytes, name) in [(plain.clone(), "two.nii"), (gzip(&plain), "two.nii.gz")] {
            let image = read_ok(&bytes, name);
            assert_eq!(image.format, NiftiFormat::Nifti2);
            assert_eq!(image.big_endian, big_endian);
            assert_eq!(image.volume.dims, [4, 3, 2]);
            assert_eq!(image.pixdim, [1.5, 2.0, 3.0]);
            let scaled: Vec<f32> = values.iter().map(|v| (v * 2.0 + 0.5) as f32).collect();
            assert_eq!(image.volume.data, scaled);
            assert_eq!(image.orientation_source, OrientationSource::Sform);
            // f64 srow values that f32 would round (1e-3, -40.125 exact either way) stay exact.
            assert_eq!(image.volume.affine[..3], spec.srow[..]);
            assert!(image.warnings.is_empty(), "{:?}", image.warnings);
        }
    }
}

#[test]
fn hand_made_nifti2_4d_gives_its_first_volume_and_a_small_vox_offset_a_warning() {
    let mut spec = Spec2::new([2, 2, 1], Datatype::F64, true);
    spec.dim[0] = 4;
    spec.dim[4] = 3;
    spec.data = raw_f64(&(0..12).map(f64::from).collect::<Vec<_>>(), true);
    let image = read_ok(&spec.bytes(), "four.nii");
    assert_eq!(image.full_dims, vec![2, 2, 1, 3]);
    assert_eq!(image.volume.data, vec![0.0, 1.0, 2.0, 3.0]);
    assert!(
        image.warnings[0].contains("3 volumes"),
        "{:?}",
        image.warnings
    );
    let mut zero_offset = spec.clone();
    zero_offset.vox_offset = 0;
    let image = read_ok(&zero_offset.bytes(), "zero.nii");
    assert_eq!(image.volume.data, vec![0.0, 1.0, 2.0, 3.0]);
    assert!(image.warnings.iter().any(|w| w.contains("below 544")));
}

// ---------------------------------------------------------------------------------------------
// Malformed NIfTI-2: one line naming the file, never a panic, nothing allocated from absurd sizes.

#[test]
fn truncated_and_mislabelled_nifti2_headers_are_refused() {
    for big_endian in [false, true] {
        let mut spec = Spec2::new([2, 2, 2], Datatype::F64, big_endian);
        spec.data = raw_f64(&[1.0; 8], big_endian);
        let good = spec.bytes();
        expect_error(
            &good[..300],
            "short.nii",
            "too short for a NIfTI-2 header (540 bytes)",
        );
        expect_error(&good[..539], "short.nii", "too short for a NIfTI-2 header");
        expect_error(
            &gzip(&good[..400]),
            "short.nii.gz",
            "too short for a NIfTI-2 header",
        );
        expect_error(&good[..good.len() - 1], "cut.nii", "truncated");
        expect_error(&gzip(&good[..600]), "cut.nii.gz", "truncated");
        let mut bad = spec.clone();
        bad.magic = *b"n+1\0\r\n\x1a\n";
        expect_error(&bad.bytes(), "magic.nii", "wrong magic");
        bad.magic = *b"ni2\0\r\n\x1a\n";
        expect_error(&bad.bytes(), "pair.hdr", "two-file");
        bad.magic = *b"n+2\0\n\n\x1a\n";
        expect_error(&bad.bytes(), "eol.nii", "check bytes");
        let mut beyond = spec.clone();
        beyond.vox_offset = 4096;
        expect_error(&good_with_offset(&good, &beyond), "beyond.nii", "truncated");
        beyond.vox_offset = 1 << 40;
        expect_error(&good_with_offset(&good, &beyond), "far.nii", "vox_offset");
        beyond.vox_offset = -544;
        expect_error(
            &good_with_offset(&good, &beyond),
            "negative.nii",
            "vox_offset -544",
        );
    }
}

/// `good` with only the `vox_offset` field of `spec` changed (the data stays at byte 544).
fn good_with_offset(good: &[u8], spec: &Spec2) -> Vec<u8> {
    let mut bytes = good.to_vec();
    bytes[168..176].copy_from_slice(&spec.bytes()[168..176]);
    bytes
}

#[test]
fn absurd_nifti2_dims_are_refused_before_allocating() {
    let mut spec = Spec2::new([1, 1, 1], Datatype::F64, false);
    spec.data = vec![0; 8];
    let refused = |edit: &dyn Fn(&mut Spec2), name: &str, cause: &str| {
        let mut bad = spec.clone();
        edit(&mut bad);
        expect_error(&bad.bytes(), name, cause);
        expect_error(&gzip(&bad.bytes()), &format!("{name}.gz"), cause);
    };
    refused(&|s| s.dim[0] = 0, "dim0.nii", "dim[0] is 0");
    refused(&|s| s.dim[0] = 8, "dim0.nii", "dim[0] is 8");
    refused(&|s| s.dim[0] = -1, "dim0.nii", "dim[0] is -1");
    refused(&|s| s.dim[0] = i64::MIN, "dim0.nii", "dim[0] is");
    refused(&|s| s.dim[2] = -5, "negative.nii", "dim[2] is -5");
    refused(&|s| s.dim[3] = 0, "zero.nii", "dim[3] is 0");
    refused(&|s| s.dim[1] = i64::MIN, "min.nii", "must be at least 1");
    refused(
        &|s| s.datatype = 1024,
        "int64.nii",
        "unsupported datatype 1024 (int64)",
    );
    // Beyond the voxel limit, and beyond any usize product.
    refused(&|s| s.dim[1] = 1 << 40, "wide.nii", "exceed the limit");
    refused(
        &|s| s.dim[1..4].fill(1 << 30),
        "cube.nii",
        "exceed the limit",
    );
    refused(
        &|s| s.dim[1..4].fill(i64::MAX),
        "max.nii",
        "exceed the limit",
    );
    // Volumes: a product of dim[4..] that overflows, and one that is merely missing.
    let many = |s: &mut Spec2| {
        s.dim[0] = 7;
        s.dim[4..].fill(i64::MAX);
    };
    refused(&many, "volumes.nii", "overflows");
    // (A gzip stream is read only as far as the first volume, so only the plain file is refused.)
    let mut long = spec.clone();
    (long.dim[0], long.dim[4]) = (4, 1 << 40);
    expect_error(&long.bytes(), "long.nii", "truncated");
    // Under the limit but missing, and a gzip bomb.
    let mut big = spec.clone();
    big.dim[1..4].copy_from_slice(&[800, 800, 800]);
    expect_error(&big.bytes(), "big.nii", "truncated");
    expect_error(&gzip(&big.bytes()), "bomb.nii.gz", "gzip bomb");
    // Limits apply as for NIfTI-1.
    let small = read_bytes_with_limits(&big.bytes(), "big.nii", ReadLimits { max_voxels: 1000 });
    assert!(small
        .unwrap_err()
        .to_string()
        .contains("exceed the limit of 1000 voxels"));
}

#[test]
fn bad_nifti2_files_on_disk_are_named_by_path() {
    let dir = scratch("nifti2-bad");
    let good = std::fs::read(fixtures().join("t1_i16_4d_be.nii")).unwrap();
    let path = dir.join("broken-nifti2.nii");
    std::fs::write(&path, &good[..1000]).unwrap();
    let err = nifti::read_path(&path).expect_err("truncated");
    let text = err.to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains("truncated") && !text.contains('\n'), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn corrupted_nifti2_files_never_panic() {
    // Flip bytes all over the header of a nibabel NIfTI-2 file: every outcome is Ok or a named Err.
    let good = std::fs::read(fixtures().join("t1_i16_4d_be.nii")).unwrap();
    let limits = ReadLimits {
        max_voxels: 1 << 22,
    };
    let mut state = 0x2545f4914f6cdd1du64;
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let position = (state % 544) as usize;
            bytes[position] = (state >> 32) as u8;
        }
        match read_bytes_with_limits(&bytes, "fuzzed.nii", limits) {
            Ok(image) => assert_eq!(
                image.volume.data.len(),
                image.volume.dims.iter().product::<usize>()
            ),
            Err(err) => assert!(err.to_string().starts_with("fuzzed.nii: ")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing: NIfTI-1 whenever it can hold the volume, NIfTI-2 for dims over 32767.

#[test]
fn writer_uses_nifti2_only_for_dims_nifti1_cannot_hold() {
    let affine = [
        [0.0, 0.0, -1.5, 30.25],
        [2.0, 0.0, 0.0, -40.125],
        [0.0, 3.0, 0.0, 1.0e-3],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let ordinary = Volume::filled([4, 3, 2], affine, 1.5f32);
    let bytes = nifti::encode_f32(&ordinary, false).unwrap();
    assert_eq!(bytes[..4], 348i32.to_le_bytes());
    let wide = Volume::from_vec(
        [40_000, 2, 1],
        affine,
        (0..80_000u32).map(|i| (i % 251) as u8).collect(),
    );
    for gzip in [false, true] {
        let bytes = nifti::encode_u8(&wide, gzip).unwrap();
        let plain = if gzip { gunzip(&bytes) } else { bytes.clone() };
        assert_eq!(plain[..4], 540i32.to_le_bytes());
        assert_eq!(&plain[4..12], b"n+2\0\r\n\x1a\n");
        assert_eq!(plain.len(), 544 + 80_000);
        let image = read_ok(&bytes, "wide.nii");
        assert_eq!(image.format, NiftiFormat::Nifti2);
        assert_eq!(image.datatype, Datatype::U8);
        assert_eq!(image.full_dims, vec![40_000, 2, 1]);
        assert_eq!(
            image.volume.affine, affine,
            "f64 fields keep the affine exactly"
        );
        let expected: Vec<f32> = wide.data.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(image.volume.data, expected);
    }
    let dir = scratch("nifti2-write");
    let path = dir.join("wide.nii.gz");
    let wide_f32 = Volume::from_vec([1, 33_000, 1], affine, vec![0.25f32; 33_000]);
    nifti::write_f32(&path, &wide_f32).unwrap();
    let image = nifti::read_path(&path).unwrap();
    assert_eq!(image.format, NiftiFormat::Nifti2);
    assert_eq!(image.volume.data, wide_f32.data);
    std::fs::remove_dir_all(dir).unwrap();
}
