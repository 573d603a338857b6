//! `brainmvp prepare` (being written).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PrepareArgs {}

pub fn run(_args: PrepareArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`brainmvp prepare` is being written")
}
