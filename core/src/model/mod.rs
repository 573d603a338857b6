//! Neural network models (backend-generic burn modules).
//!
//! - [`uniformer`]: the UniFormer-S 3D encoder used by BrainMVP, with its parts
//!   [`patch_embed`] (strided patch embedding), [`cblock`] (convolutional blocks of stages 1-2)
//!   and [`sablock`] (self-attention blocks of stages 3-4).

pub mod cblock;
pub mod patch_embed;
pub mod sablock;
pub mod uniformer;

pub use uniformer::{Uniformer, UniformerConfig};
