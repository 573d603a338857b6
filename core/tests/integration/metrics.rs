//! Segmentation metrics against analytic shapes and brute-force references.

use brainmvp_core::metrics::{
    detect_enhancing_label, dice, hausdorff_percentile, hd95, score_brats,
    squared_distance_transform, surface_voxels, BratsRegion, RegionScores,
};
use brainmvp_core::rng::Rng;

/// A ball of `radius_mm` about `centre_mm` (voxel centres at `index · spacing`).
fn ball(dims: [usize; 3], spacing: [f64; 3], centre_mm: [f64; 3], radius_mm: f64) -> Vec<bool> {
    let mut mask = Vec::with_capacity(dims.iter().product());
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let point = [x, y, z].map(|c| c as f64);
                let squared: f64 = (0..3)
                    .map(|a| (point[a] * spacing[a] - centre_mm[a]).powi(2))
                    .sum();
                mask.push(squared <= radius_mm * radius_mm);
            }
        }
    }
    mask
}

fn voxel_diagonal(spacing: [f64; 3]) -> f64 {
    spacing.iter().map(|s| s * s).sum::<f64>().sqrt()
}

fn random_mask(dims: [usize; 3], probability: f64, rng: &mut Rng) -> Vec<bool> {
    (0..dims.iter().product::<usize>())
        .map(|_| rng.chance(probability))
        .collect()
}

fn coords(index: usize, dims: [usize; 3]) -> [usize; 3] {
    [
        index % dims[0],
        (index / dims[0]) % dims[1],
        index / (dims[0] * dims[1]),
    ]
}

/// Reference surface: a foreground voxel one of whose 6 neighbours is background, where
/// anything outside the volume counts as background.
fn reference_surface(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let at = |c: [i64; 3]| {
        (0..3).all(|a| c[a] >= 0 && c[a] < dims[a] as i64)
            && mask[c[0] as usize + dims[0] * (c[1] as usize + dims[1] * c[2] as usize)]
    };
    (0..mask.len())
        .map(|index| {
            let c = coords(index, dims).map(|v| v as i64);
            mask[index]
                && (0..3).any(|a| {
                    let mut lower = c;
                    let mut upper = c;
                    lower[a] -= 1;
                    upper[a] += 1;
                    !at(lower) || !at(upper)
                })
        })
        .collect()
}

fn distance_mm(a: usize, b: usize, dims: [usize; 3], spacing: [f64; 3]) -> f64 {
    let (ca, cb) = (coords(a, dims), coords(b, dims));
    (0..3)
        .map(|k| ((ca[k] as f64 - cb[k] as f64) * spacing[k]).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// numpy.percentile with linear interpolation.
fn numpy_percentile(mut values: Vec<f64>, percent: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = percent / 100.0 * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (rank - lo as f64)
}

/// Brute-force MONAI Hausdorff percentile: max of the two directed percentiles of
/// surface-to-surface distances.
fn reference_hausdorff(
    a: &[bool],
    b: &[bool],
    dims: [usize; 3],
    spacing: [f64; 3],
    percent: f64,
) -> f64 {
    let surface_of = |m: &[bool]| -> Vec<usize> {
        let s = reference_surface(m, dims);
        (0..s.len()).filter(|&i| s[i]).collect()
    };
    let (sa, sb) = (surface_of(a), surface_of(b));
    let directed = |from: &[usize], to: &[usize]| {
        let d: Vec<f64> = from
            .iter()
            .map(|&i| {
                to.iter()
                    .map(|&j| distance_mm(i, j, dims, spacing))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        numpy_percentile(d, percent)
    };
    directed(&sa, &sb).max(directed(&sb, &sa))
}

#[test]
fn dice_of_two_offset_spheres_matches_independent_voxel_count() {
    let dims = [48, 48, 48];
    let radius = 12.0;
    let offset = 6.0;
    let (ca, cb) = ([20.0, 24.0, 24.0], [20.0 + offset, 24.0, 24.0]);
    let a = ball(dims, [1.0; 3], ca, radius);
    let b = ball(dims, [1.0; 3], cb, radius);

    // Count the digitised spheres directly from their definitions.
    let inside = |p: [f64; 3], c: [f64; 3]| {
        (0..3).map(|k| (p[k] - c[k]).powi(2)).sum::<f64>() <= radius * radius
    };
    let (mut count_a, mut count_b, mut count_both) = (0usize, 0usize, 0usize);
    for z in 0..48 {
        for y in 0..48 {
            for x in 0..48 {
                let p = [x as f64, y as f64, z as f64];
                let (ia, ib) = (inside(p, ca), inside(p, cb));
                count_a += usize::from(ia);
                count_b += usize::from(ib);
                count_both += usize::from(ia && ib);
            }
        }
    }
    let expected = 2.0 * count_both as f64 / (count_a + count_b) as f64;
    let measured = dice(&a, &b).unwrap();
    assert!(
        (measured - expected).abs() < 1e-12,
        "{measured} vs {expected}"
    );

    // And close to the continuous value: lens volume π(4r+d)(2r−d)²/12 over the ball volume.
    let lens =
        std::f64::consts::PI * (4.0 * radius + offset) * (2.0 * radius - offset).powi(2) / 12.0;
    let continuous = lens / (4.0 / 3.0 * std::f64::consts::PI * radius.powi(3));
    assert!(
        (measured - continuous).abs() < 0.02,
        "{measured} vs {continuous}"
    );
    assert!((dice(&a, &a).unwrap() - 1.0).abs() < 1e-15);
}

#[test]
fn hd95_of_concentric_spheres_is_the_radius_difference() {
    let dims = [36, 36, 36];
    let centre = [17.5, 18.0, 17.0];
    let outer = ball(dims, [1.0; 3], centre, 12.0);
    let inner = ball(dims, [1.0; 3], centre, 7.0);
    let measured = hd95(&inner, &outer, dims, [1.0; 3]).unwrap().unwrap();
    assert!(
        (measured - 5.0).abs() <= voxel_diagonal([1.0; 3]),
        "{measured}"
    );
    // Symmetric.
    let swapped = hd95(&outer, &inner, dims, [1.0; 3]).unwrap().unwrap();
    assert!((measured - swapped).abs() < 1e-12);
}

#[test]
fn hd95_of_a_sphere_shifted_along_x_is_the_shift() {
    let dims = [40, 32, 32];
    let shift = 4usize;
    let sphere = ball(dims, [1.0; 3], [16.0, 16.0, 16.0], 10.0);
    let shifted = ball(dims, [1.0; 3], [16.0 + shift as f64, 16.0, 16.0], 10.0);
    // Shifting the mask by whole voxels is the same as shifting the ball's centre.
    assert_eq!(&shifted[shift..], &sphere[..sphere.len() - shift]);
    let measured = hd95(&sphere, &shifted, dims, [1.0; 3]).unwrap().unwrap();
    assert!(
        (measured - shift as f64).abs() <= voxel_diagonal([1.0; 3]),
        "{measured}"
    );
    // The classic Hausdorff distance (100th percentile) is the shift itself, at the poles.
    let maximum = hausdorff_percentile(&sphere, &shifted, dims, [1.0; 3], 100.0)
        .unwrap()
        .unwrap();
    assert!((maximum - shift as f64).abs() < 0.5, "{maximum}");
    assert!(measured <= maximum);
}

#[test]
fn hd95_uses_anisotropic_spacing() {
    let dims = [24, 40, 28];
    let spacing = [2.0, 1.0, 1.5];
    let centre = [23.0, 20.0, 20.0];
    let shift_voxels = 3usize;
    let sphere = ball(dims, spacing, centre, 14.0);
    let shifted = ball(
        dims,
        spacing,
        [
            centre[0] + shift_voxels as f64 * spacing[0],
            centre[1],
            centre[2],
        ],
        14.0,
    );
    let expected = shift_voxels as f64 * spacing[0];
    let measured = hd95(&sphere, &shifted, dims, spacing).unwrap().unwrap();
    assert!(
        (measured - expected).abs() <= voxel_diagonal(spacing),
        "{measured} vs {expected}"
    );

    // Concentric balls of 14 mm and 8 mm in the anisotropic grid.
    let inner = ball(dims, spacing, centre, 8.0);
    let concentric = hd95(&inner, &sphere, dims, spacing).unwrap().unwrap();
    assert!(
        (concentric - 6.0).abs() <= voxel_diagonal(spacing),
        "{concentric}"
    );

    // Scaling every spacing scales the distance exactly.
    let doubled = hd95(&sphere, &shifted, dims, spacing.map(|s| 2.0 * s))
        .unwrap()
        .unwrap();
    assert!(
        (doubled - 2.0 * measured).abs() < 1e-9,
        "{doubled} vs {measured}"
    );
    // A one-voxel x shift of a slab is seen as spacing_x mm, whatever the other spacings.
    let slab_dims = [6, 5, 4];
    let slab =
        |x0: usize| -> Vec<bool> { (0..120).map(|i| coords(i, slab_dims)[0] >= x0).collect() };
    let slab_distance = hausdorff_percentile(&slab(2), &slab(3), slab_dims, [2.5, 0.5, 7.0], 100.0)
        .unwrap()
        .unwrap();
    assert!((slab_distance - 2.5).abs() < 1e-12, "{slab_distance}");
}

#[test]
fn distance_transform_is_exact_against_brute_force() {
    let dims = [11, 9, 7];
    let spacing = [1.3, 0.7, 2.1];
    for seed in 0..4 {
        let mut rng = Rng::new(seed);
        let features = random_mask(dims, 0.06, &mut rng);
        let feature_voxels: Vec<usize> = (0..features.len()).filter(|&i| features[i]).collect();
        assert!(!feature_voxels.is_empty());
        let transform = squared_distance_transform(&features, dims, spacing).unwrap();
        for (index, &squared) in transform.iter().enumerate() {
            let expected = feature_voxels
                .iter()
                .map(|&f| distance_mm(index, f, dims, spacing).powi(2))
                .fold(f64::INFINITY, f64::min);
            assert!(
                (squared - expected).abs() < 1e-9,
                "seed {seed} voxel {index}: {squared} vs {expected}"
            );
        }
    }
    let none = squared_distance_transform(&[false; 24], [4, 3, 2], [1.0; 3]).unwrap();
    assert!(none.iter().all(|d| d.is_infinite()));
}

#[test]
fn surface_and_hausdorff_match_brute_force_references() {
    let dims = [10, 9, 8];
    let spacing = [0.9, 1.2, 2.0];
    for seed in 10..14 {
        let mut rng = Rng::new(seed);
        let a = random_mask(dims, 0.35, &mut rng);
        let b = random_mask(dims, 0.2, &mut rng);
        assert_eq!(
            surface_voxels(&a, dims).unwrap(),
            reference_surface(&a, dims)
        );
        for percent in [50.0, 95.0, 100.0] {
            let measured = hausdorff_percentile(&a, &b, dims, spacing, percent)
                .unwrap()
                .unwrap();
            let expected = reference_hausdorff(&a, &b, dims, spacing, percent);
            assert!(
                (measured - expected).abs() < 1e-9,
                "seed {seed} p{percent}: {measured} vs {expected}"
            );
        }
    }
    // A solid block's surface is its shell (interior voxels excluded).
    let block = vec![true; 60];
    let shell = surface_voxels(&block, [5, 4, 3]).unwrap();
    assert_eq!(shell.iter().filter(|&&s| s).count(), 60 - 3 * 2);
}

#[test]
fn empty_masks_follow_the_official_convention() {
    let dims = [4, 4, 4];
    let empty = vec![false; 64];
    let mut some = vec![false; 64];
    some[21] = true;
    assert_eq!(dice(&empty, &empty).unwrap(), 1.0);
    assert_eq!(dice(&some, &empty).unwrap(), 0.0);
    assert_eq!(dice(&empty, &some).unwrap(), 0.0);
    assert_eq!(hd95(&some, &empty, dims, [1.0; 3]).unwrap(), None);
    assert_eq!(hd95(&empty, &some, dims, [1.0; 3]).unwrap(), None);
    assert_eq!(hd95(&empty, &empty, dims, [1.0; 3]).unwrap(), None);
    assert_eq!(hd95(&some, &some, dims, [1.0; 3]).unwrap(), Some(0.0));
}

#[test]
fn size_mismatches_are_one_line_errors() {
    let err = dice(&[true, false], &[true]).unwrap_err();
    assert!(!err.to_string().contains('\n'));
    assert!(err.to_string().contains("2 voxels"), "{err}");
    assert!(hd95(&[true; 8], &[true; 8], [2, 2, 3], [1.0; 3]).is_err());
    assert!(hd95(&[true; 8], &[true; 8], [2, 2, 2], [1.0, 0.0, 1.0]).is_err());
    assert!(hd95(&[true; 8], &[true; 8], [usize::MAX, 2, 2], [1.0; 3]).is_err());
    assert!(score_brats(&[0; 8], &[0; 7], [2, 2, 2], [1.0; 3], 4).is_err());
    assert!(score_brats(&[0; 8], &[0; 8], [2, 2, 2], [1.0; 3], 2).is_err());
}

#[test]
fn brats_regions_and_enhancing_label_detection() {
    let labels_2021 = [0u8, 1, 2, 4, 0];
    let labels_2023 = [0u8, 1, 2, 3, 0];
    assert_eq!(detect_enhancing_label(&labels_2021), Some(4));
    assert_eq!(detect_enhancing_label(&labels_2023), Some(3));
    assert_eq!(detect_enhancing_label(&[0, 1, 2]), None);
    assert_eq!(detect_enhancing_label(&[0, 3, 4]), None);
    for (labels, et) in [(labels_2021, 4), (labels_2023, 3)] {
        assert_eq!(
            BratsRegion::TumourCore.mask(&labels, et),
            [false, true, false, true, false]
        );
        assert_eq!(
            BratsRegion::WholeTumour.mask(&labels, et),
            [false, true, true, true, false]
        );
        assert_eq!(
            BratsRegion::Enhancing.mask(&labels, et),
            [false, false, false, true, false]
        );
    }
    // With the 2023 convention, a 4 is no tumour label at all.
    assert_eq!(BratsRegion::WholeTumour.mask(&[4, 3], 3), [false, true]);
    let names: Vec<&str> = BratsRegion::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["TC", "WT", "ET"]);
}

#[test]
fn score_brats_gives_hand_computed_values_for_both_label_sets() {
    // A line of voxels: every foreground voxel is on the surface (volume edge in y and z).
    let dims = [8, 1, 1];
    let truth_2021 = [0u8, 1, 1, 2, 2, 4, 4, 0];
    let prediction_2021 = [0u8, 1, 2, 2, 2, 4, 0, 0];
    let expected = |scale: f64| {
        [
            // TC: truth {1,2,5,6}, prediction {1,5}; truth→prediction distances 0,1,0,1.
            RegionScores {
                dice: 2.0 / 3.0,
                hd95: Some(1.0 * scale),
            },
            // WT: truth {1..6}, prediction {1..5}; distances 0,0,0,0,0,1 → p95 = 0.75.
            RegionScores {
                dice: 10.0 / 11.0,
                hd95: Some(0.75 * scale),
            },
            // ET: truth {5,6}, prediction {5}; distances 0,1 → p95 = 0.95.
            RegionScores {
                dice: 2.0 / 3.0,
                hd95: Some(0.95 * scale),
            },
        ]
    };
    let to_2023 = |labels: [u8; 8]| labels.map(|l| if l == 4 { 3 } else { l });
    for (scale, prediction, truth, et) in [
        (1.0, prediction_2021, truth_2021, 4),
        (2.0, prediction_2021, truth_2021, 4),
        (1.0, to_2023(prediction_2021), to_2023(truth_2021), 3),
    ] {
        let scores = score_brats(&prediction, &truth, dims, [scale, 1.0, 1.0], et).unwrap();
        for (got, want) in scores.iter().zip(expected(scale)) {
            assert!((got.dice - want.dice).abs() < 1e-12, "{got:?} vs {want:?}");
            let (g, w) = (got.hd95.unwrap(), want.hd95.unwrap());
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }
    // No enhancing tumour anywhere: ET Dice is 1 and its HD95 undefined.
    let no_et = [0u8, 1, 1, 2, 2, 0, 0, 0];
    let scores = score_brats(&no_et, &no_et, dims, [1.0; 3], 4).unwrap();
    assert_eq!(
        scores[2],
        RegionScores {
            dice: 1.0,
            hd95: None
        }
    );
    assert_eq!(
        scores[0],
        RegionScores {
            dice: 1.0,
            hd95: Some(0.0)
        }
    );
}
