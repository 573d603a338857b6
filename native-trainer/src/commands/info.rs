//! `brainmvp info` (being written).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct InfoArgs {}

pub fn run(_args: InfoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`brainmvp info` is being written")
}
