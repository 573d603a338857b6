//! `brainmvp evaluate --pred DIR --truth DIR [--labels auto|brats|brats2023|classes] [--out DIR]`:
//! Dice and HD95 per case and region of predicted label maps against the ground truth, paired by
//! subject id (see [`crate::evaluate::pair_folders`]); prints the summary table and writes
//! `evaluation.csv` (one row per case and region) and `evaluation.md` (the summary).

use crate::evaluate::{evaluate_folders, LabelsChoice};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// ground-truth value is in {0..4}, else one region per label value.
    #[arg(long, value_enum, default_value = "auto")]
    pub labels: LabelsChoice,
    /// Where `evaluation.csv` and `evaluation.md` go (default: the --pred folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Scores the predictions, prints the summary table and writes the report files.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let report = evaluate_folders(&args.pred, &args.truth, args.labels)?;
    let out_dir = args.out.unwrap_or_else(|| args.pred.clone());
    let (csv, markdown) = report.write(&out_dir)?;
    println!("{}", report.to_markdown());
    println!("per-case scores: {}", csv.display());
    println!("summary table: {}", markdown.display());
    Ok(ExitCode::SUCCESS)
}
