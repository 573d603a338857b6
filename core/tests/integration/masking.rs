//! Block masking: exact kept-block counts, whole blocks, `apply` touching only masked voxels,
//! reproducibility per stream, uniform block frequencies, the burn tensor, invalid configs.

use brainmvp_core::pretext::masking::{BlockMask, MaskConfig};
use brainmvp_core::rng::Rng;
use burn::backend::Flex;

fn config(block_size: usize, mask_ratio: f64) -> MaskConfig {
    MaskConfig {
        block_size,
        mask_ratio,
    }
}

#[test]
fn keeps_exactly_floor_of_n_times_one_minus_r_blocks() {
    // (crop, block, ratio, expected blocks, expected kept)
    let cases = [
        ([96, 96, 96], 8, 0.8, 1728, 345),
        ([96, 96, 96], 8, 0.875, 1728, 216),
        ([96, 96, 96], 8, 0.0, 1728, 1728),
        ([64, 32, 16], 8, 0.75, 64, 16),
        ([24, 16, 8], 8, 0.5, 6, 3),
        ([30, 10, 5], 5, 0.3, 12, 8),
    ];
    let mut rng = Rng::new(7);
    for (crop, block, ratio, blocks, kept) in cases {
        let mask = BlockMask::random(&mut rng, crop, &config(block, ratio)).unwrap();
        assert_eq!(mask.kept.len(), blocks, "{crop:?} {block} {ratio}");
        assert_eq!(mask.kept_count(), kept, "{crop:?} {block} {ratio}");
        assert_eq!(mask.masked_count(), blocks - kept);
    }
}

#[test]
fn every_block_is_entirely_masked_or_entirely_kept() {
    let crop = [32, 24, 16];
    let mask = BlockMask::random(&mut Rng::new(3), crop, &MaskConfig::default()).unwrap();
    let voxels = mask.voxel_mask();
    assert_eq!(voxels.len(), 32 * 24 * 16);
    let mut masked_voxels = 0;
    for z in 0..crop[2] {
        for y in 0..crop[1] {
            for x in 0..crop[0] {
                let block = x / 8 + 4 * (y / 8 + 3 * (z / 8));
                let masked = !mask.kept[block];
                assert_eq!(mask.is_masked_voxel(x, y, z), masked);
                let value = voxels[x + crop[0] * (y + crop[1] * z)];
                assert_eq!(value, if masked { 1.0 } else { 0.0 });
                masked_voxels += masked as usize;
            }
        }
    }
    assert_eq!(masked_voxels, mask.masked_count() * 512);
}

#[test]
fn apply_touches_only_masked_voxels() {
    let crop = [24, 16, 16];
    let voxels = 24 * 16 * 16;
    let mut rng = Rng::new(11);
    let image: Vec<f32> = (0..voxels).map(|_| rng.normal() as f32).collect();
    let replacement: Vec<f32> = (0..voxels).map(|_| 10.0 + rng.normal() as f32).collect();
    let mask = BlockMask::random(&mut rng, crop, &MaskConfig::paper()).unwrap();
    let mixed = mask.apply(&image, &replacement).unwrap();
    let flags = mask.voxel_mask();
    let mut replaced = 0;
    for i in 0..voxels {
        if flags[i] == 1.0 {
            assert_eq!(mixed[i].to_bits(), replacement[i].to_bits());
            replaced += 1;
        } else {
            assert_eq!(mixed[i].to_bits(), image[i].to_bits());
        }
    }
    // 12 blocks, floor(12 · 0.125) = 1 kept.
    assert_eq!(replaced, 11 * 512);
    assert!(mask.apply(&image, &replacement[1..]).is_err());
    assert!(mask.apply(&image[1..], &replacement).is_err());
}

#[test]
fn same_seed_same_mask_other_stream_other_mask() {
    let crop = [96, 96, 96];
    let cfg = MaskConfig::default();
    let first = BlockMask::random(&mut Rng::stream(5, 1), crop, &cfg).unwrap();
    let again = BlockMask::random(&mut Rng::stream(5, 1), crop, &cfg).unwrap();
    let other = BlockMask::random(&mut Rng::stream(5, 2), crop, &cfg).unwrap();
    assert_eq!(first, again);
    assert_ne!(first.kept, other.kept);
    // Successive draws from one stream (one per sample and view) differ too.
    let mut rng = Rng::stream(5, 1);
    let view_a = BlockMask::random(&mut rng, crop, &cfg).unwrap();
    let view_b = BlockMask::random(&mut rng, crop, &cfg).unwrap();
    assert_eq!(view_a, first);
    assert_ne!(view_a.kept, view_b.kept);
}

#[test]
fn each_block_is_masked_with_frequency_near_the_ratio() {
    let crop = [96, 96, 96];
    let draws = 2000;
    for cfg in [MaskConfig::default(), MaskConfig::paper()] {
        let mut rng = Rng::new(2024);
        let mut masked_times = vec![0usize; 1728];
        for _ in 0..draws {
            let mask = BlockMask::random(&mut rng, crop, &cfg).unwrap();
            for (count, &kept) in masked_times.iter_mut().zip(&mask.kept) {
                *count += !kept as usize;
            }
        }
        // Expected frequency 1 − floor(N(1−r))/N; binomial std ≈ 0.009, so ±0.05 is > 5 σ.
        let expected = 1.0 - cfg.kept_blocks(1728) as f64 / 1728.0;
        assert!((expected - cfg.mask_ratio).abs() < 1e-3);
        for (block, &count) in masked_times.iter().enumerate() {
            let frequency = count as f64 / draws as f64;
            assert!(
                (frequency - expected).abs() < 0.05,
                "block {block}: masked {frequency}, expected {expected}"
            );
        }
    }
}

#[test]
fn tensor_matches_voxel_mask_in_z_y_x_layout() {
    let crop = [32, 16, 24];
    let mask = BlockMask::random(&mut Rng::new(9), crop, &MaskConfig::default()).unwrap();
    let device = Default::default();
    let tensor = mask.to_tensor::<Flex>(&device);
    assert_eq!(tensor.dims(), [1, 1, 24, 16, 32]);
    let values = tensor.clone().into_data().to_vec::<f32>().unwrap();
    assert_eq!(values, mask.voxel_mask());
    // Spot check the layout: element [0, 0, z, y, x] is voxel (x, y, z).
    for (x, y, z) in [(0, 0, 0), (31, 3, 9), (8, 15, 23), (17, 9, 4)] {
        let element = tensor
            .clone()
            .slice([0..1, 0..1, z..z + 1, y..y + 1, x..x + 1])
            .into_scalar();
        let expected = if mask.is_masked_voxel(x, y, z) {
            1.0
        } else {
            0.0
        };
        assert_eq!(element, expected, "voxel ({x}, {y}, {z})");
    }
}

#[test]
fn invalid_configs_are_errors() {
    let mut rng = Rng::new(1);
    let crop = [96, 96, 96];
    for bad in [
        config(0, 0.8),
        config(8, 1.0),
        config(8, -0.1),
        config(8, f64::NAN),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(BlockMask::random(&mut rng, crop, &bad).is_err(), "{bad:?}");
    }
    assert!(MaskConfig::default().validate().is_ok());
    assert!(MaskConfig::paper().validate().is_ok());
    let err = BlockMask::random(&mut rng, [96, 90, 96], &MaskConfig::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("96x90x96") && text.contains('8'), "{text}");
    assert!(BlockMask::random(&mut rng, [0, 8, 8], &MaskConfig::default()).is_err());
    let huge = [1 << 20, 1 << 20, 1 << 20];
    assert!(BlockMask::random(&mut rng, huge, &MaskConfig::default()).is_err());
}

#[test]
fn config_round_trips_through_serde_and_defaults() {
    let cfg = MaskConfig::paper();
    let text = serde_json::to_string(&cfg).unwrap();
    let back: MaskConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, cfg);
    let defaulted: MaskConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(defaulted, MaskConfig::default());
    assert_eq!((defaulted.block_size, defaulted.mask_ratio), (8, 0.8));
}
