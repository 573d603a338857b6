//! NIfTI-1 I/O: hand-made files in both byte orders, every datatype, scaling, orientation sources,
//! reorientation, the real MRI in `../shared/data/mri`, and malformed input (NIfTI-2: `nifti2.rs`).

use crate::support::{scratch, shared_mri};
use brainmvp_core::nifti::{
    self, orientation_code, read_bytes, read_bytes_with_limits, to_ras, Datatype, NiftiImage,
    OrientationSource, ReadLimits,
};
use brainmvp_core::volume::voxel_to_world;
use brainmvp_core::{Affine, Volume};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// A hand-written NIfTI-1 encoder, independent of the crate's writer (it also writes big-endian).

/// Header fields for a hand-made file; `data` is appended at `vox_offset` as is.
#[derive(Clone)]
struct Spec {
    big_endian: bool,
    dim: [i16; 8],
    datatype: i16,
    bitpix: i16,
    pixdim: [f32; 8],
    vox_offset: f32,
    scl: [f32; 2],
    qform_code: i16,
    sform_code: i16,
    quatern: [f32; 6],
    srow: [[f32; 4]; 3],
    magic: [u8; 4],
    data: Vec<u8>,
}

impl Spec {
    fn new(dims: [usize; 3], datatype: Datatype, big_endian: bool) -> Spec {
        Spec {
            big_endian,
            dim: [
                3,
                dims[0] as i16,
                dims[1] as i16,
                dims[2] as i16,
                1,
                1,
                1,
                1,
            ],
            datatype: datatype.code(),
            bitpix: 8 * datatype.bytes_per_voxel() as i16,
            pixdim: [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            vox_offset: 352.0,
            scl: [1.0, 0.0],
            qform_code: 0,
            sform_code: 0,
            quatern: [0.0; 6],
            srow: [[0.0; 4]; 3],
            magic: *b"n+1\0",
            data: Vec::new(),
        }
    }

    fn with_sform(mut self, affine: &Affine) -> Spec {
        self.sform_code = 2;
        self.srow = std::array::from_fn(|r| affine[r].map(|v| v as f32));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; (self.vox_offset as usize).max(348)];
        let be = self.big_endian;
        let mut put = |offset: usize, bytes: Vec<u8>| {
            out[offset..offset + bytes.len()].copy_from_slice(&bytes);
        };
        let i16b = |v: i16| if be { v.to_be_bytes() } else { v.to_le_bytes() }.to_vec();
        let f32b = |v: f32| if be { v.to_be_bytes() } else { v.to_le_bytes() }.to_vec();
        put(
            0,
            if be {
                348i32.to_be_bytes()
            } else {
                348i32.to_le_bytes()
            }
            .to_vec(),
        );
        for (i, &d) in self.dim.iter().enumerate() {
            put(40 + 2 * i, i16b(d));
        }
        put(70, i16b(self.datatype));
        put(72, i16b(self.bitpix));
        for (i, &p) in self.pixdim.iter().enumerate() {
            put(76 + 4 * i, f32b(p));
        }
        put(108, f32b(self.vox_offset));
        put(112, f32b(self.scl[0]));
        put(116, f32b(self.scl[1]));
        put(252, i16b(self.qform_code));
        put(254, i16b(self.sform_code));
        for (i, &q) in self.quatern.iter().enumerate() {
            put(256 + 4 * i, f32b(q));
        }
        for (r, row) in self.srow.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                put(280 + 16 * r + 4 * c, f32b(v));
            }
        }
        put(344, self.magic.to_vec());
        out.extend_from_slice(&self.data);
        out
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Raw bytes of `values` as `datatype` in the given byte order.
fn raw_values(values: &[f64], datatype: Datatype, big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in values {
        let mut bytes = match datatype {
            Datatype::U8 => (v as u8).to_le_bytes().to_vec(),
            Datatype::I8 => (v as i8).to_le_bytes().to_vec(),
            Datatype::I16 => (v as i16).to_le_bytes().to_vec(),
            Datatype::U16 => (v as u16).to_le_bytes().to_vec(),
            Datatype::I32 => (v as i32).to_le_bytes().to_vec(),
            Datatype::U32 => (v as u32).to_le_bytes().to_vec(),
            Datatype::F32 => (v as f32).to_le_bytes().to_vec(),
            Datatype::F64 => v.to_le_bytes().to_vec(),
        };
        if big_endian {
            bytes.reverse();
        }
        out.extend_from_slice(&bytes);
    }
    out
}

/// Values spanning each type's range (extremes included).
fn sample_values(datatype: Datatype) -> Vec<f64> {
    match datatype {
        Datatype::U8 => vec![0.0, 1.0, 127.0, 128.0, 200.0, 255.0],
        Datatype::I8 => vec![-128.0, -1.0, 0.0, 1.0, 100.0, 127.0],
        Datatype::I16 => vec![-32768.0, -610.0, 0.0, 258.0, 30393.0, 32767.0],
        Datatype::U16 => vec![0.0, 1.0, 256.0, 4095.0, 40000.0, 65535.0],
        Datatype::I32 => vec![
            -2147483648.0,
            -70000.0,
            0.0,
            16777217.0,
            123456789.0,
            2147483647.0,
        ],
        Datatype::U32 => vec![0.0, 1.0, 65536.0, 3e9, 16777216.0, 4294967295.0],
        Datatype::F32 => vec![-1.5, 0.0, 0.1, 3.25e10, -7.0e-20, 1.0e30],
        Datatype::F64 => vec![-2.5, 0.0, 0.1, 1.0e10, -1.0e-300, 1.0e38],
    }
}

fn diagonal(spacing: [f64; 3], origin: [f64; 3]) -> Affine {
    [
        [spacing[0], 0.0, 0.0, origin[0]],
        [0.0, spacing[1], 0.0, origin[1]],
        [0.0, 0.0, spacing[2], origin[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn assert_affine_close(actual: &Affine, expected: &Affine, tolerance: f64) {
    for (ra, re) in actual.iter().zip(expected) {
        for (a, e) in ra.iter().zip(re) {
            assert!(
                (a - e).abs() <= tolerance,
                "affine {actual:?} != {expected:?}"
            );
        }
    }
}

fn read_ok(bytes: &[u8], name: &str) -> NiftiImage {
    read_bytes(bytes, name).unwrap_or_else(|err| panic!("{err}"))
}

// ---------------------------------------------------------------------------------------------
// Datatypes, byte orders, compression, scaling.

#[test]
fn every_datatype_in_both_byte_orders_plain_and_gzipped() {
    for datatype in Datatype::ALL {
        for big_endian in [false, true] {
            let values = sample_values(datatype);
            let mut spec = Spec::new([3, 2, 1], datatype, big_endian);
            spec.data = raw_values(&values, datatype, big_endian);
            let plain = spec.bytes();
            for (bytes, label) in [(plain.clone(), "plain"), (gzip(&plain), "gzip")] {
                let name = format!("{datatype}-{big_endian}-{label}.nii");
                let image = read_ok(&bytes, &name);
                assert_eq!(image.datatype, datatype, "{name}");
                assert_eq!(image.big_endian, big_endian, "{name}");
                assert_eq!(image.volume.dims, [3, 2, 1], "{name}");
                let expected: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                assert_eq!(image.volume.data, expected, "{name}");
                assert!(image.warnings.is_empty(), "{name}: {:?}", image.warnings);
            }
        }
    }
}

#[test]
fn encode_as_round_trips_every_datatype_with_rounding_and_clamping() {
    let affine = diagonal([1.5, 2.0, 2.5], [-10.0, 20.0, 5.0]);
    let values = vec![-300.4, -1.5, -0.4, 0.6, 2.5, 99.5, 70000.0, 1.0e10];
    let volume = Volume::from_vec([2, 2, 2], affine, values.clone());
    for datatype in Datatype::ALL {
        for gz in [false, true] {
            let bytes = nifti::encode_as(&volume, datatype, gz).unwrap();
            assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), gz);
            let image = read_ok(&bytes, "encoded.nii");
            assert_eq!(image.datatype, datatype);
            assert!(!image.big_endian);
            assert_affine_close(&image.volume.affine, &affine, 1e-6);
            assert_eq!(image.orientation_source, OrientationSource::Sform);
            assert_eq!(image.pixdim, [1.5, 2.0, 2.5]);
            let (low, high) = match datatype {
                Datatype::U8 => (0.0, 255.0),
                Datatype::I8 => (-128.0, 127.0),
                Datatype::I16 => (-32768.0, 32767.0),
                Datatype::U16 => (0.0, 65535.0),
                Datatype::I32 => (-2147483648.0, 2147483647.0),
                Datatype::U32 => (0.0, 4294967295.0),
                Datatype::F32 | Datatype::F64 => (f64::MIN, f64::MAX),
            };
            for (&read, &stored) in image.volume.data.iter().zip(&values) {
                let expected = if datatype.is_integer() {
                    // Round half away from zero, then clamp to the type's range.
                    (f64::from(stored).round()).clamp(low, high) as f32
                } else {
                    stored
                };
                assert_eq!(read, expected, "{datatype}: {stored}");
            }
        }
    }
}

#[test]
fn scl_slope_and_inter_are_applied_unless_slope_is_zero_or_nan() {
    let raw = [0.0, 10.0, -20.0, 1000.0];
    for big_endian in [false, true] {
        let mut spec = Spec::new([4, 1, 1], Datatype::I16, big_endian);
        spec.data = raw_values(&raw, Datatype::I16, big_endian);
        spec.scl = [0.5, -3.0];
        let scaled = read_ok(&spec.bytes(), "scaled.nii");
        assert_eq!(scaled.volume.data, vec![-3.0, 2.0, -13.0, 497.0]);
        for slope in [0.0, f32::NAN] {
            spec.scl = [slope, 100.0];
            let unscaled = read_ok(&spec.bytes(), "unscaled.nii");
            assert_eq!(unscaled.volume.data, vec![0.0, 10.0, -20.0, 1000.0]);
        }
        spec.scl = [2.0, f32::NAN];
        let no_inter = read_ok(&spec.bytes(), "no-inter.nii");
        assert_eq!(no_inter.volume.data, vec![0.0, 20.0, -40.0, 2000.0]);
    }
}

#[test]
fn nan_and_inf_voxels_become_zero_with_a_warning() {
    let mut spec = Spec::new([5, 1, 1], Datatype::F32, true);
    spec.data = raw_values(
        &[1.0, f64::NAN, f64::INFINITY, -2.0, f64::NEG_INFINITY],
        Datatype::F32,
        true,
    );
    let image = read_ok(&spec.bytes(), "nan.nii");
    assert_eq!(image.volume.data, vec![1.0, 0.0, 0.0, -2.0, 0.0]);
    assert!(
        image.warnings.iter().any(|w| w.contains("3 NaN/Inf")),
        "{:?}",
        image.warnings
    );
    // float64 values beyond the f32 range overflow to Inf: zeroed and counted too.
    let mut spec = Spec::new([2, 1, 1], Datatype::F64, false);
    spec.data = raw_values(&[1.0e300, 4.0], Datatype::F64, false);
    let image = read_ok(&spec.bytes(), "huge.nii");
    assert_eq!(image.volume.data, vec![0.0, 4.0]);
    assert!(image.warnings.iter().any(|w| w.contains("1 NaN/Inf")));
}

#[test]
fn four_d_file_gives_its_first_volume_and_a_warning() {
    let mut spec = Spec::new([3, 2, 2], Datatype::U16, true);
    spec.dim = [4, 3, 2, 2, 3, 1, 1, 1];
    let values: Vec<f64> = (0..36).map(f64::from).collect();
    spec.data = raw_values(&values, Datatype::U16, true);
    for bytes in [spec.bytes(), gzip(&spec.bytes())] {
        let image = read_ok(&bytes, "series.nii");
        assert_eq!(image.full_dims, vec![3, 2, 2, 3]);
        assert_eq!(image.volume.dims, [3, 2, 2]);
        let first: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(image.volume.data, first);
        assert!(
            image
                .warnings
                .iter()
                .any(|w| w.contains("4D file (3 volumes): using the first")),
            "{:?}",
            image.warnings
        );
    }
}

#[test]
fn gzip_is_detected_by_magic_and_small_vox_offset_is_tolerated() {
    let mut spec = Spec::new([2, 2, 1], Datatype::U8, false);
    spec.data = vec![1, 2, 3, 4];
    let bytes = gzip(&spec.bytes());
    // The name says .nii, the content is gzip: read by content.
    assert_eq!(
        read_ok(&bytes, "lies.nii").volume.data,
        vec![1.0, 2.0, 3.0, 4.0]
    );
    spec.vox_offset = 0.0;
    spec.data = Vec::new();
    let mut bytes = spec.bytes(); // header only (vox_offset 0); the data follows the 352-byte header
    bytes.resize(352, 0);
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    let image = read_ok(&bytes, "offset0.nii");
    assert_eq!(image.volume.data, vec![1.0, 2.0, 3.0, 4.0]);
    assert!(image.warnings.iter().any(|w| w.contains("vox_offset")));
    // A larger vox_offset (extensions before the data) is honoured.
    let mut spec = Spec::new([2, 2, 1], Datatype::U8, true);
    spec.vox_offset = 480.0;
    spec.data = vec![9, 8, 7, 6];
    let image = read_ok(&gzip(&spec.bytes()), "ext.nii.gz");
    assert_eq!(image.volume.data, vec![9.0, 8.0, 7.0, 6.0]);
}

// ---------------------------------------------------------------------------------------------
// Orientation sources and reorientation.

#[test]
fn affine_comes_from_sform_else_qform_else_pixdim() {
    let mut spec = Spec::new([2, 2, 2], Datatype::U8, true);
    spec.data = vec![0; 8];
    spec.pixdim = [-1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0];
    // qform: 90° about z (quaternion d = sin 45°), qfac -1, offsets (5, 6, 7).
    let half = std::f32::consts::FRAC_1_SQRT_2;
    spec.quatern = [0.0, 0.0, half, 5.0, 6.0, 7.0];
    spec.qform_code = 1;
    let sform = diagonal([-3.0, 3.0, 3.0], [1.0, 2.0, 3.0]);
    let image = read_ok(&spec.clone().with_sform(&sform).bytes(), "s.nii");
    assert_eq!(image.orientation_source, OrientationSource::Sform);
    assert_eq!(image.volume.affine, sform);

    let image = read_ok(&spec.bytes(), "q.nii");
    assert_eq!(image.orientation_source, OrientationSource::Qform);
    // R = [[0,-1,0],[1,0,0],[0,0,1]], columns scaled by (2, 3, -4).
    let expected = [
        [0.0, -3.0, 0.0, 5.0],
        [2.0, 0.0, 0.0, 6.0],
        [0.0, 0.0, -4.0, 7.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_affine_close(&image.volume.affine, &expected, 1e-6);
    assert_eq!(orientation_code(&image.volume.affine), "ALI");

    spec.qform_code = 0;
    let image = read_ok(&spec.bytes(), "p.nii");
    assert_eq!(image.orientation_source, OrientationSource::Pixdim);
    assert_eq!(image.volume.affine, diagonal([2.0, 3.0, 4.0], [0.0; 3]));
}

#[test]
fn written_qform_matches_an_oblique_affine() {
    let (s, c) = 0.4f64.sin_cos();
    // Rotation about x by 0.4 rad, voxel sizes (1, 1.5, 2), x flipped (a left-handed grid).
    let affine = [
        [-1.0, 0.0, 0.0, 12.0],
        [0.0, 1.5 * c, -2.0 * s, -30.0],
        [0.0, 1.5 * s, 2.0 * c, 4.5],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let volume = Volume::from_vec([2, 3, 4], affine, (0..24).map(|v| v as f32).collect());
    let mut bytes = nifti::encode_f32(&volume, false).unwrap();
    bytes[254..256].copy_from_slice(&0i16.to_le_bytes()); // drop the sform: the qform must do
    let image = read_ok(&bytes, "oblique.nii");
    assert_eq!(image.orientation_source, OrientationSource::Qform);
    assert_affine_close(&image.volume.affine, &affine, 1e-5);
}

/// A reference object on an RAS grid: unique values, 2 mm voxels.
fn ras_reference() -> Volume<f32> {
    let affine = diagonal([2.0, 2.0, 2.0], [-4.0, -6.0, 8.0]);
    Volume::from_vec([4, 5, 6], affine, (0..120).map(|v| v as f32).collect())
}

/// The same object stored with voxel axes (source axis → RAS axis, flip) as given.
fn restored(reference: &Volume<f32>, ras_axis: [usize; 3], flip: [bool; 3]) -> Volume<f32> {
    let dims: [usize; 3] = std::array::from_fn(|a| reference.dims[ras_axis[a]]);
    // Source voxel index v maps to RAS voxel index r with r[ras_axis[a]] = flip ? n-1-v[a] : v[a].
    let mut to_ras = [[0.0; 4]; 4];
    to_ras[3][3] = 1.0;
    for a in 0..3 {
        let k = ras_axis[a];
        if flip[a] {
            to_ras[k][a] = -1.0;
            to_ras[k][3] = dims[a] as f64 - 1.0;
        } else {
            to_ras[k][a] = 1.0;
        }
    }
    let affine = brainmvp_core::volume::mat_mul(&reference.affine, &to_ras);
    let mut out = Volume::filled(dims, affine, 0.0f32);
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let v = [x, y, z];
                let mut r = [0; 3];
                for a in 0..3 {
                    r[ras_axis[a]] = if flip[a] { dims[a] - 1 - v[a] } else { v[a] };
                }
                out.set(x, y, z, reference.get(r[0], r[1], r[2]));
            }
        }
    }
    out
}

/// Every voxel's world position, keyed by its (unique) value.
fn world_by_value(volume: &Volume<f32>) -> Vec<[f64; 3]> {
    let mut worlds = vec![[f64::NAN; 3]; volume.voxel_count()];
    for z in 0..volume.dims[2] {
        for y in 0..volume.dims[1] {
            for x in 0..volume.dims[0] {
                let value = volume.get(x, y, z) as usize;
                worlds[value] = voxel_to_world(&volume.affine, [x as f64, y as f64, z as f64]);
            }
        }
    }
    worlds
}

#[test]
fn lps_and_permuted_files_give_the_same_ras_array_and_world_coordinates() {
    let reference = ras_reference();
    let lps = restored(&reference, [0, 1, 2], [true, true, false]);
    let sra = restored(&reference, [2, 0, 1], [false, false, false]);
    let ipl = restored(&reference, [2, 1, 0], [true, true, true]);
    assert_eq!(orientation_code(&lps.affine), "LPS");
    assert_eq!(orientation_code(&sra.affine), "SRA");
    assert_eq!(orientation_code(&ipl.affine), "IPL");
    let reference_worlds = world_by_value(&reference);
    for (source, label) in [(&lps, "LPS"), (&sra, "SRA"), (&ipl, "IPL")] {
        // Through a file: big-endian int16 by hand for one, our own (little-endian) writer for all.
        let mut spec = Spec::new(source.dims, Datatype::I16, true).with_sform(&source.affine);
        let values: Vec<f64> = source.data.iter().map(|&v| f64::from(v)).collect();
        spec.data = raw_values(&values, Datatype::I16, true);
        for bytes in [
            spec.bytes(),
            nifti::encode_as(source, Datatype::I16, true).unwrap(),
        ] {
            let image = read_ok(&bytes, label);
            assert_eq!(image.volume.data, source.data, "{label}");
            let (ras, reorientation) = to_ras(&image.volume);
            assert_eq!(ras.dims, reference.dims, "{label}");
            assert_eq!(ras.data, reference.data, "{label}");
            assert_affine_close(&ras.affine, &reference.affine, 1e-9);
            assert_eq!(orientation_code(&ras.affine), "RAS");
            assert_eq!(world_by_value(&image.volume), reference_worlds, "{label}");
            let back = reorientation.undo(&ras).expect("undo");
            assert_eq!(back, image.volume, "{label}");
        }
    }
}

#[test]
fn to_ras_keeps_world_positions_of_an_oblique_grid_and_undo_restores_it() {
    let (s, c) = 0.3f64.sin_cos();
    // Axes roughly (P, I, R), rotated 0.3 rad, 1.2/0.8/3 mm voxels.
    let affine = [
        [0.0, 0.0, 3.0, 17.0],
        [-1.2 * c, -0.8 * s, 0.0, 1.0],
        [1.2 * s, -0.8 * c, 0.0, -2.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let volume = Volume::from_vec([5, 3, 4], affine, (0..60).map(|v| v as f32).collect());
    assert_eq!(orientation_code(&affine), "PIR");
    let (ras, reorientation) = to_ras(&volume);
    assert_eq!(ras.dims, [4, 5, 3]);
    assert_eq!(reorientation.source_axis, [2, 0, 1]);
    assert_eq!(reorientation.flipped, [false, true, true]);
    let before = world_by_value(&volume);
    let after = world_by_value(&ras);
    for (b, a) in before.iter().zip(&after) {
        for axis in 0..3 {
            assert!((a[axis] - b[axis]).abs() < 1e-9, "{b:?} vs {a:?}");
        }
    }
    assert_eq!(reorientation.undo(&ras).expect("undo"), volume);
    let wrong = Volume::filled([5, 3, 4], ras.affine, 0.0f32);
    let err = reorientation.undo(&wrong).expect_err("dims differ");
    assert!(err.to_string().contains("[5, 3, 4]"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Real MRI files.

fn mri(path: &str) -> PathBuf {
    shared_mri().join(path)
}

/// min, sum and max in f64.
fn stats(data: &[f32]) -> (f64, f64, f64) {
    let min = data.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    let max = data.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f64 = data.iter().map(|&v| f64::from(v)).sum();
    (f64::from(min), sum, f64::from(max))
}

// Reference numbers below were computed with nibabel 5.4.2 and numpy 2.4
// (`img = nibabel.load(path); d = img.get_fdata(); nibabel.aff2axcodes(img.affine)`,
// `d.min(), d.mean(), d.max(), d.sum()`, `img.affine`).

#[test]
fn anatomical_fixture_big_endian_int16_las() {
    let image = nifti::read_path(&mri("fixtures/anatomical.nii")).expect("read");
    assert_eq!(image.volume.dims, [33, 41, 25]);
    assert_eq!(image.full_dims, vec![33, 41, 25]);
    assert_eq!(image.datatype, Datatype::I16);
    assert!(image.big_endian);
    assert_eq!(image.orientation_source, OrientationSource::Sform);
    assert_eq!(orientation_code(&image.volume.affine), "LAS");
    assert_eq!(image.volume.spacing(), [2.0, 2.0, 2.0]);
    assert_eq!(
        image.volume.affine,
        diagonal([-2.0, 2.0, 2.0], [32.0, -40.0, -16.0])
    );
    let (min, sum, max) = stats(&image.volume.data);
    assert_eq!((min, max), (-610.0, 30393.0));
    // Integers: the sum is exact (nibabel: 284166082, mean 8401.06673).
    assert_eq!(sum, 284166082.0);
    assert_eq!(image.volume.get(10, 20, 12), 10872.0);
    assert!(image.warnings.is_empty(), "{:?}", image.warnings);
}

#[test]
fn icbm152_t1_uint8_with_slope_las_2mm() {
    let image = nifti::read_path(&mri("icbm152-2mm/avg152T1.nii.gz")).expect("read");
    assert_eq!(image.volume.dims, [91, 109, 91]);
    assert_eq!(image.datatype, Datatype::U8);
    assert!(!image.big_endian);
    assert_eq!(orientation_code(&image.volume.affine), "LAS");
    assert_eq!(image.volume.spacing(), [2.0, 2.0, 2.0]);
    assert_eq!(
        image.volume.affine,
        diagonal([-2.0, 2.0, 2.0], [90.0, -126.0, -72.0])
    );
    let (min, sum, max) = stats(&image.volume.data);
    let mean = sum / image.volume.voxel_count() as f64;
    // nibabel: min 0, mean 0.273968048, max 1.00000006 (255 × scl_slope 0.003921568859).
    assert_eq!(min, 0.0);
    assert!((mean - 0.273968048).abs() < 1e-7, "{mean}");
    assert!((max - 1.0).abs() < 1e-6, "{max}");
    assert!((f64::from(image.volume.get(10, 20, 12)) - 0.062745101749897).abs() < 1e-7);
}

#[test]
fn icbm152_white_matter_is_big_endian_inside_gzip() {
    let image = nifti::read_path(&mri("icbm152-2mm/OldSeg_white.nii.gz")).expect("read");
    assert!(image.big_endian);
    assert_eq!(image.volume.dims, [91, 109, 91]);
    assert_eq!(orientation_code(&image.volume.affine), "LAS");
    let (_, sum, max) = stats(&image.volume.data);
    let mean = sum / image.volume.voxel_count() as f64;
    // nibabel: mean 0.0983884715, max 0.99607849.
    assert!((mean - 0.0983884715).abs() < 1e-7, "{mean}");
    assert!((max - 0.99607849).abs() < 1e-6, "{max}");
}

#[test]
fn colin27_uint8_ras_1mm() {
    let image = nifti::read_path(&mri("colin27/ch2.nii.gz")).expect("read");
    assert_eq!(image.volume.dims, [181, 217, 181]);
    assert_eq!(image.datatype, Datatype::U8);
    assert_eq!(orientation_code(&image.volume.affine), "RAS");
    assert_eq!(image.volume.spacing(), [1.0, 1.0, 1.0]);
    assert_eq!(
        image.volume.affine,
        diagonal([1.0; 3], [-90.0, -125.0, -71.0])
    );
    let (min, sum, max) = stats(&image.volume.data);
    assert_eq!((min, max), (0.0, 254.0));
    // nibabel: sum 317151210, mean 44.6117736.
    assert_eq!(sum, 317151210.0);
    let (ras, reorientation) = to_ras(&image.volume);
    assert_eq!(reorientation.source_axis, [0, 1, 2]);
    assert_eq!(ras, image.volume);
}

// ---------------------------------------------------------------------------------------------
// Writing to paths.

#[test]
fn write_paths_round_trip_atomically() {
    let dir = scratch("write");
    let affine = diagonal([-1.0, 1.0, 1.0], [3.0, -4.0, 5.0]);
    let image = Volume::from_vec(
        [3, 4, 5],
        affine,
        (0..60).map(|v| v as f32 * 0.25).collect(),
    );
    let labels = image.map(|v| (v * 4.0) as u8 % 5);
    for name in ["img.nii", "img.nii.gz"] {
        let path = dir.join(name);
        nifti::write_f32(&path, &image).expect("write");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), name.ends_with(".gz"));
        let read = nifti::read_path(&path).expect("read");
        assert_eq!(read.volume, image);
        assert_eq!(read.datatype, Datatype::F32);

        let label_path = dir.join(format!("seg-{name}"));
        nifti::write_u8(&label_path, &labels).expect("write");
        let read = nifti::read_path(&label_path).expect("read");
        assert_eq!(read.datatype, Datatype::U8);
        assert_eq!(
            read.volume.data,
            labels
                .data
                .iter()
                .map(|&v| f32::from(v))
                .collect::<Vec<_>>()
        );

        let int_path = dir.join(format!("int16-{name}"));
        nifti::write_as(&int_path, &image, Datatype::I16).expect("write");
        let read = nifti::read_path(&int_path).expect("read");
        assert_eq!(read.datatype, Datatype::I16);
        assert_eq!(
            read.volume.data,
            image.data.iter().map(|v| v.round()).collect::<Vec<_>>()
        );
    }
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // No temp file left behind.
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|n| !n.contains(".tmp-")));
    // A volume NIfTI-1 cannot hold is an error, not a panic, and leaves nothing behind.
    let bad = Volume {
        dims: [2, 2, 2],
        affine,
        data: vec![0.0f32; 7],
    };
    let err = nifti::write_f32(&dir.join("bad.nii"), &bad).expect_err("mismatch");
    assert!(err.to_string().contains("bad.nii"), "{err}");
    let err = nifti::encode_f32(&bad, true).expect_err("mismatch in memory");
    assert!(err.to_string().contains("need 8"), "{err}");
    let empty = Volume::filled([0, 1, 1], affine, 0u8);
    let err = nifti::encode_u8(&empty, false).expect_err("dim of 0");
    assert!(err.to_string().contains("0x1x1"), "{err}");
    let err = nifti::write_f32(&dir.join("missing/x.nii"), &image).expect_err("no folder");
    assert!(err.to_string().contains("x.nii"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Malformed input: errors naming the file, never a panic.

fn expect_error(bytes: &[u8], name: &str, cause: &str) {
    let err = read_bytes(bytes, name).expect_err(name);
    let text = err.to_string();
    assert!(text.starts_with(&format!("{name}: ")), "{text}");
    assert!(text.contains(cause), "expected {cause:?} in {text}");
    assert!(!text.contains('\n'));
}

#[test]
fn empty_truncated_and_wrong_magic_files_are_refused() {
    let good = std::fs::read(mri("fixtures/anatomical.nii")).unwrap();
    expect_error(&[], "empty.nii", "empty file");
    expect_error(&good[..200], "short.nii", "too short");
    expect_error(&good[..good.len() - 1], "cut.nii", "truncated");
    expect_error(&good[..400], "cut.nii", "truncated");
    let mut wrong = good.clone();
    wrong[344..348].copy_from_slice(b"abcd");
    expect_error(&wrong, "magic.nii", "magic");
    let mut pair = good.clone();
    pair[344..348].copy_from_slice(b"ni1\0");
    expect_error(&pair, "pair.hdr", "two-file");
    expect_error(
        b"this is plainly not an image at all",
        "text.nii",
        "too short",
    );
    expect_error(
        &vec![7u8; 1000],
        "noise.nii",
        "not a NIfTI-1 or NIfTI-2 file",
    );
    // gzip wrappers: empty content, truncated content, corrupt stream.
    expect_error(&gzip(&[]), "empty.nii.gz", "empty file");
    expect_error(&gzip(&good[..10_000]), "cut.nii.gz", "truncated");
    let compressed = gzip(&good);
    expect_error(&compressed[..compressed.len() / 2], "halfgz.nii.gz", "gzip");
    let mut corrupt = compressed.clone();
    for byte in &mut corrupt[20..60] {
        *byte ^= 0x5a;
    }
    assert!(read_bytes(&corrupt, "corrupt.nii.gz").is_err());
}

#[test]
fn absurd_headers_are_refused_before_allocating() {
    let mut spec = Spec::new([1, 1, 1], Datatype::F64, false);
    spec.data = vec![0; 8];
    // Bad dim[0], non-positive dims, unsupported datatype.
    let mut bad = spec.clone();
    bad.dim[0] = 0;
    expect_error(&bad.bytes(), "dim0.nii", "dim[0] is 0");
    bad.dim[0] = 8;
    expect_error(&bad.bytes(), "dim0.nii", "dim[0] is 8");
    let mut bad = spec.clone();
    bad.dim[3] = 0;
    expect_error(&bad.bytes(), "zero.nii", "dim[3] is 0");
    let mut bad = spec.clone();
    bad.datatype = 128;
    expect_error(&bad.bytes(), "rgb.nii", "unsupported datatype 128 (rgb24)");
    // Huge dims, with the data missing: refused by size, in plain and in gzip form.
    let mut huge = spec.clone();
    huge.dim = [7, 32767, 32767, 32767, 32767, 32767, 32767, 32767];
    expect_error(&huge.bytes(), "huge.nii", "exceed the limit");
    huge.dim = [4, 800, 800, 800, 32767, 1, 1, 1]; // 5.1e8 voxels per volume: under the limit
    expect_error(&huge.bytes(), "huge.nii", "truncated");
    // A gzip bomb: a tiny file claiming 4 GB of float64 zeros.
    huge.dim = [3, 800, 800, 800, 1, 1, 1, 1];
    expect_error(&gzip(&huge.bytes()), "bomb.nii.gz", "gzip bomb");
    // A real (incompressible) 4 MiB stream whose header claims one slab more than is there.
    huge.dim = [3, 1024, 1024, 4, 1, 1, 1, 1];
    huge.datatype = Datatype::U8.code();
    let mut state = 88172645463325252u64;
    huge.data = (0..1 << 22)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut bytes = huge.bytes();
    let mut truncated_dims = huge.clone();
    truncated_dims.dim = [3, 1024, 1024, 5, 1, 1, 1, 1];
    truncated_dims.data = Vec::new();
    bytes[..352].copy_from_slice(&truncated_dims.bytes()[..352]);
    expect_error(&gzip(&bytes), "zeros.nii.gz", "truncated");
    // Limits are configurable.
    let small = read_bytes_with_limits(
        &std::fs::read(mri("fixtures/anatomical.nii")).unwrap(),
        "anatomical.nii",
        ReadLimits { max_voxels: 1000 },
    );
    assert!(small
        .unwrap_err()
        .to_string()
        .contains("exceed the limit of 1000 voxels"));
}

#[test]
fn corrupted_real_files_never_panic() {
    // Flip bytes all over the header of a real file: every outcome is Ok or a named Err.
    let good = std::fs::read(mri("fixtures/anatomical.nii")).unwrap();
    let mut state = 0x2545f4914f6cdd1du64;
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let position = (state % 352) as usize;
            bytes[position] = (state >> 32) as u8;
        }
        if let Err(err) = read_bytes(&bytes, "fuzzed.nii") {
            assert!(err.to_string().starts_with("fuzzed.nii: "));
        }
    }
}
