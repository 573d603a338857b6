//! Resumable checkpoints, safe against a kill at any moment.
//!
//! `checkpoints/step-00000100/` holds `model.mpk` (network + templates, f32), `optim.mpk` (AdamW
//! moments) and `state.json` (steps done). It is written as `step-00000100.partial/`, every file
//! synced, then renamed into place; `checkpoints/latest` names the newest complete one and is
//! replaced atomically. A kill before the rename leaves only a `.partial` folder, which is ignored
//! and removed by the next save; the previous checkpoint stays intact.

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use brainmvp_core::fs::write_atomic;

/// The recorder of every checkpoint file (named fields, MessagePack, f32).
pub type CheckpointRecorder = NamedMpkFileRecorder<FullPrecisionSettings>;

/// What a checkpoint says besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Total optimiser steps of the run that wrote it.
    pub total_steps: u64,
    /// brainmvp version that wrote it.
    pub version: String,
    /// Data-parallel ranks of the run that wrote it (0: not recorded, older checkpoints).
    #[serde(default)]
    pub ranks: u64,
    /// Micro-batches per rank and optimiser step of that run (0: not recorded).
    #[serde(default)]
    pub micro_batches: u64,
}

/// The checkpoint folder of a run.
pub struct Checkpoints {
    dir: PathBuf,
    keep: usize,
}

impl Checkpoints {
    /// Checkpoints under `out/checkpoints`, keeping the newest `keep`.
    pub fn new(out: &Path, keep: usize) -> Self {
        Self {
            dir: out.join("checkpoints"),
            keep: keep.max(1),
        }
    }

    fn step_dir(&self, step: u64) -> PathBuf {
        self.dir.join(format!("step-{step:08}"))
    }

    /// Writes model, optimiser and state for `state.step`, then points `latest` at it.
    pub fn save<B, M, O>(&self, model: &M, optim: &O, state: &TrainState) -> Result<PathBuf>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let final_dir = self.step_dir(state.step);
        brainmvp_core::fs::replace_folder(&final_dir, |partial| {
            let recorder = CheckpointRecorder::new();
            Recorder::<B>::record(
                &recorder,
                model.clone().into_record(),
                partial.join("model"),
            )
            .with_context(|| format!("{}: cannot write the model", partial.display()))?;
            Recorder::<B>::record(&recorder, optim.to_record(), partial.join("optim"))
                .with_context(|| format!("{}: cannot write the optimiser", partial.display()))?;
            let state_json = serde_json::to_string_pretty(state)?;
            std::fs::write(partial.join("state.json"), state_json)
                .with_context(|| format!("{}: cannot write state.json", partial.display()))
        })?;
        let name = format!("step-{:08}\n", state.step);
        write_atomic(&self.dir.join("latest"), |out| {
            out.write_all(name.as_bytes())
        })?;
        self.prune()?;
        Ok(final_dir)
    }

    /// The newest complete checkpoint: the one `latest` names, else the highest complete
    /// `step-*` folder; `None` when there is none.
    pub fn latest(&self) -> Result<Option<(PathBuf, TrainState)>> {
        let named = std::fs::read_to_string(self.dir.join("latest"))
            .ok()
            .map(|name| self.dir.join(name.trim()));
        let mut candidates = self.complete_steps()?;
        candidates.sort();
        let fallback = candidates.last().map(|&step| self.step_dir(step));
        for dir in named.into_iter().chain(fallback) {
            if let Ok(state) = read_state(&dir) {
                return Ok(Some((dir, state)));
            }
        }
        Ok(None)
    }

    /// Loads model and optimiser state from `dir` into the given (freshly built) ones.
    pub fn load<B, M, O>(dir: &Path, model: M, optim: O, device: &B::Device) -> Result<(M, O)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let recorder = CheckpointRecorder::new();
        let model_record = Recorder::<B>::load(&recorder, dir.join("model"), device)
            .with_context(|| format!("{}: cannot load model.mpk", dir.display()))?;
        let optim_record = Recorder::<B>::load(&recorder, dir.join("optim"), device)
            .with_context(|| format!("{}: cannot load optim.mpk", dir.display()))?;
        Ok((
            model.load_record(model_record),
            optim.load_record(optim_record),
        ))
    }

    /// `--resume`: the model and optimiser of the newest checkpoint with its step, or the given
    /// fresh ones at step 0 (with a warning) when there is none yet.
    pub fn resume<B, M, O>(&self, model: M, optim: O, device: &B::Device) -> Result<(M, O, u64)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        match self.latest()? {
            Some((dir, state)) => {
                let (model, optim) = Self::load(&dir, model, optim, device)?;
                log::info!("resuming from {} (step {})", dir.display(), state.step);
                Ok((model, optim, state.step))
            }
            None => {
                log::warn!("--resume: no checkpoint yet, starting from step 0");
                Ok((model, optim, 0))
            }
        }
    }

    fn complete_steps(&self) -> Result<Vec<u64>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut steps = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(number) = name.strip_prefix("step-") else {
                continue;
            };
            if let Ok(step) = number.parse::<u64>() {
                if entry.path().join("state.json").is_file() {
                    steps.push(step);
                }
            }
        }
        Ok(steps)
    }

    fn prune(&self) -> Result<()> {
        let mut steps = self.complete_steps()?;
        steps.sort();
        let excess = steps.len().saturating_sub(self.keep);
        for &step in &steps[..excess] {
            let dir = self.step_dir(step);
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("{}: cannot remove an old checkpoint", dir.display()))?;
        }
        Ok(())
    }
}

/// Reads `state.json` of a checkpoint folder.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a checkpoint state", path.display()))
}
