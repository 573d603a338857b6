//! The label-efficiency experiment's outputs: `runs.csv` (one row per fine-tuning run),
//! `results.md` (mean ± spread over seeds per fraction, pre-trained vs scratch, and the ablation
//! rows) and `label-efficiency.png` (test Dice against the label fraction).

use anyhow::Result;
use std::fmt::Write as _;

use super::config::{LabelEfficiencyConfig, RunResult, Variant};
use crate::paired::{differences_by_id, headline_of, headline_region, PairedDifference};
use crate::report::plot_curves;
use brainmvp_core::fs::write_atomic;

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

/// The headline test Dice (WT) of the runs with `init` at `fraction`.
pub fn spread_of(results: &[RunResult], init: &str, fraction: f64) -> Spread {
    let values: Vec<f64> = results
        .iter()
        .filter(|r| r.init == init && (r.fraction - fraction).abs() < 1e-9)
        .map(headline)
        .collect();
    Spread::of(&values)
}

/// The headline region: `WT` when the labels have it, else the mean over regions.
fn headline_index(result: &RunResult) -> Option<usize> {
    headline_region(result.region_dice.iter().map(|(name, _)| name.as_str()))
}

/// A run's headline test Dice (whole tumour, or the mean over regions).
pub fn headline(result: &RunResult) -> f64 {
    match headline_index(result) {
        Some(index) => result.region_dice[index].1,
        None => result.test_dice,
    }
}

/// Per test subject, the headline Dice of one run.
fn case_headlines(result: &RunResult) -> Vec<(String, f64)> {
    let index = headline_index(result);
    result
        .case_dice
        .iter()
        .map(|(id, dice)| (id.clone(), headline_of(dice, index)))
        .collect()
}

/// The runs of `init` at `fraction`.
fn runs_of<'a>(results: &'a [RunResult], init: &'a str, fraction: f64) -> Vec<&'a RunResult> {
    results
        .iter()
        .filter(|r| r.init == init && (r.fraction - fraction).abs() < 1e-9)
        .collect()
}

/// Paired headline differences `a − b` at `fraction`: one list per seed both arms ran, one value
/// per test subject both were scored on.
pub fn paired_differences(results: &[RunResult], a: &str, b: &str, fraction: f64) -> Vec<Vec<f64>> {
    let others = runs_of(results, b, fraction);
    runs_of(results, a, fraction)
        .into_iter()
        .filter_map(|run_a| {
            let run_b = others.iter().find(|r| r.seed == run_a.seed)?;
            let diffs = differences_by_id(&case_headlines(run_a), &case_headlines(run_b));
            (!diffs.is_empty()).then_some(diffs)
        })
        .collect()
}

/// `0.712 ± 0.013` (mean ± standard deviation over the seeds' headline Dice).
fn headline_cell(results: &[RunResult], init: &str, fraction: f64) -> String {
    let values: Vec<f64> = runs_of(results, init, fraction)
        .into_iter()
        .map(headline)
        .collect();
    mean_sd_cell(&values)
}

fn mean_sd_cell(values: &[f64]) -> String {
    if values.is_empty() {
        return "–".to_string();
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
        / (values.len().max(2) - 1) as f64;
    format!("{mean:.3} ± {:.3}", variance.sqrt())
}

/// One comparison row: `a` against `b` at `fraction`.
fn comparison_cells(results: &[RunResult], a: &str, b: &str, fraction: f64) -> String {
    let per_seed = paired_differences(results, a, b, fraction);
    let seeds = PairedDifference::over_seeds(&per_seed);
    let pairs = PairedDifference::over_pairs(&per_seed);
    format!(
        "{} | {} | {}/{} | {}",
        seeds.cell(),
        pairs.cell(),
        seeds.wins,
        seeds.pairs,
        match seeds.resolved() {
            true => "yes",
            false => "no (within the noise)",
        }
    )
}

/// Mean over seeds of each region's test Dice: `TC 0.41 · WT 0.55 · ET 0.30`.
fn region_cell(results: &[RunResult], init: &str, fraction: f64) -> String {
    let runs = runs_of(results, init, fraction);
    let Some(first) = runs.first() else {
        return "–".to_string();
    };
    first
        .region_dice
        .iter()
        .enumerate()
        .map(|(index, (name, _))| {
            let sum: f64 = runs.iter().map(|r| r.region_dice[index].1).sum();
            format!("{name} {:.3}", sum / runs.len() as f64)
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

const COMPARISON_HEADER: &str = "difference, 95 % CI over seeds | over (seed, subject) pairs (optimistic) | pairs won | resolved";

/// The markdown report.
pub fn results_markdown(config: &LabelEfficiencyConfig, results: &[RunResult]) -> String {
    let mut text = String::from("# Label efficiency: pre-trained vs scratch\n\n");
    let test_subjects = results.first().map_or(0, |r| r.case_dice.len());
    let _ = writeln!(
        text,
        "Headline: test whole-tumour (WT) Dice, mean ± sd over seeds {:?}; {} test subjects, the same for every run; at most {} fine-tuning steps per run (patience {}). Differences are paired on the seed and the test subject.\n",
        config.seeds, test_subjects, config.finetune.steps, config.finetune.validation.patience
    );
    let _ = writeln!(
        text,
        "| label fraction | training subjects | pre-trained WT | scratch WT | {COMPARISON_HEADER} |\n|---|---|---|---|---|---|---|---|"
    );
    for &fraction in &config.fractions {
        let subjects = runs_of(results, "scratch", fraction)
            .first()
            .map_or(0, |r| r.train_subjects);
        let _ = writeln!(
            text,
            "| {:.0} % | {subjects} | {} | {} | {} |",
            fraction * 100.0,
            headline_cell(results, "pretrained", fraction),
            headline_cell(results, "scratch", fraction),
            comparison_cells(results, "pretrained", "scratch", fraction),
        );
    }
    text.push_str("\nPer region (mean over seeds):\n\n| label fraction | pre-trained | scratch |\n|---|---|---|\n");
    for &fraction in &config.fractions {
        let _ = writeln!(
            text,
            "| {:.0} % | {} | {} |",
            fraction * 100.0,
            region_cell(results, "pretrained", fraction),
            region_cell(results, "scratch", fraction)
        );
    }
    if config.ablation {
        for &fraction in &config.ablation_fractions {
            ablation_markdown(fraction, results, &mut text);
        }
    }
    text.push_str(&capped_markdown(config.finetune.steps, results));
    text
}

/// How many runs of each arm had their best validation at the step cap (still improving when
/// stopped, so "trained until validation stops improving" does not hold for them).
fn capped_markdown(steps: u64, results: &[RunResult]) -> String {
    let mut arms: Vec<&str> = Vec::new();
    for result in results {
        if !arms.contains(&result.init.as_str()) {
            arms.push(&result.init);
        }
    }
    let counts: Vec<String> = arms
        .iter()
        .map(|&arm| {
            let runs: Vec<&RunResult> = results.iter().filter(|r| r.init == arm).collect();
            let capped = runs.iter().filter(|r| r.best_step >= steps).count();
            format!("{arm} {capped}/{}", runs.len())
        })
        .collect();
    format!(
        "\nRuns whose best validation was at the {steps}-step cap (still improving when stopped): {}.\n",
        counts.join(", ")
    )
}

/// The ablation rows at `fraction`, each against scratch.
fn ablation_markdown(fraction: f64, results: &[RunResult], text: &mut String) {
    let _ = writeln!(
        text,
        "\n## Pre-training ablation ({:.0} % of the labels)\n\n| pre-training | WT | regions | vs scratch: {COMPARISON_HEADER} |\n|---|---|---|---|---|---|---|",
        fraction * 100.0
    );
    let _ = writeln!(
        text,
        "| none (scratch) | {} | {} | – | – | – | – |",
        headline_cell(results, "scratch", fraction),
        region_cell(results, "scratch", fraction)
    );
    for variant in [Variant::Reconstruction, Variant::Templates, Variant::Full] {
        let init = match variant {
            Variant::Full => "pretrained".to_string(),
            other => format!("ablation-{}", other.name()),
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            variant.label(),
            headline_cell(results, &init, fraction),
            region_cell(results, &init, fraction),
            comparison_cells(results, &init, "scratch", fraction)
        );
    }
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

/// `cases.csv`: one row per run and test subject.
pub fn cases_csv(results: &[RunResult]) -> String {
    let mut text = String::from("init,fraction,seed,case");
    if let Some(first) = results.first() {
        first
            .region_dice
            .iter()
            .for_each(|(name, _)| text.push_str(&format!(",dice_{name}")));
    }
    text.push('\n');
    for r in results {
        for (id, dice) in &r.case_dice {
            let _ = write!(text, "{},{},{},{id}", r.init, r.fraction, r.seed);
            dice.iter().for_each(|d| text.push_str(&format!(",{d:.6}")));
            text.push('\n');
        }
    }
    text
}

/// Writes `results.md`, `runs.csv`, `cases.csv` and `label-efficiency.png` into the
/// experiment's folder.
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
    let cases = cases_csv(results);
    write_atomic(&config.out.join("cases.csv"), |f| {
        f.write_all(cases.as_bytes())
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
        "test WT Dice",
        &series,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose test subjects `a`, `b`, `c` have the WT Dice `wt` (TC and ET fixed).
    fn run(init: &str, seed: u64, wt: [f64; 3]) -> RunResult {
        let regions = ["TC", "WT", "ET"].map(String::from);
        let case_dice: Vec<(String, Vec<f64>)> = ["a", "b", "c"]
            .iter()
            .zip(wt)
            .map(|(id, value)| (id.to_string(), vec![0.5, value, 0.25]))
            .collect();
        let mean_wt = wt.iter().sum::<f64>() / 3.0;
        RunResult {
            init: init.into(),
            fraction: 0.2,
            seed,
            train_subjects: 4,
            test_dice: (0.5 + mean_wt + 0.25) / 3.0,
            region_dice: regions.iter().cloned().zip([0.5, mean_wt, 0.25]).collect(),
            best_step: 100,
            case_dice,
        }
    }

    #[test]
    fn differences_pair_the_same_seed_and_subject_on_the_whole_tumour() {
        let results = vec![
            run("pretrained", 0, [0.6, 0.7, 0.8]),
            run("scratch", 1, [0.0, 0.0, 0.0]),
            run("scratch", 0, [0.5, 0.5, 0.5]),
            run("pretrained", 1, [0.1, 0.1, 0.4]),
        ];
        let per_seed = paired_differences(&results, "pretrained", "scratch", 0.2);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert_eq!(per_seed.len(), 2);
        assert!(close(&per_seed[0], &[0.1, 0.2, 0.3]), "{per_seed:?}");
        assert!(close(&per_seed[1], &[0.1, 0.1, 0.4]), "{per_seed:?}");
        assert!((headline(&results[0]) - 0.7).abs() < 1e-12);
        // A seed only one arm ran, or another fraction, is not paired.
        assert!(paired_differences(&results, "pretrained", "scratch", 0.1).is_empty());
        let lonely = vec![run("pretrained", 3, [0.5; 3]), run("scratch", 0, [0.5; 3])];
        assert!(paired_differences(&lonely, "pretrained", "scratch", 0.2).is_empty());
    }

    #[test]
    fn the_report_shows_the_paired_interval_and_whether_it_resolves() {
        let mut results = Vec::new();
        for seed in 0..5 {
            let gain = 0.1 + 0.01 * seed as f64;
            results.push(run("scratch", seed, [0.4, 0.5, 0.6]));
            results.push(run(
                "pretrained",
                seed,
                [0.4 + gain, 0.5 + gain, 0.6 + gain],
            ));
        }
        for result in results
            .iter_mut()
            .filter(|r| r.init == "scratch" && r.seed < 2)
        {
            result.best_step = 150;
        }
        let mut config = LabelEfficiencyConfig {
            fractions: vec![0.2],
            seeds: (0..5).collect(),
            ablation: false,
            ..Default::default()
        };
        config.finetune.steps = 150;
        let text = results_markdown(&config, &results);
        assert!(
            text.contains(
                "at the 150-step cap (still improving when stopped): scratch 2/5, pretrained 0/5."
            ),
            "{text}"
        );
        assert!(text.contains("3 test subjects"), "{text}");
        // Seed means 0.10 … 0.14: mean 0.12, sd 0.0158, half-width 2.776 · 0.0158 / √5 = 0.0196.
        assert!(text.contains("+0.120 [+0.100, +0.140]"), "{text}");
        assert!(text.contains("| 15/15 | yes |"), "{text}");
        assert!(text.contains("TC 0.500 · WT 0.620 · ET 0.250"), "{text}");
        let csv = cases_csv(&results);
        assert_eq!(csv.lines().count(), 1 + 10 * 3);
        assert!(csv.starts_with("init,fraction,seed,case,dice_TC,dice_WT,dice_ET\n"));
    }
}
