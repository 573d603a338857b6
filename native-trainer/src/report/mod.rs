//! Run reports for training: a JSON-lines metrics log, PNG plots of its curves, and a progress bar
//! with a periodic greppable log line.
//!
//! - [`metrics`]: [`MetricsLog`] appends one JSON object per line (`{"step":…,"kind":…,<name>:<value>}`),
//!   survives a kill at any moment and is cut back to the resumed step on `--resume`;
//!   [`read_metrics`] reads it back.
//! - [`plot`]: [`plot_curves`] and [`plot_metrics`] write 800×500 PNG line plots atomically, drawn
//!   with an embedded font (no system fonts or libraries needed).
//! - [`progress`]: [`TrainProgress`], a terminal progress bar (hidden when stderr is not a terminal)
//!   plus a `log::info!` line every few steps.

pub mod metrics;
pub mod plot;
pub mod progress;

pub use metrics::{read_metrics, MetricRecord, MetricsLog};
pub use plot::{plot_curves, plot_metrics, PLOT_HEIGHT, PLOT_WIDTH};
pub use progress::TrainProgress;
