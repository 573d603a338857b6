//! `mpirun -np 2 brainmvp pretrain` (feature `mpi`; OpenMPI's `mpirun` on PATH, as root through
//! its allow-run-as-root variables): the MPI engine on a world of one changes nothing; two CPU
//! ranks of the tiny job train exactly like one process with the same global batch, their replicas stay bit-identical, a rank killed with
//! SIGKILL stops the other with a message naming it, and the run resumes from its checkpoint to
//! the same losses, on two ranks or on one.

use crate::pretrain::{cache, job, losses};
use crate::support::{brainmvp, run, scratch, text};
use brainmvp_trainer::report::MetricRecord;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STEPS: u64 = 8;
/// Checkpoints every 2 steps; collective calls and the rendezvous wait at most 60 s.
const RANKS_JOB: &str = "[checkpoint]\nevery = 2\n[distributed]\ntimeout_s = 60\n";

/// `mpirun -np N brainmvp` with one compute thread per rank (2 ranks on CI's 2 cores).
fn mpirun(ranks: usize) -> Command {
    let mut command = Command::new("mpirun");
    command
        .args([
            "-np",
            &ranks.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("RAYON_NUM_THREADS", "1")
        .env("RUST_LOG", "info")
        .arg(env!("CARGO_BIN_EXE_brainmvp"));
    command
}

/// Every loss term of every step agrees within `tolerance` (relative).
fn assert_same_losses(what: &str, got: &[MetricRecord], expected: &[MetricRecord], tolerance: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: steps");
    for (a, b) in got.iter().zip(expected) {
        assert_eq!(a.step, b.step, "{what}");
        for key in ["loss", "mse_template", "mse_cross_modal", "contrastive"] {
            let (x, y) = (a.values[key], b.values[key]);
            assert!(
                (x - y).abs() <= tolerance * y.abs().max(1e-3),
                "{what}: step {} {key}: {x} vs {y}",
                a.step
            );
        }
    }
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_folder(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}

/// Rank 1's pid, from its start-up log line in `log`.
fn pid_of_rank_one(log: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(log).ok()?;
    let rest = text.split("rank 1 of 2 (pid ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Starts two ranks, kills rank 1 with SIGKILL once the step-2 checkpoint exists, and returns
/// the other rank's words (mpirun's output) once mpirun has exited.
fn kill_rank_one_after_checkpoint(config: &Path, out: &Path, log: &Path) -> String {
    let mut child = mpirun(2)
        .args(["pretrain", "--config"])
        .arg(config)
        .stdout(Stdio::from(
            std::fs::File::create(log.with_extension("out")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let latest = out.join("checkpoints/latest");
    let pid = loop {
        if let (true, Some(pid)) = (latest.exists(), pid_of_rank_one(log)) {
            break pid;
        }
        assert!(Instant::now() < deadline, "no checkpoint within 300 s");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "mpirun ended before the checkpoint: {status}\n{}",
                std::fs::read_to_string(log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("rank 0 did not exit within 120 s of rank 1's death");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(log).unwrap();
    assert!(!status.success(), "{stderr}");
    // Rank 0 names the dead rank, unless mpirun, which watches its ranks too, stopped rank 0
    // first: then mpirun's own message names it.
    let ours = format!("rank 1 (pid {pid} on ");
    let named_by = match (
        stderr.contains(&ours),
        stderr.contains("process rank 1 with PID"),
    ) {
        (true, _) => "rank 0's watch",
        (false, true) => "mpirun",
        _ => panic!("no message naming rank 1:\n{stderr}"),
    };
    eprintln!("the killed rank 1 was named by {named_by}");
    stderr
}

#[test]
fn two_mpi_ranks_train_like_one_process_and_survive_a_killed_rank() {
    let dir = scratch("mpirun");
    let _ = cache();
    for run in ["single", "one-rank", "ranks", "killed"] {
        std::fs::create_dir_all(dir.join(run)).unwrap();
    }
    // The reference: one process, two micro-batches of 2 subjects per step.
    let single = job(
        &dir.join("single"),
        STEPS,
        "accumulation = 2\n[checkpoint]\nevery = 2\n",
    );
    let output = run(brainmvp().args(["pretrain", "--config"]).arg(&single));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let reference = losses(&dir.join("single/run"));

    // The MPI engine on a world of one (chosen in the config, so its calls run): the same losses.
    let one_rank_dir = dir.join("one-rank");
    let one_rank = job(
        &one_rank_dir,
        STEPS,
        "accumulation = 2\n[checkpoint]\nevery = 2\n[distributed]\nengine = \"mpi\"\n",
    );
    let output = run(mpirun(1).args(["pretrain", "--config"]).arg(&one_rank));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("the 1 replicas are identical"), "{stderr}");
    let one_rank_losses = losses(&one_rank_dir.join("run"));
    assert!(one_rank_losses
        .iter()
        .all(|r| r.values.contains_key("allreduce_s")));
    assert_same_losses(
        "MPI world of 1 vs 1 process",
        &one_rank_losses,
        &reference,
        1e-6,
    );

    // Two ranks of one micro-batch of 2 subjects: the same global batch of 4.
    let ranks_dir = dir.join("ranks");
    let ranks = job(&ranks_dir, STEPS, RANKS_JOB);
    let output = run(mpirun(2).args(["pretrain", "--config"]).arg(&ranks));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("rank 1 of 2 (pid "), "{stderr}");
    assert!(stderr.contains("engine mpi"), "{stderr}");
    // Rank 0 gathered both replicas' checksums at every checkpoint: bit-identical.
    assert!(
        stderr.contains(&format!("step {STEPS}: the 2 replicas are identical")),
        "{stderr}"
    );
    let two_ranks = losses(&ranks_dir.join("run"));
    assert_same_losses("2 ranks vs 1 process", &two_ranks, &reference, 1e-4);
    assert!(ranks_dir.join("run/export/encoder.mpk").is_file());

    // Killed mid-run: rank 0 stops naming rank 1, the checkpoint survives.
    let killed_dir = dir.join("killed");
    let killed = job(&killed_dir, STEPS, RANKS_JOB);
    let out = killed_dir.join("run");
    kill_rank_one_after_checkpoint(&killed, &out, &killed_dir.join("ranks.log"));
    let one_rank_out = killed_dir.join("run-on-one-rank");
    copy_folder(&out, &one_rank_out);

    // Resumed on two ranks: the uninterrupted run's losses.
    let output = run(mpirun(2)
        .args(["pretrain", "--resume", "--config"])
        .arg(&killed));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_same_losses("resumed on 2 ranks", &losses(&out), &two_ranks, 1e-5);

    // Resumed on one process: 2 micro-batches keep the global batch, the same losses.
    let output = run(brainmvp()
        .args(["pretrain", "--resume", "--config"])
        .arg(&killed)
        .arg("--out")
        .arg(&one_rank_out));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_same_losses(
        "resumed on 1 rank",
        &losses(&one_rank_out),
        &two_ranks,
        1e-4,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
