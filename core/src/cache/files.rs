//! Cache files on disk: names and voxel encodings (written through [`crate::fs`]).

use super::manifest::CacheDtype;
use crate::fs::write_atomic;
use crate::Result;
use half::f16;
use std::path::Path;

/// Suffix of the per-subject record written after a subject's volumes (used to resume).
pub const SUBJECT_RECORD_SUFFIX: &str = ".subject.json";

/// Voxels converted per write call when encoding.
const ENCODE_CHUNK: usize = 1 << 16;

/// A file-name-safe stem for a subject id: characters other than `A-Z a-z 0-9 . _ -` become `_`,
/// and a leading `.` becomes `_` (no hidden files, no `..`).
pub fn file_stem(id: &str) -> String {
    let mut stem: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() || stem.starts_with('.') {
        stem.insert(0, '_');
    }
    stem
}

/// Write `values` little-endian in `dtype`.
pub fn write_image(path: &Path, values: &[f32], dtype: CacheDtype) -> Result<()> {
    write_atomic(path, |out| {
        let mut bytes = Vec::with_capacity(ENCODE_CHUNK * dtype.bytes());
        for chunk in values.chunks(ENCODE_CHUNK) {
            bytes.clear();
            match dtype {
                CacheDtype::F16 => {
                    for &v in chunk {
                        bytes.extend_from_slice(&f16::from_f32(v).to_le_bytes());
                    }
                }
                CacheDtype::F32 => {
                    for &v in chunk {
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
            out.write_all(&bytes)?;
        }
        Ok(())
    })
}

/// Write a `u8` label map.
pub fn write_label(path: &Path, values: &[u8]) -> Result<()> {
    write_atomic(path, |out| out.write_all(values))
}

/// Decode little-endian voxels of `dtype` from `bytes` into `out` (`out.len()` voxels).
pub fn decode_into(bytes: &[u8], dtype: CacheDtype, out: &mut [f32]) {
    match dtype {
        CacheDtype::F16 => decode_f16(bytes, out),
        CacheDtype::F32 => {
            for (value, raw) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *value = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            }
        }
    }
}

fn decode_f16(bytes: &[u8], out: &mut [f32]) {
    // Fast path (little-endian host, 2-byte aligned): half's SIMD conversion on the slice itself.
    #[cfg(target_endian = "little")]
    if let Ok(halves) = bytemuck::try_cast_slice::<u8, f16>(bytes) {
        use half::slice::HalfFloatSliceExt;
        halves.convert_to_f32_slice(out);
        return;
    }
    for (value, raw) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *value = f16::from_le_bytes([raw[0], raw[1]]).to_f32();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe() {
        assert_eq!(file_stem("BraTS2021_00001"), "BraTS2021_00001");
        assert_eq!(file_stem("a/b c"), "a_b_c");
        assert_eq!(file_stem(".."), "_..");
        assert_eq!(file_stem(""), "_");
    }

    #[test]
    fn encode_decode_round_trip_in_both_dtypes() {
        let dir = std::env::temp_dir().join(format!("brainmvp-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let values: Vec<f32> = (0..70_000).map(|i| (i as f32 * 0.37).sin()).collect();
        for dtype in [CacheDtype::F16, CacheDtype::F32] {
            let path = dir.join(format!("v.{}", dtype.extension()));
            write_image(&path, &values, dtype).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), values.len() * dtype.bytes());
            assert!(!crate::fs::temp_path(&path).exists());
            let mut decoded = vec![0.0; values.len()];
            decode_into(&bytes, dtype, &mut decoded);
            // Also the unaligned (fallback) path for f16.
            let mut shifted = vec![0u8; 1];
            shifted.extend_from_slice(&bytes);
            let mut decoded_unaligned = vec![0.0; values.len()];
            decode_into(&shifted[1..], dtype, &mut decoded_unaligned);
            for ((v, d), u) in values.iter().zip(&decoded).zip(&decoded_unaligned) {
                let expected = match dtype {
                    CacheDtype::F16 => f16::from_f32(*v).to_f32(),
                    CacheDtype::F32 => *v,
                };
                assert_eq!(*d, expected);
                assert_eq!(*u, expected);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
