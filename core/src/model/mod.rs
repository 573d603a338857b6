//! Neural network models (backend-generic burn modules).
//!
//! - [`uniformer`]: the UniFormer-S 3D encoder used by BrainMVP, with its parts
//!   [`patch_embed`] (strided patch embedding), [`cblock`] (convolutional blocks of stages 1-2)
//!   and [`sablock`] (self-attention blocks of stages 3-4).
//! - [`unet3d`]: the UNet3D encoder, BrainMVP's second backbone (residual GroupNorm blocks).
//! - [`decoder`]: the pre-training reconstruction decoders ([`PretrainDecoder`] after the
//!   UniFormer, [`UnetDecoder`] after the UNet3D).

pub mod cblock;
pub mod decoder;
pub mod init;
pub mod patch_embed;
pub mod sablock;
pub mod unet3d;
pub mod uniformer;

pub use decoder::{PretrainDecoder, PretrainDecoderConfig, UnetDecoder, UnetDecoderConfig};
pub use unet3d::{Unet3d, Unet3dConfig};
pub use uniformer::{Uniformer, UniformerConfig};
