//! The supervised training loop shared by every fine-tuning task (segmentation and
//! classification), in the style of burn's custom training loop: the loop owns the optimiser,
//! resuming, the step loop, the non-finite-loss check, logging and the progress bar,
//! checkpoints, validation with best-model keeping (`best.json` + the task's model folder) and
//! early stopping; a task ([`SupervisedTask`]) says how a batch becomes a loss, how a model is
//! validated and how the best one is saved.

use anyhow::{bail, Context, Result};
use brainmvp_core::fs::write_atomic;
use brainmvp_core::loader::{Batch, Loader};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

use crate::checkpoint::{Checkpoints, TrainState};
use crate::finetune::FinetuneConfig;
use crate::report::{MetricsLog, TrainProgress};

/// The inference form of a task's model (what validation and the saved folder use).
pub type InnerModel<B, T> = <<T as SupervisedTask<B>>::Model as AutodiffModule<B>>::InnerModule;

/// One validation of a model.
pub struct Validation<S> {
    /// What decides the best model ([`SupervisedTask::better`]).
    pub score: S,
    /// Values for `metrics.jsonl` (split `validation`).
    pub values: Vec<(String, f64)>,
}

/// What a fine-tuning task adds to the loop.
pub trait SupervisedTask<B: AutodiffBackend> {
    /// The network trained.
    type Model: AutodiffModule<B> + Clone;
    /// A validation's result, kept in `best.json` for the best one.
    type Score: Clone + Serialize + DeserializeOwned;

    /// Whether the untouched model is validated before the first step (a baseline in the log).
    fn validates_at_start(&self) -> bool;

    /// The training crops, resumed at `start_step`.
    fn loader(&self, start_step: u64) -> Result<Loader>;

    /// The loss of one training batch (a scalar tensor).
    fn train_loss(&self, model: &Self::Model, batch: &Batch) -> Result<Tensor<B, 1>>;

    /// One optimiser step at `lr` (the default moves every parameter alike).
    fn optimiser_step<O: Optimizer<Self::Model, B>>(
        &self,
        optim: &mut O,
        model: Self::Model,
        gradients: B::Gradients,
        _step: u64,
        lr: f64,
    ) -> Self::Model {
        let all = GradientsParams::from_grads(gradients, &model);
        optim.step(lr, model, all)
    }

    /// Validates `model` after `done` steps (and says so in the log).
    fn validate(&self, model: &InnerModel<B, Self>, done: u64) -> Result<Validation<Self::Score>>;

    /// Whether `candidate` beats `best`.
    fn better(&self, candidate: &Self::Score, best: &Self::Score) -> bool;

    /// Saves the new best model (its folder, replaced atomically).
    fn save_best(&self, model: &InnerModel<B, Self>) -> Result<()>;

    /// Redraws the PNG plots from `metrics.jsonl`.
    fn plot(&self) -> Result<()>;
}

/// The best validation so far (`best.json`), so a resumed run keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Best<S> {
    /// Steps done at that validation.
    pub step: u64,
    /// Its result (`dice` and `metrics` are the names older runs wrote).
    #[serde(alias = "dice", alias = "metrics")]
    pub score: S,
}

/// Metrics, progress and the best validation of the running job.
struct LoopState<S> {
    metrics: MetricsLog,
    progress: TrainProgress,
    best: Option<Best<S>>,
}

/// Trains (or resumes, with `resume`) `model` for `config.steps` steps with Adam on the cosine
/// schedule; returns the best validation (the task saved that model).
pub fn train<B: AutodiffBackend, T: SupervisedTask<B>>(
    config: &FinetuneConfig,
    task: &T,
    model: T::Model,
    device: &B::Device,
    resume: bool,
) -> Result<Option<Best<T::Score>>> {
    let optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
            config.optim.weight_decay as f32,
        )))
        .init::<B, T::Model>();
    let checkpoints = Checkpoints::new(&config.out, config.validation.keep);
    let (mut model, mut optim, start_step) = match resume {
        true => checkpoints.resume(model, optim, device)?,
        false => (model, optim, 0),
    };
    let mut state = LoopState {
        metrics: MetricsLog::open(
            &config.out.join("metrics.jsonl"),
            (start_step > 0).then_some(start_step),
        )?,
        progress: TrainProgress::new(config.steps, start_step)
            .with_log_every(config.validation.log_every),
        best: read_best(&config.out).filter(|_| resume),
    };
    let mut loader = task.loader(start_step)?;
    if start_step == 0 && task.validates_at_start() {
        validate_and_keep(config, task, &model, &mut state, 0)?;
    }
    for step in start_step..config.steps {
        let started = Instant::now();
        let batch = loader.next().context("the loader stopped")??;
        let loss = task.train_loss(&model, &batch)?;
        let loss_value = loss.clone().into_scalar().elem::<f64>();
        if !loss_value.is_finite() {
            bail!("step {step}: the loss is not finite ({loss_value}); lower optim.lr");
        }
        let lr = config.schedule().lr(step);
        model = task.optimiser_step(&mut optim, model, loss.backward(), step, lr);
        let done = step + 1;
        let values = [
            ("loss", loss_value),
            ("lr", lr),
            ("step_s", started.elapsed().as_secs_f64()),
        ];
        state.metrics.log_values(done, "train", &values)?;
        state
            .progress
            .update(done, &values[..1], batch.samples.len() as f64 / values[2].1);
        if done % config.validation.every == 0 || done == config.steps {
            validate_and_keep(config, task, &model, &mut state, done)?;
            let train_state = TrainState {
                step: done,
                total_steps: config.steps,
                version: brainmvp_core::VERSION.to_string(),
                ranks: 1,
                micro_batches: 1,
            };
            state
                .progress
                .suspend(|| checkpoints.save(&model, &optim, &train_state))?;
            if out_of_patience(config, state.best.as_ref().map(|b| b.step), done) {
                log::info!(
                    "step {done}: stopping, {} validations without improvement (best at step {})",
                    config.validation.patience,
                    state.best.as_ref().map_or(0, |best| best.step)
                );
                break;
            }
        }
    }
    state.progress.finish();
    Ok(state.best)
}

/// Validates, logs, plots, and keeps the model (and `best.json`) when it beats the best.
fn validate_and_keep<B: AutodiffBackend, T: SupervisedTask<B>>(
    config: &FinetuneConfig,
    task: &T,
    model: &T::Model,
    state: &mut LoopState<T::Score>,
    done: u64,
) -> Result<()> {
    let inference = model.valid();
    let validation = state.progress.suspend(|| task.validate(&inference, done))?;
    let values: Vec<(&str, f64)> = validation
        .values
        .iter()
        .map(|(name, value)| (name.as_str(), *value))
        .collect();
    state.metrics.log_values(done, "validation", &values)?;
    let improved = state
        .best
        .as_ref()
        .is_none_or(|best| task.better(&validation.score, &best.score));
    if improved {
        task.save_best(&inference)?;
        let best = Best {
            step: done,
            score: validation.score,
        };
        let best_json = serde_json::to_string(&best)?;
        write_atomic(&config.out.join("best.json"), |file| {
            file.write_all(best_json.as_bytes())
        })?;
        state.best = Some(best);
    }
    task.plot()
}

/// Whether `patience` validations in a row (the last at `done`) missed the best.
fn out_of_patience(config: &FinetuneConfig, best_step: Option<u64>, done: u64) -> bool {
    let patience = config.validation.patience;
    let since_best = best_step.map_or(0, |step| done.saturating_sub(step));
    patience > 0 && since_best >= patience * config.validation.every && done < config.steps
}

/// `best.json` of `out`, when there is a readable one.
pub fn read_best<S: DeserializeOwned>(out: &Path) -> Option<Best<S>> {
    let text = std::fs::read_to_string(out.join("best.json")).ok()?;
    serde_json::from_str(&text).ok()
}
