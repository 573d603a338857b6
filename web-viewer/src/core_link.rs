//! Proof that `brainmvp-core` is linked into the page and works without a file system: a small
//! label map is encoded as `.nii.gz` in memory and decoded again with the core NIfTI code.

use brainmvp_core::{nifti, Volume};

/// The version of the linked `brainmvp-core`.
pub const VERSION: &str = brainmvp_core::VERSION;

/// Dimensions of the test label map (x fastest).
const DIMS: [usize; 3] = [3, 2, 2];

/// A 2 mm voxel grid shifted away from the origin, so that a lost affine is noticed.
const AFFINE: [[f64; 4]; 4] = [
    [2.0, 0.0, 0.0, -10.0],
    [0.0, 2.0, 0.0, 20.0],
    [0.0, 0.0, 2.0, -30.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Encode a 3×2×2 uint8 label map as `.nii.gz` bytes, decode it, and check that dims, affine and
/// voxel values survive; returns one line for the page or the reason it failed.
pub fn nifti_round_trip() -> Result<String, String> {
    let labels: Vec<u8> = (0..12).map(|index| (index * 7 % 5) as u8).collect();
    let original = Volume::from_vec(DIMS, AFFINE, labels);
    let bytes = nifti::encode_u8(&original, true).map_err(|err| err.to_string())?;
    let decoded = nifti::read_bytes(&bytes, "round-trip.nii.gz").map_err(|err| err.to_string())?;
    let volume = &decoded.volume;
    if volume.dims != DIMS {
        return Err(format!("dims {:?}, expected {DIMS:?}", volume.dims));
    }
    if volume.affine != AFFINE {
        return Err(format!("affine {:?}, expected {AFFINE:?}", volume.affine));
    }
    let values_match = volume
        .data
        .iter()
        .zip(&original.data)
        .all(|(&decoded_value, &label)| decoded_value == f32::from(label));
    if !values_match {
        return Err(format!(
            "voxels {:?}, expected {:?}",
            volume.data, original.data
        ));
    }
    Ok(format!(
        "NIfTI round trip ok ({}×{}×{} uint8 label map, {} bytes as .nii.gz)",
        DIMS[0],
        DIMS[1],
        DIMS[2],
        bytes.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nifti_round_trip_succeeds() {
        let line = nifti_round_trip().unwrap();
        assert!(line.starts_with("NIfTI round trip ok (3×2×2"), "{line}");
    }
}
