//! How much memory one sliding-window call of a [`UniUnet`](super::UniUnet) needs, from its
//! configuration and the window alone (nothing is allocated), and whether that fits a browser's
//! limits: the page asks before it segments, so a model too large for the tab is refused with a
//! message instead of crashing the worker.
//!
//! The estimate follows the shapes of the network. Its largest moment is the full-resolution
//! up-block of the decoder: the concatenation of the up-sampled map and the `proj1` skip
//! (`2·w0` channels) is alive while the residual block's convolution, normalisation and
//! projection outputs (`w0` channels each) are made, next to the input window. Everything at
//! stride 2 or coarser is at most an eighth of that per channel. [`ACTIVATION_CHANNELS_PER_W0`]
//! is checked against the peak a counting allocator sees during a forward pass on the CPU
//! backend (`core/tests/footprint.rs`: UniFormer-S 32³ and 64³, tiny 32³ and 64³, two windows).

use serde::{Deserialize, Serialize};

use super::uniunet::UniUnetConfig;

/// Bytes of one `f32`.
const F32_BYTES: u64 = 4;

/// Full-resolution `f32` channels alive at the decoder's peak besides the input, in units of
/// `w0` (the concatenation `2·w0`, then the residual block's outputs, with what the coarser
/// levels still hold). Counted on the CPU backend: 4.25 (UniFormer-S, 64³), 3.5 (tiny, 32³ and
/// 64³); 4.5 keeps the estimate at 1.0–1.3× the measured peak.
pub const ACTIVATION_CHANNELS_PER_W0: f64 = 4.5;

/// The memory of one model call on `batch` windows of `roi` voxels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowFootprint {
    /// Float values of the network (parameters and normalisation statistics).
    pub weight_values: u64,
    /// The weights in memory (`f32`; a `.bmvp` stored as f16 is widened when loaded).
    pub weight_bytes: u64,
    /// The largest single activation (one GPU buffer): the full-resolution concatenation.
    pub largest_tensor_bytes: u64,
    /// The activations alive at once at the peak of the forward pass.
    pub peak_activation_bytes: u64,
    /// Windows per call the figures are for.
    pub batch: usize,
    /// The window edge lengths in voxels.
    pub roi: [usize; 3],
}

impl WindowFootprint {
    /// The estimate for `config` on `batch` windows of `roi`, the network having `weight_values`
    /// float values (`Module::num_params` of the loaded model, or the bmvp's count).
    pub fn estimate(
        config: &UniUnetConfig,
        roi: [usize; 3],
        batch: usize,
        weight_values: u64,
    ) -> Self {
        let voxels = roi.iter().map(|&edge| edge as u64).product::<u64>() * batch as u64;
        let w0 = config.encoder.stem_width() as f64;
        let channels = config.in_channels as f64 + ACTIVATION_CHANNELS_PER_W0 * w0;
        let bytes_per_voxel = (channels * F32_BYTES as f64).ceil() as u64;
        Self {
            weight_values,
            weight_bytes: weight_values * F32_BYTES,
            largest_tensor_bytes: 2 * config.encoder.stem_width() as u64 * voxels * F32_BYTES,
            peak_activation_bytes: bytes_per_voxel * voxels,
            batch,
            roi,
        }
    }

    /// Weights and peak activations together.
    pub fn total_bytes(&self) -> u64 {
        self.weight_bytes + self.peak_activation_bytes
    }

    /// One line for people, e.g. `one 96×96×96 window needs about 1.4 GB (137 MB weights +
    /// 1.2 GB activations; largest buffer 453 MB)`.
    pub fn summary(&self) -> String {
        let [x, y, z] = self.roi;
        let windows = match self.batch {
            1 => format!("one {x}×{y}×{z} window needs"),
            n => format!("{n} {x}×{y}×{z} windows at once need"),
        };
        format!(
            "{windows} about {} ({} weights + {} activations; largest buffer {})",
            human_bytes(self.total_bytes()),
            human_bytes(self.weight_bytes),
            human_bytes(self.peak_activation_bytes),
            human_bytes(self.largest_tensor_bytes)
        )
    }
}

/// What a browser (or any device) allows: each `None` is no limit known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryLimits {
    /// The largest single buffer (WebGPU: the smaller of `maxBufferSize` and
    /// `maxStorageBufferBindingSize`).
    pub max_buffer_bytes: Option<u64>,
    /// All memory a job may use (wasm32: 4 GiB of linear memory, less what is already used).
    pub max_total_bytes: Option<u64>,
}

impl MemoryLimits {
    /// These limits with `used` bytes of the total already taken (by the case, the model file).
    pub fn after(self, used: u64) -> Self {
        Self {
            max_total_bytes: self.max_total_bytes.map(|max| max.saturating_sub(used)),
            ..self
        }
    }
}

/// The most windows per call (from `batch` down to 1) whose footprint fits `limits`, with the
/// footprint; `Err` names the figure that does not fit even one window, in words for the page.
pub fn fitting_batch(
    config: &UniUnetConfig,
    roi: [usize; 3],
    batch: usize,
    weight_values: u64,
    limits: &MemoryLimits,
) -> Result<WindowFootprint, String> {
    let fits = |footprint: &WindowFootprint| {
        limits
            .max_buffer_bytes
            .is_none_or(|max| footprint.largest_tensor_bytes <= max)
            && limits
                .max_total_bytes
                .is_none_or(|max| footprint.total_bytes() <= max)
    };
    for windows in (1..=batch.max(1)).rev() {
        let footprint = WindowFootprint::estimate(config, roi, windows, weight_values);
        if fits(&footprint) {
            return Ok(footprint);
        }
    }
    let one = WindowFootprint::estimate(config, roi, 1, weight_values);
    Err(refusal(&one, limits))
}

/// Why one window does not fit, naming the need and the limit.
fn refusal(one: &WindowFootprint, limits: &MemoryLimits) -> String {
    let [x, y, z] = one.roi;
    let window = format!("one {x}×{y}×{z} window");
    match limits.max_buffer_bytes {
        Some(max) if one.largest_tensor_bytes > max => format!(
            "{window} needs a {} buffer; this device allows {} per buffer",
            human_bytes(one.largest_tensor_bytes),
            human_bytes(max)
        ),
        _ => format!(
            "{window} needs about {} ({} weights + {} activations); this page can use {}",
            human_bytes(one.total_bytes()),
            human_bytes(one.weight_bytes),
            human_bytes(one.peak_activation_bytes),
            human_bytes(limits.max_total_bytes.unwrap_or(0))
        ),
    }
}

/// `1.4 GB`, `453 MB`, `12 kB` (decimal units, as file sizes are shown).
pub fn human_bytes(bytes: u64) -> String {
    let value = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.0} kB", value / 1e3),
        1_000_000..1_000_000_000 => format!("{:.0} MB", value / 1e6),
        _ => format!("{:.1} GB", value / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Architecture;

    fn official() -> UniUnetConfig {
        UniUnetConfig::new(4, 3).with_encoder(Architecture::UniformerS)
    }

    #[test]
    fn activations_scale_with_windows_and_voxels() {
        let one = WindowFootprint::estimate(&official(), [96; 3], 1, 34_327_433);
        let four = WindowFootprint::estimate(&official(), [96; 3], 4, 34_327_433);
        let half_edge = WindowFootprint::estimate(&official(), [48; 3], 1, 34_327_433);
        assert_eq!(four.peak_activation_bytes, 4 * one.peak_activation_bytes);
        assert_eq!(
            one.peak_activation_bytes,
            8 * half_edge.peak_activation_bytes
        );
        assert_eq!(one.weight_bytes, 4 * 34_327_433);
        // The concatenation of 2·64 channels at 96³ in f32.
        assert_eq!(one.largest_tensor_bytes, 128 * 96 * 96 * 96 * 4);
    }

    #[test]
    fn the_batch_shrinks_to_fit_and_one_window_too_many_is_refused() {
        let values = 34_327_433;
        let one = WindowFootprint::estimate(&official(), [96; 3], 1, values);
        let two = WindowFootprint::estimate(&official(), [96; 3], 2, values);
        let room = MemoryLimits {
            max_buffer_bytes: None,
            max_total_bytes: Some(two.total_bytes()),
        };
        assert_eq!(
            fitting_batch(&official(), [96; 3], 4, values, &room)
                .unwrap()
                .batch,
            2
        );
        let tight = MemoryLimits {
            max_buffer_bytes: None,
            max_total_bytes: Some(one.total_bytes() - 1),
        };
        let message = fitting_batch(&official(), [96; 3], 4, values, &tight).unwrap_err();
        assert!(
            message.starts_with("one 96×96×96 window needs about"),
            "{message}"
        );
        let narrow = MemoryLimits {
            max_buffer_bytes: Some(128 << 20),
            max_total_bytes: None,
        };
        let message = fitting_batch(&official(), [96; 3], 1, values, &narrow).unwrap_err();
        assert_eq!(
            message,
            "one 96×96×96 window needs a 453 MB buffer; this device allows 134 MB per buffer"
        );
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(68_658_370), "69 MB");
        assert_eq!(human_bytes(4_294_967_296), "4.3 GB");
    }
}
