//! The voxel-to-world affine of a NIfTI header (sform, else qform, else pixdim) and the
//! quaternion form (qform) of an affine, following the NIfTI-1 standard's formulas.

use super::header::Header;
use super::OrientationSource;
use crate::Affine;

/// A qform: rotation quaternion (b, c, d; a ≥ 0 implied), offsets, voxel sizes and handedness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Qform {
    pub quatern: [f64; 3],
    pub offset: [f64; 3],
    pub pixdim: [f64; 3],
    /// +1 or -1 (`pixdim[0]`): -1 flips the third axis.
    pub qfac: f64,
}

/// The header's affine and where it came from: sform when `sform_code > 0` and usable, else qform
/// when `qform_code > 0` and usable, else the pixdim diagonal (NIfTI "method 1").
pub(crate) fn header_affine(
    header: &Header,
    warnings: &mut Vec<String>,
) -> (Affine, OrientationSource) {
    if header.sform_code > 0 {
        let affine = sform_affine(header);
        if is_usable(&affine) {
            return (affine, OrientationSource::Sform);
        }
        warnings.push("sform is not finite or singular: ignored".into());
    }
    if header.qform_code > 0 {
        let affine = qform_affine(header);
        if is_usable(&affine) {
            return (affine, OrientationSource::Qform);
        }
        warnings.push("qform is not finite or singular: ignored".into());
    }
    let [dx, dy, dz] = positive_pixdim(header);
    let affine = [
        [dx, 0.0, 0.0, 0.0],
        [0.0, dy, 0.0, 0.0],
        [0.0, 0.0, dz, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    (affine, OrientationSource::Pixdim)
}

fn sform_affine(header: &Header) -> Affine {
    [
        header.srow[0],
        header.srow[1],
        header.srow[2],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn qform_affine(header: &Header) -> Affine {
    let qform = Qform {
        quatern: header.quatern,
        offset: header.qoffset,
        pixdim: positive_pixdim(header),
        qfac: if header.pixdim[0] < 0.0 { -1.0 } else { 1.0 },
    };
    qform_to_affine(&qform)
}

/// `pixdim[1..=3]`, with non-positive or non-finite sizes read as 1 (as `nifti1_io` does).
fn positive_pixdim(header: &Header) -> [f64; 3] {
    std::array::from_fn(|axis| {
        let size = header.pixdim[axis + 1];
        if size.is_finite() && size > 0.0 {
            size
        } else {
            1.0
        }
    })
}

/// Finite entries and a non-singular 3×3 part.
fn is_usable(affine: &Affine) -> bool {
    affine.iter().flatten().all(|v| v.is_finite()) && det3(&linear_part(affine)).abs() > 1e-12
}

fn linear_part(affine: &Affine) -> [[f64; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| affine[r][c]))
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The NIfTI-1 qform matrix: `R(quaternion) · diag(dx, dy, qfac·dz)` plus the offsets.
pub(crate) fn qform_to_affine(qform: &Qform) -> Affine {
    let [mut b, mut c, mut d] = qform.quatern;
    let squares = b * b + c * c + d * d;
    let a = if 1.0 - squares < 1e-7 {
        // Not a unit quaternion's vector part: normalise it and take a 180° rotation.
        let norm = squares.sqrt();
        if norm > 0.0 {
            (b, c, d) = (b / norm, c / norm, d / norm);
        }
        0.0
    } else {
        (1.0 - squares).sqrt()
    };
    let rotation = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - b * b - c * c,
        ],
    ];
    let scale = [
        qform.pixdim[0],
        qform.pixdim[1],
        qform.qfac * qform.pixdim[2],
    ];
    let mut affine = [[0.0; 4]; 4];
    for row in 0..3 {
        for col in 0..3 {
            affine[row][col] = rotation[row][col] * scale[col];
        }
        affine[row][3] = qform.offset[row];
    }
    affine[3][3] = 1.0;
    affine
}

/// The qform of `affine` when its columns are orthogonal (a rotation, possibly with a flip, times
/// voxel sizes); `None` for a sheared or singular affine, which a qform cannot express.
pub(crate) fn affine_to_qform(affine: &Affine) -> Option<Qform> {
    let mut columns: [[f64; 3]; 3] = std::array::from_fn(|c| std::array::from_fn(|r| affine[r][c]));
    let pixdim = columns.map(|col| col.iter().map(|v| v * v).sum::<f64>().sqrt());
    if pixdim.iter().any(|&size| !(size.is_finite() && size > 0.0)) {
        return None;
    }
    for (col, size) in columns.iter_mut().zip(pixdim) {
        col.iter_mut().for_each(|v| *v /= size);
    }
    let dot = |i: usize, j: usize| (0..3).map(|r| columns[i][r] * columns[j][r]).sum::<f64>();
    if dot(0, 1).abs() > 1e-5 || dot(0, 2).abs() > 1e-5 || dot(1, 2).abs() > 1e-5 {
        return None;
    }
    let mut rotation: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| columns[c][r]));
    let qfac = if det3(&rotation) < 0.0 { -1.0 } else { 1.0 };
    for row in rotation.iter_mut() {
        row[2] *= qfac;
    }
    Some(Qform {
        quatern: rotation_to_quaternion(&rotation),
        offset: [affine[0][3], affine[1][3], affine[2][3]],
        pixdim,
        qfac,
    })
}

/// Quaternion (b, c, d, with a ≥ 0) of a proper rotation matrix (NIfTI-1 standard's method).
fn rotation_to_quaternion(r: &[[f64; 3]; 3]) -> [f64; 3] {
    let trace_plus_one = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d);
    if trace_plus_one > 0.5 {
        a = 0.5 * trace_plus_one.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
    }
    if a < 0.0 {
        [-b, -c, -d]
    } else {
        [b, c, d]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: &Affine, b: &Affine) {
        for (ra, rb) in a.iter().zip(b) {
            for (x, y) in ra.iter().zip(rb) {
                assert!((x - y).abs() < 1e-9, "{a:?} != {b:?}");
            }
        }
    }

    /// A rotation by `angle` about a unit axis (Rodrigues), times `scale` per column.
    fn rotated(axis: [f64; 3], angle: f64, scale: [f64; 3], offset: [f64; 3]) -> Affine {
        let (s, c) = angle.sin_cos();
        let [x, y, z] = axis;
        let r = [
            [
                c + x * x * (1.0 - c),
                x * y * (1.0 - c) - z * s,
                x * z * (1.0 - c) + y * s,
            ],
            [
                y * x * (1.0 - c) + z * s,
                c + y * y * (1.0 - c),
                y * z * (1.0 - c) - x * s,
            ],
            [
                z * x * (1.0 - c) - y * s,
                z * y * (1.0 - c) + x * s,
                c + z * z * (1.0 - c),
            ],
        ];
        let mut affine = [[0.0; 4]; 4];
        for row in 0..3 {
            for col in 0..3 {
                affine[row][col] = r[row][col] * scale[col];
            }
            affine[row][3] = offset[row];
        }
        affine[3][3] = 1.0;
        affine
    }

    #[test]
    fn qform_round_trips_rotations_with_and_without_flip() {
        let axis = [1.0 / 3f64.sqrt(); 3];
        for angle in [0.0, 0.3, 1.5, std::f64::consts::PI, 4.0] {
            for scale in [[1.0, 2.0, 3.0], [-2.0, 2.0, 2.0], [1.0, 1.0, -1.5]] {
                let affine = rotated(axis, angle, scale, [5.0, -6.0, 7.0]);
                let qform = affine_to_qform(&affine).expect("orthogonal");
                assert_close(&qform_to_affine(&qform), &affine);
            }
        }
    }

    #[test]
    fn qform_of_las_matches_the_standard_values() {
        // LAS 2 mm, as in nibabel's anatomical.nii: quaternion (0, 1, 0) (180° about y), qfac -1.
        let affine = [
            [-2.0, 0.0, 0.0, 32.0],
            [0.0, 2.0, 0.0, -40.0],
            [0.0, 0.0, 2.0, -16.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let qform = affine_to_qform(&affine).expect("orthogonal");
        assert_eq!(qform.quatern, [0.0, 1.0, 0.0]);
        assert_eq!(qform.qfac, -1.0);
        assert_eq!(qform.pixdim, [2.0, 2.0, 2.0]);
    }

    #[test]
    fn sheared_affine_has_no_qform() {
        let mut affine = crate::volume::IDENTITY;
        affine[0][1] = 0.5;
        assert_eq!(affine_to_qform(&affine), None);
    }
}
