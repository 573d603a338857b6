//! Neural network models (backend-generic burn modules).
//!
//! - [`architecture`]: the backbone named in configs, model folders and on the command line.
//! - [`uniformer`]: the UniFormer-S 3D encoder used by BrainMVP, with its parts
//!   [`patch_embed`] (strided patch embedding), [`cblock`] (convolutional blocks of stages 1-2)
//!   and [`sablock`] (self-attention blocks of stages 3-4).
//! - [`uniunet`]: the UniUnet segmentation model (UniFormer encoder + UNETR-style decoder).
//! - [`unet3d`]: the UNet3D encoder, BrainMVP's second backbone (residual GroupNorm blocks).
//! - [`decoder`]: the pre-training reconstruction decoders ([`PretrainDecoder`] after the
//!   UniFormer, [`UnetDecoder`] after the UNet3D).

pub mod architecture;
pub mod batch_norm;
pub mod cblock;
pub mod classifier;
pub mod decoder;
pub mod footprint;
pub mod patch_embed;
pub mod sablock;
pub mod unet3d;
pub mod uniformer;
pub mod uniunet;
pub mod weight_init;

pub use architecture::Architecture;
pub use decoder::{PretrainDecoder, PretrainDecoderConfig, UnetDecoder, UnetDecoderConfig};
pub use unet3d::{Unet3d, Unet3dConfig};
pub use uniformer::{Uniformer, UniformerConfig};
pub use uniunet::{UniUnet, UniUnetConfig};

/// The shape check every encoder starts with: `[N, C, D, H, W]` with `C == in_channels`, `N > 0`
/// and `D, H, W` positive multiples of `stride`; `context` names the model in the error.
pub fn check_channels_and_stride(
    context: &str,
    dims: [usize; 5],
    in_channels: usize,
    stride: usize,
) -> crate::Result<()> {
    let [batch, channels, depth, height, width] = dims;
    if channels != in_channels {
        return Err(crate::Error::new(
            context,
            format!("{channels} channels, the model expects {in_channels}"),
        ));
    }
    let spatial_ok = [depth, height, width]
        .iter()
        .all(|&size| size != 0 && size % stride == 0);
    if batch == 0 || !spatial_ok {
        return Err(crate::Error::new(
            context,
            format!(
                "shape {dims:?}: batch must be positive and D, H, W positive multiples of {stride}"
            ),
        ));
    }
    Ok(())
}
