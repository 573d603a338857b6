//! The classification run: the shared training loop ([`crate::training`]) on class-balanced
//! crops with class-balanced cross-entropy, validated on the centred crop of each validation
//! subject (the best by macro F1, then accuracy), and the best model tested at the end
//! (`out/test/classification.md`, `out/test/predictions.csv`).

use anyhow::{Context, Result};
use brainmvp_core::fs::write_atomic;
use brainmvp_core::loader::{Batch, Loader};
use brainmvp_core::model::classifier::{class_balanced_cross_entropy, Classifier};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use std::sync::Arc;

use super::*;
use crate::finetune::config::FinetuneConfig;
use crate::job::JobFile;
use crate::report::plot_metrics;
use crate::training::{train, Best, InnerModel, SupervisedTask, Validation};

/// Runs (or resumes) a classification fine-tuning job on `device`.
pub fn run_classify<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: B::Device,
    resume: bool,
) -> Result<ClassifySummary> {
    config.validate()?;
    B::seed(&device, config.seed);
    let prepared = prepare_classification::<B>(config, &device)?;
    let order = balanced_training_order(&prepared.train, &prepared.subject_class, config.seed)?;
    let task = ClassificationTask {
        config,
        prepared: &prepared,
        train_reader: Arc::new(prepared.reader.subset(&order)?),
        order,
        device: device.clone(),
    };
    let best = train(config, &task, prepared.model.clone(), &device, resume)?;
    finish_run::<B>(config, &prepared, best, &device)
}

/// Classification as a [`SupervisedTask`].
struct ClassificationTask<'a, B: AutodiffBackend> {
    config: &'a FinetuneConfig,
    prepared: &'a PreparedClassification<B>,
    /// The class-balanced training order (cache subject indices) and the reader over it.
    order: Vec<usize>,
    train_reader: Arc<brainmvp_core::cache::CacheReader>,
    device: B::Device,
}

impl<B: AutodiffBackend> SupervisedTask<B> for ClassificationTask<'_, B> {
    type Model = Classifier<B>;
    type Score = ClassMetrics;

    /// Classification validates during training only (`validation.at_start` is segmentation's).
    fn validates_at_start(&self) -> bool {
        false
    }

    fn loader(&self, start_step: u64) -> Result<Loader> {
        let reader = Arc::clone(&self.train_reader);
        Ok(Loader::new(reader, self.config.loader(), start_step)?)
    }

    fn train_loss(&self, model: &Classifier<B>, batch: &Batch) -> Result<Tensor<B, 1>> {
        let (input, targets) = training_batch::<B>(
            batch,
            &self.order,
            &self.prepared.subject_class,
            &self.prepared.manifest.modalities,
            &self.device,
        )?;
        Ok(class_balanced_cross_entropy(
            model.try_forward(input)?,
            targets,
            None,
        )?)
    }

    fn validate(&self, model: &InnerModel<B, Self>, done: u64) -> Result<Validation<ClassMetrics>> {
        let prepared = self.prepared;
        let predictions = predict_subjects::<B::InnerBackend>(
            model,
            &prepared.manifest,
            &prepared.reader,
            &prepared.validation,
            &prepared.subject_class,
            &self.device,
        )?;
        let metrics = ClassMetrics::of(&predictions, prepared.manifest.classes.len())?;
        log::info!(
            "step {done}: validation accuracy {:.4}, macro F1 {:.4}, AUC {} over {} subjects",
            metrics.accuracy,
            metrics.macro_f1,
            metrics
                .auc
                .map_or_else(|| "undefined".into(), |auc| format!("{auc:.4}")),
            metrics.cases
        );
        let values = metrics
            .log_values()
            .iter()
            .map(|(name, value)| (name.to_string(), *value))
            .collect();
        Ok(Validation {
            score: metrics,
            values,
        })
    }

    fn better(&self, candidate: &ClassMetrics, best: &ClassMetrics) -> bool {
        candidate.better_than(best)
    }

    fn save_best(&self, model: &InnerModel<B, Self>) -> Result<()> {
        save_classifier(&model_dir(&self.config.out), &self.prepared.manifest, model)
    }

    fn plot(&self) -> Result<()> {
        let out = &self.config.out;
        let log = out.join("metrics.jsonl");
        plot_metrics(&log, &out.join("loss.png"), &["loss"])?;
        let keys = ["accuracy", "macro_f1", "auc"];
        plot_metrics(&log, &out.join("validation.png"), &keys)
    }
}

/// Tests the best model (the folder written at its validation) on the test subjects.
fn finish_run<B: AutodiffBackend>(
    config: &FinetuneConfig,
    prepared: &PreparedClassification<B>,
    best: Option<Best<ClassMetrics>>,
    device: &B::Device,
) -> Result<ClassifySummary> {
    let best = best.context("no validation ran")?;
    let (manifest, model) = load_classifier::<B::InnerBackend>(&model_dir(&config.out), device)?;
    let predictions = predict_subjects(
        &model,
        &manifest,
        &prepared.reader,
        &prepared.test,
        &prepared.subject_class,
        device,
    )?;
    let test = ClassMetrics::of(&predictions, manifest.classes.len())?;
    let test_dir = config.out.join("test");
    std::fs::create_dir_all(&test_dir)
        .with_context(|| format!("{}: cannot create", test_dir.display()))?;
    write_predictions(
        &test_dir.join("predictions.csv"),
        &predictions,
        &manifest.classes,
    )?;
    let summary = ClassifySummary {
        classes: manifest.classes,
        best_step: best.step,
        best_validation: best.score,
        test,
        init_report: prepared.init_report.clone(),
        train_subjects: prepared.train.len(),
    };
    let markdown = summary.to_markdown();
    write_atomic(&test_dir.join("classification.md"), |file| {
        file.write_all(markdown.as_bytes())
    })?;
    log::info!(
        "best validation macro F1 {:.4} at step {}; test accuracy {:.4}, macro F1 {:.4} over {} subjects",
        summary.best_validation.macro_f1,
        summary.best_step,
        summary.test.accuracy,
        summary.test.macro_f1,
        summary.test.cases
    );
    Ok(summary)
}
