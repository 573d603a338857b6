//! Preprocessing: resampling against analytic volumes, percentile scaling, symmetric crop, the
//! full pipeline and its inverse.

use crate::support::{scratch, shared_mri};
use brainmvp_core::preprocess::{resample_linear, resample_nearest, resampled_grid};
use brainmvp_core::volume::voxel_to_world;
use brainmvp_core::{Affine, Volume};

fn diagonal_affine(spacing: [f64; 3], origin: [f64; 3]) -> Affine {
    [
        [spacing[0], 0.0, 0.0, origin[0]],
        [0.0, spacing[1], 0.0, origin[1]],
        [0.0, 0.0, spacing[2], origin[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// A volume whose value at each voxel is `field(world position)`.
fn sample_field(dims: [usize; 3], affine: Affine, field: impl Fn([f64; 3]) -> f64) -> Volume<f32> {
    let mut volume = Volume::filled(dims, affine, 0.0f32);
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let world = voxel_to_world(&affine, [x as f64, y as f64, z as f64]);
                volume.set(x, y, z, field(world) as f32);
            }
        }
    }
    volume
}

fn ramp(world: [f64; 3]) -> f64 {
    0.5 * world[0] - 0.25 * world[1] + 2.0 * world[2] + 1.0
}

/// Every voxel of `volume` equals `field` at its world position.
fn assert_matches_field(volume: &Volume<f32>, field: impl Fn([f64; 3]) -> f64, tolerance: f64) {
    let [nx, ny, nz] = volume.dims;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let world = voxel_to_world(&volume.affine, [x as f64, y as f64, z as f64]);
                let expected = field(world);
                let got = volume.get(x, y, z) as f64;
                assert!(
                    (got - expected).abs() <= tolerance,
                    "voxel ({x},{y},{z}) at {world:?}: got {got}, expected {expected}"
                );
            }
        }
    }
}

#[test]
fn linear_2mm_to_1mm_is_exact_on_a_ramp() {
    let affine = diagonal_affine([2.0, 2.0, 2.0], [10.0, -4.0, 3.0]);
    let source = sample_field([5, 4, 3], affine, ramp);
    let resampled = resample_linear(&source, [1.0, 1.0, 1.0]);
    // MONAI convention: first and last voxel centres kept, (n - 1) * 2 + 1 voxels.
    assert_eq!(resampled.dims, [9, 7, 5]);
    assert_eq!(resampled.spacing(), [1.0, 1.0, 1.0]);
    assert_eq!(
        resampled.affine,
        diagonal_affine([1.0; 3], [10.0, -4.0, 3.0])
    );
    assert_matches_field(&resampled, ramp, 1e-4);
}

#[test]
fn linear_anisotropic_1x1x3_to_1mm_is_exact_on_a_ramp() {
    let affine = diagonal_affine([1.0, 1.0, 3.0], [-2.0, 5.0, -7.5]);
    let field = |w: [f64; 3]| ramp(w) + 0.1 * w[0] * w[1]; // bilinear in x, y: still exact
    let source = sample_field([4, 3, 5], affine, field);
    let resampled = resample_linear(&source, [1.0, 1.0, 1.0]);
    assert_eq!(resampled.dims, [4, 3, 13]);
    assert_eq!(resampled.spacing(), [1.0, 1.0, 1.0]);
    assert_matches_field(&resampled, field, 1e-4);
    // Unchanged axes copy the source exactly.
    assert_eq!(resampled.get(2, 1, 3), source.get(2, 1, 1));
}

#[test]
fn linear_resampling_follows_flipped_and_permuted_axes() {
    // LAS with x and y swapped in voxel space: the world field must still be reproduced.
    let affine = [
        [0.0, -2.0, 0.0, 40.0],
        [1.5, 0.0, 0.0, -10.0],
        [0.0, 0.0, 2.5, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let source = sample_field([6, 5, 4], affine, ramp);
    let resampled = resample_linear(&source, [0.5, 1.0, 1.25]);
    assert_eq!(resampled.dims, [16, 9, 7]);
    let spacing = resampled.spacing();
    assert!((spacing[0] - 0.5).abs() < 1e-12 && (spacing[2] - 1.25).abs() < 1e-12);
    assert_matches_field(&resampled, ramp, 1e-4);
}

#[test]
fn downsampling_by_two_picks_every_other_voxel() {
    let affine = diagonal_affine([1.0; 3], [0.0; 3]);
    let source = sample_field([9, 7, 5], affine, ramp);
    let linear = resample_linear(&source, [2.0, 2.0, 2.0]);
    let nearest = resample_nearest(&source, [2.0, 2.0, 2.0]);
    assert_eq!(linear.dims, [5, 4, 3]);
    assert_eq!(linear, nearest);
    assert_eq!(linear.get(3, 2, 1), source.get(6, 4, 2));
}

#[test]
fn non_integer_ratio_rounds_the_extent_plus_one_as_monai() {
    // 10 voxels at 1.5 mm span 13.5 mm: MONAI's `np.round(13.5 + 1)` = 14 voxels at 1 mm (half
    // to even; MONAI 1.6.1's Spacing gives 14, values 0..=13), not round(13.5) + 1 = 15.
    let affine = diagonal_affine([1.5, 1.0, 1.0], [0.0; 3]);
    let source = sample_field([10, 2, 2], affine, |w| w[0]);
    let resampled = resample_linear(&source, [1.0, 1.0, 1.0]);
    assert_eq!(resampled.dims, [14, 2, 2]);
    for x in 0..14 {
        assert!((resampled.get(x, 1, 1) - x as f32).abs() < 1e-5);
    }
}

#[test]
fn output_voxels_past_the_last_centre_take_the_border_value() {
    // 3 voxels at 1.8 mm span 3.6 mm: np.round(4.6) = 5 voxels at 1 mm, the last at 4 mm, 0.4 mm
    // past the last centre, takes the border value (MONAI 1.6.1: 0, 1, 2, 3, 3.6).
    let affine = diagonal_affine([1.8, 1.0, 1.0], [0.0; 3]);
    let source = sample_field([3, 2, 2], affine, |w| w[0]);
    let resampled = resample_linear(&source, [1.0, 1.0, 1.0]);
    assert_eq!(resampled.dims, [5, 2, 2]);
    assert!((resampled.get(3, 0, 0) - 3.0).abs() < 1e-5);
    assert_eq!(resampled.get(4, 0, 0), 3.6);
}

#[test]
fn nearest_keeps_label_values() {
    let affine = diagonal_affine([2.0, 2.0, 3.0], [1.0, 2.0, 3.0]);
    let labels = [0u8, 1, 2, 4];
    let mut source = Volume::filled([7, 6, 5], affine, 0u8);
    for (i, value) in source.data.iter_mut().enumerate() {
        *value = labels[(i * 7 + i / 11) % 4];
    }
    let resampled = resample_nearest(&source, [1.0, 1.0, 1.0]);
    assert_eq!(resampled.dims, [13, 11, 13]);
    assert!(resampled.data.iter().all(|v| labels.contains(v)));
    // Output voxels on source centres copy them exactly.
    for (x, y, z) in [(0, 0, 0), (3, 2, 1), (6, 5, 4)] {
        assert_eq!(resampled.get(2 * x, 2 * y, 3 * z), source.get(x, y, z));
    }
    // Between centres the nearest one wins: 1 mm past a 2 mm centre is a tie (to even), 2 mm
    // past a 3 mm centre is nearer the next one.
    assert_eq!(resampled.get(3, 0, 0), source.get(2, 0, 0));
    assert_eq!(resampled.get(0, 0, 2), source.get(0, 0, 1));
    assert_eq!(resampled.get(0, 0, 1), source.get(0, 0, 0));
    assert_eq!(resampled.affine, diagonal_affine([1.0; 3], [1.0, 2.0, 3.0]));
}

#[test]
fn resampled_grid_maps_mni_2mm_onto_mni_1mm() {
    let affine = [
        [-2.0, 0.0, 0.0, 90.0],
        [0.0, 2.0, 0.0, -126.0],
        [0.0, 0.0, 2.0, -72.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let (dims, new_affine) = resampled_grid([91, 109, 91], &affine, [1.0; 3]);
    assert_eq!(dims, [181, 217, 181]);
    assert_eq!(new_affine[0], [-1.0, 0.0, 0.0, 90.0]);
    // An unusable spacing leaves the axis alone.
    let (dims, _) = resampled_grid([91, 109, 91], &affine, [f64::NAN, 0.0, 2.0]);
    assert_eq!(dims, [91, 109, 91]);
}

// ---------------------------------------------------------------------------------------------
// Percentile scaling.

use brainmvp_core::preprocess::{
    centred_foreground_box, foreground_box, percentile, preprocess_images, scale_percentiles,
    scale_percentiles_clipped, CropBox, PreprocessConfig,
};
use brainmvp_core::Modality;

/// 0..=n in a scrambled order (multiplication by a unit modulo n + 1).
fn scrambled_ramp(n: usize) -> Vec<f32> {
    (0..=n).map(|i| ((i * 37) % (n + 1)) as f32).collect()
}

#[test]
fn percentiles_interpolate_like_numpy() {
    let values = scrambled_ramp(100);
    assert_eq!(percentile(&values, 5.0), Some(5.0));
    assert_eq!(percentile(&values, 95.0), Some(95.0));
    assert_eq!(percentile(&values, 0.0), Some(0.0));
    assert_eq!(percentile(&values, 100.0), Some(100.0));
    // 0..=10: the 5th percentile sits at rank 0.5, between 0 and 1; the 95th at rank 9.5.
    let values = scrambled_ramp(10);
    assert_eq!(percentile(&values, 5.0), Some(0.5));
    assert_eq!(percentile(&values, 95.0), Some(9.5));
    assert_eq!(percentile(&[], 50.0), None);
}

#[test]
fn percentile_scaling_maps_5_to_0_and_95_to_1_clipped() {
    let values = scrambled_ramp(100);
    let volume = Volume::from_vec([101, 1, 1], diagonal_affine([1.0; 3], [0.0; 3]), values);
    let (scaled, bounds) = scale_percentiles(&volume, 5.0, 95.0);
    assert_eq!(bounds, [5.0, 95.0]);
    for (&input, &output) in volume.data.iter().zip(&scaled.data) {
        let expected = ((input - 5.0) / 90.0).clamp(0.0, 1.0);
        assert!((output - expected).abs() < 1e-6, "{input} -> {output}");
    }
    let count = |v: f32| scaled.data.iter().filter(|&&x| x == v).count();
    assert_eq!(count(0.0), 6); // 0..=5
    assert_eq!(count(1.0), 6); // 95..=100
                               // Unclipped (MONAI clip=False): the same line, continued beyond both percentiles.
    let (unclipped, bounds) = scale_percentiles_clipped(&volume, 5.0, 95.0, false);
    assert_eq!(bounds, [5.0, 95.0]);
    for (&input, &output) in volume.data.iter().zip(&unclipped.data) {
        assert!(
            (output - (input - 5.0) / 90.0).abs() < 1e-6,
            "{input} -> {output}"
        );
    }
    assert!(unclipped.data.iter().any(|&v| v > 1.05) && unclipped.data.iter().any(|&v| v < -0.05));
}

// ---------------------------------------------------------------------------------------------
// Symmetric foreground crop.

/// The official `CenterCropForeground.compute_bounding_box`, written out independently:
/// centre ± the larger distance from the centre to the box ends, truncated to integers.
fn official_centred_box(dims: [usize; 3], start: [usize; 3], end: [usize; 3]) -> CropBox {
    let mut out = CropBox {
        start: [0; 3],
        size: [0; 3],
    };
    for axis in 0..3 {
        let centre = dims[axis] as f64 / 2.0;
        let distance = (start[axis] as f64 - centre)
            .abs()
            .max((end[axis] as f64 - centre).abs());
        let low = (centre - distance) as usize;
        let high = (centre + distance) as usize;
        out.start[axis] = low;
        out.size[axis] = high - low;
    }
    out
}

#[test]
fn symmetric_crop_around_an_off_centre_blob() {
    let dims = [20, 17, 12];
    let mut first = Volume::filled(dims, diagonal_affine([1.0; 3], [5.0, 6.0, 7.0]), 0.0f32);
    let mut second = first.clone();
    // Blob across the two modalities: x 3..=8, y 5..=12, z 6..=10.
    for (x, y, z) in [(3, 7, 8), (8, 12, 6), (5, 5, 10)] {
        first.set(x, y, z, 1.0);
    }
    second.set(4, 9, 9, 2.0);
    second.set(6, 6, 7, -3.0); // not foreground (not above 0)
    let foreground = foreground_box(&[&first, &second], 0.0).unwrap();
    assert_eq!(
        foreground,
        CropBox {
            start: [3, 5, 6],
            size: [6, 8, 5]
        }
    );
    let centred = centred_foreground_box(&[&first, &second], 0.0);
    assert_eq!(centred, official_centred_box(dims, [3, 5, 6], [9, 13, 11]));
    // Margins: x min(3, 11) = 3, y min(5, 4) = 4, z min(6, 1) = 1.
    assert_eq!(
        centred,
        CropBox {
            start: [3, 4, 1],
            size: [14, 9, 10]
        }
    );
    assert!(centred.is_centred_in(dims));
    // A higher threshold drops the value 1 voxels.
    let only_two = foreground_box(&[&first, &second], 1.5).unwrap();
    assert_eq!(
        only_two,
        CropBox {
            start: [4, 9, 9],
            size: [1, 1, 1]
        }
    );
    assert_eq!(foreground_box(&[&first], 5.0), None);
    assert_eq!(centred_foreground_box(&[&first], 5.0), CropBox::full(dims));
}

#[test]
fn crop_moves_the_affine_and_uncrop_restores() {
    use brainmvp_core::preprocess::crop::{crop, uncrop};
    let affine = diagonal_affine([2.0, 1.0, 3.0], [-10.0, 4.0, 1.0]);
    let source = sample_field([8, 7, 6], affine, ramp);
    let crop_box = CropBox {
        start: [2, 1, 3],
        size: [4, 5, 2],
    };
    let cropped = crop(&source, &crop_box);
    assert_eq!(cropped.dims, [4, 5, 2]);
    assert_eq!(cropped.get(1, 2, 1), source.get(3, 3, 4));
    assert_matches_field(&cropped, ramp, 1e-4);
    let back = uncrop(&cropped, &crop_box, source.dims, source.affine);
    assert_eq!(back.get(3, 3, 4), source.get(3, 3, 4));
    assert_eq!(back.get(0, 0, 0), 0.0);
    let inside = back.data.iter().filter(|&&v| v != 0.0).count();
    assert!(inside <= 4 * 5 * 2);
}

// ---------------------------------------------------------------------------------------------
// The whole pipeline and its inverse.

use brainmvp_core::nifti::orientation_code;

/// A 2 mm LAS subject: two modalities with an off-centre ellipsoidal "head", and a label map well
/// inside it.
fn synthetic_subject(
    spacing: f64,
    dims: [usize; 3],
) -> (Vec<(Modality, Volume<f32>)>, Volume<f32>) {
    let affine = [
        [-spacing, 0.0, 0.0, 30.0],
        [0.0, spacing, 0.0, -18.0],
        [0.0, 0.0, spacing, -12.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    // Head centre (world mm) off the grid centre; radii in mm.
    let centre = [16.0, 2.0, 4.0];
    let radii = [14.0, 12.0, 9.0];
    let inside = move |w: [f64; 3], scale: f64| {
        (0..3)
            .map(|a| ((w[a] - centre[a]) / (radii[a] * scale)).powi(2))
            .sum::<f64>()
            < 1.0
    };
    let t1 = sample_field(dims, affine, |w| {
        if inside(w, 1.0) {
            50.0 + w[0] + 0.5 * w[2]
        } else {
            0.0
        }
    });
    let t2 = sample_field(dims, affine, |w| {
        if inside(w, 1.0) {
            200.0 - w[1]
        } else {
            0.0
        }
    });
    let label = sample_field(dims, affine, |w| {
        if inside(w, 0.35) {
            4.0
        } else if inside(w, 0.6) {
            1.0
        } else {
            0.0
        }
    });
    (vec![(Modality::T1, t1), (Modality::T2, t2)], label)
}

#[test]
fn pipeline_resamples_crops_scales_and_restores_a_2mm_las_subject() {
    let (images, label) = synthetic_subject(2.0, [24, 20, 16]);
    let config = PreprocessConfig::default();
    let subject = preprocess_images("subj", images, Some(label.clone()), &config).unwrap();
    let record = &subject.record;
    assert_eq!(record.resampled_dims, [47, 39, 31]);
    assert_eq!(orientation_code(&record.resampled_affine), "RAS");
    assert!(
        record.crop.is_centred_in(record.resampled_dims),
        "{:?}",
        record.crop
    );
    assert!(record
        .crop
        .size
        .iter()
        .zip(record.resampled_dims)
        .any(|(c, d)| *c < d));
    for (modality, volume) in &subject.images {
        assert_eq!(volume.dims, record.crop.size, "{modality}");
        assert_eq!(volume.spacing(), [1.0; 3]);
        assert_eq!(orientation_code(&volume.affine), "RAS");
        assert!(volume.data.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(volume.data.contains(&0.0) && volume.data.contains(&1.0));
    }
    let preprocessed_label = subject.label.as_ref().unwrap();
    assert_eq!(preprocessed_label.dims, record.crop.size);
    assert!(preprocessed_label
        .data
        .iter()
        .all(|v| [0, 1, 4].contains(v)));
    // The crop's origin is the world position of its first voxel in the resampled grid.
    let start = record.crop.start.map(|s| s as f64);
    let expected_origin = voxel_to_world(&record.resampled_affine, start);
    for (row, expected) in preprocessed_label.affine.iter().zip(expected_origin) {
        assert!((row[3] - expected).abs() < 1e-9);
    }
    // 2 mm → 1 mm → 2 mm by nearest neighbour is exact, and the label lies inside the crop.
    let restored = record.restore(preprocessed_label).unwrap();
    assert_eq!(restored.dims, label.dims);
    assert_eq!(restored.affine, label.affine);
    assert_eq!(
        restored.data,
        label.data.iter().map(|&v| v as u8).collect::<Vec<_>>()
    );
}

#[test]
fn restore_is_the_identity_on_a_1mm_subject() {
    let (images, label) = synthetic_subject(1.0, [40, 36, 28]);
    let subject =
        preprocess_images("one", images, Some(label.clone()), &Default::default()).unwrap();
    // No resampling at 1 mm: the resampled grid is the RAS grid.
    assert_eq!(subject.record.resampled_dims, [40, 36, 28]);
    let restored = subject
        .record
        .restore(subject.label.as_ref().unwrap())
        .unwrap();
    assert_eq!(restored.affine, label.affine);
    assert_eq!(
        restored.data,
        label.data.iter().map(|&v| v as u8).collect::<Vec<_>>()
    );
    // A volume of the wrong size is refused.
    let wrong = Volume::filled([3, 3, 3], subject.record.resampled_affine, 0u8);
    assert!(subject.record.restore(&wrong).is_err());
}

#[test]
fn scaling_without_recrop_puts_the_percentiles_at_0_and_1() {
    let (images, _) = synthetic_subject(2.0, [24, 20, 16]);
    let config = PreprocessConfig {
        recrop_after_scaling: false,
        ..Default::default()
    };
    let subject = preprocess_images("subj", images, None, &config).unwrap();
    for (modality, volume) in &subject.images {
        let n = volume.data.len() as f64;
        let at_zero = volume.data.iter().filter(|&&v| v == 0.0).count() as f64 / n;
        let at_one = volume.data.iter().filter(|&&v| v == 1.0).count() as f64 / n;
        assert!(
            at_zero >= 0.05 && at_one >= 0.05,
            "{modality}: {at_zero} {at_one}"
        );
        let inside = volume.data.iter().filter(|&&v| v > 0.0 && v < 1.0).count() as f64 / n;
        assert!(inside > 0.1, "{modality}: {inside}");
    }
}

#[test]
fn inconsistent_inputs_are_refused_with_the_name() {
    let (mut images, label) = synthetic_subject(2.0, [24, 20, 16]);
    let config = PreprocessConfig::default();
    // A modality on another grid is resampled onto the first image's through world space...
    let mut shifted = images.clone();
    shifted[1].1.affine[0][3] += 1.0;
    let subject = preprocess_images("s1", shifted.clone(), None, &config).unwrap();
    let reference = preprocess_images("s1", images.clone(), None, &config).unwrap();
    assert_ne!(subject.images[1].1.data, reference.images[1].1.data);
    // ...and refused, with its name, when the two share no world space.
    shifted[1].1.affine[0][3] += 10_000.0;
    let err = preprocess_images("s1", shifted, None, &config).unwrap_err();
    assert_eq!(err.context, "s1 t2");
    assert!(err.cause.contains("does not overlap s1 "), "{err}");

    let mut bad_label = label.clone();
    bad_label.data[5] = 1.5;
    let err = preprocess_images("s1", images.clone(), Some(bad_label), &config).unwrap_err();
    assert_eq!(err.context, "s1 label");

    let mut far_affine = label.affine;
    far_affine[2][3] -= 10_000.0;
    let far_label = Volume::filled([4, 4, 4], far_affine, 0.0f32);
    let err = preprocess_images("s1", images.clone(), Some(far_label), &config).unwrap_err();
    assert_eq!(err.context, "s1 label");

    images.push(images[0].clone());
    let err = preprocess_images("s1", images.clone(), None, &config).unwrap_err();
    assert!(err.cause.contains("given twice"), "{err}");

    let huge = PreprocessConfig {
        target_spacing_mm: 0.01,
        ..Default::default()
    };
    images.pop();
    let err = preprocess_images("s1", images.clone(), None, &huge).unwrap_err();
    assert!(err.cause.contains("over the bound"), "{err}");
    let backwards = PreprocessConfig {
        lower_percentile: 95.0,
        upper_percentile: 5.0,
        ..Default::default()
    };
    assert!(preprocess_images("s1", images, None, &backwards).is_err());
}

// ---------------------------------------------------------------------------------------------
// A real subject from files: the ICBM152 2 mm templates (LAS) as a one-subject BraTS-style cohort.

#[test]
fn preprocess_subject_on_icbm152_files() {
    use brainmvp_core::cohort::discover;
    use brainmvp_core::preprocess::preprocess_subject;
    let source = shared_mri().join("icbm152-2mm");
    let root = scratch("preprocess-icbm");
    let subject_dir = root.join("icbm");
    std::fs::create_dir_all(&subject_dir).unwrap();
    for (file, modality) in [("avg152T1", "t1"), ("avg152T2", "t2"), ("avg152PD", "pd")] {
        let from = source.join(format!("{file}.nii.gz"));
        std::fs::copy(&from, subject_dir.join(format!("icbm_{modality}.nii.gz"))).unwrap();
    }
    // A label map from the tissue maps: 1 where white matter > 0.5, 2 where grey matter > 0.5.
    let read = |name: &str| {
        brainmvp_core::nifti::read_path(&source.join(name))
            .unwrap()
            .volume
    };
    let (white, grey) = (read("OldSeg_white.nii.gz"), read("OldSeg_grey.nii.gz"));
    let label = white.map(|_| 0u8);
    let label = Volume {
        data: white
            .data
            .iter()
            .zip(&grey.data)
            .map(|(&w, &g)| {
                if w > 0.5 {
                    1
                } else if g > 0.5 {
                    2
                } else {
                    0
                }
            })
            .collect(),
        ..label
    };
    brainmvp_core::nifti::write_u8(&subject_dir.join("icbm_seg.nii.gz"), &label).unwrap();

    let cohort = discover(&root).unwrap();
    assert_eq!(cohort.subjects.len(), 1);
    let files = &cohort.subjects[0];
    assert_eq!(
        files.modalities(),
        [Modality::T1, Modality::T2, Modality::Pd]
    );
    let subject = preprocess_subject(files, &PreprocessConfig::default()).unwrap();
    std::fs::remove_dir_all(&root).unwrap();

    let record = &subject.record;
    assert_eq!(orientation_code(&record.reorientation.source_affine), "LAS");
    // 91 x 109 x 91 at 2 mm → the 1 mm MNI grid.
    assert_eq!(record.resampled_dims, [181, 217, 181]);
    assert!(
        record.crop.is_centred_in(record.resampled_dims),
        "{:?}",
        record.crop
    );
    // The templates' head touches a border of the grid on every axis (x from 0, y to 108, z
    // from 0 on T1 even above 0.15), so the symmetric crop can cut nothing: the official
    // behaviour. The Colin27 test below shows a real crop.
    assert_eq!(record.crop, CropBox::full([181, 217, 181]));
    for (modality, volume) in &subject.images {
        assert_eq!(volume.dims, record.crop.size);
        let spacing = volume.spacing();
        assert!(
            spacing.iter().all(|s| (s - 1.0).abs() < 1e-9),
            "{modality}: {spacing:?}"
        );
        assert_eq!(orientation_code(&volume.affine), "RAS");
        assert!(
            volume.data.iter().all(|v| (0.0..=1.0).contains(v)),
            "{modality}"
        );
        let mean = volume.data.iter().map(|&v| v as f64).sum::<f64>() / volume.data.len() as f64;
        assert!(mean > 0.1 && mean < 0.9, "{modality}: mean {mean}");
    }
    // The label goes back onto the 2 mm LAS grid exactly (all of it lies inside the crop).
    let restored = record.restore(subject.label.as_ref().unwrap()).unwrap();
    assert_eq!(restored.dims, [91, 109, 91]);
    assert_eq!(restored.affine, label.affine);
    assert_eq!(restored.data, label.data);
}

#[test]
fn colin27_brain_is_cropped_symmetrically_and_restored() {
    let source = shared_mri().join("colin27");
    let read = |name: &str| {
        brainmvp_core::nifti::read_path(&source.join(name))
            .unwrap()
            .volume
    };
    let brain = read("ch2bet.nii.gz");
    let atlas = read("aal.nii.gz");
    let subject = preprocess_images(
        "colin27",
        vec![(Modality::T1, brain.clone())],
        Some(atlas.clone()),
        &PreprocessConfig::default(),
    )
    .unwrap();
    let record = &subject.record;
    // Already 1 mm RAS: no resampling, and the skull-stripped brain leaves margins to crop.
    assert_eq!(record.resampled_dims, brain.dims);
    assert!(record.crop.is_centred_in(brain.dims), "{:?}", record.crop);
    assert!(
        (0..3).all(|axis| record.crop.size[axis] < brain.dims[axis]),
        "{:?}",
        record.crop
    );
    // Every brain voxel lies inside the crop.
    let end = record.crop.end();
    for z in 0..brain.dims[2] {
        for y in 0..brain.dims[1] {
            for x in 0..brain.dims[0] {
                let inside = [x, y, z]
                    .iter()
                    .enumerate()
                    .all(|(axis, &i)| i >= record.crop.start[axis] && i < end[axis]);
                assert!(inside || brain.get(x, y, z) <= 0.0, "({x},{y},{z}) cut off");
            }
        }
    }
    let (_, t1) = &subject.images[0];
    assert!(t1.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let restored = record.restore(subject.label.as_ref().unwrap()).unwrap();
    assert_eq!(restored.affine, atlas.affine);
    // Exactly the atlas, less its labels outside the crop box (a few voxels the brain-extracted
    // image has as background): those are lost by the crop.
    let mut expected = atlas.map(|v| v as u8);
    let mut lost = 0;
    for z in 0..atlas.dims[2] {
        for y in 0..atlas.dims[1] {
            for x in 0..atlas.dims[0] {
                let inside = [x, y, z]
                    .iter()
                    .enumerate()
                    .all(|(axis, &i)| i >= record.crop.start[axis] && i < end[axis]);
                if !inside && expected.get(x, y, z) != 0 {
                    expected.set(x, y, z, 0);
                    lost += 1;
                }
            }
        }
    }
    assert!(lost < 1000, "{lost}");
    assert_eq!(restored.data, expected.data);
}
