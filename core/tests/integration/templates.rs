//! Learnable modality templates: zero initialisation, min–max normalisation against host values,
//! the canvas position of a crop (centring, floor division, clamping at both ends), crops and
//! flips compared voxel by voxel with a ramp template (tensor axes `[z, y, x]`, x fastest), errors
//! instead of panics, the exported volumes, and the gradient the templates receive through the
//! views, compared with its analytic value.

use crate::support::{AD, B};
use brainmvp_core::modality::Modality;
use brainmvp_core::pretext::masking::{BlockMask, MaskConfig};
use brainmvp_core::pretext::templates::{ModalityTemplates, TemplateConfig, NORMALISE_EPS};
use brainmvp_core::pretext::views::{build_views, SamplePlan, ViewSource};
use brainmvp_core::rng::Rng;
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Canvas `[x, y, z]` of every test: small, with a different edge per axis.
const CANVAS: [usize; 3] = [24, 20, 16];
const MODALITIES: [Modality; 3] = [Modality::Flair, Modality::T1, Modality::T2];

fn config() -> TemplateConfig {
    TemplateConfig {
        canvas: CANVAS,
        modalities: MODALITIES.to_vec(),
        learn: true,
        ..Default::default()
    }
}

fn canvas_voxels() -> usize {
    CANVAS.iter().product()
}

/// Linear index of canvas voxel (x, y, z), x fastest.
fn canvas_index(x: usize, y: usize, z: usize) -> usize {
    x + CANVAS[0] * (y + CANVAS[1] * z)
}

/// Raw template values: template `m` is `scale_m · i + offset_m` at linear index `i` (x fastest),
/// so every voxel holds a distinct value, the minimum at (0, 0, 0) and the maximum at the far
/// corner.
fn ramp_values() -> Vec<Vec<f32>> {
    (0..MODALITIES.len())
        .map(|m| {
            let scale = 0.01 * (m + 1) as f32;
            let offset = -3.0 * m as f32;
            (0..canvas_voxels())
                .map(|i| scale * i as f32 + offset)
                .collect()
        })
        .collect()
}

/// Templates whose raw volumes hold `values` (one x-fastest canvas per modality).
fn templates_with<Back: Backend>(
    values: &[Vec<f32>],
    device: &Back::Device,
) -> ModalityTemplates<Back> {
    let mut templates = config().init::<Back>(device).unwrap();
    let [x, y, z] = CANVAS;
    let flat: Vec<f32> = values.iter().flatten().copied().collect();
    let tensor = Tensor::from_data(TensorData::new(flat, [values.len(), z, y, x]), device);
    templates.volumes = Param::from_tensor(tensor);
    templates
}

/// Host reference: `(t − min) / (max − min + 1e-9)` over the whole canvas, in f64.
fn normalise_host(values: &[f32]) -> Vec<f64> {
    let low = values
        .iter()
        .fold(f64::INFINITY, |acc, &v| acc.min(v as f64));
    let high = values
        .iter()
        .fold(f64::NEG_INFINITY, |acc, &v| acc.max(v as f64));
    let range = high - low + NORMALISE_EPS;
    values.iter().map(|&v| (v as f64 - low) / range).collect()
}

fn read<Back: Backend, const D: usize>(tensor: Tensor<Back, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap()
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} vs expected {expected}"
    );
}

#[test]
fn zero_initialised_templates_normalise_to_exactly_zero() {
    let device = Default::default();
    let templates = config().init::<B>(&device).unwrap();
    let [x, y, z] = CANVAS;
    assert_eq!(templates.volumes.val().dims(), [3, z, y, x]);
    assert_eq!(templates.canvas, CANVAS);
    assert_eq!(templates.modalities, MODALITIES.to_vec());
    for index in 0..MODALITIES.len() {
        let normalised = templates.normalised(index);
        assert_eq!(normalised.dims(), [z, y, x]);
        assert!(read(normalised).iter().all(|&v| v == 0.0));
    }
    let crop = templates
        .crop(Modality::T1, [2, 3, 4], [8, 8, 8], [true, false, true])
        .unwrap();
    assert_eq!(crop.dims(), [1, 1, 8, 8, 8]);
    assert!(read(crop).iter().all(|&v| v == 0.0));
}

#[test]
fn normalised_is_min_max_over_the_whole_canvas() {
    let device = Default::default();
    // Irregular values (not a ramp) with a negative minimum.
    let mut rng = Rng::new(11);
    let values: Vec<Vec<f32>> = (0..MODALITIES.len())
        .map(|m| {
            (0..canvas_voxels())
                .map(|_| (rng.normal() * (m + 1) as f64 - 2.0) as f32)
                .collect()
        })
        .collect();
    let templates = templates_with::<B>(&values, &device);
    for (index, raw) in values.iter().enumerate() {
        let expected = normalise_host(raw);
        let actual = read(templates.normalised(index));
        assert_eq!(actual.len(), expected.len());
        for (voxel, (&a, &e)) in actual.iter().zip(&expected).enumerate() {
            assert_close(
                a as f64,
                e,
                1e-6,
                &format!("template {index} voxel {voxel}"),
            );
        }
        let low = actual.iter().fold(f32::INFINITY, |acc, &v| acc.min(v));
        let high = actual.iter().fold(f32::NEG_INFINITY, |acc, &v| acc.max(v));
        assert_eq!(low, 0.0);
        assert_close(high as f64, 1.0, 1e-6, "maximum");
    }
}

/// Volume dims, crop start, crop size, expected canvas start (all `[x, y, z]`).
type PlacementCase = ([usize; 3], [isize; 3], [usize; 3], [usize; 3]);

#[test]
fn canvas_start_centres_the_volume_and_carries_the_crop_offset() {
    let device = Default::default();
    let templates = config().init::<B>(&device).unwrap();
    let cases: [PlacementCase; 7] = [
        // Shift (24−20)/2 = 2, (20−16)/2 = 2, (16−10)/2 = 3, plus the crop start.
        ([20, 16, 10], [1, 2, 0], [8, 8, 8], [3, 4, 3]),
        // Odd differences floor: 3/2 = 1 on x, 1/2 = 0 on y, 5/2 = 2 on z.
        ([21, 19, 11], [0, 0, 0], [8, 8, 8], [1, 0, 2]),
        // Volume larger than the canvas: (24−30)/2 = −3 on x, (20−27)/2 floors to −4 on y (not
        // −3), (16−16)/2 = 0 on z.
        ([30, 27, 16], [10, 9, 4], [8, 8, 8], [7, 5, 4]),
        // A padded crop (negative start) clamps to 0: 8 − 12 = −4 → 0; y: 6 − 1 = 5.
        ([8, 8, 8], [-12, -1, -30], [8, 8, 8], [0, 5, 0]),
        // Past the far end clamps to canvas − crop: −8 + 30 = 22 → 24 − 16 = 8.
        ([40, 20, 16], [30, 0, 9], [16, 8, 8], [8, 0, 8]),
        // The crop may take the whole canvas.
        ([24, 20, 16], [0, 0, 0], [24, 20, 16], [0, 0, 0]),
        // Exactly at the far end is not clamped: 2 + 14 = 16 = 24 − 8.
        ([20, 20, 16], [14, 12, 8], [8, 8, 8], [16, 12, 8]),
    ];
    for (volume, crop_start, crop_size, expected) in cases {
        let start = templates
            .canvas_start(volume, crop_start, crop_size)
            .unwrap();
        assert_eq!(start, expected, "volume {volume:?} crop at {crop_start:?}");
    }
    // A crop larger than the canvas cannot be placed: an error, not a panic.
    assert!(templates
        .canvas_start([20, 20, 20], [0, 0, 0], [8, 8, 32])
        .is_err());
    assert!(templates
        .canvas_start([20, 20, 20], [0, 0, 0], [25, 8, 8])
        .is_err());
}

/// Expected crop values (x fastest) of template `index` at `start` with `size` and `flipped`.
fn expected_crop(
    normalised: &[f64],
    start: [usize; 3],
    size: [usize; 3],
    flipped: [bool; 3],
) -> Vec<f64> {
    let source = |axis: usize, offset: usize| match flipped[axis] {
        true => start[axis] + size[axis] - 1 - offset,
        false => start[axis] + offset,
    };
    let mut values = Vec::with_capacity(size.iter().product());
    for z in 0..size[2] {
        for y in 0..size[1] {
            for x in 0..size[0] {
                values.push(normalised[canvas_index(source(0, x), source(1, y), source(2, z))]);
            }
        }
    }
    values
}

#[test]
fn crop_returns_the_sub_block_in_x_fastest_order() {
    let device = Default::default();
    let values = ramp_values();
    let templates = templates_with::<B>(&values, &device);
    let normalised = normalise_host(&values[1]);
    // A different edge per axis, so that a swapped axis changes the shape or the values.
    let (start, size) = ([3, 4, 2], [8, 4, 6]);
    let crop = templates
        .crop(Modality::T1, start, size, [false; 3])
        .unwrap();
    assert_eq!(crop.dims(), [1, 1, 6, 4, 8]);
    let actual = read(crop);
    // Spot checks by hand: voxel (0,0,0) of the crop is canvas (3,4,2); voxel (7,3,5) is
    // canvas (10,7,7); crop index of (x,y,z) is x + 8·(y + 4·z).
    assert_close(
        actual[0] as f64,
        normalised[3 + 24 * (4 + 20 * 2)],
        1e-6,
        "first",
    );
    let last = 7 + 8 * (3 + 4 * 5);
    assert_eq!(last, actual.len() - 1);
    assert_close(
        actual[last] as f64,
        normalised[10 + 24 * (7 + 20 * 7)],
        1e-6,
        "last",
    );
    for (voxel, (&a, e)) in actual
        .iter()
        .zip(expected_crop(&normalised, start, size, [false; 3]))
        .enumerate()
    {
        assert_close(a as f64, e, 1e-6, &format!("crop voxel {voxel}"));
    }
}

#[test]
fn flips_reverse_the_matching_tensor_axis() {
    let device = Default::default();
    let values = ramp_values();
    let templates = templates_with::<B>(&values, &device);
    let normalised = normalise_host(&values[0]);
    let (start, size) = ([5, 2, 7], [8, 12, 4]);
    for code in 0..8 {
        let flipped = [code & 1 != 0, code & 2 != 0, code & 4 != 0];
        let crop = templates
            .crop(Modality::Flair, start, size, flipped)
            .unwrap();
        assert_eq!(crop.dims(), [1, 1, 4, 12, 8]);
        let actual = read(crop);
        let expected = expected_crop(&normalised, start, size, flipped);
        for (voxel, (&a, &e)) in actual.iter().zip(&expected).enumerate() {
            assert_close(
                a as f64,
                e,
                1e-6,
                &format!("flip {flipped:?} voxel {voxel}"),
            );
        }
    }
    // A flip along x alone moves the crop's first voxel to the far x end of the block, and keeps
    // y and z: crop (0,0,0) ← canvas (12,2,7).
    let crop = read(
        templates
            .crop(Modality::Flair, start, size, [true, false, false])
            .unwrap(),
    );
    assert_close(
        crop[0] as f64,
        normalised[canvas_index(12, 2, 7)],
        1e-6,
        "x",
    );
    let crop = read(
        templates
            .crop(Modality::Flair, start, size, [false, false, true])
            .unwrap(),
    );
    assert_close(
        crop[0] as f64,
        normalised[canvas_index(5, 2, 10)],
        1e-6,
        "z",
    );
}

#[test]
fn crops_off_the_canvas_and_missing_modalities_are_errors() {
    let device = Default::default();
    let templates = config().init::<B>(&device).unwrap();
    let size = [8, 8, 8];
    // Leaving the canvas along each axis by one voxel.
    for start in [[17, 0, 0], [0, 13, 0], [0, 0, 9]] {
        let error = templates.crop(Modality::Flair, start, size, [false; 3]);
        assert!(error.is_err(), "{start:?}");
    }
    // Touching the far corner is fine.
    assert!(templates
        .crop(Modality::Flair, [16, 12, 8], size, [false; 3])
        .is_ok());
    let error = templates
        .crop(Modality::Adc, [0, 0, 0], size, [false; 3])
        .unwrap_err();
    assert!(error.cause.contains("adc"), "{error}");
    assert_eq!(templates.index_of(Modality::T2), Some(2));
    assert_eq!(templates.index_of(Modality::Pd), None);
}

/// `crop` checks `canvas_start + crop_size > canvas` with a plain `+`, which wraps in release for
/// a start near `usize::MAX`: the check passes and burn's slice panics.
#[test]
fn crops_at_absurd_positions_are_errors_not_panics() {
    let device = Default::default();
    let templates = config().init::<B>(&device).unwrap();
    for start in [
        [usize::MAX - 3, 0, 0],
        [0, usize::MAX, 0],
        [0, 0, usize::MAX - 7],
    ] {
        let result = templates.crop(Modality::Flair, start, [8, 8, 8], [false; 3]);
        assert!(result.is_err(), "{start:?}");
    }
}

#[test]
fn invalid_configs_are_refused() {
    let device: burn::tensor::Device<B> = Default::default();
    let mut repeated = config();
    repeated.modalities.push(Modality::Flair);
    assert!(repeated.init::<B>(&device).is_err());
    let empty = TemplateConfig {
        canvas: CANVAS,
        modalities: vec![],
        learn: true,
        ..Default::default()
    };
    assert!(empty.validate().is_err());
    for canvas in [[0, 20, 16], [1 << 12, 1 << 12, 1 << 12]] {
        let config = TemplateConfig {
            canvas,
            modalities: vec![Modality::T1],
            learn: true,
            ..Default::default()
        };
        assert!(config.validate().is_err(), "{canvas:?}");
    }
    let default = TemplateConfig::default();
    assert_eq!(default.canvas, [240, 240, 155]);
    assert_eq!(default.modalities, Modality::ALL.to_vec());
    assert!(default.validate().is_ok());
}

#[test]
fn to_volumes_gives_xyz_dims_x_fastest_data_and_a_centred_affine() {
    let device = Default::default();
    let values = ramp_values();
    let templates = templates_with::<B>(&values, &device);
    let volumes = templates.to_volumes().unwrap();
    assert_eq!(volumes.len(), 3);
    for (index, (modality, volume)) in volumes.iter().enumerate() {
        assert_eq!(*modality, MODALITIES[index]);
        assert_eq!(volume.dims, CANVAS);
        assert_eq!(volume.data.len(), canvas_voxels());
        let normalised = normalise_host(&values[index]);
        for (x, y, z) in [(0, 0, 0), (23, 0, 0), (0, 19, 0), (0, 0, 15), (7, 11, 5)] {
            assert_close(
                volume.get(x, y, z) as f64,
                normalised[canvas_index(x, y, z)],
                1e-6,
                "voxel",
            );
        }
        for (&a, &e) in volume.data.iter().zip(&normalised) {
            assert_close(a as f64, e, 1e-6, "data");
        }
        // 1 mm voxels, the canvas centre at the world origin.
        for axis in 0..3 {
            for column in 0..3 {
                let diagonal = if axis == column { 1.0 } else { 0.0 };
                assert_eq!(volume.affine[axis][column], diagonal);
            }
        }
        assert_eq!(volume.affine[0][3], -11.5);
        assert_eq!(volume.affine[1][3], -9.5);
        assert_eq!(volume.affine[2][3], -7.5);
        assert_eq!(volume.affine[3], [0.0, 0.0, 0.0, 1.0]);
    }
}

/// Crop, block size and the two samples of the gradient test.
const GRAD_CROP: [usize; 3] = [16, 12, 8];

struct GradSample {
    target: Modality,
    volume_dims: [usize; 3],
    crop_start: [isize; 3],
    flipped: [bool; 3],
}

const GRAD_SAMPLES: [GradSample; 2] = [
    // Canvas start (24−20)/2 + 2 = 4, (20−16)/2 + 1 = 3, (16−12)/2 + 3 = 5.
    GradSample {
        target: Modality::Flair,
        volume_dims: [20, 16, 12],
        crop_start: [2, 1, 3],
        flipped: [true, false, true],
    },
    // Canvas start 0 + 6 = 6, 0 + 7 = 7, (16−14)/2 + 2 = 3.
    GradSample {
        target: Modality::T1,
        volume_dims: [24, 20, 14],
        crop_start: [6, 7, 2],
        flipped: [false, true, false],
    },
];

/// Canvas voxel (x fastest) that crop voxel `voxel` of `sample` reads from.
fn canvas_voxel_of(sample: &GradSample, start: [usize; 3], voxel: usize) -> usize {
    let [cx, cy, _] = GRAD_CROP;
    let local = [voxel % cx, (voxel / cx) % cy, voxel / (cx * cy)];
    let position: Vec<usize> = (0..3)
        .map(|axis| match sample.flipped[axis] {
            true => start[axis] + GRAD_CROP[axis] - 1 - local[axis],
            false => start[axis] + local[axis],
        })
        .collect();
    canvas_index(position[0], position[1], position[2])
}

#[test]
fn templates_receive_the_analytic_gradient_at_masked_crop_voxels_only() {
    let device = Default::default();
    let values = ramp_values();
    let templates = templates_with::<AD>(&values, &device);
    let voxels: usize = GRAD_CROP.iter().product();
    let mask_config = MaskConfig {
        block_size: 4,
        mask_ratio: 0.5,
    };
    let mut rng = Rng::new(5);
    let images: Vec<Vec<(Modality, Vec<f32>)>> = GRAD_SAMPLES
        .iter()
        .map(|sample| {
            let image = (0..voxels).map(|_| rng.uniform() as f32).collect();
            vec![(sample.target, image)]
        })
        .collect();
    let sources: Vec<ViewSource<'_>> = GRAD_SAMPLES
        .iter()
        .zip(&images)
        .map(|(sample, images)| ViewSource {
            images,
            volume_dims: sample.volume_dims,
            crop_start: sample.crop_start,
            flipped: sample.flipped,
        })
        .collect();
    let plans: Vec<SamplePlan> = GRAD_SAMPLES
        .iter()
        .map(|sample| SamplePlan {
            target: sample.target,
            other: None,
            mask_a: BlockMask::random(&mut rng, GRAD_CROP, &mask_config).unwrap(),
            mask_b: BlockMask::random(&mut rng, GRAD_CROP, &mask_config).unwrap(),
        })
        .collect();
    let views = build_views(&sources, &plans, GRAD_CROP, &templates, &device).unwrap();
    // L = Σ w · view_A with fixed, distinct weights: ∂L/∂view_A = w.
    let weights: Vec<f32> = (0..2 * voxels)
        .map(|i| 1.0 + (i % 7) as f32 * 0.25)
        .collect();
    let [x, y, z] = GRAD_CROP;
    let weight_tensor =
        Tensor::<AD, 5>::from_data(TensorData::new(weights.clone(), [2, 1, z, y, x]), &device);
    let loss = (views.view_a * weight_tensor).sum();
    let grads = loss.backward();
    let gradient = read(
        templates
            .volumes
            .val()
            .grad(&grads)
            .expect("template gradient"),
    );
    assert_eq!(gradient.len(), 3 * canvas_voxels());

    for (index, sample) in GRAD_SAMPLES.iter().enumerate() {
        let start = templates
            .canvas_start(sample.volume_dims, sample.crop_start, GRAD_CROP)
            .unwrap();
        // ∂L/∂normalised at every canvas voxel of this template.
        let mut upstream = vec![0.0f64; canvas_voxels()];
        for (voxel, masked) in plans[index].mask_a.voxel_mask().into_iter().enumerate() {
            if masked > 0.5 {
                upstream[canvas_voxel_of(sample, start, voxel)] +=
                    weights[index * voxels + voxel] as f64;
            }
        }
        let expected = analytic_template_gradient(&values[index], &upstream);
        let actual = &gradient[index * canvas_voxels()..(index + 1) * canvas_voxels()];
        let scale = expected.iter().fold(0.0f64, |acc, v| acc.max(v.abs()));
        let mut touched = 0;
        for (voxel, (&a, &e)) in actual.iter().zip(&expected).enumerate() {
            if e == 0.0 {
                assert_eq!(
                    a, 0.0,
                    "template {index} voxel {voxel} should have no gradient"
                );
            } else {
                touched += 1;
                assert_close(
                    a as f64,
                    e,
                    1e-4 * e.abs(),
                    &format!("gradient {index}/{voxel}"),
                );
            }
        }
        // The masked crop voxels plus the two extremes (the minimum and maximum feed every
        // normalised voxel): half of the 4×3×2 blocks of 4³ voxels are masked.
        let masked_voxels = plans[index].mask_a.masked_count() * 64;
        assert_eq!(masked_voxels, voxels / 2);
        assert_eq!(touched, masked_voxels + 2);
        // Min–max normalisation is shift invariant: the gradient sums to zero.
        let total: f64 = actual.iter().map(|&v| v as f64).sum();
        assert!(total.abs() < 1e-3 * scale, "gradient sum {total}");
    }
    // The third template is used by no sample: no gradient at all.
    let unused = &gradient[2 * canvas_voxels()..];
    assert!(unused.iter().all(|&v| v == 0.0));
}

/// ∂L/∂t of `n = (t − min) / (max − min + ε)` given `upstream` = ∂L/∂n, with the minimum at
/// linear index 0 and the maximum at the last index (ramp templates):
/// `δ/R` on every voxel, plus `−Σ g (max + ε − t)/R²` on the minimum and `−Σ g (t − min)/R²` on
/// the maximum.
fn analytic_template_gradient(raw: &[f32], upstream: &[f64]) -> Vec<f64> {
    let raw: Vec<f64> = raw.iter().map(|&v| v as f64).collect();
    let (low, high) = (raw[0], raw[raw.len() - 1]);
    let range = high - low + NORMALISE_EPS;
    let mut gradient: Vec<f64> = upstream.iter().map(|g| g / range).collect();
    let through_min: f64 = upstream
        .iter()
        .zip(&raw)
        .map(|(g, t)| -g * (high + NORMALISE_EPS - t) / (range * range))
        .sum();
    let through_max: f64 = upstream
        .iter()
        .zip(&raw)
        .map(|(g, t)| -g * (t - low) / (range * range))
        .sum();
    gradient[0] += through_min;
    let last = gradient.len() - 1;
    gradient[last] += through_max;
    gradient
}

#[test]
fn cohort_mean_templates_sit_under_the_crops_of_the_images_they_average() {
    use brainmvp_core::pretext::template_init::MeanAccumulator;
    let device = Default::default();
    // Two subjects of one modality (T1) on a grid smaller than the canvas: a ramp and twice it.
    let dims = [20, 16, 10];
    let voxels: usize = dims.iter().product();
    let ramp: Vec<f32> = (0..voxels).map(|i| 1.0 + i as f32).collect();
    let doubled: Vec<f32> = ramp.iter().map(|v| 2.0 * v).collect();
    let mut accumulator = MeanAccumulator::new(CANVAS, MODALITIES.len());
    accumulator.add(1, dims, &ramp);
    accumulator.add(1, dims, &doubled);
    let means = accumulator.finish();
    let templates = config()
        .init::<B>(&device)
        .unwrap()
        .with_cohort_means(&means)
        .unwrap();
    // The mean is 1.5 × the ramp; min–max normalisation over the canvas (0 outside the volume)
    // divides by its maximum, so the crop under an image crop is that crop of the ramp / max.
    let (crop_start, crop_size) = ([3isize, 2, 1], [8usize, 8, 8]);
    let start = templates.canvas_start(dims, crop_start, crop_size).unwrap();
    let crop = read(
        templates
            .crop(Modality::T1, start, crop_size, [false; 3])
            .unwrap(),
    );
    let max = 1.5 * ramp[voxels - 1] as f64;
    let mut index = 0;
    for z in 0..8 {
        for y in 0..8 {
            for x in 0..8 {
                let source = ((z + 1) * dims[1] + y + 2) * dims[0] + x + 3;
                let expected = 1.5 * ramp[source] as f64 / (max + NORMALISE_EPS);
                assert_close(crop[index] as f64, expected, 1e-6, "template crop voxel");
                index += 1;
            }
        }
    }
    // FLAIR and T2 have no image: they stay at zero; the canvas must match.
    assert!(read(templates.normalised(0)).iter().all(|&v| v == 0.0));
    let mut wrong = means.clone();
    wrong.canvas = [8, 8, 8];
    let fresh = config().init::<B>(&device).unwrap();
    assert!(fresh.with_cohort_means(&wrong).is_err());
}

#[test]
fn cohort_mean_templates_keep_learning_and_frozen_ones_stay_frozen() {
    use brainmvp_core::pretext::template_init::MeanAccumulator;
    let device = Default::default();
    let dims = [12, 10, 8];
    let image: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|i| (i % 7) as f32)
        .collect();
    let mut accumulator = MeanAccumulator::new(CANVAS, MODALITIES.len());
    accumulator.add(1, dims, &image);
    let means = accumulator.finish();
    for learn in [true, false] {
        let templates = TemplateConfig { learn, ..config() }
            .init::<AD>(&device)
            .unwrap()
            .with_cohort_means(&means)
            .unwrap();
        assert_eq!(
            templates.volumes.is_require_grad(),
            learn,
            "learn = {learn}"
        );
        let loss = templates.normalised(1).powf_scalar(2.0).sum();
        let gradients = loss.backward();
        let gradient = templates.volumes.val().grad(&gradients);
        assert_eq!(
            gradient.is_some(),
            learn,
            "learn = {learn}: gradient present"
        );
        if let Some(gradient) = gradient {
            let values = read(gradient.narrow(0, 1, 1));
            assert!(
                values.iter().any(|&g| g != 0.0),
                "T1 template gets a gradient"
            );
        }
    }
}
