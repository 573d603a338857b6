//! `brainmvp pretrain --config FILE.toml [--device cuda:0,1] [--resume]`: BrainMVP pre-training.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::backend::DeviceSpec;
use crate::distributed::Launch;
use crate::job::JobFile;
use crate::pretrain::{run_pretrain_launched, PretrainConfig};

#[derive(clap::Args)]
pub struct PretrainArgs {
    /// Job file (TOML); every key has a default, see docs/pretraining.md.
    #[arg(long)]
    pub config: PathBuf,
    /// `cpu`, `cpu:N` (N CPU ranks), `cuda[:0,1,..]`, `wgpu[:i,..|integrated|cpu]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Continue from the newest checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Override `out` of the config.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override `steps` of the config.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override `cache` of the config.
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

pub fn run(args: PretrainArgs) -> anyhow::Result<ExitCode> {
    let mut config = PretrainConfig::load(&args.config)?;
    if let Some(out) = args.out {
        config.out = out;
    }
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    if let Some(cache) = args.cache {
        config.cache = cache;
    }
    let launch = Launch::from_env()?;
    let mut spec = DeviceSpec::parse(&args.device)?;
    if launch.world_size > 1 {
        spec = spec.for_local_rank(&args.device, launch.local_rank)?;
    }
    let rank = launch.rank;
    match rank {
        0 => crate::job::start_run(
            &config,
            &config.out,
            args.resume,
            "resolved pretrain config",
        )?,
        _ => crate::job::check_fresh_out(&config.out, args.resume)?,
    }
    let summary = crate::with_autodiff_backend!(spec, |B, devices| {
        run_pretrain_launched::<B>(&config, devices, args.resume, launch)?
    });
    if rank != 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(losses) = summary.last_losses {
        println!(
            "done: {} steps, last loss {:.5} (template {:.5}, cross-modal {:.5}, contrastive {:.5})",
            config.steps, losses[0], losses[1], losses[2], losses[3]
        );
    }
    println!("outputs: {}", config.out.display());
    Ok(ExitCode::SUCCESS)
}
