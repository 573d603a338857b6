//! The segmentation fine-tuning loop: UniUnet from a pre-trained encoder (or from scratch), Adam
//! with a cosine schedule on random crops of the training subjects, sliding-window validation
//! every `validation.every` steps keeping the best model, and a final test of the best model
//! (per-case scores and predictions on each subject's original grid).

use anyhow::{bail, Context, Result};
use brainmvp_core::finetune::init::FirstEmbedding;
use brainmvp_core::finetune::labels::LabelScheme;
use brainmvp_core::inference::segment::{predict_labels, SegmenterManifest};
use brainmvp_core::inference::segment::{SEGMENTER_FORMAT, SEGMENTER_VERSION};
use brainmvp_core::loader::Loader;
use brainmvp_core::model::{UniUnet, UniUnetConfig};
use brainmvp_core::{Modality, Volume};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::config::FinetuneConfig;
use super::data::{batch_input, subject_input};
use super::setup::{prepare_job, Job};
use crate::checkpoint::{Checkpoints, TrainState};
use crate::evaluate::{score_case, EvaluationReport};
use crate::report::{plot_metrics, MetricsLog, TrainProgress};

/// What a finished fine-tuning run reports.
#[derive(Debug, Clone)]
pub struct FinetuneSummary {
    /// Step of the best validation Dice, and that Dice (mean over regions and cases).
    pub best_step: u64,
    pub best_dice: f64,
    /// The best model on the test subjects.
    pub test: EvaluationReport,
    /// The best model's folder.
    pub model_dir: PathBuf,
    /// What the pre-trained encoder contributed (none from scratch).
    pub init_report: Option<String>,
    /// Training subjects used (after the label fraction).
    pub train_subjects: usize,
}

/// The best validation so far (`best.json`), so a resumed run keeps it.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Best {
    step: u64,
    dice: f64,
}

/// Runs (or resumes) a segmentation fine-tuning job on `device`.
pub fn run_finetune<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: B::Device,
    resume: bool,
) -> Result<FinetuneSummary> {
    config.validate()?;
    B::seed(&device, config.seed);
    let job = prepare_job::<B>(config, &device)?;
    let optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
            config.optim.weight_decay as f32,
        )))
        .init::<B, UniUnet<B>>();
    let checkpoints = Checkpoints::new(&config.out, config.validation.keep);
    let (mut model, mut optim, start_step) = match resume {
        true => checkpoints.resume(job.model.clone(), optim, &device)?,
        false => (job.model.clone(), optim, 0),
    };
    let metrics = MetricsLog::open(
        &config.out.join("metrics.jsonl"),
        (start_step > 0).then_some(start_step),
    )?;
    let mut state = LoopState {
        metrics,
        progress: TrainProgress::new(config.steps, start_step)
            .with_log_every(config.validation.log_every),
        best: read_best(&config.out).filter(|_| resume),
    };
    let train_reader = Arc::new(job.reader.subset(&job.train)?);
    let mut loader = Loader::new(Arc::clone(&train_reader), config.loader(), start_step)?;
    if start_step == 0 && config.validation.at_start {
        validate_and_keep(config, &job, &model, &mut state, 0)?;
    }
    for step in start_step..config.steps {
        let started = Instant::now();
        let batch = loader.next().context("the loader stopped")??;
        let plan = job.input_plan(config);
        let (input, labels) = batch_input::<B>(&batch, &train_reader, &plan, &device)?;
        let outputs = model.try_forward(input)?;
        let loss =
            job.manifest
                .labels
                .loss(&outputs, &labels, batch.samples.len(), batch.crop_size)?;
        let loss_value = loss.clone().into_scalar().elem::<f64>();
        if !loss_value.is_finite() {
            bail!("step {step}: the loss is not finite ({loss_value}); lower optim.lr");
        }
        let lr = config.schedule().lr(step);
        model = optimiser_step(config, &mut optim, model, loss.backward(), step, lr);
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
            validate_and_keep(config, &job, &model, &mut state, done)?;
            let train_state = TrainState {
                step: done,
                total_steps: config.steps,
                version: brainmvp_core::VERSION.to_string(),
            };
            state
                .progress
                .suspend(|| checkpoints.save(&model, &optim, &train_state))?;
            if out_of_patience(config, state.best, done) {
                log::info!(
                    "step {done}: stopping, {} validations without improvement (best at step {})",
                    config.validation.patience,
                    state.best.map_or(0, |best| best.step)
                );
                break;
            }
        }
    }
    state.progress.finish();
    finish_run::<B>(config, &job, state.best, &device)
}

use burn::tensor::ElementConversion;

/// One Adam step: with a pre-trained encoder, its parameters move at `lr × encoder_lr_scale`
/// and not at all during the first `freeze_encoder_steps`; everything else (and a first patch
/// embedding re-initialised because the channel count changed) at `lr`.
fn optimiser_step<B: AutodiffBackend, O: Optimizer<UniUnet<B>, B>>(
    config: &FinetuneConfig,
    optim: &mut O,
    model: UniUnet<B>,
    mut gradients: B::Gradients,
    step: u64,
    lr: f64,
) -> UniUnet<B> {
    let scale = config.optim.encoder_lr_scale;
    if config.init.is_none() || (scale == 1.0 && config.optim.freeze_encoder_steps == 0) {
        let all = GradientsParams::from_grads(gradients, &model);
        return optim.step(lr, model, all);
    }
    let fresh_first = config.first_embedding == FirstEmbedding::Fresh
        && model.encoder.patch_embeds[0].proj.weight.dims()[1] != 1;
    let first = fresh_first
        .then(|| GradientsParams::from_module(&mut gradients, &model.encoder.patch_embeds[0].proj));
    let encoder = GradientsParams::from_module(&mut gradients, &model.encoder);
    let rest = GradientsParams::from_grads(gradients, &model);
    let mut model = optim.step(lr, model, rest);
    if let Some(first) = first {
        model = optim.step(lr, model, first);
    }
    let frozen = step < config.optim.freeze_encoder_steps || scale == 0.0;
    match frozen {
        true => model,
        false => optim.step(lr * scale, model, encoder),
    }
}

/// Whether `patience` validations in a row (the last at `done`) missed the best.
fn out_of_patience(config: &FinetuneConfig, best: Option<Best>, done: u64) -> bool {
    let patience = config.validation.patience;
    let since_best = best.map_or(0, |best| done.saturating_sub(best.step));
    patience > 0 && since_best >= patience * config.validation.every && done < config.steps
}

/// Metrics, progress and the best validation of the running job.
struct LoopState {
    metrics: MetricsLog,
    progress: TrainProgress,
    best: Option<Best>,
}

/// Validates, logs, plots, and saves the model folder when the mean Dice improved.
fn validate_and_keep<B: AutodiffBackend>(
    config: &FinetuneConfig,
    job: &Job<B>,
    model: &UniUnet<B>,
    state: &mut LoopState,
    done: u64,
) -> Result<()> {
    let inference = model.valid();
    let device = job.device.clone();
    let report = state.progress.suspend(|| {
        evaluate_subjects::<B::InnerBackend>(&inference, job, &job.validation, &device, None)
    })?;
    let mean_dice = mean_over_regions(&report);
    let mut values = vec![("dice", mean_dice)];
    let names: Vec<String> = report.regions.iter().map(|r| format!("dice_{r}")).collect();
    for (index, name) in names.iter().enumerate() {
        values.push((name.as_str(), report.mean_dice(index)));
    }
    state.metrics.log_values(done, "validation", &values)?;
    log::info!(
        "step {done}: validation mean Dice {mean_dice:.4} over {} subjects",
        job.validation.len()
    );
    if state.best.is_none_or(|best| mean_dice > best.dice) {
        state.best = Some(Best {
            step: done,
            dice: mean_dice,
        });
        let best_json = serde_json::to_string(&state.best)?;
        crate::model_folder::save_segmenter(
            &config.out.join("model"),
            &job.manifest,
            &inference,
            job.templates_dir.as_deref(),
        )?;
        brainmvp_core::fs::write_atomic(&config.out.join("best.json"), |file| {
            file.write_all(best_json.as_bytes())
        })?;
    }
    plot_curves(&config.out, &names)
}

fn plot_curves(out: &Path, dice_keys: &[String]) -> Result<()> {
    plot_metrics(&out.join("metrics.jsonl"), &out.join("loss.png"), &["loss"])?;
    let mut keys: Vec<&str> = vec!["dice"];
    keys.extend(dice_keys.iter().map(String::as_str));
    plot_metrics(&out.join("metrics.jsonl"), &out.join("dice.png"), &keys)
}

/// Predicts every subject of `subjects` (indices into the job's cache) and scores it against its
/// label map; with `predictions`, also writes each label map on the subject's original grid.
pub fn evaluate_subjects<B: Backend>(
    model: &UniUnet<B>,
    job: &Job<impl AutodiffBackend>,
    subjects: &[usize],
    device: &B::Device,
    predictions: Option<&Path>,
) -> Result<EvaluationReport> {
    let manifest = &job.manifest;
    let mut cases = Vec::with_capacity(subjects.len());
    for &subject in subjects {
        let entry = job.reader.subject(subject)?;
        let (input, grid) = subject_input::<B>(
            &job.reader,
            subject,
            &manifest.modalities,
            job.templates.as_ref(),
            device,
        )?;
        let predicted = predict_labels(
            model,
            &manifest.labels,
            &manifest.window,
            input,
            false,
            |_, _| {},
        )?;
        let prediction = Volume {
            dims: grid.dims,
            affine: grid.affine,
            data: predicted,
        };
        let truth = job.reader.read_label_volume(subject)?;
        cases.push(score_case(
            &manifest.labels,
            &entry.id,
            &prediction,
            &truth,
        )?);
        if let Some(dir) = predictions {
            let restored = entry.record.restore(&prediction)?;
            let path = dir.join(format!("{}_seg.nii.gz", entry.id));
            brainmvp_core::nifti::write_u8(&path, &restored)?;
        }
    }
    Ok(EvaluationReport {
        regions: manifest.labels.region_names(),
        cases,
    })
}

/// Tests the best model (the folder written at its validation) on the test subjects.
fn finish_run<B: AutodiffBackend>(
    config: &FinetuneConfig,
    job: &Job<B>,
    best: Option<Best>,
    device: &B::Device,
) -> Result<FinetuneSummary> {
    let best = best.context("no validation ran")?;
    let model_dir = config.out.join("model");
    let loaded = crate::model_folder::load_segmenter::<B::InnerBackend>(&model_dir, device)?;
    let test_dir = config.out.join("test");
    let predictions = test_dir.join("predictions");
    std::fs::create_dir_all(&predictions)
        .with_context(|| format!("{}: cannot create", predictions.display()))?;
    let test = evaluate_subjects::<B::InnerBackend>(
        &loaded.model,
        job,
        &job.test,
        device,
        Some(&predictions),
    )?;
    test.write(&test_dir)?;
    log::info!(
        "best validation Dice {:.4} at step {}; test mean Dice {:.4} over {} subjects",
        best.dice,
        best.step,
        mean_over_regions(&test),
        job.test.len()
    );
    Ok(FinetuneSummary {
        best_step: best.step,
        best_dice: best.dice,
        test,
        model_dir,
        init_report: job.init_report.clone(),
        train_subjects: job.train.len(),
    })
}

fn read_best(out: &Path) -> Option<Best> {
    let text = std::fs::read_to_string(out.join("best.json")).ok()?;
    serde_json::from_str::<Option<Best>>(&text).ok().flatten()
}

/// The manifest of the model this job trains.
pub fn segmenter_manifest(
    config: &FinetuneConfig,
    model: &UniUnetConfig,
    modalities: &[Modality],
    labels: &LabelScheme,
    preprocess: brainmvp_core::preprocess::PreprocessConfig,
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
        init: config
            .init
            .as_ref()
            .map_or_else(|| "scratch".to_string(), |p| p.display().to_string()),
        brainmvp_version: brainmvp_core::VERSION.to_string(),
    }
}

/// Mean Dice over regions and cases (each region's case mean, averaged over the regions).
pub fn mean_over_regions(report: &EvaluationReport) -> f64 {
    let regions = report.regions.len().max(1);
    (0..report.regions.len())
        .map(|index| report.mean_dice(index))
        .sum::<f64>()
        / regions as f64
}
