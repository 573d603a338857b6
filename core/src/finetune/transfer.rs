//! Initialising a downstream encoder from a pre-trained one.
//!
//! As the official fine-tuning (`Downstream/train_script.py`, which deletes
//! `encoder.patch_embed1.proj.{weight,bias}` and loads the rest): every weight of the pre-trained
//! UniFormer is loaded, except the first patch embedding's convolution when the downstream model
//! takes another number of input channels (the pre-training sees one modality at a time, a
//! segmentation model all of them stacked); that convolution keeps the downstream model's fresh
//! initialisation, while the embedding's LayerNorm is the pre-trained one. The BatchNorm running
//! statistics travel with the weights. Any other difference in the architecture is refused.
//!
//! [`FirstEmbedding::Inflate`] is the alternative the official code does not offer: the
//! pre-trained 1-channel kernel copied to each of the `C` input channels and divided by `C` (the
//! bias kept), so that on `C` identical channels the downstream encoder computes exactly what the
//! pre-trained one computed on one, and nothing the pre-training learnt in its first layer is lost.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Uniformer;

/// Context named by the errors of this module.
const CONTEXT: &str = "pre-trained encoder";

/// The parameter that depends on the input channel count.
const FIRST_EMBEDDING_WEIGHT: &str = "patch_embeds.0.proj.weight";

/// The convolution holding it (re-initialised with its bias when the channels differ).
const FIRST_EMBEDDING_CONV: &str = "patch_embeds.0.proj";

/// What becomes of the first patch embedding's convolution when the pre-trained encoder takes
/// another number of input channels than the downstream model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirstEmbedding {
    /// Keep the downstream model's fresh initialisation (the official fine-tuning).
    #[default]
    Fresh,
    /// The pre-trained kernel repeated over the `C` input channels and scaled by `1/C`, the
    /// pre-trained bias kept (needs a 1-channel pre-trained encoder, as BrainMVP's).
    Inflate,
}

/// What [`transfer_encoder`] loaded and what it left freshly initialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderTransfer {
    /// The parts taken from the pre-trained encoder (`patch_embeds.1`, `stage1`, `norm`, ...).
    pub loaded: Vec<String>,
    /// The parts that kept the downstream model's initialisation (`patch_embeds.0.proj` or
    /// nothing).
    pub reinitialised: Vec<String>,
    /// Learnable parameters loaded (BatchNorm running statistics not counted).
    pub loaded_params: usize,
    /// Learnable parameters re-initialised.
    pub reinitialised_params: usize,
    /// Input channels of the pre-trained encoder.
    pub pretrained_channels: usize,
    /// Input channels of the downstream encoder.
    pub target_channels: usize,
    /// The first embedding was inflated from the pre-trained one (then `reinitialised` is empty).
    pub inflated: bool,
}

impl EncoderTransfer {
    /// A one-paragraph report, e.g. "loaded 21.9 M parameters (patch_embeds.1, ..., norm);
    /// re-initialised patch_embeds.0.proj (1 → 4 input channels, 2.1 k parameters)".
    pub fn summary(&self) -> String {
        let loaded = format!(
            "loaded {} parameters ({})",
            format_count(self.loaded_params),
            self.loaded.join(", ")
        );
        if self.inflated {
            return format!(
                "{loaded}; patch_embeds.0.proj inflated from the pre-trained kernel \
                 ({} → {} input channels, kernel / {})",
                self.pretrained_channels, self.target_channels, self.target_channels
            );
        }
        if self.reinitialised.is_empty() {
            return format!("{loaded}; nothing re-initialised");
        }
        format!(
            "{loaded}; re-initialised {} ({} → {} input channels, {} parameters)",
            self.reinitialised.join(", "),
            self.pretrained_channels,
            self.target_channels,
            format_count(self.reinitialised_params)
        )
    }
}

/// `21.9 M`, `3.4 k` or `512`.
fn format_count(count: usize) -> String {
    match count {
        c if c >= 1_000_000 => format!("{:.1} M", c as f64 / 1e6),
        c if c >= 1_000 => format!("{:.1} k", c as f64 / 1e3),
        c => c.to_string(),
    }
}

/// Loads `pretrained` into `target`: the result is `pretrained` (moved to `target`'s device),
/// except `patch_embeds[0].proj` when the input channel counts differ: it stays `target`'s
/// ([`FirstEmbedding::Fresh`]) or is inflated from the pre-trained one
/// ([`FirstEmbedding::Inflate`]).
///
/// Errors (one line naming the first difference) when the two encoders differ in anything else:
/// a parameter missing on one side or of another shape, or other attention heads; and when
/// inflating from an encoder of more than one input channel.
pub fn transfer_encoder<B: Backend>(
    target: Uniformer<B>,
    pretrained: Uniformer<B>,
    first_embedding: FirstEmbedding,
) -> Result<(Uniformer<B>, EncoderTransfer)> {
    let channels_differ = target.in_channels != pretrained.in_channels;
    let inflate = channels_differ && first_embedding == FirstEmbedding::Inflate;
    if inflate && pretrained.in_channels != 1 {
        return Err(Error::new(
            CONTEXT,
            format!(
                "cannot inflate a first embedding of {} input channels to {} (needs 1)",
                pretrained.in_channels, target.in_channels
            ),
        ));
    }
    let target_shapes = parameter_shapes(&target);
    check_same_architecture(
        &target_shapes,
        &parameter_shapes(&pretrained),
        channels_differ,
    )?;
    if target.heads != pretrained.heads {
        return Err(Error::new(
            CONTEXT,
            format!(
                "attention heads {:?}, the model has {:?}",
                pretrained.heads, target.heads
            ),
        ));
    }
    let mut report = transfer_report(&target, &target_shapes, pretrained.in_channels);
    let mut encoder = match target.devices().first() {
        Some(device) => pretrained.to_device(device),
        None => pretrained,
    };
    if inflate {
        let channels = target.in_channels;
        let proj = &mut encoder.patch_embeds[0].proj;
        proj.weight = proj
            .weight
            .clone()
            .map(|kernel| kernel.repeat_dim(1, channels).div_scalar(channels as f64));
        encoder.in_channels = channels;
        report.loaded_params += report.reinitialised_params;
        report.reinitialised_params = 0;
        report.loaded.insert(0, FIRST_EMBEDDING_CONV.to_string());
        report.reinitialised.clear();
        report.inflated = true;
    } else if channels_differ {
        let mut target = target;
        encoder.patch_embeds[0].proj = target.patch_embeds.remove(0).proj;
        encoder.in_channels = target.in_channels;
    }
    Ok((encoder, report))
}

/// Compares the `(path, shape)` lists of both encoders; the input-channel axis of the first
/// embedding's weight is ignored when `channels_differ`.
fn check_same_architecture(
    target: &BTreeMap<String, Vec<usize>>,
    pretrained: &BTreeMap<String, Vec<usize>>,
    channels_differ: bool,
) -> Result<()> {
    let fail = |cause: String| Err(Error::new(CONTEXT, cause));
    if let Some(path) = target.keys().find(|path| !pretrained.contains_key(*path)) {
        return fail(format!(
            "the checkpoint has no {path} (another architecture: {} tensors, the model has {})",
            pretrained.len(),
            target.len()
        ));
    }
    if let Some(path) = pretrained.keys().find(|path| !target.contains_key(*path)) {
        return fail(format!(
            "the checkpoint has {path}, which the model lacks (another architecture: {} tensors, \
             the model has {})",
            pretrained.len(),
            target.len()
        ));
    }
    for (path, shape) in target {
        let other = &pretrained[path];
        let comparable = |dims: &[usize]| -> Vec<usize> {
            let mut dims = dims.to_vec();
            if channels_differ && path == FIRST_EMBEDDING_WEIGHT && dims.len() > 1 {
                dims[1] = 0;
            }
            dims
        };
        if comparable(shape) != comparable(other) {
            return fail(format!(
                "{path} has shape {other:?} in the checkpoint, {shape:?} in the model \
                 (another architecture or preset)"
            ));
        }
    }
    Ok(())
}

/// The loaded and re-initialised parts and their learnable parameter counts.
fn transfer_report<B: Backend>(
    target: &Uniformer<B>,
    shapes: &BTreeMap<String, Vec<usize>>,
    pretrained_channels: usize,
) -> EncoderTransfer {
    let channels_differ = target.in_channels != pretrained_channels;
    let mut parts: Vec<String> = vec!["patch_embeds.0.proj".into(), "patch_embeds.0.norm".into()];
    parts.extend((1..target.patch_embeds.len()).map(|index| format!("patch_embeds.{index}")));
    parts.extend(["stage1", "stage2", "stage3", "stage4", "norm"].map(String::from));
    let (reinitialised, loaded): (Vec<String>, Vec<String>) = parts
        .into_iter()
        .partition(|part| channels_differ && part == FIRST_EMBEDDING_CONV);
    let learnable = shapes
        .iter()
        .filter(|(path, _)| !path.ends_with("running_mean") && !path.ends_with("running_var"));
    let (mut loaded_params, mut reinitialised_params) = (0, 0);
    for (path, shape) in learnable {
        let count: usize = shape.iter().product();
        match channels_differ && path.starts_with(&format!("{FIRST_EMBEDDING_CONV}.")) {
            true => reinitialised_params += count,
            false => loaded_params += count,
        }
    }
    EncoderTransfer {
        loaded,
        reinitialised,
        loaded_params,
        reinitialised_params,
        pretrained_channels,
        target_channels: target.in_channels,
        inflated: false,
    }
}

/// Every float tensor of `module` (parameters and running statistics) by its dotted path.
pub fn parameter_shapes<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, Vec<usize>> {
    let mut collector = ShapeCollector {
        path: Vec::new(),
        shapes: BTreeMap::new(),
    };
    module.visit(&mut collector);
    collector.shapes
}

/// A visitor recording the path and shape of every float tensor.
struct ShapeCollector {
    path: Vec<String>,
    shapes: BTreeMap<String, Vec<usize>>,
}

impl<B: Backend> ModuleVisitor<B> for ShapeCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.shapes
            .insert(self.path.join("."), param.val().dims().to_vec());
    }
}
