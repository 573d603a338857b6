//! Template cut-mix: template crops against hand-placed reads of the normalised template (centred,
//! clamped, larger than the canvas, flipped as the loader flips), whole-volume fills, the channels
//! cut-mix replaces (never all, 1 to 3 of 4, at the configured rate, deterministic by seed), filling
//! missing modalities, and the errors.

use brainmvp_core::finetune::cutmix::{cut_mix, CutMixConfig};
use brainmvp_core::loader::flip_in_place;
use brainmvp_core::rng::Rng;
use brainmvp_core::template_bank::{fill_missing, TemplateBank};
use brainmvp_core::volume::IDENTITY;
use brainmvp_core::{Modality, Volume};

const CANVAS: [usize; 3] = [20, 18, 16];
const BANK_MODALITIES: [Modality; 4] = [Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];

/// A raw (unnormalised) template value: distinct per voxel and modality, range [offset, offset + 15 + 170 + 1500].
fn raw_value(x: usize, y: usize, z: usize, modality: Modality) -> f32 {
    (x + 10 * y + 100 * z) as f32 + 7.0 * modality.index() as f32 - 3.0
}

fn raw_template(modality: Modality) -> Volume<f32> {
    let mut volume = Volume::filled(CANVAS, IDENTITY, 0.0f32);
    for z in 0..CANVAS[2] {
        for y in 0..CANVAS[1] {
            for x in 0..CANVAS[0] {
                volume.set(x, y, z, raw_value(x, y, z, modality));
            }
        }
    }
    volume
}

fn bank() -> TemplateBank {
    TemplateBank::new(
        BANK_MODALITIES
            .iter()
            .map(|&m| (m, raw_template(m)))
            .collect(),
    )
    .unwrap()
}

/// The normalised template value at canvas voxel (x, y, z): min is at 0, max at the far corner.
fn normalised(x: usize, y: usize, z: usize, modality: Modality) -> f32 {
    let low = raw_value(0, 0, 0, modality) as f64;
    let high = raw_value(CANVAS[0] - 1, CANVAS[1] - 1, CANVAS[2] - 1, modality) as f64;
    ((raw_value(x, y, z, modality) as f64 - low) / (high - low + 1e-9)) as f32
}

/// The unflipped crop read by hand from canvas start `start` (0 outside the canvas).
fn expected_crop(modality: Modality, start: [isize; 3], size: [usize; 3]) -> Vec<f32> {
    let mut values = Vec::new();
    for z in 0..size[2] {
        for y in 0..size[1] {
            for x in 0..size[0] {
                let at = [
                    start[0] + x as isize,
                    start[1] + y as isize,
                    start[2] + z as isize,
                ];
                let inside = (0..3).all(|a| at[a] >= 0 && at[a] < CANVAS[a] as isize);
                values.push(match inside {
                    true => normalised(at[0] as usize, at[1] as usize, at[2] as usize, modality),
                    false => 0.0,
                });
            }
        }
    }
    values
}

#[test]
fn centred_crop_matches_the_hand_placement() {
    let bank = bank();
    // Volume 12×10×16 centred in 20×18×16: shift (4, 4, 0); crop start (2, 3, 0) → (6, 7, 0).
    let (dims, start, size) = ([12, 10, 16], [2, 3, 0], [6, 4, 8]);
    assert_eq!(bank.canvas_start(dims, start, size), [6, 7, 0]);
    let crop = bank
        .crop(Modality::T1, dims, start, size, [false; 3])
        .unwrap();
    assert_eq!(crop, expected_crop(Modality::T1, [6, 7, 0], size));
    assert_eq!(crop[0], normalised(6, 7, 0, Modality::T1));
    // The whole normalised template spans [0, 1].
    let template = bank.template(Modality::T2).unwrap();
    let max = template.data.iter().cloned().fold(f32::MIN, f32::max);
    let min = template.data.iter().cloned().fold(f32::MAX, f32::min);
    assert_eq!(min, 0.0);
    assert!((max - 1.0).abs() < 1e-6);
}

#[test]
fn flipped_crop_is_the_loader_flip_of_the_crop() {
    let bank = bank();
    let (dims, start, size) = ([12, 10, 16], [1, 2, 5], [5, 6, 7]);
    for mask in 1..8 {
        let flipped = [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0];
        let crop = bank
            .crop(Modality::Flair, dims, start, size, flipped)
            .unwrap();
        let mut expected = expected_crop(Modality::Flair, [5, 6, 5], size);
        flip_in_place(&mut expected, size, flipped);
        assert_eq!(crop, expected, "{flipped:?}");
    }
}

#[test]
fn placements_are_clamped_and_large_crops_padded() {
    let bank = bank();
    // A volume wider than the canvas: shift (20 − 30) / 2 = −5; x start −5 clamps to 0 and
    // 22 − 5 = 17 clamps to 20 − 6 = 14. A small crop start past the volume end clamps on y too.
    assert_eq!(
        bank.canvas_start([30, 10, 16], [0, 0, 0], [6, 4, 8]),
        [0, 4, 0]
    );
    assert_eq!(
        bank.canvas_start([30, 10, 16], [22, 20, 9], [6, 4, 8]),
        [14, 14, 8]
    );
    let crop = bank
        .crop(
            Modality::T1c,
            [30, 10, 16],
            [22, 20, 9],
            [6, 4, 8],
            [false, true, false],
        )
        .unwrap();
    let mut expected = expected_crop(Modality::T1c, [14, 14, 8], [6, 4, 8]);
    flip_in_place(&mut expected, [6, 4, 8], [false, true, false]);
    assert_eq!(crop, expected);
    // A crop wider than the canvas covers it: volume 24 wide → shift −2, start −2, zeros on both
    // sides (2 before, 2 after).
    let size = [24, 3, 2];
    assert_eq!(bank.canvas_start([24, 18, 16], [0, 4, 6], size), [-2, 4, 6]);
    let crop = bank
        .crop(Modality::T1, [24, 18, 16], [0, 4, 6], size, [false; 3])
        .unwrap();
    assert_eq!(crop, expected_crop(Modality::T1, [-2, 4, 6], size));
    assert_eq!(&crop[..2], &[0.0, 0.0]);
    assert_eq!(crop[2], normalised(0, 4, 6, Modality::T1));
    assert_eq!(&crop[22..24], &[0.0, 0.0]);
}

#[test]
fn fill_is_the_template_under_the_centred_volume() {
    let bank = bank();
    let filled = bank.fill(Modality::T2, [12, 10, 16]).unwrap();
    assert_eq!(filled.dims, [12, 10, 16]);
    assert_eq!(
        filled.data,
        expected_crop(Modality::T2, [4, 4, 0], [12, 10, 16])
    );
    // A volume larger than the canvas: the canvas in the middle, zeros around.
    let large = bank.fill(Modality::T2, [22, 18, 16]).unwrap();
    assert_eq!(
        large.data,
        expected_crop(Modality::T2, [-1, 0, 0], [22, 18, 16])
    );
}

/// Four channels with constant values −1, −2, −3, −4 (no template value is negative).
fn sample_images(size: [usize; 3]) -> Vec<(Modality, Vec<f32>)> {
    let voxels = size.iter().product();
    BANK_MODALITIES
        .iter()
        .enumerate()
        .map(|(i, &m)| (m, vec![-(i as f32) - 1.0; voxels]))
        .collect()
}

#[test]
fn cut_mix_replaces_one_to_three_channels_by_their_template_crop() {
    let bank = bank();
    let (dims, start, size, flipped) = ([12, 10, 16], [3, 1, 4], [4, 4, 4], [true, false, true]);
    let config = CutMixConfig {
        max_channels: 3,
        probability: 1.0,
    };
    let mut counts = [0usize; 5];
    for seed in 0..300 {
        let mut images = sample_images(size);
        let mut rng = Rng::new(seed);
        let replaced = cut_mix(
            &mut images,
            &bank,
            dims,
            start,
            size,
            flipped,
            &config,
            &mut rng,
        )
        .unwrap();
        counts[replaced.len()] += 1;
        let original = sample_images(size);
        for ((modality, crop), (_, before)) in images.iter().zip(&original) {
            if replaced.contains(modality) {
                let template = bank.crop(*modality, dims, start, size, flipped).unwrap();
                assert_eq!(crop, &template);
            } else {
                assert_eq!(crop, before, "{modality} must be untouched");
            }
        }
        // Deterministic by seed.
        let mut again = sample_images(size);
        let replaced_again = cut_mix(
            &mut again,
            &bank,
            dims,
            start,
            size,
            flipped,
            &config,
            &mut Rng::new(seed),
        )
        .unwrap();
        assert_eq!((replaced_again, again), (replaced, images));
    }
    assert_eq!(counts[0], 0);
    assert_eq!(counts[4], 0, "never all channels");
    assert!(counts[1..4].iter().all(|&c| c > 60), "{counts:?}");
}

#[test]
fn cut_mix_rate_and_channel_limits() {
    let bank = bank();
    let size = [2, 2, 2];
    let mut rng = Rng::new(11);
    let half = CutMixConfig::default();
    assert_eq!((half.max_channels, half.probability), (3, 0.5));
    let mut mixed = 0;
    for _ in 0..2000 {
        let mut images = sample_images(size);
        let replaced = cut_mix(
            &mut images,
            &bank,
            CANVAS,
            [0; 3],
            size,
            [false; 3],
            &half,
            &mut rng,
        )
        .unwrap();
        mixed += usize::from(!replaced.is_empty());
    }
    assert!((900..1100).contains(&mixed), "{mixed} of 2000");
    let always = CutMixConfig {
        max_channels: 3,
        probability: 1.0,
    };
    for channels in [1, 2] {
        for _ in 0..50 {
            let mut images = sample_images(size);
            images.truncate(channels);
            let replaced = cut_mix(
                &mut images,
                &bank,
                CANVAS,
                [0; 3],
                size,
                [false; 3],
                &always,
                &mut rng,
            )
            .unwrap();
            assert_eq!(replaced.len(), channels - 1);
        }
    }
    let never = CutMixConfig {
        max_channels: 3,
        probability: 0.0,
    };
    let mut images = sample_images(size);
    let replaced = cut_mix(
        &mut images,
        &bank,
        CANVAS,
        [0; 3],
        size,
        [false; 3],
        &never,
        &mut rng,
    )
    .unwrap();
    assert!(replaced.is_empty());
    assert_eq!(images, sample_images(size));
}

#[test]
fn errors_for_unknown_modalities_and_mismatched_sizes() {
    let bank = bank();
    let size = [2, 2, 2];
    let config = CutMixConfig::default();
    let mut rng = Rng::new(1);
    let mut images = sample_images(size);
    images.push((Modality::Pd, vec![0.0; 8]));
    let err = cut_mix(
        &mut images,
        &bank,
        CANVAS,
        [0; 3],
        size,
        [false; 3],
        &config,
        &mut rng,
    );
    assert!(err.unwrap_err().to_string().contains("pd"));
    let mut short = sample_images(size);
    short[1].1.pop();
    assert!(
        cut_mix(&mut short, &bank, CANVAS, [0; 3], size, [false; 3], &config, &mut rng).is_err()
    );
    let bad = CutMixConfig {
        max_channels: 3,
        probability: 1.5,
    };
    let mut images = sample_images(size);
    assert!(cut_mix(
        &mut images,
        &bank,
        CANVAS,
        [0; 3],
        size,
        [false; 3],
        &bad,
        &mut rng
    )
    .is_err());
    assert!(bank
        .crop(Modality::Adc, CANVAS, [0; 3], size, [false; 3])
        .is_err());
    assert!(bank
        .crop(Modality::T1, CANVAS, [0; 3], [0, 2, 2], [false; 3])
        .is_err());
    // Banks: mismatched dims, repeated modality, empty.
    let other = Volume::filled([20, 18, 15], IDENTITY, 1.0f32);
    let err = TemplateBank::new(vec![
        (Modality::T1, raw_template(Modality::T1)),
        (Modality::T2, other),
    ]);
    assert!(err.unwrap_err().to_string().contains("dims"));
    let repeated = vec![
        (Modality::T1, raw_template(Modality::T1)),
        (Modality::T1, raw_template(Modality::T1)),
    ];
    assert!(TemplateBank::new(repeated).is_err());
    assert!(TemplateBank::new(Vec::new()).is_err());
}

#[test]
fn fill_missing_puts_templates_or_zeros_in_wanted_order() {
    let templates = vec![(Modality::T1c, raw_template(Modality::T1c))];
    let bank = TemplateBank::new(templates).unwrap();
    let dims = [12, 10, 16];
    let mut affine = IDENTITY;
    affine[0][0] = 1.5;
    let volume = |value: f32| Volume::filled(dims, affine, value);
    let mut images = vec![
        (Modality::T1, volume(1.0)),
        (Modality::Pd, volume(5.0)),
        (Modality::Flair, volume(2.0)),
    ];
    let wanted = [Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];
    let filled = fill_missing(&mut images, &wanted, Some(&bank)).unwrap();
    assert_eq!(filled, vec![Modality::T1c, Modality::T2]);
    let order: Vec<Modality> = images.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        order,
        [
            Modality::Flair,
            Modality::T1,
            Modality::T1c,
            Modality::T2,
            Modality::Pd
        ]
    );
    assert_eq!(images[0].1, volume(2.0));
    assert_eq!(images[1].1, volume(1.0));
    assert_eq!(
        images[2].1.data,
        bank.fill(Modality::T1c, dims).unwrap().data
    );
    assert_eq!(images[2].1.affine, affine);
    assert_eq!(images[3].1, volume(0.0));
    // Without a bank every missing modality is zeros; nothing missing fills nothing.
    let mut images = vec![(Modality::T1, volume(1.0))];
    assert_eq!(
        fill_missing(&mut images, &[Modality::T2], None).unwrap(),
        [Modality::T2]
    );
    assert_eq!(images[0].1, volume(0.0));
    assert!(fill_missing(&mut images, &[Modality::T1], None)
        .unwrap()
        .is_empty());
    // Errors leave the images as they were.
    let mut empty = Vec::new();
    assert!(fill_missing(&mut empty, &[Modality::T1], None).is_err());
    let mut mixed = vec![
        (Modality::T1, volume(1.0)),
        (Modality::T2, Volume::filled([2, 2, 2], affine, 0.0)),
    ];
    let before = mixed.clone();
    assert!(fill_missing(&mut mixed, &[Modality::Flair], None).is_err());
    assert_eq!(mixed, before);
    assert!(fill_missing(&mut mixed, &[Modality::T1, Modality::T1], None).is_err());
}

/// The bank crops exactly where pre-training crops its learnable templates (and flips alike).
#[test]
fn placement_and_values_agree_with_the_pretraining_templates() {
    use brainmvp_core::pretext::templates::TemplateConfig;
    use burn::backend::Flex;
    use burn::module::Param;
    use burn::tensor::{Tensor, TensorData};
    let device = Default::default();
    let config = TemplateConfig {
        canvas: CANVAS,
        modalities: BANK_MODALITIES.to_vec(),
        ..Default::default()
    };
    let mut learned = config.init::<Flex>(&device).unwrap();
    let raw: Vec<f32> = BANK_MODALITIES
        .iter()
        .flat_map(|&m| raw_template(m).data)
        .collect();
    let [x, y, z] = CANVAS;
    let data = TensorData::new(raw, [BANK_MODALITIES.len(), z, y, x]);
    learned.volumes = Param::from_tensor(Tensor::from_data(data, &device));
    let bank = bank();
    let cases = [
        ([12, 10, 16], [2, 3, 0], [6, 4, 8], [false, false, false]),
        ([30, 10, 16], [22, 20, 9], [6, 4, 8], [true, false, true]),
        ([16, 30, 9], [-3, 1, -2], [8, 8, 8], [false, true, true]),
    ];
    for (dims, start, size, flipped) in cases {
        let canvas_start = learned.canvas_start(dims, start, size).unwrap();
        let ours = bank.canvas_start(dims, start, size);
        assert_eq!(ours, canvas_start.map(|v| v as isize), "{dims:?} {start:?}");
        let reference = learned
            .crop(Modality::T1c, canvas_start, size, flipped)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let crop = bank
            .crop(Modality::T1c, dims, start, size, flipped)
            .unwrap();
        let worst = crop
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{dims:?}: {worst}");
    }
}
