//! NIfTI voxel types: codes, names, and conversion of raw voxel bytes to and from `f32`.

use super::Datatype;
use std::fmt;

impl Datatype {
    /// Every supported datatype.
    pub const ALL: [Datatype; 8] = [
        Datatype::U8,
        Datatype::I8,
        Datatype::I16,
        Datatype::U16,
        Datatype::I32,
        Datatype::U32,
        Datatype::F32,
        Datatype::F64,
    ];

    /// The header's `datatype` code (`DT_UINT8` = 2, ...).
    pub fn code(self) -> i16 {
        match self {
            Datatype::U8 => 2,
            Datatype::I16 => 4,
            Datatype::I32 => 8,
            Datatype::F32 => 16,
            Datatype::F64 => 64,
            Datatype::I8 => 256,
            Datatype::U16 => 512,
            Datatype::U32 => 768,
        }
    }

    /// The datatype with header code `code`, if it is one we read.
    pub fn from_code(code: i16) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|dt| dt.code() == code)
    }

    /// Bytes per voxel (`bitpix / 8`).
    pub fn bytes_per_voxel(self) -> usize {
        match self {
            Datatype::U8 | Datatype::I8 => 1,
            Datatype::I16 | Datatype::U16 => 2,
            Datatype::I32 | Datatype::U32 | Datatype::F32 => 4,
            Datatype::F64 => 8,
        }
    }

    /// Lower-case name as numpy spells it: `uint8`, `int16`, `float32`, ...
    pub fn name(self) -> &'static str {
        match self {
            Datatype::U8 => "uint8",
            Datatype::I8 => "int8",
            Datatype::I16 => "int16",
            Datatype::U16 => "uint16",
            Datatype::I32 => "int32",
            Datatype::U32 => "uint32",
            Datatype::F32 => "float32",
            Datatype::F64 => "float64",
        }
    }

    /// Whether values are stored as integers (written by rounding and clamping).
    pub fn is_integer(self) -> bool {
        !matches!(self, Datatype::F32 | Datatype::F64)
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of a NIfTI datatype code we do not read, for error messages.
pub(crate) fn unsupported_name(code: i16) -> &'static str {
    match code {
        0 => "unknown",
        1 => "binary",
        32 => "complex64",
        128 => "rgb24",
        1024 => "int64",
        1280 => "uint64",
        1536 => "float128",
        1792 => "complex128",
        2048 => "complex256",
        2304 => "rgba32",
        _ => "not a NIfTI datatype",
    }
}

/// `value = raw * slope + inter`, or no scaling at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scaling {
    pub slope: f64,
    pub inter: f64,
}

impl Scaling {
    /// The header's `scl_slope`/`scl_inter` as the NIfTI standard reads them: a slope of 0 or a
    /// non-finite slope means "no scaling"; a non-finite intercept counts as 0.
    pub fn from_header(slope: f64, inter: f64) -> Option<Scaling> {
        if slope == 0.0 || !slope.is_finite() {
            return None;
        }
        let inter = if inter.is_finite() { inter } else { 0.0 };
        if slope == 1.0 && inter == 0.0 {
            return None;
        }
        Some(Scaling { slope, inter })
    }
}

/// Decode `raw` (whole voxels of `datatype`) into `f32`, scaled, with non-finite results set to 0.
/// Returns the values and how many were non-finite.
pub(crate) fn decode_voxels(
    raw: &[u8],
    datatype: Datatype,
    big_endian: bool,
    scaling: Option<Scaling>,
) -> (Vec<f32>, usize) {
    macro_rules! decode_as {
        ($ty:ty) => {{
            let read: fn([u8; std::mem::size_of::<$ty>()]) -> f64 = if big_endian {
                |bytes| <$ty>::from_be_bytes(bytes) as f64
            } else {
                |bytes| <$ty>::from_le_bytes(bytes) as f64
            };
            if scaling.is_none() && datatype.is_integer() {
                // Integers convert to finite floats: no check needed (and the loop vectorises).
                let values = raw.chunks_exact(std::mem::size_of::<$ty>());
                let read_chunk = |chunk: &[u8]| {
                    read(<[u8; std::mem::size_of::<$ty>()]>::try_from(chunk).unwrap_or_default())
                };
                (values.map(|chunk| read_chunk(chunk) as f32).collect(), 0)
            } else {
                convert(raw, read, scaling)
            }
        }};
    }
    match datatype {
        Datatype::U8 => decode_as!(u8),
        Datatype::I8 => decode_as!(i8),
        Datatype::I16 => decode_as!(i16),
        Datatype::U16 => decode_as!(u16),
        Datatype::I32 => decode_as!(i32),
        Datatype::U32 => decode_as!(u32),
        Datatype::F32 => decode_as!(f32),
        Datatype::F64 => decode_as!(f64),
    }
}

/// The per-voxel loop behind [`decode_voxels`], monomorphised per voxel width.
fn convert<const WIDTH: usize>(
    raw: &[u8],
    read: fn([u8; WIDTH]) -> f64,
    scaling: Option<Scaling>,
) -> (Vec<f32>, usize) {
    let mut nonfinite = 0usize;
    let (slope, inter) = scaling.map_or((1.0, 0.0), |s| (s.slope, s.inter));
    let values = raw
        .chunks_exact(WIDTH)
        .map(|chunk| {
            let bytes = <[u8; WIDTH]>::try_from(chunk).unwrap_or([0; WIDTH]);
            let value = (read(bytes) * slope + inter) as f32;
            if value.is_finite() {
                value
            } else {
                nonfinite += 1;
                0.0
            }
        })
        .collect();
    (values, nonfinite)
}

/// Append `values` to `out` as little-endian `datatype`; integer types are rounded to the nearest
/// integer and clamped to the type's range (NaN becomes 0).
pub(crate) fn encode_voxels(values: &[f32], datatype: Datatype, out: &mut Vec<u8>) {
    out.reserve(values.len() * datatype.bytes_per_voxel());
    macro_rules! encode_as {
        ($conv:expr) => {
            for &value in values {
                out.extend_from_slice(&$conv(value).to_le_bytes());
            }
        };
    }
    // `as` from float to integer saturates and maps NaN to 0: exactly rounding + clamping.
    match datatype {
        Datatype::U8 => encode_as!(|v: f32| v.round() as u8),
        Datatype::I8 => encode_as!(|v: f32| v.round() as i8),
        Datatype::I16 => encode_as!(|v: f32| v.round() as i16),
        Datatype::U16 => encode_as!(|v: f32| v.round() as u16),
        Datatype::I32 => encode_as!(|v: f32| f64::from(v).round() as i32),
        Datatype::U32 => encode_as!(|v: f32| f64::from(v).round() as u32),
        Datatype::F32 => encode_as!(|v: f32| v),
        Datatype::F64 => encode_as!(f64::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_sizes_match_bitpix() {
        for dt in Datatype::ALL {
            assert_eq!(Datatype::from_code(dt.code()), Some(dt));
        }
        assert_eq!(Datatype::from_code(1024), None);
        assert_eq!(Datatype::I16.bytes_per_voxel(), 2);
        assert_eq!(Datatype::F64.to_string(), "float64");
    }

    #[test]
    fn integer_encoding_rounds_and_clamps() {
        let mut out = Vec::new();
        encode_voxels(&[-3.6, 1.4, 300.0, f32::NAN], Datatype::U8, &mut out);
        assert_eq!(out, vec![0, 1, 255, 0]);
        out.clear();
        encode_voxels(&[-40000.0, 2.5, -2.5], Datatype::I16, &mut out);
        let (values, nonfinite) = decode_voxels(&out, Datatype::I16, false, None);
        assert_eq!(values, vec![-32768.0, 3.0, -3.0]);
        assert_eq!(nonfinite, 0);
    }

    #[test]
    fn scaling_follows_the_standard() {
        assert_eq!(Scaling::from_header(0.0, 5.0), None);
        assert_eq!(Scaling::from_header(f64::NAN, 5.0), None);
        assert_eq!(Scaling::from_header(1.0, 0.0), None);
        assert_eq!(
            Scaling::from_header(2.0, f64::INFINITY),
            Some(Scaling {
                slope: 2.0,
                inter: 0.0
            })
        );
        let (values, _) = decode_voxels(
            &[1, 0, 0, 2],
            Datatype::I16,
            true,
            Scaling::from_header(0.5, -1.0),
        );
        // Big-endian 256 and 2, scaled: 256 * 0.5 - 1 and 2 * 0.5 - 1.
        assert_eq!(values, vec![127.0, 0.0]);
    }
}
