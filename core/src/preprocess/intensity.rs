//! Per-modality percentile intensity scaling (the official
//! `ScaleIntensityRangePercentilesd(lower=5, upper=95, b_min=0, b_max=1, clip=True, channel_wise=True)`).
//!
//! As in MONAI, the percentiles are taken over **all** voxels of the volume, background included,
//! with linear interpolation between order statistics, computed as MONAI's `percentile` does
//! (`torch.quantile` up to a million values, `numpy.percentile` above). One deviation:
//! when both percentiles are equal MONAI returns `x - p_low` unclipped; here the result is still
//! clipped to [0, 1], so every output lies in [0, 1].

use crate::Volume;

/// MONAI's `percentile` hands at most this many values to `torch.quantile` (f32 arithmetic) and
/// more to `numpy.percentile` (f64): pytorch#64947.
pub const TORCH_QUANTILE_MAX_VALUES: usize = 1_000_000;

/// The `percent`-th percentile of `values` as MONAI's `percentile` computes it (linear
/// interpolation between order statistics), or `None` when `values` is empty. `percent` is
/// clamped to [0, 100]; NaN sorts last (`total_cmp`).
pub fn percentile(values: &[f32], percent: f64) -> Option<f32> {
    percentiles(values, &[percent]).map(|found| found[0])
}

/// Several percentiles of `values` at once (one copy of the data), in the order asked: up to
/// [`TORCH_QUANTILE_MAX_VALUES`] values as `torch.quantile` on f32, more as `numpy.percentile`,
/// step for step, so that the scaled images are MONAI's to the last bit.
pub fn percentiles(values: &[f32], percents: &[f64]) -> Option<Vec<f32>> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    let last = sorted.len() - 1;
    let torch = values.len() <= TORCH_QUANTILE_MAX_VALUES;
    let found = percents
        .iter()
        .map(|&percent| {
            let quantile = percent.clamp(0.0, 100.0) / 100.0;
            let rank = match torch {
                true => Rank::torch(quantile, last),
                false => Rank::numpy(quantile, last),
            };
            let (_, &mut low, above) = sorted.select_nth_unstable_by(rank.below, f32::total_cmp);
            let high = match rank.above > rank.below {
                true => above.iter().copied().min_by(f32::total_cmp).unwrap_or(low),
                false => low,
            };
            rank.interpolate(low, high)
        })
        .collect();
    Some(found)
}

/// Where a quantile falls between two order statistics, and how to interpolate there.
struct Rank {
    below: usize,
    above: usize,
    /// `torch.quantile`'s f32 weight, or numpy's f64 one.
    weight: Weight,
}

enum Weight {
    Torch(f32),
    Numpy(f64),
}

impl Rank {
    /// `torch.quantile(x, q)`: rank `q·(n−1)` in f32, weight `rank − ⌊rank⌋` in f32.
    fn torch(quantile: f64, last: usize) -> Self {
        let rank = quantile as f32 * last as f32;
        let below = (rank.floor() as usize).min(last);
        let above = (rank.ceil() as usize).min(last);
        let weight = Weight::Torch(rank - below as f32);
        Self {
            below,
            above,
            weight,
        }
    }

    /// `numpy.percentile` (method `linear`): virtual index `n·q + (1 − q) − 1` in f64.
    fn numpy(quantile: f64, last: usize) -> Self {
        let count = (last + 1) as f64;
        let virtual_index = (count * quantile + (1.0 - quantile)) - 1.0;
        let previous = virtual_index.floor().clamp(0.0, last as f64);
        let below = previous as usize;
        let above = (below + 1).min(last);
        let weight = Weight::Numpy(virtual_index - previous);
        Self {
            below,
            above,
            weight,
        }
    }

    /// `torch.lerp` in f32, or numpy's `_lerp` in f64 (its difference taken in f32) rounded to
    /// f32 as MONAI stores it; both count from the nearer end.
    fn interpolate(&self, low: f32, high: f32) -> f32 {
        match self.weight {
            Weight::Torch(weight) if weight.abs() < 0.5 => low + weight * (high - low),
            Weight::Torch(weight) => high - (high - low) * (1.0 - weight),
            Weight::Numpy(weight) => {
                let difference = (high - low) as f64;
                let value = match weight >= 0.5 {
                    true => high as f64 - difference * (1.0 - weight),
                    false => low as f64 + difference * weight,
                };
                value as f32
            }
        }
    }
}

/// Map `low` → 0 and `high` → 1 linearly, clipping to [0, 1] (`low == high`: `x - low`, clipped).
pub fn scale_range(volume: &Volume<f32>, low: f32, high: f32) -> Volume<f32> {
    let range = high - low;
    if range > 0.0 {
        let inverse = 1.0 / range as f64;
        volume.map(|value| (((value - low) as f64 * inverse) as f32).clamp(0.0, 1.0))
    } else {
        volume.map(|value| (value - low).clamp(0.0, 1.0))
    }
}

/// Scale `volume` so its `lower` percentile maps to 0 and its `upper` percentile to 1, clipped.
/// Returns the scaled volume and the two intensities used.
pub fn scale_percentiles(volume: &Volume<f32>, lower: f64, upper: f64) -> (Volume<f32>, [f32; 2]) {
    scale_percentiles_clipped(volume, lower, upper, true)
}

/// [`scale_percentiles`] with MONAI's `clip` choice: unclipped, values beyond the percentiles
/// keep going (below 0, above 1), so a lesion brighter than the upper percentile stays brighter
/// than the normal tissue clipped there (the official *downstream* transforms do not clip).
pub fn scale_percentiles_clipped(
    volume: &Volume<f32>,
    lower: f64,
    upper: f64,
    clip: bool,
) -> (Volume<f32>, [f32; 2]) {
    let bounds = percentiles(&volume.data, &[lower, upper]).unwrap_or_else(|| vec![0.0, 0.0]);
    let (low, high) = (bounds[0], bounds[1]);
    if clip {
        return (scale_range(volume, low, high), [low, high]);
    }
    // MONAI's `ScaleIntensityRange` on an f32 tensor: (x − low) / (high − low), each step in
    // f32; equal percentiles give x − low.
    let range = high - low;
    let scaled = match range != 0.0 {
        true => volume.map(|value| (value - low) / range),
        false => volume.map(|value| value - low),
    };
    (scaled, [low, high])
}
