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

/// A folder for one unit test under the system's temporary folder, removed when the test ends
/// unless it failed (then it stays for a look).
#[cfg(test)]
pub(crate) struct TestDir(std::path::PathBuf);

#[cfg(test)]
impl TestDir {
    /// An empty `brainmvp-<name>-<process id>`.
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("brainmvp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

#[cfg(test)]
impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
