//! The label-efficiency experiment's job file ([`LabelEfficiencyConfig`]), its pre-training
//! variants (the ablations) and the result of one fine-tuning run.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::finetune::FinetuneConfig;
use crate::pretrain::PretrainConfig;

brainmvp_core::config! {
    /// The experiment's job file.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct LabelEfficiencyConfig {
        /// Output folder (pre-training runs, fine-tuning runs, results).
        pub out: PathBuf = PathBuf::from("runs/label-efficiency"),
        /// Fractions of the training subjects.
        pub fractions: Vec<f64> = vec![0.1, 0.2, 0.4, 1.0],
        /// Fine-tuning seeds (weights, subset, crops); the test set is fixed by `finetune.split`.
        pub seeds: Vec<u64> = vec![0, 1],
        /// Whether to run the pre-training ablations.
        pub ablation: bool = true,
        /// The label fractions of the ablation rows (each must also be in `fractions`, whose
        /// pre-trained and scratch runs the ablation rows are compared with).
        pub ablation_fractions: Vec<f64> = vec![0.1, 0.2],
        /// The pre-training job (its `out` is replaced by `<out>/pretrain-<variant>`).
        pub pretrain: PretrainConfig,
        /// The fine-tuning job (its `out`, `init`, `seed`, `label_fraction` are set per run).
        pub finetune: FinetuneConfig,
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

impl crate::job::JobFile for LabelEfficiencyConfig {
    /// Checks fractions, seeds and both jobs.
    fn validate(&self) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobFile;

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
