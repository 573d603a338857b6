//! The label-efficiency experiment's outputs: `runs.csv` (one row per fine-tuning run),
//! `results.md` (mean ± spread over seeds per fraction, pre-trained vs scratch, and the ablation
//! rows) and `label-efficiency.png` (test Dice against the label fraction).

use anyhow::Result;
use std::fmt::Write as _;

use crate::experiment::{LabelEfficiencyConfig, RunResult, Variant};
use crate::report::plot_curves;
use brainmvp_core::cache::files::write_atomic;

/// Mean, minimum and maximum of some values (NaN when empty).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(values: &[f64]) -> Self {
        let count = values.len();
        let mean = values.iter().sum::<f64>() / count as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match count {
            0 => Self {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                count,
            },
            _ => Self {
                mean,
                min,
                max,
                count,
            },
        }
    }

    /// `0.712 ± 0.013` (half the range), or `–` when empty.
    pub fn cell(&self) -> String {
        match self.count {
            0 => "–".to_string(),
            _ => format!("{:.3} ± {:.3}", self.mean, (self.max - self.min) / 2.0),
        }
    }
}

/// The test Dice of the runs with `init` at `fraction`.
pub fn spread_of(results: &[RunResult], init: &str, fraction: f64) -> Spread {
    let values: Vec<f64> = results
        .iter()
        .filter(|r| r.init == init && (r.fraction - fraction).abs() < 1e-9)
        .map(|r| r.test_dice)
        .collect();
    Spread::of(&values)
}

/// The markdown report.
pub fn results_markdown(config: &LabelEfficiencyConfig, results: &[RunResult]) -> String {
    let mut text = String::from("# Label efficiency: pre-trained vs scratch\n\n");
    let _ = writeln!(
        text,
        "Test mean Dice (regions and test subjects averaged), mean ± half-range over seeds {:?}; {} fine-tuning steps per run, same test set for every run.\n",
        config.seeds, config.finetune.steps
    );
    text.push_str("| label fraction | training subjects | pre-trained | scratch | difference |\n|---|---|---|---|---|\n");
    for &fraction in &config.fractions {
        let pretrained = spread_of(results, "pretrained", fraction);
        let scratch = spread_of(results, "scratch", fraction);
        let subjects = results
            .iter()
            .find(|r| (r.fraction - fraction).abs() < 1e-9)
            .map_or(0, |r| r.train_subjects);
        let _ = writeln!(
            text,
            "| {:.0} % | {subjects} | {} | {} | {:+.3} |",
            fraction * 100.0,
            pretrained.cell(),
            scratch.cell(),
            pretrained.mean - scratch.mean
        );
    }
    if config.ablation {
        let fraction = config.ablation_fraction;
        let _ = writeln!(
            text,
            "\n## Pre-training ablation ({:.0} % of the labels)\n\n| pre-training | test Dice |\n|---|---|",
            fraction * 100.0
        );
        let _ = writeln!(
            text,
            "| none (scratch) | {} |",
            spread_of(results, "scratch", fraction).cell()
        );
        for variant in [Variant::Reconstruction, Variant::Templates, Variant::Full] {
            let init = match variant {
                Variant::Full => "pretrained".to_string(),
                other => format!("ablation-{}", other.name()),
            };
            let spread = spread_of(results, &init, fraction);
            let _ = writeln!(text, "| {} | {} |", variant.label(), spread.cell());
        }
    }
    text
}

/// `runs.csv`.
pub fn runs_csv(results: &[RunResult]) -> String {
    let mut text = String::from("init,fraction,seed,train_subjects,best_step,test_dice");
    let regions: Vec<String> = results
        .first()
        .map(|r| r.region_dice.iter().map(|(name, _)| name.clone()).collect())
        .unwrap_or_default();
    regions
        .iter()
        .for_each(|name| text.push_str(&format!(",dice_{name}")));
    text.push('\n');
    for r in results {
        let _ = write!(
            text,
            "{},{},{},{},{},{:.6}",
            r.init, r.fraction, r.seed, r.train_subjects, r.best_step, r.test_dice
        );
        r.region_dice
            .iter()
            .for_each(|(_, dice)| text.push_str(&format!(",{dice:.6}")));
        text.push('\n');
    }
    text
}

/// Writes `results.md`, `runs.csv` and `label-efficiency.png` into the experiment's folder.
pub fn write_results(config: &LabelEfficiencyConfig, results: &[RunResult]) -> Result<()> {
    let markdown = results_markdown(config, results);
    println!("{markdown}");
    write_atomic(&config.out.join("results.md"), |f| {
        f.write_all(markdown.as_bytes())
    })?;
    let csv = runs_csv(results);
    write_atomic(&config.out.join("runs.csv"), |f| {
        f.write_all(csv.as_bytes())
    })?;
    let mut series = Vec::new();
    for init in ["pretrained", "scratch"] {
        let spreads: Vec<(f64, Spread)> = config
            .fractions
            .iter()
            .map(|&f| (f * 100.0, spread_of(results, init, f)))
            .collect();
        series.push((
            format!("{init} (mean)"),
            spreads.iter().map(|(x, s)| (*x, s.mean)).collect(),
        ));
        series.push((
            format!("{init} (min)"),
            spreads.iter().map(|(x, s)| (*x, s.min)).collect(),
        ));
        series.push((
            format!("{init} (max)"),
            spreads.iter().map(|(x, s)| (*x, s.max)).collect(),
        ));
    }
    plot_curves(
        &config.out.join("label-efficiency.png"),
        "test Dice against label fraction",
        "labelled training subjects (%)",
        "mean Dice",
        &series,
        false,
    )
}
