//! Training progress: a terminal progress bar (elapsed, steps/s, ETA, loss terms, cases/s) and a
//! greppable `log::info!` line every few steps:
//!
//! `step 120/1000 loss 0.1230 mse_a 0.0456 cases/s 3.20 steps/s 1.60 elapsed 1m15s eta 9m10s`
//!
//! The bar is drawn on stderr only when it is a terminal (indicatif hides it otherwise), so CI logs
//! get the periodic lines and no bar redraws. Log lines are printed with the bar suspended so the
//! two do not garble each other.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Bar redraws per second at most.
const REFRESH_HZ: u8 = 4;
/// About this many log lines per run by default.
const LOG_LINES_PER_RUN: u64 = 100;
/// Bar layout; `{steps_per_sec}` is ours (indicatif's `{per_sec}` has no unit name).
const TEMPLATE: &str =
    "[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {steps_per_sec} ETA {eta} {msg}";

/// Progress of a training run from `start_step` (a resumed run) to `total_steps`.
#[derive(Debug)]
pub struct TrainProgress {
    bar: ProgressBar,
    total_steps: u64,
    start_step: u64,
    started: Instant,
    log_every: u64,
}

impl TrainProgress {
    /// A bar on stderr at `start_step` of `total_steps`, logging about 100 lines per run (every
    /// 1, 2 or 5 × 10^k steps; see [`TrainProgress::with_log_every`]).
    pub fn new(total_steps: u64, start_step: u64) -> Self {
        let target = ProgressDrawTarget::stderr_with_hz(REFRESH_HZ);
        Self::with_draw_target(total_steps, start_step, target)
    }

    /// Log a line every `every` steps instead (0 counts as 1).
    pub fn with_log_every(mut self, every: u64) -> Self {
        self.log_every = every.max(1);
        self
    }

    fn with_draw_target(total_steps: u64, start_step: u64, target: ProgressDrawTarget) -> Self {
        let style = ProgressStyle::with_template(TEMPLATE)
            .expect("the template is valid")
            .with_key(
                "steps_per_sec",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{:.2} steps/s", state.per_sec());
                },
            );
        let bar = ProgressBar::with_draw_target(Some(total_steps), target)
            .with_style(style)
            .with_position(start_step.min(total_steps));
        bar.reset_eta();
        Self {
            bar,
            total_steps,
            start_step,
            started: Instant::now(),
            log_every: default_log_every(total_steps),
        }
    }

    /// Steps between two log lines.
    pub fn log_every(&self) -> u64 {
        self.log_every
    }

    /// Record that `step` is done with these loss terms (name, value; e.g. `("loss", 0.12)`) and
    /// throughput. Moves the bar and, on the first step of the run, every [`Self::log_every`]
    /// steps and on the last step, logs a status line at info level; returns that line if so.
    pub fn update(&self, step: u64, terms: &[(&str, f64)], cases_per_s: f64) -> Option<String> {
        self.bar.set_position(step.min(self.total_steps));
        self.bar
            .set_message(bar_message(terms, cases_per_s).to_string());
        let first = step == self.start_step + 1;
        if !(first || step % self.log_every == 0 || step == self.total_steps) {
            return None;
        }
        let line = status_line(
            step,
            self.total_steps,
            terms,
            cases_per_s,
            step.saturating_sub(self.start_step),
            self.started.elapsed(),
        );
        self.bar.suspend(|| log::info!("{line}"));
        Some(line)
    }

    /// Run `f` (e.g. other logging) with the bar cleared from the terminal.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Stop the bar, leaving its last state on the terminal.
    pub fn finish(&self) {
        self.bar.finish();
    }
}

/// About [`LOG_LINES_PER_RUN`] lines: the largest 1, 2 or 5 × 10^k at most `total / 100`.
fn default_log_every(total_steps: u64) -> u64 {
    let target = (total_steps / LOG_LINES_PER_RUN).max(1);
    let mut decade = 1u64;
    while decade.saturating_mul(10) <= target {
        decade *= 10;
    }
    [5, 2, 1]
        .into_iter()
        .map(|factor| factor * decade)
        .find(|&every| every <= target)
        .unwrap_or(decade)
}

/// The bar's message: `loss 0.1230 mse_a 0.0456 | 3.20 cases/s`.
fn bar_message(terms: &[(&str, f64)], cases_per_s: f64) -> String {
    let mut message = format_terms(terms);
    let _ = write!(message, " | {cases_per_s:.2} cases/s");
    message
}

/// `name value` pairs separated by spaces.
fn format_terms(terms: &[(&str, f64)]) -> String {
    let pairs: Vec<String> = terms
        .iter()
        .map(|(name, value)| format!("{name} {}", format_value(*value)))
        .collect();
    pairs.join(" ")
}

/// The periodic log line (see the module documentation); `steps_done` steps took `elapsed`.
pub fn status_line(
    step: u64,
    total_steps: u64,
    terms: &[(&str, f64)],
    cases_per_s: f64,
    steps_done: u64,
    elapsed: Duration,
) -> String {
    let mut line = format!("step {step}/{total_steps}");
    if !terms.is_empty() {
        let _ = write!(line, " {}", format_terms(terms));
    }
    let _ = write!(line, " cases/s {cases_per_s:.2}");
    let seconds = elapsed.as_secs_f64();
    if steps_done > 0 && seconds > 0.0 {
        let seconds_per_step = seconds / steps_done as f64;
        let remaining = total_steps.saturating_sub(step) as f64 * seconds_per_step;
        let _ = write!(
            line,
            " steps/s {:.2} elapsed {} eta {}",
            1.0 / seconds_per_step,
            format_duration(elapsed),
            format_duration(Duration::from_secs_f64(remaining))
        );
    }
    line
}

/// Four decimals for ordinary magnitudes, scientific notation for tiny or huge ones.
fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-3..1e4).contains(&magnitude) {
        format!("{value:.4}")
    } else {
        format!("{value:.3e}")
    }
}

/// `12s`, `3m05s`, `2h03m04s` (whole seconds).
fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds:02}s"),
        _ => format!("{hours}h{minutes:02}m{seconds:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(total: u64, start: u64) -> TrainProgress {
        TrainProgress::with_draw_target(total, start, ProgressDrawTarget::hidden())
    }

    #[test]
    fn status_line_has_terms_throughput_and_eta() {
        let terms = [("loss", 0.123), ("mse_a", 0.0456), ("cl", 2.5e-5)];
        let line = status_line(120, 1000, &terms, 3.2, 20, Duration::from_secs(10));
        // 20 steps in 10 s: 2 steps/s, 880 steps left: 440 s.
        assert_eq!(
            line,
            "step 120/1000 loss 0.1230 mse_a 0.0456 cl 2.500e-5 cases/s 3.20 \
             steps/s 2.00 elapsed 10s eta 7m20s"
        );
        let first = status_line(1, 10, &[], 0.0, 0, Duration::ZERO);
        assert_eq!(first, "step 1/10 cases/s 0.00");
    }

    #[test]
    fn durations_and_values_format_compactly() {
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_duration(Duration::from_secs(7384)), "2h03m04s");
        assert_eq!(format_value(0.0), "0.0000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(12345.0), "1.234e4");
        assert_eq!(
            bar_message(&[("loss", 1.5)], 4.0),
            "loss 1.5000 | 4.00 cases/s"
        );
    }

    #[test]
    fn default_interval_gives_about_a_hundred_round_lines() {
        assert_eq!(default_log_every(0), 1);
        assert_eq!(default_log_every(150), 1);
        assert_eq!(default_log_every(300), 2);
        assert_eq!(default_log_every(1000), 10);
        assert_eq!(default_log_every(1500), 10);
        assert_eq!(default_log_every(7000), 50);
        assert_eq!(default_log_every(100_000), 1000);
    }

    #[test]
    fn logs_the_first_step_every_interval_and_the_last_step() {
        let progress = hidden(25, 3).with_log_every(10);
        let logged: Vec<u64> = (4..=25)
            .filter(|&step| progress.update(step, &[("loss", 1.0)], 2.0).is_some())
            .collect();
        assert_eq!(logged, [4, 10, 20, 25]);
        assert_eq!(progress.bar.position(), 25);
        let line = progress.update(20, &[("loss", 0.5)], 2.0).unwrap();
        assert!(
            line.starts_with("step 20/25 loss 0.5000 cases/s 2.00"),
            "{line}"
        );
        progress.finish();
        assert!(progress.bar.is_finished());
        assert_eq!(hidden(10, 0).with_log_every(0).log_every(), 1);
    }
}
