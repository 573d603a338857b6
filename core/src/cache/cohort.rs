//! `prepare_cohort`: preprocess a discovered cohort into a cache.

use super::manifest::{CacheDtype, Manifest};
use super::prepare::{prepare_subjects, PrepareProgress, WriteOptions};
use crate::cohort::Cohort;
use crate::preprocess::{preprocess_subject, PreprocessConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

crate::config! {
    /// Everything `prepare` needs to know (stored in the manifest; `--config FILE.toml` reads it).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct PrepareConfig {
        /// Voxel type of the image files (`f16` default, `f32`).
        pub dtype: CacheDtype = CacheDtype::F16,
        /// The preprocessing applied to every subject.
        pub preprocess: PreprocessConfig = PreprocessConfig::default(),
    }
}

/// Preprocess every subject of `cohort` in parallel (current rayon pool) and write the cache into
/// `out` (see the [module documentation](super)). Subjects complete from an earlier run with the same
/// configuration are skipped; subjects that fail are logged and left out (listed in the manifest's
/// `failures`); the call fails if every subject fails.
pub fn prepare_cohort(
    cohort: &Cohort,
    out: &Path,
    config: &PrepareConfig,
    progress: &(dyn Fn(PrepareProgress) + Sync),
) -> Result<Manifest> {
    let ids: Vec<String> = cohort.subjects.iter().map(|s| s.id.clone()).collect();
    let config_json = serde_json::to_value(config)
        .map_err(|e| Error::new(out.display().to_string(), format!("configuration: {e}")))?;
    let options = WriteOptions {
        dtype: config.dtype,
        config: config_json,
    };
    let preprocess = |index: usize| preprocess_subject(&cohort.subjects[index], &config.preprocess);
    prepare_subjects(&ids, out, &options, preprocess, progress)
}

impl Manifest {
    /// The [`PrepareConfig`] the cache was made with (from [`Manifest::config`]).
    pub fn prepare_config(&self) -> Result<PrepareConfig> {
        serde_json::from_value(self.config.clone()).map_err(|e| {
            Error::new(
                super::CACHE_MANIFEST_FILE,
                format!("invalid prepare configuration: {e}"),
            )
        })
    }
}
