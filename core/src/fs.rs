//! Writing files and folders so that a killed run never leaves a half-written one under its
//! final name: a file is written to `<path>.tmp`, synced and renamed; a folder is filled as
//! `<dir>.partial`, its files synced, and renamed over the old one. Every writer of the
//! project (cache, NIfTI, checkpoints, model folders, reports) goes through here.

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Suffix of files being written; they are renamed to their final name once complete.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Extension of a folder being filled; it is renamed to its final name once complete.
pub const PARTIAL_EXTENSION: &str = "partial";

/// Write a file atomically: the bytes go to `<path>.tmp`, are synced, and the file is renamed.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        let file = File::create(&temp)?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        fill(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io(path.display(), e)
    })
}

/// `<path>.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Remove leftover `*.tmp` files (from a killed run) in `dir`; returns how many were removed.
pub fn remove_temp_files(dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_temp = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(TEMP_SUFFIX));
        if is_temp && path.is_file() {
            std::fs::remove_file(&path).map_err(|e| Error::io(path.display(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Write the folder `dir` atomically: `fill` writes into a fresh `<dir>.partial`, whose files
/// are then synced; the old `dir` (if any) is removed and the partial folder renamed into
/// place. A run killed before the rename leaves the old folder whole.
pub fn replace_folder<E: From<Error>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let partial = dir.with_extension(PARTIAL_EXTENSION);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io(partial.display(), e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| Error::io(partial.display(), e))?;
    fill(&partial)?;
    sync_files(&partial)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    std::fs::rename(&partial, dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(())
}

/// Sync every file directly inside `dir` to disk.
fn sync_files(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir.display(), e))?.path();
        if path.is_file() {
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(|e| Error::io(path.display(), e))?;
        }
    }
    Ok(())
}

/// The folder `path` names: the path itself, or the folder of a given file in it (users pass
/// either a model or export folder or one of its files).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.is_file() {
        true => path.parent().map_or_else(PathBuf::new, Path::to_path_buf),
        false => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("brainmvp-fs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failed_fill_leaves_the_old_file_and_no_temp_file() {
        let dir = scratch("file");
        let path = dir.join("a.json");
        write_atomic(&path, |w| w.write_all(b"old")).unwrap();
        let err = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("killed"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("a.json"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!temp_path(&path).exists());
        std::fs::write(temp_path(&path), b"left over").unwrap();
        assert_eq!(remove_temp_files(&dir).unwrap(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_folder_is_replaced_whole_or_not_at_all() {
        let dir = scratch("folder").join("model");
        replace_folder::<Error>(&dir, |partial| {
            std::fs::write(partial.join("a"), b"1").map_err(|e| Error::io("a", e))
        })
        .unwrap();
        let failed = replace_folder::<Error>(&dir, |partial| {
            std::fs::write(partial.join("b"), b"2").map_err(|e| Error::io("b", e))?;
            Err(Error::new("fill", "killed"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"1");
        assert!(!dir.join("b").exists());
        replace_folder::<Error>(&dir, |partial| {
            std::fs::write(partial.join("b"), b"2").map_err(|e| Error::io("b", e))
        })
        .unwrap();
        assert!(!dir.join("a").exists() && dir.join("b").exists());
        assert!(!dir.with_extension(PARTIAL_EXTENSION).exists());
        assert_eq!(folder_of(&dir.join("b")), dir);
        assert_eq!(folder_of(&dir), dir);
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
