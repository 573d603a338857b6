//! Initialising a downstream encoder from a pre-trained one.
//!
//! As the official fine-tuning (`Downstream/train_script.py`, which deletes
//! `encoder.patch_embed1.proj.{weight,bias}` and loads the rest): every weight of the pre-trained
//! UniFormer is loaded, except the first patch embedding's convolution when the downstream model
//! takes another number of input channels (the pre-training sees one modality at a time, a
//! segmentation model all of them stacked); that convolution keeps the downstream model's fresh
//! initialisation, while the embedding's LayerNorm is the pre-trained one. The BatchNorm running
//! statistics travel with the weights. Any other difference in the architecture is refused.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::{Error, Result};
use crate::model::Uniformer;

/// Context named by the errors of this module.
const CONTEXT: &str = "pre-trained encoder";

/// The parameter that depends on the input channel count.
const FIRST_EMBEDDING_WEIGHT: &str = "patch_embeds.0.proj.weight";

/// The convolution holding it (re-initialised with its bias when the channels differ).
const FIRST_EMBEDDING_CONV: &str = "patch_embeds.0.proj";

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
/// except `patch_embeds[0].proj`, which stays `target`'s when the input channel counts differ.
///
/// Errors (one line naming the first difference) when the two encoders differ in anything else:
/// a parameter missing on one side or of another shape, or other attention heads.
pub fn transfer_encoder<B: Backend>(
    target: Uniformer<B>,
    pretrained: Uniformer<B>,
) -> Result<(Uniformer<B>, EncoderTransfer)> {
    let channels_differ = target.in_channels != pretrained.in_channels;
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
    let report = transfer_report(&target, &target_shapes, pretrained.in_channels);
    let mut encoder = match target.devices().first() {
        Some(device) => pretrained.to_device(device),
        None => pretrained,
    };
    if channels_differ {
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
