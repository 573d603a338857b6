//! How the modality templates start, and how far they are from the cohort's anatomy.
//!
//! The official code starts every template at zero and min–max normalises it with eps 1e-9, so
//! the first gradients are scaled by ~1e9 and Adam moves every masked voxel by about the learning
//! rate per step: the templates only look like a brain after many epochs. [`TemplateInit::CohortMean`]
//! starts each template from the mean preprocessed image of its modality over the cohort (each
//! volume centred on the canvas, where [`ModalityTemplates::canvas_start`] places its crops), so
//! the templates and the template-filled channels carry anatomy from the first step.
//!
//! [`template_correlation`] measures the evolution: Pearson's r between a template and the
//! cohort mean over the canvas voxels that some subject covers.
//!
//! [`ModalityTemplates::canvas_start`]: super::templates::ModalityTemplates::canvas_start

use serde::{Deserialize, Serialize};

/// Where the templates start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TemplateInit {
    /// All zeros (the official code).
    #[default]
    Zero,
    /// The cohort's mean preprocessed image of each modality, centred on the canvas.
    CohortMean,
}

/// The cohort's mean image of each modality on the template canvas: `means[m]` is `[z, y, x]`
/// (x fastest), `coverage` counts the subjects covering each voxel (any modality).
#[derive(Debug, Clone, PartialEq)]
pub struct CohortMeans {
    pub canvas: [usize; 3],
    pub means: Vec<Vec<f32>>,
    pub coverage: Vec<u32>,
}

/// Canvas index of voxel `index` (per axis) of a volume of `volume_dims` centred on `canvas`, or
/// `None` when the voxel falls off the canvas (the rule of `canvas_start`, without clamping).
fn centred_position(
    canvas: [usize; 3],
    volume_dims: [usize; 3],
    axis: usize,
    index: usize,
) -> Option<usize> {
    let shift = (canvas[axis] as isize - volume_dims[axis] as isize).div_euclid(2);
    let position = shift + index as isize;
    (position >= 0 && position < canvas[axis] as isize).then_some(position as usize)
}

/// Accumulates volumes (x fastest) centred on the canvas into per-modality sums and counts.
#[derive(Debug, Clone)]
pub struct MeanAccumulator {
    canvas: [usize; 3],
    sums: Vec<Vec<f64>>,
    counts: Vec<Vec<u32>>,
}

impl MeanAccumulator {
    /// An empty accumulator for `modalities` templates on `canvas` (`[x, y, z]`).
    pub fn new(canvas: [usize; 3], modalities: usize) -> Self {
        let voxels = canvas.iter().product();
        Self {
            canvas,
            sums: vec![vec![0.0; voxels]; modalities],
            counts: vec![vec![0; voxels]; modalities],
        }
    }

    /// Adds one volume of template `modality` (`data` x fastest over `dims` `[x, y, z]`).
    pub fn add(&mut self, modality: usize, dims: [usize; 3], data: &[f32]) {
        let [cx, cy, _] = self.canvas;
        let (sums, counts) = (&mut self.sums[modality], &mut self.counts[modality]);
        for z in 0..dims[2] {
            let Some(tz) = centred_position(self.canvas, dims, 2, z) else {
                continue;
            };
            for y in 0..dims[1] {
                let Some(ty) = centred_position(self.canvas, dims, 1, y) else {
                    continue;
                };
                let row = (z * dims[1] + y) * dims[0];
                for x in 0..dims[0] {
                    let Some(tx) = centred_position(self.canvas, dims, 0, x) else {
                        continue;
                    };
                    let target = (tz * cy + ty) * cx + tx;
                    sums[target] += data[row + x] as f64;
                    counts[target] += 1;
                }
            }
        }
    }

    /// The means (0 where no volume of that modality reaches) and the coverage.
    pub fn finish(self) -> CohortMeans {
        let voxels = self.canvas.iter().product::<usize>();
        let mut coverage = vec![0u32; voxels];
        let means = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(sums, counts)| {
                sums.iter()
                    .zip(counts)
                    .zip(coverage.iter_mut())
                    .map(|((&sum, &count), covered)| {
                        *covered = (*covered).max(count);
                        match count {
                            0 => 0.0,
                            _ => (sum / count as f64) as f32,
                        }
                    })
                    .collect()
            })
            .collect();
        CohortMeans {
            canvas: self.canvas,
            means,
            coverage,
        }
    }
}

/// Pearson's r between `template` and `mean` over the voxels where `coverage > 0` (0 when
/// either is constant there).
pub fn template_correlation(template: &[f32], mean: &[f32], coverage: &[u32]) -> f64 {
    let pairs = || {
        template
            .iter()
            .zip(mean)
            .zip(coverage)
            .filter(|(_, &covered)| covered > 0)
            .map(|((&a, &b), _)| (a as f64, b as f64))
    };
    let count = pairs().count().max(1) as f64;
    let (sum_a, sum_b) = pairs().fold((0.0, 0.0), |(sa, sb), (a, b)| (sa + a, sb + b));
    let (mean_a, mean_b) = (sum_a / count, sum_b / count);
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (a, b) in pairs() {
        cov += (a - mean_a) * (b - mean_b);
        var_a += (a - mean_a) * (a - mean_a);
        var_b += (b - mean_b) * (b - mean_b);
    }
    match var_a > 0.0 && var_b > 0.0 {
        true => cov / (var_a * var_b).sqrt(),
        false => 0.0,
    }
}

#[cfg(feature = "fs")]
mod from_cache {
    use super::{CohortMeans, MeanAccumulator};
    use crate::cache::CacheReader;
    use crate::error::Result;
    use crate::pretext::templates::TemplateConfig;

    /// The mean image of each template modality over at most `max_subjects` subjects spread
    /// evenly over the cache (all of them when the cache is smaller), centred on the canvas.
    pub fn cohort_means(
        reader: &CacheReader,
        config: &TemplateConfig,
        max_subjects: usize,
    ) -> Result<CohortMeans> {
        config.validate()?;
        let subjects = reader.len();
        let taken = subjects.min(max_subjects.max(1));
        let mut accumulator = MeanAccumulator::new(config.canvas, config.modalities.len());
        for pick in 0..taken {
            let subject = pick * subjects / taken;
            let entry = reader.subject(subject)?;
            for (index, &modality) in config.modalities.iter().enumerate() {
                if entry.images.contains_key(&modality) {
                    let volume = reader.read_volume(subject, modality)?;
                    accumulator.add(index, volume.dims, &volume.data);
                }
            }
        }
        Ok(accumulator.finish())
    }
}

#[cfg(feature = "fs")]
pub use from_cache::cohort_means;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_lands_centred_and_means_average_overlaps() {
        // Canvas 4×3×2, volume 2×1×2: shifts (1, 1, 0).
        let mut acc = MeanAccumulator::new([4, 3, 2], 1);
        acc.add(0, [2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        acc.add(0, [2, 1, 2], &[3.0, 4.0, 5.0, 6.0]);
        let means = acc.finish();
        let at = |x: usize, y: usize, z: usize| means.means[0][(z * 3 + y) * 4 + x];
        assert_eq!(at(1, 1, 0), 2.0);
        assert_eq!(at(2, 1, 0), 3.0);
        assert_eq!(at(1, 1, 1), 4.0);
        assert_eq!(at(2, 1, 1), 5.0);
        assert_eq!(at(0, 0, 0), 0.0);
        assert_eq!(means.coverage.iter().filter(|&&c| c == 2).count(), 4);
        assert_eq!(means.coverage.iter().sum::<u32>(), 8);
    }

    #[test]
    fn a_volume_larger_than_the_canvas_keeps_its_centre() {
        // Volume 5 wide on a canvas 3 wide: shift −1, voxels 1..4 land on 0..3.
        let mut acc = MeanAccumulator::new([3, 1, 1], 1);
        acc.add(0, [5, 1, 1], &[10.0, 11.0, 12.0, 13.0, 14.0]);
        assert_eq!(acc.finish().means[0], vec![11.0, 12.0, 13.0]);
    }

    #[test]
    fn correlation_is_one_for_an_affine_copy_and_ignores_uncovered_voxels() {
        let mean = [0.0, 1.0, 2.0, 3.0, 100.0];
        let coverage = [1, 1, 1, 1, 0];
        let scaled: Vec<f32> = mean.iter().map(|v| 2.0 * v + 1.0).collect();
        let mut outside = scaled.clone();
        outside[4] = -50.0;
        assert!((template_correlation(&scaled, &mean, &coverage) - 1.0).abs() < 1e-12);
        assert!((template_correlation(&outside, &mean, &coverage) - 1.0).abs() < 1e-12);
        let flipped: Vec<f32> = mean.iter().map(|v| -v).collect();
        assert!((template_correlation(&flipped, &mean, &coverage) + 1.0).abs() < 1e-12);
        assert_eq!(template_correlation(&[0.0; 5], &mean, &coverage), 0.0);
    }
}
