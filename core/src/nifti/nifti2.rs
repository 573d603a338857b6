//! The 540-byte NIfTI-2 header (`nifti2.h`): parsing (either byte order, every field checked
//! before it is trusted, with the same checks as NIfTI-1) and building (little-endian, single
//! file `n+2`, for volumes whose dims do not fit NIfTI-1's `i16`).
//!
//! NIfTI-2 holds the same fields as NIfTI-1, widened (`dim` and `vox_offset` as `i64`, every float
//! as `f64`, the form codes as `i32`) and reordered; the magic moves to byte 4 and gains four
//! check bytes (`\r\n\x1a\n`) that a text-mode transfer would corrupt. Offsets below were checked
//! against nibabel 5.4.2's `Nifti2Header` layout.

use super::header::{
    check_datatype, check_dims, check_vox_offset, put, Fields, Header, HeaderSpec,
};
use super::NiftiFormat;

/// Size of the NIfTI-2 header proper (`sizeof_hdr`).
pub(crate) const HEADER_SIZE: usize = 540;
/// Header plus the 4-byte extension flag: where voxel data starts in the files we write.
pub(crate) const WRITE_VOX_OFFSET: usize = HEADER_SIZE + super::header::EXTENSION_FLAG_SIZE;

/// The magic of a single-file NIfTI-2: `n+2\0` then the check bytes.
const MAGIC: &[u8; 8] = b"n+2\0\r\n\x1a\n";
/// The check bytes that end the magic (DOS and Unix line ends, Ctrl-Z).
const CHECK_BYTES: [u8; 4] = [0x0d, 0x0a, 0x1a, 0x0a];

// Byte offsets of the fields we use (NIfTI-2 standard, `nifti2.h`).
const OFF_MAGIC: usize = 4;
const OFF_DATATYPE: usize = 12;
const OFF_BITPIX: usize = 14;
const OFF_DIM: usize = 16;
const OFF_PIXDIM: usize = 104;
const OFF_VOX_OFFSET: usize = 168;
const OFF_SCL_SLOPE: usize = 176;
const OFF_SCL_INTER: usize = 184;
const OFF_DESCRIP: usize = 240;
const OFF_QFORM_CODE: usize = 344;
const OFF_SFORM_CODE: usize = 348;
const OFF_QUATERN: usize = 352;
const OFF_QOFFSET: usize = 376;
const OFF_SROW: usize = 400;
const OFF_XYZT_UNITS: usize = 500;

/// Parse and check a NIfTI-2 header; `fields.bytes` is at least [`HEADER_SIZE`] long and its
/// `sizeof_hdr` reads 540 in `fields.big_endian` order.
pub(crate) fn parse(fields: &Fields) -> Result<Header, String> {
    let mut warnings = Vec::new();
    check_magic(&fields.array::<8>(OFF_MAGIC), &mut warnings)?;
    let dims = check_dims(fields.i64(OFF_DIM), |axis| fields.i64(OFF_DIM + 8 * axis))?;
    let datatype = check_datatype(fields.i16(OFF_DATATYPE))?;
    // i64 → f64 is exact over the accepted range (0 to 1e9); anything larger is refused anyway.
    let vox_offset = check_vox_offset(
        fields.i64(OFF_VOX_OFFSET) as f64,
        WRITE_VOX_OFFSET,
        &mut warnings,
    )?;
    Ok(Header {
        format: NiftiFormat::Nifti2,
        big_endian: fields.big_endian,
        dims,
        datatype,
        pixdim: fields.f64s(OFF_PIXDIM),
        vox_offset,
        scl_slope: fields.f64(OFF_SCL_SLOPE),
        scl_inter: fields.f64(OFF_SCL_INTER),
        qform_code: fields.i32(OFF_QFORM_CODE),
        sform_code: fields.i32(OFF_SFORM_CODE),
        quatern: fields.f64s(OFF_QUATERN),
        qoffset: fields.f64s(OFF_QOFFSET),
        srow: [
            fields.f64s(OFF_SROW),
            fields.f64s(OFF_SROW + 32),
            fields.f64s(OFF_SROW + 64),
        ],
        warnings,
    })
}

/// `n+2\0` and the check bytes. Zero check bytes (files from writers that skip them) are tolerated
/// with a warning, as nibabel does; any other value means the file was altered in transfer.
fn check_magic(magic: &[u8; 8], warnings: &mut Vec<String>) -> Result<(), String> {
    let (name, check) = magic.split_at(4);
    match name {
        b"n+2\0" => {}
        b"ni2\0" => return Err("two-file NIfTI-2 (.hdr/.img pair) is not supported".into()),
        _ => {
            return Err(format!(
                "wrong magic {:?} (expected \"n+2\" after a NIfTI-2 sizeof_hdr of 540)",
                String::from_utf8_lossy(name).trim_end_matches('\0')
            ))
        }
    }
    if check == CHECK_BYTES {
        Ok(())
    } else if check == [0; 4] {
        warnings.push("NIfTI-2 magic has no check bytes (expected 0d 0a 1a 0a)".into());
        Ok(())
    } else {
        Err(format!(
            "NIfTI-2 check bytes are {check:02x?}, expected [0d, 0a, 1a, 0a] (file altered by a text-mode transfer?)"
        ))
    }
}

/// A little-endian single-file NIfTI-2 header plus the empty extension flag ([`WRITE_VOX_OFFSET`]
/// bytes), with the same fields as the NIfTI-1 one the writer otherwise makes.
pub(crate) fn build(spec: &HeaderSpec) -> Vec<u8> {
    let mut out = vec![0u8; WRITE_VOX_OFFSET];
    let put_f64 =
        |out: &mut [u8], offset: usize, value: f64| put(out, offset, &value.to_le_bytes());
    put(&mut out, 0, &(HEADER_SIZE as i32).to_le_bytes());
    put(&mut out, OFF_MAGIC, MAGIC);
    put(&mut out, OFF_DATATYPE, &spec.datatype.code().to_le_bytes());
    let bitpix = 8 * spec.datatype.bytes_per_voxel() as i16;
    put(&mut out, OFF_BITPIX, &bitpix.to_le_bytes());
    let dims = [3, spec.dims[0], spec.dims[1], spec.dims[2], 1, 1, 1, 1];
    for (axis, &size) in dims.iter().enumerate() {
        put(&mut out, OFF_DIM + 8 * axis, &(size as i64).to_le_bytes());
    }
    let pixdim = [spec.qfac, spec.pixdim[0], spec.pixdim[1], spec.pixdim[2]];
    for (i, &value) in pixdim.iter().enumerate() {
        put_f64(&mut out, OFF_PIXDIM + 8 * i, value);
    }
    put(
        &mut out,
        OFF_VOX_OFFSET,
        &(WRITE_VOX_OFFSET as i64).to_le_bytes(),
    );
    put_f64(&mut out, OFF_SCL_SLOPE, 1.0);
    put_f64(&mut out, OFF_SCL_INTER, 0.0);
    put(&mut out, OFF_DESCRIP, b"brainmvp");
    put(
        &mut out,
        OFF_QFORM_CODE,
        &i32::from(spec.qform_code).to_le_bytes(),
    );
    put(
        &mut out,
        OFF_SFORM_CODE,
        &i32::from(spec.sform_code).to_le_bytes(),
    );
    for (i, &value) in spec.quatern.iter().chain(&spec.qoffset).enumerate() {
        put_f64(&mut out, OFF_QUATERN + 8 * i, value);
    }
    for (row, values) in spec.srow.iter().enumerate() {
        for (col, &value) in values.iter().enumerate() {
            put_f64(&mut out, OFF_SROW + 32 * row + 8 * col, value);
        }
    }
    put(&mut out, OFF_XYZT_UNITS, &2i32.to_le_bytes()); // NIFTI_UNITS_MM, no time unit
    out
}

#[cfg(test)]
mod tests {
    use super::super::header::parse as parse_any;
    use super::*;
    use crate::nifti::Datatype;

    fn spec() -> HeaderSpec {
        HeaderSpec {
            dims: [40_000, 5, 6],
            datatype: Datatype::F64,
            pixdim: [1.0, 2.0, 0.1],
            qfac: -1.0,
            qform_code: 1,
            quatern: [0.0, 1.0, 0.0],
            qoffset: [7.0, 8.0, 9.123456789],
            sform_code: 4,
            srow: [
                [-1.0, 0.0, 0.0, 7.0],
                [0.0, 2.0, 0.0, 8.0],
                [0.0, 0.0, 0.1, 9.123456789],
            ],
        }
    }

    /// The same header in big-endian order: every field of the layout byte-swapped.
    fn to_big_endian(little: &[u8]) -> Vec<u8> {
        let mut big = little.to_vec();
        let mut swap = |offset: usize, width: usize, count: usize| {
            for i in 0..count {
                big[offset + i * width..offset + (i + 1) * width].reverse();
            }
        };
        swap(0, 4, 1);
        swap(OFF_DATATYPE, 2, 2);
        swap(OFF_DIM, 8, 8);
        swap(OFF_PIXDIM, 8, 8);
        swap(OFF_VOX_OFFSET, 8, 3);
        swap(OFF_QFORM_CODE, 4, 2);
        swap(OFF_QUATERN, 8, 6 + 12);
        swap(OFF_XYZT_UNITS, 4, 1);
        big
    }

    #[test]
    fn built_header_parses_back_in_both_byte_orders() {
        let little = build(&spec());
        assert_eq!(little.len(), WRITE_VOX_OFFSET);
        for (bytes, big_endian) in [(to_big_endian(&little), true), (little, false)] {
            let header = parse_any(&bytes).expect("parse");
            assert_eq!(header.format, NiftiFormat::Nifti2);
            assert_eq!(header.big_endian, big_endian);
            assert_eq!(header.dims, vec![40_000, 5, 6]);
            assert_eq!(header.datatype, Datatype::F64);
            assert_eq!(header.pixdim[..4], [-1.0, 1.0, 2.0, 0.1]);
            assert_eq!(header.vox_offset, WRITE_VOX_OFFSET);
            assert_eq!((header.qform_code, header.sform_code), (1, 4));
            assert_eq!((header.scl_slope, header.scl_inter), (1.0, 0.0));
            assert_eq!(header.quatern, [0.0, 1.0, 0.0]);
            // f64 fields keep what f32 would round (9.123456789 is 9.123457 as f32).
            assert_eq!(header.qoffset, [7.0, 8.0, 9.123456789]);
            assert_eq!(header.srow, spec().srow);
            assert!(header.warnings.is_empty());
        }
    }

    #[test]
    fn bad_headers_are_refused_with_the_cause() {
        let good = build(&spec());
        let refused = |offset: usize, value: &[u8]| {
            let mut bytes = good.clone();
            bytes[offset..offset + value.len()].copy_from_slice(value);
            parse_any(&bytes).unwrap_err()
        };
        assert!(refused(OFF_MAGIC, b"n+1\0").contains("wrong magic \"n+1\""));
        assert!(refused(OFF_MAGIC, b"ni2\0").contains("two-file"));
        assert!(refused(OFF_MAGIC + 4, b"\n\n\x1a\n").contains("check bytes"));
        assert!(refused(OFF_DIM, &0i64.to_le_bytes()).contains("dim[0] is 0"));
        assert!(refused(OFF_DIM, &(1i64 << 32).to_le_bytes()).contains("dim[0] is 4294967296"));
        let negative = refused(OFF_DIM + 16, &(-3i64).to_le_bytes());
        assert!(negative.contains("dim[2] is -3"), "{negative}");
        assert!(refused(OFF_DIM + 24, &0i64.to_le_bytes()).contains("dim[3] is 0"));
        assert!(refused(OFF_DATATYPE, &1024i16.to_le_bytes()).contains("int64"));
        let vox_offset = refused(OFF_VOX_OFFSET, &(-1i64).to_le_bytes());
        assert!(vox_offset.contains("vox_offset -1"), "{vox_offset}");
        assert!(refused(OFF_VOX_OFFSET, &i64::MAX.to_le_bytes()).contains("vox_offset"));
    }

    #[test]
    fn missing_check_bytes_and_small_vox_offset_are_tolerated_with_warnings() {
        let mut bytes = build(&spec());
        bytes[OFF_MAGIC + 4..OFF_MAGIC + 8].fill(0);
        bytes[OFF_VOX_OFFSET..OFF_VOX_OFFSET + 8].copy_from_slice(&352i64.to_le_bytes());
        let header = parse_any(&bytes).expect("parse");
        assert_eq!(header.vox_offset, WRITE_VOX_OFFSET);
        assert_eq!(header.warnings.len(), 2, "{:?}", header.warnings);
    }
}
