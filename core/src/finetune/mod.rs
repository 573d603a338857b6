//! Fine-tuning on labelled data, what users pre-train for (backend-generic, wasm32-clean).
//!
//! - [`transfer`]: loading a pre-trained encoder into a downstream model (the first patch
//!   embedding re-initialised when the channel count differs), with a report;
//! - [`cutmix`]: template channel cut-mix;
//! - [`few_shot`]: fine-tuning on a few labelled cases in memory (the browser's fine-tuning);
//! - [`split`]: seeded train/validation/test splits and nested label fractions.
//!
//! What the task's labels mean is [`crate::labels`]; the exported templates are
//! [`crate::template_bank`]; segmenting a case with the fine-tuned model is [`crate::inference`];
//! the model's one-file form is [`crate::bmvp`].

pub mod cutmix;
pub mod few_shot;
pub mod split;
pub mod transfer;
