//! The metrics log: one JSON object per line, `{"step":120,"kind":"train","loss":0.5,...}`.
//!
//! Each record is written with a single `write` call and no user-space buffer, so a run killed at
//! any moment leaves every logged line on disk and at most a partial last line, which
//! [`read_metrics`] skips. Resuming a run cuts the log back to the resumed step (atomically: temp
//! file + rename), so the steps replayed after the last checkpoint are not logged twice.

use anyhow::{bail, ensure, Context, Result};
use brainmvp_core::fs::write_atomic;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Key of the step number in every line.
pub const STEP_KEY: &str = "step";
/// Key of the record kind (`"train"`, `"val"`, ...) in every line.
pub const KIND_KEY: &str = "kind";
/// Kind given to lines that have no `kind` key.
pub const DEFAULT_KIND: &str = "train";
/// Largest metrics file read (a log of a million steps is far smaller).
pub const MAX_LOG_BYTES: u64 = 1 << 30;

/// One line of the metrics log.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRecord {
    /// Optimiser step the values belong to.
    pub step: u64,
    /// What was measured: `"train"`, `"val"`, ...
    pub kind: String,
    /// Named values (loss terms, learning rate, throughput). Non-finite values are stored as JSON
    /// `null` and read back as NaN.
    pub values: BTreeMap<String, f64>,
}

impl MetricRecord {
    /// A record of `kind` at `step` with the given named values.
    pub fn new(step: u64, kind: &str, values: &[(&str, f64)]) -> Self {
        Self {
            step,
            kind: kind.to_string(),
            values: values
                .iter()
                .map(|(name, value)| (name.to_string(), *value))
                .collect(),
        }
    }

    /// The record as one line of JSON (no newline). Fails on a value named `step` or `kind`.
    pub fn to_json_line(&self) -> Result<String> {
        let mut object = Map::new();
        object.insert(STEP_KEY.into(), Value::from(self.step));
        object.insert(KIND_KEY.into(), Value::from(self.kind.clone()));
        for (name, value) in &self.values {
            ensure!(
                name != STEP_KEY && name != KIND_KEY,
                "metric name {name:?} is reserved"
            );
            let json = Number::from_f64(*value).map_or(Value::Null, Value::Number);
            object.insert(name.clone(), json);
        }
        Ok(Value::Object(object).to_string())
    }

    /// Parse one line: an object with an unsigned integer `step`, an optional string `kind`
    /// (default [`DEFAULT_KIND`]); numbers become values, `null` becomes NaN, other fields are
    /// ignored.
    pub fn from_json_line(line: &str) -> Result<Self> {
        let Value::Object(object) = serde_json::from_str::<Value>(line)? else {
            bail!("not a JSON object");
        };
        let step = object
            .get(STEP_KEY)
            .and_then(Value::as_u64)
            .context("no unsigned integer \"step\"")?;
        let kind = match object.get(KIND_KEY) {
            None => DEFAULT_KIND.to_string(),
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => bail!("\"kind\" is not a string"),
        };
        let values = object
            .iter()
            .filter(|(name, _)| *name != STEP_KEY && *name != KIND_KEY)
            .filter_map(|(name, value)| match value {
                Value::Number(number) => number.as_f64().map(|v| (name.clone(), v)),
                Value::Null => Some((name.clone(), f64::NAN)),
                _ => None,
            })
            .collect();
        Ok(Self { step, kind, values })
    }
}

/// An open metrics log, appending one line per [`MetricsLog::log`].
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Open the log at `path` for appending.
    ///
    /// With `resume_from_step: None` the file is created (an existing one is emptied). With
    /// `Some(step)` the existing lines with a step `<= step` are kept (byte for byte; a truncated
    /// last line and later steps are dropped) by rewriting the file atomically, and new lines
    /// follow them; a missing file is created empty.
    pub fn open(path: &Path, resume_from_step: Option<u64>) -> Result<Self> {
        match resume_from_step {
            None => {
                File::create(path).with_context(|| format!("{}", path.display()))?;
            }
            Some(step) => truncate_after_step(path, step)?,
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("{}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `record` as one line, written with a single call (nothing is held back in memory).
    pub fn log(&mut self, record: &MetricRecord) -> Result<()> {
        let mut line = record
            .to_json_line()
            .with_context(|| format!("{}", self.path.display()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("{}", self.path.display()))
    }

    /// Append a record of `kind` at `step` with the given named values.
    pub fn log_values(&mut self, step: u64, kind: &str, values: &[(&str, f64)]) -> Result<()> {
        self.log(&MetricRecord::new(step, kind, values))
    }
}

/// Read a metrics log. A last line without its newline that does not parse (a run killed while
/// writing it) is skipped; any other line that does not parse is an error naming the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRecord>> {
    let bytes = read_log_bytes(path)?;
    Ok(parse_lines(&bytes, path)?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// Keep the lines of `path` with a step `<= step`, rewriting the file atomically.
fn truncate_after_step(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let bytes = read_log_bytes(path)?;
    let kept: Vec<&str> = parse_lines(&bytes, path)?
        .into_iter()
        .filter(|(_, record)| record.step <= step)
        .map(|(line, _)| line)
        .collect();
    write_atomic(path, |out| {
        kept.iter()
            .try_for_each(|line| out.write_all(line.as_bytes()).and(out.write_all(b"\n")))
    })?;
    Ok(())
}

/// The whole file, refusing one over [`MAX_LOG_BYTES`].
fn read_log_bytes(path: &Path) -> Result<Vec<u8>> {
    let name = || format!("{}", path.display());
    let mut file = File::open(path).with_context(name)?;
    let len = file.metadata().with_context(name)?.len();
    if len > MAX_LOG_BYTES {
        bail!("{}: {len} bytes is too large for a metrics log", name());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes).with_context(name)?;
    Ok(bytes)
}

/// The non-empty lines of a log with their records (see [`read_metrics`] for the rules).
fn parse_lines<'a>(bytes: &'a [u8], path: &Path) -> Result<Vec<(&'a str, MetricRecord)>> {
    let terminated = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = lines.len() - 1;
    let mut records = Vec::with_capacity(lines.len());
    for (index, raw) in lines.into_iter().enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = std::str::from_utf8(raw)
            .map_err(anyhow::Error::from)
            .and_then(|line| Ok((line, MetricRecord::from_json_line(line)?)));
        match parsed {
            Ok(entry) => records.push(entry),
            Err(_) if index == last && !terminated => {
                log::warn!("{}: skipping a truncated last line", path.display());
            }
            Err(err) => bail!("{}: line {}: {err}", path.display(), index + 1),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    fn temp_dir(name: &str) -> TestDir {
        TestDir::new(&format!("metrics-{name}"))
    }

    #[test]
    fn round_trip_keeps_steps_kinds_and_values() {
        let dir = temp_dir("round");
        let path = dir.join("metrics.jsonl");
        let mut log = MetricsLog::open(&path, None).unwrap();
        log.log_values(1, "train", &[("loss", 2.5), ("mse_a", 0.125)])
            .unwrap();
        log.log_values(2, "val", &[("loss", f64::NAN)]).unwrap();
        let records = read_metrics(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            MetricRecord::new(1, "train", &[("loss", 2.5), ("mse_a", 0.125)])
        );
        assert_eq!(records[1].step, 2);
        assert_eq!(records[1].kind, "val");
        assert!(records[1].values["loss"].is_nan());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn truncated_last_line_is_skipped_but_a_bad_middle_line_is_an_error() {
        let dir = temp_dir("trunc");
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":1,\"loss\":1.0}\n{\"step\":2,\"lo").unwrap();
        let records = read_metrics(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].kind, DEFAULT_KIND);
        assert_eq!(records[0].values["loss"], 1.0);

        std::fs::write(&path, "{\"step\":1}\nnot json\n{\"step\":3}\n").unwrap();
        let message = format!("{:#}", read_metrics(&path).unwrap_err());
        assert!(message.contains("metrics.jsonl"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        // A complete last line without its newline still counts.
        std::fs::write(&path, "{\"step\":1}\n{\"step\":2}").unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 2);
    }

    #[test]
    fn resume_drops_later_steps_and_the_partial_line_then_appends() {
        let dir = temp_dir("resume");
        let path = dir.join("metrics.jsonl");
        let mut log = MetricsLog::open(&path, None).unwrap();
        for step in 1..=5 {
            log.log_values(step, "train", &[("loss", step as f64)])
                .unwrap();
        }
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"step\":6,\"loss\":");
        std::fs::write(&path, &text).unwrap();

        let mut log = MetricsLog::open(&path, Some(3)).unwrap();
        log.log_values(4, "train", &[("loss", 40.0)]).unwrap();
        let records = read_metrics(&path).unwrap();
        let steps: Vec<u64> = records.iter().map(|r| r.step).collect();
        assert_eq!(steps, [1, 2, 3, 4]);
        assert_eq!(records[3].values["loss"], 40.0);
        assert!(!brainmvp_core::fs::temp_path(&path).exists());
    }

    #[test]
    fn fresh_open_empties_and_resume_of_a_missing_file_creates_it() {
        let dir = temp_dir("fresh");
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":9}\n").unwrap();
        MetricsLog::open(&path, None).unwrap();
        assert!(read_metrics(&path).unwrap().is_empty());
        let missing = dir.join("missing.jsonl");
        let _ = std::fs::remove_file(&missing);
        let mut log = MetricsLog::open(&missing, Some(10)).unwrap();
        log.log_values(11, "train", &[("loss", 0.5)]).unwrap();
        assert_eq!(read_metrics(&missing).unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_file_and_reserved_names_are_refused() {
        let dir = temp_dir("errors");
        let missing = dir.join("absent.jsonl");
        let message = format!("{:#}", read_metrics(&missing).unwrap_err());
        assert!(message.contains("absent.jsonl"), "{message}");
        let mut log = MetricsLog::open(&dir.join("m.jsonl"), None).unwrap();
        let err = log.log_values(1, "train", &[("step", 1.0)]).unwrap_err();
        assert!(format!("{err:#}").contains("reserved"));
        let bad = MetricRecord::from_json_line("{\"step\":-1}").unwrap_err();
        assert!(bad.to_string().contains("step"));
    }
}
