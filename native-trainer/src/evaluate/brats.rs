//! `brainmvp evaluate --metrics brats`: the BraTS challenge metrics (2023 onwards) of predicted
//! label maps against the ground truth, as the official `brats-evaluation` package (0.0.10,
//! `gli` config, `brats-parse-metrics seg`) reports them: per case and region (NETC, SNFH, ET, RC
//! when some map has a resection cavity, TC, WT) the global Dice, NSD and HD95, the lesion-wise
//! mean and standard deviation of Dice, NSD and HD95, and the lesion detection counts (TP, FP, FN,
//! precision, recall, F1); then the `mean`, `std` and `median` rows. Definitions and edge cases:
//! [`brainmvp_core::metrics::brats_region`]; the table: [`brainmvp_core::metrics::brats_table`].
//!
//! Label maps in the BraTS 2021 convention (4 = enhancing, no 3) are mapped to BraTS 2023 (3 =
//! enhancing) first, per file with `--labels auto`; a ground truth without a prediction is scored
//! as the package's parser does (0, and 373 mm for HD95) with a warning.

use super::{
    check_same_grid, csv_field, pair_folders_allowing_missing, read_label_map, CasePair,
    LabelsChoice,
};
use brainmvp_core::fs::write_atomic;
use brainmvp_core::metrics::brats::{
    score_brats_challenge, to_brats2023_labels, ChallengeRegion, LabelConvention,
};
use brainmvp_core::metrics::brats_region::BratsRegionReport;
use brainmvp_core::metrics::brats_table::{BratsTable, BratsTableRow};
use brainmvp_core::{Error, Result, Volume};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the per-case table written by [`BratsEvaluation::write`].
pub const BRATS_CSV_NAME: &str = "evaluation-brats.csv";
/// Name of the summary written by [`BratsEvaluation::write`].
pub const BRATS_MARKDOWN_NAME: &str = "evaluation-brats.md";

/// How the labels of one map are read.
fn convention_of(labels: LabelsChoice, map: &[u8]) -> std::result::Result<LabelConvention, String> {
    match labels {
        LabelsChoice::Auto => Ok(LabelConvention::detect(map)),
        LabelsChoice::Brats => Ok(LabelConvention::Brats2021),
        LabelsChoice::Brats2023 => Ok(LabelConvention::Brats2023),
        LabelsChoice::Classes => {
            Err("the BraTS challenge metrics need BraTS labels, not --labels classes".to_string())
        }
    }
}

/// The challenge metrics of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct BratsCase {
    /// Subject id.
    pub id: String,
    /// How the prediction's labels were read.
    pub prediction_labels: LabelConvention,
    /// How the ground truth's labels were read.
    pub truth_labels: LabelConvention,
    /// One report per region of [`ChallengeRegion::ALL`], in that order.
    pub regions: Vec<BratsRegionReport>,
}

/// The challenge metrics of `prediction` against `truth` (same grid), all six regions, with the
/// voxel spacing of the truth's affine. Errors name the case.
pub fn score_brats_case(
    id: &str,
    prediction: &Volume<u8>,
    truth: &Volume<u8>,
    labels: LabelsChoice,
) -> Result<BratsCase> {
    let context = format!("case {id}");
    check_same_grid(prediction, truth).map_err(|cause| Error::new(&context, cause))?;
    let predicted = ChallengeLabels::of(prediction, labels)
        .map_err(|cause| Error::new(format!("{context} prediction"), cause))?;
    let reference = ChallengeLabels::of(truth, labels)
        .map_err(|cause| Error::new(format!("{context} ground truth"), cause))?;
    score_converted(id, predicted, reference, truth)
}

/// A label map in BraTS 2023 labels, and the convention it was read in.
struct ChallengeLabels {
    convention: LabelConvention,
    labels: Vec<u8>,
}

impl ChallengeLabels {
    /// The map read with `labels`; the cause when a value is not a label of its convention.
    fn of(map: &Volume<u8>, labels: LabelsChoice) -> std::result::Result<Self, String> {
        let convention = convention_of(labels, &map.data)?;
        let labels = to_brats2023_labels(&map.data, map.dims, convention).map_err(|e| e.cause)?;
        Ok(Self { convention, labels })
    }
}

/// Scores converted maps on the grid of `truth`.
fn score_converted(
    id: &str,
    prediction: ChallengeLabels,
    reference: ChallengeLabels,
    truth: &Volume<u8>,
) -> Result<BratsCase> {
    let regions = score_brats_challenge(
        &prediction.labels,
        &reference.labels,
        truth.dims,
        truth.spacing(),
        &ChallengeRegion::ALL,
    )
    .map_err(|err| Error::new(format!("case {id}"), err.to_string()))?;
    Ok(BratsCase {
        id: id.to_string(),
        prediction_labels: prediction.convention,
        truth_labels: reference.convention,
        regions,
    })
}

/// The challenge metrics of a folder of predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct BratsEvaluation {
    /// Scored cases, in id order.
    pub cases: Vec<BratsCase>,
    /// Ground truths without a prediction, in id order.
    pub missing: Vec<String>,
    /// The package's table (scored cases, then missing ones; RC only when some case has it).
    pub table: BratsTable,
}

/// Scores every prediction of `pred` against its ground truth in `truth` (layouts as
/// [`super::pair_folders`]); ground truths without a prediction become missing cases.
///
/// Errors name the file: a prediction whose dims or affine differ from its truth's, a value that is
/// not a BraTS label of the map's convention, unreadable files; and no prediction at all.
pub fn evaluate_folders_brats(
    pred: &Path,
    truth: &Path,
    labels: LabelsChoice,
) -> Result<BratsEvaluation> {
    // Refuse a label choice without a BraTS convention before reading anything.
    convention_of(labels, &[]).map_err(|cause| Error::new("--metrics brats", cause))?;
    let folders = pair_folders_allowing_missing(pred, truth)?;
    if !folders.missing.is_empty() {
        log::warn!(
            "{}: no prediction for {} of the {} ground truths, scored as missing cases (0; HD95 373 mm): {}",
            pred.display(),
            folders.missing.len(),
            folders.missing.len() + folders.pairs.len(),
            folders.missing.join(", ")
        );
    }
    let cases = folders
        .pairs
        .par_iter()
        .map(|pair| score_brats_pair(pair, labels))
        .collect::<Result<Vec<_>>>()?;
    let table = challenge_table(&cases, &folders.missing)?;
    Ok(BratsEvaluation {
        cases,
        missing: folders.missing,
        table,
    })
}

/// Reads both files of a pair, checks their grids and labels, and scores them.
fn score_brats_pair(pair: &CasePair, labels: LabelsChoice) -> Result<BratsCase> {
    let truth = read_label_map(&pair.truth)?;
    let prediction = read_label_map(&pair.prediction)?;
    check_same_grid(&prediction, &truth).map_err(|cause| {
        Error::new(
            pair.prediction.display().to_string(),
            format!("{cause} (ground truth {})", pair.truth.display()),
        )
    })?;
    let convert = |path: &Path, map: &Volume<u8>| {
        ChallengeLabels::of(map, labels)
            .map_err(|cause| Error::new(path.display().to_string(), cause))
    };
    let predicted = convert(&pair.prediction, &prediction)?;
    let reference = convert(&pair.truth, &truth)?;
    score_converted(&pair.id, predicted, reference, &truth)
}

/// The table of the cases and missing ids; RC is left out when no case has a resection cavity.
fn challenge_table(cases: &[BratsCase], missing: &[String]) -> Result<BratsTable> {
    let has_cavity = cases.iter().flat_map(|c| &c.regions).any(|report| {
        report.region == ChallengeRegion::Rc
            && report.reference_lesions + report.predicted_lesions > 0
    });
    let regions: Vec<ChallengeRegion> = ChallengeRegion::ALL
        .into_iter()
        .filter(|&region| region != ChallengeRegion::Rc || has_cavity)
        .collect();
    let mut table = BratsTable::new(regions.clone());
    for case in cases {
        let reports: Vec<BratsRegionReport> = case
            .regions
            .iter()
            .filter(|report| regions.contains(&report.region))
            .cloned()
            .collect();
        table.push_case(&case.id, &reports)?;
    }
    missing.iter().for_each(|id| table.push_missing(id));
    Ok(table)
}

/// A number of the table: `nan`, `inf` or the shortest exact decimal.
fn number(value: f64) -> String {
    match value {
        v if v.is_nan() => "nan".to_string(),
        v if v.is_infinite() => if v > 0.0 { "inf" } else { "-inf" }.to_string(),
        v => v.to_string(),
    }
}

impl BratsEvaluation {
    /// The package's table as CSV: `subject_id` and `<stem>_<region>` columns, one row per case
    /// (missing cases after the scored ones), then `mean`, `std`, `median`; NaN as `nan`.
    pub fn to_csv(&self) -> String {
        let mut csv = format!("subject_id,{}\n", self.table.column_names().join(","));
        let summary = self.table.summary_rows();
        for row in self.table.rows.iter().chain(&summary) {
            let values: Vec<String> = row.values.iter().map(|&v| number(v)).collect();
            csv.push_str(&format!(
                "{},{}\n",
                csv_field(&row.subject_id),
                values.join(",")
            ));
        }
        csv
    }

    /// The summary: per region the `mean ± std` rows of the lesion-wise and global Dice, NSD and
    /// HD95, and the mean detection counts.
    pub fn to_markdown(&self) -> String {
        let [mean, std, median] = self.table.summary_rows();
        let mut text = format!(
            "{} cases{} — BraTS challenge metrics as brats-evaluation 0.0.10 (`gli`); mean ± sample std over the cases, median in `{}`\n\n",
            self.table.rows.len(),
            match self.missing.len() {
                0 => String::new(),
                n => format!(" ({n} without a prediction, scored 0 with HD95 373 mm)"),
            },
            BRATS_CSV_NAME,
        );
        text.push_str("| region | lesion-wise DSC | lesion-wise NSD (τ = smallest spacing) | lesion-wise HD95 (mm) | global DSC | global NSD (0.5 voxel) | global HD95 (voxels) | TP | FP | FN | F1 | median lesion-wise DSC |\n");
        text.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for &region in &self.table.regions {
            let cell = |stem: &str, digits: usize| {
                let value = |row: &BratsTableRow| self.table.value(row, region, stem);
                format_mean_std(value(&mean), value(&std), digits)
            };
            let plain = |row: &BratsTableRow, stem: &str| {
                self.table
                    .value(row, region, stem)
                    .map_or_else(String::new, |v| format!("{v:.2}"))
            };
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                region.name(),
                cell("lesionwise_dsc_mean", 4),
                cell("lesionwise_nsd_mean", 4),
                cell("lesionwise_hd95_mean", 2),
                cell("global_dsc", 4),
                cell("global_nsd", 4),
                cell("global_hd95", 2),
                plain(&mean, "all_instance_tp"),
                plain(&mean, "all_instance_fp"),
                plain(&mean, "all_instance_fn"),
                plain(&mean, "all_instance_f1"),
                plain(&median, "lesionwise_dsc_mean"),
            ));
        }
        text
    }

    /// Writes [`BRATS_CSV_NAME`] and [`BRATS_MARKDOWN_NAME`] into `out_dir` (created if needed),
    /// each atomically; returns their paths.
    pub fn write(&self, out_dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(out_dir).map_err(|err| Error::io(out_dir.display(), err))?;
        let csv_path = out_dir.join(BRATS_CSV_NAME);
        let markdown_path = out_dir.join(BRATS_MARKDOWN_NAME);
        for (path, text) in [
            (&csv_path, self.to_csv()),
            (&markdown_path, self.to_markdown()),
        ] {
            write_atomic(path, |out: &mut dyn Write| out.write_all(text.as_bytes()))?;
        }
        Ok((csv_path, markdown_path))
    }
}

/// `mean ± std` with `digits` decimals (`nan`/`inf` spelt out).
fn format_mean_std(mean: Option<f64>, std: Option<f64>, digits: usize) -> String {
    let text = |v: f64| match v.is_finite() {
        true => format!("{v:.digits$}"),
        false => number(v),
    };
    match (mean, std) {
        (Some(mean), Some(std)) => format!("{} ± {}", text(mean), text(std)),
        _ => String::new(),
    }
}
