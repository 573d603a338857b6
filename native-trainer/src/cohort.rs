//! Cohort jobs with progress bars, shared by their verbs and by `demo`: writing a synthetic
//! cohort (`brainmvp synth`) and preparing a cohort folder into the training cache
//! (`brainmvp prepare`, the configuration saved beside the cache).

use anyhow::Context;
use brainmvp_core::cache::{prepare_cohort, Manifest, PrepareConfig, SubjectOutcome};
use brainmvp_core::cohort::discover;
use brainmvp_core::synth::writer::SubjectRecord;
use brainmvp_core::synth::{self, SynthConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// File beside the cache holding the configuration used (re-usable with `--config`).
const CONFIG_FILE: &str = "prepare-config.toml";

/// Print the config, then write the cohort into `out` with a progress bar (shared with `demo`).
pub fn synthesise(config: &SynthConfig, out: &Path) -> anyhow::Result<Vec<SubjectRecord>> {
    config.validate()?;
    println!("synth config: {}", serde_json::to_string(config)?);
    let (_, shared) = synth::load_shared(config)?;
    let bar = ProgressBar::new(config.subjects as u64);
    bar.set_style(ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} subjects ({elapsed}, eta {eta})",
    )?);
    bar.set_prefix("synth");
    let records = synth::write_cohort_with(config, &shared, out, |_| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(records)
}

/// Print the config, discover the cohort in `data_dir` and prepare it into `out` with a progress
/// bar; saves the config beside the cache and prints a summary (shared with `demo`).
pub fn prepare(
    data_dir: &Path,
    out: &Path,
    config: &PrepareConfig,
    threads: Option<usize>,
) -> anyhow::Result<Manifest> {
    let config_toml = toml::to_string_pretty(config).context("printing the configuration")?;
    println!("configuration:\n{config_toml}");
    let cohort = discover(data_dir)?;
    let modality_names: Vec<&str> = cohort.modalities().iter().map(|m| m.name()).collect();
    println!(
        "cohort {}: {} subjects, modalities {}",
        data_dir.display(),
        cohort.subjects.len(),
        modality_names.join(" ")
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("starting the worker threads")?;
    let bar = ProgressBar::new(cohort.subjects.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40.cyan/blue} {pos}/{len} subjects  {elapsed_precise}  ETA {eta}  {msg}",
        )
        .context("progress bar template")?,
    );
    let skipped = AtomicUsize::new(0);
    let started = Instant::now();
    let result = pool.install(|| {
        prepare_cohort(&cohort, out, config, &|progress| {
            if progress.outcome == SubjectOutcome::Skipped {
                skipped.fetch_add(1, Ordering::Relaxed);
            }
            bar.set_position(progress.done as u64);
            bar.set_message(progress.subject_id);
        })
    });
    bar.finish_and_clear();
    let manifest = result?;
    let config_path = out.join(CONFIG_FILE);
    brainmvp_core::fs::write_atomic(&config_path, |w| w.write_all(config_toml.as_bytes()))?;
    let seconds = started.elapsed().as_secs_f64();
    print_summary(&manifest, out, skipped.into_inner(), seconds);
    Ok(manifest)
}

fn print_summary(manifest: &Manifest, out: &Path, skipped: usize, seconds: f64) {
    let subjects = manifest.subjects.len();
    let bytes: u64 = manifest
        .subjects
        .iter()
        .flat_map(|s| s.files())
        .map(|(_, size)| size)
        .sum();
    let images: usize = manifest.subjects.iter().map(|s| s.images.len()).sum();
    let labels = manifest
        .subjects
        .iter()
        .filter(|s| s.label.is_some())
        .count();
    let names: Vec<&str> = manifest.modalities.iter().map(|m| m.name()).collect();
    println!(
        "cache {}: {subjects} subjects ({} prepared, {skipped} already done), {images} images, {labels} label maps",
        out.display(),
        subjects - skipped.min(subjects),
    );
    println!("modalities: {}", names.join(" "));
    for modality in &manifest.modalities {
        let missing = manifest
            .subjects
            .iter()
            .filter(|s| s.missing.contains(modality))
            .count();
        if missing > 0 {
            println!("  {modality} missing in {missing} subject(s)");
        }
    }
    println!("failures: {}", manifest.failures.len());
    for failure in &manifest.failures {
        println!("  {}: {}", failure.id, failure.error);
    }
    println!("size on disk: {:.1} MB; {seconds:.1} s", bytes as f64 / 1e6);
}
