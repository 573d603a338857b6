//! Reading a cache: the manifest is checked on open, files are memory-mapped on first use, and crops
//! copy only the x-rows they need out of the map (never decoding a whole volume).

use super::files::decode_into;
use super::manifest::{CacheDtype, Manifest, SubjectEntry, MAX_VOXELS};
use crate::{Error, Modality, Result, Volume};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One memory-mappable file of the cache, mapped on first use.
#[derive(Debug)]
struct MappedFile {
    path: PathBuf,
    expected_bytes: u64,
    map: OnceLock<Mmap>,
}

impl MappedFile {
    fn new(path: PathBuf, expected_bytes: u64) -> Self {
        Self {
            path,
            expected_bytes,
            map: OnceLock::new(),
        }
    }

    /// The file's bytes, mapping it on first call.
    fn bytes(&self) -> Result<&[u8]> {
        if let Some(map) = self.map.get() {
            return Ok(map);
        }
        let name = self.path.display();
        let file = File::open(&self.path).map_err(|e| Error::io(&name, e))?;
        // SAFETY: the cache is written once by `prepare` (atomic renames) and only read afterwards;
        // a file changed under a running reader is outside this contract, as with any mmap reader.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&name, e))?;
        if map.len() as u64 != self.expected_bytes {
            return Err(size_error(
                &self.path,
                map.len() as u64,
                self.expected_bytes,
            ));
        }
        // Another thread may have won the race; either map is the same file.
        let _ = self.map.set(map);
        Ok(self.map.get().map(|m| &m[..]).unwrap_or_default())
    }
}

fn size_error(path: &Path, found: u64, expected: u64) -> Error {
    let msg = format!("cache file is {found} bytes, expected {expected} (truncated or corrupted; re-run `brainmvp prepare`)");
    Error::new(path.display().to_string(), msg)
}

/// The files of one subject.
#[derive(Debug)]
struct SubjectFiles {
    images: BTreeMap<Modality, MappedFile>,
    label: Option<MappedFile>,
}

/// Read access to a prepared cache. Share it between loader threads with an `Arc`.
#[derive(Debug)]
pub struct CacheReader {
    dir: PathBuf,
    manifest: Manifest,
    subjects: Vec<SubjectFiles>,
}

impl CacheReader {
    /// Open the cache in `dir`: read and check `manifest.json` and that every file it lists exists
    /// with the size its dims imply. Nothing is mapped yet.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::load(dir)?;
        let mut subjects = Vec::with_capacity(manifest.subjects.len());
        for entry in &manifest.subjects {
            subjects.push(subject_files(dir, entry)?);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            subjects,
        })
    }

    /// A reader over the subjects `indices` of this cache only (in that order; a subset for
    /// training, validation or test). Nothing is mapped yet; an error for an index out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let mut manifest = self.manifest.clone();
        manifest.subjects = indices
            .iter()
            .map(|&index| self.subject(index).cloned())
            .collect::<Result<Vec<_>>>()?;
        let subjects = manifest
            .subjects
            .iter()
            .map(|entry| subject_files(&self.dir, entry))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dir: self.dir.clone(),
            manifest,
            subjects,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Number of subjects.
    pub fn len(&self) -> usize {
        self.manifest.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.subjects.is_empty()
    }

    /// The manifest entry of subject `index`.
    pub fn subject(&self, index: usize) -> Result<&SubjectEntry> {
        self.manifest.subjects.get(index).ok_or_else(|| {
            let msg = format!("no subject #{index} (the cache has {})", self.len());
            Error::new(self.dir.display().to_string(), msg)
        })
    }

    /// The crop `start .. start + size` (voxels; may leave the volume, which reads as 0) of one
    /// modality, as f32 in x-fastest order.
    pub fn read_crop(
        &self,
        subject: usize,
        modality: Modality,
        start: [isize; 3],
        size: [usize; 3],
    ) -> Result<Vec<f32>> {
        let mut out = alloc_crop(&self.dir, size, 0.0f32)?;
        self.read_crop_into(subject, modality, start, size, &mut out)?;
        Ok(out)
    }

    /// [`CacheReader::read_crop`] into a buffer of `size[0] * size[1] * size[2]` values.
    pub fn read_crop_into(
        &self,
        subject: usize,
        modality: Modality,
        start: [isize; 3],
        size: [usize; 3],
        out: &mut [f32],
    ) -> Result<()> {
        let entry = self.subject(subject)?;
        let file = self.subjects[subject]
            .images
            .get(&modality)
            .ok_or_else(|| {
                Error::new(
                    format!("{}: subject {}", self.dir.display(), entry.id),
                    format!("no {modality} image"),
                )
            })?;
        let bytes = file.bytes()?;
        let dtype = entry.dtype;
        check_buffer(&self.dir, size, out.len())?;
        copy_rows(entry.dims, start, size, out, 0.0, |src, dst| {
            let width = dtype.bytes();
            decode_into(&bytes[src.start * width..src.end * width], dtype, dst);
        });
        Ok(())
    }

    /// The same crop of the label map (`u8`, 0 outside the volume).
    pub fn read_label_crop(
        &self,
        subject: usize,
        start: [isize; 3],
        size: [usize; 3],
    ) -> Result<Vec<u8>> {
        let mut out = alloc_crop(&self.dir, size, 0u8)?;
        self.read_label_crop_into(subject, start, size, &mut out)?;
        Ok(out)
    }

    /// [`CacheReader::read_label_crop`] into a buffer.
    pub fn read_label_crop_into(
        &self,
        subject: usize,
        start: [isize; 3],
        size: [usize; 3],
        out: &mut [u8],
    ) -> Result<()> {
        let entry = self.subject(subject)?;
        let file = self.subjects[subject].label.as_ref().ok_or_else(|| {
            Error::new(
                format!("{}: subject {}", self.dir.display(), entry.id),
                "no label map",
            )
        })?;
        let bytes = file.bytes()?;
        check_buffer(&self.dir, size, out.len())?;
        copy_rows(entry.dims, start, size, out, 0, |src, dst| {
            dst.copy_from_slice(&bytes[src])
        });
        Ok(())
    }

    /// A whole image volume (with its affine).
    pub fn read_volume(&self, subject: usize, modality: Modality) -> Result<Volume<f32>> {
        let entry = self.subject(subject)?;
        let data = self.read_crop(subject, modality, [0; 3], entry.dims)?;
        Ok(Volume {
            dims: entry.dims,
            affine: entry.affine,
            data,
        })
    }

    /// A whole label map (with its affine).
    pub fn read_label_volume(&self, subject: usize) -> Result<Volume<u8>> {
        let entry = self.subject(subject)?;
        let data = self.read_label_crop(subject, [0; 3], entry.dims)?;
        Ok(Volume {
            dims: entry.dims,
            affine: entry.affine,
            data,
        })
    }

    /// Total bytes of the files the manifest lists.
    pub fn bytes_on_disk(&self) -> u64 {
        self.manifest
            .subjects
            .iter()
            .flat_map(|s| s.files())
            .map(|(_, size)| size)
            .sum()
    }
}

/// Check every file of `entry` exists with its expected size; build its (unmapped) handles.
fn subject_files(dir: &Path, entry: &SubjectEntry) -> Result<SubjectFiles> {
    let (image_bytes, label_bytes) = entry.expected_bytes();
    let checked = |name: &str, expected: u64| -> Result<MappedFile> {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(path.display(), e))?;
        if meta.len() != expected {
            return Err(size_error(&path, meta.len(), expected));
        }
        Ok(MappedFile::new(path, expected))
    };
    let mut images = BTreeMap::new();
    for (modality, name) in &entry.images {
        images.insert(*modality, checked(name, image_bytes)?);
    }
    let label = match &entry.label {
        Some(name) => Some(checked(name, label_bytes)?),
        None => None,
    };
    Ok(SubjectFiles { images, label })
}

/// A zeroed crop buffer, refusing absurd sizes before allocating.
fn alloc_crop<T: Copy>(dir: &Path, size: [usize; 3], zero: T) -> Result<Vec<T>> {
    let voxels = crop_voxels(dir, size)?;
    Ok(vec![zero; voxels])
}

fn crop_voxels(dir: &Path, size: [usize; 3]) -> Result<usize> {
    size.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&v| v <= MAX_VOXELS)
        .ok_or_else(|| {
            Error::new(
                dir.display().to_string(),
                format!("crop size {size:?} is too large"),
            )
        })
}

fn check_buffer(dir: &Path, size: [usize; 3], len: usize) -> Result<()> {
    let voxels = crop_voxels(dir, size)?;
    if voxels != len {
        let msg = format!("crop buffer holds {len} values, crop {size:?} needs {voxels}");
        return Err(Error::new(dir.display().to_string(), msg));
    }
    Ok(())
}

/// Fill `out` (the crop `start .. start + size` of a volume of `dims`, x fastest) by calling
/// `copy(source voxel range, destination slice)` once per x-row overlapping the volume; everything
/// outside the volume is set to `zero`.
pub(crate) fn copy_rows<T: Copy>(
    dims: [usize; 3],
    start: [isize; 3],
    size: [usize; 3],
    out: &mut [T],
    zero: T,
    mut copy: impl FnMut(std::ops::Range<usize>, &mut [T]),
) {
    let inside = |axis: usize| -> std::ops::Range<isize> {
        let low = start[axis].max(0);
        let high = (start[axis] + size[axis] as isize).min(dims[axis] as isize);
        low..high.max(low)
    };
    let (xs, ys, zs) = (inside(0), inside(1), inside(2));
    let covers_all = (0..3).all(|a| inside(a).len() == size[a]);
    if !covers_all {
        out.fill(zero);
    }
    if xs.is_empty() {
        return;
    }
    let row_len = xs.len();
    let dst_x = (xs.start - start[0]) as usize;
    for z in zs {
        for y in ys.clone() {
            let src = xs.start as usize + dims[0] * (y as usize + dims[1] * z as usize);
            let (cy, cz) = ((y - start[1]) as usize, (z - start[2]) as usize);
            let dst = dst_x + size[0] * (cy + size[1] * cz);
            copy(src..src + row_len, &mut out[dst..dst + row_len]);
        }
    }
}

impl CacheDtype {
    /// Round `value` the way this dtype stores it (f16 rounding for `F16`).
    pub fn round(self, value: f32) -> f32 {
        match self {
            CacheDtype::F16 => half::f16::from_f32(value).to_f32(),
            CacheDtype::F32 => value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference crop by per-voxel indexing.
    fn naive(dims: [usize; 3], data: &[i32], start: [isize; 3], size: [usize; 3]) -> Vec<i32> {
        let mut out = Vec::new();
        for z in 0..size[2] as isize {
            for y in 0..size[1] as isize {
                for x in 0..size[0] as isize {
                    let p = [start[0] + x, start[1] + y, start[2] + z];
                    let inside = (0..3).all(|a| p[a] >= 0 && p[a] < dims[a] as isize);
                    out.push(if inside {
                        data[p[0] as usize + dims[0] * (p[1] as usize + dims[1] * p[2] as usize)]
                    } else {
                        0
                    });
                }
            }
        }
        out
    }

    #[test]
    fn row_copy_matches_per_voxel_crop_everywhere() {
        let dims = [5, 4, 3];
        let data: Vec<i32> = (1..=60).collect();
        let sizes = [[2, 2, 2], [7, 6, 5], [1, 1, 1], [5, 4, 3]];
        for size in sizes {
            for sx in -8..7 {
                for sy in -7..6 {
                    for sz in -6..5 {
                        let start = [sx, sy, sz];
                        let mut out = vec![-1; size.iter().product()];
                        copy_rows(dims, start, size, &mut out, 0, |src, dst| {
                            dst.copy_from_slice(&data[src])
                        });
                        assert_eq!(
                            out,
                            naive(dims, &data, start, size),
                            "start {start:?} size {size:?}"
                        );
                    }
                }
            }
        }
    }
}
