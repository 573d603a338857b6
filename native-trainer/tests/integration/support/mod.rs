//! Helpers shared by the test modules: running the `brainmvp` binary, scratch folders, the
//! shared MRI, and a synthetic cohort prepared into a cache.

pub mod golden;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// The `brainmvp` binary of this build, logging warnings only.
pub fn brainmvp() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brainmvp"));
    command.env("RUST_LOG", "warn");
    command
}

/// Run `brainmvp` with `args` and return what it printed and its exit status.
pub fn brainmvp_output(args: &[&str]) -> Output {
    run(brainmvp().args(args))
}

/// Run a command to its end.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("the brainmvp binary runs")
}

/// Run a command that must succeed (its standard error is the failure message).
pub fn run_ok(command: &mut Command) -> Output {
    let output = run(command);
    assert!(output.status.success(), "{}", text(&output.stderr));
    output
}

/// Bytes printed by a command, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What every scratch folder's name starts with, before the process id.
const SCRATCH_PREFIX: &str = "brainmvp-cli-test-";

/// A fresh, empty folder for one test, unique per call (the modules run side by side in one
/// process, so the process id alone does not separate them). The folders stay after the run, for
/// a look after a failure (some hold cohorts that several tests share); the first call of the
/// next run removes those of runs that have ended.
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static SWEEP: Once = Once::new();
    SWEEP.call_once(remove_scratch_of_ended_runs);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "{SCRATCH_PREFIX}{}-{serial}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the scratch folders of test processes that no longer run (a run leaves about 300 MB).
/// Only where `/proc` says which processes run; elsewhere nothing is removed.
fn remove_scratch_of_ended_runs() {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !proc.join(pid.to_string()).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The real MRI the tests read: `$BRAINMVP_MRI_DIR`, else `../shared/data/mri` beside the
/// repository (CI lays it there).
pub fn shared_mri() -> PathBuf {
    brainmvp_core::synth::templates::shared_mri_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    )
}

/// `brainmvp synth` with `synth_args` (besides `--out` and the ICBM152 templates) into
/// `dir/cohort`; returns the cohort folder.
pub fn synth_cohort(dir: &Path, synth_args: &[&str]) -> PathBuf {
    let cohort = dir.join("cohort");
    run_ok(
        brainmvp()
            .arg("synth")
            .args(synth_args)
            .arg("--out")
            .arg(&cohort)
            .arg("--templates")
            .arg(shared_mri().join("icbm152-2mm")),
    );
    cohort
}

/// A synthetic cohort ([`synth_cohort`]) prepared by `brainmvp prepare` with the
/// `prepare_toml` job into `dir/cache`; returns (cohort, cache).
pub fn synth_and_prepare(
    dir: &Path,
    synth_args: &[&str],
    prepare_toml: &str,
) -> (PathBuf, PathBuf) {
    let cohort = synth_cohort(dir, synth_args);
    let prepare = dir.join("prepare.toml");
    std::fs::write(&prepare, prepare_toml).unwrap();
    let cache = dir.join("cache");
    run_ok(
        brainmvp()
            .arg("prepare")
            .arg(&cohort)
            .arg("--out")
            .arg(&cache)
            .arg("--config")
            .arg(&prepare),
    );
    (cohort, cache)
}

/// Waits until the run in `out` has written its checkpoint of `step` (at most 5 min), then kills
/// `child` (SIGKILL); panics when the run ends first.
pub fn kill_after_checkpoint(child: &mut std::process::Child, out: &Path, step: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let latest = out.join("checkpoints/latest");
    loop {
        let reached = std::fs::read_to_string(&latest)
            .ok()
            .and_then(|name| name.trim().strip_prefix("step-")?.parse::<u64>().ok())
            .is_some_and(|done| done >= step);
        if reached || std::time::Instant::now() > deadline {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended before its checkpoint: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
