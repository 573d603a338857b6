//! The two views of a pre-training step: reproducible plans, the choice of the target and of the
//! other modality, the series of a subject (subset or repetition), view A and view B compared voxel
//! by voxel with the target, the other modality and a host-normalised ramp template, and errors.

use crate::support::B;
use brainmvp_core::modality::Modality;
use brainmvp_core::pretext::masking::{BlockMask, MaskConfig};
use brainmvp_core::pretext::templates::{ModalityTemplates, TemplateConfig, NORMALISE_EPS};
use brainmvp_core::pretext::views::{
    build_views, plan_step, subject_series, SamplePlan, ViewConfig, ViewSource,
};
use brainmvp_core::rng::Rng;
use burn::module::Param;
use burn::tensor::{Tensor, TensorData};

const CANVAS: [usize; 3] = [24, 20, 16];
const CROP: [usize; 3] = [16, 8, 8];
const SIX: [Modality; 6] = [
    Modality::Flair,
    Modality::T1,
    Modality::T1c,
    Modality::T2,
    Modality::Pd,
    Modality::Adc,
];

fn crop_voxels() -> usize {
    CROP.iter().product()
}

/// 4³ blocks, half of them masked: 4·2·2 = 16 blocks, 8 kept.
fn view_config() -> ViewConfig {
    ViewConfig {
        mask: MaskConfig {
            block_size: 4,
            mask_ratio: 0.5,
        },
        ..ViewConfig::default()
    }
}

/// One image per modality: modality `m` holds `100·(m + 1) + 0.001·i` at voxel `i`, so every
/// value says which modality and which voxel it came from (and none lies in the template's [0, 1]).
fn images(modalities: &[Modality]) -> Vec<(Modality, Vec<f32>)> {
    modalities
        .iter()
        .map(|&m| {
            let base = 100.0 * (m.index() + 1) as f32;
            let values = (0..crop_voxels())
                .map(|i| base + 0.001 * i as f32)
                .collect();
            (m, values)
        })
        .collect()
}

fn source(images: &[(Modality, Vec<f32>)]) -> ViewSource<'_> {
    ViewSource {
        images,
        volume_dims: [20, 16, 12],
        crop_start: [1, 3, 2],
        flipped: [false; 3],
    }
}

/// Raw template of storage index `m` at canvas linear index `i` (x fastest).
fn ramp(m: usize, i: usize) -> f32 {
    0.02 * i as f32 * (m + 1) as f32 - m as f32
}

fn ramp_templates(modalities: &[Modality]) -> ModalityTemplates<B> {
    let config = TemplateConfig {
        canvas: CANVAS,
        modalities: modalities.to_vec(),
        learn: true,
        ..Default::default()
    };
    let device = Default::default();
    let mut templates = config.init::<B>(&device).unwrap();
    let canvas_voxels: usize = CANVAS.iter().product();
    let values: Vec<f32> = (0..modalities.len())
        .flat_map(|m| (0..canvas_voxels).map(move |i| ramp(m, i)))
        .collect();
    let [x, y, z] = CANVAS;
    let tensor = Tensor::from_data(
        TensorData::new(values, [modalities.len(), z, y, x]),
        &device,
    );
    templates.volumes = Param::from_tensor(tensor);
    templates
}

/// Host reference of the normalised template `m` at canvas voxel (x, y, z).
fn normalised_ramp(m: usize, x: usize, y: usize, z: usize) -> f64 {
    let canvas_voxels: usize = CANVAS.iter().product();
    let (low, high) = (ramp(m, 0) as f64, ramp(m, canvas_voxels - 1) as f64);
    let value = ramp(m, x + CANVAS[0] * (y + CANVAS[1] * z)) as f64;
    (value - low) / (high - low + NORMALISE_EPS)
}

fn read(tensor: Tensor<B, 5>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap()
}

#[test]
fn plans_are_reproducible_from_seed_and_step() {
    let (six, two) = (images(&SIX), images(&[Modality::T1, Modality::T2]));
    let sources = [source(&six), source(&two)];
    let config = view_config();
    let plan = |step, seed| plan_step(&sources, CROP, step, seed, &config, true).unwrap();
    assert_eq!(plan(7, 42), plan(7, 42));
    assert_ne!(plan(7, 42), plan(8, 42));
    assert_ne!(plan(7, 42), plan(7, 43));
    let first = plan(7, 42);
    assert_eq!(first.len(), 2);
    for sample in &first {
        assert_eq!(sample.mask_a.kept_count(), 8);
        assert_eq!(sample.mask_b.kept_count(), 8);
        assert_eq!(sample.mask_a.crop_size, CROP);
        assert_eq!(sample.mask_a.block_size, 4);
    }
    // Fresh masks per view and per sample.
    let masks: Vec<&BlockMask> = first.iter().flat_map(|s| [&s.mask_a, &s.mask_b]).collect();
    for (i, a) in masks.iter().enumerate() {
        for b in &masks[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn targets_and_other_modalities_come_from_the_subject() {
    let six = images(&SIX);
    let two = images(&[Modality::T1, Modality::T2]);
    let one = images(&[Modality::Mra]);
    let sources = [source(&six), source(&two), source(&one)];
    let config = view_config();
    let mut six_targets = std::collections::BTreeSet::new();
    let mut six_others = std::collections::BTreeSet::new();
    for step in 0..300 {
        let plans = plan_step(&sources, CROP, step, 9, &config, true).unwrap();
        let crossless = plan_step(&sources, CROP, step, 9, &config, false).unwrap();
        for (plan, without) in plans.iter().zip(&crossless) {
            // Switching the cross-modal view off changes nothing but `other`.
            assert_eq!(plan.target, without.target);
            assert_eq!(plan.mask_a, without.mask_a);
            assert_eq!(plan.mask_b, without.mask_b);
            assert_eq!(without.other, None);
        }
        let [six_plan, two_plan, one_plan] = [&plans[0], &plans[1], &plans[2]];
        assert!(SIX.contains(&six_plan.target));
        let other = six_plan
            .other
            .expect("six modalities always offer another one");
        assert_ne!(other, six_plan.target);
        assert!(SIX.contains(&other));
        six_targets.insert(six_plan.target);
        six_others.insert(other);
        // Two modalities: the other is always the remaining one.
        let expected_other = match two_plan.target {
            Modality::T1 => Modality::T2,
            Modality::T2 => Modality::T1,
            target => panic!("target {target} is not a modality of the subject"),
        };
        assert_eq!(two_plan.other, Some(expected_other));
        // A single modality: always the target, view B falls back to the template.
        assert_eq!(one_plan.target, Modality::Mra);
        assert_eq!(one_plan.other, None);
    }
    // Every modality of the subject is reconstructed and used as the other one at some step.
    assert_eq!(six_targets.len(), 6);
    assert_eq!(six_others.len(), 6);
}

#[test]
fn subject_series_subsets_or_repeats_the_modalities() {
    let mut rng = Rng::new(3);
    let six = images(&SIX);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let series = subject_series(&six, 4, &mut rng).unwrap();
        assert_eq!(series.len(), 4);
        let mut distinct = series.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{series:?}");
        assert!(series.iter().all(|m| SIX.contains(m)));
        seen.extend(series);
    }
    assert_eq!(seen.len(), 6);
    let two = images(&[Modality::Flair, Modality::Dwi]);
    for _ in 0..20 {
        let series = subject_series(&two, 4, &mut rng).unwrap();
        // Repeated in turn: a b a b.
        assert_ne!(series[0], series[1]);
        assert_eq!(series[0], series[2]);
        assert_eq!(series[1], series[3]);
        for modality in [Modality::Flair, Modality::Dwi] {
            assert_eq!(series.iter().filter(|&&m| m == modality).count(), 2);
        }
    }
    let one = images(&[Modality::Pd]);
    assert_eq!(
        subject_series(&one, 4, &mut rng).unwrap(),
        vec![Modality::Pd; 4]
    );
    let four = images(&SIX[..4]);
    let mut series = subject_series(&four, 4, &mut rng).unwrap();
    series.sort();
    assert_eq!(series, SIX[..4].to_vec());
    assert!(subject_series(&[], 4, &mut rng).is_err());
    // Same seed, same series.
    let draw = |seed| subject_series(&six, 4, &mut Rng::new(seed)).unwrap();
    assert_eq!(draw(17), draw(17));
}

/// Expected view values: kept voxels from the target, masked ones from `fill(voxel)`.
fn check_view(actual: &[f32], target: &[f32], mask: &BlockMask, fill: impl Fn(usize) -> f64) {
    let voxel_mask = mask.voxel_mask();
    let mut changed = 0;
    for (voxel, (&value, &masked)) in actual.iter().zip(&voxel_mask).enumerate() {
        if masked > 0.5 {
            let expected = fill(voxel);
            assert!(
                (value as f64 - expected).abs() < 1e-5,
                "masked voxel {voxel}: {value} vs {expected}"
            );
        } else {
            assert_eq!(value, target[voxel], "kept voxel {voxel}");
        }
        if value != target[voxel] {
            changed += 1;
        }
    }
    // Block 4³: every masked voxel differs from the target (the fills never equal it).
    assert_eq!(changed, mask.masked_count() * 64);
    assert_eq!(changed, crop_voxels() / 2);
}

#[test]
fn views_replace_exactly_the_masked_voxels() {
    let modalities = [Modality::Flair, Modality::T1, Modality::T2];
    let templates = ramp_templates(&modalities);
    let subject_a = images(&[Modality::T1, Modality::T2]);
    let subject_b = images(&[Modality::Flair, Modality::T2, Modality::T1]);
    let mut flipped_source = source(&subject_b);
    flipped_source.flipped = [true, true, false];
    flipped_source.volume_dims = [18, 20, 16];
    flipped_source.crop_start = [0, 2, 5];
    let sources = [source(&subject_a), flipped_source];
    let config = view_config();
    let mut rng = Rng::new(21);
    let mut mask = || BlockMask::random(&mut rng, CROP, &config.mask).unwrap();
    let plans = vec![
        SamplePlan {
            target: Modality::T2,
            other: Some(Modality::T1),
            mask_a: mask(),
            mask_b: mask(),
        },
        // No other modality: view B is filled by the template too.
        SamplePlan {
            target: Modality::Flair,
            other: None,
            mask_a: mask(),
            mask_b: mask(),
        },
    ];
    let device = Default::default();
    let views = build_views(&sources, &plans, CROP, &templates, &device).unwrap();
    let [x, y, z] = CROP;
    for tensor in [&views.view_a, &views.view_b, &views.target] {
        assert_eq!(tensor.dims(), [2, 1, z, y, x]);
    }
    let (view_a, view_b, target) = (read(views.view_a), read(views.view_b), read(views.target));
    let voxels = crop_voxels();
    // Canvas starts: sample 0 (24−20)/2 + 1 = 3, (20−16)/2 + 3 = 5, (16−12)/2 + 2 = 4;
    // sample 1 3 + 0 = 3, 0 + 2 = 2, 0 + 5 = 5, flipped along x and y.
    let starts = [[3, 5, 4], [3, 2, 5]];
    for (index, plan) in plans.iter().enumerate() {
        let range = index * voxels..(index + 1) * voxels;
        let images = sources[index].images;
        let image = |m: Modality| &images.iter().find(|(n, _)| *n == m).unwrap().1;
        let target_image = image(plan.target);
        assert_eq!(&target[range.clone()], &target_image[..]);
        let storage = templates.index_of(plan.target).unwrap();
        let flipped = sources[index].flipped;
        let start = starts[index];
        let template = |voxel: usize| {
            let local = [voxel % x, (voxel / x) % y, voxel / (x * y)];
            let at = |axis: usize| match flipped[axis] {
                true => start[axis] + CROP[axis] - 1 - local[axis],
                false => start[axis] + local[axis],
            };
            normalised_ramp(storage, at(0), at(1), at(2))
        };
        check_view(&view_a[range.clone()], target_image, &plan.mask_a, template);
        match plan.other {
            Some(other) => {
                let other_image = image(other);
                check_view(&view_b[range], target_image, &plan.mask_b, |voxel| {
                    other_image[voxel] as f64
                });
            }
            None => check_view(&view_b[range], target_image, &plan.mask_b, template),
        }
    }
}

#[test]
fn planned_views_are_built_from_the_planned_modalities() {
    let templates = ramp_templates(&SIX);
    let six = images(&SIX);
    let two = images(&[Modality::T1c, Modality::Adc]);
    let sources = [source(&six), source(&two)];
    let plans = plan_step(&sources, CROP, 4, 1, &view_config(), true).unwrap();
    let device = Default::default();
    let views = build_views(&sources, &plans, CROP, &templates, &device).unwrap();
    let (view_b, target) = (read(views.view_b), read(views.target));
    let voxels = crop_voxels();
    for (index, plan) in plans.iter().enumerate() {
        let other = plan.other.expect("both subjects have two modalities");
        // Every value encodes its modality: 100·(index + 1) + 0.001·voxel.
        let base = |m: Modality| 100.0 * (m.index() + 1) as f32;
        let voxel_mask = plan.mask_b.voxel_mask();
        for voxel in 0..voxels {
            let expected = match voxel_mask[voxel] > 0.5 {
                true => base(other),
                false => base(plan.target),
            } + 0.001 * voxel as f32;
            assert_eq!(view_b[index * voxels + voxel], expected);
            assert_eq!(
                target[index * voxels + voxel],
                base(plan.target) + 0.001 * voxel as f32
            );
        }
    }
}

#[test]
fn inconsistent_inputs_are_errors() {
    let templates = ramp_templates(&[Modality::T1, Modality::T2]);
    let device = Default::default();
    let two = images(&[Modality::T1, Modality::T2]);
    let sources = [source(&two), source(&two)];
    let config = view_config();
    let plans = plan_step(&sources, CROP, 0, 0, &config, true).unwrap();
    // One plan for two samples, and no sample at all.
    assert!(build_views(&sources, &plans[..1], CROP, &templates, &device).is_err());
    assert!(build_views(&[], &[], CROP, &templates, &device).is_err());
    // A crop of the wrong length.
    let mut short = images(&[Modality::T1, Modality::T2]);
    short[0].1.pop();
    short[1].1.pop();
    let short_sources = [source(&short), source(&short)];
    assert!(build_views(&short_sources, &plans, CROP, &templates, &device).is_err());
    // A plan naming a modality the sample lacks, or one without a template.
    let mut wrong = plans.clone();
    wrong[0].target = Modality::Flair;
    assert!(build_views(&sources, &wrong, CROP, &templates, &device).is_err());
    let flair = images(&[Modality::Flair, Modality::T1]);
    let flair_sources = [source(&flair), source(&flair)];
    let mut no_template = plans.clone();
    no_template[0].target = Modality::Flair;
    no_template[0].other = Some(Modality::T1);
    no_template[1].target = Modality::T1;
    no_template[1].other = Some(Modality::Flair);
    let error = build_views(&flair_sources, &no_template, CROP, &templates, &device).unwrap_err();
    assert!(error.cause.contains("flair"), "{error}");
    // Plans: a crop not divisible by the block size, no series, a warm-up outside [0, 1], a sample
    // without images.
    assert!(plan_step(&sources, [16, 8, 6], 0, 0, &config, true).is_err());
    let mut bad = config.clone();
    bad.series_per_subject = 0;
    assert!(plan_step(&sources, CROP, 0, 0, &bad, true).is_err());
    let mut bad = config.clone();
    bad.template_warmup_fraction = 1.5;
    assert!(plan_step(&sources, CROP, 0, 0, &bad, true).is_err());
    let empty: Vec<(Modality, Vec<f32>)> = vec![];
    assert!(plan_step(&[source(&empty)], CROP, 0, 0, &config, true).is_err());
}

/// `build_views` never compares the plans' mask size with `crop_size`: `HostView::push` indexes the
/// target crop with the mask's voxel indices and panics (or uploads too few values) on a mismatch.
#[test]
fn plans_for_another_crop_size_are_errors_not_panics() {
    let templates = ramp_templates(&[Modality::T1, Modality::T2]);
    let device = Default::default();
    let two = images(&[Modality::T1, Modality::T2]);
    let sources = [source(&two)];
    // Masks for a crop twice as large (and, below, half as large) as the images.
    let larger = plan_step(&sources, [16, 8, 16], 0, 0, &view_config(), true).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        build_views(&sources, &larger, CROP, &templates, &device).is_err()
    }));
    assert!(matches!(result, Ok(true)), "larger masks: {result:?}");
    let smaller = plan_step(&sources, [8, 8, 8], 0, 0, &view_config(), true).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        build_views(&sources, &smaller, CROP, &templates, &device).is_err()
    }));
    assert!(matches!(result, Ok(true)), "smaller masks: {result:?}");
}

#[test]
fn template_warmup_covers_the_first_fraction_of_steps() {
    let config = ViewConfig::default();
    assert_eq!(config.series_per_subject, 4);
    assert_eq!(config.mask, MaskConfig::default());
    // The official 300 of 1,500 epochs.
    assert!(config.in_template_warmup(0, 1500));
    assert!(config.in_template_warmup(299, 1500));
    assert!(!config.in_template_warmup(300, 1500));
    let none = ViewConfig {
        template_warmup_fraction: 0.0,
        ..ViewConfig::default()
    };
    assert!(!none.in_template_warmup(0, 10));
}
