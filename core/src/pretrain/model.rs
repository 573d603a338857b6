//! The BrainMVP pre-training network and its loss, as `RecModel.forward` of the official code:
//! both views go through the encoder as one batch `[A; B]`, the decoder reconstructs the target
//! modality from the deepest feature map only (no skips), and
//! `L = w_A · MSE(rec_A, target) + w_B · MSE(rec_B, target) + w_CL · L_CL(z_A, z_B)`
//! with the weights 10, 1, 1 by default.
//!
//! The official decoder permutes the deepest feature map (`x4.permute(0,1,3,4,2)`); that undoes
//! the official encoder's own input permutation (`[N,C,H,W,D]` → `[N,C,D,H,W]`). Our tensors are
//! `[N,C,D,H,W]` throughout, so neither permutation is needed and the result is the same.

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::decoder::{
    PretrainDecoder, PretrainDecoderConfig, UnetDecoder, UnetDecoderConfig,
};
use crate::model::unet3d::{Unet3d, Unet3dConfig};
use crate::model::{Architecture, Uniformer, UniformerConfig};
use crate::pretext::contrastive::{contrastive_loss, contrastive_loss_gathered, NegativeGather};
use crate::pretext::templates::{ModalityTemplates, TemplateConfig};
use crate::pretext::views::StepViews;

crate::config! {
    /// Weights of the three loss terms.
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct LossWeights {
        /// View A (template distillation) reconstruction MSE: 10.
        pub template: f64 = 10.0,
        /// View B (cross-modal) reconstruction MSE: 1.
        pub cross_modal: f64 = 1.0,
        /// Modality-aware contrastive loss: 1.
        pub contrastive: f64 = 1.0,
    }
}

crate::config! {
    /// What to build: backbone, input channels, templates, contrastive temperature.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct BrainMvpConfig {
        /// Backbone.
        pub arch: Architecture = Architecture::UniformerS,
        /// Template canvas and modalities.
        pub templates: TemplateConfig = TemplateConfig::default(),
        /// Contrastive temperature τ.
        pub temperature: f64 = 1.0,
    }
}

impl BrainMvpConfig {
    /// Builds the network (single-modality input, as in pre-training).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<BrainMvp<B>> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::new(
                "pre-training model",
                format!("temperature {} must be positive", self.temperature),
            ));
        }
        let (encoder, decoder) = match self.arch {
            Architecture::UniformerS | Architecture::UniformerTiny => {
                let config = match self.arch {
                    Architecture::UniformerS => UniformerConfig::small(1),
                    _ => UniformerConfig::tiny(1),
                };
                let decoder = PretrainDecoderConfig::for_uniformer(&config).init(device)?;
                (
                    Encoder::Uniformer(config.init(device)?),
                    Decoder::Linear(decoder),
                )
            }
            Architecture::Unet3d => {
                let config = Unet3dConfig::official(1);
                let decoder = UnetDecoderConfig::for_unet3d(&config).init(device)?;
                (
                    Encoder::Unet3d(config.init(device)?),
                    Decoder::Unet(decoder),
                )
            }
        };
        Ok(BrainMvp {
            encoder,
            decoder,
            templates: self.templates.init(device)?,
            temperature: self.temperature,
        })
    }
}

/// The pre-trained backbone.
#[derive(Module, Debug)]
pub enum Encoder<B: Backend> {
    /// UniFormer (S or tiny).
    Uniformer(Uniformer<B>),
    /// UNet3D.
    Unet3d(Unet3d<B>),
}

impl<B: Backend> Encoder<B> {
    /// The deepest feature map of `[N, 1, z, y, x]`.
    pub fn deepest(&self, input: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        match self {
            Self::Uniformer(encoder) => {
                let [_, _, _, deepest] = encoder.try_forward(input)?;
                Ok(deepest)
            }
            Self::Unet3d(encoder) => {
                let [_, _, _, deepest] = encoder.try_forward(input)?;
                Ok(deepest)
            }
        }
    }
}

/// The reconstruction decoder paired with the backbone.
#[derive(Module, Debug)]
pub enum Decoder<B: Backend> {
    /// Four bias-free transposed convolutions and a 1×1×1 output conv (UniFormer).
    Linear(PretrainDecoder<B>),
    /// The official UNet3D up-sampling decoder.
    Unet(UnetDecoder<B>),
}

impl<B: Backend> Decoder<B> {
    /// The reconstruction `[N, 1, z, y, x]` from the deepest feature map.
    pub fn reconstruct(&self, deepest: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        match self {
            Self::Linear(decoder) => decoder.try_forward(deepest),
            Self::Unet(decoder) => decoder.try_forward(deepest),
        }
    }
}

/// Encoder + decoder + learnable modality templates: everything the optimiser trains.
#[derive(Module, Debug)]
pub struct BrainMvp<B: Backend> {
    /// The backbone (exported for fine-tuning).
    pub encoder: Encoder<B>,
    /// The reconstruction decoder (discarded after pre-training).
    pub decoder: Decoder<B>,
    /// One learnable template per modality.
    pub templates: ModalityTemplates<B>,
    /// Contrastive temperature τ.
    pub temperature: f64,
}

/// The loss terms of one step (each of shape `[1]`).
#[derive(Debug, Clone)]
pub struct StepLosses<B: Backend> {
    /// Weighted total, the quantity differentiated.
    pub total: Tensor<B, 1>,
    /// View A reconstruction MSE (unweighted).
    pub mse_template: Tensor<B, 1>,
    /// View B reconstruction MSE (unweighted).
    pub mse_cross_modal: Tensor<B, 1>,
    /// Contrastive loss (unweighted; 0 when its weight is 0).
    pub contrastive: Tensor<B, 1>,
}

impl<B: Backend> StepLosses<B> {
    /// `[total, mse_template, mse_cross_modal, contrastive]` read back in one transfer.
    pub fn values(&self) -> Result<[f64; 4]> {
        let all = Tensor::cat(
            vec![
                self.total.clone(),
                self.mse_template.clone(),
                self.mse_cross_modal.clone(),
                self.contrastive.clone(),
            ],
            0,
        );
        let values = all
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .map_err(|err| Error::new("pre-training losses", format!("{err:?}")))?;
        Ok([values[0], values[1], values[2], values[3]])
    }
}

impl<B: Backend> BrainMvp<B> {
    /// Runs both views through the network and returns the weighted loss and its terms.
    pub fn losses(&self, views: StepViews<B>, weights: &LossWeights) -> Result<StepLosses<B>> {
        self.losses_with(views, weights, None)
    }

    /// [`losses`](Self::losses) with the contrastive negatives of every device when `negatives`
    /// is given (data-parallel training with `gather_negatives`).
    pub fn losses_with(
        &self,
        views: StepViews<B>,
        weights: &LossWeights,
        negatives: Option<&dyn NegativeGather<B>>,
    ) -> Result<StepLosses<B>> {
        let samples = views.view_a.dims()[0];
        let both = Tensor::cat(vec![views.view_a, views.view_b], 0);
        let deepest = self.encoder.deepest(both)?;
        let reconstruction = self.decoder.reconstruct(deepest.clone())?;
        if reconstruction.dims() != [&[2 * samples][..], &views.target.dims()[1..]].concat()[..] {
            return Err(Error::new(
                "pre-training model",
                format!(
                    "reconstruction {:?} does not match the target {:?}: the crop must be a multiple of the encoder stride",
                    reconstruction.dims(),
                    views.target.dims()
                ),
            ));
        }
        let rec_a = reconstruction.clone().narrow(0, 0, samples);
        let rec_b = reconstruction.narrow(0, samples, samples);
        let mse_template = mean_squared_error(rec_a, views.target.clone());
        let mse_cross_modal = mean_squared_error(rec_b, views.target);
        let contrastive = match weights.contrastive > 0.0 {
            true => {
                let features_a = deepest.clone().narrow(0, 0, samples);
                let features_b = deepest.narrow(0, samples, samples);
                match negatives {
                    Some(gather) => {
                        contrastive_loss_gathered(features_a, features_b, self.temperature, gather)?
                    }
                    None => contrastive_loss(features_a, features_b, self.temperature),
                }
            }
            false => Tensor::zeros([1], &mse_template.device()),
        };
        let total = mse_template.clone().mul_scalar(weights.template)
            + mse_cross_modal.clone().mul_scalar(weights.cross_modal)
            + contrastive.clone().mul_scalar(weights.contrastive);
        Ok(StepLosses {
            total,
            mse_template,
            mse_cross_modal,
            contrastive,
        })
    }
}

/// Mean over all voxels of the squared difference, shape `[1]`.
pub fn mean_squared_error<B: Backend>(
    prediction: Tensor<B, 5>,
    target: Tensor<B, 5>,
) -> Tensor<B, 1> {
    let difference = prediction - target;
    (difference.clone() * difference).mean()
}
