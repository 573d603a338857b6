//! NIfTI-1 reading and writing (`.nii`, `.nii.gz`, from paths and from bytes) and reorientation.
//!
//! (Types and signatures fixed by the lead; bodies being written.)

pub mod orient;

use crate::{Result, Volume};
use serde::{Deserialize, Serialize};

pub use orient::{axcodes, orientation_code, to_ras, Reorientation};

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
    let _ = (bytes, name);
    unimplemented!("nifti::read_bytes is being written")
}

/// Read a `.nii` or `.nii.gz` file.
#[cfg(feature = "fs")]
pub fn read_path(path: &std::path::Path) -> Result<NiftiImage> {
    let _ = path;
    unimplemented!("nifti::read_path is being written")
}

/// Encode a float32 image with its affine; gzip-compressed when `gzip`.
pub fn encode_f32(volume: &Volume<f32>, gzip: bool) -> Vec<u8> {
    let _ = (volume, gzip);
    unimplemented!("nifti::encode_f32 is being written")
}

/// Encode a uint8 label map with its affine; gzip-compressed when `gzip`.
pub fn encode_u8(volume: &Volume<u8>, gzip: bool) -> Vec<u8> {
    let _ = (volume, gzip);
    unimplemented!("nifti::encode_u8 is being written")
}

/// Write a float32 image atomically (temp file + rename); `.gz` in the name means gzip.
#[cfg(feature = "fs")]
pub fn write_f32(path: &std::path::Path, volume: &Volume<f32>) -> Result<()> {
    let _ = (path, volume);
    unimplemented!("nifti::write_f32 is being written")
}

/// Write a uint8 label map atomically (temp file + rename); `.gz` in the name means gzip.
#[cfg(feature = "fs")]
pub fn write_u8(path: &std::path::Path, volume: &Volume<u8>) -> Result<()> {
    let _ = (path, volume);
    unimplemented!("nifti::write_u8 is being written")
}
