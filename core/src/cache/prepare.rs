//! Writing a cache: preprocess subjects in parallel, one file per subject and modality, a per-subject
//! record after its volumes, the manifest last. Re-running skips subjects that are already complete.

use super::files::{self, file_stem, SUBJECT_RECORD_SUFFIX};
use super::manifest::{CacheDtype, FailedSubject, Manifest, SubjectEntry, CACHE_MANIFEST_FILE};
use crate::preprocess::PreprocessedSubject;
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What happened to one subject during `prepare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectOutcome {
    /// Preprocessed and written.
    Written,
    /// Already complete in the cache from an earlier run with the same configuration.
    Skipped,
    /// Preprocessing or writing failed; the one-line error. The subject is left out.
    Failed(String),
}

/// Progress report, sent once per finished subject (from worker threads, in completion order).
#[derive(Debug, Clone)]
pub struct PrepareProgress {
    /// Subjects finished so far (this one included).
    pub done: usize,
    pub total: usize,
    pub subject_id: String,
    pub outcome: SubjectOutcome,
}

/// How to write the cache (independent of how subjects are preprocessed).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    pub dtype: CacheDtype,
    /// The full configuration, stored in the manifest and in each subject record; a subject written
    /// under a different configuration is redone on resume.
    pub config: serde_json::Value,
}

/// Per-subject record `<stem>.subject.json`, written after the subject's volumes.
#[derive(Debug, Serialize, Deserialize)]
struct SubjectRecord {
    config: serde_json::Value,
    entry: SubjectEntry,
}

/// Preprocess (with `preprocess(i)`) and write subjects `ids[i]` into `out`, in parallel on the current
/// rayon pool, then write `manifest.json`. Subjects whose preprocessing fails are logged and left out;
/// the call fails only if no subject succeeds, or on an error about `out` itself.
pub fn prepare_subjects<F>(
    ids: &[String],
    out: &Path,
    options: &WriteOptions,
    preprocess: F,
    progress: &(dyn Fn(PrepareProgress) + Sync),
) -> Result<Manifest>
where
    F: Fn(usize) -> Result<PreprocessedSubject> + Sync,
{
    let out_name = out.display().to_string();
    if ids.is_empty() {
        return Err(Error::new(out_name, "no subjects to prepare"));
    }
    check_unique_stems(ids).map_err(|cause| Error::new(&out_name, cause))?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(&out_name, e))?;
    // A manifest only ever describes a finished run: drop the old one before touching any file.
    let manifest_path = out.join(CACHE_MANIFEST_FILE);
    match std::fs::remove_file(&manifest_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(manifest_path.display(), e))
        }
        _ => {}
    }
    crate::fs::remove_temp_files(out)?;

    let done = AtomicUsize::new(0);
    let results: Vec<Result<SubjectEntry>> = (0..ids.len())
        .into_par_iter()
        .map(|index| {
            let id = &ids[index];
            let (result, outcome) = match load_complete(out, id, options) {
                Some(entry) => (Ok(entry), SubjectOutcome::Skipped),
                None => {
                    let result =
                        preprocess(index).and_then(|s| write_subject(out, id, &s, options));
                    let outcome = match &result {
                        Ok(_) => SubjectOutcome::Written,
                        Err(err) => {
                            log::warn!("subject {id} left out: {err}");
                            SubjectOutcome::Failed(err.to_string())
                        }
                    };
                    (result, outcome)
                }
            };
            let done = done.fetch_add(1, Ordering::SeqCst) + 1;
            let subject_id = id.clone();
            progress(PrepareProgress {
                done,
                total: ids.len(),
                subject_id,
                outcome,
            });
            result
        })
        .collect();
    finish(out, ids, options, results)
}

/// Collect entries and failures, write the manifest; all-failed is an error.
fn finish(
    out: &Path,
    ids: &[String],
    options: &WriteOptions,
    results: Vec<Result<SubjectEntry>>,
) -> Result<Manifest> {
    let mut entries = Vec::new();
    let mut failures = Vec::new();
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(entry) => entries.push(entry),
            Err(err) => failures.push(FailedSubject {
                id: id.clone(),
                error: err.to_string(),
            }),
        }
    }
    if entries.is_empty() {
        let first = failures
            .first()
            .map(|f| f.error.clone())
            .unwrap_or_default();
        let msg = format!(
            "all {} subjects failed to preprocess; first error: {first}",
            ids.len()
        );
        return Err(Error::new(out.display().to_string(), msg));
    }
    let manifest = Manifest::new(options.config.clone(), entries, failures);
    let json = manifest.to_json();
    crate::fs::write_atomic(&out.join(CACHE_MANIFEST_FILE), |w| {
        w.write_all(json.as_bytes())
    })?;
    Ok(manifest)
}

/// Subject ids must map to distinct file stems.
fn check_unique_stems(ids: &[String]) -> std::result::Result<(), String> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(file_stem(id)) {
            return Err(format!("two subjects share the file name stem of '{id}'"));
        }
    }
    Ok(())
}

/// The entry of `id` if an earlier run finished it with the same configuration and its files are
/// all there with the right sizes.
fn load_complete(out: &Path, id: &str, options: &WriteOptions) -> Option<SubjectEntry> {
    let record_path = out.join(format!("{}{SUBJECT_RECORD_SUFFIX}", file_stem(id)));
    let text = std::fs::read_to_string(record_path).ok()?;
    let record: SubjectRecord = serde_json::from_str(&text).ok()?;
    let entry = record.entry;
    let same = record.config == options.config && entry.dtype == options.dtype && entry.id == id;
    let files_ok = entry.files().iter().all(|(file, size)| {
        std::fs::metadata(out.join(file)).is_ok_and(|m| m.is_file() && m.len() == *size)
    });
    (same && files_ok && super::manifest::check_entry(&entry).is_ok()).then_some(entry)
}

/// Write one subject's volumes, then its record; returns its manifest entry.
fn write_subject(
    out: &Path,
    id: &str,
    subject: &PreprocessedSubject,
    options: &WriteOptions,
) -> Result<SubjectEntry> {
    let first = subject
        .images
        .first()
        .ok_or_else(|| Error::new(id, "no image after preprocessing"))?;
    let (dims, affine) = (first.1.dims, first.1.affine);
    check_grids(id, subject, dims)?;
    let stem = file_stem(id);
    let mut images = BTreeMap::new();
    for (modality, volume) in &subject.images {
        let name = format!("{stem}_{modality}.{}", options.dtype.extension());
        if images.insert(*modality, name.clone()).is_some() {
            return Err(Error::new(id, format!("modality {modality} given twice")));
        }
        files::write_image(&out.join(&name), &volume.data, options.dtype)?;
    }
    let label = match &subject.label {
        Some(volume) => {
            let name = format!("{stem}_seg.u8");
            files::write_label(&out.join(&name), &volume.data)?;
            Some(name)
        }
        None => None,
    };
    let entry = SubjectEntry {
        id: id.to_string(),
        dims,
        spacing: first.1.spacing(),
        affine,
        crop: subject.record.crop,
        record: subject.record.clone(),
        dtype: options.dtype,
        images,
        missing: Vec::new(),
        label,
    };
    super::manifest::check_entry(&entry).map_err(|cause| Error::new(id, cause))?;
    let record = SubjectRecord {
        config: options.config.clone(),
        entry,
    };
    let json = serde_json::to_string_pretty(&record).unwrap_or_default();
    let record_path = out.join(format!("{stem}{SUBJECT_RECORD_SUFFIX}"));
    crate::fs::write_atomic(&record_path, |w| w.write_all(json.as_bytes()))?;
    Ok(record.entry)
}

/// Every image and the label on the same grid, data lengths matching it.
fn check_grids(id: &str, subject: &PreprocessedSubject, dims: [usize; 3]) -> Result<()> {
    let voxels: usize = dims.iter().product();
    let images = subject
        .images
        .iter()
        .map(|(m, v)| (m.name(), v.dims, v.data.len()));
    let label = subject
        .label
        .iter()
        .map(|v| ("label", v.dims, v.data.len()));
    for (what, grid, len) in images.chain(label) {
        if grid != dims || len != voxels {
            let msg = format!("{what} grid {grid:?} ({len} values) differs from {dims:?}");
            return Err(Error::new(id, msg));
        }
    }
    Ok(())
}
