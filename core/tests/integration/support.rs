//! Helpers shared by the test modules: scratch folders, the shared MRI folder, the CPU backend.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The CPU backend the tests run on.
pub type B = burn::backend::Flex;

/// The CPU backend with automatic differentiation.
pub type AD = burn::backend::Autodiff<B>;

/// The default device of the CPU backend.
pub fn device() -> burn::tensor::Device<B> {
    Default::default()
}

/// A fresh, empty folder for one test, unique per call (the modules run side by side in one
/// process, so the process id alone does not separate them).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "brainmvp-core-test-{}-{serial}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The real MRI the tests read: `$BRAINMVP_MRI_DIR`, else `../shared/data/mri` beside the
/// repository (CI lays it there).
pub fn shared_mri() -> PathBuf {
    brainmvp_core::synth::templates::shared_mri_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    )
}

/// `../shared/data/real` beside the repository: three real skull-stripped BraTS-grid patients.
pub fn shared_real() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real")
}
