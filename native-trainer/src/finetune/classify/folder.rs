//! The classifier's model folder: `model.json` (what the network is, its classes, modalities,
//! crop and preprocessing) and `model.mpk`, written atomically and read back.

use crate::checkpoint::CheckpointRecorder;
use anyhow::{bail, Context, Result};
use brainmvp_core::fs::folder_of;
use brainmvp_core::fs::write_atomic;
use brainmvp_core::model::classifier::{Classifier, ClassifierConfig};
use brainmvp_core::preprocess::PreprocessConfig;
use brainmvp_core::Modality;
use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `format` of a classifier's `model.json`.
pub const CLASSIFIER_FORMAT: &str = "brainmvp-classifier";

/// Version of the classifier folder layout.
pub const CLASSIFIER_VERSION: u32 = 1;

/// The manifest file of a classifier folder.
pub const CLASSIFIER_MANIFEST: &str = "model.json";

/// The weights file of a classifier folder (named MessagePack, f32).
pub const CLASSIFIER_WEIGHTS: &str = "model.mpk";

/// The `model.json` of a fine-tuned classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierManifest {
    /// [`CLASSIFIER_FORMAT`].
    pub format: String,
    /// [`CLASSIFIER_VERSION`].
    pub version: u32,
    /// The network.
    pub model: ClassifierConfig,
    /// Class names, in logit order.
    pub classes: Vec<String>,
    /// Input modalities in channel order (a missing one is fed as zeros).
    pub modalities: Vec<Modality>,
    /// Edge `[x, y, z]` of the centred crop the model classifies.
    pub crop_size: [usize; 3],
    /// Preprocessing of the cache it was trained on (apply it to new cases).
    pub preprocess: PreprocessConfig,
    /// Pre-trained export it started from, or `scratch`.
    pub init: String,
    /// brainmvp version that wrote it.
    pub brainmvp_version: String,
}

/// Writes the classifier folder `dir` (weights + `model.json`), replacing it atomically.
pub fn save_classifier<B: Backend>(
    dir: &Path,
    manifest: &ClassifierManifest,
    model: &Classifier<B>,
) -> Result<()> {
    brainmvp_core::fs::replace_folder(dir, |partial| {
        let weights = partial.join(CLASSIFIER_WEIGHTS);
        model
            .clone()
            .save_file(weights.with_extension(""), &CheckpointRecorder::new())
            .with_context(|| format!("{}: cannot write", weights.display()))?;
        let json = serde_json::to_string_pretty(manifest)?;
        write_atomic(&partial.join(CLASSIFIER_MANIFEST), |file| {
            file.write_all(json.as_bytes())
        })?;
        Ok(())
    })
}

/// Reads a classifier folder (or the folder of its `model.json`).
pub fn load_classifier<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(ClassifierManifest, Classifier<B>)> {
    let dir = folder_of(dir);
    let path = dir.join(CLASSIFIER_MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: cannot read (is this a classifier folder?)",
            path.display()
        )
    })?;
    let manifest: ClassifierManifest = serde_json::from_str(&text)
        .map_err(|err| anyhow::anyhow!("{}: not a classifier manifest: {err}", path.display()))?;
    if manifest.format != CLASSIFIER_FORMAT || manifest.version != CLASSIFIER_VERSION {
        bail!(
            "{}: format {} version {}, expected {CLASSIFIER_FORMAT} version {CLASSIFIER_VERSION}",
            path.display(),
            manifest.format,
            manifest.version
        );
    }
    let weights = dir.join(CLASSIFIER_WEIGHTS);
    let model = manifest
        .model
        .init::<B>(device)?
        .load_file(
            weights.with_extension(""),
            &CheckpointRecorder::new(),
            device,
        )
        .map_err(|err| anyhow::anyhow!("{}: cannot load: {err}", weights.display()))?;
    Ok((manifest, model))
}

/// The folder the best model is kept in.
pub fn model_dir(out: &Path) -> PathBuf {
    out.join("model")
}
