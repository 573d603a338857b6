//! Encoding volumes as little-endian single-file NIfTI-1 (optionally gzip-compressed with a fast
//! level), to memory or atomically to a path. A volume with a dim over NIfTI-1's `i16` range is
//! written as NIfTI-2, whose dims are `i64`; every other volume stays NIfTI-1, which every tool
//! reads.

use super::affine::affine_to_qform;
use super::datatype::encode_voxels;
use super::header::HeaderSpec;
use super::{nifti1, nifti2, Datatype, NiftiFormat};
use crate::Affine;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{self, Write};

/// Voxels converted per batch while streaming (bounded temporary buffer).
const BATCH_VOXELS: usize = 1 << 16;

/// The voxel values to store.
pub(crate) enum Voxels<'a> {
    /// Float values stored as `Datatype` (integers rounded and clamped).
    Float(&'a [f32], Datatype),
    /// A uint8 label map, stored as is.
    Labels(&'a [u8]),
}

impl Voxels<'_> {
    fn len(&self) -> usize {
        match self {
            Voxels::Float(values, _) => values.len(),
            Voxels::Labels(values) => values.len(),
        }
    }

    fn datatype(&self) -> Datatype {
        match self {
            Voxels::Float(_, datatype) => *datatype,
            Voxels::Labels(_) => Datatype::U8,
        }
    }
}

/// NIfTI-1 when every dim fits its `i16` fields, else NIfTI-2.
pub(crate) fn format_for(dims: [usize; 3]) -> NiftiFormat {
    if dims.iter().all(|&size| size <= i16::MAX as usize) {
        NiftiFormat::Nifti1
    } else {
        NiftiFormat::Nifti2
    }
}

/// Why a volume cannot be stored (`None` if it can): a dim of 0, or data not matching the dims.
pub(crate) fn unwritable(dims: [usize; 3], voxel_count: usize) -> Option<String> {
    if dims.contains(&0) {
        return Some(format!(
            "cannot store dims {}x{}x{} in NIfTI (each must be at least 1)",
            dims[0], dims[1], dims[2]
        ));
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &size| acc.checked_mul(size));
    (expected != Some(voxel_count)).then(|| match expected {
        Some(expected) => {
            format!("volume holds {voxel_count} voxels but its dims {dims:?} need {expected}")
        }
        None => format!("volume dims {dims:?} overflow the voxel count"),
    })
}

/// Header fields for `dims` and `affine`: sform (code 2, aligned) with the affine, and the qform
/// derived from it (code 2) unless the affine is sheared (then qform code 0).
fn header_spec(dims: [usize; 3], affine: &Affine, datatype: Datatype) -> HeaderSpec {
    let srow = std::array::from_fn(|row| affine[row]);
    let (qform_code, quatern, qoffset, qfac) = match affine_to_qform(affine) {
        Some(qform) => (2, qform.quatern, qform.offset, qform.qfac),
        None => (0, [0.0; 3], [0.0; 3], 1.0),
    };
    HeaderSpec {
        dims,
        datatype,
        pixdim: crate::volume::spacing_of(affine),
        qfac,
        qform_code,
        quatern,
        qoffset,
        sform_code: 2,
        srow,
    }
}

/// Stream header and voxels into `out`, compressing when `gzip`. `dims` must be writable.
pub(crate) fn write_nifti(
    out: impl Write,
    dims: [usize; 3],
    affine: &Affine,
    voxels: Voxels,
    gzip: bool,
) -> io::Result<()> {
    let spec = header_spec(dims, affine, voxels.datatype());
    let header = match format_for(dims) {
        NiftiFormat::Nifti1 => nifti1::build(&spec),
        NiftiFormat::Nifti2 => nifti2::build(&spec),
    };
    if gzip {
        let mut encoder = GzEncoder::new(out, Compression::fast());
        write_body(&mut encoder, &header, &voxels)?;
        encoder.finish()?.flush()
    } else {
        let mut out = out;
        write_body(&mut out, &header, &voxels)?;
        out.flush()
    }
}

fn write_body(out: &mut impl Write, header: &[u8], voxels: &Voxels) -> io::Result<()> {
    out.write_all(header)?;
    match voxels {
        Voxels::Labels(values) => out.write_all(values),
        Voxels::Float(values, datatype) => {
            let mut buffer = Vec::with_capacity(BATCH_VOXELS * datatype.bytes_per_voxel());
            for batch in values.chunks(BATCH_VOXELS) {
                buffer.clear();
                encode_voxels(batch, *datatype, &mut buffer);
                out.write_all(&buffer)?;
            }
            Ok(())
        }
    }
}

/// Encode to memory; an error when the volume cannot be stored (a dim of 0, or data that does not
/// match its dims).
pub(crate) fn encode(
    dims: [usize; 3],
    affine: &Affine,
    voxels: Voxels,
    gzip: bool,
) -> crate::Result<Vec<u8>> {
    if let Some(cause) = unwritable(dims, voxels.len()) {
        return Err(crate::Error::new("nifti encode", cause));
    }
    let raw_size =
        format_for(dims).min_vox_offset() + voxels.len() * voxels.datatype().bytes_per_voxel();
    let mut out = Vec::with_capacity(if gzip { raw_size / 2 } else { raw_size });
    write_nifti(&mut out, dims, affine, voxels, gzip)
        .map_err(|err| crate::Error::new("nifti encode", err.to_string()))?;
    Ok(out)
}

/// Write atomically through [`crate::fs::write_atomic`] (`<name>.tmp`, synced, renamed).
#[cfg(feature = "fs")]
pub(crate) fn write_path<T>(
    path: &std::path::Path,
    volume: &crate::Volume<T>,
    voxels: Voxels,
) -> crate::Result<()> {
    use crate::Error;
    let shown = path.display();
    if let Some(cause) = unwritable(volume.dims, voxels.len()) {
        return Err(Error::new(shown.to_string(), cause));
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::new(shown.to_string(), "not a file path"))?;
    let gzip = file_name.to_string_lossy().ends_with(".gz");
    crate::fs::write_atomic(path, |writer| {
        write_nifti(writer, volume.dims, &volume.affine, voxels, gzip)
    })
}
