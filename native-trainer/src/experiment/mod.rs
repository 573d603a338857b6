//! `brainmvp experiment label-efficiency`: the paper's central claim on the synthetic cohort.
//! Pre-train once, then fine-tune from the pre-trained encoder and from scratch at several label
//! fractions with the same seeds, steps and test set; plus the pre-training ablations
//! (reconstruction only, + learnt templates, + contrastive = the full method) at one fraction.
//!
//! Every run writes `summary.json` when it finishes and is skipped when it exists, so a killed
//! experiment continues where it stopped. Results: `results.md`, `runs.csv`, `label-efficiency.png`.
//!
//! - [`config`]: the job file, the variants, one run's result;
//! - [`run`]: the runs;
//! - [`report`]: `results.md`, `runs.csv`, `cases.csv`, `label-efficiency.png`.

pub mod config;
pub mod report;
pub mod run;

pub use config::{LabelEfficiencyConfig, RunResult, Variant};
pub use run::run_label_efficiency;
