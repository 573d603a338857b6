//! What every fine-tuning task (segmentation, classification) settles the same way before its
//! first step: the cache and its split (the label fraction of the training part; a validation
//! and a test subject at least), the modalities, and the encoder (pre-trained or from scratch).

use anyhow::{bail, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::finetune::split::{label_fraction, split_subjects};
use brainmvp_core::finetune::transfer::transfer_encoder;
use brainmvp_core::fs::folder_of;
use brainmvp_core::model::{Architecture, Uniformer};
use brainmvp_core::Modality;
use burn::tensor::backend::AutodiffBackend;

use super::config::FinetuneConfig;
use crate::pretrain::pretrained::{load_pretrained_encoder, preset_of};

/// The cache of a job and its subjects by part.
pub struct SplitCache {
    pub reader: CacheReader,
    /// The subject id of every cache subject, in cache order.
    pub ids: Vec<String>,
    /// Training subjects (after the label fraction), validation and test subjects.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Opens the cache and splits its subjects; a split without a validation or a test subject is
/// refused (the best model is chosen on validation and reported on test).
pub fn open_split_cache(config: &FinetuneConfig) -> Result<SplitCache> {
    let reader = CacheReader::open(&config.cache)?;
    let ids: Vec<String> = reader
        .manifest()
        .subjects
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let split = split_subjects(
        &ids,
        config.split.validation_fraction,
        config.split.test_fraction,
        config.split.seed,
    )?;
    if split.validation.is_empty() || split.test.is_empty() {
        bail!(
            "{}: the split leaves no validation or no test subject; raise \
             split.validation_fraction / split.test_fraction",
            config.cache.display()
        );
    }
    let train = label_fraction(&split.train, config.label_fraction, config.seed)?;
    Ok(SplitCache {
        reader,
        ids,
        train,
        validation: split.validation,
        test: split.test,
    })
}

/// The modalities the job trains on: the config's, else every modality of the cache; none is
/// an error.
pub fn job_modalities(config: &FinetuneConfig, reader: &CacheReader) -> Result<Vec<Modality>> {
    let modalities = match config.modalities.is_empty() {
        true => reader.manifest().modalities.clone(),
        false => config.modalities.clone(),
    };
    if modalities.is_empty() {
        bail!("{}: no modality to train on", config.cache.display());
    }
    Ok(modalities)
}

/// What a model folder says it started from: the `init` path, or `scratch`.
pub fn init_name(config: &FinetuneConfig) -> String {
    config
        .init
        .as_ref()
        .map_or_else(|| "scratch".to_string(), |p| p.display().to_string())
}

/// The encoder a job trains and, with `init`, the pre-trained encoder it starts from (the
/// architecture is then the pre-trained one's).
pub fn pretrained_encoder<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: &B::Device,
) -> Result<(Architecture, Option<Uniformer<B>>)> {
    let Some(path) = &config.init else {
        return Ok((config.encoder, None));
    };
    let (manifest, encoder) = load_pretrained_encoder::<B>(&folder_of(path), device)?;
    Ok((preset_of(&manifest, path)?, Some(encoder)))
}

/// `encoder` with the `pretrained` one transferred into it (the first patch embedding as
/// `first_embedding` says), and the transfer's summary (logged); `encoder` itself from scratch.
pub fn transfer_pretrained<B: AutodiffBackend>(
    encoder: Uniformer<B>,
    pretrained: Option<Uniformer<B>>,
    config: &FinetuneConfig,
) -> Result<(Uniformer<B>, Option<String>)> {
    let Some(pretrained) = pretrained else {
        return Ok((encoder, None));
    };
    let (transferred, transfer) = transfer_encoder(encoder, pretrained, config.first_embedding)?;
    let summary = transfer.summary();
    log::info!("init: {summary}");
    Ok((transferred, Some(summary)))
}
