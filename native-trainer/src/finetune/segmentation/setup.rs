//! Everything a segmentation job settles before its first step: the split, modalities and
//! encoder as every task ([`crate::finetune::common`]), then the label scheme, the templates,
//! and the network (with the pre-trained encoder loaded into it).

use anyhow::{bail, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::inference::segment::{SegmenterManifest, SEGMENTER_FORMAT, SEGMENTER_VERSION};
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::model::{UniUnet, UniUnetConfig};
use brainmvp_core::preprocess::PreprocessConfig;
use brainmvp_core::template_bank::TemplateBank;
use brainmvp_core::Modality;
use burn::tensor::backend::AutodiffBackend;
use std::path::PathBuf;

use super::data::InputPlan;
use crate::finetune::common::{
    init_name, job_modalities, open_split_cache, pretrained_encoder, transfer_pretrained,
    SplitCache,
};
use crate::finetune::config::FinetuneConfig;
use crate::model_folder::load_template_bank;

/// A segmentation job settled and ready to train (what its job file asked for, resolved).
pub struct PreparedSegmentation<B: AutodiffBackend> {
    pub reader: CacheReader,
    /// Training subjects (after the label fraction), validation and test subjects.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    /// What the fine-tuned model folder will say.
    pub manifest: SegmenterManifest,
    /// The network at step 0.
    pub model: UniUnet<B>,
    /// Templates (cut-mix and missing modalities) and where they came from.
    pub templates: Option<TemplateBank>,
    pub templates_dir: Option<PathBuf>,
    /// The encoder transfer report (pre-trained runs).
    pub init_report: Option<String>,
    pub device: B::Device,
}

impl<B: AutodiffBackend> PreparedSegmentation<B> {
    /// How training batches become inputs.
    pub fn input_plan<'a>(&'a self, config: &'a FinetuneConfig) -> InputPlan<'a> {
        InputPlan {
            modalities: &self.manifest.modalities,
            templates: self.templates.as_ref(),
            cut_mix: config
                .mix_template
                .enabled
                .then_some(&config.mix_template.cut_mix),
            seed: config.seed,
        }
    }
}

/// Opens the cache, splits it, settles modalities, labels and templates, builds the network.
pub fn prepare_segmentation<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: &B::Device,
) -> Result<PreparedSegmentation<B>> {
    let SplitCache {
        reader,
        train,
        validation,
        test,
        ..
    } = open_split_cache(config)?;
    let modalities = job_modalities(config, &reader)?;
    let labels = match &config.labels {
        Some(labels) => labels.clone(),
        None => detect_labels(&reader, &train)?,
    };
    let templates_dir = config.templates_dir().filter(|dir| dir.is_dir());
    let templates = match &templates_dir {
        Some(dir) => Some(load_template_bank(dir, &modalities)?),
        None => None,
    };
    let (model, model_config, init_report) =
        build_model::<B>(config, &modalities, &labels, device)?;
    let preprocess = reader.manifest().prepare_config()?.preprocess;
    check_pipeline(config, &preprocess)?;
    let manifest = segmenter_manifest(config, &model_config, &modalities, &labels, preprocess);
    manifest.validate()?;
    log::info!(
        "subjects: {} training (label fraction {}), {} validation, {} test; modalities {}; labels {:?}",
        train.len(),
        config.label_fraction,
        validation.len(),
        test.len(),
        modalities.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
        labels
    );
    Ok(PreparedSegmentation {
        reader,
        train,
        validation,
        test,
        manifest,
        model,
        templates,
        templates_dir,
        init_report,
        device: device.clone(),
    })
}

/// BraTS when every label value is a BraTS one, else the classes present.
fn detect_labels(reader: &CacheReader, subjects: &[usize]) -> Result<LabelScheme> {
    let mut maps = Vec::with_capacity(subjects.len());
    for &subject in subjects {
        maps.push(reader.read_label_volume(subject)?.data);
    }
    let slices: Vec<&[u8]> = maps.iter().map(Vec::as_slice).collect();
    let brats = slices.iter().all(|map| map.iter().all(|&v| v <= 4));
    Ok(match brats {
        true => LabelScheme::detect_brats(&slices),
        false => LabelScheme::classes_of(&slices),
    })
}

/// The network, with the pre-trained encoder transferred into it when `init` is set.
fn build_model<B: AutodiffBackend>(
    config: &FinetuneConfig,
    modalities: &[Modality],
    labels: &LabelScheme,
    device: &B::Device,
) -> Result<(UniUnet<B>, UniUnetConfig, Option<String>)> {
    let (encoder, pretrained) = pretrained_encoder::<B>(config, device)?;
    let model_config = UniUnetConfig::new(modalities.len(), labels.out_channels())
        .with_encoder(encoder)
        .with_deep_supervision(config.deep_supervision);
    let mut model = model_config.init::<B>(device)?;
    let (encoder, report) = transfer_pretrained(model.encoder, pretrained, config)?;
    model.encoder = encoder;
    Ok((model, model_config, report))
}

/// Refuses a job whose `preprocess` is not the pipeline its cache was prepared with.
fn check_pipeline(config: &FinetuneConfig, cache: &PreprocessConfig) -> Result<()> {
    match config.preprocess {
        Some(wanted) if wanted != cache.pipeline => bail!(
            "{}: prepared with the {} preprocessing, the job asks for {}; prepare the cache \
             again with `[preprocess] pipeline = \"{}\"` in the prepare config",
            config.cache.display(),
            cache.pipeline.name(),
            wanted.name(),
            wanted.name()
        ),
        _ => Ok(()),
    }
}

/// The manifest of the model this job trains.
pub fn segmenter_manifest(
    config: &FinetuneConfig,
    model: &UniUnetConfig,
    modalities: &[Modality],
    labels: &LabelScheme,
    preprocess: PreprocessConfig,
) -> SegmenterManifest {
    SegmenterManifest {
        format: SEGMENTER_FORMAT.to_string(),
        version: SEGMENTER_VERSION,
        model: model.clone(),
        modalities: modalities.to_vec(),
        labels: labels.clone(),
        preprocess,
        window: config.window.clone(),
        templates: Vec::new(),
        init: init_name(config),
        brainmvp_version: brainmvp_core::VERSION.to_string(),
    }
}
