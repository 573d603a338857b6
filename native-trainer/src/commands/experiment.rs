//! `brainmvp experiment label-efficiency --config FILE.toml`: pre-train once, fine-tune from the
//! pre-trained encoder and from scratch at several label fractions and seeds, plus the
//! pre-training ablations; writes `results.md`, `runs.csv` and `label-efficiency.png`.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::backend::DeviceSpec;
use crate::experiment::{run_label_efficiency, LabelEfficiencyConfig};
use crate::job::JobFile;
use brainmvp_core::fs::write_atomic;

/// The experiments.
#[derive(clap::Subcommand)]
pub enum ExperimentCommand {
    /// Pre-trained vs scratch Dice at 10/20/40/100 % of the labels, with ablations.
    LabelEfficiency(LabelEfficiencyArgs),
}

#[derive(clap::Args)]
pub struct LabelEfficiencyArgs {
    /// Job file (TOML): `out`, `fractions`, `seeds`, `ablation`, `[pretrain]`, `[finetune]`.
    #[arg(long)]
    pub config: PathBuf,
    /// `cpu`, `cuda[:i]`, `wgpu[:i|integrated|cpu]` (one device).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Override `out` of the config.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(command: ExperimentCommand) -> anyhow::Result<ExitCode> {
    let ExperimentCommand::LabelEfficiency(args) = command;
    let mut config = LabelEfficiencyConfig::load(&args.config)?;
    if let Some(out) = args.out {
        config.out = out;
    }
    let spec = DeviceSpec::parse(&args.device)?;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("{}: cannot create", config.out.display()))?;
    let text = toml::to_string_pretty(&config)?;
    println!("# resolved experiment config\n{text}");
    write_atomic(&config.out.join("config.toml"), |file| {
        file.write_all(text.as_bytes())
    })?;
    let results = crate::with_autodiff_backend!(spec, |B, devices| {
        run_label_efficiency::<B>(&config, devices.into_iter().next().unwrap_or_default())?
    });
    println!(
        "{} fine-tuning runs; results: {}",
        results.len(),
        config.out.join("results.md").display()
    );
    Ok(ExitCode::SUCCESS)
}
