//! Finding and loading the ICBM152 2 mm templates (file system only).

use super::anatomy::{Anatomy, CHANNELS, TEMPLATE_FILES};
use crate::{Error, Result, Volume};
use std::path::{Path, PathBuf};

/// Environment variable naming the shared MRI data folder (the one holding `icbm152-2mm/`).
pub const MRI_DIR_ENV: &str = "BRAINMVP_MRI_DIR";
/// Name of the template folder inside the MRI data folder.
pub const TEMPLATE_FOLDER: &str = "icbm152-2mm";

/// The shared MRI data folder (the one holding `icbm152-2mm/` and `fixtures/`):
/// `$BRAINMVP_MRI_DIR` when it is set, else `../shared/data/mri` beside the checkout whose root is
/// `repository`. Every test helper finds the folder through this (the browser tests through
/// `tests/browser/harness.mjs`, by the same rule).
pub fn shared_mri_dir(repository: &Path) -> PathBuf {
    match std::env::var_os(MRI_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => repository.join("../shared/data/mri"),
    }
}

/// The ICBM152 template folder: `explicit` when given (it must hold the templates), else the
/// first folder holding them among `$BRAINMVP_MRI_DIR/icbm152-2mm`, then
/// `../shared/data/mri/icbm152-2mm` and `shared/data/mri/icbm152-2mm` relative to the current
/// folder and to every ancestor of the executable's folder. The error lists every place tried.
pub fn locate_templates(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return match missing_template(dir) {
            None => Ok(dir.to_path_buf()),
            Some(file) => Err(Error::new(
                dir.display().to_string(),
                format!("not an ICBM152 template folder: {file} is missing"),
            )),
        };
    }
    let candidates = candidate_dirs();
    if let Some(found) = candidates
        .iter()
        .find(|dir| missing_template(dir).is_none())
    {
        return Ok(std::fs::canonicalize(found).unwrap_or_else(|_| found.clone()));
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(Error::new(
        "synth templates",
        format!(
            "ICBM152 templates ({}) not found; give --templates DIR or set {MRI_DIR_ENV}; looked in: {}",
            TEMPLATE_FILES[0],
            tried.join(", ")
        ),
    ))
}

/// The first template file missing from `dir`, if any.
fn missing_template(dir: &Path) -> Option<&'static str> {
    TEMPLATE_FILES
        .into_iter()
        .find(|file| !dir.join(file).is_file())
}

/// Every folder [`locate_templates`] tries, in order.
fn candidate_dirs() -> Vec<PathBuf> {
    let relative = [
        Path::new("..")
            .join("shared")
            .join("data")
            .join("mri")
            .join(TEMPLATE_FOLDER),
        Path::new("shared")
            .join("data")
            .join("mri")
            .join(TEMPLATE_FOLDER),
    ];
    let mut bases: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        bases.push(cwd);
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        bases.extend(exe_dir.ancestors().map(Path::to_path_buf));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(mri_dir) = std::env::var_os(MRI_DIR_ENV) {
        dirs.push(PathBuf::from(mri_dir).join(TEMPLATE_FOLDER));
    }
    for base in &bases {
        for rel in &relative {
            let dir = base.join(rel);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Read the six template maps from `dir` (they must share one grid).
pub fn read_template_maps(dir: &Path) -> Result<[Volume<f32>; CHANNELS]> {
    let mut maps = Vec::with_capacity(CHANNELS);
    for file in TEMPLATE_FILES {
        let path = dir.join(file);
        let image = crate::nifti::read_path(&path)?;
        if let Some(first) = maps.first() {
            let first: &Volume<f32> = first;
            if first.dims != image.volume.dims || !same_affine(&first.affine, &image.volume.affine)
            {
                return Err(Error::new(
                    path.display().to_string(),
                    format!("grid differs from {}", TEMPLATE_FILES[0]),
                ));
            }
        }
        maps.push(image.volume);
    }
    maps.try_into()
        .map_err(|_| Error::new(dir.display().to_string(), "could not read all templates"))
}

fn same_affine(a: &crate::Affine, b: &crate::Affine) -> bool {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .all(|(x, y)| (x - y).abs() < 1e-3)
}

/// Load the templates from `dir` and upsample them to `spacing_mm`.
pub fn load_anatomy(dir: &Path, spacing_mm: f64) -> Result<Anatomy> {
    let maps = read_template_maps(dir)?;
    Anatomy::upsampled(&maps, spacing_mm).map_err(|e| e.with_context(dir.display().to_string()))
}
