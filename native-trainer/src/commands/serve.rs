//! `brainmvp serve` (being written in this session).

use std::process::ExitCode;

/// Arguments of `brainmvp serve`.
#[derive(clap::Args)]
pub struct ServeArgs {}

/// Runs `brainmvp serve`.
pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("brainmvp serve: not built yet")
}
