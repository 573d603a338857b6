//! The official BrainMVP PyTorch code (shaohao011/BrainMVP) seen from our models: the state-dict
//! name of each of our tensors ([`names`]) and the axis conventions between the two
//! ([`layout`]). Reading and writing the files (PyTorch checkpoints, safetensors) is the
//! trainer's; this module is pure and builds for the browser too.

pub mod layout;
pub mod names;

pub use layout::Transform;
pub use names::TensorPair;
