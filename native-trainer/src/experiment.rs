//! `brainmvp experiment label-efficiency`: the paper's central claim on the synthetic cohort.
//! Pre-train once, then fine-tune from the pre-trained encoder and from scratch at several label
//! fractions with the same seeds, steps and test set; plus the pre-training ablations
//! (reconstruction only, + learnt templates, + contrastive = the full method) at one fraction.
//!
//! Every run writes `summary.json` when it finishes and is skipped when it exists, so a killed
//! experiment continues where it stopped. Results: `results.md`, `runs.csv`, `label-efficiency.png`.

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::finetune::{run_finetune, FinetuneConfig};
use crate::pretrain::{run_pretrain, PretrainConfig};
use brainmvp_core::fs::write_atomic;

/// The experiment's job file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelEfficiencyConfig {
    /// Output folder (pre-training runs, fine-tuning runs, results).
    pub out: PathBuf,
    /// Fractions of the training subjects.
    pub fractions: Vec<f64>,
    /// Fine-tuning seeds (weights, subset, crops); the test set is fixed by `finetune.split`.
    pub seeds: Vec<u64>,
    /// Whether to run the pre-training ablations.
    pub ablation: bool,
    /// The label fractions of the ablation rows (each must also be in `fractions`, whose
    /// pre-trained and scratch runs the ablation rows are compared with).
    pub ablation_fractions: Vec<f64>,
    /// The pre-training job (its `out` is replaced by `<out>/pretrain-<variant>`).
    pub pretrain: PretrainConfig,
    /// The fine-tuning job (its `out`, `init`, `seed`, `label_fraction` are set per run).
    pub finetune: FinetuneConfig,
}

impl Default for LabelEfficiencyConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/label-efficiency"),
            fractions: vec![0.1, 0.2, 0.4, 1.0],
            seeds: vec![0, 1],
            ablation: true,
            ablation_fractions: vec![0.1, 0.2],
            pretrain: PretrainConfig::default(),
            finetune: FinetuneConfig::default(),
        }
    }
}

impl LabelEfficiencyConfig {
    /// Reads a TOML job file; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let config: Self = toml::from_str(&text).map_err(|err| {
            let line = err
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            anyhow::anyhow!("{}: {line}", path.display())
        })?;
        config
            .validate()
            .with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(config)
    }

    /// Checks fractions, seeds and both jobs.
    pub fn validate(&self) -> Result<()> {
        if self.fractions.is_empty() || self.seeds.is_empty() {
            bail!("fractions and seeds must not be empty");
        }
        for &fraction in self.fractions.iter().chain(&self.ablation_fractions) {
            if !(fraction > 0.0 && fraction <= 1.0) {
                bail!("label fraction {fraction} is outside (0, 1]");
            }
        }
        for &fraction in &self.ablation_fractions {
            if !self.fractions.iter().any(|f| (f - fraction).abs() < 1e-9) {
                bail!(
                    "ablation fraction {fraction} is not one of fractions {:?}",
                    self.fractions
                );
            }
        }
        self.pretrain.validate()?;
        self.finetune.validate()
    }
}

/// A pre-training variant of the ablation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Masked reconstruction only: templates frozen at zero, no contrastive term.
    Reconstruction,
    /// + learnt modality templates (no contrastive term).
    Templates,
    /// + modality-aware contrastive learning: the full BrainMVP.
    Full,
}

impl Variant {
    /// Folder-friendly name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reconstruction => "reconstruction",
            Self::Templates => "templates",
            Self::Full => "full",
        }
    }

    /// Row label in the results.
    pub fn label(self) -> &'static str {
        match self {
            Self::Reconstruction => "reconstruction only",
            Self::Templates => "+ templates",
            Self::Full => "+ contrastive (full BrainMVP)",
        }
    }

    /// The pre-training job of this variant.
    pub fn pretrain_config(self, base: &PretrainConfig, out: &Path) -> PretrainConfig {
        let mut config = base.clone();
        config.out = out.join(format!("pretrain-{}", self.name()));
        if self != Self::Full {
            config.loss.contrastive = 0.0;
        }
        if self == Self::Reconstruction {
            config.model.templates.learn = false;
            config.model.templates.init = brainmvp_core::pretext::templates::TemplateInit::Zero;
        }
        config
    }
}

/// One fine-tuning run's result (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// `pretrained` (full), `scratch`, or `ablation-<variant>`.
    pub init: String,
    pub fraction: f64,
    pub seed: u64,
    pub train_subjects: usize,
    /// Test mean Dice over regions and cases, and per region.
    pub test_dice: f64,
    pub region_dice: Vec<(String, f64)>,
    pub best_step: u64,
    /// Per test subject: its id and Dice per region (region order of `region_dice`), so that
    /// runs can be compared pairwise on the same subjects.
    #[serde(default)]
    pub case_dice: Vec<(String, Vec<f64>)>,
}

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
    crate::experiment_report::write_results(config, &results)?;
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
        test_dice: crate::finetune::run::mean_over_regions(&summary.test),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every label-efficiency job shipped in `configs/` loads and validates (their headers are
    /// the documented re-run commands of docs/results.md).
    #[test]
    fn shipped_study_configs_load() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut loaded = Vec::new();
        for entry in std::fs::read_dir(&configs).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("label-efficiency") && name.ends_with(".toml") {
                let config = LabelEfficiencyConfig::load(&path).unwrap();
                loaded.push((name, config));
            }
        }
        assert!(loaded.len() >= 4, "{loaded:?}");
        let (_, cross_modal) = loaded
            .iter()
            .find(|(name, _)| name.contains("cross-modal"))
            .unwrap();
        assert_eq!(cross_modal.finetune.optim.encoder_lr_scale, 0.1);
        assert_eq!(
            cross_modal.pretrain.model.templates.init,
            brainmvp_core::pretext::templates::TemplateInit::CohortMean
        );
    }
}
