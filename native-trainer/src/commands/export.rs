//! `brainmvp export` (being written in this session).

use std::process::ExitCode;

/// Arguments of `brainmvp export`.
#[derive(clap::Args)]
pub struct ExportArgs {}

/// Runs `brainmvp export`.
pub fn run(_args: ExportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("brainmvp export: not built yet")
}
