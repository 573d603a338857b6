//! `bench segment`: UniUnet sliding-window inference of one case, inference only.

use anyhow::{bail, ensure};
use brainmvp_core::inference::{sliding_window, window_starts, Blend, SlidingWindowConfig};
use brainmvp_core::model::{Architecture, UniUnet, UniUnetConfig};
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
    /// Encoder: `uniformer-s` (the official model) or `uniformer-tiny`.
    #[arg(long, default_value = "uniformer-s")]
    pub encoder: Architecture,
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
    let parsed: Result<Vec<usize>, _> = args.size.split(',').map(|v| v.trim().parse()).collect();
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
