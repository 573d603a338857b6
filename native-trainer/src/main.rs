//! `brainmvp`: thin command-line verbs over `brainmvp-core`. Parsing only; the library does the work.

use brainmvp_trainer::commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: brainmvp_trainer::allocator::Allocator = brainmvp_trainer::allocator::Allocator;

/// jemalloc's `malloc_conf` (see `brainmvp_trainer::allocator`).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[export_name = "_rjem_malloc_conf"]
pub static JEMALLOC_CONF: &u8 = &brainmvp_trainer::allocator::JEMALLOC_CONF[0];

#[derive(Parser)]
#[command(
    name = "brainmvp",
    version,
    about = "BrainMVP multi-modal MRI pre-training toolkit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print dims, voxel size, datatype, orientation and intensity statistics of NIfTI files.
    Info(commands::info::InfoArgs),
    /// Write a synthetic multi-modal tumour cohort (BraTS 2021 names) made from ICBM152.
    Synth(commands::synth::SynthArgs),
    /// Preprocess a cohort folder into a memory-mapped training cache.
    Prepare(commands::prepare::PrepareArgs),
    /// Benchmarks (`bench data CACHE`: crops per second from the cache).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// BrainMVP pre-training from a TOML job file (`--resume` continues it).
    Pretrain(commands::pretrain::PretrainArgs),
    /// The main job on embedded data: synthesise, prepare, pre-train, fine-tune (pre-trained and
    /// scratch), evaluate, export and segment; prints the final table.
    Demo(commands::demo::DemoArgs),
    /// Learnable parameters per stage of a backbone (and its pre-training decoder).
    Summary(commands::summary::SummaryArgs),
    /// Dice and HD95 per case and region of predicted label maps against the ground truth, or of a
    /// model on real cases with reference maps (`--model M --cases DIR`).
    Evaluate(commands::evaluate::EvaluateArgs),
    /// Fine-tune a segmentation (or classification) model, optionally from a pre-trained encoder.
    Finetune(commands::finetune::FinetuneArgs),
    /// Segment one case from raw NIfTI files; the label map is written on the input's grid.
    Segment(commands::segment::SegmentArgs),
    /// Write a fine-tuned model as one `.bmvp` file (f16 when it keeps Dice within 0.5 points).
    Export(commands::export::ExportArgs),
    /// An official BrainMVP PyTorch checkpoint as a brainmvp model (UniUnet, RecModel, UniFormer).
    Import(commands::import::ImportArgs),
    /// Serve the built web page (www/dist) on localhost with the headers wasm threads need.
    Serve(commands::serve::ServeArgs),
    /// Experiments (`experiment label-efficiency --config FILE.toml`).
    #[command(subcommand)]
    Experiment(commands::experiment::ExperimentCommand),
}

fn main() -> ExitCode {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger.format_target(false);
    // A launched job (mpirun, srun, torchrun) interleaves every rank's lines: name the rank.
    if let Ok(launch) = brainmvp_trainer::distributed::Launch::from_env() {
        if launch.world_size > 1 {
            let rank = launch.rank;
            logger.format(move |buf, record| {
                use std::io::Write;
                let time = buf.timestamp();
                writeln!(
                    buf,
                    "[{time} {:5} rank {rank}] {}",
                    record.level(),
                    record.args()
                )
            });
        }
    }
    logger.init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => commands::info::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Synth(args) => commands::synth::run(args),
        Command::Prepare(args) => commands::prepare::run(args),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Demo(args) => commands::demo::run(args),
        Command::Pretrain(args) => commands::pretrain::run(args),
        Command::Summary(args) => commands::summary::run(args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Finetune(args) => commands::finetune::run(args),
        Command::Segment(args) => commands::segment::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Experiment(cmd) => commands::experiment::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
