//! NIfTI-1 and NIfTI-2 reading, NIfTI writing (`.nii`, `.nii.gz`, from paths and from bytes) and
//! reorientation.
//!
//! Reading accepts single-file NIfTI-1 and NIfTI-2 in either byte order, gzip-compressed or not
//! (detected by the gzip magic, whatever the file name says), with datatypes uint8, int8, int16,
//! uint16, int32, uint32, float32 and float64. Both versions go through the same checks: values are
//! scaled by `scl_slope`/`scl_inter`; the affine comes from the sform, else the qform, else pixdim.
//! Sizes in the header (NIfTI-2's are 64-bit) are checked against [`ReadLimits`] and the data
//! present before anything is allocated, and every failure is a one-line [`crate::Error`] naming
//! the file.
//!
//! Writing produces little-endian `n+1` files (voxels at byte 352) with sform and qform set from
//! the affine; a `.gz` path or `gzip = true` compresses with a fast level. A volume with a dim over
//! NIfTI-1's 32767 is written as NIfTI-2 (`n+2`, voxels at byte 544) instead.

mod affine;
mod datatype;
mod header;
mod nifti1;
mod nifti2;
pub mod orient;
mod read;
mod write;

use crate::{Result, Volume};
use serde::{Deserialize, Serialize};

pub use orient::{axcodes, orientation_code, to_ras, Reorientation};
pub use read::{read_bytes_with_limits, ReadLimits};
use write::Voxels;

/// On-disk voxel type (NIfTI `datatype` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Datatype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

/// Which NIfTI header a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NiftiFormat {
    /// 348-byte header, `i16` dims, `f32` fields (magic `n+1`).
    Nifti1,
    /// 540-byte header, `i64` dims, `f64` fields (magic `n+2`).
    Nifti2,
}

/// Where the voxel-to-world affine came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrientationSource {
    Sform,
    Qform,
    Pixdim,
}

/// A decoded NIfTI file: the first 3D volume with scaling applied, in the file's own voxel grid.
#[derive(Debug, Clone)]
pub struct NiftiImage {
    /// Values after `scl_slope`/`scl_inter`, NaN/Inf set to 0; affine from sform, else qform, else pixdim.
    pub volume: Volume<f32>,
    /// NIfTI-1 or NIfTI-2.
    pub format: NiftiFormat,
    pub datatype: Datatype,
    pub big_endian: bool,
    /// `dim[1..=dim[0]]` as in the header (more than 3 entries for 4D files).
    pub full_dims: Vec<usize>,
    /// `pixdim[1..=3]` as in the header.
    pub pixdim: [f32; 3],
    pub orientation_source: OrientationSource,
    /// Things the user should know (first volume of a 4D file used, NaN/Inf voxels zeroed, ...).
    pub warnings: Vec<String>,
}

/// Decode a `.nii` or `.nii.gz` (detected by its gzip magic) held in memory; `name` is used in errors.
pub fn read_bytes(bytes: &[u8], name: &str) -> Result<NiftiImage> {
    read_bytes_with_limits(bytes, name, ReadLimits::default())
}

/// Read a `.nii` or `.nii.gz` file.
#[cfg(feature = "fs")]
pub fn read_path(path: &std::path::Path) -> Result<NiftiImage> {
    read_path_with_limits(path, ReadLimits::default())
}

/// Read a `.nii` or `.nii.gz` file under `limits`.
#[cfg(feature = "fs")]
pub fn read_path_with_limits(path: &std::path::Path, limits: ReadLimits) -> Result<NiftiImage> {
    let bytes = std::fs::read(path).map_err(|err| crate::Error::io(path.display(), err))?;
    read_bytes_with_limits(&bytes, &path.display().to_string(), limits)
}

/// Encode a float32 image with its affine; gzip-compressed when `gzip`.
///
/// NIfTI-1, or NIfTI-2 when a dim is over 32767. An error if the volume cannot be stored (a dim of
/// 0, or `data` not matching `dims`).
pub fn encode_f32(volume: &Volume<f32>, gzip: bool) -> Result<Vec<u8>> {
    encode_as(volume, Datatype::F32, gzip)
}

/// Encode a uint8 label map with its affine; gzip-compressed when `gzip`. Errors as [`encode_f32`].
pub fn encode_u8(volume: &Volume<u8>, gzip: bool) -> Result<Vec<u8>> {
    write::encode(
        volume.dims,
        &volume.affine,
        Voxels::Labels(&volume.data),
        gzip,
    )
}

/// Encode a float image stored as `datatype`: integer types are rounded to the nearest integer and
/// clamped to the type's range (NaN → 0), with no scaling (`scl_slope` 1). Errors as [`encode_f32`].
pub fn encode_as(volume: &Volume<f32>, datatype: Datatype, gzip: bool) -> Result<Vec<u8>> {
    write::encode(
        volume.dims,
        &volume.affine,
        Voxels::Float(&volume.data, datatype),
        gzip,
    )
}

/// Write a float32 image atomically (temp file + rename); `.gz` in the name means gzip.
#[cfg(feature = "fs")]
pub fn write_f32(path: &std::path::Path, volume: &Volume<f32>) -> Result<()> {
    write_as(path, volume, Datatype::F32)
}

/// Write a uint8 label map atomically (temp file + rename); `.gz` in the name means gzip.
#[cfg(feature = "fs")]
pub fn write_u8(path: &std::path::Path, volume: &Volume<u8>) -> Result<()> {
    write::write_path(path, volume, Voxels::Labels(&volume.data))
}

/// Write a float image stored as `datatype` (integers rounded and clamped, as [`encode_as`])
/// atomically; `.gz` at the end of the name means gzip.
#[cfg(feature = "fs")]
pub fn write_as(path: &std::path::Path, volume: &Volume<f32>, datatype: Datatype) -> Result<()> {
    write::write_path(path, volume, Voxels::Float(&volume.data, datatype))
}
