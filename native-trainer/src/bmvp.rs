//! `brainmvp export`: a model folder (or `.bmvp`) written as one `.bmvp` file for the browser
//! and for sharing, in f16 when that keeps the Dice within 0.5 points of f32 on labelled check
//! cases (half the download), else in f32.

use anyhow::{bail, Context, Result};
use brainmvp_core::bmvp::{BmvpModel, WeightPrecision};
use brainmvp_core::cohort::discover;
use brainmvp_core::inference::segment::Segmenter;
use brainmvp_core::Modality;
use burn::backend::Flex;
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::evaluate::read_label_map;
use crate::model_folder::{bmvp_of, write_bmvp};

/// The largest Dice change (in Dice units, 0.005 = 0.5 points) that still allows f16.
pub const F16_DICE_TOLERANCE: f64 = 0.005;

/// Which precision to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// f16 when it keeps the check cases' Dice within 0.5 points of f32, else f32.
    Auto,
    F32,
    F16,
}

/// What to export and how to check it.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// A model folder (`brainmvp finetune`'s `<out>/model`) or a `.bmvp` file.
    pub model: PathBuf,
    /// The `.bmvp` to write.
    pub out: PathBuf,
    pub precision: PrecisionChoice,
    /// A labelled cohort folder to compare f16 with f32 on.
    pub check: Option<PathBuf>,
    /// How many labelled subjects of `check` to use.
    pub check_cases: usize,
}

/// What the export did (also written as `<out>.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub out: PathBuf,
    pub precision: WeightPrecision,
    pub bytes: usize,
    pub bytes_f32: usize,
    pub bytes_f16: usize,
    /// Mean Dice over regions and check cases with the f32 and the f16 weights.
    pub dice_f32: Option<f64>,
    pub dice_f16: Option<f64>,
    /// Share of voxels where the f16 and f32 label maps agree.
    pub agreement: Option<f64>,
    pub check_cases: Vec<String>,
    pub decision: String,
}

impl ExportReport {
    /// A few lines for the terminal.
    pub fn table(&self) -> String {
        let dice = |value: Option<f64>| value.map_or("-".to_string(), |d| format!("{d:.4}"));
        format!(
            "| precision | file size | mean Dice on {} check case(s) |\n|---|---|---|\n\
             | f32 | {:.2} MB | {} |\n| f16 | {:.2} MB | {} |\n\n\
             f16/f32 voxel agreement: {}; wrote {} ({:?}, {:.2} MB): {}",
            self.check_cases.len(),
            self.bytes_f32 as f64 / 1e6,
            dice(self.dice_f32),
            self.bytes_f16 as f64 / 1e6,
            dice(self.dice_f16),
            self.agreement
                .map_or("-".to_string(), |a| format!("{:.4} %", 100.0 * a)),
            self.out.display(),
            self.precision,
            self.bytes as f64 / 1e6,
            self.decision
        )
    }
}

/// A labelled check case: the images and the ground truth.
struct CheckCase {
    id: String,
    images: Vec<(Modality, PathBuf)>,
    label: PathBuf,
}

fn check_cases(cohort: &Path, count: usize) -> Result<Vec<CheckCase>> {
    let cohort = discover(cohort)?;
    let cases: Vec<CheckCase> = cohort
        .subjects
        .iter()
        .filter_map(|subject| {
            Some(CheckCase {
                id: subject.id.clone(),
                images: subject
                    .images
                    .iter()
                    .map(|(m, p)| (*m, p.clone()))
                    .collect(),
                label: subject.label.clone()?,
            })
        })
        .take(count)
        .collect();
    if cases.is_empty() {
        bail!(
            "{}: no labelled subject to check the export on",
            cohort.root.display()
        );
    }
    Ok(cases)
}

/// Mean Dice over regions and cases, and the predictions, of `bmvp` on `cases`.
fn score_bmvp(bmvp: &BmvpModel, cases: &[CheckCase]) -> Result<(f64, Vec<Vec<u8>>)> {
    let device = Default::default();
    let model = bmvp.load_model::<Flex>(&device)?;
    let templates = bmvp.template_bank()?;
    let (mut total, mut predictions) = (0.0, Vec::with_capacity(cases.len()));
    for case in cases {
        let mut images = Vec::with_capacity(case.images.len());
        for (modality, path) in &case.images {
            images.push((*modality, brainmvp_core::nifti::read_path(path)?.volume));
        }
        let segmenter = Segmenter {
            model: &model,
            manifest: &bmvp.manifest,
            templates: templates.as_ref(),
        };
        let segmentation =
            segmenter.segment(&case.id, images, &Default::default(), &device, |_, _| {})?;
        let truth = read_label_map(&case.label)?;
        if truth.dims != segmentation.label_map.dims {
            bail!(
                "{}: label map on another grid than the images",
                case.label.display()
            );
        }
        let scores = bmvp.manifest.labels.score(
            &segmentation.label_map.data,
            &truth.data,
            truth.dims,
            truth.spacing(),
        )?;
        total += scores.iter().map(|s| s.dice).sum::<f64>() / scores.len().max(1) as f64;
        predictions.push(segmentation.label_map.data);
    }
    Ok((total / cases.len() as f64, predictions))
}

fn agreement(a: &[Vec<u8>], b: &[Vec<u8>]) -> f64 {
    let (mut same, mut all) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        same += x.iter().zip(y).filter(|(p, q)| p == q).count();
        all += x.len();
    }
    same as f64 / all.max(1) as f64
}

/// Exports the model of `options`; see the module docs.
pub fn export_model(options: &ExportOptions) -> Result<ExportReport> {
    let bmvp = bmvp_of::<Flex>(&options.model, &Default::default())
        .with_context(|| format!("{}: cannot read the model", options.model.display()))?;
    let f32_bmvp = bmvp.with_precision(WeightPrecision::F32);
    let f16_bmvp = bmvp.with_precision(WeightPrecision::F16);
    let (bytes_f32, bytes_f16) = (f32_bmvp.to_bytes()?.len(), f16_bmvp.to_bytes()?.len());
    let mut report = ExportReport {
        out: options.out.clone(),
        precision: WeightPrecision::F32,
        bytes: 0,
        bytes_f32,
        bytes_f16,
        dice_f32: None,
        dice_f16: None,
        agreement: None,
        check_cases: Vec::new(),
        decision: String::new(),
    };
    if let Some(cohort) = &options.check {
        let cases = check_cases(cohort, options.check_cases.max(1))?;
        let (dice_f32, predictions_f32) = score_bmvp(&f32_bmvp, &cases)?;
        let (dice_f16, predictions_f16) = score_bmvp(&f16_bmvp, &cases)?;
        report.dice_f32 = Some(dice_f32);
        report.dice_f16 = Some(dice_f16);
        report.agreement = Some(agreement(&predictions_f32, &predictions_f16));
        report.check_cases = cases.into_iter().map(|case| case.id).collect();
    }
    (report.precision, report.decision) = decide(options.precision, &report);
    let chosen = match report.precision {
        WeightPrecision::F32 => &f32_bmvp,
        WeightPrecision::F16 => &f16_bmvp,
    };
    report.bytes = write_bmvp(&options.out, chosen)?;
    let json_path = PathBuf::from(format!("{}.json", options.out.display()));
    let json = serde_json::to_string_pretty(&report)?;
    brainmvp_core::fs::write_atomic(&json_path, |file| {
        std::io::Write::write_all(file, json.as_bytes())
    })?;
    Ok(report)
}

fn decide(choice: PrecisionChoice, report: &ExportReport) -> (WeightPrecision, String) {
    match (choice, report.dice_f32.zip(report.dice_f16)) {
        (PrecisionChoice::F32, _) => (WeightPrecision::F32, "f32 as asked".into()),
        (PrecisionChoice::F16, _) => (WeightPrecision::F16, "f16 as asked".into()),
        (PrecisionChoice::Auto, None) => (
            WeightPrecision::F32,
            "f32: no --check cohort to compare f16 with".into(),
        ),
        (PrecisionChoice::Auto, Some((dice_f32, dice_f16))) => {
            let change = (dice_f16 - dice_f32).abs();
            match change <= F16_DICE_TOLERANCE {
                true => (
                    WeightPrecision::F16,
                    format!("f16: Dice changes by {:.2} points (≤ 0.5)", 100.0 * change),
                ),
                false => (
                    WeightPrecision::F32,
                    format!(
                        "f32: f16 changes Dice by {:.2} points (> 0.5)",
                        100.0 * change
                    ),
                ),
            }
        }
    }
}
