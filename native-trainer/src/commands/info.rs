//! `brainmvp info FILE...`: what is in each NIfTI file, one `key: value` line per fact under a
//! `== FILE` line, so the output greps well. Unreadable files print their one-line error on stderr;
//! the others are still shown, and the exit status is 1 if any failed.

use brainmvp_core::nifti::{self, NiftiImage, OrientationSource};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct InfoArgs {
    /// NIfTI-1 or NIfTI-2 files (`.nii` or `.nii.gz`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let mut failed = 0usize;
    for path in &args.files {
        match nifti::read_path(path) {
            Ok(image) => print!("{}", describe(path, &image)),
            Err(err) => {
                eprintln!("{err}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The report for one file, one `key: value` per line after `== path`.
fn describe(path: &Path, image: &NiftiImage) -> String {
    let volume = &image.volume;
    let dims: Vec<String> = image.full_dims.iter().map(usize::to_string).collect();
    let spacing: Vec<String> = volume.spacing().iter().map(|&v| short(v)).collect();
    let (min, mean, max) = statistics(&volume.data);
    let source = match image.orientation_source {
        OrientationSource::Sform => "sform",
        OrientationSource::Qform => "qform",
        OrientationSource::Pixdim => "pixdim",
    };
    let mut lines = vec![
        format!("== {}", path.display()),
        format!("format: {}", image.format),
        format!("dims: {}", dims.join("x")),
        format!("voxel_size_mm: {}", spacing.join(" ")),
        format!("datatype: {}", image.datatype),
        format!(
            "endianness: {}",
            if image.big_endian { "big" } else { "little" }
        ),
        format!("orientation: {}", nifti::orientation_code(&volume.affine)),
        format!("orientation_source: {source}"),
        format!("min: {}", short(min)),
        format!("mean: {}", short(mean)),
        format!("max: {}", short(max)),
    ];
    lines.extend(image.warnings.iter().map(|w| format!("warning: {w}")));
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Minimum, mean and maximum (mean summed in `f64`); zeros for an empty volume.
fn statistics(values: &[f32]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let (mut min, mut max, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f64);
    for &value in values {
        min = min.min(value);
        max = max.max(value);
        sum += f64::from(value);
    }
    (f64::from(min), sum / values.len() as f64, f64::from(max))
}

/// A number with at most 6 decimals and no trailing zeros: `2`, `0.273968`, `-610`.
fn short(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(short(2.0), "2");
        assert_eq!(short(0.2739680481), "0.273968");
        assert_eq!(short(-610.0), "-610");
        assert_eq!(short(-0.0000001), "0");
        assert_eq!(short(1.0e6), "1000000");
    }

    #[test]
    fn describes_the_big_endian_fixture() {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = brainmvp_core::synth::templates::shared_mri_dir(&repository)
            .join("fixtures/anatomical.nii");
        let image = nifti::read_path(&path).expect("read");
        let report = describe(&path, &image);
        let lines: Vec<&str> = report.lines().skip(1).collect();
        // Values as nibabel 5.4.2 reports them for this file (mean 8401.06673).
        assert_eq!(
            lines,
            [
                "format: NIfTI-1",
                "dims: 33x41x25",
                "voxel_size_mm: 2 2 2",
                "datatype: int16",
                "endianness: big",
                "orientation: LAS",
                "orientation_source: sform",
                "min: -610",
                "mean: 8401.066726",
                "max: 30393",
            ]
        );
    }

    #[test]
    fn describes_a_nifti2_fixture() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core/tests/fixtures/nifti2/anatomical_i16_slope_qform_be.nii.gz");
        let image = nifti::read_path(&path).expect("read");
        let report = describe(&path, &image);
        let lines: Vec<&str> = report.lines().skip(1).collect();
        // nibabel 5.4.2 on this file: int16 * 0.5 - 3, qform only, mean 3889.058160.
        assert_eq!(
            lines,
            [
                "format: NIfTI-2",
                "dims: 12x16x12",
                "voxel_size_mm: 2 2 2",
                "datatype: int16",
                "endianness: big",
                "orientation: LAS",
                "orientation_source: qform",
                "min: -70.5",
                "mean: 3889.05816",
                "max: 6678.5",
            ]
        );
    }

    #[test]
    fn statistics_of_values() {
        assert_eq!(statistics(&[1.0, -2.0, 4.0]), (-2.0, 1.0, 4.0));
        assert_eq!(statistics(&[]), (0.0, 0.0, 0.0));
    }
}
