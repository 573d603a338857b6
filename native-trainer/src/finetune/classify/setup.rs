//! Everything a classification job settles before its first step: the classes, the split and
//! label fraction, the network (with the pre-trained encoder), the class-balanced order.

use crate::finetune::common::{
    init_name, job_modalities, open_split_cache, pretrained_encoder, transfer_pretrained,
    SplitCache,
};
use crate::finetune::config::FinetuneConfig;
use anyhow::{Context, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::classification::balanced_sample_order;
use brainmvp_core::model::classifier::{Classifier, ClassifierConfig};
use brainmvp_core::rng::Rng;
use brainmvp_core::Modality;
use burn::tensor::backend::AutodiffBackend;
use std::collections::BTreeMap;

use super::*;

/// Salt of the class-balanced training order's random stream.
const BALANCE_SALT: u64 = 0xC1A5_5B41_A7CE_0001;

/// A classification job settled and ready to train (what its job file asked for, resolved).
pub struct PreparedClassification<B: AutodiffBackend> {
    pub reader: CacheReader,
    /// Class index of every cache subject.
    pub subject_class: Vec<usize>,
    /// Training subjects (after the label fraction), validation and test subjects.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    /// What the model folder will say (classes, modalities, network).
    pub manifest: ClassifierManifest,
    /// The network at step 0.
    pub model: Classifier<B>,
    /// The encoder transfer report (pre-trained runs).
    pub init_report: Option<String>,
}

/// Opens the cache, reads the classes, splits the subjects and builds the network.
pub fn prepare_classification<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: &B::Device,
) -> Result<PreparedClassification<B>> {
    let SplitCache {
        reader,
        ids,
        train,
        validation,
        test,
    } = open_split_cache(config)?;
    let csv = config
        .classify
        .labels_csv
        .as_deref()
        .context("task classify needs classify.labels_csv")?;
    let table = read_label_table(
        csv,
        &config.classify.id_column,
        &config.classify.label_column,
    )?;
    let (classes, subject_class) = subject_classes(&table, &ids, csv)?;
    let modalities = job_modalities(config, &reader)?;
    let (model, model_config, init_report) =
        build_classifier::<B>(config, &modalities, classes.len(), device)?;
    let manifest = ClassifierManifest {
        format: CLASSIFIER_FORMAT.to_string(),
        version: CLASSIFIER_VERSION,
        model: model_config,
        classes,
        modalities,
        crop_size: config.data.crop_size,
        preprocess: reader.manifest().prepare_config()?.preprocess,
        init: init_name(config),
        brainmvp_version: brainmvp_core::VERSION.to_string(),
    };
    log::info!(
        "subjects: {} training (label fraction {}), {} validation, {} test; classes {}; modalities {}",
        train.len(),
        config.label_fraction,
        validation.len(),
        test.len(),
        manifest.classes.join(","),
        manifest.modalities.iter().map(|m| m.name()).collect::<Vec<_>>().join(",")
    );
    Ok(PreparedClassification {
        reader,
        subject_class,
        train,
        validation,
        test,
        manifest,
        model,
        init_report,
    })
}

/// The classifier, with the pre-trained encoder transferred into it when `init` is set.
fn build_classifier<B: AutodiffBackend>(
    config: &FinetuneConfig,
    modalities: &[Modality],
    classes: usize,
    device: &B::Device,
) -> Result<(Classifier<B>, ClassifierConfig, Option<String>)> {
    let (encoder, pretrained) = pretrained_encoder::<B>(config, device)?;
    let model_config = ClassifierConfig::new(modalities.len(), classes).with_encoder(encoder);
    let mut model = model_config.init::<B>(device)?;
    let (encoder, report) = transfer_pretrained(model.encoder, pretrained, config)?;
    model.encoder = encoder;
    Ok((model, model_config, report))
}

/// The training subjects repeated so that every class present appears equally often
/// (`classes × largest class` entries, drawn by [`balanced_sample_order`]); the loader's
/// epochs run over this list.
pub fn balanced_training_order(
    train: &[usize],
    subject_class: &[usize],
    seed: u64,
) -> Result<Vec<usize>> {
    let classes: Vec<usize> = train.iter().map(|&s| subject_class[s]).collect();
    let mut counts = BTreeMap::new();
    for &class in &classes {
        *counts.entry(class).or_insert(0usize) += 1;
    }
    let largest = counts
        .values()
        .copied()
        .max()
        .context("no training subject")?;
    let mut rng = Rng::stream(seed ^ BALANCE_SALT, 0);
    let order = balanced_sample_order(&classes, counts.len() * largest, &mut rng)?;
    Ok(order.into_iter().map(|position| train[position]).collect())
}
