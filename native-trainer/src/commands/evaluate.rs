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
//!
//! `brainmvp evaluate --model MODEL --cases DIR [--healthy DIR] [--out DIR] [--no-mirror]
//! [--no-clean] [--device cpu]`: segments the real cases of DIR with the model (page defaults:
//! test-time mirroring and the recommended post-processing) and scores them against their
//! reference maps, with the seconds of each segmentation (see
//! [`crate::evaluate::real_cases`]); `--healthy` adds the tumour volume labelled in the healthy
//! brains of the shared MRI folder. Writes `real_cases.md`, `real_cases.csv` and the label maps
//! into --out (default `real-cases-eval`).

use crate::backend::DeviceSpec;
use crate::evaluate::brats::evaluate_folders_brats;
use crate::evaluate::real_cases::{
    discover_real_cases, evaluate_real_cases, healthy_cases, measure_healthy_brains,
};
use crate::evaluate::{evaluate_folders, LabelsChoice};
use brainmvp_core::inference::segment::InferenceOptions;
use brainmvp_core::postprocess::PostprocessConfig;
use burn::tensor::backend::AutodiffBackend;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `--model/--cases` writes when `--out` is not given.
pub const DEFAULT_REAL_CASES_OUT: &str = "real-cases-eval";

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
    #[arg(long, required_unless_present = "cases", conflicts_with_all = ["model", "cases"])]
    pub pred: Option<PathBuf>,
    /// Ground truth: a cohort folder (label map per subject) or a flat folder of
    /// `<id>_seg.nii.gz` / `<id>.nii.gz`.
    #[arg(long, required_unless_present = "cases", conflicts_with_all = ["model", "cases"])]
    pub truth: Option<PathBuf>,
    /// Model to segment the real cases of --cases with: a model folder or a `.bmvp` file.
    #[arg(long, requires = "cases")]
    pub model: Option<PathBuf>,
    /// Folder of real cases: sub-folders with four modality images and a `reference/` folder of
    /// reference label maps (`mav`, then `BraTS23_1`, then `aurora-t1c`, else the first is used).
    #[arg(long, requires = "model")]
    pub cases: Option<PathBuf>,
    /// With --cases: the shared MRI folder (`../shared/data/mri`); its healthy brains (ICBM152
    /// T1 + T2, Colin27 T1) are segmented too and the tumour labelled in them reported in ml.
    #[arg(long, requires = "cases")]
    pub healthy: Option<PathBuf>,
    /// With --cases: no test-time mirroring (the page mirrors by default).
    #[arg(long, requires = "cases")]
    pub no_mirror: bool,
    /// With --cases: no post-processing (the page's default is the recommended one).
    #[arg(long, requires = "cases")]
    pub no_clean: bool,
    /// With --cases: `cpu`, `cuda[:i]`, `wgpu[:i|integrated|cpu]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Label scheme: `auto` is BraTS (TC/WT/ET, enhancing label 3 or 4 detected) when every
    /// ground-truth value is in {0..4}, else one region per label value. With `--metrics brats`,
    /// `auto` reads each map as BraTS 2021 (4 = enhancing) when it holds a 4 and no 3, else as
    /// BraTS 2023 (3 = enhancing, 4 = resection cavity); `brats`/`brats2023` force one convention.
    #[arg(long, value_enum, default_value = "auto", conflicts_with = "cases")]
    pub labels: LabelsChoice,
    /// `monai` (Dice, HD95 as the official BrainMVP code), `brats` (the BraTS challenge metrics of
    /// brats-evaluation: lesion-wise DSC/NSD/HD95, detection) or `all`.
    #[arg(long, value_enum, default_value = "monai", conflicts_with = "cases")]
    pub metrics: MetricsChoice,
    /// Where the reports go (default: the --pred folder; with --cases `real-cases-eval`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl EvaluateArgs {
    /// Test-time mirroring and the recommended post-processing unless switched off.
    fn inference_options(&self) -> InferenceOptions {
        InferenceOptions {
            mirror: !self.no_mirror,
            postprocess: match self.no_clean {
                true => PostprocessConfig::default(),
                false => PostprocessConfig::recommended(),
            },
            // The rest (the enhancing label written) as the model has it: scoring reads the
            // prediction in each reference's convention.
            ..InferenceOptions::default()
        }
    }
}

/// Scores the predictions (or segments and scores the real cases), prints the summary tables and
/// writes the report files.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    if let (Some(model), Some(cases)) = (&args.model, &args.cases) {
        return run_real_cases(&args, model, cases);
    }
    let (Some(pred), Some(truth)) = (&args.pred, &args.truth) else {
        anyhow::bail!("evaluate needs --pred and --truth, or --model and --cases");
    };
    let out_dir = args.out.clone().unwrap_or_else(|| pred.clone());
    if matches!(args.metrics, MetricsChoice::Monai | MetricsChoice::All) {
        let report = evaluate_folders(pred, truth, args.labels)?;
        let (csv, markdown) = report.write(&out_dir)?;
        println!("{}", report.to_markdown());
        println!("per-case scores: {}", csv.display());
        println!("summary table: {}", markdown.display());
    }
    if matches!(args.metrics, MetricsChoice::Brats | MetricsChoice::All) {
        let evaluation = evaluate_folders_brats(pred, truth, args.labels)?;
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

/// `--model/--cases`: discovers the cases (and the healthy brains), segments and scores them,
/// prints the table and writes `real_cases.md` and `real_cases.csv`.
fn run_real_cases(args: &EvaluateArgs, model: &Path, cases_dir: &Path) -> anyhow::Result<ExitCode> {
    let cases = discover_real_cases(cases_dir)?;
    let healthy = match &args.healthy {
        Some(dir) => healthy_cases(dir)?,
        None => Vec::new(),
    };
    let options = args.inference_options();
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REAL_CASES_OUT));
    let spec = DeviceSpec::parse(&args.device)?;
    let report = crate::with_autodiff_backend!(spec, |B, devices| {
        let device = devices.into_iter().next().unwrap_or_default();
        let mut report = evaluate_real_cases::<<B as AutodiffBackend>::InnerBackend>(
            model, &cases, &options, &out_dir, &device,
        )?;
        report.healthy = measure_healthy_brains::<<B as AutodiffBackend>::InnerBackend>(
            model, &healthy, &options, &out_dir, &device,
        )?;
        report
    });
    let (csv, markdown) = report.write(&out_dir)?;
    println!("\n{}", report.to_markdown());
    println!("per-case scores: {}", csv.display());
    println!("summary table: {}", markdown.display());
    Ok(ExitCode::SUCCESS)
}
