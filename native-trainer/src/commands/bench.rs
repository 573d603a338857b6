//! `brainmvp bench ...`: throughput measurements.
//!
//! `bench data CACHE`: crops per second (and MB/s of crop data handed to training) from a prepared
//! cache through the prefetching loader, plus the time to the first batch.
//!
//! `bench segment`: seconds per case of UniUnet sliding-window inference (random weights, random
//! input of one case), inference only, on any backend.
//!
//! `bench brats-metrics`: seconds per case of the BraTS challenge metrics on one core (see
//! `brats_bench`).

use anyhow::Context;
use brainmvp_core::cache::CacheReader;
use brainmvp_core::loader::{Batch, Loader, LoaderConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Crops per second from a cache made by `brainmvp prepare`.
    Data(DataArgs),
    /// Seconds per BrainMVP pre-training step (official sizes: 3 subjects, 96³, both views).
    Pretrain(PretrainBenchArgs),
    /// Seconds per case of UniUnet sliding-window inference (official: 240×240×155, 4 modalities).
    Segment(SegmentBenchArgs),
    /// Milliseconds and GFLOP/s of each UniFormer-S UniUnet convolution on the CPU backend.
    Kernels(super::bench_kernels::KernelBenchArgs),
    /// Seconds per case of the BraTS challenge metrics (`evaluate --metrics brats`) on one core.
    BratsMetrics(brats_bench::BratsMetricsBenchArgs),
}

mod brats_bench;

#[derive(clap::Args)]
pub struct PretrainBenchArgs {
    /// `uniformer-s`, `uniformer-tiny` or `unet3d`.
    #[arg(long, default_value = "uniformer-s")]
    pub arch: String,
    /// Cubic crop edge in voxels.
    #[arg(long, default_value_t = 96)]
    pub crop: usize,
    /// Subjects per step (each gives one crop per view: 3 → 6 crops through the encoder).
    #[arg(long, default_value_t = 3)]
    pub subjects: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// `cpu`, `cuda[:i]`, `wgpu[:i|integrated|cpu]` (one device).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Template canvas `x,y,z` (the official four templates flair, t1, t1c, t2 are used).
    #[arg(long, default_value = "240,240,155")]
    pub canvas: String,
    /// Run burn's own operations instead of brainmvp's kernels (CPU and GPU), for before/after
    /// figures.
    #[arg(long)]
    pub burn_ops: bool,
    /// Also write the timings, threads and peak resident memory as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub use segment_bench::SegmentBenchArgs;

#[derive(clap::Args)]
pub struct DataArgs {
    /// Cache folder (with manifest.json).
    pub cache: PathBuf,
    /// Cubic crop edge in voxels.
    #[arg(long, default_value_t = 96)]
    pub crop: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Loader worker threads (default: the number of CPUs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Batches to time (after the first one).
    #[arg(long, default_value_t = 50)]
    pub batches: usize,
    /// Also apply random flips and intensity shift/scale (0.1).
    #[arg(long)]
    pub augment: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Data(args) => bench_data(args),
        BenchCommand::Pretrain(args) => {
            brainmvp_core::kernels::set_enabled(!args.burn_ops);
            bench_pretrain(args)
        }
        BenchCommand::Segment(args) => {
            brainmvp_core::kernels::set_enabled(!args.burn_ops);
            segment_bench::bench_segment(args)
        }
        BenchCommand::Kernels(args) => super::bench_kernels::bench_kernels(args),
        BenchCommand::BratsMetrics(args) => brats_bench::bench_brats_metrics(args),
    }
}

fn bench_data(args: DataArgs) -> anyhow::Result<ExitCode> {
    let reader = Arc::new(CacheReader::open(&args.cache)?);
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let shift_scale = if args.augment { 0.1 } else { 0.0 };
    let config = LoaderConfig {
        crop_size: [args.crop; 3],
        batch_size: args.batch,
        flips: args.augment,
        intensity_shift: shift_scale,
        intensity_scale: shift_scale,
        workers,
        queue_depth: 2 * workers.max(1),
        seed: args.seed,
        foreground_fraction: 0.0,
    };
    println!(
        "cache {}: {} subjects; crop {}³, batch {}, {} workers, augment {}",
        args.cache.display(),
        reader.len(),
        args.crop,
        args.batch,
        workers,
        args.augment
    );
    let started = Instant::now();
    let mut loader = Loader::new(reader, config, 0)?;
    let first = loader.next().context("loader ended")??;
    let first_latency = started.elapsed().as_secs_f64();

    let timed = Instant::now();
    let (mut crops, mut bytes) = (0usize, 0usize);
    for batch in loader.by_ref().take(args.batches) {
        let (batch_crops, batch_bytes) = batch_size_of(&batch?);
        crops += batch_crops;
        bytes += batch_bytes;
    }
    let seconds = timed.elapsed().as_secs_f64().max(1e-9);
    drop(loader);
    let (first_crops, _) = batch_size_of(&first);
    println!(
        "first batch after {:.3} s ({first_crops} crops)",
        first_latency
    );
    println!(
        "{} batches in {:.3} s: {:.1} crops/s (one crop = one subject, all its modalities), {:.1} image crops/s, {:.1} MB/s",
        args.batches,
        seconds,
        crops as f64 / seconds,
        image_crops(crops, &first) / seconds,
        bytes as f64 / seconds / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

/// Samples in the batch and bytes of crop data (f32 images + u8 labels).
fn batch_size_of(batch: &Batch) -> (usize, usize) {
    let bytes = batch
        .samples
        .iter()
        .map(|s| {
            let images: usize = s.images.iter().map(|(_, v)| v.len() * 4).sum();
            images + s.label.as_ref().map_or(0, |l| l.len())
        })
        .sum();
    (batch.samples.len(), bytes)
}

/// Single-modality crops, estimated from the modalities per sample of the first batch.
fn image_crops(samples: usize, first: &Batch) -> f64 {
    let per_sample = first.samples.iter().map(|s| s.images.len()).sum::<usize>() as f64
        / first.samples.len().max(1) as f64;
    samples as f64 * per_sample
}

fn bench_pretrain(args: PretrainBenchArgs) -> anyhow::Result<ExitCode> {
    use crate::pretrain::bench::{bench_pretrain, BenchSettings};
    use brainmvp_core::modality::Modality;
    use brainmvp_core::pretrain::{Architecture, BrainMvpConfig};
    let arch: Architecture = serde_json::from_value(serde_json::Value::String(args.arch.clone()))
        .map_err(|_| {
        anyhow::anyhow!(
            "--arch {:?}: expected uniformer-s, uniformer-tiny or unet3d",
            args.arch
        )
    })?;
    let canvas: Vec<usize> = args
        .canvas
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let [x, y, z] = canvas[..] else {
        anyhow::bail!("--canvas {:?}: expected x,y,z", args.canvas);
    };
    let mut model = BrainMvpConfig {
        arch,
        ..BrainMvpConfig::default()
    };
    model.templates.canvas = [x, y, z];
    model.templates.modalities = vec![Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];
    let settings = BenchSettings {
        model,
        crop: args.crop,
        subjects: args.subjects,
        steps: args.steps,
        warmup: args.warmup,
    };
    let spec = crate::backend::DeviceSpec::parse(&args.device)?;
    let times = crate::with_autodiff_backend!(spec, |B, devices| {
        let device = devices.into_iter().next().unwrap_or_default();
        bench_pretrain::<B>(&settings, &device)?
    });
    println!(
        "bench pretrain: {} on {}, {} subjects x {}^3 ({} crops through the encoder), canvas {x}x{y}x{z}",
        arch.name(), args.device, args.subjects, args.crop, 2 * args.subjects
    );
    println!(
        "step (views + forward + 3 losses + backward + AdamW): mean {:.4} s, best {:.4} s over {} steps",
        times.step_mean, times.step_best, args.steps
    );
    println!(
        "encoder + decoder forward + backward: mean {:.4} s, best {:.4} s",
        times.network_mean, times.network_best
    );
    let peak = print_peak_memory();
    if let Some(path) = &args.json {
        let record = serde_json::json!({
            "bench": "pretrain",
            "arch": arch.name(),
            "device": args.device,
            "crop": args.crop,
            "subjects": args.subjects,
            "canvas": [x, y, z],
            "threads": rayon::current_num_threads(),
            "step_seconds": times.step_seconds,
            "network_seconds": times.network_seconds,
            "peak_rss_bytes": peak,
        });
        write_json(path, &record)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Peak resident memory of this process in bytes (`VmHWM` of `/proc/self/status`; `None` where
/// the system has no such file).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Prints the peak resident memory (when known) and returns it.
fn print_peak_memory() -> Option<u64> {
    let peak = peak_rss_bytes();
    if let Some(bytes) = peak {
        println!(
            "peak resident memory: {:.2} GiB",
            bytes as f64 / (1u64 << 30) as f64
        );
    }
    peak
}

/// Writes a benchmark record (one JSON object) atomically to `path`.
fn write_json(path: &std::path::Path, record: &serde_json::Value) -> anyhow::Result<()> {
    brainmvp_core::fs::write_atomic(path, |out| {
        serde_json::to_writer_pretty(&mut *out, record)?;
        writeln!(out)
    })?;
    println!("timings written to {}", path.display());
    Ok(())
}

/// `bench segment`: UniUnet sliding-window inference of one case, inference only.
mod segment_bench {
    use super::super::parse_encoder;
    use anyhow::{bail, ensure};
    use brainmvp_core::inference::{sliding_window, window_starts, Blend, SlidingWindowConfig};
    use brainmvp_core::model::uniunet::{EncoderPreset, UniUnet, UniUnetConfig};
    use burn::tensor::backend::{AutodiffBackend, Backend};
    use burn::tensor::{Distribution, Tensor};
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Instant;

    /// Output channels of the benchmarked model (the BraTS regions TC, WT, ET).
    const OUT_CHANNELS: usize = 3;
    /// Most modalities accepted.
    const MAX_MODALITIES: usize = 64;
    /// Most input values of the case (refused before anything is allocated).
    const MAX_CASE_VALUES: u64 = 1 << 31;

    /// Arguments of `brainmvp bench segment`.
    #[derive(clap::Args)]
    pub struct SegmentBenchArgs {
        /// Encoder preset: `small` (UniFormer-S, the official model) or `tiny`.
        #[arg(long, value_parser = parse_encoder, default_value = "small")]
        pub encoder: EncoderPreset,
        /// Case size `x,y,z` in voxels.
        #[arg(long, default_value = "240,240,155")]
        pub size: String,
        /// Input channels (modalities).
        #[arg(long, default_value_t = 4)]
        pub modalities: usize,
        /// Cubic window edge in voxels (a multiple of 16).
        #[arg(long, default_value_t = 96)]
        pub roi: usize,
        /// Fraction of a window shared with its neighbour, in [0, 1).
        #[arg(long, default_value_t = 0.5)]
        pub overlap: f64,
        /// Windows per model call.
        #[arg(long, default_value_t = 4)]
        pub sw_batch: usize,
        /// Blending of overlapping windows: `constant` or `gaussian`.
        #[arg(long, value_parser = parse_blend, default_value = "constant")]
        pub blend: Blend,
        /// Timed runs (after one untimed warm-up run).
        #[arg(long, default_value_t = 3)]
        pub repeats: usize,
        /// `cpu`, `cuda[:i]`, `wgpu[:i|integrated|cpu]` (the first device is used).
        #[arg(long, default_value = "cpu")]
        pub device: String,
        /// Run burn's own operations instead of brainmvp's kernels (CPU and GPU), for before/after
        /// figures.
        #[arg(long)]
        pub burn_ops: bool,
        /// Also write the timings, threads and peak resident memory as JSON to this file.
        #[arg(long)]
        pub json: Option<PathBuf>,
    }

    fn parse_blend(name: &str) -> Result<Blend, String> {
        match name {
            "constant" => Ok(Blend::Constant),
            "gaussian" => Ok(Blend::Gaussian),
            _ => Err(format!("{name:?}: expected constant or gaussian")),
        }
    }

    /// What one benchmark runs: the model, the case size `[x, y, z]` and the window settings.
    struct Settings {
        model: UniUnetConfig,
        size: [usize; 3],
        window: SlidingWindowConfig,
        repeats: usize,
    }

    /// The measurements: parameters, windows per case, warm-up and timed seconds per case.
    struct Timings {
        parameters: usize,
        windows: usize,
        warmup: f64,
        runs: Vec<f64>,
    }

    /// Checks the arguments and runs the benchmark on the chosen backend.
    pub fn bench_segment(args: SegmentBenchArgs) -> anyhow::Result<ExitCode> {
        let settings = settings_of(&args)?;
        let spec = crate::backend::DeviceSpec::parse(&args.device)?;
        let timings = crate::with_autodiff_backend!(spec, |B, devices| {
            let device = devices.into_iter().next().unwrap_or_default();
            time_case::<<B as AutodiffBackend>::InnerBackend>(&settings, &device)?
        });
        print_timings(&args, &settings, &timings);
        let peak = super::print_peak_memory();
        if let Some(path) = &args.json {
            let record = serde_json::json!({
                "bench": "segment",
                "encoder": format!("{:?}", settings.model.encoder).to_lowercase(),
                "device": args.device,
                "size": settings.size,
                "modalities": settings.model.in_channels,
                "roi": args.roi,
                "overlap": args.overlap,
                "sw_batch": args.sw_batch,
                "threads": rayon::current_num_threads(),
                "parameters": timings.parameters,
                "windows": timings.windows,
                "warmup_seconds": timings.warmup,
                "seconds": timings.runs,
                "peak_rss_bytes": peak,
            });
            super::write_json(path, &record)?;
        }
        Ok(ExitCode::SUCCESS)
    }

    fn settings_of(args: &SegmentBenchArgs) -> anyhow::Result<Settings> {
        let parsed: Result<Vec<usize>, _> =
            args.size.split(',').map(|v| v.trim().parse()).collect();
        let size = match parsed.ok().as_deref() {
            Some(&[x, y, z]) if x > 0 && y > 0 && z > 0 => [x, y, z],
            _ => bail!(
                "--size {:?}: expected three positive sizes x,y,z",
                args.size
            ),
        };
        ensure!(
            (1..=MAX_MODALITIES).contains(&args.modalities),
            "--modalities {}: expected 1 to {MAX_MODALITIES}",
            args.modalities
        );
        ensure!(args.repeats >= 1, "--repeats must be at least 1");
        let values = size.iter().fold(args.modalities as u64, |acc, &s| {
            acc.saturating_mul(s as u64)
        });
        ensure!(
            values <= MAX_CASE_VALUES,
            "--size {:?} with {} modalities holds {values} values, more than {MAX_CASE_VALUES}",
            args.size,
            args.modalities
        );
        let window = SlidingWindowConfig {
            roi: [args.roi; 3],
            overlap: args.overlap,
            blend: args.blend,
            batch: args.sw_batch,
        };
        window.validate()?;
        let model = UniUnetConfig::new(args.modalities, OUT_CHANNELS).with_encoder(args.encoder);
        model.validate()?;
        Ok(Settings {
            model,
            size,
            window,
            repeats: args.repeats,
        })
    }

    /// Windows per case as placed by the sliding window (MONAI's placement).
    fn planned_windows(size: [usize; 3], window: &SlidingWindowConfig) -> usize {
        (0..3)
            .map(|axis| {
                let padded = size[axis].max(window.roi[axis]);
                window_starts(padded, window.roi[axis], window.overlap).len()
            })
            .product()
    }

    /// Builds the model (random weights) and a random case, then one warm-up and the timed runs.
    fn time_case<B: Backend>(settings: &Settings, device: &B::Device) -> anyhow::Result<Timings> {
        let model: UniUnet<B> = settings.model.init(device)?;
        let [x, y, z] = settings.size;
        let shape = [1, settings.model.in_channels, z, y, x];
        let input = Tensor::<B, 5>::random(shape, Distribution::Normal(0.0, 1.0), device);
        let (windows, warmup) = segment_once(&model, &input, &settings.window)?;
        let planned = planned_windows(settings.size, &settings.window);
        ensure!(
            windows == planned,
            "the sliding window ran {windows} windows, {planned} were planned"
        );
        let mut runs = Vec::with_capacity(settings.repeats);
        for _ in 0..settings.repeats {
            runs.push(segment_once(&model, &input, &settings.window)?.1);
        }
        Ok(Timings {
            parameters: model.num_learnable_params(),
            windows,
            warmup,
            runs,
        })
    }

    /// One sliding-window inference of the case, the output read back to the host before the
    /// clock stops (so that asynchronous GPU work is finished); `(windows run, seconds)`.
    fn segment_once<B: Backend>(
        model: &UniUnet<B>,
        input: &Tensor<B, 5>,
        window: &SlidingWindowConfig,
    ) -> anyhow::Result<(usize, f64)> {
        let started = Instant::now();
        let mut windows = 0;
        let output = sliding_window(input.clone(), window, |batch| {
            windows += batch.dims()[0];
            model.try_forward_inference(batch)
        })?;
        let expected = output.dims().iter().product::<usize>();
        let values = output.into_data();
        let seconds = started.elapsed().as_secs_f64();
        ensure!(
            values.num_elements() == expected,
            "read back {} values of {expected}",
            values.num_elements()
        );
        Ok((windows, seconds))
    }

    fn print_timings(args: &SegmentBenchArgs, settings: &Settings, timings: &Timings) {
        let [x, y, z] = settings.size;
        let mean = timings.runs.iter().sum::<f64>() / timings.runs.len() as f64;
        let best = timings.runs.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "bench segment: UniUnet {:?} encoder, {} -> {OUT_CHANNELS} channels, {} parameters (random weights), on {}, f32, inference only",
            settings.model.encoder, settings.model.in_channels, timings.parameters, args.device
        );
        println!(
            "case {x}x{y}x{z}, roi {r}x{r}x{r}, overlap {}, sw batch {}, {:?} blending",
            settings.window.overlap,
            settings.window.batch,
            settings.window.blend,
            r = args.roi
        );
        println!("windows per case: {}", timings.windows);
        println!(
            "warm-up {:.3} s; {} timed runs: mean {mean:.3} s, min {best:.3} s per case (output read back); {:.1} ms per window (mean)",
            timings.warmup,
            timings.runs.len(),
            1e3 * mean / timings.windows.max(1) as f64
        );
    }
}
