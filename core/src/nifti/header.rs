//! The NIfTI header as the reader needs it, whichever version it came from: the version and byte
//! order (both from `sizeof_hdr`), a field reader in the header's byte order, the checks NIfTI-1
//! and NIfTI-2 share, and what the writer puts in a header. The layouts themselves are in
//! [`super::nifti1`] and [`super::nifti2`].

use super::datatype::unsupported_name;
use super::{nifti1, nifti2, Datatype, NiftiFormat};
use std::fmt;

/// The largest accepted `vox_offset` (bytes), in either version.
const MAX_VOX_OFFSET: f64 = 1.0e9;
/// Bytes of the extension flag that follows the header proper in a single file.
pub(crate) const EXTENSION_FLAG_SIZE: usize = 4;

impl NiftiFormat {
    /// Size of the header proper (`sizeof_hdr`): 348 or 540 bytes.
    pub fn header_size(self) -> usize {
        match self {
            NiftiFormat::Nifti1 => nifti1::HEADER_SIZE,
            NiftiFormat::Nifti2 => nifti2::HEADER_SIZE,
        }
    }

    /// Where voxel data starts at the earliest in a single file: the header plus the 4-byte
    /// extension flag (352 or 544), also where the files we write put them.
    pub fn min_vox_offset(self) -> usize {
        self.header_size() + EXTENSION_FLAG_SIZE
    }
}

impl fmt::Display for NiftiFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NiftiFormat::Nifti1 => "NIfTI-1",
            NiftiFormat::Nifti2 => "NIfTI-2",
        })
    }
}

/// The header fields the reader needs, already checked for sanity (NIfTI-1's `f32` and `i16`
/// fields widened without loss to NIfTI-2's `f64` and `i32`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub format: NiftiFormat,
    pub big_endian: bool,
    /// `dim[1..=dim[0]]`, each at least 1.
    pub dims: Vec<usize>,
    pub datatype: Datatype,
    pub pixdim: [f64; 8],
    /// Byte offset of the voxel data from the start of the (decompressed) file.
    pub vox_offset: usize,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    /// `quatern_b, quatern_c, quatern_d`.
    pub quatern: [f64; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f64; 4]; 3],
    /// Oddities that were tolerated.
    pub warnings: Vec<String>,
}

/// Reads fields in the header's byte order. Fields past the end of `bytes` read as zero (the
/// parsers check the length first).
pub(crate) struct Fields<'a> {
    pub bytes: &'a [u8],
    pub big_endian: bool,
}

/// One reader per numeric type: `from_be_bytes` or `from_le_bytes` by the header's byte order.
macro_rules! field_readers {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(
            pub fn $name(&self, offset: usize) -> $ty {
                let raw = self.array(offset);
                if self.big_endian {
                    <$ty>::from_be_bytes(raw)
                } else {
                    <$ty>::from_le_bytes(raw)
                }
            }
        )*
    };
}

impl Fields<'_> {
    pub fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(offset..offset + N) {
            out.copy_from_slice(src);
        }
        out
    }

    field_readers!(i16: i16, i32: i32, i64: i64, f32: f32, f64: f64);

    /// `N` consecutive `f32` fields widened to `f64`.
    pub fn f32s<const N: usize>(&self, offset: usize) -> [f64; N] {
        std::array::from_fn(|i| f64::from(self.f32(offset + 4 * i)))
    }

    /// `N` consecutive `f64` fields.
    pub fn f64s<const N: usize>(&self, offset: usize) -> [f64; N] {
        std::array::from_fn(|i| self.f64(offset + 8 * i))
    }
}

/// How many bytes the header at the start of `bytes` spans: 540 when `sizeof_hdr` reads 540 in
/// either byte order, else 348 (anything else is refused by [`parse`]).
pub(crate) fn declared_size(bytes: &[u8]) -> usize {
    match sizeof_hdr(bytes).and_then(|raw| detect(raw).ok()) {
        Some((format, _)) => format.header_size(),
        None => nifti1::HEADER_SIZE,
    }
}

/// Parse and check a NIfTI-1 or NIfTI-2 header. `bytes` is the start of the (decompressed) file;
/// the error is the cause only (the caller adds the file name).
pub(crate) fn parse(bytes: &[u8]) -> Result<Header, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let detected = sizeof_hdr(bytes).ok_or_else(String::new).and_then(detect);
    let (format, big_endian) = match detected {
        Ok(found) => found,
        Err(_) if bytes.len() < nifti1::HEADER_SIZE => {
            return Err(format!(
                "truncated: {} bytes, too short for a NIfTI header ({} bytes at least)",
                bytes.len(),
                nifti1::HEADER_SIZE
            ))
        }
        Err(cause) => return Err(cause),
    };
    if bytes.len() < format.header_size() {
        return Err(format!(
            "truncated: {} bytes, too short for a {format} header ({} bytes)",
            bytes.len(),
            format.header_size()
        ));
    }
    let fields = Fields { bytes, big_endian };
    match format {
        NiftiFormat::Nifti1 => nifti1::parse(&fields),
        NiftiFormat::Nifti2 => nifti2::parse(&fields),
    }
}

/// The raw `sizeof_hdr` bytes, if the file holds them.
fn sizeof_hdr(bytes: &[u8]) -> Option<[u8; 4]> {
    bytes.get(..4)?.try_into().ok()
}

/// Version and byte order (`true`: big-endian) from `sizeof_hdr`, which must read 348 or 540 one
/// way or the other.
fn detect(raw: [u8; 4]) -> Result<(NiftiFormat, bool), String> {
    let (little, big) = (i32::from_le_bytes(raw), i32::from_be_bytes(raw));
    for format in [NiftiFormat::Nifti1, NiftiFormat::Nifti2] {
        let size = format.header_size() as i32;
        if little == size {
            return Ok((format, false));
        }
        if big == size {
            return Ok((format, true));
        }
    }
    Err(format!(
        "not a NIfTI-1 or NIfTI-2 file (sizeof_hdr is {little}, expected {} or {})",
        nifti1::HEADER_SIZE,
        nifti2::HEADER_SIZE
    ))
}

/// Check the dims and return `dim[1..=dim[0]]`: `dim[0]` (`ndim`) must be 1 to 7 and every size at
/// least 1 and representable as `usize`. `size(axis)` reads `dim[axis]`.
pub(crate) fn check_dims(ndim: i64, size: impl Fn(usize) -> i64) -> Result<Vec<usize>, String> {
    if !(1..=7).contains(&ndim) {
        return Err(format!("dim[0] is {ndim}, expected 1 to 7"));
    }
    (1..=ndim as usize)
        .map(|axis| {
            let value = size(axis);
            if value < 1 {
                return Err(format!("dim[{axis}] is {value}, must be at least 1"));
            }
            usize::try_from(value)
                .map_err(|_| format!("dim[{axis}] is {value}, too large for this platform"))
        })
        .collect()
}

/// The datatype with header code `code`, or an error naming the code and what is supported.
pub(crate) fn check_datatype(code: i16) -> Result<Datatype, String> {
    Datatype::from_code(code).ok_or_else(|| {
        format!(
            "unsupported datatype {code} ({}); supported: uint8, int8, int16, uint16, int32, uint32, float32, float64",
            unsupported_name(code)
        )
    })
}

/// `vox_offset` as a byte position: finite, 0 to 1e9, and at least `minimum` (header plus extension
/// flag) in a single file; smaller values, often 0 in hand-made files, are read as `minimum` with a
/// warning.
pub(crate) fn check_vox_offset(
    raw: f64,
    minimum: usize,
    warnings: &mut Vec<String>,
) -> Result<usize, String> {
    if !(0.0..=MAX_VOX_OFFSET).contains(&raw) {
        return Err(format!("vox_offset {raw} is not a valid byte offset"));
    }
    let offset = raw as usize;
    if offset < minimum {
        warnings.push(format!(
            "vox_offset {raw} is below {minimum}; reading voxels from byte {minimum}"
        ));
        return Ok(minimum);
    }
    Ok(offset)
}

/// Everything the writer puts in a header, whichever version it writes.
pub(crate) struct HeaderSpec {
    pub dims: [usize; 3],
    pub datatype: Datatype,
    /// `pixdim[1..=3]` (voxel sizes, mm).
    pub pixdim: [f64; 3],
    /// `pixdim[0]`: the qform's handedness, +1 or -1.
    pub qfac: f64,
    pub qform_code: i16,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub sform_code: i16,
    pub srow: [[f64; 4]; 3],
}

/// Copy `bytes` into `out` at `offset` (header building; offsets are the layout's constants).
pub(crate) fn put(out: &mut [u8], offset: usize, bytes: &[u8]) {
    out[offset..offset + bytes.len()].copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_byte_order_come_from_sizeof_hdr() {
        let nifti1 = NiftiFormat::Nifti1;
        let nifti2 = NiftiFormat::Nifti2;
        assert_eq!(detect(348i32.to_le_bytes()), Ok((nifti1, false)));
        assert_eq!(detect(348i32.to_be_bytes()), Ok((nifti1, true)));
        assert_eq!(detect(540i32.to_le_bytes()), Ok((nifti2, false)));
        assert_eq!(detect(540i32.to_be_bytes()), Ok((nifti2, true)));
        assert!(detect(*b"abcd")
            .unwrap_err()
            .contains("not a NIfTI-1 or NIfTI-2"));
        assert_eq!(declared_size(&540i32.to_be_bytes()), 540);
        assert_eq!(declared_size(&348i32.to_le_bytes()), 348);
        assert_eq!(declared_size(&[1, 2]), 348);
    }

    #[test]
    fn short_input_is_refused_as_too_short() {
        assert_eq!(parse(&[]).unwrap_err(), "empty file");
        assert!(parse(&[0; 3]).unwrap_err().contains("too short"));
        assert!(parse(&[0; 100]).unwrap_err().contains("too short"));
        assert!(parse(&[7; 400]).unwrap_err().contains("sizeof_hdr is"));
        let mut nifti2 = vec![0u8; 400];
        nifti2[..4].copy_from_slice(&540i32.to_le_bytes());
        let err = parse(&nifti2).unwrap_err();
        assert!(
            err.contains("too short for a NIfTI-2 header (540 bytes)"),
            "{err}"
        );
    }

    #[test]
    fn dims_are_checked_as_64_bit_values() {
        let sizes = [3i64, 4, 5, 6, 1, 1, 1, 1];
        assert_eq!(check_dims(3, |axis| sizes[axis]), Ok(vec![4, 5, 6]));
        assert!(check_dims(0, |_| 1).unwrap_err().contains("dim[0] is 0"));
        assert!(check_dims(8, |_| 1).unwrap_err().contains("dim[0] is 8"));
        let err = check_dims(3, |axis| if axis == 2 { -4 } else { 1 }).unwrap_err();
        assert!(err.contains("dim[2] is -4"), "{err}");
        let err = check_dims(3, |axis| if axis == 3 { 0 } else { 1 }).unwrap_err();
        assert!(err.contains("dim[3] is 0"), "{err}");
        assert!(check_dims(i64::MIN, |_| 1).is_err());
    }

    #[test]
    fn vox_offset_is_bounded_and_small_ones_are_raised() {
        let mut warnings = Vec::new();
        assert_eq!(check_vox_offset(600.0, 544, &mut warnings), Ok(600));
        assert_eq!(check_vox_offset(0.0, 544, &mut warnings), Ok(544));
        assert_eq!(warnings.len(), 1);
        assert!(check_vox_offset(-1.0, 352, &mut warnings).is_err());
        assert!(check_vox_offset(f64::NAN, 352, &mut warnings).is_err());
        assert!(check_vox_offset(2.0e9, 352, &mut warnings).is_err());
    }
}
