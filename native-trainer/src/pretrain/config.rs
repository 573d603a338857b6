//! The `brainmvp pretrain` job file (TOML). Every field has a default; the resolved config is
//! printed at start and saved as `config.toml` beside the outputs.

use anyhow::{bail, Result};
use brainmvp_core::loader::LoaderConfig;
use brainmvp_core::optim::AdamWSettings;
use brainmvp_core::optim::LrSchedule;
use brainmvp_core::pretext::views::ViewConfig;
use brainmvp_core::pretrain::{BrainMvpConfig, LossWeights};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;

use crate::distributed::DistributedConfig;
use crate::section::Section;

brainmvp_core::config! {
    /// A whole pre-training job.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct PretrainConfig {
        /// Cache folder made by `brainmvp prepare`.
        pub cache: PathBuf = PathBuf::from("cache"),
        /// Output folder (config, metrics, plots, checkpoints, export).
        pub out: PathBuf = PathBuf::from("runs/pretrain"),
        /// Seed of the data order, masks, views and initial weights.
        pub seed: u64 = 46,
        /// Optimiser steps (each of `optim.accumulation` micro-batches per device).
        pub steps: u64 = 1000,
        /// Network.
        pub model: BrainMvpConfig,
        /// Masking and view construction.
        pub views: ViewConfig,
        /// Loss weights.
        pub loss: LossWeights,
        /// Optimiser and schedule.
        pub optim: OptimConfig,
        /// Crops and the loader of one device: the `[data]` keys are the loader's
        /// ([`LoaderConfig`]) except `seed` (the job's `seed` wins) and `foreground_fraction`
        /// (pre-training crops uniformly); see [`PretrainConfig::loader`].
        #[serde(serialize_with = "serialize_data", deserialize_with = "deserialize_data")]
        pub data: LoaderConfig = {
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
            LoaderConfig {
                crop_size: [96, 96, 96],
                // Subjects per micro-batch per device (each gives one crop per view).
                batch_size: 3,
                workers,
                queue_depth: 2 * workers,
                flips: true,
                intensity_shift: 0.1,
                intensity_scale: 0.1,
                ..LoaderConfig::default()
            }
        },
        /// Checkpoints and logs.
        pub checkpoint: CheckpointConfig,
        /// Several devices or machines.
        pub distributed: DistributedConfig,
    }
}

/// The `[data]` section: the loader's keys over the job's defaults, less the job's own.
const DATA: Section<LoaderConfig> = Section {
    defaults: || PretrainConfig::default().data,
    set_by_job: &[
        ("seed", "the loader's seed is the job's `seed`"),
        ("foreground_fraction", "pre-training crops are uniform"),
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
    /// AdamW with a warm-up cosine schedule.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct OptimConfig {
        /// Peak learning rate.
        pub lr: f64 = 3e-4,
        /// Learning rate at the last step.
        pub min_lr: f64 = 0.0,
        /// Decoupled weight decay.
        pub weight_decay: f64 = 1e-5,
        /// Linear warm-up, as a fraction of the steps.
        pub warmup_fraction: f64 = 0.0,
        /// Micro-batches whose gradients are averaged before each optimiser step.
        pub accumulation: u64 = 1,
        /// Adam β₁, β₂, ε (PyTorch's defaults).
        pub beta1: f32 = 0.9,
        pub beta2: f32 = 0.999,
        pub epsilon: f32 = 1e-8,
    }
}

impl OptimConfig {
    /// The AdamW of these settings (one kernel launch per parameter tensor on the GPU
    /// backends; burn's own AdamW step elsewhere).
    pub fn adamw(&self) -> AdamWSettings {
        AdamWSettings {
            beta_1: self.beta1,
            beta_2: self.beta2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay as f32,
        }
    }
}

brainmvp_core::config! {
    /// When to write checkpoints and log lines.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct CheckpointConfig {
        /// Optimiser steps between checkpoints (and at the end).
        pub every: u64 = 100,
        /// Checkpoints kept (the oldest are removed).
        pub keep: usize = 2,
        /// Optimiser steps between greppable log lines.
        pub log_every: u64 = 10,
        /// Optimiser steps between refreshes of the loss plot.
        pub plot_every: u64 = 50,
        /// Track the templates against the cohort's mean images: `template_r_<modality>` every
        /// `log_every` steps (`templates.png`) and a mid-slice strip per checkpoint
        /// (`templates/step-<step>.png`). Off, or with frozen zero templates, nothing is read.
        pub watch_templates: bool = true,
    }
}

impl PretrainConfig {
    /// The learning-rate schedule over the optimiser steps.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            base_lr: self.optim.lr,
            min_lr: self.optim.min_lr,
            warmup_steps: (self.optim.warmup_fraction * self.steps as f64).round() as u64,
            total_steps: self.steps,
        }
    }

    /// Micro-batches per optimiser step on one device.
    pub fn micro_batches(&self) -> u64 {
        self.optim.accumulation
    }

    /// The loader settings of one device: `[data]` with the job's `seed`, uniform crops and at
    /// least one queued batch per worker.
    pub fn loader(&self) -> LoaderConfig {
        LoaderConfig {
            queue_depth: self.data.queue_depth.max(self.data.workers),
            seed: self.seed,
            foreground_fraction: 0.0,
            ..self.data.clone()
        }
    }
}

impl crate::job::JobFile for PretrainConfig {
    /// Checks everything that can be checked before touching data.
    fn validate(&self) -> Result<()> {
        self.views.validate()?;
        self.model.templates.validate()?;
        self.schedule().validate()?;
        self.distributed.validate()?;
        if self.steps == 0 || self.optim.accumulation == 0 || self.data.batch_size == 0 {
            bail!("steps, optim.accumulation and data.batch_size must be at least 1");
        }
        if self.checkpoint.every == 0 || self.checkpoint.keep == 0 {
            bail!("checkpoint.every and checkpoint.keep must be at least 1");
        }
        let stride = self.model.arch.stride();
        let block = self.views.mask.block_size;
        for (axis, &edge) in self.data.crop_size.iter().enumerate() {
            if edge == 0 || edge % stride != 0 || edge % block != 0 {
                bail!(
                    "data.crop_size[{axis}] = {edge} must be a positive multiple of the encoder stride {stride} and of the mask block {block}"
                );
            }
            if edge > self.model.templates.canvas[axis] {
                bail!(
                    "data.crop_size {:?} exceeds the template canvas {:?}",
                    self.data.crop_size,
                    self.model.templates.canvas
                );
            }
        }
        if !(0.0..1.0).contains(&self.optim.warmup_fraction) {
            bail!(
                "optim.warmup_fraction {} is outside [0, 1)",
                self.optim.warmup_fraction
            );
        }
        Ok(())
    }
}
