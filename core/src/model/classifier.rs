//! The classification model: the [UniFormer](super::uniformer) encoder with the modalities
//! stacked as input channels, global average pooling of its deepest feature map (the stage-4
//! output after the encoder's final BatchNorm) and a linear head giving one logit per class.
//!
//! [`class_balanced_cross_entropy`] is PyTorch's `cross_entropy` with optional class weights
//! (`Σ w_y · (−ln softmax(x)_y) / Σ w_y`), for unbalanced classes.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::architecture::Architecture;
use super::uniformer::Uniformer;
use crate::error::Error;

/// Largest number of classes a [`Classifier`] may have.
pub const MAX_CLASSES: usize = 1024;

crate::config! {
    /// Configuration of a [`Classifier`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ClassifierConfig {
        /// Input channels (number of modalities stacked as channels).
        pub in_channels: usize = 4,
        /// Number of classes (at least 2).
        pub classes: usize = 2,
        /// Encoder: `uniformer-s` or `uniformer-tiny`.
        pub encoder: Architecture = Architecture::UniformerS,
    }
}

impl ClassifierConfig {
    /// This config with `in_channels`, `classes` given and every other field at its default.
    pub fn new(in_channels: usize, classes: usize) -> Self {
        Self {
            in_channels,
            classes,
            ..Self::default()
        }
    }
}

impl ClassifierConfig {
    /// Checks that the configuration describes a buildable model.
    pub fn validate(&self) -> crate::Result<()> {
        self.encoder
            .uniformer_config(self.in_channels)
            .and_then(|config| config.validate())
            .map_err(|err| err.with_context("classifier config"))?;
        if !(2..=MAX_CLASSES).contains(&self.classes) {
            return Err(Error::new(
                "classifier config",
                format!("{} classes, expected 2 to {MAX_CLASSES}", self.classes),
            ));
        }
        Ok(())
    }

    /// Builds the model on `device` after [validating](Self::validate) the configuration: the
    /// encoder as [`UniformerConfig::init`](super::UniformerConfig::init), the head with PyTorch's
    /// `nn.Linear` default (uniform in `±1/√width`, burn's default).
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Classifier<B>> {
        self.validate()?;
        let encoder_config = self.encoder.uniformer_config(self.in_channels)?;
        let encoder = encoder_config.init(device)?;
        let head = LinearConfig::new(encoder_config.widths[3], self.classes).init(device);
        Ok(Classifier { encoder, head })
    }
}

/// UniFormer encoder + global average pooling + linear head. Build it with
/// [`ClassifierConfig::init`].
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    /// The UniFormer encoder (load a pre-trained one with
    /// [`transfer_encoder`](crate::finetune::transfer::transfer_encoder)).
    pub encoder: Uniformer<B>,
    /// The linear head, `widths[3] → classes`.
    pub head: Linear<B>,
}

impl<B: Backend> Classifier<B> {
    /// Learnable parameters: the encoder's (BatchNorm running statistics excluded) and the
    /// head's `width · classes + classes`.
    pub fn num_learnable_params(&self) -> usize {
        self.encoder.num_learnable_params() + self.head.num_params()
    }

    /// The pooled features `[N, widths[3]]`: the mean of the stage-4 map over its voxels.
    /// The input must satisfy [`Uniformer::check_input`].
    pub fn features(&self, input: Tensor<B, 5>) -> Tensor<B, 2> {
        let [_, _, _, stage4] = self.encoder.forward(input);
        global_average_pool(stage4)
    }

    /// Logits `[N, classes]` of an `[N, C, D, H, W]` input that satisfies
    /// [`Uniformer::check_input`] (use [`try_forward`](Self::try_forward) on unchecked input).
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 2> {
        self.head.forward(self.features(input))
    }

    /// [`forward`](Self::forward) after checking the input shape (channels, multiples of 16,
    /// bounded attention memory).
    pub fn try_forward(&self, input: Tensor<B, 5>) -> crate::Result<Tensor<B, 2>> {
        self.encoder
            .check_input(input.dims())
            .map_err(|err| err.with_context("classifier input"))?;
        Ok(self.forward(input))
    }
}

/// Mean over the spatial axes: `[N, C, D, H, W] → [N, C]`.
pub fn global_average_pool<B: Backend>(map: Tensor<B, 5>) -> Tensor<B, 2> {
    let [batch, channels, ..] = map.dims();
    map.flatten::<3>(2, 4)
        .mean_dim(2)
        .reshape([batch, channels])
}

/// Cross-entropy of `logits` `[N, K]` against class indices `labels` `[N]` (each in `0..K`),
/// averaged over the batch, or with `weights` (one per class) the weighted average
/// `Σ w_{y_i}·(−ln softmax(x_i)_{y_i}) / Σ w_{y_i}` (PyTorch's `cross_entropy(weight=w)`).
/// Errors when `weights` does not have `K` entries or is not positive and finite.
pub fn class_balanced_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    weights: Option<&[f64]>,
) -> crate::Result<Tensor<B, 1>> {
    let [batch, classes] = logits.dims();
    let device = logits.device();
    let picked = labels.clone().reshape([batch, 1]);
    let nll = log_softmax(logits, 1)
        .gather(1, picked)
        .reshape([batch])
        .neg();
    let Some(weights) = weights else {
        return Ok(nll.mean());
    };
    if weights.len() != classes || !weights.iter().all(|w| w.is_finite() && *w > 0.0) {
        return Err(Error::new(
            "class-balanced cross-entropy",
            format!(
                "{} weights for {classes} classes; they must be positive and finite",
                weights.len()
            ),
        ));
    }
    let values: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let class_weights = Tensor::<B, 1>::from_data(TensorData::new(values, [classes]), &device);
    let sample_weights = class_weights.select(0, labels);
    Ok((nll * sample_weights.clone()).sum() / sample_weights.sum())
}
