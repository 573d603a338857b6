//! The `brainmvp finetune` job file (TOML). Every field has a default; the resolved config is
//! printed at start and saved as `config.toml` beside the outputs.

use anyhow::{bail, Result};
use brainmvp_core::finetune::cutmix::CutMixConfig;
use brainmvp_core::finetune::transfer::FirstEmbedding;
use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::loader::LoaderConfig;
use brainmvp_core::model::Architecture;
use brainmvp_core::optim::LrSchedule;
use brainmvp_core::preprocess::Pipeline;
use brainmvp_core::Modality;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;

use crate::section::Section;

/// What is learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Voxel labels (UniUnet).
    Segment,
    /// One class per subject (encoder + global average pooling + linear head).
    Classify,
}

brainmvp_core::config! {
    /// A whole fine-tuning job.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct FinetuneConfig {
        /// Cache folder made by `brainmvp prepare` (with label maps for segmentation).
        pub cache: PathBuf = PathBuf::from("cache"),
        /// Output folder (config, metrics, plots, checkpoints, the model).
        pub out: PathBuf = PathBuf::from("runs/finetune"),
        /// The preprocessing the model records and runs on raw images (`pretraining` or
        /// `official-downstream`): the cache must have been prepared with it (`brainmvp prepare`
        /// with `[preprocess] pipeline = "..."`); none = the cache's, whichever it is.
        pub preprocess: Option<Pipeline> = None,
        /// Seed of the weights, the label fraction, the crops and the cut-mix.
        pub seed: u64 = 0,
        /// `segment` or `classify`.
        pub task: Task = Task::Segment,
        /// Pre-trained export folder (`<pretrain out>/export`); none = from scratch.
        pub init: Option<PathBuf> = None,
        /// Encoder preset when training from scratch (with `init`, the export's preset is used).
        pub encoder: Architecture = Architecture::UniformerS,
        /// With `init` and more input channels than the pre-training's one: `fresh` (the
        /// official fine-tuning) re-initialises the first patch embedding's convolution,
        /// `inflate` repeats the pre-trained kernel over the channels scaled by 1/C.
        pub first_embedding: FirstEmbedding = FirstEmbedding::Fresh,
        /// Input modalities in channel order; empty = every modality of the cache.
        pub modalities: Vec<Modality> = Vec::new(),
        /// Segmentation labels; none = detected from the training label maps.
        pub labels: Option<LabelScheme> = None,
        /// Deep supervision heads on the two finest decoder levels during training.
        pub deep_supervision: bool = true,
        /// Optimiser steps.
        pub steps: u64 = 1000,
        /// Fraction of the training subjects used (seeded, nested: 10 % ⊂ 20 % ⊂ …).
        pub label_fraction: f64 = 1.0,
        /// Train/validation/test split of the cache's subjects.
        pub split: SplitConfig,
        /// Adam and its schedule.
        pub optim: FinetuneOptim,
        /// Crops and augmentation of the training loader: the `[data]` keys are the loader's
        /// ([`LoaderConfig`]) except `seed` (the job's `seed` wins) and `queue_depth` (always
        /// twice `workers`); see [`FinetuneConfig::loader`].
        #[serde(serialize_with = "serialize_data", deserialize_with = "deserialize_data")]
        pub data: LoaderConfig = LoaderConfig {
            crop_size: [96, 96, 96],
            batch_size: 2,
            workers: 2,
            flips: true,
            intensity_shift: 0.1,
            intensity_scale: 0.1,
            // 0 = uniform crops, as the official fine-tuning.
            foreground_fraction: 0.0,
            ..LoaderConfig::default()
        },
        /// Template channel cut-mix (`--mix-template`).
        pub mix_template: MixTemplateConfig,
        /// Sliding-window inference for validation, test and the exported model.
        pub window: SlidingWindowConfig,
        /// Validation and checkpoints.
        pub validation: ValidationConfig,
        /// Classification labels (task `classify`).
        pub classify: ClassifyConfig,
    }
}

/// The `[data]` section: the loader's keys over the job's defaults, less the job's own.
const DATA: Section<LoaderConfig> = Section {
    defaults: || FinetuneConfig::default().data,
    set_by_job: &[
        ("seed", "the loader's seed is the job's `seed`"),
        (
            "queue_depth",
            "the fine-tuning loader queues twice `workers` batches",
        ),
    ],
};

/// Prints `[data]` (serde's `serialize_with` of the `data` field).
fn serialize_data<S: Serializer>(data: &LoaderConfig, serializer: S) -> Result<S::Ok, S::Error> {
    DATA.serialize(data, serializer)
}

/// Reads `[data]` (serde's `deserialize_with` of the `data` field).
fn deserialize_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LoaderConfig, D::Error> {
    DATA.deserialize(deserializer)
}

brainmvp_core::config! {
    /// Which subjects train, validate and test; the test set depends only on this seed, so runs
    /// with different training seeds and label fractions share it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct SplitConfig {
        pub validation_fraction: f64 = 0.2,
        pub test_fraction: f64 = 0.2,
        pub seed: u64 = 0,
    }
}

brainmvp_core::config! {
    /// Adam (PyTorch's L2 weight decay) with a warm-up cosine schedule.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct FinetuneOptim {
        pub lr: f64 = 3e-4,
        pub min_lr: f64 = 0.0,
        pub weight_decay: f64 = 1e-4,
        pub warmup_fraction: f64 = 0.0,
        /// With `init`: the pre-trained encoder's learning rate is `lr × encoder_lr_scale` (the
        /// decoder, new heads and the re-initialised first embedding train at `lr`). 1 = official.
        pub encoder_lr_scale: f64 = 1.0,
        /// With `init`: the pre-trained encoder is frozen (no update; BatchNorm statistics still
        /// follow the data) for this many first steps while the fresh decoder learns to read it.
        pub freeze_encoder_steps: u64 = 0,
    }
}

brainmvp_core::config! {
    /// Template channel cut-mix: templates come from `init`'s export (or `templates`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct MixTemplateConfig {
        pub enabled: bool = false,
        /// Folder of `<modality>.nii.gz` templates; none = `<init>/templates`.
        pub templates: Option<PathBuf> = None,
        #[serde(flatten)]
        pub cut_mix: CutMixConfig = CutMixConfig::default(),
    }
}

brainmvp_core::config! {
    /// When to validate and checkpoint.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ValidationConfig {
        /// Optimiser steps between validations (and at the end); the best mean Dice is kept.
        pub every: u64 = 100,
        /// Steps between greppable log lines.
        pub log_every: u64 = 10,
        /// Checkpoints kept.
        pub keep: usize = 2,
        /// Also validate the untouched model before the first step (the baseline Dice).
        pub at_start: bool = true,
        /// Stop when this many validations in a row did not beat the best (0 = run every step).
        pub patience: u64 = 0,
    }
}

brainmvp_core::config! {
    /// Subject classes from a CSV table (the synthetic cohort's `subjects.csv` by default).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ClassifyConfig {
        /// The table; none = `subjects.csv` next to the cohort the cache came from is not known,
        /// so it must be given for `classify`.
        pub labels_csv: Option<PathBuf> = None,
        /// Column holding the subject id.
        pub id_column: String = "id".into(),
        /// Column holding the class.
        pub label_column: String = "grade".into(),
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

    /// The training loader's settings: `[data]` with the job's `seed` and a queue of twice
    /// `workers` batches.
    pub fn loader(&self) -> LoaderConfig {
        LoaderConfig {
            queue_depth: 2 * self.data.workers.max(1),
            seed: self.seed,
            ..self.data.clone()
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
