//! `brainmvp bench pretrain`: the time of one BrainMVP pre-training step at the official sizes
//! (3 subjects per batch: 6 crops of 96³ through the encoder, both views, AdamW), and of the
//! encoder + decoder forward + backward alone, on synthetic crops (no loader, no disk), so the
//! figure is pure compute and comparable with the PyTorch reference.

use anyhow::{bail, Result};
use brainmvp_core::modality::Modality;
use brainmvp_core::pretext::views::{build_views, plan_step, ViewConfig, ViewSource};
use brainmvp_core::pretrain::{BrainMvp, BrainMvpConfig, LossWeights};
use brainmvp_core::rng::Rng;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::{print_peak_memory, write_json};

use crate::pretrain::config::OptimConfig;

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// Network and templates.
    pub model: BrainMvpConfig,
    /// Cubic crop edge.
    pub crop: usize,
    /// Subjects per step (each gives one crop per view).
    pub subjects: usize,
    /// Timed steps (after the untimed warm-up ones).
    pub steps: usize,
    /// Untimed steps first (kernel compilation, autotune, allocator growth).
    pub warmup: usize,
}

/// Mean and best seconds of each timed phase, and every timed run.
#[derive(Debug, Clone)]
pub struct BenchTimes {
    /// Whole step: views, forward, three losses, backward, AdamW.
    pub step_mean: f64,
    pub step_best: f64,
    /// Encoder + decoder forward and backward of the same batch (MSE only, no optimiser).
    pub network_mean: f64,
    pub network_best: f64,
    /// Seconds of each timed step.
    pub step_seconds: Vec<f64>,
    /// Seconds of each timed encoder + decoder forward + backward.
    pub network_seconds: Vec<f64>,
}

/// Synthetic multi-modal crops: four modalities, smooth random values in `[0, 1]`.
fn synthetic_subjects(settings: &BenchSettings) -> Vec<Vec<(Modality, Vec<f32>)>> {
    let voxels = settings.crop.pow(3);
    let modalities = [Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];
    let mut rng = Rng::new(11);
    (0..settings.subjects)
        .map(|_| {
            modalities
                .iter()
                .map(|&m| (m, (0..voxels).map(|_| rng.uniform() as f32).collect()))
                .collect()
        })
        .collect()
}

/// Runs the benchmark on `device` and returns the timings.
pub fn bench_pretrain<B: AutodiffBackend>(
    settings: &BenchSettings,
    device: &B::Device,
) -> Result<BenchTimes> {
    if settings.steps == 0 || settings.subjects == 0 {
        bail!("bench pretrain: --steps and --subjects must be at least 1");
    }
    let images = synthetic_subjects(settings);
    let crop_size = [settings.crop; 3];
    let canvas = settings.model.templates.canvas;
    let sources: Vec<ViewSource<'_>> = images
        .iter()
        .map(|subject| ViewSource {
            images: subject,
            volume_dims: canvas,
            crop_start: [0; 3],
            flipped: [false; 3],
        })
        .collect();
    let mut model: BrainMvp<B> = settings.model.init(device)?;
    let mut optim = OptimConfig::default().adamw().init::<B, BrainMvp<B>>();
    let views_config = ViewConfig::default();
    let weights = LossWeights::default();
    let mut step_times = Vec::new();
    for step in 0..settings.warmup + settings.steps {
        let started = Instant::now();
        let plans = plan_step(&sources, crop_size, step as u64, 0, &views_config, true)?;
        let views = build_views(&sources, &plans, crop_size, &model.templates, device)?;
        let losses = model.losses(views, &weights)?;
        let gradients = GradientsParams::from_grads(losses.total.backward(), &model);
        model = optim.step(3e-4, model, gradients);
        B::sync(device).map_err(|err| anyhow::anyhow!("device sync: {err:?}"))?;
        if step >= settings.warmup {
            step_times.push(started.elapsed().as_secs_f64());
        }
    }
    let network_times = time_network(&model, &sources, settings, device)?;
    Ok(BenchTimes {
        step_mean: mean(&step_times),
        step_best: best(&step_times),
        network_mean: mean(&network_times),
        network_best: best(&network_times),
        step_seconds: step_times,
        network_seconds: network_times,
    })
}

/// Encoder + decoder forward and backward on both views (as the reference's second figure).
fn time_network<B: AutodiffBackend>(
    model: &BrainMvp<B>,
    sources: &[ViewSource<'_>],
    settings: &BenchSettings,
    device: &B::Device,
) -> Result<Vec<f64>> {
    let crop_size = [settings.crop; 3];
    let plans = plan_step(sources, crop_size, 0, 0, &ViewConfig::default(), true)?;
    let views = build_views(sources, &plans, crop_size, &model.templates, device)?;
    let input = Tensor::cat(vec![views.view_a.detach(), views.view_b.detach()], 0);
    let target = Tensor::cat(vec![views.target.clone(), views.target], 0);
    let mut times = Vec::new();
    for round in 0..settings.warmup + settings.steps {
        let started = Instant::now();
        let deepest = model.encoder.deepest(input.clone())?;
        let reconstruction = model.decoder.reconstruct(deepest)?;
        let loss =
            brainmvp_core::pretrain::model::mean_squared_error(reconstruction, target.clone());
        let _gradients = loss.backward();
        B::sync(device).map_err(|err| anyhow::anyhow!("device sync: {err:?}"))?;
        if round >= settings.warmup {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn best(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

#[derive(clap::Args)]
pub struct PretrainBenchArgs {
    /// `uniformer-s`, `uniformer-tiny` or `unet3d`.
    #[arg(long, default_value = "uniformer-s")]
    pub arch: brainmvp_core::model::Architecture,
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

pub fn run_pretrain_bench(args: PretrainBenchArgs) -> anyhow::Result<ExitCode> {
    use brainmvp_core::modality::Modality;
    use brainmvp_core::pretrain::BrainMvpConfig;
    let arch = args.arch;
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
