//! Preprocessing: resampling against analytic volumes, percentile scaling, symmetric crop, the
//! full pipeline and its inverse.

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
fn non_integer_ratio_clamps_to_the_border() {
    // 10 voxels at 1.5 mm span 13.5 mm: round_ties_even(13.5) + 1 = 15 voxels at 1 mm; the last
    // one sits 0.5 mm past the last source centre and takes the border value.
    let affine = diagonal_affine([1.5, 1.0, 1.0], [0.0; 3]);
    let source = sample_field([10, 2, 2], affine, |w| w[0]);
    let resampled = resample_linear(&source, [1.0, 1.0, 1.0]);
    assert_eq!(resampled.dims, [15, 2, 2]);
    for x in 0..14 {
        assert!((resampled.get(x, 1, 1) - x as f32).abs() < 1e-5);
    }
    assert_eq!(resampled.get(14, 0, 0), 13.5);
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
