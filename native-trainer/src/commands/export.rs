//! `brainmvp export`: a fine-tuned model as one `.bmvp` file (the browser's format).

use std::path::PathBuf;
use std::process::ExitCode;

use brainmvp_core::model::Architecture;

use crate::bmvp::{export_model, ExportOptions, PrecisionChoice};

/// Arguments of `brainmvp export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Model folder (`brainmvp finetune`'s `<out>/model`) or a `.bmvp` file.
    #[arg(long, required_unless_present = "untrained")]
    pub model: Option<PathBuf>,
    /// The `.bmvp` file to write (a `<out>.json` report is written beside it), or with
    /// `--torch` the `.safetensors` file.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the official `UniUnet`'s state dict (official names and axis order, f32
    /// safetensors) for PyTorch/MONAI instead of a `.bmvp`.
    #[arg(long)]
    pub torch: bool,
    /// With `--torch` instead of `--model`: an untrained UniUnet (`uniformer-s`, the official
    /// size, or `uniformer-tiny`), initialised as the official code, for trying `brainmvp import` and
    /// the page's memory limits without official weights or PyTorch.
    #[arg(long, requires = "torch", conflicts_with = "model")]
    pub untrained: Option<Architecture>,
    /// The seed of `--untrained`'s weights.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// `auto`: f16 when it keeps the Dice on the --check cases within 0.5 points of f32.
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: PrecisionChoice,
    /// A labelled cohort folder to compare f16 with f32 on.
    #[arg(long)]
    pub check: Option<PathBuf>,
    /// How many labelled subjects of --check to use.
    #[arg(long, default_value_t = 3)]
    pub check_cases: usize,
}

/// Runs `brainmvp export`.
pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if let Some(encoder) = args.untrained {
        let parameters =
            crate::torch::convert::write_untrained_torch(encoder, args.seed, &args.out)?;
        println!(
            "wrote {} (untrained UniUnet, {encoder:?} encoder, {parameters} parameters, official names)",
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let model = args.model.unwrap_or_default();
    if args.torch {
        let tensors = crate::torch::convert::export_torch(&model, &args.out)?;
        println!(
            "wrote {} ({tensors} tensors, official UniUnet names)",
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let options = ExportOptions {
        model,
        out: args.out,
        precision: args.precision,
        check: args.check,
        check_cases: args.check_cases,
    };
    let report = export_model(&options)?;
    println!("{}", report.table());
    Ok(ExitCode::SUCCESS)
}
