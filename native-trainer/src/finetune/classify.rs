//! The classification fine-tuning loop (`brainmvp finetune --task classify`): one class per
//! subject from a CSV table, the UniFormer encoder (pre-trained or from scratch) with global
//! average pooling and a linear head, trained with cross-entropy on random crops drawn
//! class-balanced, validated on the centred crop of each validation subject every
//! `validation.every` steps keeping the best model (macro F1, then accuracy), and the best
//! model tested at the end (`out/test/classification.md`, `out/test/predictions.csv`).

use anyhow::{bail, Context, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::classification::{accuracy, balanced_sample_order, macro_f1, roc_auc};
use brainmvp_core::finetune::init::transfer_encoder;
use brainmvp_core::finetune::split::{label_fraction, split_subjects};
use brainmvp_core::fs::write_atomic;
use brainmvp_core::loader::{Batch, Loader};
use brainmvp_core::model::classifier::{
    class_balanced_cross_entropy, Classifier, ClassifierConfig,
};
use brainmvp_core::preprocess::PreprocessConfig;
use brainmvp_core::rng::Rng;
use brainmvp_core::Modality;
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::config::FinetuneConfig;
use crate::checkpoint::{CheckpointRecorder, Checkpoints, TrainState};
use crate::pretrain::pretrained::{load_pretrained_encoder, preset_of};
use crate::report::{plot_metrics, MetricsLog, TrainProgress};
use brainmvp_core::fs::folder_of;

/// `format` of a classifier's `model.json`.
pub const CLASSIFIER_FORMAT: &str = "brainmvp-classifier";
/// Version of the classifier folder layout.
pub const CLASSIFIER_VERSION: u32 = 1;
/// The manifest file of a classifier folder.
pub const CLASSIFIER_MANIFEST: &str = "model.json";
/// The weights file of a classifier folder (named MessagePack, f32).
pub const CLASSIFIER_WEIGHTS: &str = "model.mpk";
/// Largest label table read (a table of a million subjects is far smaller).
const MAX_TABLE_BYTES: u64 = 256 << 20;
/// Salt of the class-balanced training order's random stream.
const BALANCE_SALT: u64 = 0xC1A5_5B41_A7CE_0001;

/// Accuracy, macro F1 and ROC AUC of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Fraction of subjects whose arg-max class is the true class.
    pub accuracy: f64,
    /// F1 averaged over the classes present in the predictions or the truth.
    pub macro_f1: f64,
    /// Two classes: ROC AUC of the last class's probability (the last class is the positive
    /// one). More classes: the mean one-vs-rest AUC over the classes it is defined for. `None`
    /// when undefined (a single class among the true labels).
    pub auc: Option<f64>,
    /// Subjects scored.
    pub cases: usize,
}

/// One subject's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Subject id.
    pub id: String,
    /// True class index.
    pub truth: usize,
    /// Softmax probability of each class.
    pub probabilities: Vec<f64>,
}

impl Prediction {
    /// The class of highest probability (the first one on ties).
    pub fn predicted(&self) -> usize {
        let mut best = 0;
        for (class, &probability) in self.probabilities.iter().enumerate() {
            if probability > self.probabilities[best] {
                best = class;
            }
        }
        best
    }
}

impl ClassMetrics {
    /// Scores `predictions` over `classes` classes; an error when there is none.
    pub fn of(predictions: &[Prediction], classes: usize) -> Result<Self> {
        let predicted: Vec<usize> = predictions.iter().map(Prediction::predicted).collect();
        let truth: Vec<usize> = predictions.iter().map(|p| p.truth).collect();
        let positives: Vec<usize> = match classes {
            2 => vec![1],
            _ => (0..classes).collect(),
        };
        let mut aucs = Vec::new();
        for positive in positives {
            let is_positive: Vec<bool> = truth.iter().map(|&t| t == positive).collect();
            if is_positive.iter().all(|&p| p) || !is_positive.iter().any(|&p| p) {
                continue;
            }
            let scores: Vec<f64> = predictions
                .iter()
                .map(|p| p.probabilities.get(positive).copied().unwrap_or(0.0))
                .collect();
            aucs.push(roc_auc(&scores, &is_positive)?);
        }
        Ok(Self {
            accuracy: accuracy(&predicted, &truth)?,
            macro_f1: macro_f1(&predicted, &truth)?,
            auc: (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64),
            cases: predictions.len(),
        })
    }

    /// Better than `other`: a higher macro F1, or the same and a higher accuracy.
    pub fn better_than(&self, other: &Self) -> bool {
        self.macro_f1 > other.macro_f1
            || (self.macro_f1 == other.macro_f1 && self.accuracy > other.accuracy)
    }

    /// `(name, value)` pairs for the metrics log (an undefined AUC is logged as NaN = `null`).
    pub fn log_values(&self) -> [(&'static str, f64); 3] {
        [
            ("accuracy", self.accuracy),
            ("macro_f1", self.macro_f1),
            ("auc", self.auc.unwrap_or(f64::NAN)),
        ]
    }
}

/// What a finished classification run reports.
#[derive(Debug, Clone)]
pub struct ClassifySummary {
    /// Class names in index order (sorted).
    pub classes: Vec<String>,
    /// Step of the best validation and its metrics.
    pub best_step: u64,
    pub best_validation: ClassMetrics,
    /// The best model on the test subjects.
    pub test: ClassMetrics,
    /// What the pre-trained encoder contributed (none from scratch).
    pub init_report: Option<String>,
    /// Training subjects used (after the label fraction).
    pub train_subjects: usize,
}

impl ClassifySummary {
    /// A markdown report: classes, training subjects, init, and a table of the best validation
    /// and the test metrics.
    pub fn to_markdown(&self) -> String {
        let mut text = String::from("# Classification\n\n");
        let _ = writeln!(text, "- classes: {}", self.classes.join(", "));
        let _ = writeln!(text, "- training subjects: {}", self.train_subjects);
        let init = self.init_report.as_deref().unwrap_or("from scratch");
        let _ = writeln!(text, "- init: {init}\n");
        text.push_str("| set | cases | accuracy | macro F1 | AUC |\n|---|---:|---:|---:|---:|\n");
        let rows = [
            (
                format!("validation (best, step {})", self.best_step),
                &self.best_validation,
            ),
            ("test".to_string(), &self.test),
        ];
        for (name, metrics) in rows {
            let auc = metrics
                .auc
                .map_or_else(|| "undefined".to_string(), |auc| format!("{auc:.4}"));
            let _ = writeln!(
                text,
                "| {name} | {} | {:.4} | {:.4} | {auc} |",
                metrics.cases, metrics.accuracy, metrics.macro_f1
            );
        }
        text
    }
}

/// Reads a CSV table with a header row and returns `id → class` from the columns named
/// `id_column` and `label_column`. Errors name the file: unreadable, no header, a missing
/// column, a short row, an empty id or class, or an id listed twice with different classes.
pub fn read_label_table(
    path: &Path,
    id_column: &str,
    label_column: &str,
) -> Result<BTreeMap<String, String>> {
    let name = path.display();
    let size = std::fs::metadata(path)
        .with_context(|| format!("{name}: cannot read the label table"))?
        .len();
    if size > MAX_TABLE_BYTES {
        bail!("{name}: {size} bytes is too large for a label table");
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{name}: cannot read the label table"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{name}: empty label table"))?;
    let header = split_csv_line(header.trim_start_matches('\u{feff}'));
    let column = |wanted: &str| {
        header
            .iter()
            .position(|field| field == wanted)
            .with_context(|| {
                format!(
                    "{name}: no column {wanted:?} (columns: {})",
                    header.join(", ")
                )
            })
    };
    let (id_index, label_index) = (column(id_column)?, column(label_column)?);
    let mut table = BTreeMap::new();
    for (line_index, line) in lines {
        let fields = split_csv_line(line);
        let line_number = line_index + 1;
        let (Some(id), Some(label)) = (fields.get(id_index), fields.get(label_index)) else {
            bail!(
                "{name}: line {line_number} has {} fields, fewer than the header",
                fields.len()
            );
        };
        if id.is_empty() || label.is_empty() {
            bail!("{name}: line {line_number}: empty {id_column:?} or {label_column:?}");
        }
        if let Some(previous) = table.insert(id.clone(), label.clone()) {
            if &previous != label {
                bail!("{name}: subject {id} is listed as {previous:?} and as {label:?}");
            }
        }
    }
    Ok(table)
}

/// Fields of one CSV line: separated by commas, trimmed, double quotes removed (`""` inside
/// quotes is a quote).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(character) = chars.next() {
        match (character, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_string()),
            _ => field.push(character),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(value: &str) -> String {
    match value.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", value.replace('"', "\"\"")),
        false => value.to_string(),
    }
}

/// The classes (sorted distinct labels of `ids`) and each id's class index. Errors name
/// `table_path` when an id has no row or when fewer than two classes remain.
pub fn subject_classes(
    table: &BTreeMap<String, String>,
    ids: &[String],
    table_path: &Path,
) -> Result<(Vec<String>, Vec<usize>)> {
    let mut labels = Vec::with_capacity(ids.len());
    for id in ids {
        let label = table.get(id).with_context(|| {
            format!(
                "{}: no row for subject {id} of the cache",
                table_path.display()
            )
        })?;
        labels.push(label.clone());
    }
    let mut classes = labels.clone();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        bail!(
            "{}: the cache's subjects have {} class(es) ({}); classification needs at least 2",
            table_path.display(),
            classes.len(),
            classes.join(", ")
        );
    }
    let indices = labels
        .iter()
        .map(|label| classes.binary_search(label).unwrap_or(0))
        .collect();
    Ok((classes, indices))
}

/// The `model.json` of a fine-tuned classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierManifest {
    /// [`CLASSIFIER_FORMAT`].
    pub format: String,
    /// [`CLASSIFIER_VERSION`].
    pub version: u32,
    /// The network.
    pub model: ClassifierConfig,
    /// Class names, in logit order.
    pub classes: Vec<String>,
    /// Input modalities in channel order (a missing one is fed as zeros).
    pub modalities: Vec<Modality>,
    /// Edge `[x, y, z]` of the centred crop the model classifies.
    pub crop_size: [usize; 3],
    /// Preprocessing of the cache it was trained on (apply it to new cases).
    pub preprocess: PreprocessConfig,
    /// Pre-trained export it started from, or `scratch`.
    pub init: String,
    /// brainmvp version that wrote it.
    pub brainmvp_version: String,
}

/// Writes the classifier folder `dir` (weights + `model.json`), replacing it atomically.
pub fn save_classifier<B: Backend>(
    dir: &Path,
    manifest: &ClassifierManifest,
    model: &Classifier<B>,
) -> Result<()> {
    brainmvp_core::fs::replace_folder(dir, |partial| {
        let weights = partial.join(CLASSIFIER_WEIGHTS);
        model
            .clone()
            .save_file(weights.with_extension(""), &CheckpointRecorder::new())
            .with_context(|| format!("{}: cannot write", weights.display()))?;
        let json = serde_json::to_string_pretty(manifest)?;
        write_atomic(&partial.join(CLASSIFIER_MANIFEST), |file| {
            file.write_all(json.as_bytes())
        })?;
        Ok(())
    })
}

/// Reads a classifier folder (or the folder of its `model.json`).
pub fn load_classifier<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(ClassifierManifest, Classifier<B>)> {
    let dir = folder_of(dir);
    let path = dir.join(CLASSIFIER_MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: cannot read (is this a classifier folder?)",
            path.display()
        )
    })?;
    let manifest: ClassifierManifest = serde_json::from_str(&text)
        .map_err(|err| anyhow::anyhow!("{}: not a classifier manifest: {err}", path.display()))?;
    if manifest.format != CLASSIFIER_FORMAT || manifest.version != CLASSIFIER_VERSION {
        bail!(
            "{}: format {} version {}, expected {CLASSIFIER_FORMAT} version {CLASSIFIER_VERSION}",
            path.display(),
            manifest.format,
            manifest.version
        );
    }
    let weights = dir.join(CLASSIFIER_WEIGHTS);
    let model = manifest
        .model
        .init::<B>(device)?
        .load_file(
            weights.with_extension(""),
            &CheckpointRecorder::new(),
            device,
        )
        .map_err(|err| anyhow::anyhow!("{}: cannot load: {err}", weights.display()))?;
    Ok((manifest, model))
}

/// A classification job ready to train.
pub struct ClassifyJob<B: AutodiffBackend> {
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
pub fn prepare_classify<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: &B::Device,
) -> Result<ClassifyJob<B>> {
    let reader = CacheReader::open(&config.cache)?;
    let ids: Vec<String> = reader
        .manifest()
        .subjects
        .iter()
        .map(|s| s.id.clone())
        .collect();
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
    let split = split_subjects(
        &ids,
        config.split.validation_fraction,
        config.split.test_fraction,
        config.split.seed,
    )?;
    if split.validation.is_empty() || split.test.is_empty() {
        bail!("{}: the split leaves no validation or no test subject; raise split.validation_fraction / split.test_fraction", config.cache.display());
    }
    let train = label_fraction(&split.train, config.label_fraction, config.seed)?;
    let modalities = match config.modalities.is_empty() {
        true => reader.manifest().modalities.clone(),
        false => config.modalities.clone(),
    };
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
        init: config
            .init
            .as_ref()
            .map_or_else(|| "scratch".to_string(), |p| p.display().to_string()),
        brainmvp_version: brainmvp_core::VERSION.to_string(),
    };
    log::info!(
        "subjects: {} training (label fraction {}), {} validation, {} test; classes {}; modalities {}",
        train.len(),
        config.label_fraction,
        split.validation.len(),
        split.test.len(),
        manifest.classes.join(","),
        manifest.modalities.iter().map(|m| m.name()).collect::<Vec<_>>().join(",")
    );
    Ok(ClassifyJob {
        reader,
        subject_class,
        train,
        validation: split.validation,
        test: split.test,
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
    if modalities.is_empty() {
        bail!("{}: no modality to train on", config.cache.display());
    }
    let pretrained = match &config.init {
        Some(path) => Some((
            path,
            load_pretrained_encoder::<B>(&folder_of(path), device)?,
        )),
        None => None,
    };
    let encoder = match &pretrained {
        Some((path, (manifest, _))) => preset_of(manifest, path)?,
        None => config.encoder,
    };
    let model_config = ClassifierConfig::new(modalities.len(), classes).with_encoder(encoder);
    let mut model = model_config.init::<B>(device)?;
    let mut report = None;
    if let Some((_, (_, pretrained_encoder))) = pretrained {
        let (transferred, transfer) =
            transfer_encoder(model.encoder, pretrained_encoder, config.first_embedding)?;
        model.encoder = transferred;
        let summary = transfer.summary();
        log::info!("init: {summary}");
        report = Some(summary);
    }
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

/// Appends the channels of one crop in `modalities` order (zeros for a missing one).
fn push_channels(
    values: &mut Vec<f32>,
    images: &[(Modality, Vec<f32>)],
    modalities: &[Modality],
    voxels: usize,
) {
    for modality in modalities {
        match images.iter().find(|(m, _)| m == modality) {
            Some((_, crop)) => values.extend_from_slice(crop),
            None => values.extend(std::iter::repeat_n(0.0, voxels)),
        }
    }
}

/// The input `[N, C, z, y, x]` and class indices `[N]` of a training batch drawn from the
/// subset reader over `order` (cache subject indices).
fn training_batch<B: Backend>(
    batch: &Batch,
    order: &[usize],
    subject_class: &[usize],
    modalities: &[Modality],
    device: &B::Device,
) -> Result<(Tensor<B, 5>, Tensor<B, 1, Int>)> {
    let size = batch.crop_size;
    let voxels = size.iter().product::<usize>();
    let mut values = Vec::with_capacity(batch.samples.len() * modalities.len() * voxels);
    let mut targets = Vec::with_capacity(batch.samples.len());
    for sample in &batch.samples {
        let subject = order
            .get(sample.subject_index)
            .with_context(|| format!("sample of unknown subject #{}", sample.subject_index))?;
        targets.push(subject_class[*subject] as i64);
        push_channels(&mut values, &sample.images, modalities, voxels);
    }
    let count = batch.samples.len();
    let shape = [count, modalities.len(), size[2], size[1], size[0]];
    let input = Tensor::from_data(TensorData::new(values, shape), device);
    let targets = Tensor::from_data(TensorData::new(targets, [count]), device);
    Ok((input, targets))
}

/// Start of the crop of `size` centred in `dims` (negative where the crop is larger: padded
/// equally, the extra voxel after, as the loader).
pub fn centred_start(dims: [usize; 3], size: [usize; 3]) -> [isize; 3] {
    let mut start = [0isize; 3];
    for axis in 0..3 {
        start[axis] = match dims[axis] >= size[axis] {
            true => ((dims[axis] - size[axis]) / 2) as isize,
            false => -(((size[axis] - dims[axis]) / 2) as isize),
        };
    }
    start
}

/// Classifies the centred crop of every subject of `subjects` (cache indices of `reader`).
pub fn predict_subjects<B: Backend>(
    model: &Classifier<B>,
    manifest: &ClassifierManifest,
    reader: &CacheReader,
    subjects: &[usize],
    subject_class: &[usize],
    device: &B::Device,
) -> Result<Vec<Prediction>> {
    let size = manifest.crop_size;
    let voxels = size.iter().product::<usize>();
    let mut predictions = Vec::with_capacity(subjects.len());
    for &subject in subjects {
        let entry = reader.subject(subject)?;
        let start = centred_start(entry.dims, size);
        let mut images = Vec::new();
        for &modality in &manifest.modalities {
            if entry.images.contains_key(&modality) {
                images.push((modality, reader.read_crop(subject, modality, start, size)?));
            }
        }
        let mut values = Vec::with_capacity(manifest.modalities.len() * voxels);
        push_channels(&mut values, &images, &manifest.modalities, voxels);
        let shape = [1, manifest.modalities.len(), size[2], size[1], size[0]];
        let input = Tensor::<B, 5>::from_data(TensorData::new(values, shape), device);
        let probabilities = softmax(model.try_forward(input)?, 1)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|err| anyhow::anyhow!("reading the class probabilities: {err:?}"))?;
        predictions.push(Prediction {
            id: entry.id.clone(),
            truth: *subject_class
                .get(subject)
                .context("subject without a class")?,
            probabilities: probabilities.into_iter().map(f64::from).collect(),
        });
    }
    Ok(predictions)
}

/// Writes `id,truth,predicted,p_<class>...` (one row per prediction).
pub fn write_predictions(
    path: &Path,
    predictions: &[Prediction],
    classes: &[String],
) -> Result<()> {
    let mut text = String::from("id,truth,predicted");
    for class in classes {
        text.push(',');
        text.push_str(&csv_field(&format!("p_{class}")));
    }
    text.push('\n');
    let name = |index: usize| classes.get(index).map_or("?", String::as_str);
    for prediction in predictions {
        let row = [
            &prediction.id,
            name(prediction.truth),
            name(prediction.predicted()),
        ];
        let fields: Vec<String> = row.iter().map(|field| csv_field(field)).collect();
        text.push_str(&fields.join(","));
        for probability in &prediction.probabilities {
            let _ = write!(text, ",{probability:.6}");
        }
        text.push('\n');
    }
    write_atomic(path, |file| file.write_all(text.as_bytes()))?;
    Ok(())
}

/// The best validation so far (`best.json`), so a resumed run keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Best {
    step: u64,
    metrics: ClassMetrics,
}

/// Metrics, progress and the best validation of the running job.
struct LoopState {
    metrics: MetricsLog,
    progress: TrainProgress,
    best: Option<Best>,
}

/// Runs (or resumes) a classification fine-tuning job on `device`.
pub fn run_classify<B: AutodiffBackend>(
    config: &FinetuneConfig,
    device: B::Device,
    resume: bool,
) -> Result<ClassifySummary> {
    config.validate()?;
    B::seed(&device, config.seed);
    let job = prepare_classify::<B>(config, &device)?;
    let optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
            config.optim.weight_decay as f32,
        )))
        .init::<B, Classifier<B>>();
    let checkpoints = Checkpoints::new(&config.out, config.validation.keep);
    let (mut model, mut optim, start_step) = match resume {
        true => checkpoints.resume(job.model.clone(), optim, &device)?,
        false => (job.model.clone(), optim, 0),
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
    let order = balanced_training_order(&job.train, &job.subject_class, config.seed)?;
    let train_reader = Arc::new(job.reader.subset(&order)?);
    let mut loader = Loader::new(train_reader, config.loader(), start_step)?;
    for step in start_step..config.steps {
        let started = Instant::now();
        let batch = loader.next().context("the loader stopped")??;
        let (input, targets) = training_batch::<B>(
            &batch,
            &order,
            &job.subject_class,
            &job.manifest.modalities,
            &device,
        )?;
        let loss = class_balanced_cross_entropy(model.try_forward(input)?, targets, None)?;
        let loss_value = loss.clone().into_scalar().elem::<f64>();
        if !loss_value.is_finite() {
            bail!("step {step}: the loss is not finite ({loss_value}); lower optim.lr");
        }
        let gradients = GradientsParams::from_grads(loss.backward(), &model);
        let lr = config.schedule().lr(step);
        model = optim.step(lr, model, gradients);
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
            validate_and_keep(config, &job, &model, &mut state, done, &device)?;
            let train_state = TrainState {
                step: done,
                total_steps: config.steps,
                version: brainmvp_core::VERSION.to_string(),
            };
            state
                .progress
                .suspend(|| checkpoints.save(&model, &optim, &train_state))?;
        }
    }
    state.progress.finish();
    finish_run::<B>(config, &job, state.best, &device)
}

/// Validates, logs, plots, and saves the model folder when the validation improved.
fn validate_and_keep<B: AutodiffBackend>(
    config: &FinetuneConfig,
    job: &ClassifyJob<B>,
    model: &Classifier<B>,
    state: &mut LoopState,
    done: u64,
    device: &B::Device,
) -> Result<()> {
    let inference = model.valid();
    let predictions = state.progress.suspend(|| {
        predict_subjects::<B::InnerBackend>(
            &inference,
            &job.manifest,
            &job.reader,
            &job.validation,
            &job.subject_class,
            device,
        )
    })?;
    let metrics = ClassMetrics::of(&predictions, job.manifest.classes.len())?;
    state
        .metrics
        .log_values(done, "validation", &metrics.log_values())?;
    log::info!(
        "step {done}: validation accuracy {:.4}, macro F1 {:.4}, AUC {} over {} subjects",
        metrics.accuracy,
        metrics.macro_f1,
        metrics
            .auc
            .map_or_else(|| "undefined".into(), |auc| format!("{auc:.4}")),
        metrics.cases
    );
    if state
        .best
        .as_ref()
        .is_none_or(|best| metrics.better_than(&best.metrics))
    {
        save_classifier(&model_dir(&config.out), &job.manifest, &inference)?;
        let best = Best {
            step: done,
            metrics,
        };
        let best_json = serde_json::to_string(&best)?;
        write_atomic(&config.out.join("best.json"), |file| {
            file.write_all(best_json.as_bytes())
        })?;
        state.best = Some(best);
    }
    let log = config.out.join("metrics.jsonl");
    plot_metrics(&log, &config.out.join("loss.png"), &["loss"])?;
    plot_metrics(
        &log,
        &config.out.join("validation.png"),
        &["accuracy", "macro_f1", "auc"],
    )
}

/// Tests the best model (the folder written at its validation) on the test subjects.
fn finish_run<B: AutodiffBackend>(
    config: &FinetuneConfig,
    job: &ClassifyJob<B>,
    best: Option<Best>,
    device: &B::Device,
) -> Result<ClassifySummary> {
    let best = best.context("no validation ran")?;
    let (manifest, model) = load_classifier::<B::InnerBackend>(&model_dir(&config.out), device)?;
    let predictions = predict_subjects(
        &model,
        &manifest,
        &job.reader,
        &job.test,
        &job.subject_class,
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
        best_validation: best.metrics,
        test,
        init_report: job.init_report.clone(),
        train_subjects: job.train.len(),
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

fn read_best(out: &Path) -> Option<Best> {
    let text = std::fs::read_to_string(out.join("best.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The folder the best model is kept in.
pub fn model_dir(out: &Path) -> PathBuf {
    out.join("model")
}
