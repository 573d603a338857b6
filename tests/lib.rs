//! Helpers shared by the integration tests.
use std::path::PathBuf;

/// `../shared/data/mri` beside the repository (CI lays it there too).
pub fn shared_mri() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mri")
}
