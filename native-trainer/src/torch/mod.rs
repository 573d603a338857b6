//! PyTorch interoperability: official BrainMVP checkpoints in, PyTorch-loadable weights out.
//!
//! - [`read`]: a state dict from a `.pt`/`.pth` file (burn-store's PyTorch reader; nested under
//!   `state_dict`/`model`/`net`, with or without DDP's `module.` prefix) or a `.safetensors` file;
//! - [`import`]: that state dict into our UniUnet, pre-training network or encoder, every tensor
//!   mapped by name and checked by shape (the tables are `brainmvp_core::official::names`);
//! - [`write`]: our models written back under the official names and layouts (safetensors);
//! - [`convert`]: the `import` and `export --torch` jobs (files in, model folders out).

pub mod convert;
pub mod import;
pub mod read;
pub mod write;
