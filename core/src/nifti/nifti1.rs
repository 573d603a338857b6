//! The 348-byte NIfTI-1 header (`nifti1.h`): parsing (either byte order, every field checked
//! before it is trusted) and building (little-endian, single file `n+1`).

use super::header::{
    check_datatype, check_dims, check_vox_offset, put, Fields, Header, HeaderSpec,
};
use super::NiftiFormat;

/// Size of the NIfTI-1 header proper (`sizeof_hdr`).
pub(crate) const HEADER_SIZE: usize = 348;
/// Header plus the 4-byte extension flag: where voxel data starts in the files we write.
pub(crate) const WRITE_VOX_OFFSET: usize = HEADER_SIZE + super::header::EXTENSION_FLAG_SIZE;

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

/// Parse and check a NIfTI-1 header; `fields.bytes` is at least [`HEADER_SIZE`] long and its
/// `sizeof_hdr` reads 348 in `fields.big_endian` order.
pub(crate) fn parse(fields: &Fields) -> Result<Header, String> {
    check_magic(&fields.array::<4>(OFF_MAGIC))?;
    let dims = check_dims(fields.i16(OFF_DIM).into(), |axis| {
        fields.i16(OFF_DIM + 2 * axis).into()
    })?;
    let datatype = check_datatype(fields.i16(OFF_DATATYPE))?;
    let mut warnings = Vec::new();
    let vox_offset = check_vox_offset(
        fields.f32(OFF_VOX_OFFSET).into(),
        WRITE_VOX_OFFSET,
        &mut warnings,
    )?;
    Ok(Header {
        format: NiftiFormat::Nifti1,
        big_endian: fields.big_endian,
        dims,
        datatype,
        pixdim: fields.f32s(OFF_PIXDIM),
        vox_offset,
        scl_slope: fields.f32(OFF_SCL_SLOPE).into(),
        scl_inter: fields.f32(OFF_SCL_INTER).into(),
        qform_code: fields.i16(OFF_QFORM_CODE).into(),
        sform_code: fields.i16(OFF_SFORM_CODE).into(),
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

fn check_magic(magic: &[u8; 4]) -> Result<(), String> {
    match magic {
        b"n+1\0" => Ok(()),
        b"ni1\0" => Err("two-file NIfTI (.hdr/.img pair) is not supported".into()),
        _ => Err(format!(
            "wrong magic {:?} (expected \"n+1\"; Analyze 7.5 files are not supported)",
            String::from_utf8_lossy(magic).trim_end_matches('\0')
        )),
    }
}

/// A little-endian single-file NIfTI-1 header plus the empty extension flag ([`WRITE_VOX_OFFSET`]
/// bytes). Dims must fit `i16` (checked by the caller); floats are stored as `f32`.
pub(crate) fn build(spec: &HeaderSpec) -> Vec<u8> {
    let mut out = vec![0u8; WRITE_VOX_OFFSET];
    put(&mut out, 0, &(HEADER_SIZE as i32).to_le_bytes());
    put(&mut out, 38, b"r");
    let dims = [3, spec.dims[0], spec.dims[1], spec.dims[2], 1, 1, 1, 1];
    for (axis, &size) in dims.iter().enumerate() {
        put(&mut out, OFF_DIM + 2 * axis, &(size as i16).to_le_bytes());
    }
    put(&mut out, OFF_DATATYPE, &spec.datatype.code().to_le_bytes());
    let bitpix = 8 * spec.datatype.bytes_per_voxel() as i16;
    put(&mut out, OFF_BITPIX, &bitpix.to_le_bytes());
    let pixdim = [spec.qfac, spec.pixdim[0], spec.pixdim[1], spec.pixdim[2]];
    for (i, &value) in pixdim.iter().enumerate() {
        put_f32(&mut out, OFF_PIXDIM + 4 * i, value);
    }
    put_f32(&mut out, OFF_VOX_OFFSET, WRITE_VOX_OFFSET as f64);
    put_f32(&mut out, OFF_SCL_SLOPE, 1.0);
    put_f32(&mut out, OFF_SCL_INTER, 0.0);
    put(&mut out, OFF_XYZT_UNITS, &[2]); // NIFTI_UNITS_MM, no time unit
    put(&mut out, OFF_DESCRIP, b"brainmvp");
    put(&mut out, OFF_QFORM_CODE, &spec.qform_code.to_le_bytes());
    put(&mut out, OFF_SFORM_CODE, &spec.sform_code.to_le_bytes());
    for (i, &value) in spec.quatern.iter().chain(&spec.qoffset).enumerate() {
        put_f32(&mut out, OFF_QUATERN + 4 * i, value);
    }
    for (row, values) in spec.srow.iter().enumerate() {
        for (col, &value) in values.iter().enumerate() {
            put_f32(&mut out, OFF_SROW + 16 * row + 4 * col, value);
        }
    }
    put(&mut out, OFF_MAGIC, b"n+1\0");
    out
}

/// NIfTI-1 stores its floats as `f32`.
fn put_f32(out: &mut [u8], offset: usize, value: f64) {
    put(out, offset, &(value as f32).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::header::parse as parse_any;
    use super::*;
    use crate::nifti::Datatype;

    pub(crate) fn spec() -> HeaderSpec {
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
        assert_eq!(bytes.len(), WRITE_VOX_OFFSET);
        let header = parse_any(&bytes).expect("parse");
        assert_eq!(header.format, NiftiFormat::Nifti1);
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
        let good = build(&spec());
        let refused = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            edit(&mut bytes);
            parse_any(&bytes).unwrap_err()
        };
        let at = |offset: usize, value: &[u8]| {
            let value = value.to_vec();
            move |bytes: &mut Vec<u8>| {
                bytes[offset..offset + value.len()].copy_from_slice(&value);
            }
        };
        assert!(refused(&at(OFF_MAGIC, b"abc\0")).contains("magic"));
        assert!(refused(&at(OFF_MAGIC, b"ni1\0")).contains("two-file"));
        assert!(refused(&at(OFF_DIM, &9i16.to_le_bytes())).contains("dim[0] is 9"));
        assert!(refused(&at(OFF_DIM + 4, &(-3i16).to_le_bytes())).contains("dim[2] is -3"));
        assert!(refused(&at(OFF_DATATYPE, &1024i16.to_le_bytes())).contains("int64"));
        let nan = f32::NAN.to_le_bytes();
        assert!(refused(&at(OFF_VOX_OFFSET, &nan)).contains("vox_offset"));
    }

    #[test]
    fn small_vox_offset_is_read_as_352_with_a_warning() {
        let mut bytes = build(&spec());
        bytes[OFF_VOX_OFFSET..OFF_VOX_OFFSET + 4].copy_from_slice(&0f32.to_le_bytes());
        let header = parse_any(&bytes).expect("parse");
        assert_eq!(header.vox_offset, WRITE_VOX_OFFSET);
        assert_eq!(header.warnings.len(), 1);
    }
}
