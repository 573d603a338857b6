//! Decoding `.nii` / `.nii.gz` bytes (NIfTI-1 or NIfTI-2) into a [`NiftiImage`]. Every size taken
//! from the header is checked (with overflow-checked arithmetic) against the limits and the data
//! actually present before anything is allocated.
//!
//! An uncompressed file must hold every volume its dims announce (a shorter one is truncated).
//! A gzip stream is inflated only as far as the first volume, never further: the rest of a 4D
//! file is not checked, and a header needing more bytes than deflate's maximum ratio (1032:1)
//! allows from the compressed size is refused up front (gzip bombs).

use super::affine::header_affine;
use super::datatype::{decode_voxels, Scaling};
use super::header::{self, Header};
use super::NiftiImage;
use crate::{Error, Result, Volume};
use std::io::{self, Read};

/// Deflate cannot expand data by more than about 1032:1; a header that needs more decompressed
/// bytes than this allows from the compressed size is refused before inflating anything.
const MAX_DEFLATE_RATIO: usize = 1032;

crate::config! {
    /// Bounds on what a file may make the reader allocate.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ReadLimits {
        /// Largest accepted voxel count of the (first) 3D volume: 512 Mi voxels (2 GiB as
        /// `f32`), far above any MRI volume, far below absurd headers.
        pub max_voxels: usize = 512 * 1024 * 1024,
    }
}

/// What the header says must be read: the first volume's voxels.
struct DataPlan {
    dims: [usize; 3],
    /// Voxels in the first 3D volume.
    voxels: usize,
    /// Bytes of the first volume.
    volume_bytes: usize,
    /// Number of 3D volumes (product of `dim[4..]`).
    volumes: usize,
    /// Bytes of all volumes (`None` if it overflows `usize`: only the first is read anyway).
    all_bytes: Option<usize>,
}

/// Decode a `.nii` or `.nii.gz` (gzip detected by its magic bytes) under `limits`.
pub fn read_bytes_with_limits(bytes: &[u8], name: &str, limits: ReadLimits) -> Result<NiftiImage> {
    let decoded = if bytes.starts_with(&[0x1f, 0x8b]) {
        read_gzip(bytes, limits)
    } else {
        read_raw(bytes, limits)
    };
    decoded.map_err(|cause| Error::new(name, cause))
}

fn read_raw(bytes: &[u8], limits: ReadLimits) -> std::result::Result<NiftiImage, String> {
    let header = header::parse(bytes)?;
    let plan = plan_data(&header, limits)?;
    let available = bytes.len().saturating_sub(header.vox_offset);
    let needed = plan.all_bytes.unwrap_or(usize::MAX);
    if available < needed {
        return Err(truncated(&header, &plan, needed, available));
    }
    let raw = &bytes[header.vox_offset..header.vox_offset + plan.volume_bytes];
    Ok(assemble(header, &plan, raw))
}

fn read_gzip(bytes: &[u8], limits: ReadLimits) -> std::result::Result<NiftiImage, String> {
    let mut stream = flate2::bufread::MultiGzDecoder::new(bytes);
    let head = read_header_bytes(&mut stream)?;
    let header = header::parse(&head).map_err(|cause| format!("gzip content: {cause}"))?;
    let plan = plan_data(&header, limits)?;
    let stream_bytes = header
        .vox_offset
        .checked_add(plan.volume_bytes)
        .ok_or("voxel data size overflows")?;
    if stream_bytes / MAX_DEFLATE_RATIO > bytes.len() {
        return Err(format!(
            "header needs {stream_bytes} decompressed bytes, impossible from {} gzip bytes (corrupt header or gzip bomb)",
            bytes.len()
        ));
    }
    let gap = (header.vox_offset - head.len()) as u64;
    let skipped = io::copy(&mut (&mut stream).take(gap), &mut io::sink()).map_err(gzip_error)?;
    if skipped < gap {
        return Err(truncated(&header, &plan, plan.volume_bytes, 0));
    }
    // Grow with the data actually inflated rather than trusting the header for the allocation.
    let mut raw = Vec::with_capacity(
        plan.volume_bytes
            .min(bytes.len().saturating_mul(16) + (1 << 20)),
    );
    (&mut stream)
        .take(plan.volume_bytes as u64)
        .read_to_end(&mut raw)
        .map_err(gzip_error)?;
    if raw.len() < plan.volume_bytes {
        return Err(truncated(&header, &plan, plan.volume_bytes, raw.len()));
    }
    Ok(assemble(header, &plan, &raw))
}

/// The header's bytes from the start of the stream: as many as its `sizeof_hdr` declares (348 or
/// 540), fewer if the stream ends first (the parser then reports the file as truncated).
fn read_header_bytes(stream: &mut impl Read) -> std::result::Result<Vec<u8>, String> {
    let mut head = [0u8; 4];
    let got = read_up_to(stream, &mut head)?;
    let mut head = head[..got].to_vec();
    head.resize(header::declared_size(&head), 0);
    let got = got + read_up_to(stream, &mut head[got..])?;
    head.truncate(got);
    Ok(head)
}

/// Fill `buf` as far as the stream allows; returns how many bytes were read.
fn read_up_to(stream: &mut impl Read, buf: &mut [u8]) -> std::result::Result<usize, String> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(gzip_error(err)),
        }
    }
    Ok(filled)
}

fn gzip_error(err: io::Error) -> String {
    format!("corrupt gzip stream: {err}")
}

fn truncated(header: &Header, plan: &DataPlan, needed: usize, available: usize) -> String {
    let [x, y, z] = plan.dims;
    format!(
        "truncated: dims {x}x{y}x{z}{} of {} need {needed} bytes of voxel data after byte {}, found {available}",
        if plan.volumes > 1 {
            format!("x{}", plan.volumes)
        } else {
            String::new()
        },
        header.datatype,
        header.vox_offset
    )
}

/// Sizes of the data from the header's dims, refusing absurd ones.
fn plan_data(header: &Header, limits: ReadLimits) -> std::result::Result<DataPlan, String> {
    let dim = |axis: usize| header.dims.get(axis).copied().unwrap_or(1);
    let dims = [dim(0), dim(1), dim(2)];
    let voxels = dims
        .iter()
        .try_fold(1usize, |acc, &size| acc.checked_mul(size))
        .filter(|&count| count <= limits.max_voxels)
        .ok_or_else(|| {
            format!(
                "dims {}x{}x{} exceed the limit of {} voxels",
                dims[0], dims[1], dims[2], limits.max_voxels
            )
        })?;
    let volume_bytes = voxels
        .checked_mul(header.datatype.bytes_per_voxel())
        .ok_or("voxel data size overflows")?;
    let volumes = header
        .dims
        .iter()
        .skip(3)
        .try_fold(1usize, |acc, &size| acc.checked_mul(size));
    let all_bytes = volumes.and_then(|count| count.checked_mul(volume_bytes));
    let volumes = volumes.ok_or("number of volumes overflows")?;
    Ok(DataPlan {
        dims,
        voxels,
        volume_bytes,
        volumes,
        all_bytes,
    })
}

/// Build the image from the first volume's raw bytes.
fn assemble(header: Header, plan: &DataPlan, raw: &[u8]) -> NiftiImage {
    let mut warnings = header.warnings.clone();
    if plan.volumes > 1 {
        warnings.push(format!(
            "{}D file ({} volumes): using the first",
            header.dims.len(),
            plan.volumes
        ));
    }
    let scaling = Scaling::from_header(header.scl_slope, header.scl_inter);
    let (data, nonfinite) = decode_voxels(raw, header.datatype, header.big_endian, scaling);
    debug_assert_eq!(data.len(), plan.voxels);
    if nonfinite > 0 {
        warnings.push(format!("{nonfinite} NaN/Inf voxels set to 0"));
    }
    let (affine, orientation_source) = header_affine(&header, &mut warnings);
    NiftiImage {
        volume: Volume {
            dims: plan.dims,
            affine,
            data,
        },
        format: header.format,
        datatype: header.datatype,
        big_endian: header.big_endian,
        full_dims: header.dims.clone(),
        pixdim: [1, 2, 3].map(|axis| header.pixdim[axis] as f32),
        orientation_source,
        warnings,
    }
}
