//! `brainmvp prepare DATA_DIR --out CACHE`: preprocess a cohort folder into the training cache.

use crate::job::JobFile;
use brainmvp_core::cache::{CacheDtype, PrepareConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PrepareArgs {
    /// Cohort folder (BraTS 2021/2023 or IXI-style subject files).
    pub data_dir: PathBuf,
    /// Cache folder to write (created if needed; a re-run resumes).
    #[arg(long)]
    pub out: PathBuf,
    /// Store images as f32 instead of f16 (twice the size).
    #[arg(long)]
    pub f32: bool,
    /// Subjects preprocessed in parallel (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// TOML file with a `PrepareConfig` (`dtype`, `[preprocess]`); missing keys take defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: PrepareArgs) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args)?;
    crate::cohort::prepare(&args.data_dir, &args.out, &config, args.threads)?;
    Ok(ExitCode::SUCCESS)
}

/// Defaults, then `--config`, then the flags.
fn resolve_config(args: &PrepareArgs) -> anyhow::Result<PrepareConfig> {
    let mut config = match &args.config {
        Some(path) => PrepareConfig::load(path)?,
        None => PrepareConfig::default(),
    };
    if args.f32 {
        config.dtype = CacheDtype::F32;
    }
    Ok(config)
}
