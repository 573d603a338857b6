//! Fuzz the NIfTI-1 reader: any bytes (plain or gzip) must give `Ok` or a one-line `Err` naming
//! the input, never a panic, an overflow or an allocation beyond the limits.
#![no_main]

use brainmvp_core::nifti::{self, ReadLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small voxel bound keeps each run fast; the checks are the same at any bound.
    let limits = ReadLimits {
        max_voxels: 1 << 22,
    };
    match nifti::read_bytes_with_limits(data, "fuzz.nii", limits) {
        Ok(image) => {
            let volume = &image.volume;
            assert_eq!(volume.data.len(), volume.dims.iter().product::<usize>());
            assert!(volume.data.iter().all(|v| v.is_finite()));
            // Reorientation must be exact and reversible for whatever affine the header gave.
            let (ras, reorientation) = nifti::to_ras(volume);
            let back = reorientation.undo(&ras).expect("undo of to_ras");
            assert_eq!(back.data, volume.data);
        }
        Err(err) => {
            let text = err.to_string();
            assert!(text.starts_with("fuzz.nii: "), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }
});
