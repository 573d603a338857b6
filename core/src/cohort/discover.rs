//! Finding the subjects of a cohort on disk.
//!
//! A *subject folder* is any folder (the root or one below it, up to [`MAX_DEPTH`] levels) that
//! holds at least one recognised image (see [`super::naming`]). Its files are grouped by their
//! subject prefix:
//! - one prefix (BraTS layout, `BraTS2021_00000/BraTS2021_00000_t1.nii.gz`, or
//!   `patient7/scan_t1.nii`): one subject, named after the folder (its path below the root, parts
//!   joined by `_`; for files directly in the root, the prefix);
//! - several prefixes (a flat folder such as IXI's `IXI-T1/IXI002-Guys-0828-T1.nii.gz`): one
//!   subject per prefix, named by the prefix. Subjects of the same name found in several folders
//!   are merged, so IXI's one-folder-per-modality downloads give one subject with every modality.
//!
//! Hidden files (starting with `.`) are skipped silently; any other file that is not a recognised
//! NIfTI image or label goes to [`Cohort::unknown_files`], and a second file for a modality a
//! subject already has goes to [`Cohort::duplicate_files`]; both are reported with `log::warn!`.

use super::naming::{parse_file_name, FileRole, NamingScheme, ParsedName};
use crate::{Error, Modality, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// How many folder levels below the root are searched for subjects.
pub const MAX_DEPTH: usize = 6;

/// The files of one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectFiles {
    pub id: String,
    /// The folder holding the subject's files (their closest common folder).
    pub dir: PathBuf,
    pub images: BTreeMap<Modality, PathBuf>,
    pub label: Option<PathBuf>,
}

impl SubjectFiles {
    /// The modalities of `expected` that this subject lacks, in the order given.
    pub fn missing(&self, expected: &[Modality]) -> Vec<Modality> {
        expected
            .iter()
            .copied()
            .filter(|modality| !self.images.contains_key(modality))
            .collect()
    }

    /// The modalities present, in canonical order.
    pub fn modalities(&self) -> Vec<Modality> {
        self.images.keys().copied().collect()
    }
}

/// A discovered cohort: subjects sorted by id, plus the files that were not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohort {
    pub root: PathBuf,
    pub subjects: Vec<SubjectFiles>,
    /// Files that are not recognised NIfTI images or label maps (sorted).
    pub unknown_files: Vec<PathBuf>,
    /// Extra files for a modality (or label) a subject already had; the first in name order is used.
    pub duplicate_files: Vec<PathBuf>,
    /// The naming convention of the recognised files ([`NamingScheme::Mixed`] if several).
    pub scheme: NamingScheme,
}

impl Cohort {
    /// Every modality present in at least one subject, in canonical order.
    pub fn modalities(&self) -> Vec<Modality> {
        let all: BTreeSet<Modality> = self
            .subjects
            .iter()
            .flat_map(|subject| subject.images.keys().copied())
            .collect();
        all.into_iter().collect()
    }

    /// The subject called `id`.
    pub fn subject(&self, id: &str) -> Option<&SubjectFiles> {
        self.subjects.iter().find(|subject| subject.id == id)
    }
}

/// Discover the cohort under `root` (see the module documentation for the layouts understood).
///
/// Errors, naming the path: `root` missing or not a folder, an unreadable folder, or no subject.
pub fn discover(root: &Path) -> Result<Cohort> {
    let metadata = std::fs::metadata(root).map_err(|err| Error::io(root.display(), err))?;
    if !metadata.is_dir() {
        return Err(Error::new(root.display().to_string(), "not a folder"));
    }
    let scan = scan_tree(root)?;
    let mut builder = CohortBuilder::default();
    for folder in &scan.folders {
        for (id, files) in group_folder(root, folder) {
            builder.add(id, files);
        }
    }
    if builder.subjects.is_empty() {
        return Err(Error::new(
            root.display().to_string(),
            "no subject found: no file named like BraTS 2021 (*_t1.nii.gz), BraTS 2023 \
             (*-t1n.nii.gz) or IXI (*-T1.nii.gz) images",
        ));
    }
    let cohort = builder.finish(root, scan.unknown_files);
    report(&cohort);
    Ok(cohort)
}

/// Recognised files of one folder, in name order.
struct FolderScan {
    dir: PathBuf,
    files: Vec<(PathBuf, ParsedName)>,
}

#[derive(Default)]
struct TreeScan {
    folders: Vec<FolderScan>,
    unknown_files: Vec<PathBuf>,
}

/// Walk `root` depth-first in name order, up to [`MAX_DEPTH`] levels.
fn scan_tree(root: &Path) -> Result<TreeScan> {
    let mut scan = TreeScan::default();
    let mut pending = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let mut folder = FolderScan {
            dir: dir.clone(),
            files: Vec::new(),
        };
        let mut subfolders = Vec::new();
        for path in sorted_entries(&dir)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                scan.unknown_files.push(path);
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if depth < MAX_DEPTH {
                    subfolders.push((path, depth + 1));
                }
            } else if let Some(parsed) = parse_file_name(&name) {
                folder.files.push((path, parsed));
            } else if looks_like_image(&name) {
                scan.unknown_files.push(path);
            } else {
                // Side files (subjects.csv, dataset.json, README...) are expected in cohorts.
                log::debug!("{}: not an image, ignored", path.display());
            }
        }
        if !folder.files.is_empty() {
            scan.folders.push(folder);
        }
        // Reverse so that the stack pops them in name order.
        pending.extend(subfolders.into_iter().rev());
    }
    Ok(scan)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|err| Error::io(dir.display(), err))?;
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|err| Error::io(dir.display(), err))?;
    paths.sort();
    Ok(paths)
}

/// The subjects of one folder: `(id, files)`, one per subject prefix (see the module docs).
fn group_folder(root: &Path, folder: &FolderScan) -> Vec<(String, Vec<(PathBuf, ParsedName)>)> {
    let mut by_prefix: BTreeMap<&str, Vec<(PathBuf, ParsedName)>> = BTreeMap::new();
    for (path, parsed) in &folder.files {
        by_prefix
            .entry(parsed.prefix.as_str())
            .or_default()
            .push((path.clone(), parsed.clone()));
    }
    if by_prefix.len() == 1 {
        let (prefix, files) = by_prefix.into_iter().next().unwrap_or_default();
        return vec![(folder_id(root, &folder.dir, prefix), files)];
    }
    by_prefix
        .into_iter()
        .map(|(prefix, files)| {
            let id = if prefix.is_empty() {
                folder_id(root, &folder.dir, prefix)
            } else {
                prefix.to_string()
            };
            (id, files)
        })
        .collect()
}

/// A folder's subject id: its path below `root` with parts joined by `_`; for the root itself the
/// file prefix, else the root's own name.
fn folder_id(root: &Path, dir: &Path, prefix: &str) -> String {
    let relative: Vec<String> = dir
        .strip_prefix(root)
        .map(|rel| {
            rel.components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !relative.is_empty() {
        return relative.join("_");
    }
    if !prefix.is_empty() {
        return prefix.to_string();
    }
    root.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "subject".to_string())
}

#[derive(Default)]
struct SubjectBuilder {
    files: Vec<PathBuf>,
    images: BTreeMap<Modality, PathBuf>,
    label: Option<PathBuf>,
}

#[derive(Default)]
struct CohortBuilder {
    subjects: BTreeMap<String, SubjectBuilder>,
    duplicates: Vec<PathBuf>,
    schemes: BTreeSet<NamingScheme>,
}

impl CohortBuilder {
    fn add(&mut self, id: String, files: Vec<(PathBuf, ParsedName)>) {
        let subject = self.subjects.entry(id).or_default();
        for (path, parsed) in files {
            self.schemes.insert(parsed.scheme);
            subject.files.push(path.clone());
            let slot = match parsed.role {
                FileRole::Image(modality) => subject.images.entry(modality).or_default(),
                FileRole::Label => subject.label.get_or_insert_with(PathBuf::new),
            };
            if slot.as_os_str().is_empty() {
                *slot = path;
            } else {
                self.duplicates.push(path);
            }
        }
    }

    fn finish(self, root: &Path, mut unknown_files: Vec<PathBuf>) -> Cohort {
        let scheme = match self.schemes.len() {
            1 => self
                .schemes
                .into_iter()
                .next()
                .unwrap_or(NamingScheme::Generic),
            _ => NamingScheme::Mixed,
        };
        // Subjects with only a label map have no image: their files are not usable.
        let mut subjects = Vec::new();
        for (id, subject) in self.subjects {
            if subject.images.is_empty() {
                unknown_files.extend(subject.files);
                continue;
            }
            subjects.push(SubjectFiles {
                id,
                dir: common_folder(&subject.files),
                images: subject.images,
                label: subject.label,
            });
        }
        unknown_files.sort();
        let mut duplicate_files = self.duplicates;
        duplicate_files.sort();
        Cohort {
            root: root.to_path_buf(),
            subjects,
            unknown_files,
            duplicate_files,
            scheme,
        }
    }
}

/// The deepest folder containing every file of `files`.
fn common_folder(files: &[PathBuf]) -> PathBuf {
    let mut common = files
        .first()
        .and_then(|file| file.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for file in files.iter().skip(1) {
        while !file.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

/// Whether a file name has the extension of an image format (NIfTI, Analyze, MGH, NRRD,
/// DICOM): such files are reported when their name is not understood.
fn looks_like_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".nii", ".nii.gz", ".img", ".hdr", ".img.gz", ".mgz", ".mgh", ".nrrd", ".nhdr", ".dcm",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// Log what the user should know: unused files and subjects lacking some modality.
fn report(cohort: &Cohort) {
    let root = cohort.root.display();
    for (what, files) in [
        ("unrecognised", &cohort.unknown_files),
        ("duplicate (not used)", &cohort.duplicate_files),
    ] {
        if !files.is_empty() {
            log::warn!(
                "{root}: {} {what} file(s): {}",
                files.len(),
                list_paths(files, 10)
            );
        }
    }
    let modalities = cohort.modalities();
    let incomplete: Vec<String> = cohort
        .subjects
        .iter()
        .filter_map(|subject| {
            let missing = subject.missing(&modalities);
            (!missing.is_empty()).then(|| format!("{} lacks {}", subject.id, names(&missing)))
        })
        .collect();
    if !incomplete.is_empty() {
        log::info!(
            "{root}: {} of {} subjects lack a modality ({}{})",
            incomplete.len(),
            cohort.subjects.len(),
            incomplete[..incomplete.len().min(5)].join("; "),
            if incomplete.len() > 5 { "; ..." } else { "" }
        );
    }
}

fn list_paths(files: &[PathBuf], limit: usize) -> String {
    let mut listed: Vec<String> = files
        .iter()
        .take(limit)
        .map(|path| path.display().to_string())
        .collect();
    if files.len() > limit {
        listed.push(format!("and {} more", files.len() - limit));
    }
    listed.join(", ")
}

fn names(modalities: &[Modality]) -> String {
    modalities
        .iter()
        .map(|modality| modality.name())
        .collect::<Vec<_>>()
        .join(", ")
}
