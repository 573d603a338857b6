//! Classification fine-tuning (`brainmvp finetune --task classify`): one class per subject from
//! a CSV table, the UniFormer encoder (pre-trained or from scratch) with global average pooling
//! and a linear head, trained by the shared loop ([`crate::training`]) with cross-entropy on
//! random crops drawn class-balanced, validated on the centred crop of each validation subject
//! every `validation.every` steps keeping the best model (macro F1, then accuracy), and the best
//! model tested at the end (`out/test/classification.md`, `out/test/predictions.csv`).
//!
//! - [`table`]: the class table (CSV);
//! - [`setup`]: classes, split, network, class-balanced order;
//! - [`data`]: crops as tensors, predictions;
//! - [`metrics`]: accuracy, macro F1, AUC and the run's summary;
//! - [`folder`]: the classifier's model folder;
//! - [`run`]: the run itself.

pub mod data;
pub mod folder;
pub mod metrics;
pub mod run;
pub mod setup;
pub mod table;

pub use data::*;
pub use folder::*;
pub use metrics::*;
pub use run::*;
pub use setup::*;
pub use table::*;
