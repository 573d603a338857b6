//! The `brainmvp finetune` job file (TOML). Every field has a default; the resolved config is
//! printed at start and saved as `config.toml` beside the outputs.

use anyhow::{bail, Result};
use brainmvp_core::finetune::cutmix::CutMixConfig;
use brainmvp_core::finetune::init::FirstEmbedding;
use brainmvp_core::finetune::labels::LabelScheme;
use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::loader::LoaderConfig;
use brainmvp_core::model::EncoderPreset;
use brainmvp_core::pretrain::LrSchedule;
use brainmvp_core::Modality;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What is learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Voxel labels (UniUnet).
    Segment,
    /// One class per subject (encoder + global average pooling + linear head).
    Classify,
}

/// A whole fine-tuning job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Cache folder made by `brainmvp prepare` (with label maps for segmentation).
    pub cache: PathBuf,
    /// Output folder (config, metrics, plots, checkpoints, the model).
    pub out: PathBuf,
    /// Seed of the weights, the label fraction, the crops and the cut-mix.
    pub seed: u64,
    /// `segment` or `classify`.
    pub task: Task,
    /// Pre-trained export folder (`<pretrain out>/export`); none = from scratch.
    pub init: Option<PathBuf>,
    /// Encoder preset when training from scratch (with `init`, the export's preset is used).
    pub encoder: EncoderPreset,
    /// With `init` and more input channels than the pre-training's one: `fresh` (the official
    /// fine-tuning) re-initialises the first patch embedding's convolution, `inflate` repeats the
    /// pre-trained kernel over the channels scaled by 1/C.
    pub first_embedding: FirstEmbedding,
    /// Input modalities in channel order; empty = every modality of the cache.
    pub modalities: Vec<Modality>,
    /// Segmentation labels; none = detected from the training label maps.
    pub labels: Option<LabelScheme>,
    /// Deep supervision heads on the two finest decoder levels during training.
    pub deep_supervision: bool,
    /// Optimiser steps.
    pub steps: u64,
    /// Fraction of the training subjects used (seeded, nested: 10 % ⊂ 20 % ⊂ …).
    pub label_fraction: f64,
    /// Train/validation/test split of the cache's subjects.
    pub split: SplitConfig,
    /// Adam and its schedule.
    pub optim: FinetuneOptim,
    /// Crops and augmentation.
    pub data: FinetuneData,
    /// Template channel cut-mix (`--mix-template`).
    pub mix_template: MixTemplateConfig,
    /// Sliding-window inference for validation, test and the exported model.
    pub window: SlidingWindowConfig,
    /// Validation and checkpoints.
    pub validation: ValidationConfig,
    /// Classification labels (task `classify`).
    pub classify: ClassifyConfig,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            cache: PathBuf::from("cache"),
            out: PathBuf::from("runs/finetune"),
            seed: 0,
            task: Task::Segment,
            init: None,
            encoder: EncoderPreset::Small,
            first_embedding: FirstEmbedding::Fresh,
            modalities: Vec::new(),
            labels: None,
            deep_supervision: true,
            steps: 1000,
            label_fraction: 1.0,
            split: SplitConfig::default(),
            optim: FinetuneOptim::default(),
            data: FinetuneData::default(),
            mix_template: MixTemplateConfig::default(),
            window: SlidingWindowConfig::default(),
            validation: ValidationConfig::default(),
            classify: ClassifyConfig::default(),
        }
    }
}

/// Which subjects train, validate and test; the test set depends only on this seed, so runs
/// with different training seeds and label fractions share it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    pub validation_fraction: f64,
    pub test_fraction: f64,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            validation_fraction: 0.2,
            test_fraction: 0.2,
            seed: 0,
        }
    }
}

/// Adam (PyTorch's L2 weight decay) with a warm-up cosine schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneOptim {
    pub lr: f64,
    pub min_lr: f64,
    pub weight_decay: f64,
    pub warmup_fraction: f64,
    /// With `init`: the pre-trained encoder's learning rate is `lr × encoder_lr_scale` (the
    /// decoder, new heads and the re-initialised first embedding train at `lr`). 1 = official.
    pub encoder_lr_scale: f64,
    /// With `init`: the pre-trained encoder is frozen (no update; BatchNorm statistics still
    /// follow the data) for this many first steps while the fresh decoder learns to read it.
    pub freeze_encoder_steps: u64,
}

impl Default for FinetuneOptim {
    fn default() -> Self {
        Self {
            lr: 3e-4,
            min_lr: 0.0,
            weight_decay: 1e-4,
            warmup_fraction: 0.0,
            encoder_lr_scale: 1.0,
            freeze_encoder_steps: 0,
        }
    }
}

/// Crops and augmentation of the training loader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneData {
    /// Crop edge `[x, y, z]` (a multiple of 16).
    pub crop_size: [usize; 3],
    pub batch_size: usize,
    pub workers: usize,
    pub flips: bool,
    pub intensity_shift: f32,
    pub intensity_scale: f32,
    /// Probability that a crop is centred on a labelled voxel (0 = uniform crops, as official).
    pub foreground_fraction: f64,
}

impl Default for FinetuneData {
    fn default() -> Self {
        Self {
            crop_size: [96, 96, 96],
            batch_size: 2,
            workers: 2,
            flips: true,
            intensity_shift: 0.1,
            intensity_scale: 0.1,
            foreground_fraction: 0.0,
        }
    }
}

/// Template channel cut-mix: templates come from `init`'s export (or `templates`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixTemplateConfig {
    pub enabled: bool,
    /// Folder of `<modality>.nii.gz` templates; none = `<init>/templates`.
    pub templates: Option<PathBuf>,
    #[serde(flatten)]
    pub cut_mix: CutMixConfig,
}

/// When to validate and checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Optimiser steps between validations (and at the end); the best mean Dice is kept.
    pub every: u64,
    /// Steps between greppable log lines.
    pub log_every: u64,
    /// Checkpoints kept.
    pub keep: usize,
    /// Also validate the untouched model before the first step (the baseline Dice).
    pub at_start: bool,
    /// Stop when this many validations in a row did not beat the best (0 = run every step).
    pub patience: u64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            every: 100,
            log_every: 10,
            keep: 2,
            at_start: true,
            patience: 0,
        }
    }
}

/// Subject classes from a CSV table (the synthetic cohort's `subjects.csv` by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyConfig {
    /// The table; none = `subjects.csv` next to the cohort the cache came from is not known,
    /// so it must be given for `classify`.
    pub labels_csv: Option<PathBuf>,
    /// Column holding the subject id.
    pub id_column: String,
    /// Column holding the class.
    pub label_column: String,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            labels_csv: None,
            id_column: "id".into(),
            label_column: "grade".into(),
        }
    }
}

impl FinetuneConfig {
    /// The learning-rate schedule over the optimiser steps.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            base_lr: self.optim.lr,
            min_lr: self.optim.min_lr,
            warmup_steps: (self.optim.warmup_fraction * self.steps as f64).round() as u64,
            total_steps: self.steps,
        }
    }

    /// The training loader's settings.
    pub fn loader(&self) -> LoaderConfig {
        LoaderConfig {
            crop_size: self.data.crop_size,
            batch_size: self.data.batch_size,
            flips: self.data.flips,
            intensity_shift: self.data.intensity_shift,
            intensity_scale: self.data.intensity_scale,
            workers: self.data.workers,
            queue_depth: 2 * self.data.workers.max(1),
            seed: self.seed,
            foreground_fraction: self.data.foreground_fraction,
        }
    }

    /// The templates folder used by cut-mix and for missing modalities, if any.
    pub fn templates_dir(&self) -> Option<PathBuf> {
        self.mix_template
            .templates
            .clone()
            .or_else(|| self.init.as_ref().map(|init| init.join("templates")))
    }
}

impl crate::job::JobFile for FinetuneConfig {
    /// Checks everything that can be checked before touching data.
    fn validate(&self) -> Result<()> {
        self.window.validate()?;
        self.schedule().validate()?;
        if let Some(labels) = &self.labels {
            labels.validate()?;
        }
        if self.steps == 0 || self.data.batch_size == 0 {
            bail!("steps and data.batch_size must be at least 1");
        }
        if self.validation.every == 0 || self.validation.keep == 0 {
            bail!("validation.every and validation.keep must be at least 1");
        }
        if !(self.optim.encoder_lr_scale >= 0.0 && self.optim.encoder_lr_scale.is_finite()) {
            bail!(
                "optim.encoder_lr_scale {} must be a finite number ≥ 0",
                self.optim.encoder_lr_scale
            );
        }
        if !(self.label_fraction > 0.0 && self.label_fraction <= 1.0) {
            bail!("label_fraction {} is outside (0, 1]", self.label_fraction);
        }
        if !(0.0..=1.0).contains(&self.data.foreground_fraction) {
            bail!(
                "data.foreground_fraction {} is outside [0, 1]",
                self.data.foreground_fraction
            );
        }
        for (axis, &edge) in self.data.crop_size.iter().enumerate() {
            if edge == 0 || edge % brainmvp_core::model::uniformer::TOTAL_STRIDE != 0 {
                bail!("data.crop_size[{axis}] = {edge} must be a positive multiple of 16");
            }
        }
        if self.task == Task::Classify && self.classify.labels_csv.is_none() {
            bail!("task classify needs classify.labels_csv (e.g. the cohort's subjects.csv)");
        }
        if self.mix_template.enabled && self.init.is_none() && self.mix_template.templates.is_none()
        {
            bail!("mix_template needs templates: set init (a pre-trained export) or mix_template.templates");
        }
        Ok(())
    }
}
