//! `brainmvp evaluate --pred DIR --truth DIR [--labels auto|brats|brats2023|classes]
//! [--metrics monai|brats|all] [--out DIR]`: scores predicted label maps against the ground truth,
//! paired by subject id (see [`crate::evaluate::pair_folders`]).
//!
//! - `--metrics monai` (default): Dice and HD95 (MONAI) per case and region (TC/WT/ET or one per
//!   label), as the official BrainMVP code; writes `evaluation.csv` (one row per case and region)
//!   and `evaluation.md` (the summary).
//! - `--metrics brats`: the BraTS challenge metrics of the official `brats-evaluation` package
//!   (lesion-wise and global Dice, NSD and HD95, lesion detection; see
//!   [`crate::evaluate::brats`]); writes `evaluation-brats.csv` (the package's parser table with
//!   its `mean`/`std`/`median` rows) and `evaluation-brats.md`. Ground truths without a prediction
//!   are scored as missing cases (0, HD95 373 mm) instead of failing.
//! - `--metrics all`: both (missing predictions then fail, as for `monai`).
//!
//! Prints the summary tables.

use crate::evaluate::brats::evaluate_folders_brats;
use crate::evaluate::{evaluate_folders, LabelsChoice};
use std::path::PathBuf;
use std::process::ExitCode;

/// Which metrics `brainmvp evaluate` reports (`--metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsChoice {
    /// Dice and HD95 (MONAI) per region, as the official BrainMVP code.
    Monai,
    /// The BraTS challenge metrics (brats-evaluation 0.0.10): lesion-wise and global DSC, NSD,
    /// HD95, lesion detection.
    Brats,
    /// Both reports.
    All,
}

/// Arguments of `brainmvp evaluate`.
#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// Folder of predictions: `<id>_seg.nii.gz`, `<id>.nii.gz` or `<id>_pred.nii.gz`.
    #[arg(long)]
    pub pred: PathBuf,
    /// Ground truth: a cohort folder (label map per subject) or a flat folder of
    /// `<id>_seg.nii.gz` / `<id>.nii.gz`.
    #[arg(long)]
    pub truth: PathBuf,
    /// Label scheme: `auto` is BraTS (TC/WT/ET, enhancing label 3 or 4 detected) when every
    /// ground-truth value is in {0..4}, else one region per label value. With `--metrics brats`,
    /// `auto` reads each map as BraTS 2021 (4 = enhancing) when it holds a 4 and no 3, else as
    /// BraTS 2023 (3 = enhancing, 4 = resection cavity); `brats`/`brats2023` force one convention.
    #[arg(long, value_enum, default_value = "auto")]
    pub labels: LabelsChoice,
    /// `monai` (Dice, HD95 as the official BrainMVP code), `brats` (the BraTS challenge metrics of
    /// brats-evaluation: lesion-wise DSC/NSD/HD95, detection) or `all`.
    #[arg(long, value_enum, default_value = "monai")]
    pub metrics: MetricsChoice,
    /// Where the reports go (default: the --pred folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Scores the predictions, prints the summary tables and writes the report files.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let out_dir = args.out.clone().unwrap_or_else(|| args.pred.clone());
    if matches!(args.metrics, MetricsChoice::Monai | MetricsChoice::All) {
        let report = evaluate_folders(&args.pred, &args.truth, args.labels)?;
        let (csv, markdown) = report.write(&out_dir)?;
        println!("{}", report.to_markdown());
        println!("per-case scores: {}", csv.display());
        println!("summary table: {}", markdown.display());
    }
    if matches!(args.metrics, MetricsChoice::Brats | MetricsChoice::All) {
        let evaluation = evaluate_folders_brats(&args.pred, &args.truth, args.labels)?;
        let (csv, markdown) = evaluation.write(&out_dir)?;
        println!("{}", evaluation.to_markdown());
        println!(
            "BraTS challenge table (per case, mean, std, median): {}",
            csv.display()
        );
        println!("BraTS challenge summary: {}", markdown.display());
    }
    Ok(ExitCode::SUCCESS)
}
