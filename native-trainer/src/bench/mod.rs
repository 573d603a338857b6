//! The benchmarks behind `brainmvp bench ...` (the verb itself is `commands/bench.rs`): one file
//! per workload, and what they share (peak memory, the JSON record).
//!
//! - [`data`]: crops per second through the prefetching loader;
//! - [`pretrain`]: seconds per BrainMVP pre-training step;
//! - [`segment`]: seconds per case of UniUnet sliding-window inference;
//! - [`kernels`]: each UniFormer-S UniUnet convolution through the CPU kernels and through burn;
//! - [`brats`]: seconds per case of the BraTS challenge metrics.

pub mod brats;
pub mod data;
pub mod kernels;
pub mod pretrain;
pub mod segment;

/// Peak resident memory of this process in bytes (`VmHWM` of `/proc/self/status`; `None` where
/// the system has no such file).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Prints the peak resident memory (when known) and returns it.
pub fn print_peak_memory() -> Option<u64> {
    let peak = peak_rss_bytes();
    if let Some(bytes) = peak {
        println!(
            "peak resident memory: {:.2} GiB",
            bytes as f64 / (1u64 << 30) as f64
        );
    }
    peak
}

/// Writes a benchmark record (one JSON object) atomically to `path`.
pub fn write_json(path: &std::path::Path, record: &serde_json::Value) -> anyhow::Result<()> {
    brainmvp_core::fs::write_atomic(path, |out| {
        serde_json::to_writer_pretty(&mut *out, record)?;
        writeln!(out)
    })?;
    println!("timings written to {}", path.display());
    Ok(())
}
