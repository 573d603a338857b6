//! Sliding-window inference over whole volumes, as MONAI's `sliding_window_inference`.
//!
//! A volume `[N, C_in, D, H, W]` (burn's axis order D, H, W = z, y, x) is cut into overlapping
//! `roi`-sized windows; a model maps batches of windows `[n, C_in, rz, ry, rx]` to
//! `[n, C_out, rz, ry, rx]`, and the window outputs are blended back with constant or Gaussian
//! weights into `[N, C_out, D, H, W]`.
//!
//! Window placement follows MONAI (`_get_scan_interval` + `dense_patch_slices`): the scan
//! interval is `⌊roi·(1 − overlap)⌋` (at least 1), windows start at 0, interval, 2·interval, …
//! until one reaches the end, and that last one is shifted back to end exactly at the volume's
//! end. A volume smaller than the roi along an axis is zero-padded symmetrically (the lower side
//! gets `⌊diff/2⌋`), and the padding is removed from the output.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::ops::Range;

use crate::{Error, Result};

/// Most voxels one window may hold (512³).
const MAX_WINDOW_VOXELS: u64 = 1 << 27;
/// Most elements the padded input or the blended output may hold (8 GiB of f32).
const MAX_TENSOR_ELEMENTS: u64 = 1 << 31;
/// Most windows (over all images of the batch) one call may run.
const MAX_WINDOWS: u64 = 1 << 20;
/// MONAI's Gaussian `sigma_scale`: σ = 0.125 · roi along each axis.
const GAUSSIAN_SIGMA_SCALE: f64 = 0.125;
/// MONAI's floor for the importance map (weights below it are raised to it).
const MIN_IMPORTANCE: f64 = 1e-3;

/// How overlapping window outputs are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blend {
    /// Every voxel of every window has weight 1 (a plain average).
    Constant,
    /// MONAI's Gaussian importance map (σ = 0.125·roi, floored at max(min, 1e-3)).
    Gaussian,
}

crate::config! {
    /// Sliding-window settings. The defaults are the official BrainMVP test's (96³ windows, overlap
    /// 0.5, constant blending); MONAI's own `sliding_window_inference` has no default window size
    /// and defaults to overlap 0.25.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
    pub struct SlidingWindowConfig {
        /// Window size along z, y, x (burn's D, H, W).
        pub roi: [usize; 3] = [96, 96, 96],
        /// Fraction of a window shared with its neighbour, in [0, 1).
        pub overlap: f64 = 0.5,
        /// Weighting of overlapping window outputs.
        pub blend: Blend = Blend::Constant,
        /// Windows given to the model per call (MONAI's `sw_batch_size`).
        pub batch: usize = 4,
    }
}

impl SlidingWindowConfig {
    /// Checks the settings: non-zero roi and batch, overlap in [0, 1), window not absurdly large.
    pub fn validate(&self) -> Result<()> {
        let fail = |cause: String| Err(Error::new("sliding window", cause));
        if self.roi.contains(&0) {
            return fail(format!("roi {:?} has a zero size", self.roi));
        }
        if !(self.overlap.is_finite() && (0.0..1.0).contains(&self.overlap)) {
            return fail(format!("overlap {} is outside [0, 1)", self.overlap));
        }
        if self.batch == 0 {
            return fail("batch (windows per model call) is 0".to_string());
        }
        let window_voxels = product_u64(&self.roi);
        if window_voxels > MAX_WINDOW_VOXELS {
            return fail(format!(
                "roi {:?} holds {window_voxels} voxels, more than the limit {MAX_WINDOW_VOXELS}",
                self.roi
            ));
        }
        Ok(())
    }
}

/// Window start positions along one axis of `size` voxels, as MONAI places them.
///
/// The interval is `⌊roi·(1 − overlap)⌋` (at least 1); starts are `k·interval` for
/// `k = 0, 1, …` up to the first window reaching the end, which is shifted back to end at `size`.
/// A `size` not larger than `roi` gives the single start 0 (the axis is padded to `roi`);
/// `roi == 0` gives no windows.
pub fn window_starts(size: usize, roi: usize, overlap: f64) -> Vec<usize> {
    if roi == 0 {
        return Vec::new();
    }
    if size <= roi {
        return vec![0];
    }
    // Python's int(roi * (1 - overlap)) truncates towards zero; the same f64 arithmetic here.
    let interval = ((roi as f64 * (1.0 - overlap)) as usize).max(1);
    let mut starts = Vec::new();
    let mut start = 0usize;
    loop {
        if start + roi >= size {
            starts.push(size - roi);
            return starts;
        }
        starts.push(start);
        start += interval;
    }
}

/// How many windows of `config` cover a volume of `size` voxels (the spatial axes of the input,
/// in the input's order), as [`sliding_window`] places them.
pub fn window_count(size: [usize; 3], config: &SlidingWindowConfig) -> usize {
    (0..3)
        .map(|axis| {
            let padded = size[axis].max(config.roi[axis]);
            window_starts(padded, config.roi[axis], config.overlap).len()
        })
        .product()
}

/// Runs `model` over `input` window by window and blends the outputs (see the module docs).
///
/// `input` is `[N, C_in, D, H, W]`; `model` maps `[n, C_in, rz, ry, rx]` to
/// `[n, C_out, rz, ry, rx]` with `n ≤ config.batch`; the result is `[N, C_out, D, H, W]`.
pub fn sliding_window<B: Backend, F>(
    input: Tensor<B, 5>,
    config: &SlidingWindowConfig,
    model: F,
) -> Result<Tensor<B, 5>>
where
    F: FnMut(Tensor<B, 5>) -> Result<Tensor<B, 5>>,
{
    sliding_window_with_progress(input, config, model, |_, _| {})
}

/// [`sliding_window`], calling `on_window(done, total)` after each model call with the number of
/// windows processed so far and the total (over all `N` images).
pub fn sliding_window_with_progress<B: Backend, F, P>(
    input: Tensor<B, 5>,
    config: &SlidingWindowConfig,
    mut model: F,
    mut on_window: P,
) -> Result<Tensor<B, 5>>
where
    F: FnMut(Tensor<B, 5>) -> Result<Tensor<B, 5>>,
    P: FnMut(usize, usize),
{
    let mut run = WindowRun::new(input, config)?;
    while let Some(chunk) = run.next_chunk() {
        run.blend_batch(chunk, &mut model)?;
        on_window(run.done, run.total);
    }
    run.finish()
}

/// [`sliding_window_with_progress`] for backends that cannot block on a read (WebGPU in the
/// browser): after each batch it awaits a one-value read of the blended output, so the batch has
/// really run when `on_window` reports it and the event loop gets to run in between.
pub async fn sliding_window_async<B: Backend, F, P>(
    input: Tensor<B, 5>,
    config: &SlidingWindowConfig,
    mut model: F,
    mut on_window: P,
) -> Result<Tensor<B, 5>>
where
    F: FnMut(Tensor<B, 5>) -> Result<Tensor<B, 5>>,
    P: FnMut(usize, usize),
{
    let mut run = WindowRun::new(input, config)?;
    while let Some(chunk) = run.next_chunk() {
        run.blend_batch(chunk, &mut model)?;
        if let Some(output) = &run.output {
            let corner = output.clone().slice([0..1, 0..1, 0..1, 0..1, 0..1]);
            corner
                .into_data_async()
                .await
                .map_err(|err| Error::new("sliding window", format!("{err:?}")))?;
        }
        on_window(run.done, run.total);
    }
    run.finish()
}

/// The batch of windows starting at window `first`: `batch` of them, fewer at the end of `total`
/// (every caller cuts a pass the same way).
pub(crate) fn window_batch_from(first: usize, batch: usize, total: usize) -> Range<usize> {
    first..(first + batch).min(total)
}

/// The state of one sliding-window pass: the padded input, the blending weights and the sum of
/// the weighted outputs so far. Batches are cut by [`Self::next_chunk`], handed out by
/// [`Self::window_batch`] and taken back, in order, by [`Self::blend`].
pub(crate) struct WindowRun<B: Backend> {
    plan: WindowPlan,
    batch: usize,
    padded: Tensor<B, 5>,
    weights: Tensor<B, 5>,
    output: Option<Tensor<B, 5>>,
    done: usize,
    total: usize,
}

impl<B: Backend> WindowRun<B> {
    pub(crate) fn new(input: Tensor<B, 5>, config: &SlidingWindowConfig) -> Result<Self> {
        let plan = WindowPlan::new(input.dims(), config)?;
        let device = input.device();
        let padded = plan.pad(input);
        let weights = importance_map::<B>(config.roi, config.blend, &device);
        let total = plan.input_dims[0] * plan.windows.len();
        Ok(Self {
            plan,
            batch: config.batch,
            padded,
            weights,
            output: None,
            done: 0,
            total,
        })
    }

    /// The window indices of the next batch, `None` when all have run.
    fn next_chunk(&self) -> Option<Range<usize>> {
        (self.done < self.total).then(|| window_batch_from(self.done, self.batch, self.total))
    }

    /// Windows of the whole pass.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Windows blended so far.
    pub(crate) fn done(&self) -> usize {
        self.done
    }

    /// Runs `model` on the windows of `chunk` and adds their weighted outputs.
    fn blend_batch<F>(&mut self, chunk: Range<usize>, model: &mut F) -> Result<()>
    where
        F: FnMut(Tensor<B, 5>) -> Result<Tensor<B, 5>>,
    {
        let predicted = model(self.window_batch(chunk.clone()))?;
        self.blend(chunk, predicted)
    }

    /// The input windows of `chunk`, `[chunk.len(), C_in, rz, ry, rx]`.
    pub(crate) fn window_batch(&self, chunk: Range<usize>) -> Tensor<B, 5> {
        let batch: Vec<Tensor<B, 5>> = chunk
            .map(|index| {
                let ranges = self.plan.window_ranges(index, None);
                self.padded.clone().slice(ranges)
            })
            .collect();
        Tensor::cat(batch, 0)
    }

    /// Adds the weighted model outputs `predicted` of the windows of `chunk`, which must be the
    /// next windows of the pass.
    pub(crate) fn blend(&mut self, chunk: Range<usize>, predicted: Tensor<B, 5>) -> Result<()> {
        if chunk.start != self.done || chunk.end > self.total || chunk.is_empty() {
            return Err(Error::new(
                "sliding window",
                format!(
                    "windows {chunk:?} blended out of order ({} of {} done)",
                    self.done, self.total
                ),
            ));
        }
        let plan = &self.plan;
        let channels = plan.check_output(&predicted, chunk.len(), self.output.as_ref())?;
        let mut blended = match self.output.take() {
            Some(blended) => blended,
            None => Tensor::zeros(plan.output_dims(channels)?, &self.padded.device()),
        };
        for (row, index) in chunk.clone().enumerate() {
            let window = predicted.clone().narrow(0, row, 1) * self.weights.clone();
            let ranges = plan.window_ranges(index, Some(channels));
            let sum = blended.clone().slice(ranges.clone()) + window;
            blended = blended.slice_assign(ranges, sum);
        }
        self.output = Some(blended);
        self.done = chunk.end;
        Ok(())
    }

    /// The blended output divided by the summed weights, cropped back to the input size.
    pub(crate) fn finish(self) -> Result<Tensor<B, 5>> {
        let output = self
            .output
            .ok_or_else(|| Error::new("sliding window", "no window to run"))?;
        let counts = self.plan.weight_sum(&self.weights, &self.padded.device());
        Ok(self.plan.unpad(output / counts))
    }
}

/// Where the windows of one call lie in the padded volume.
struct WindowPlan {
    /// `[N, C_in, D, H, W]` of the input.
    input_dims: [usize; 5],
    /// Spatial size after padding each axis up to the roi.
    padded_size: [usize; 3],
    /// Zeros added before the input along each spatial axis.
    pad_before: [usize; 3],
    /// Window size.
    roi: [usize; 3],
    /// Window starts (z, y, x) in the padded volume, z slowest (MONAI's order).
    windows: Vec<[usize; 3]>,
}

impl WindowPlan {
    fn new(input_dims: [usize; 5], config: &SlidingWindowConfig) -> Result<Self> {
        config.validate()?;
        let fail = |cause: String| Err(Error::new("sliding window input", cause));
        if input_dims.contains(&0) {
            return fail(format!("shape {input_dims:?} has a zero size"));
        }
        let roi = config.roi;
        let size = [input_dims[2], input_dims[3], input_dims[4]];
        let padded_size: [usize; 3] = std::array::from_fn(|axis| size[axis].max(roi[axis]));
        let pad_before = std::array::from_fn(|axis| (padded_size[axis] - size[axis]) / 2);
        let padded_elements = product_u64(&input_dims[..2]) * product_u64(&padded_size);
        if padded_elements > MAX_TENSOR_ELEMENTS {
            return fail(format!(
                "shape {input_dims:?} padded to the roi holds {padded_elements} values, \
                 more than the limit {MAX_TENSOR_ELEMENTS}"
            ));
        }
        let starts: [Vec<usize>; 3] =
            std::array::from_fn(|axis| window_starts(padded_size[axis], roi[axis], config.overlap));
        let window_count =
            starts.iter().map(|axis| axis.len() as u64).product::<u64>() * input_dims[0] as u64;
        if window_count > MAX_WINDOWS {
            return fail(format!(
                "{window_count} windows of {roi:?} needed, more than the limit {MAX_WINDOWS}"
            ));
        }
        let mut windows = Vec::new();
        for &z in &starts[0] {
            for &y in &starts[1] {
                for &x in &starts[2] {
                    windows.push([z, y, x]);
                }
            }
        }
        Ok(Self {
            input_dims,
            padded_size,
            pad_before,
            roi,
            windows,
        })
    }

    /// The input zero-padded symmetrically up to the roi (unchanged when no axis needs it).
    fn pad<B: Backend>(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        if self.padded_size == self.spatial_size() {
            return input;
        }
        let [images, channels, ..] = self.input_dims;
        let [pd, ph, pw] = self.padded_size;
        let zeros = Tensor::zeros([images, channels, pd, ph, pw], &input.device());
        zeros.slice_assign(self.interior(channels), input)
    }

    /// The output without the padding added by [`Self::pad`].
    fn unpad<B: Backend>(&self, output: Tensor<B, 5>) -> Tensor<B, 5> {
        let channels = output.dims()[1];
        output.slice(self.interior(channels))
    }

    fn spatial_size(&self) -> [usize; 3] {
        [self.input_dims[2], self.input_dims[3], self.input_dims[4]]
    }

    /// Ranges of the unpadded volume inside the padded one.
    fn interior(&self, channels: usize) -> [Range<usize>; 5] {
        let size = self.spatial_size();
        let spatial: [Range<usize>; 3] =
            std::array::from_fn(|axis| self.pad_before[axis]..self.pad_before[axis] + size[axis]);
        let [z, y, x] = spatial;
        [0..self.input_dims[0], 0..channels, z, y, x]
    }

    /// Ranges of window number `index` (image-major: `index / windows` is the image).
    /// `channels` None takes all input channels.
    fn window_ranges(&self, index: usize, channels: Option<usize>) -> [Range<usize>; 5] {
        let image = index / self.windows.len();
        let [z, y, x] = self.windows[index % self.windows.len()];
        let [rz, ry, rx] = self.roi;
        let channels = channels.unwrap_or(self.input_dims[1]);
        [
            image..image + 1,
            0..channels,
            z..z + rz,
            y..y + ry,
            x..x + rx,
        ]
    }

    /// Checks a model output of `rows` windows; returns its channel count.
    fn check_output<B: Backend>(
        &self,
        predicted: &Tensor<B, 5>,
        rows: usize,
        previous: Option<&Tensor<B, 5>>,
    ) -> Result<usize> {
        let dims = predicted.dims();
        let [rz, ry, rx] = self.roi;
        let channels = previous.map_or(dims[1], |output| output.dims()[1]);
        if dims != [rows, channels, rz, ry, rx] || channels == 0 {
            return Err(Error::new(
                "sliding window model",
                format!(
                    "returned shape {dims:?}, expected [{rows}, C_out, {rz}, {ry}, {rx}] with the same C_out for every window"
                ),
            ));
        }
        Ok(channels)
    }

    /// `[N, C_out, padded D, H, W]`, refused when absurdly large.
    fn output_dims(&self, channels: usize) -> Result<[usize; 5]> {
        let [pd, ph, pw] = self.padded_size;
        let dims = [self.input_dims[0], channels, pd, ph, pw];
        let elements = product_u64(&dims);
        if elements > MAX_TENSOR_ELEMENTS {
            return Err(Error::new(
                "sliding window model",
                format!(
                    "output {dims:?} holds {elements} values, more than the limit {MAX_TENSOR_ELEMENTS}"
                ),
            ));
        }
        Ok(dims)
    }

    /// Sum of the window weights at each voxel, `[1, 1, padded D, H, W]`, accumulated in the
    /// same window order as the outputs (so a constant model blends back to its exact value
    /// whenever that value times a weight is exact).
    fn weight_sum<B: Backend>(&self, weights: &Tensor<B, 5>, device: &B::Device) -> Tensor<B, 5> {
        let [pd, ph, pw] = self.padded_size;
        let mut counts = Tensor::<B, 5>::zeros([1, 1, pd, ph, pw], device);
        for index in 0..self.windows.len() {
            let ranges = self.window_ranges(index, Some(1));
            let sum = counts.clone().slice(ranges.clone()) + weights.clone();
            counts = counts.slice_assign(ranges, sum);
        }
        counts
    }
}

/// The per-window weights `[1, 1, rz, ry, rx]` (MONAI's `compute_importance_map`).
pub fn importance_map<B: Backend>(
    roi: [usize; 3],
    blend: Blend,
    device: &B::Device,
) -> Tensor<B, 5> {
    let values = importance_values(roi, blend);
    let [rz, ry, rx] = roi;
    Tensor::from_data(TensorData::new(values, [1, 1, rz, ry, rx]), device)
}

/// The importance map as values, x fastest: 1 everywhere for [`Blend::Constant`]; for
/// [`Blend::Gaussian`] the product over axes of `exp(−t²/(2σ²))`, `t` the distance from the
/// window centre `(roi − 1)/2` and `σ = 0.125·roi`, then raised to at least
/// `max(minimum, 1e-3)` as MONAI does.
pub fn importance_values(roi: [usize; 3], blend: Blend) -> Vec<f32> {
    let voxels = roi.iter().product::<usize>();
    if blend == Blend::Constant {
        return vec![1.0; voxels];
    }
    let profiles: [Vec<f32>; 3] = std::array::from_fn(|axis| gaussian_profile(roi[axis]));
    let mut values = Vec::with_capacity(voxels);
    for &wz in &profiles[0] {
        for &wy in &profiles[1] {
            for &wx in &profiles[2] {
                values.push(wz * wy * wx);
            }
        }
    }
    let minimum = values.iter().copied().fold(f32::INFINITY, f32::min);
    let floor = minimum.max(MIN_IMPORTANCE as f32);
    for value in &mut values {
        *value = value.max(floor);
    }
    values
}

/// One axis of the Gaussian importance map.
fn gaussian_profile(size: usize) -> Vec<f32> {
    let sigma = size as f64 * GAUSSIAN_SIGMA_SCALE;
    let centre = (size as f64 - 1.0) / 2.0;
    (0..size)
        .map(|index| {
            let offset = index as f64 - centre;
            (offset * offset / (-2.0 * sigma * sigma)).exp() as f32
        })
        .collect()
}

fn product_u64(values: &[usize]) -> u64 {
    values
        .iter()
        .fold(1u64, |acc, &value| acc.saturating_mul(value as u64))
}
