//! The pre-training network and its loss: the MSE against a hand value, every loss term recomputed
//! from the encoder and decoder outputs, the weighted total for the default and other weights, the
//! contrastive term switched off, the parameters it trains (templates included), input and config
//! errors, and the "loss falls" sanity check: a few AdamW steps on a fixed batch.

use crate::support::{device, AD};
use brainmvp_core::modality::Modality;
use brainmvp_core::model::Architecture;
use brainmvp_core::model::{PretrainDecoderConfig, UniformerConfig};
use brainmvp_core::pretext::contrastive::contrastive_loss;
use brainmvp_core::pretext::templates::TemplateConfig;
use brainmvp_core::pretext::views::{build_views, plan_step, SamplePlan, ViewConfig, ViewSource};
use brainmvp_core::pretrain::model::mean_squared_error;
use brainmvp_core::pretrain::{BrainMvp, BrainMvpConfig, LossWeights};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Tensor, TensorData};

const CANVAS: [usize; 3] = [40, 40, 40];
const MODALITIES: [Modality; 3] = [Modality::Flair, Modality::T1, Modality::T2];

fn model_config(arch: Architecture) -> BrainMvpConfig {
    BrainMvpConfig {
        arch,
        templates: TemplateConfig {
            canvas: CANVAS,
            modalities: MODALITIES.to_vec(),
            learn: true,
            ..Default::default()
        },
        temperature: 1.0,
    }
}

/// A smooth synthetic crop (values in about [0.1, 0.9]), different per subject and modality.
fn synthetic_crop(crop: [usize; 3], subject: usize, modality: Modality) -> Vec<f32> {
    let phase = 0.7 * subject as f64 + 1.3 * modality.index() as f64;
    let [nx, ny, nz] = crop;
    let mut values = Vec::with_capacity(nx * ny * nz);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let (fx, fy, fz) = (
                    x as f64 / nx as f64,
                    y as f64 / ny as f64,
                    z as f64 / nz as f64,
                );
                let wave =
                    (std::f64::consts::TAU * fx + phase).sin() * (std::f64::consts::TAU * fy).cos();
                values.push((0.5 + 0.3 * wave + 0.1 * (fz - 0.5)) as f32);
            }
        }
    }
    values
}

/// Two subjects (three and two modalities) with fixed plans for one step.
struct Batch {
    crop: [usize; 3],
    images: Vec<Vec<(Modality, Vec<f32>)>>,
    plans: Vec<SamplePlan>,
}

impl Batch {
    fn new(crop: [usize; 3], step: u64) -> Self {
        let subjects: [&[Modality]; 2] = [&MODALITIES, &[Modality::T1, Modality::T2]];
        let images: Vec<Vec<(Modality, Vec<f32>)>> = subjects
            .iter()
            .enumerate()
            .map(|(subject, modalities)| {
                modalities
                    .iter()
                    .map(|&m| (m, synthetic_crop(crop, subject, m)))
                    .collect()
            })
            .collect();
        let mut batch = Self {
            crop,
            images,
            plans: vec![],
        };
        batch.plans = plan_step(
            &batch.sources(),
            crop,
            step,
            3,
            &ViewConfig::default(),
            true,
        )
        .unwrap();
        batch
    }

    fn sources(&self) -> Vec<ViewSource<'_>> {
        self.images
            .iter()
            .enumerate()
            .map(|(subject, images)| ViewSource {
                images,
                volume_dims: [36 + 2 * subject, 34, 30],
                crop_start: [subject as isize, 1, -1],
                flipped: [subject == 1, false, false],
            })
            .collect()
    }

    /// The views with the model's current templates (rebuilt every step, as the trainer does).
    fn views(&self, model: &BrainMvp<AD>) -> brainmvp_core::pretext::views::StepViews<AD> {
        build_views(
            &self.sources(),
            &self.plans,
            self.crop,
            &model.templates,
            &device(),
        )
        .unwrap()
    }
}

fn read<const D: usize>(tensor: Tensor<AD, D>) -> Vec<f64> {
    tensor
        .into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .unwrap()
}

fn assert_relative(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance * expected.abs().max(1e-12),
        "{what}: {actual} vs expected {expected}"
    );
}

#[test]
fn mean_squared_error_matches_a_hand_value() {
    let tensor = |values: Vec<f32>, dims: [usize; 5]| {
        Tensor::<AD, 5>::from_data(TensorData::new(values, dims), &device())
    };
    // Differences 1, 0, −2, 3: squares 1, 0, 4, 9, mean 3.5.
    let prediction = tensor(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 1, 2, 2]);
    let target = tensor(vec![0.0, 2.0, 5.0, 1.0], [1, 1, 1, 2, 2]);
    let mse = mean_squared_error(prediction, target);
    assert_eq!(mse.dims(), [1]);
    assert_eq!(read(mse), vec![3.5]);
    // Two samples: differences 0.5 ×4 and −1.5 ×4: (4·0.25 + 4·2.25) / 8 = 1.25.
    let prediction = tensor(vec![1.0; 8], [2, 1, 2, 2, 1]);
    let target = tensor(
        vec![0.5, 0.5, 0.5, 0.5, 2.5, 2.5, 2.5, 2.5],
        [2, 1, 2, 2, 1],
    );
    assert_eq!(read(mean_squared_error(prediction, target)), vec![1.25]);
}

#[test]
fn loss_terms_match_the_encoder_and_decoder_outputs() {
    let model = model_config(Architecture::UniformerTiny)
        .init::<AD>(&device())
        .unwrap();
    let batch = Batch::new([32, 32, 32], 0);
    let views = batch.views(&model);
    let weights = LossWeights::default();
    assert_eq!(
        (weights.template, weights.cross_modal, weights.contrastive),
        (10.0, 1.0, 1.0)
    );
    let [total, mse_a, mse_b, contrastive] = model
        .losses(views.clone(), &weights)
        .unwrap()
        .values()
        .unwrap();
    for value in [total, mse_a, mse_b, contrastive] {
        assert!(value.is_finite() && value > 0.0, "{value}");
    }
    assert_relative(total, 10.0 * mse_a + mse_b + contrastive, 1e-5, "total");

    // Recompute every term by hand: both views through the encoder as one batch [A; B].
    let both = Tensor::cat(vec![views.view_a.clone(), views.view_b.clone()], 0);
    let deepest = model.encoder.deepest(both).unwrap();
    assert_eq!(deepest.dims(), [4, 64, 2, 2, 2]);
    let reconstruction = read(model.decoder.reconstruct(deepest.clone()).unwrap());
    let target = read(views.target.clone());
    assert_eq!(reconstruction.len(), 2 * target.len());
    let host_mse = |half: &[f64]| {
        half.iter()
            .zip(&target)
            .map(|(r, t)| (r - t) * (r - t))
            .sum::<f64>()
            / target.len() as f64
    };
    let (rec_a, rec_b) = reconstruction.split_at(target.len());
    assert_relative(mse_a, host_mse(rec_a), 1e-4, "view A MSE");
    assert_relative(mse_b, host_mse(rec_b), 1e-4, "view B MSE");
    let features_a = deepest.clone().narrow(0, 0, 2);
    let features_b = deepest.narrow(0, 2, 2);
    let expected_contrastive = read(contrastive_loss(features_a, features_b, 1.0))[0];
    assert_relative(contrastive, expected_contrastive, 1e-5, "contrastive");
    // Two samples, unit vectors, τ = 1: each cross-entropy lies in [ln(1 + e⁻²), ln(1 + e²)].
    let (low, high) = ((1.0 + (-2.0f64).exp()).ln(), (1.0 + 2.0f64.exp()).ln());
    assert!((low..=high).contains(&contrastive), "{contrastive}");

    // Other weights: same terms, another weighted sum.
    let other_weights = LossWeights {
        template: 2.5,
        cross_modal: 0.5,
        contrastive: 3.0,
    };
    let [total_2, mse_a_2, mse_b_2, contrastive_2] = model
        .losses(views, &other_weights)
        .unwrap()
        .values()
        .unwrap();
    assert_relative(mse_a_2, mse_a, 1e-6, "view A MSE again");
    assert_relative(mse_b_2, mse_b, 1e-6, "view B MSE again");
    assert_relative(contrastive_2, contrastive, 1e-6, "contrastive again");
    assert_relative(
        total_2,
        2.5 * mse_a + 0.5 * mse_b + 3.0 * contrastive,
        1e-5,
        "weighted total",
    );
}

#[test]
fn zero_contrastive_weight_drops_the_contrastive_term() {
    let model = model_config(Architecture::UniformerTiny)
        .init::<AD>(&device())
        .unwrap();
    let batch = Batch::new([32, 32, 32], 1);
    let weights = LossWeights {
        contrastive: 0.0,
        ..LossWeights::default()
    };
    let losses = model.losses(batch.views(&model), &weights).unwrap();
    let [total, mse_a, mse_b, contrastive] = losses.values().unwrap();
    assert_eq!(contrastive, 0.0);
    assert!(mse_a > 0.0 && mse_b > 0.0);
    assert_relative(
        total,
        10.0 * mse_a + mse_b,
        1e-5,
        "total without contrastive",
    );
    // Only the reconstruction terms carry a gradient, and they reach the templates.
    let grads = losses.total.backward();
    let template_grad = model.templates.volumes.val().grad(&grads).unwrap();
    let largest = template_grad.abs().max().into_scalar();
    assert!(largest > 0.0 && largest.is_finite(), "{largest}");
}

#[test]
fn the_model_trains_encoder_decoder_and_templates() {
    let device = device();
    let model = model_config(Architecture::UniformerTiny)
        .init::<AD>(&device)
        .unwrap();
    let encoder = UniformerConfig::tiny(1).init::<AD>(&device).unwrap();
    let decoder = PretrainDecoderConfig::for_uniformer(&UniformerConfig::tiny(1))
        .init::<AD>(&device)
        .unwrap();
    let template_voxels = MODALITIES.len() * CANVAS.iter().product::<usize>();
    assert_eq!(
        model.num_params(),
        encoder.num_params() + decoder.num_params() + template_voxels
    );
    let [x, y, z] = CANVAS;
    assert_eq!(model.templates.volumes.val().dims(), [3, z, y, x]);
    assert_eq!(model.temperature, 1.0);
}

#[test]
fn bad_inputs_and_configs_are_errors() {
    let device = device();
    let model = model_config(Architecture::UniformerTiny)
        .init::<AD>(&device)
        .unwrap();
    // 24³ is not a multiple of the UniFormer's total stride 16.
    let batch = Batch::new([24, 24, 24], 0);
    assert!(model
        .losses(batch.views(&model), &LossWeights::default())
        .is_err());
    for temperature in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut config = model_config(Architecture::UniformerTiny);
        config.temperature = temperature;
        assert!(config.init::<AD>(&device).is_err(), "{temperature}");
    }
    let mut config = model_config(Architecture::UniformerTiny);
    config.templates.modalities.clear();
    assert!(config.init::<AD>(&device).is_err());
    assert_eq!(Architecture::UniformerTiny.stride(), 16);
    assert_eq!(Architecture::UniformerS.stride(), 16);
    assert_eq!(Architecture::Unet3d.stride(), 8);
    assert_eq!(Architecture::UniformerTiny.name(), "uniformer-tiny");
}

#[test]
fn unet3d_losses_are_finite_and_weighted() {
    let model = model_config(Architecture::Unet3d)
        .init::<AD>(&device())
        .unwrap();
    // Stride 8: a 16³ crop (8³ blocks) is enough.
    let batch = Batch::new([16, 16, 16], 2);
    let [total, mse_a, mse_b, contrastive] = model
        .losses(batch.views(&model), &LossWeights::default())
        .unwrap()
        .values()
        .unwrap();
    for value in [total, mse_a, mse_b, contrastive] {
        assert!(value.is_finite() && value > 0.0, "{value}");
    }
    assert_relative(total, 10.0 * mse_a + mse_b + contrastive, 1e-5, "total");
}

#[test]
fn adamw_steps_on_a_fixed_batch_make_the_loss_fall() {
    let device = device();
    let mut model = model_config(Architecture::UniformerTiny)
        .init::<AD>(&device)
        .unwrap();
    let batch = Batch::new([32, 32, 32], 0);
    let weights = LossWeights::default();
    let mut optim = AdamWConfig::new().init::<AD, BrainMvp<AD>>();
    let mut totals = Vec::new();
    for _ in 0..30 {
        let losses = model.losses(batch.views(&model), &weights).unwrap();
        let values = losses.values().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{values:?}");
        totals.push(values[0]);
        let grads = GradientsParams::from_grads(losses.total.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    let (first, last) = (totals[0], totals[totals.len() - 1]);
    assert!(last < 0.7 * first, "loss {first} → {last}: {totals:?}");
    // The templates are trained by the same optimiser: no longer zero.
    let template = model.templates.volumes.val();
    let largest = template.abs().max().into_scalar();
    assert!(largest > 0.0, "templates did not move");
}

#[test]
fn frozen_templates_stay_zero_while_learnt_ones_move() {
    let device = device();
    let batch = Batch::new([32, 32, 32], 0);
    let weights = LossWeights::default();
    for learn in [false, true] {
        let mut config = model_config(Architecture::UniformerTiny);
        config.templates.learn = learn;
        let mut model = config.init::<AD>(&device).unwrap();
        let mut optim = AdamWConfig::new().init::<AD, BrainMvp<AD>>();
        for _ in 0..2 {
            let losses = model.losses(batch.views(&model), &weights).unwrap();
            let grads = GradientsParams::from_grads(losses.total.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        let largest = model.templates.volumes.val().abs().max().into_scalar();
        match learn {
            false => assert_eq!(largest, 0.0, "frozen templates changed"),
            true => assert!(largest > 0.0, "learnt templates did not move"),
        }
    }
}
