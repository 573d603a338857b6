//! The `brainmvp pretrain` job file (TOML). Every field has a default; the resolved config is
//! printed at start and saved as `config.toml` beside the outputs.

use anyhow::{bail, Result};
use brainmvp_core::loader::LoaderConfig;
use brainmvp_core::pretext::views::ViewConfig;
use brainmvp_core::pretrain::{BrainMvpConfig, LossWeights, LrSchedule};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::distributed::DistributedConfig;

/// A whole pre-training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// Cache folder made by `brainmvp prepare`.
    pub cache: PathBuf,
    /// Output folder (config, metrics, plots, checkpoints, export).
    pub out: PathBuf,
    /// Seed of the data order, masks, views and initial weights.
    pub seed: u64,
    /// Optimiser steps (each of `optim.accumulation` micro-batches per device).
    pub steps: u64,
    /// Network.
    pub model: BrainMvpConfig,
    /// Masking and view construction.
    pub views: ViewConfig,
    /// Loss weights.
    pub loss: LossWeights,
    /// Optimiser and schedule.
    pub optim: OptimConfig,
    /// Crops and the loader.
    pub data: DataConfig,
    /// Checkpoints and logs.
    pub checkpoint: CheckpointConfig,
    /// Several devices or machines.
    pub distributed: DistributedConfig,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            cache: PathBuf::from("cache"),
            out: PathBuf::from("runs/pretrain"),
            seed: 46,
            steps: 1000,
            model: BrainMvpConfig::default(),
            views: ViewConfig::default(),
            loss: LossWeights::default(),
            optim: OptimConfig::default(),
            data: DataConfig::default(),
            checkpoint: CheckpointConfig::default(),
            distributed: DistributedConfig::default(),
        }
    }
}

/// AdamW with a warm-up cosine schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the last step.
    pub min_lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Linear warm-up, as a fraction of the steps.
    pub warmup_fraction: f64,
    /// Micro-batches whose gradients are averaged before each optimiser step.
    pub accumulation: u64,
    /// Adam β₁, β₂, ε (PyTorch's defaults).
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 3e-4,
            min_lr: 0.0,
            weight_decay: 1e-5,
            warmup_fraction: 0.0,
            accumulation: 1,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// Crops and loader threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Crop edge `[x, y, z]` in voxels (a multiple of the encoder stride and the mask block).
    pub crop_size: [usize; 3],
    /// Subjects per micro-batch per device (each gives one crop per view).
    pub batch_size: usize,
    /// Loader worker threads.
    pub workers: usize,
    /// Batches prepared ahead.
    pub queue_depth: usize,
    /// Random flips along each axis.
    pub flips: bool,
    /// Random intensity shift and scale (±).
    pub intensity_shift: f32,
    pub intensity_scale: f32,
}

impl Default for DataConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        Self {
            crop_size: [96, 96, 96],
            batch_size: 3,
            workers,
            queue_depth: 2 * workers,
            flips: true,
            intensity_shift: 0.1,
            intensity_scale: 0.1,
        }
    }
}

/// When to write checkpoints and log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Optimiser steps between checkpoints (and at the end).
    pub every: u64,
    /// Checkpoints kept (the oldest are removed).
    pub keep: usize,
    /// Optimiser steps between greppable log lines.
    pub log_every: u64,
    /// Optimiser steps between refreshes of the loss plot.
    pub plot_every: u64,
    /// Track the templates against the cohort's mean images: `template_r_<modality>` every
    /// `log_every` steps (`templates.png`) and a mid-slice strip per checkpoint
    /// (`templates/step-<step>.png`). Off, or with frozen zero templates, nothing is read.
    pub watch_templates: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: 100,
            keep: 2,
            log_every: 10,
            plot_every: 50,
            watch_templates: true,
        }
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

    /// The loader settings of one device.
    pub fn loader(&self) -> LoaderConfig {
        LoaderConfig {
            crop_size: self.data.crop_size,
            batch_size: self.data.batch_size,
            flips: self.data.flips,
            intensity_shift: self.data.intensity_shift,
            intensity_scale: self.data.intensity_scale,
            workers: self.data.workers,
            queue_depth: self.data.queue_depth.max(self.data.workers),
            seed: self.seed,
            foreground_fraction: 0.0,
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
