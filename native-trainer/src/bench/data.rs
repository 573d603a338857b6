//! `bench data CACHE`: crops per second (and MB/s of crop data handed to training) from a prepared
//! cache through the prefetching loader, plus the time to the first batch.

use anyhow::Context;
use brainmvp_core::cache::CacheReader;
use brainmvp_core::loader::{Batch, Loader, LoaderConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

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

pub fn bench_data(args: DataArgs) -> anyhow::Result<ExitCode> {
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
