//! The 348-byte NIfTI-1 header: parsing (either byte order, with every field checked before it is
//! trusted) and building (little-endian, single file `n+1`).

use super::datatype::unsupported_name;
use super::Datatype;

/// Size of the NIfTI-1 header proper.
pub(crate) const HEADER_SIZE: usize = 348;
/// Header plus the 4-byte extension flag: where voxel data starts in the files we write.
pub(crate) const WRITE_VOX_OFFSET: usize = 352;

// Byte offsets of the fields we use (NIfTI-1 standard, `nifti1.h`).
const OFF_DIM: usize = 40;
const OFF_DATATYPE: usize = 70;
const OFF_BITPIX: usize = 72;
const OFF_PIXDIM: usize = 76;
const OFF_VOX_OFFSET: usize = 108;
const OFF_SCL_SLOPE: usize = 112;
const OFF_SCL_INTER: usize = 116;
const OFF_XYZT_UNITS: usize = 123;
const OFF_DESCRIP: usize = 148;
const OFF_QFORM_CODE: usize = 252;
const OFF_SFORM_CODE: usize = 254;
const OFF_QUATERN: usize = 256;
const OFF_QOFFSET: usize = 268;
const OFF_SROW: usize = 280;
const OFF_MAGIC: usize = 344;

/// The header fields the reader needs, already checked for sanity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub big_endian: bool,
    /// `dim[1..=dim[0]]`, each at least 1.
    pub dims: Vec<usize>,
    pub datatype: Datatype,
    pub pixdim: [f32; 8],
    /// Byte offset of the voxel data from the start of the (decompressed) file.
    pub vox_offset: usize,
    pub scl_slope: f32,
    pub scl_inter: f32,
    pub qform_code: i16,
    pub sform_code: i16,
    /// `quatern_b, quatern_c, quatern_d`.
    pub quatern: [f32; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`.
    pub qoffset: [f32; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f32; 4]; 3],
    /// Oddities that were tolerated.
    pub warnings: Vec<String>,
}

/// Reads fields in the header's byte order; `bytes` is at least [`HEADER_SIZE`] long.
struct Fields<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(offset..offset + N) {
            out.copy_from_slice(src);
        }
        out
    }

    fn i16(&self, offset: usize) -> i16 {
        let raw = self.array(offset);
        if self.big_endian {
            i16::from_be_bytes(raw)
        } else {
            i16::from_le_bytes(raw)
        }
    }

    fn f32(&self, offset: usize) -> f32 {
        let raw = self.array(offset);
        if self.big_endian {
            f32::from_be_bytes(raw)
        } else {
            f32::from_le_bytes(raw)
        }
    }

    fn f32s<const N: usize>(&self, offset: usize) -> [f32; N] {
        std::array::from_fn(|i| self.f32(offset + 4 * i))
    }
}

/// Parse and check a NIfTI-1 header. `bytes` is the start of the (decompressed) file; the error is
/// the cause only (the caller adds the file name).
pub(crate) fn parse(bytes: &[u8]) -> Result<Header, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if bytes.len() < HEADER_SIZE {
        return Err(format!(
            "truncated: {} bytes, too short for a NIfTI-1 header ({HEADER_SIZE} bytes)",
            bytes.len()
        ));
    }
    let big_endian = detect_byte_order(bytes)?;
    check_magic(&bytes[OFF_MAGIC..OFF_MAGIC + 4])?;
    let fields = Fields { bytes, big_endian };
    let dims = parse_dims(&fields)?;
    let datatype = parse_datatype(&fields)?;
    let mut warnings = Vec::new();
    let vox_offset = parse_vox_offset(fields.f32(OFF_VOX_OFFSET), &mut warnings)?;
    Ok(Header {
        big_endian,
        dims,
        datatype,
        pixdim: fields.f32s(OFF_PIXDIM),
        vox_offset,
        scl_slope: fields.f32(OFF_SCL_SLOPE),
        scl_inter: fields.f32(OFF_SCL_INTER),
        qform_code: fields.i16(OFF_QFORM_CODE),
        sform_code: fields.i16(OFF_SFORM_CODE),
        quatern: fields.f32s(OFF_QUATERN),
        qoffset: fields.f32s(OFF_QOFFSET),
        srow: [
            fields.f32s(OFF_SROW),
            fields.f32s(OFF_SROW + 16),
            fields.f32s(OFF_SROW + 32),
        ],
        warnings,
    })
}

/// Byte order from `sizeof_hdr`, which must read 348 one way or the other.
fn detect_byte_order(bytes: &[u8]) -> Result<bool, String> {
    let raw = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let (little, big) = (i32::from_le_bytes(raw), i32::from_be_bytes(raw));
    if little == HEADER_SIZE as i32 {
        Ok(false)
    } else if big == HEADER_SIZE as i32 {
        Ok(true)
    } else if little == 540 || big == 540 {
        Err("NIfTI-2 files are not supported (sizeof_hdr is 540)".into())
    } else {
        Err(format!(
            "not a NIfTI-1 file (sizeof_hdr is {little}, expected {HEADER_SIZE})"
        ))
    }
}

fn check_magic(magic: &[u8]) -> Result<(), String> {
    match magic {
        b"n+1\0" => Ok(()),
        b"ni1\0" => Err("two-file NIfTI (.hdr/.img pair) is not supported".into()),
        _ => Err(format!(
            "wrong magic {:?} (expected \"n+1\"; Analyze 7.5 files are not supported)",
            String::from_utf8_lossy(magic).trim_end_matches('\0')
        )),
    }
}

fn parse_dims(fields: &Fields) -> Result<Vec<usize>, String> {
    let ndim = fields.i16(OFF_DIM);
    if !(1..=7).contains(&ndim) {
        return Err(format!("dim[0] is {ndim}, expected 1 to 7"));
    }
    (1..=ndim as usize)
        .map(|axis| {
            let size = fields.i16(OFF_DIM + 2 * axis);
            if size < 1 {
                Err(format!("dim[{axis}] is {size}, must be at least 1"))
            } else {
                Ok(size as usize)
            }
        })
        .collect()
}

fn parse_datatype(fields: &Fields) -> Result<Datatype, String> {
    let code = fields.i16(OFF_DATATYPE);
    Datatype::from_code(code).ok_or_else(|| {
        format!(
            "unsupported datatype {code} ({}); supported: uint8, int8, int16, uint16, int32, uint32, float32, float64",
            unsupported_name(code)
        )
    })
}

/// `vox_offset` as a byte position: a finite, non-negative float, at least 352 in a single file
/// (smaller values, often 0 in hand-made files, are read as 352 with a warning).
fn parse_vox_offset(raw: f32, warnings: &mut Vec<String>) -> Result<usize, String> {
    if !(0.0..=1.0e9).contains(&raw) {
        return Err(format!("vox_offset {raw} is not a valid byte offset"));
    }
    let offset = raw as usize;
    if offset < WRITE_VOX_OFFSET {
        warnings.push(format!(
            "vox_offset {raw} is below {WRITE_VOX_OFFSET}; reading voxels from byte {WRITE_VOX_OFFSET}"
        ));
        return Ok(WRITE_VOX_OFFSET);
    }
    Ok(offset)
}

/// Everything the writer puts in a header.
pub(crate) struct HeaderSpec {
    pub dims: [usize; 3],
    pub datatype: Datatype,
    /// `pixdim[1..=3]` (voxel sizes, mm).
    pub pixdim: [f32; 3],
    /// `pixdim[0]`: the qform's handedness, +1 or -1.
    pub qfac: f32,
    pub qform_code: i16,
    pub quatern: [f32; 3],
    pub qoffset: [f32; 3],
    pub sform_code: i16,
    pub srow: [[f32; 4]; 3],
}

/// A little-endian single-file NIfTI-1 header plus the empty extension flag ([`WRITE_VOX_OFFSET`]
/// bytes). Dims must fit `i16` (checked by the caller).
pub(crate) fn build(spec: &HeaderSpec) -> [u8; WRITE_VOX_OFFSET] {
    let mut out = [0u8; WRITE_VOX_OFFSET];
    let mut put = |offset: usize, bytes: &[u8]| {
        out[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(0, &(HEADER_SIZE as i32).to_le_bytes());
    put(38, b"r");
    let dims = [3, spec.dims[0], spec.dims[1], spec.dims[2], 1, 1, 1, 1];
    for (axis, &size) in dims.iter().enumerate() {
        put(OFF_DIM + 2 * axis, &(size as i16).to_le_bytes());
    }
    put(OFF_DATATYPE, &spec.datatype.code().to_le_bytes());
    let bitpix = 8 * spec.datatype.bytes_per_voxel() as i16;
    put(OFF_BITPIX, &bitpix.to_le_bytes());
    let pixdim = [spec.qfac, spec.pixdim[0], spec.pixdim[1], spec.pixdim[2]];
    for (i, value) in pixdim.iter().enumerate() {
        put(OFF_PIXDIM + 4 * i, &value.to_le_bytes());
    }
    put(OFF_VOX_OFFSET, &(WRITE_VOX_OFFSET as f32).to_le_bytes());
    put(OFF_SCL_SLOPE, &1.0f32.to_le_bytes());
    put(OFF_SCL_INTER, &0.0f32.to_le_bytes());
    put(OFF_XYZT_UNITS, &[2]); // NIFTI_UNITS_MM, no time unit
    put(OFF_DESCRIP, b"brainmvp");
    put(OFF_QFORM_CODE, &spec.qform_code.to_le_bytes());
    put(OFF_SFORM_CODE, &spec.sform_code.to_le_bytes());
    let floats = spec.quatern.iter().chain(&spec.qoffset);
    for (i, value) in floats.enumerate() {
        put(OFF_QUATERN + 4 * i, &value.to_le_bytes());
    }
    for (row, values) in spec.srow.iter().enumerate() {
        for (col, value) in values.iter().enumerate() {
            put(OFF_SROW + 16 * row + 4 * col, &value.to_le_bytes());
        }
    }
    put(OFF_MAGIC, b"n+1\0");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HeaderSpec {
        HeaderSpec {
            dims: [4, 5, 6],
            datatype: Datatype::I16,
            pixdim: [1.0, 2.0, 3.0],
            qfac: -1.0,
            qform_code: 2,
            quatern: [0.0, 1.0, 0.0],
            qoffset: [7.0, 8.0, 9.0],
            sform_code: 2,
            srow: [
                [-1.0, 0.0, 0.0, 7.0],
                [0.0, 2.0, 0.0, 8.0],
                [0.0, 0.0, 3.0, 9.0],
            ],
        }
    }

    #[test]
    fn built_header_parses_back() {
        let bytes = build(&spec());
        let header = parse(&bytes).expect("parse");
        assert!(!header.big_endian);
        assert_eq!(header.dims, vec![4, 5, 6]);
        assert_eq!(header.datatype, Datatype::I16);
        assert_eq!(header.pixdim[..4], [-1.0, 1.0, 2.0, 3.0]);
        assert_eq!(header.vox_offset, WRITE_VOX_OFFSET);
        assert_eq!((header.qform_code, header.sform_code), (2, 2));
        assert_eq!(header.quatern, [0.0, 1.0, 0.0]);
        assert_eq!(header.srow, spec().srow);
        assert!(header.warnings.is_empty());
    }

    #[test]
    fn bad_headers_are_refused_with_the_cause() {
        assert_eq!(parse(&[]).unwrap_err(), "empty file");
        assert!(parse(&[0; 100]).unwrap_err().contains("too short"));
        let good = build(&spec());
        let mut bytes = good;
        bytes[0..4].copy_from_slice(&540i32.to_le_bytes());
        assert!(parse(&bytes).unwrap_err().contains("NIfTI-2"));
        let mut bytes = good;
        bytes[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(b"abc\0");
        assert!(parse(&bytes).unwrap_err().contains("magic"));
        let mut bytes = good;
        bytes[OFF_DIM..OFF_DIM + 2].copy_from_slice(&9i16.to_le_bytes());
        assert!(parse(&bytes).unwrap_err().contains("dim[0] is 9"));
        let mut bytes = good;
        bytes[OFF_DIM + 4..OFF_DIM + 6].copy_from_slice(&(-3i16).to_le_bytes());
        assert!(parse(&bytes).unwrap_err().contains("dim[2] is -3"));
        let mut bytes = good;
        bytes[OFF_DATATYPE..OFF_DATATYPE + 2].copy_from_slice(&1024i16.to_le_bytes());
        assert!(parse(&bytes).unwrap_err().contains("int64"));
        let mut bytes = good;
        bytes[OFF_VOX_OFFSET..OFF_VOX_OFFSET + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(parse(&bytes).unwrap_err().contains("vox_offset"));
    }

    #[test]
    fn small_vox_offset_is_read_as_352_with_a_warning() {
        let mut bytes = build(&spec());
        bytes[OFF_VOX_OFFSET..OFF_VOX_OFFSET + 4].copy_from_slice(&0f32.to_le_bytes());
        let header = parse(&bytes).expect("parse");
        assert_eq!(header.vox_offset, WRITE_VOX_OFFSET);
        assert_eq!(header.warnings.len(), 1);
    }
}
