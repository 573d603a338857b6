//! Scoring predicted label maps against the ground truth: Dice and HD95 (MONAI) per region and
//! case ([`score_case`], in memory), pairing of prediction and ground-truth folders by subject id
//! ([`evaluate_folders`]), and the report (per-case CSV, summary table in markdown). The BraTS
//! challenge metrics (lesion-wise, NSD, detection) are in [`brats`]; segmenting real patients with
//! a model and scoring them against their reference maps in [`real_cases`].
//!
//! Regions follow the [`LabelScheme`]: TC/WT/ET for BraTS, one region per non-background label for
//! classes. As the official BrainMVP metric, an empty ground truth scores Dice 1 when the
//! prediction is empty too, else 0; HD95 (MONAI's: the larger of the two directed 95th percentiles,
//! see [`brainmvp_core::metrics::hd95`]) is undefined (`None`) when either mask is empty and is then
//! reported as undefined, never as 0. It is written `hd95_monai` / "HD95 (MONAI)" so that it is
//! never mixed up with the challenge's HD95.

pub mod brats;
pub mod real_cases;

use brainmvp_core::cohort::discover::discover;
use brainmvp_core::cohort::naming::{classify_file_name, nifti_stem, FileRole};
use brainmvp_core::fs::write_atomic;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::metrics::RegionScores;
use brainmvp_core::nifti::read_path;
use brainmvp_core::{Affine, Error, Result, Volume};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest difference allowed between the affine entries of a prediction and its ground truth.
pub const AFFINE_TOLERANCE: f64 = 1e-3;
/// Suffixes (before `.nii.gz` / `.nii`) a prediction file of subject `<id>` may have, in the
/// order they are looked for.
pub const PREDICTION_SUFFIXES: [&str; 3] = ["_seg", "", "_pred"];
/// File extensions of predictions, in the order they are looked for.
const NIFTI_EXTENSIONS: [&str; 2] = [".nii.gz", ".nii"];
/// Name of the per-case table written by [`EvaluationReport::write`].
pub const CSV_NAME: &str = "evaluation.csv";
/// Name of the summary table written by [`EvaluationReport::write`].
pub const MARKDOWN_NAME: &str = "evaluation.md";

/// How the label values of the ground truth are interpreted (`--labels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelsChoice {
    /// BraTS regions when every ground-truth value is in {0, 1, 2, 3, 4} (enhancing label 3 or 4
    /// detected over all truths), else one class per label value found in the truths.
    Auto,
    /// BraTS 2021 regions (enhancing tumour = 4).
    Brats,
    /// BraTS 2023 regions (enhancing tumour = 3).
    Brats2023,
    /// One region per non-zero label value found in the ground truths.
    Classes,
}

impl LabelsChoice {
    /// The scheme for ground truths holding the given label values (one sorted list of the
    /// distinct values per truth; only [`Auto`](Self::Auto) and [`Classes`](Self::Classes) look
    /// at them).
    pub fn resolve(self, truth_values: &[Vec<u8>]) -> LabelScheme {
        let maps: Vec<&[u8]> = truth_values.iter().map(Vec::as_slice).collect();
        match self {
            Self::Brats => LabelScheme::Brats { enhancing_label: 4 },
            Self::Brats2023 => LabelScheme::Brats { enhancing_label: 3 },
            Self::Classes => LabelScheme::classes_of(&maps),
            Self::Auto => {
                let brats_like = maps.iter().all(|values| values.iter().all(|&v| v <= 4));
                match brats_like {
                    true => LabelScheme::detect_brats(&maps),
                    false => LabelScheme::classes_of(&maps),
                }
            }
        }
    }

    /// Whether [`resolve`](Self::resolve) needs the label values of the truths.
    fn needs_values(self) -> bool {
        matches!(self, Self::Auto | Self::Classes)
    }
}

/// The scores of one case, one entry per region of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseScores {
    /// Subject id.
    pub id: String,
    /// Dice and HD95 per region, in the order of [`EvaluationReport::regions`].
    pub scores: Vec<RegionScores>,
}

/// Per-case scores of every region.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationReport {
    /// Region names (`TC`, `WT`, `ET`, or `label N`).
    pub regions: Vec<String>,
    /// One entry per case, each with one score per region.
    pub cases: Vec<CaseScores>,
}

/// One prediction file and the ground truth it is scored against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePair {
    /// Subject id.
    pub id: String,
    /// The predicted label map.
    pub prediction: PathBuf,
    /// The ground-truth label map.
    pub truth: PathBuf,
}

/// Dice and HD95 of `prediction` against `truth` for every region of `scheme`, with the voxel
/// spacing of the truth's affine.
///
/// An error naming the case when the two volumes differ in dims or affine (entries further apart
/// than [`AFFINE_TOLERANCE`]) or when the scheme cannot score them.
pub fn score_case(
    scheme: &LabelScheme,
    id: &str,
    prediction: &Volume<u8>,
    truth: &Volume<u8>,
) -> Result<CaseScores> {
    let context = format!("case {id}");
    check_same_grid(prediction, truth).map_err(|cause| Error::new(&context, cause))?;
    let scores = scheme
        .score(&prediction.data, &truth.data, truth.dims, truth.spacing())
        .map_err(|err| Error::new(&context, err.to_string()))?;
    Ok(CaseScores {
        id: id.to_string(),
        scores,
    })
}

/// Scores every prediction of `pred` against its ground truth in `truth` (see [`pair_folders`]
/// for the layouts) with the label scheme chosen by `labels`; cases in id order.
///
/// Errors, naming the file: a prediction whose dims or affine differ from its truth's, a value
/// that is not an integer label 0–255, unreadable files; and no pair, or truths without a
/// prediction (all their ids listed).
pub fn evaluate_folders(
    pred: &Path,
    truth: &Path,
    labels: LabelsChoice,
) -> Result<EvaluationReport> {
    let pairs = pair_folders(pred, truth)?;
    let scheme = scheme_of_truths(&pairs, labels)?;
    log::info!("{} cases, labels {}", pairs.len(), describe_scheme(&scheme));
    let cases = pairs
        .par_iter()
        .map(|pair| score_pair(&scheme, pair))
        .collect::<Result<Vec<_>>>()?;
    Ok(EvaluationReport {
        regions: scheme.region_names(),
        cases,
    })
}

/// A short description of a scheme for messages (`BraTS TC/WT/ET, enhancing label 4`).
pub fn describe_scheme(scheme: &LabelScheme) -> String {
    match scheme {
        LabelScheme::Brats { enhancing_label } => {
            format!("BraTS TC/WT/ET, enhancing label {enhancing_label}")
        }
        LabelScheme::Classes { labels } => format!("classes {labels:?}"),
    }
}

/// The scheme of `labels` for the truths of `pairs` (reads the truths only when it needs their
/// label values).
fn scheme_of_truths(pairs: &[CasePair], labels: LabelsChoice) -> Result<LabelScheme> {
    if !labels.needs_values() {
        return Ok(labels.resolve(&[]));
    }
    let values = pairs
        .par_iter()
        .map(|pair| read_label_map(&pair.truth).map(|map| distinct_values(&map.data)))
        .collect::<Result<Vec<_>>>()?;
    Ok(labels.resolve(&values))
}

/// Reads both files of a pair, checks they share a grid, and scores them.
fn score_pair(scheme: &LabelScheme, pair: &CasePair) -> Result<CaseScores> {
    let truth = read_label_map(&pair.truth)?;
    let prediction = read_label_map(&pair.prediction)?;
    let prediction = in_truth_convention(scheme, &pair.prediction, prediction)?;
    check_same_grid(&prediction, &truth).map_err(|cause| {
        Error::new(
            pair.prediction.display().to_string(),
            format!("{cause} (ground truth {})", pair.truth.display()),
        )
    })?;
    score_case(scheme, &pair.id, &prediction, &truth)
}

/// A BraTS prediction written in the other convention than the truths' (enhancing tumour 4,
/// BraTS 2021, against truths with 3, BraTS 2023, or the other way round) read in the truths'
/// one, with a warning naming the file; a map holding both 3 and 4 is refused, since it cannot
/// say which is the enhancing tumour. Other schemes and maps already in convention pass as they
/// are.
pub fn in_truth_convention(
    scheme: &LabelScheme,
    path: &Path,
    mut prediction: Volume<u8>,
) -> Result<Volume<u8>> {
    let LabelScheme::Brats { enhancing_label } = *scheme else {
        return Ok(prediction);
    };
    let other = match enhancing_label {
        3 => 4,
        4 => 3,
        _ => return Ok(prediction),
    };
    let values = distinct_values(&prediction.data);
    if !values.contains(&other) {
        return Ok(prediction);
    }
    if values.contains(&enhancing_label) {
        let cause = "holds both 3 and 4, so neither can be read as the enhancing tumour \
                     (BraTS 2021 writes 4, BraTS 2023 writes 3)";
        return Err(Error::new(path.display().to_string(), cause));
    }
    log::warn!(
        "{}: enhancing tumour written as {other}, the ground truths use {enhancing_label}; read \
         as {enhancing_label}",
        path.display()
    );
    prediction
        .data
        .iter_mut()
        .filter(|value| **value == other)
        .for_each(|value| *value = enhancing_label);
    Ok(prediction)
}

/// The sorted distinct values of a label map.
fn distinct_values(labels: &[u8]) -> Vec<u8> {
    let mut present = [false; 256];
    labels.iter().for_each(|&v| present[v as usize] = true);
    (0..=255u8).filter(|&v| present[v as usize]).collect()
}

/// Reads a NIfTI label map; an error naming the file when a value is not an integer in 0–255.
pub fn read_label_map(path: &Path) -> Result<Volume<u8>> {
    let volume = read_path(path)?.volume;
    let [nx, ny, _] = volume.dims;
    let mut labels = Vec::with_capacity(volume.data.len());
    for (index, &value) in volume.data.iter().enumerate() {
        if value.fract() != 0.0 || !(0.0..=255.0).contains(&value) {
            let voxel = [index % nx, (index / nx) % ny, index / (nx * ny)];
            return Err(Error::new(
                path.display().to_string(),
                format!("voxel {voxel:?} holds {value}, not an integer label 0-255"),
            ));
        }
        labels.push(value as u8);
    }
    Ok(Volume {
        dims: volume.dims,
        affine: volume.affine,
        data: labels,
    })
}

/// `Err(cause)` when two volumes differ in dims or in an affine entry by more than
/// [`AFFINE_TOLERANCE`].
pub fn check_same_grid<T, U>(
    prediction: &Volume<T>,
    truth: &Volume<U>,
) -> std::result::Result<(), String> {
    if prediction.dims != truth.dims {
        return Err(format!(
            "dims {} differ from the ground truth's {}",
            dims_text(prediction.dims),
            dims_text(truth.dims)
        ));
    }
    let difference = largest_difference(&prediction.affine, &truth.affine);
    if difference.is_nan() || difference > AFFINE_TOLERANCE {
        return Err(format!(
            "affine differs from the ground truth's by up to {difference} (tolerance {AFFINE_TOLERANCE})"
        ));
    }
    Ok(())
}

fn dims_text(dims: [usize; 3]) -> String {
    format!("{}x{}x{}", dims[0], dims[1], dims[2])
}

fn largest_difference(a: &Affine, b: &Affine) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0,
            |largest: f64, d| if d.is_nan() { f64::NAN } else { largest.max(d) },
        )
}

/// Pairs the ground truths of `truth` with the predictions of `pred` by subject id, in id order.
///
/// `truth` is a cohort folder (subjects found by [`discover`], with their label map) or, when it
/// holds no labelled subject, a flat folder of `<id>_seg.nii.gz` or `<id>.nii.gz` label maps. The
/// prediction of subject `<id>` is `<id>_seg`, `<id>` or `<id>_pred` with `.nii.gz` or `.nii` in
/// `pred`. Errors: no ground truth; a subject with several candidate predictions or ground truths;
/// ground truths without a prediction (their ids listed). Predictions without a ground truth are
/// reported with a warning.
pub fn pair_folders(pred: &Path, truth: &Path) -> Result<Vec<CasePair>> {
    let folders = pair_folders_allowing_missing(pred, truth)?;
    if !folders.missing.is_empty() {
        return Err(missing_predictions_error(
            pred,
            &folders,
            "no prediction for",
        ));
    }
    Ok(folders.pairs)
}

/// The ground truths of a truth folder split into those with a prediction and those without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedFolders {
    /// Ground truths with their prediction, in id order.
    pub pairs: Vec<CasePair>,
    /// Ids of the ground truths without a prediction, in id order.
    pub missing: Vec<String>,
}

/// As [`pair_folders`], but ground truths without a prediction are returned in
/// [`PairedFolders::missing`] instead of failing (the BraTS challenge scores them as missing
/// cases); still an error when no ground truth has a prediction.
pub fn pair_folders_allowing_missing(pred: &Path, truth: &Path) -> Result<PairedFolders> {
    if !pred.is_dir() {
        return Err(Error::new(pred.display().to_string(), "not a folder"));
    }
    let truths = truth_files(truth)?;
    let mut folders = PairedFolders {
        pairs: Vec::new(),
        missing: Vec::new(),
    };
    for (id, truth_path) in &truths {
        match prediction_file(pred, id)? {
            Some(prediction) => folders.pairs.push(CasePair {
                id: id.clone(),
                prediction,
                truth: truth_path.clone(),
            }),
            None => folders.missing.push(id.clone()),
        }
    }
    if folders.pairs.is_empty() {
        return Err(missing_predictions_error(
            pred,
            &folders,
            "no prediction for any",
        ));
    }
    warn_unmatched_predictions(pred, &truths);
    Ok(folders)
}

/// The error listing the ground truths without a prediction.
fn missing_predictions_error(pred: &Path, folders: &PairedFolders, verdict: &str) -> Error {
    let truths = folders.pairs.len() + folders.missing.len();
    let verdict = match folders.pairs.is_empty() {
        true => verdict.to_string(),
        false => format!("{verdict} {}", folders.missing.len()),
    };
    Error::new(
        pred.display().to_string(),
        format!(
            "{verdict} of the {truths} ground truths: {} (expected <id>_seg.nii.gz, <id>.nii.gz or <id>_pred.nii.gz)",
            folders.missing.join(", ")
        ),
    )
}

/// `(id, label map)` of every ground truth under `truth`, sorted by id.
fn truth_files(truth: &Path) -> Result<BTreeMap<String, PathBuf>> {
    if !truth.is_dir() {
        return Err(Error::new(truth.display().to_string(), "not a folder"));
    }
    if is_flat_label_folder(truth)? {
        return flat_truth_files(truth);
    }
    if let Ok(cohort) = discover(truth) {
        let labelled: BTreeMap<String, PathBuf> = cohort
            .subjects
            .iter()
            .filter_map(|s| s.label.clone().map(|label| (s.id.clone(), label)))
            .collect();
        let unlabelled = cohort.subjects.len() - labelled.len();
        if !labelled.is_empty() {
            if unlabelled > 0 {
                log::warn!(
                    "{}: {unlabelled} subjects without a label map are not evaluated",
                    truth.display()
                );
            }
            return Ok(labelled);
        }
    }
    flat_truth_files(truth)
}

/// Whether `dir` directly holds NIfTI files none of which is named as a modality image (then it
/// is a flat folder of label maps, not a cohort).
fn is_flat_label_folder(dir: &Path) -> Result<bool> {
    let files = nifti_files(dir)?;
    let image = |path: &PathBuf| {
        let role = file_name(path).and_then(classify_file_name);
        matches!(role, Some(FileRole::Image(_)))
    };
    Ok(!files.is_empty() && !files.iter().any(image))
}

/// The label maps directly in `dir`: `<id>_seg.nii.gz` or `<id>.nii.gz` (or `.nii`).
fn flat_truth_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut truths: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in nifti_files(dir)? {
        let Some(stem) = file_name(&path).and_then(nifti_stem) else {
            continue;
        };
        let id = stem.strip_suffix("_seg").unwrap_or(stem).to_string();
        if let Some(previous) = truths.insert(id.clone(), path.clone()) {
            return Err(Error::new(
                dir.display().to_string(),
                format!(
                    "two ground truths for subject {id}: {} and {}",
                    previous.display(),
                    path.display()
                ),
            ));
        }
    }
    if truths.is_empty() {
        return Err(Error::new(
            dir.display().to_string(),
            "no ground-truth label map found: neither a cohort with label maps nor <id>_seg.nii.gz / <id>.nii.gz files",
        ));
    }
    Ok(truths)
}

/// The NIfTI files directly in `dir` (hidden ones skipped), sorted.
fn nifti_files(dir: &Path) -> Result<Vec<PathBuf>> {
    visible_entries(dir, |path| {
        path.is_file() && file_name(path).and_then(nifti_stem).is_some()
    })
}

/// The entries directly in `dir` that are not hidden and that `keep` accepts, sorted.
fn visible_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|err| Error::io(dir.display(), err))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|err| Error::io(dir.display(), err))?.path();
        let visible = file_name(&path).is_some_and(|name| !name.starts_with('.'));
        if visible && keep(&path) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|name| name.to_str())
}

/// The prediction of subject `id` in `pred`, `None` when there is none; an error when several
/// candidate files exist.
fn prediction_file(pred: &Path, id: &str) -> Result<Option<PathBuf>> {
    let found: Vec<PathBuf> = PREDICTION_SUFFIXES
        .iter()
        .flat_map(|suffix| {
            NIFTI_EXTENSIONS
                .iter()
                .map(move |extension| pred.join(format!("{id}{suffix}{extension}")))
        })
        .filter(|path| path.is_file())
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [single] => Ok(Some(single.clone())),
        several => Err(Error::new(
            pred.display().to_string(),
            format!(
                "several predictions for subject {id}: {}",
                several
                    .iter()
                    .filter_map(|path| file_name(path))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Warns about NIfTI files of `pred` that are the prediction of no ground truth.
fn warn_unmatched_predictions(pred: &Path, truths: &BTreeMap<String, PathBuf>) {
    let Ok(files) = nifti_files(pred) else {
        return;
    };
    let unmatched: BTreeSet<&str> = files
        .iter()
        .filter_map(|path| file_name(path))
        .filter(|name| {
            let stem = nifti_stem(name).unwrap_or(name);
            let id_of = |suffix: &str| stem.strip_suffix(suffix).filter(|id| !id.is_empty());
            !PREDICTION_SUFFIXES
                .iter()
                .filter_map(|suffix| id_of(suffix))
                .any(|id| truths.contains_key(id))
        })
        .collect();
    if !unmatched.is_empty() {
        log::warn!(
            "{}: {} files match no ground truth and are not evaluated: {}",
            pred.display(),
            unmatched.len(),
            unmatched.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
}

impl EvaluationReport {
    /// An empty report over the regions of `scheme`.
    pub fn new(scheme: &LabelScheme) -> Self {
        Self {
            regions: scheme.region_names(),
            cases: Vec::new(),
        }
    }

    /// Dice of region `region` of every case.
    fn dice_values(&self, region: usize) -> Vec<f64> {
        self.cases
            .iter()
            .filter_map(|case| case.scores.get(region).map(|s| s.dice))
            .collect()
    }

    /// Mean Dice over regions and cases (each region's case mean, averaged over the regions).
    pub fn mean_over_regions(&self) -> f64 {
        let regions = self.regions.len().max(1);
        (0..self.regions.len())
            .map(|index| self.mean_dice(index))
            .sum::<f64>()
            / regions as f64
    }

    /// Mean Dice of region `region` over the cases (NaN without cases).
    pub fn mean_dice(&self, region: usize) -> f64 {
        let values = self.dice_values(region);
        values.iter().sum::<f64>() / values.len() as f64
    }

    /// Population standard deviation of the Dice of region `region` (NaN without cases).
    pub fn std_dice(&self, region: usize) -> f64 {
        let values = self.dice_values(region);
        let mean = self.mean_dice(region);
        let variance =
            values.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / values.len() as f64;
        variance.sqrt()
    }

    /// Mean HD95 (mm) of region `region` over the cases where it is defined (`None` when it is
    /// defined for none), and the number of cases where it is undefined.
    pub fn mean_hd95(&self, region: usize) -> (Option<f64>, usize) {
        let defined: Vec<f64> = self
            .cases
            .iter()
            .filter_map(|case| case.scores.get(region).and_then(|s| s.hd95))
            .collect();
        let undefined = self.cases.len() - defined.len();
        let mean =
            (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
        (mean, undefined)
    }

    /// One row per case and region, `id,region,dice,hd95_monai` (header first); HD95 (MONAI) is
    /// `undefined` when it is, never 0. Numbers are written in full precision.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from("id,region,dice,hd95_monai\n");
        for case in &self.cases {
            for (region, score) in self.regions.iter().zip(&case.scores) {
                let hd95 = score
                    .hd95
                    .map_or_else(|| "undefined".to_string(), |d| d.to_string());
                csv.push_str(&format!(
                    "{},{},{},{hd95}\n",
                    csv_field(&case.id),
                    csv_field(region),
                    score.dice
                ));
            }
        }
        csv
    }

    /// The summary table: per region the mean ± standard deviation of Dice, the mean HD95 (MONAI)
    /// over the cases where it is defined, and how many cases it is undefined for.
    pub fn to_markdown(&self) -> String {
        let mut table = format!(
            "{} cases (Dice: mean ± population std over all cases; HD95 (MONAI): the larger directed 95th percentile, mean over the cases where it is defined)\n\n",
            self.cases.len()
        );
        table.push_str(
            "| region | Dice | HD95 (MONAI) (mm) | HD95 (MONAI) undefined |\n|---|---|---|---|\n",
        );
        for (index, region) in self.regions.iter().enumerate() {
            let (hd95, undefined) = self.mean_hd95(index);
            let hd95 = hd95.map_or_else(|| "undefined".to_string(), |d| format!("{d:.2}"));
            table.push_str(&format!(
                "| {region} | {:.4} ± {:.4} | {hd95} | {undefined} of {} |\n",
                self.mean_dice(index),
                self.std_dice(index),
                self.cases.len()
            ));
        }
        table
    }

    /// Writes [`CSV_NAME`] and [`MARKDOWN_NAME`] into `out_dir` (created if needed), each
    /// atomically; returns their paths.
    pub fn write(&self, out_dir: &Path) -> Result<(PathBuf, PathBuf)> {
        write_reports(
            out_dir,
            (CSV_NAME, &self.to_csv()),
            (MARKDOWN_NAME, &self.to_markdown()),
        )
    }
}

/// Writes a CSV and a Markdown report (`(file name, text)`) into `out_dir` (created if needed),
/// each atomically; returns their paths.
pub fn write_reports(
    out_dir: &Path,
    csv: (&str, &str),
    markdown: (&str, &str),
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out_dir).map_err(|err| Error::io(out_dir.display(), err))?;
    let write = |(name, text): (&str, &str)| -> Result<PathBuf> {
        let path = out_dir.join(name);
        write_atomic(&path, |out: &mut dyn Write| out.write_all(text.as_bytes()))?;
        Ok(path)
    };
    Ok((write(csv)?, write(markdown)?))
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
