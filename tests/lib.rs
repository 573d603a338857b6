//! Helpers shared by the integration tests.
use std::path::{Path, PathBuf};

/// The real MRI the tests read: `$BRAINMVP_MRI_DIR`, else `../shared/data/mri` beside the
/// repository (CI lays it there).
pub fn shared_mri() -> PathBuf {
    brainmvp_core::synth::templates::shared_mri_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    )
}
