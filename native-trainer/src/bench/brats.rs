//! `brainmvp bench brats-metrics`: seconds per case of the BraTS challenge metrics (all six
//! regions: components, matching, global and lesion-wise DSC/NSD/HD95) on one core, against the
//! MONAI-style Dice and HD95 of `brainmvp evaluate` on the same maps. The maps are read once,
//! outside the timing; the metrics run on the calling thread (they use no other).

use crate::evaluate::brats::score_brats_case;
use crate::evaluate::{read_label_map, LabelsChoice};
use anyhow::{ensure, Context};
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::metrics::brats_region::LesionMetric;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The shared real case timed by default (see `../shared/data/real/README.md`).
const DEFAULT_CASE: &str = "../shared/data/real/BraTS-GLI-00001-000/reference";

/// Arguments of `brainmvp bench brats-metrics`.
#[derive(clap::Args)]
pub struct BratsMetricsBenchArgs {
    /// Predicted label map (default: `isen.nii.gz` of the shared BraTS-GLI-00001-000).
    #[arg(long)]
    pub pred: Option<PathBuf>,
    /// Reference label map (default: `BraTS23_1.nii.gz` of the shared BraTS-GLI-00001-000).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Label conventions, as `brainmvp evaluate --labels`.
    #[arg(long, value_enum, default_value = "auto")]
    pub labels: LabelsChoice,
    /// Timed repetitions (the best and the median are reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Also write the timings as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Times the challenge metrics and the MONAI-style metrics of one case.
pub fn bench_brats_metrics(args: BratsMetricsBenchArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.repeats > 0, "--repeats must be at least 1");
    let pred = args
        .pred
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CASE).join("isen.nii.gz"));
    let truth = args
        .truth
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CASE).join("BraTS23_1.nii.gz"));
    let prediction = read_label_map(&pred).context("the predicted label map (--pred)")?;
    let reference = read_label_map(&truth).context("the reference label map (--truth)")?;
    println!(
        "{} against {}: {}x{}x{} voxels, {} repetitions on one thread",
        pred.display(),
        truth.display(),
        reference.dims[0],
        reference.dims[1],
        reference.dims[2],
        args.repeats
    );
    let mut brats_seconds = Vec::with_capacity(args.repeats);
    let mut case = None;
    for _ in 0..args.repeats {
        let started = Instant::now();
        case = Some(score_brats_case(
            "bench",
            &prediction,
            &reference,
            args.labels,
        )?);
        brats_seconds.push(started.elapsed().as_secs_f64());
    }
    let scheme = LabelScheme::detect_brats(&[&reference.data]);
    let mut monai_seconds = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let started = Instant::now();
        scheme.score(
            &prediction.data,
            &reference.data,
            reference.dims,
            reference.spacing(),
        )?;
        monai_seconds.push(started.elapsed().as_secs_f64());
    }
    if let Some(case) = &case {
        for report in &case.regions {
            println!(
                "  {:<4} lesions {:>3} ref / {:>3} pred, TP {:>3}; global DSC {:.4} HD95 {:.2}; lesion-wise DSC {:.4}",
                report.region.name(),
                report.reference_lesions,
                report.predicted_lesions,
                report.true_positives(),
                report.global_dice,
                report.global_hd95_reported(),
                report.lesion_wise_mean(LesionMetric::Dice)
            );
        }
    }
    let (brats_best, brats_median) = best_and_median(&mut brats_seconds);
    let (monai_best, monai_median) = best_and_median(&mut monai_seconds);
    println!("BraTS challenge metrics (6 regions): best {brats_best:.3} s, median {brats_median:.3} s per case");
    println!("Dice + HD95 (MONAI) (3 regions):     best {monai_best:.3} s, median {monai_median:.3} s per case");
    if let Some(path) = &args.json {
        let record = serde_json::json!({
            "bench": "brats-metrics",
            "prediction": pred.display().to_string(),
            "reference": truth.display().to_string(),
            "dims": reference.dims,
            "brats_seconds": brats_seconds,
            "monai_seconds": monai_seconds,
            "brats_best_s": brats_best,
            "monai_best_s": monai_best,
        });
        super::write_json(path, &record)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Best and median of the timings (sorts them).
fn best_and_median(seconds: &mut [f64]) -> (f64, f64) {
    seconds.sort_by(f64::total_cmp);
    (seconds[0], seconds[seconds.len() / 2])
}
