//! Running the label-efficiency experiment: pre-train each variant once, then fine-tune from
//! each (and from scratch) at every label fraction and seed; every run writes `summary.json`
//! when it finishes and is skipped when it exists, so a killed experiment continues where it
//! stopped.

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use std::path::PathBuf;

use super::config::{LabelEfficiencyConfig, RunResult, Variant};
use crate::finetune::run_finetune;
use crate::job::JobFile;
use crate::pretrain::run_pretrain;
use brainmvp_core::fs::write_atomic;

/// Runs everything not yet done and writes the results; returns every run's result.
pub fn run_label_efficiency<B: AutodiffBackend>(
    config: &LabelEfficiencyConfig,
    device: B::Device,
) -> Result<Vec<RunResult>> {
    config.validate()?;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("{}: cannot create", config.out.display()))?;
    let variants = match config.ablation {
        true => vec![Variant::Full, Variant::Reconstruction, Variant::Templates],
        false => vec![Variant::Full],
    };
    for &variant in &variants {
        pretrain_variant::<B>(config, variant, device.clone())?;
    }
    let mut results = Vec::new();
    for &fraction in &config.fractions {
        for &seed in &config.seeds {
            for init in ["pretrained", "scratch"] {
                let export = (init == "pretrained").then(|| export_of(config, Variant::Full));
                results.push(finetune_run::<B>(
                    config, init, export, fraction, seed, &device,
                )?);
            }
        }
    }
    let ablation_fractions = config.ablation_fractions.iter().filter(|_| config.ablation);
    for &fraction in ablation_fractions {
        for &variant in variants.iter().filter(|&&v| v != Variant::Full) {
            for &seed in &config.seeds {
                let init = format!("ablation-{}", variant.name());
                let export = Some(export_of(config, variant));
                results.push(finetune_run::<B>(
                    config, &init, export, fraction, seed, &device,
                )?);
            }
        }
    }
    super::report::write_results(config, &results)?;
    Ok(results)
}

fn export_of(config: &LabelEfficiencyConfig, variant: Variant) -> PathBuf {
    variant
        .pretrain_config(&config.pretrain, &config.out)
        .out
        .join("export")
}

/// Pre-trains one variant unless its export exists (a killed run resumes from its checkpoint).
fn pretrain_variant<B: AutodiffBackend>(
    config: &LabelEfficiencyConfig,
    variant: Variant,
    device: B::Device,
) -> Result<()> {
    let job = variant.pretrain_config(&config.pretrain, &config.out);
    if job.out.join("export").join("encoder.json").is_file() {
        log::info!(
            "pre-training {}: done already ({})",
            variant.name(),
            job.out.display()
        );
        return Ok(());
    }
    println!(
        "== pre-training ({}) → {}",
        variant.label(),
        job.out.display()
    );
    std::fs::create_dir_all(&job.out)?;
    write_atomic(&job.out.join("config.toml"), |file| {
        file.write_all(job.to_toml().unwrap_or_default().as_bytes())
    })?;
    let resume = job.out.join("checkpoints").exists();
    run_pretrain::<B>(&job, vec![device], resume)?;
    Ok(())
}

/// Fine-tunes one (init, fraction, seed) unless its `summary.json` exists.
fn finetune_run<B: AutodiffBackend>(
    config: &LabelEfficiencyConfig,
    init: &str,
    export: Option<PathBuf>,
    fraction: f64,
    seed: u64,
    device: &B::Device,
) -> Result<RunResult> {
    let out = config.out.join("finetune").join(format!(
        "{init}-f{:03}-s{seed}",
        (fraction * 100.0).round() as u32
    ));
    let summary_path = out.join("summary.json");
    if let Ok(text) = std::fs::read_to_string(&summary_path) {
        if let Ok(result) = serde_json::from_str::<RunResult>(&text) {
            return Ok(result);
        }
    }
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("{}: cannot remove", out.display()))?;
    }
    println!(
        "== fine-tuning {init}, {:.0} % of the labels, seed {seed} → {}",
        fraction * 100.0,
        out.display()
    );
    let mut job = config.finetune.clone();
    job.out = out;
    job.init = export;
    job.seed = seed;
    job.label_fraction = fraction;
    std::fs::create_dir_all(&job.out)?;
    write_atomic(&job.out.join("config.toml"), |file| {
        file.write_all(job.to_toml().unwrap_or_default().as_bytes())
    })?;
    let summary = run_finetune::<B>(&job, device.clone(), false)?;
    let result = RunResult {
        init: init.to_string(),
        fraction,
        seed,
        train_subjects: summary.train_subjects,
        test_dice: summary.test.mean_over_regions(),
        region_dice: summary
            .test
            .regions
            .iter()
            .enumerate()
            .map(|(index, region)| (region.clone(), summary.test.mean_dice(index)))
            .collect(),
        best_step: summary.best_step,
        case_dice: summary
            .test
            .cases
            .iter()
            .map(|case| {
                let dice = case.scores.iter().map(|score| score.dice).collect();
                (case.id.clone(), dice)
            })
            .collect(),
    };
    let json = serde_json::to_string_pretty(&result)?;
    write_atomic(&summary_path, |file| file.write_all(json.as_bytes()))?;
    Ok(result)
}
