//! `brainmvp finetune --config FILE.toml [--init EXPORT] [--label-fraction F] [--mix-template]`:
//! fine-tune a segmentation model on the labelled subjects of a cache.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::backend::DeviceSpec;
use crate::finetune::{run_finetune, FinetuneConfig, Task};
use crate::job::JobFile;

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// Job file (TOML); every key has a default, see docs/finetuning.md.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `cpu`, `cuda[:i]`, `wgpu[:i|integrated|cpu]` (one device).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Pre-trained export folder (`<pretrain out>/export`): loads its encoder.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Train on this seeded fraction of the training subjects.
    #[arg(long)]
    pub label_fraction: Option<f64>,
    /// Template channel cut-mix (templates of `--init`).
    #[arg(long)]
    pub mix_template: bool,
    /// What is learnt (overrides the job's `task`).
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Overrides of the config.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub steps: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue from the newest checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
}

/// The job file with the command-line overrides applied.
pub fn resolve(args: &FinetuneArgs) -> anyhow::Result<FinetuneConfig> {
    let mut config = match &args.config {
        Some(path) => FinetuneConfig::load(path)?,
        None => FinetuneConfig::default(),
    };
    if let Some(init) = &args.init {
        config.init = Some(init.clone());
    }
    if let Some(fraction) = args.label_fraction {
        config.label_fraction = fraction;
    }
    if args.mix_template {
        config.mix_template.enabled = true;
    }
    if let Some(task) = args.task {
        config.task = task;
    }
    config.cache = args.cache.clone().unwrap_or(config.cache);
    config.out = args.out.clone().unwrap_or(config.out);
    config.steps = args.steps.unwrap_or(config.steps);
    config.seed = args.seed.unwrap_or(config.seed);
    config.validate()?;
    Ok(config)
}

pub fn run(args: FinetuneArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(&args)?;
    let spec = DeviceSpec::parse(&args.device)?;
    crate::job::start_run(
        &config,
        &config.out,
        args.resume,
        "resolved finetune config",
    )?;
    if config.task == Task::Classify {
        let summary = crate::with_autodiff_backend!(spec, |B, devices| {
            crate::finetune::classify::run_classify::<B>(&config, first(devices), args.resume)?
        });
        println!("{}", summary.to_markdown());
        println!("outputs: {}", config.out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let summary = crate::with_autodiff_backend!(spec, |B, devices| {
        run_finetune::<B>(&config, first(devices), args.resume)?
    });
    if let Some(report) = &summary.init_report {
        println!("init: {report}");
    }
    println!(
        "best validation mean Dice {:.4} at step {}; test set ({} subjects):\n{}",
        summary.best_dice,
        summary.best_step,
        summary.test.cases.len(),
        summary.test.to_markdown()
    );
    println!(
        "model: {} (brainmvp segment --model {} ...); outputs: {}",
        summary.model_dir.display(),
        summary.model_dir.display(),
        config.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn first<D: Default>(devices: Vec<D>) -> D {
    devices.into_iter().next().unwrap_or_default()
}
