//! Segmentation fine-tuning: UniUnet from a pre-trained encoder (or from scratch) trained by the
//! shared loop ([`crate::training`]) on random crops of the training subjects, validated by
//! sliding window (mean Dice over regions) keeping the best model folder, and a final test of the
//! best model (per-case scores and predictions on each subject's original grid).

use anyhow::{Context, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::finetune::transfer::FirstEmbedding;
use brainmvp_core::inference::segment::predict_labels;
use brainmvp_core::loader::{Batch, Loader};
use brainmvp_core::model::UniUnet;
use brainmvp_core::Volume;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod data;
pub mod setup;

use crate::evaluate::{score_case, EvaluationReport};
use crate::finetune::config::FinetuneConfig;
use crate::job::JobFile;
use crate::report::plot_metrics;
use crate::training::{train, Best, InnerModel, SupervisedTask, Validation};
use data::{batch_input, subject_input};
use setup::{prepare_segmentation, PreparedSegmentation};

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

/// Runs (or resumes) a segmentation fine-tuning job on `device`.
pub fn run_finetune<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: B::Device,
    resume: bool,
) -> Result<FinetuneSummary> {
    config.validate()?;
    B::seed(&device, config.seed);
    let prepared = prepare_segmentation::<B>(config, &device)?;
    let task = SegmentationTask {
        config,
        train_reader: Arc::new(prepared.reader.subset(&prepared.train)?),
        prepared: &prepared,
    };
    let best = train(config, &task, prepared.model.clone(), &device, resume)?;
    finish_run::<B>(config, &prepared, best, &device)
}

/// Segmentation as a [`SupervisedTask`]: Dice + BCE (or CE) on crops, mean validation Dice.
struct SegmentationTask<'a, B: AutodiffBackend> {
    config: &'a FinetuneConfig,
    prepared: &'a PreparedSegmentation<B>,
    /// The training subjects' part of the cache.
    train_reader: Arc<CacheReader>,
}

impl<B: AutodiffBackend> SupervisedTask<B> for SegmentationTask<'_, B> {
    type Model = UniUnet<B>;
    type Score = f64;

    fn validates_at_start(&self) -> bool {
        self.config.validation.at_start
    }

    fn loader(&self, start_step: u64) -> Result<Loader> {
        let reader = Arc::clone(&self.train_reader);
        Ok(Loader::new(reader, self.config.loader(), start_step)?)
    }

    fn train_loss(&self, model: &UniUnet<B>, batch: &Batch) -> Result<Tensor<B, 1>> {
        let plan = self.prepared.input_plan(self.config);
        let (input, labels) =
            batch_input::<B>(batch, &self.train_reader, &plan, &self.prepared.device)?;
        let outputs = model.try_forward(input)?;
        let labels_scheme = &self.prepared.manifest.labels;
        Ok(labels_scheme.loss(&outputs, &labels, batch.samples.len(), batch.crop_size)?)
    }

    fn optimiser_step<O: Optimizer<UniUnet<B>, B>>(
        &self,
        optim: &mut O,
        model: UniUnet<B>,
        gradients: B::Gradients,
        step: u64,
        lr: f64,
    ) -> UniUnet<B> {
        encoder_scaled_step(self.config, optim, model, gradients, step, lr)
    }

    fn validate(&self, model: &InnerModel<B, Self>, done: u64) -> Result<Validation<f64>> {
        let device = self.prepared.device.clone();
        let report = evaluate_subjects::<B::InnerBackend>(
            model,
            self.prepared,
            &self.prepared.validation,
            &device,
            None,
        )?;
        let mean_dice = report.mean_over_regions();
        let mut values = vec![("dice".to_string(), mean_dice)];
        for (index, region) in report.regions.iter().enumerate() {
            values.push((format!("dice_{region}"), report.mean_dice(index)));
        }
        log::info!(
            "step {done}: validation mean Dice {mean_dice:.4} over {} subjects",
            self.prepared.validation.len()
        );
        Ok(Validation {
            score: mean_dice,
            values,
        })
    }

    fn better(&self, candidate: &f64, best: &f64) -> bool {
        candidate > best
    }

    fn save_best(&self, model: &InnerModel<B, Self>) -> Result<()> {
        crate::model_folder::save_segmenter(
            &self.config.out.join("model"),
            &self.prepared.manifest,
            model,
            self.prepared.templates_dir.as_deref(),
        )
    }

    fn plot(&self) -> Result<()> {
        let out = &self.config.out;
        let metrics = out.join("metrics.jsonl");
        plot_metrics(&metrics, &out.join("loss.png"), &["loss"])?;
        let regions = self.prepared.manifest.labels.region_names();
        let region_keys: Vec<String> = regions.iter().map(|r| format!("dice_{r}")).collect();
        let mut keys: Vec<&str> = vec!["dice"];
        keys.extend(region_keys.iter().map(String::as_str));
        plot_metrics(&metrics, &out.join("dice.png"), &keys)
    }
}

/// One Adam step: with a pre-trained encoder, its parameters move at `lr × encoder_lr_scale`
/// and not at all during the first `freeze_encoder_steps`; everything else (and a first patch
/// embedding re-initialised because the channel count changed) at `lr`.
fn encoder_scaled_step<B: AutodiffBackend, O: Optimizer<UniUnet<B>, B>>(
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

/// Predicts every subject of `subjects` (indices into the job's cache) and scores it against its
/// label map; with `predictions`, also writes each label map on the subject's original grid.
pub fn evaluate_subjects<B: Backend>(
    model: &UniUnet<B>,
    prepared: &PreparedSegmentation<impl AutodiffBackend>,
    subjects: &[usize],
    device: &B::Device,
    predictions: Option<&Path>,
) -> Result<EvaluationReport> {
    let manifest = &prepared.manifest;
    let mut cases = Vec::with_capacity(subjects.len());
    for &subject in subjects {
        let entry = prepared.reader.subject(subject)?;
        let (input, grid) = subject_input::<B>(
            &prepared.reader,
            subject,
            &manifest.modalities,
            prepared.templates.as_ref(),
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
        let truth = prepared.reader.read_label_volume(subject)?;
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
    prepared: &PreparedSegmentation<B>,
    best: Option<Best<f64>>,
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
        prepared,
        &prepared.test,
        device,
        Some(&predictions),
    )?;
    test.write(&test_dir)?;
    log::info!(
        "best validation Dice {:.4} at step {}; test mean Dice {:.4} over {} subjects",
        best.score,
        best.step,
        test.mean_over_regions(),
        prepared.test.len()
    );
    Ok(FinetuneSummary {
        best_step: best.step,
        best_dice: best.score,
        test,
        model_dir,
        init_report: prepared.init_report.clone(),
        train_subjects: prepared.train.len(),
    })
}
