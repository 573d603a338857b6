//! The table the official package's parser writes (`brats_evaluation.parse_seg_results`, the
//! `brats-parse-metrics seg` command): one row per case, fifteen columns per region, then the
//! summary rows `mean`, `std` and `median`.
//!
//! Its conventions, kept here:
//! - a case without a prediction (the package's "missings") gets 373 in every HD95 column that is
//!   not a standard deviation and 0 everywhere else, and enters the summary rows like any case;
//!   its rows come after those of the scored cases;
//! - the summary rows are pandas' column-wise `mean`, `std` (sample standard deviation, n − 1)
//!   and `median`, skipping NaN; an infinite lesion-wise HD95 makes its column's mean +inf and its
//!   standard deviation NaN, as in pandas.

use super::brats::ChallengeRegion;
use super::brats_region::{BratsRegionReport, LesionMetric, MISSING_HD95_MM};
use crate::{Error, Result};

/// The fifteen column stems of a region, in the parser's order (a column is `<stem>_<region
/// key>`, as `global_dsc_wt`).
pub const COLUMN_STEMS: [&str; 15] = [
    "all_instance_tp",
    "all_instance_fp",
    "all_instance_fn",
    "all_instance_prec",
    "all_instance_rec",
    "all_instance_f1",
    "global_dsc",
    "global_nsd",
    "global_hd95",
    "lesionwise_dsc_mean",
    "lesionwise_dsc_std",
    "lesionwise_nsd_mean",
    "lesionwise_nsd_std",
    "lesionwise_hd95_mean",
    "lesionwise_hd95_std",
];

/// Subject ids of the summary rows, in their order.
pub const SUMMARY_ROWS: [&str; 3] = ["mean", "std", "median"];

/// One row of the table: a subject id and `regions × 15` values (region by region).
#[derive(Debug, Clone, PartialEq)]
pub struct BratsTableRow {
    /// The case's id, or `mean` / `std` / `median`.
    pub subject_id: String,
    /// The values, region by region in the table's order, each region's in [`COLUMN_STEMS`] order.
    pub values: Vec<f64>,
}

/// The parser's table over some regions.
#[derive(Debug, Clone, PartialEq)]
pub struct BratsTable {
    /// The regions, in column order.
    pub regions: Vec<ChallengeRegion>,
    /// Scored cases first, then the missing ones (without the summary rows).
    pub rows: Vec<BratsTableRow>,
}

/// The fifteen values of a region as the parser writes them (the global HD95's +inf as 373).
pub fn region_values(report: &BratsRegionReport) -> [f64; 15] {
    [
        report.true_positives() as f64,
        report.false_positives() as f64,
        report.false_negatives() as f64,
        report.precision(),
        report.recall(),
        report.f1(),
        report.global_dice,
        report.global_nsd,
        report.global_hd95_reported(),
        report.lesion_wise_mean(LesionMetric::Dice),
        report.lesion_wise_std(LesionMetric::Dice),
        report.lesion_wise_mean(LesionMetric::Nsd),
        report.lesion_wise_std(LesionMetric::Nsd),
        report.lesion_wise_mean(LesionMetric::Hd95),
        report.lesion_wise_std(LesionMetric::Hd95),
    ]
}

/// The value of a missing case in the column of `stem`: 373 for an HD95 that is not a standard
/// deviation, else 0.
pub fn missing_case_value(stem: &str) -> f64 {
    match stem.contains("hd95") && !stem.contains("std") {
        true => MISSING_HD95_MM,
        false => 0.0,
    }
}

impl BratsTable {
    /// An empty table over `regions`.
    pub fn new(regions: Vec<ChallengeRegion>) -> Self {
        Self {
            regions,
            rows: Vec::new(),
        }
    }

    /// The column names after `subject_id`: `<stem>_<region key>`, region by region.
    pub fn column_names(&self) -> Vec<String> {
        self.regions
            .iter()
            .flat_map(|region| {
                COLUMN_STEMS
                    .iter()
                    .map(|stem| format!("{stem}_{}", region.key()))
            })
            .collect()
    }

    /// Adds a scored case; `reports` must hold the table's regions in its order.
    pub fn push_case(&mut self, subject_id: &str, reports: &[BratsRegionReport]) -> Result<()> {
        let regions: Vec<ChallengeRegion> = reports.iter().map(|r| r.region).collect();
        if regions != self.regions {
            return Err(Error::new(
                format!("case {subject_id}"),
                format!(
                    "regions {regions:?} do not match the table's {:?}",
                    self.regions
                ),
            ));
        }
        let values = reports.iter().flat_map(region_values).collect();
        self.rows.push(BratsTableRow {
            subject_id: subject_id.to_string(),
            values,
        });
        Ok(())
    }

    /// Adds a case without a prediction (373 / 0, see [`missing_case_value`]).
    pub fn push_missing(&mut self, subject_id: &str) {
        let values = self
            .regions
            .iter()
            .flat_map(|_| COLUMN_STEMS.map(missing_case_value))
            .collect();
        self.rows.push(BratsTableRow {
            subject_id: subject_id.to_string(),
            values,
        });
    }

    /// The value of column `stem` of `region` in `row`, `None` for a region or stem not in the
    /// table.
    pub fn value(&self, row: &BratsTableRow, region: ChallengeRegion, stem: &str) -> Option<f64> {
        let region_index = self.regions.iter().position(|&r| r == region)?;
        let stem_index = COLUMN_STEMS.iter().position(|&s| s == stem)?;
        row.values
            .get(region_index * COLUMN_STEMS.len() + stem_index)
            .copied()
    }

    /// The `mean`, `std` and `median` rows over every row of the table (pandas' definitions,
    /// NaN skipped).
    pub fn summary_rows(&self) -> [BratsTableRow; 3] {
        let columns = self.regions.len() * COLUMN_STEMS.len();
        let column = |index: usize| -> Vec<f64> {
            self.rows
                .iter()
                .map(|row| row.values[index])
                .filter(|v| !v.is_nan())
                .collect()
        };
        let summarise = |name: &str, statistic: fn(&[f64]) -> f64| BratsTableRow {
            subject_id: name.to_string(),
            values: (0..columns)
                .map(|index| statistic(&column(index)))
                .collect(),
        };
        [
            summarise(SUMMARY_ROWS[0], mean),
            summarise(SUMMARY_ROWS[1], sample_std),
            summarise(SUMMARY_ROWS[2], median),
        ]
    }
}

/// Mean of values (NaN for none; +inf when one is +inf).
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample standard deviation (n − 1) as pandas: NaN under two values, NaN with an infinity.
fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return f64::NAN;
    }
    let average = mean(values);
    let squares: f64 = values.iter().map(|v| (average - v) * (average - v)).sum();
    (squares / (values.len() - 1) as f64).sqrt()
}

/// Median (mean of the two middle values for an even count; NaN for none).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
