//! `brainmvp synth` (being written).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SynthArgs {}

pub fn run(_args: SynthArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`brainmvp synth` is being written")
}
