//! Block masking, the first BrainMVP proxy task: the crop is split into cubic blocks (8³ by
//! default), `floor(N·(1−r))` of the `N` blocks are kept, chosen uniformly at random, and every
//! voxel of the other blocks is replaced (by a modality template for view A, by another modality of
//! the same subject for view B).
//!
//! A fresh mask is drawn for every sample and every view: callers draw one [`BlockMask::random`]
//! per sample per view from their own [`Rng`] stream, so runs are reproducible from the seed.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Context named by the errors of this module.
const CONTEXT: &str = "block masking";

/// Largest crop (in voxels) a mask may cover; bigger sizes are refused before allocating.
pub const MAX_CROP_VOXELS: usize = 1 << 30;

crate::config! {
    /// Block-masking settings.
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct MaskConfig {
        /// Edge of a cubic block, in voxels (8 in BrainMVP).
        pub block_size: usize = 8,
        /// Fraction of blocks masked, in `[0, 1)`: 0.8 by default, the paper's 0.875 as an option.
        pub mask_ratio: f64 = 0.8,
    }
}

impl MaskConfig {
    /// The paper's setting: 8³ blocks, 87.5 % of them masked.
    pub fn paper() -> Self {
        Self {
            block_size: 8,
            mask_ratio: 0.875,
        }
    }

    /// Checks the block size (> 0) and the ratio (in `[0, 1)`).
    pub fn validate(&self) -> Result<()> {
        if self.block_size == 0 {
            return Err(Error::new(CONTEXT, "block size must be at least 1 voxel"));
        }
        if !(self.mask_ratio >= 0.0 && self.mask_ratio < 1.0) {
            return Err(Error::new(
                CONTEXT,
                format!("mask ratio {} is outside [0, 1)", self.mask_ratio),
            ));
        }
        Ok(())
    }

    /// Checks the config and that `crop_size` splits into whole blocks; returns the number of
    /// blocks along x, y, z.
    pub fn validate_crop(&self, crop_size: [usize; 3]) -> Result<[usize; 3]> {
        self.validate()?;
        let size_text = || format!("{}x{}x{}", crop_size[0], crop_size[1], crop_size[2]);
        if crop_size.contains(&0) {
            return Err(Error::new(
                CONTEXT,
                format!("crop {} is empty", size_text()),
            ));
        }
        if crop_size.iter().any(|&edge| edge % self.block_size != 0) {
            return Err(Error::new(
                CONTEXT,
                format!(
                    "crop {} is not divisible by the block size {}",
                    size_text(),
                    self.block_size
                ),
            ));
        }
        let voxels = crop_size
            .iter()
            .try_fold(1usize, |acc, &edge| acc.checked_mul(edge))
            .filter(|&voxels| voxels <= MAX_CROP_VOXELS);
        if voxels.is_none() {
            return Err(Error::new(
                CONTEXT,
                format!("crop {} exceeds {MAX_CROP_VOXELS} voxels", size_text()),
            ));
        }
        Ok(crop_size.map(|edge| edge / self.block_size))
    }

    /// Number of blocks kept out of `total_blocks`: `floor(N·(1−r))`.
    pub fn kept_blocks(&self, total_blocks: usize) -> usize {
        let kept = (total_blocks as f64 * (1.0 - self.mask_ratio)).floor() as usize;
        kept.min(total_blocks)
    }
}

/// Which blocks of one crop are kept (the others are masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMask {
    /// Crop size in voxels (x, y, z).
    pub crop_size: [usize; 3],
    /// Edge of a cubic block, in voxels.
    pub block_size: usize,
    /// One flag per block, blocks in x-fastest order: `true` = kept, `false` = masked.
    pub kept: Vec<bool>,
}

impl BlockMask {
    /// Draws a mask: exactly `floor(N·(1−r))` blocks kept, chosen uniformly at random.
    ///
    /// Draw one per sample per view from the caller's [`Rng`] stream.
    pub fn random(rng: &mut Rng, crop_size: [usize; 3], config: &MaskConfig) -> Result<Self> {
        let blocks = config.validate_crop(crop_size)?;
        let total_blocks = blocks.iter().product::<usize>();
        let kept_blocks = config.kept_blocks(total_blocks);
        let mut order: Vec<usize> = (0..total_blocks).collect();
        rng.shuffle(&mut order);
        let mut kept = vec![false; total_blocks];
        for &block in &order[..kept_blocks] {
            kept[block] = true;
        }
        Ok(Self {
            crop_size,
            block_size: config.block_size,
            kept,
        })
    }

    /// Number of blocks along x, y, z.
    pub fn blocks_per_axis(&self) -> [usize; 3] {
        self.crop_size.map(|edge| edge / self.block_size)
    }

    /// Number of voxels of the crop.
    pub fn crop_voxels(&self) -> usize {
        self.crop_size.iter().product()
    }

    /// Number of kept blocks.
    pub fn kept_count(&self) -> usize {
        self.kept.iter().filter(|&&kept| kept).count()
    }

    /// Number of masked blocks.
    pub fn masked_count(&self) -> usize {
        self.kept.len() - self.kept_count()
    }

    /// Whether voxel (x, y, z) lies in a masked block (`false` outside the crop).
    pub fn is_masked_voxel(&self, x: usize, y: usize, z: usize) -> bool {
        let [size_x, size_y, size_z] = self.crop_size;
        if x >= size_x || y >= size_y || z >= size_z {
            return false;
        }
        let [blocks_x, blocks_y, _] = self.blocks_per_axis();
        let (bx, by, bz) = (
            x / self.block_size,
            y / self.block_size,
            z / self.block_size,
        );
        !self.kept[bx + blocks_x * (by + blocks_y * bz)]
    }

    /// The voxel mask, x fastest: 1.0 for a masked voxel, 0.0 for a kept one.
    pub fn voxel_mask(&self) -> Vec<f32> {
        let [size_x, size_y, size_z] = self.crop_size;
        let [blocks_x, blocks_y, _] = self.blocks_per_axis();
        let mut mask = Vec::with_capacity(self.crop_voxels());
        for z in 0..size_z {
            for y in 0..size_y {
                let row = blocks_x * (y / self.block_size + blocks_y * (z / self.block_size));
                mask.extend((0..size_x).map(|x| {
                    if self.kept[row + x / self.block_size] {
                        0.0
                    } else {
                        1.0
                    }
                }));
            }
        }
        mask
    }

    /// Masked voxels take `replacement`'s value, kept voxels `image`'s (both x fastest, one value
    /// per crop voxel); an error if either length differs from the crop.
    pub fn apply(&self, image: &[f32], replacement: &[f32]) -> Result<Vec<f32>> {
        let crop_voxels = self.crop_voxels();
        for (name, len) in [("image", image.len()), ("replacement", replacement.len())] {
            if len != crop_voxels {
                return Err(Error::new(
                    CONTEXT,
                    format!("{name} has {len} voxels, the crop has {crop_voxels}"),
                ));
            }
        }
        let mask = self.voxel_mask();
        Ok(mask
            .iter()
            .zip(image.iter().zip(replacement))
            .map(
                |(&masked, (&kept_value, &new_value))| {
                    if masked > 0.5 {
                        new_value
                    } else {
                        kept_value
                    }
                },
            )
            .collect())
    }

    /// The voxel mask as a `[1, 1, z, y, x]` tensor (burn's D, H, W = z, y, x since the data is x
    /// fastest), 1.0 = masked, for `mask * replacement + (1 - mask) * image` on the device.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 5> {
        let [size_x, size_y, size_z] = self.crop_size;
        let data = TensorData::new(self.voxel_mask(), [1, 1, size_z, size_y, size_x]);
        Tensor::from_data(data, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_blocks_is_floor_of_the_kept_fraction() {
        assert_eq!(MaskConfig::default().kept_blocks(1728), 345);
        assert_eq!(MaskConfig::paper().kept_blocks(1728), 216);
        let half = MaskConfig {
            block_size: 8,
            mask_ratio: 0.5,
        };
        assert_eq!(half.kept_blocks(7), 3);
    }

    #[test]
    fn voxel_lookup_follows_x_fastest_block_order() {
        let mask = BlockMask {
            crop_size: [4, 2, 2],
            block_size: 2,
            kept: vec![true, false],
        };
        assert!(!mask.is_masked_voxel(1, 1, 1));
        assert!(mask.is_masked_voxel(2, 0, 1));
        assert!(!mask.is_masked_voxel(4, 0, 0));
        let expected: Vec<f32> = (0..16)
            .map(|i| if i % 4 >= 2 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(mask.voxel_mask(), expected);
    }

    #[test]
    fn apply_refuses_wrong_lengths() {
        let mask = BlockMask {
            crop_size: [2, 2, 2],
            block_size: 2,
            kept: vec![false],
        };
        assert!(mask.apply(&[0.0; 8], &[0.0; 7]).is_err());
        assert!(mask.apply(&[0.0; 9], &[0.0; 8]).is_err());
        assert_eq!(mask.apply(&[0.0; 8], &[1.0; 8]).unwrap(), vec![1.0; 8]);
    }
}
