//! Per-modality percentile intensity scaling (the official
//! `ScaleIntensityRangePercentilesd(lower=5, upper=95, b_min=0, b_max=1, clip=True, channel_wise=True)`).
//!
//! As in MONAI, the percentiles are taken over **all** voxels of the (cropped) volume, background
//! included, with numpy's default linear interpolation between order statistics. One deviation:
//! when both percentiles are equal MONAI returns `x - p_low` unclipped; here the result is still
//! clipped to [0, 1], so every output lies in [0, 1].

use crate::Volume;

/// The `percent`-th percentile of `values` (numpy's `percentile`, linear interpolation), or `None`
/// when `values` is empty. `percent` is clamped to [0, 100]; NaN sorts last (`total_cmp`).
pub fn percentile(values: &[f32], percent: f64) -> Option<f32> {
    percentiles(values, &[percent]).map(|found| found[0])
}

/// Several percentiles of `values` at once (one copy of the data), in the order asked.
pub fn percentiles(values: &[f32], percents: &[f64]) -> Option<Vec<f32>> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    let last = sorted.len() - 1;
    let found = percents
        .iter()
        .map(|&percent| {
            let rank = percent.clamp(0.0, 100.0) / 100.0 * last as f64;
            let below = (rank.floor() as usize).min(last);
            let fraction = rank - below as f64;
            let (_, &mut low, above) = sorted.select_nth_unstable_by(below, f32::total_cmp);
            let high = if fraction > 0.0 {
                above.iter().copied().min_by(f32::total_cmp).unwrap_or(low)
            } else {
                low
            };
            (low as f64 + (high as f64 - low as f64) * fraction) as f32
        })
        .collect();
    Some(found)
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
    let range = high - low;
    let inverse = if range > 0.0 { 1.0 / range as f64 } else { 1.0 };
    let scaled = volume.map(|value| ((value - low) as f64 * inverse) as f32);
    (scaled, [low, high])
}
