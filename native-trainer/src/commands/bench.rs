//! `brainmvp bench ...`: throughput measurements; the benchmarks themselves are
//! [`crate::bench`], one file each.

use std::process::ExitCode;

use crate::bench::{brats, data, kernels, pretrain, segment};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Crops per second from a cache made by `brainmvp prepare`.
    Data(data::DataArgs),
    /// Seconds per BrainMVP pre-training step (official sizes: 3 subjects, 96³, both views).
    Pretrain(pretrain::PretrainBenchArgs),
    /// Seconds per case of UniUnet sliding-window inference (official: 240×240×155, 4 modalities).
    Segment(segment::SegmentBenchArgs),
    /// Milliseconds and GFLOP/s of each UniFormer-S UniUnet convolution on the CPU backend.
    Kernels(kernels::KernelBenchArgs),
    /// Seconds per case of the BraTS challenge metrics (`evaluate --metrics brats`) on one core.
    BratsMetrics(brats::BratsMetricsBenchArgs),
}

/// Runs the benchmark `command` names.
pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Data(args) => data::bench_data(args),
        BenchCommand::Pretrain(args) => {
            brainmvp_core::kernels::set_enabled(!args.burn_ops);
            pretrain::run_pretrain_bench(args)
        }
        BenchCommand::Segment(args) => {
            brainmvp_core::kernels::set_enabled(!args.burn_ops);
            segment::bench_segment(args)
        }
        BenchCommand::Kernels(args) => kernels::bench_kernels(args),
        BenchCommand::BratsMetrics(args) => brats::bench_brats_metrics(args),
    }
}
