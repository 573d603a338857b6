//! The GPU kernels as burn operations: the calls the generic code makes, routed to a GPU
//! backend's kernels, and their backward passes in the autodiff graph.

mod adamw;
mod conv;
mod gelu;
mod norm;

pub use adamw::{adamw_step, DeclinedStep};
pub use conv::conv;
pub use gelu::gelu;
pub use norm::{batch_norm_training, layer_norm};
