//! The training data loader: random crops from the cache with optional flips and intensity
//! shift/scale, produced on worker threads into bounded queues, yielded in a fixed order.
//!
//! Determinism: batch `step` holds the global samples `step * batch_size ..`. Global sample `g` is
//! subject `order_e[g % n]` of epoch `e = g / n`, where `order_e` is `0..n` shuffled by
//! `Rng::stream(seed, e)`; all of the sample's randomness (crop start, flips, intensity) comes from
//! `Rng::stream(seed ^ SAMPLE_SALT, g)`. So the batches depend only on the seed and the step,
//! never on the number of workers or their timing, and `Loader::new(.., start_step)` resumes a run.
//!
//! With `foreground_fraction > 0`, that share of the crops contains a random labelled voxel
//! (label > 0) of the subject, as MONAI's `RandCropByPosNegLabel` positive samples, but at a
//! uniformly random place in the crop rather than at its centre: always-centred positives teach a
//! small network "the tumour is in the middle of the window", which sliding-window inference then
//! reproduces in every window. Each subject's labelled voxels are listed once, on first use, and
//! shared by the workers.

use crate::cache::CacheReader;
pub use crate::crops::{crop_start, crop_start_around, crop_start_containing, flip_in_place};
use crate::rng::Rng;
use crate::{Error, Modality, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// Mixed into the seed for per-sample streams, so they never coincide with the epoch streams:
/// global sample `g` draws from `Rng::stream(seed ^ SAMPLE_SALT, g)`.
pub const SAMPLE_SALT: u64 = 0x243F_6A88_85A3_08D3;

crate::config! {
    /// Loader settings.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct LoaderConfig {
        /// Crop size in voxels (x, y, z).
        pub crop_size: [usize; 3] = [96, 96, 96],
        /// Samples (subjects) per batch.
        pub batch_size: usize = 2,
        /// Worker threads; 0 produces batches on the calling thread.
        pub workers: usize = 2,
        /// Batches that may wait in the queues (all workers together, at least one per worker).
        pub queue_depth: usize = 4,
        /// Random flip along each axis with probability 0.5, the same for all modalities and the
        /// label.
        pub flips: bool = false,
        /// Per-modality random offset in `±intensity_shift` added to the crop (MONAI
        /// `RandShiftIntensity`); 0 = off.
        pub intensity_shift: f32 = 0.0,
        /// Per-modality random factor in `1 ± intensity_scale` multiplying the crop (MONAI
        /// `RandScaleIntensity`, applied before the shift); 0 = off.
        pub intensity_scale: f32 = 0.0,
        /// Seed of the subject order and of every sample's crop, flips and intensity changes.
        pub seed: u64 = 0,
        /// Probability in `[0, 1]` that a crop contains, at a random place (then clamped into the
        /// volume), a random voxel whose label is > 0; subjects without a label or with an empty
        /// one get the uniform crop. 0 (the default) keeps every crop uniform.
        pub foreground_fraction: f64 = 0.0,
    }
}

/// One sample: the same crop of every modality of one subject (and of its label map).
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectCrop {
    pub subject_id: String,
    /// Index of the subject in the cache manifest.
    pub subject_index: usize,
    /// Crop origin in the subject's grid (negative or past the end where the crop is padded).
    pub start: [isize; 3],
    /// Whether the crop was flipped along x, y, z.
    pub flipped: [bool; 3],
    /// Each present modality's crop, x fastest, `crop_size` voxels.
    pub images: Vec<(Modality, Vec<f32>)>,
    pub label: Option<Vec<u8>>,
}

impl SubjectCrop {
    /// The crop of `modality`, if the subject has it.
    pub fn image(&self, modality: Modality) -> Option<&[f32]> {
        self.images
            .iter()
            .find(|(m, _)| *m == modality)
            .map(|(_, v)| v.as_slice())
    }
}

/// A batch of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Step number (0-based, counted from the start of training).
    pub step: u64,
    pub crop_size: [usize; 3],
    pub samples: Vec<SubjectCrop>,
}

impl Batch {
    /// The crops of `modality` as a `[batch, 1, z, y, x]` tensor, i.e. burn's `[N, C, D, H, W]` with
    /// D = z (inferior→superior), H = y (posterior→anterior), W = x (left→right), which is exactly
    /// the x-fastest memory order of the crops (no copy per voxel). `None` if a sample lacks it.
    pub fn to_tensor<B: burn::tensor::backend::Backend>(
        &self,
        modality: Modality,
        device: &B::Device,
    ) -> Option<burn::tensor::Tensor<B, 5>> {
        let voxels: usize = self.crop_size.iter().product();
        let mut values = Vec::with_capacity(voxels * self.samples.len());
        for sample in &self.samples {
            values.extend_from_slice(sample.image(modality)?);
        }
        let data = burn::tensor::TensorData::new(values, self.tensor_shape());
        Some(burn::tensor::Tensor::from_data(data, device))
    }

    /// The label crops as an integer `[batch, 1, z, y, x]` tensor; `None` if a sample has no label.
    pub fn label_tensor<B: burn::tensor::backend::Backend>(
        &self,
        device: &B::Device,
    ) -> Option<burn::tensor::Tensor<B, 5, burn::tensor::Int>> {
        let voxels: usize = self.crop_size.iter().product();
        let mut values: Vec<i32> = Vec::with_capacity(voxels * self.samples.len());
        for sample in &self.samples {
            values.extend(sample.label.as_ref()?.iter().map(|&v| v as i32));
        }
        let data = burn::tensor::TensorData::new(values, self.tensor_shape());
        Some(burn::tensor::Tensor::from_data(data, device))
    }

    fn tensor_shape(&self) -> [usize; 5] {
        let [x, y, z] = self.crop_size;
        [self.samples.len(), 1, z, y, x]
    }
}

/// Each subject's labelled voxels (linear indices, x fastest), listed on first use.
struct ForegroundVoxels(Vec<OnceLock<Arc<[u32]>>>);

impl std::fmt::Debug for ForegroundVoxels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let listed = self.0.iter().filter(|slot| slot.get().is_some()).count();
        write!(
            f,
            "ForegroundVoxels({listed} of {} subjects listed)",
            self.0.len()
        )
    }
}

/// The deterministic batch maker shared by the workers.
#[derive(Debug, Clone)]
pub struct Sampler {
    reader: Arc<CacheReader>,
    config: LoaderConfig,
    foreground: Arc<ForegroundVoxels>,
}

impl Sampler {
    /// Check the configuration against the cache.
    pub fn new(reader: Arc<CacheReader>, config: LoaderConfig) -> Result<Self> {
        let context = format!("loader for {}", reader.dir().display());
        if reader.is_empty() {
            return Err(Error::new(context, "the cache has no subjects"));
        }
        let voxels = config
            .crop_size
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        if config.crop_size.contains(&0)
            || voxels.is_none_or(|v| v > crate::cache::manifest::MAX_VOXELS)
        {
            return Err(Error::new(
                context,
                format!("invalid crop size {:?}", config.crop_size),
            ));
        }
        if config.batch_size == 0 {
            return Err(Error::new(context, "batch size must be at least 1"));
        }
        let (shift, scale) = (config.intensity_shift, config.intensity_scale);
        if !(shift >= 0.0 && shift.is_finite() && scale >= 0.0 && scale.is_finite()) {
            return Err(Error::new(
                context,
                "intensity shift and scale must be finite and >= 0",
            ));
        }
        if !(0.0..=1.0).contains(&config.foreground_fraction) {
            return Err(Error::new(
                context,
                format!(
                    "foreground fraction {} is not in [0, 1]",
                    config.foreground_fraction
                ),
            ));
        }
        let slots = (0..reader.len()).map(|_| OnceLock::new()).collect();
        let foreground = Arc::new(ForegroundVoxels(slots));
        Ok(Self {
            reader,
            config,
            foreground,
        })
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The subject index of global sample `global`.
    pub fn subject_of(&self, global: u64) -> usize {
        let count = self.reader.len() as u64;
        let (epoch, position) = (global / count, (global % count) as usize);
        let mut order: Vec<usize> = (0..self.reader.len()).collect();
        Rng::stream(self.config.seed, epoch).shuffle(&mut order);
        order[position]
    }

    /// Batch number `step`.
    pub fn batch(&self, step: u64) -> Result<Batch> {
        let size = self.config.batch_size as u64;
        let samples = (0..size)
            .map(|k| self.sample(step * size + k))
            .collect::<Result<Vec<_>>>()?;
        Ok(Batch {
            step,
            crop_size: self.config.crop_size,
            samples,
        })
    }

    /// Global sample `global`: subject, crop start, flips, intensity changes, all from its own stream.
    pub fn sample(&self, global: u64) -> Result<SubjectCrop> {
        let subject_index = self.subject_of(global);
        let entry = self.reader.subject(subject_index)?;
        let size = self.config.crop_size;
        let mut rng = Rng::stream(self.config.seed ^ SAMPLE_SALT, global);
        let mut start = crop_start(entry.dims, size, &mut rng);
        let fraction = self.config.foreground_fraction;
        // No draw at all when the fraction is 0, so such streams are unchanged.
        if fraction > 0.0 && rng.chance(fraction) {
            if let Some(voxel) = self.foreground_voxel(subject_index, &mut rng)? {
                let offset = size.map(|edge| rng.below(edge));
                start = crop_start_containing(entry.dims, size, voxel, offset);
            }
        }
        let flipped = match self.config.flips {
            true => [rng.chance(0.5), rng.chance(0.5), rng.chance(0.5)],
            false => [false; 3],
        };
        let mut images = Vec::with_capacity(entry.images.len());
        for modality in entry.modalities() {
            let mut crop = self
                .reader
                .read_crop(subject_index, modality, start, size)?;
            flip_in_place(&mut crop, size, flipped);
            self.adjust_intensity(&mut crop, &mut rng);
            images.push((modality, crop));
        }
        let label = match entry.label {
            Some(_) => {
                let mut crop = self.reader.read_label_crop(subject_index, start, size)?;
                flip_in_place(&mut crop, size, flipped);
                Some(crop)
            }
            None => None,
        };
        let subject_id = entry.id.clone();
        Ok(SubjectCrop {
            subject_id,
            subject_index,
            start,
            flipped,
            images,
            label,
        })
    }

    /// A random labelled voxel `[x, y, z]` of `subject` (one draw), `None` without labelled voxels.
    fn foreground_voxel(&self, subject: usize, rng: &mut Rng) -> Result<Option<[usize; 3]>> {
        let voxels = self.foreground_voxels(subject)?;
        if voxels.is_empty() {
            return Ok(None);
        }
        let index = voxels[rng.below(voxels.len())] as usize;
        let [nx, ny, _] = self.reader.subject(subject)?.dims;
        Ok(Some([index % nx, (index / nx) % ny, index / (nx * ny)]))
    }

    /// The linear indices of `subject`'s voxels with label > 0 (empty without a label map),
    /// read and listed on first use, then shared by every clone of this sampler.
    pub fn foreground_voxels(&self, subject: usize) -> Result<Arc<[u32]>> {
        let entry = self.reader.subject(subject)?;
        let slot = &self.foreground.0[subject];
        if let Some(voxels) = slot.get() {
            return Ok(Arc::clone(voxels));
        }
        let voxels: Arc<[u32]> = match entry.label {
            // The manifest bounds a grid to 2³⁰ voxels, so an index fits in u32.
            Some(_) => self
                .reader
                .read_label_volume(subject)?
                .data
                .iter()
                .enumerate()
                .filter(|(_, &label)| label > 0)
                .map(|(index, _)| index as u32)
                .collect(),
            None => Arc::from(Vec::new()),
        };
        Ok(Arc::clone(slot.get_or_init(|| voxels)))
    }

    /// MONAI order: scale by `1 + U(-scale, scale)`, then add `U(-shift, shift)`.
    fn adjust_intensity(&self, crop: &mut [f32], rng: &mut Rng) {
        let (shift, scale) = (
            self.config.intensity_shift as f64,
            self.config.intensity_scale as f64,
        );
        if scale > 0.0 {
            let factor = (1.0 + rng.range_f64(-scale, scale)) as f32;
            crop.iter_mut().for_each(|v| *v *= factor);
        }
        if shift > 0.0 {
            let offset = rng.range_f64(-shift, shift) as f32;
            crop.iter_mut().for_each(|v| *v += offset);
        }
    }
}

/// Prefetching iterator over batches `start_step, start_step + stride, ...` (endless; use `take`;
/// the stride is 1 except for data-parallel ranks, see [`Loader::strided`]).
///
/// Worker `w` of `W` makes the `w + k·W`-th of those steps into its own bounded queue; the iterator
/// takes them round-robin, which restores the step order. Dropping the loader stops the workers.
pub struct Loader {
    sampler: Sampler,
    start_step: u64,
    stride: u64,
    next_step: u64,
    receivers: Vec<Receiver<Result<Batch>>>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Loader {
    /// Start the workers (none when `config.workers == 0`).
    pub fn new(reader: Arc<CacheReader>, config: LoaderConfig, start_step: u64) -> Result<Self> {
        Self::strided(reader, config, start_step, 1)
    }

    /// A loader over every `stride`-th batch from `start_step`: data-parallel rank `r` of `P`
    /// takes `strided(.., first_step · P + r, P)`, so the ranks together see exactly the batches
    /// of a single loader, each batch once.
    pub fn strided(
        reader: Arc<CacheReader>,
        config: LoaderConfig,
        start_step: u64,
        stride: u64,
    ) -> Result<Self> {
        let stride = stride.max(1);
        let sampler = Sampler::new(reader, config)?;
        let worker_count = sampler.config.workers;
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(worker_count);
        let mut workers = Vec::with_capacity(worker_count);
        let per_worker = sampler
            .config
            .queue_depth
            .div_ceil(worker_count.max(1))
            .max(1);
        for index in 0..worker_count {
            let (sender, receiver) = sync_channel(per_worker);
            let (sampler, stop) = (sampler.clone(), Arc::clone(&stop));
            let first = start_step + index as u64 * stride;
            let spawned = std::thread::Builder::new()
                .name(format!("loader-{index}"))
                .spawn(move || {
                    let mut step = first;
                    while !stop.load(Ordering::Relaxed) {
                        if sender.send(sampler.batch(step)).is_err() {
                            break;
                        }
                        step += worker_count as u64 * stride;
                    }
                })
                .map_err(|e| Error::new("loader", format!("cannot start worker thread: {e}")))?;
            receivers.push(receiver);
            workers.push(spawned);
        }
        Ok(Self {
            sampler,
            start_step,
            stride,
            next_step: start_step,
            receivers,
            workers,
            stop,
        })
    }

    /// The step of the next batch to be yielded.
    pub fn next_step(&self) -> u64 {
        self.next_step
    }

    pub fn config(&self) -> &LoaderConfig {
        self.sampler.config()
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let step = self.next_step;
        self.next_step += self.stride;
        if self.receivers.is_empty() {
            return Some(self.sampler.batch(step));
        }
        // Worker w makes the steps start_step + (w + k·W)·stride.
        let taken = (step - self.start_step) / self.stride;
        let worker = (taken % self.receivers.len() as u64) as usize;
        Some(self.receivers[worker].recv().unwrap_or_else(|_| {
            Err(Error::new(
                "loader",
                format!("worker {worker} stopped unexpectedly"),
            ))
        }))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers makes every blocked `send` fail, so each worker exits its loop.
        self.receivers.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_matches_per_voxel_mirroring() {
        let size = [4, 3, 5];
        let data: Vec<usize> = (0..60).collect();
        for mask in 0..8 {
            let flip = [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0];
            let mut flipped = data.clone();
            flip_in_place(&mut flipped, size, flip);
            for z in 0..5 {
                for y in 0..3 {
                    for x in 0..4 {
                        let src = [
                            if flip[0] { 3 - x } else { x },
                            if flip[1] { 2 - y } else { y },
                            if flip[2] { 4 - z } else { z },
                        ];
                        let expected = data[src[0] + 4 * (src[1] + 3 * src[2])];
                        assert_eq!(flipped[x + 4 * (y + 3 * z)], expected, "{flip:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn crop_start_is_uniform_or_centred() {
        let mut rng = Rng::new(3);
        let mut seen = [false; 5];
        for _ in 0..500 {
            let start = crop_start([10, 6, 7], [6, 6, 10], &mut rng);
            assert_eq!(&start[1..], &[0, -1]);
            seen[start[0] as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
