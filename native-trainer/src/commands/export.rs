//! `brainmvp export`: a fine-tuned model as one `.bmvp` file (the browser's format).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::export::{export_model, ExportOptions, PrecisionChoice};

/// Arguments of `brainmvp export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Model folder (`brainmvp finetune`'s `<out>/model`) or a `.bmvp` file.
    #[arg(long)]
    pub model: PathBuf,
    /// The `.bmvp` file to write (a `<out>.json` report is written beside it), or with
    /// `--torch` the `.safetensors` file.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the official `UniUnet`'s state dict (official names and axis order, f32
    /// safetensors) for PyTorch/MONAI instead of a `.bmvp`.
    #[arg(long)]
    pub torch: bool,
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
    if args.torch {
        let tensors = crate::torch::convert::export_torch(&args.model, &args.out)?;
        println!(
            "wrote {} ({tensors} tensors, official UniUnet names)",
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let options = ExportOptions {
        model: args.model,
        out: args.out,
        precision: args.precision,
        check: args.check,
        check_cases: args.check_cases,
    };
    let report = export_model(&options)?;
    println!("{}", report.table());
    Ok(ExitCode::SUCCESS)
}
