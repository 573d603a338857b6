//! Orientation codes and reorientation to RAS by axis permutation and flips.
//!
//! Reorientation only permutes and mirrors the voxel grid (no interpolation): every voxel keeps its
//! value and its world position, and [`Reorientation::undo`] restores the source grid exactly.

use crate::volume::mat_mul;
use crate::{Affine, Error, Result, Volume};
use serde::{Deserialize, Serialize};

/// How a volume was taken from its source grid to the RAS grid, so that results can be put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reorientation {
    /// Grid size of the source volume.
    pub source_dims: [usize; 3],
    /// Affine of the source volume.
    pub source_affine: Affine,
    /// For each RAS output axis (R, A, S), the source axis it comes from.
    pub source_axis: [usize; 3],
    /// For each RAS output axis, whether the source axis runs the other way (L, P or I).
    pub flipped: [bool; 3],
}

/// The axis codes of `affine` (nibabel's `aff2axcodes`): for each voxel axis the world direction it
/// points to, e.g. `['L', 'A', 'S']`.
///
/// As nibabel: the columns are normalised and replaced by the nearest orthogonal matrix, then voxel
/// axes in order take the world axis of their largest remaining component (first on ties), so an
/// oblique affine gets its closest orientation and the result is always a permutation of R/L, A/P,
/// S/I. A degenerate (zero) column takes the world axis left over, pointing +.
pub fn axcodes(affine: &Affine) -> [char; 3] {
    const POSITIVE: [char; 3] = ['R', 'A', 'S'];
    const NEGATIVE: [char; 3] = ['L', 'P', 'I'];
    let (world_axis, negative) = axis_assignment(affine);
    std::array::from_fn(|axis| {
        let world = world_axis[axis];
        if negative[axis] {
            NEGATIVE[world]
        } else {
            POSITIVE[world]
        }
    })
}

/// `axcodes` as a string, e.g. `"LAS"`.
pub fn orientation_code(affine: &Affine) -> String {
    axcodes(affine).iter().collect()
}

/// For each voxel axis: the world axis (0 = x/R, 1 = y/A, 2 = z/S) it runs along and whether it
/// runs the negative way.
fn axis_assignment(affine: &Affine) -> ([usize; 3], [bool; 3]) {
    let mut rotation = nearest_rotation(&normalised_columns(affine));
    let mut world_axis = [usize::MAX; 3];
    let mut negative = [false; 3];
    let mut taken = [false; 3];
    for axis in 0..3 {
        let column = [rotation[0][axis], rotation[1][axis], rotation[2][axis]];
        if column.iter().all(|v| v.abs() < 1e-12 || !v.is_finite()) {
            continue;
        }
        let mut best = 0;
        for world in 1..3 {
            if column[world].abs() > column[best].abs() {
                best = world;
            }
        }
        world_axis[axis] = best;
        negative[axis] = column[best] < 0.0;
        taken[best] = true;
        rotation[best] = [0.0; 3];
    }
    // Degenerate columns take the world axes left over, in order.
    for (axis, world) in world_axis.iter_mut().enumerate() {
        if *world == usize::MAX {
            let free = (0..3).find(|&candidate| !taken[candidate]).unwrap_or(axis);
            *world = free;
            taken[free] = true;
        }
    }
    (world_axis, negative)
}

/// The 3×3 part of `affine` with unit-length columns (zero or non-finite columns become 0).
fn normalised_columns(affine: &Affine) -> [[f64; 3]; 3] {
    let mut matrix: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| affine[r][c]));
    for col in 0..3 {
        let length = (0..3).map(|r| matrix[r][col].powi(2)).sum::<f64>().sqrt();
        for row in matrix.iter_mut() {
            row[col] = if length > 0.0 && length.is_finite() {
                row[col] / length
            } else {
                0.0
            };
        }
    }
    matrix
}

/// The orthogonal polar factor of `m` (what nibabel gets from its SVD), by Newton iteration
/// `X ← (X + X⁻ᵀ) / 2`; `m` itself when singular.
fn nearest_rotation(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut x = *m;
    for _ in 0..60 {
        let Some(inverse) = invert3(&x) else {
            return *m;
        };
        let mut change = 0.0f64;
        for r in 0..3 {
            for c in 0..3 {
                let next = 0.5 * (x[r][c] + inverse[c][r]);
                change = change.max((next - x[r][c]).abs());
                x[r][c] = next;
            }
        }
        if change < 1e-14 {
            break;
        }
    }
    x
}

fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let cofactor = |r: usize, c: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum::<f64>();
    // Also refuses a NaN determinant.
    if det.is_nan() || det.abs() <= 1e-12 {
        return None;
    }
    Some(std::array::from_fn(|r| {
        std::array::from_fn(|c| cofactor(c, r) / det)
    }))
}

/// Permute and flip `volume` so its voxel axes point R, A, S; the affine is updated so every voxel
/// keeps its world position.
pub fn to_ras<T: Copy>(volume: &Volume<T>) -> (Volume<T>, Reorientation) {
    let (world_axis, negative) = axis_assignment(&volume.affine);
    let mut source_axis = [0; 3];
    let mut flipped = [false; 3];
    for axis in 0..3 {
        source_axis[world_axis[axis]] = axis;
        flipped[world_axis[axis]] = negative[axis];
    }
    let reorientation = Reorientation {
        source_dims: volume.dims,
        source_affine: volume.affine,
        source_axis,
        flipped,
    };
    let (dims, data) = permute_flip(volume.dims, &volume.data, source_axis, flipped);
    let ras = Volume {
        dims,
        affine: reorientation.ras_affine(),
        data,
    };
    (ras, reorientation)
}

impl Reorientation {
    /// Put a volume on the RAS grid back onto the source grid (dims and affine of the source).
    pub fn undo<T: Copy>(&self, ras: &Volume<T>) -> Result<Volume<T>> {
        let expected = self.ras_dims();
        if ras.dims != expected || ras.data.len() != expected.iter().product::<usize>() {
            return Err(Error::new(
                "reorientation",
                format!(
                    "cannot undo: volume has dims {:?} ({} voxels), the RAS grid has {expected:?}",
                    ras.dims,
                    ras.data.len()
                ),
            ));
        }
        // The inverse map: source axis `source_axis[k]` comes from RAS axis k, same flip.
        let mut ras_axis = [0; 3];
        let mut flipped = [false; 3];
        for k in 0..3 {
            ras_axis[self.source_axis[k]] = k;
            flipped[self.source_axis[k]] = self.flipped[k];
        }
        let (dims, data) = permute_flip(ras.dims, &ras.data, ras_axis, flipped);
        Ok(Volume {
            dims,
            affine: self.source_affine,
            data,
        })
    }

    /// Grid size on the RAS grid.
    pub fn ras_dims(&self) -> [usize; 3] {
        self.source_axis.map(|axis| self.source_dims[axis])
    }

    /// The affine of the RAS grid: `source_affine · T`, where `T` maps RAS voxel indices to source
    /// voxel indices (a signed permutation plus `n - 1` along flipped axes).
    pub fn ras_affine(&self) -> Affine {
        let mut ras_to_source = [[0.0; 4]; 4];
        ras_to_source[3][3] = 1.0;
        for (k, &axis) in self.source_axis.iter().enumerate() {
            if self.flipped[k] {
                ras_to_source[axis][k] = -1.0;
                ras_to_source[axis][3] = self.source_dims[axis] as f64 - 1.0;
            } else {
                ras_to_source[axis][k] = 1.0;
            }
        }
        mat_mul(&self.source_affine, &ras_to_source)
    }
}

/// Reorder `data` (x fastest, grid `dims`) so output axis `k` runs along input axis `from[k]`,
/// backwards when `flip[k]`. Returns the output dims and data.
fn permute_flip<T: Copy>(
    dims: [usize; 3],
    data: &[T],
    from: [usize; 3],
    flip: [bool; 3],
) -> ([usize; 3], Vec<T>) {
    let out_dims = from.map(|axis| dims[axis]);
    if from == [0, 1, 2] && flip == [false; 3] {
        return (out_dims, data.to_vec());
    }
    let in_strides = [1, dims[0], dims[0] * dims[1]];
    // Step (in input elements) per output index along each output axis, and the input index of
    // output voxel (0, 0, 0).
    let mut steps = [0isize; 3];
    let mut start = 0usize;
    for k in 0..3 {
        let stride = in_strides[from[k]];
        if flip[k] {
            steps[k] = -(stride as isize);
            start += (dims[from[k]].saturating_sub(1)) * stride;
        } else {
            steps[k] = stride as isize;
        }
    }
    let mut out = Vec::with_capacity(data.len());
    let mut plane_start = start as isize;
    for _ in 0..out_dims[2] {
        let mut row_start = plane_start;
        for _ in 0..out_dims[1] {
            let mut index = row_start;
            for _ in 0..out_dims[0] {
                out.push(data[index as usize]);
                index += steps[0];
            }
            row_start += steps[1];
        }
        plane_start += steps[2];
    }
    (out_dims, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagonal(x: f64, y: f64, z: f64) -> Affine {
        [
            [x, 0.0, 0.0, 0.0],
            [0.0, y, 0.0, 0.0],
            [0.0, 0.0, z, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    #[test]
    fn axcodes_of_axis_aligned_affines() {
        assert_eq!(orientation_code(&diagonal(-2.0, 2.0, 2.0)), "LAS");
        assert_eq!(orientation_code(&diagonal(1.0, -1.0, -3.0)), "RPI");
        // Axes stored as S, R, A: voxel x runs up, y runs right, z runs anterior.
        let sra = [
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(orientation_code(&sra), "SRA");
    }

    #[test]
    fn axcodes_of_oblique_affine_take_the_dominant_direction() {
        // 30° rotation about z of an LAS grid: x still mostly L, y still mostly A.
        let (s, c) = (30f64.to_radians().sin(), 30f64.to_radians().cos());
        let affine = [
            [-c, -s, 0.0, 0.0],
            [-s, c, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(orientation_code(&affine), "LAS");
        // Exactly 45°: ties resolve to a permutation (nibabel gives "RAS" here too).
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let tie = [
            [h, -h, 0.0, 0.0],
            [h, h, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(orientation_code(&tie), "RAS");
    }

    #[test]
    fn degenerate_affine_still_gives_a_permutation() {
        // Zero columns take the world axes left over, in order.
        assert_eq!(axcodes(&diagonal(0.0, 0.0, -1.0)), ['R', 'A', 'I']);
        assert_eq!(axcodes(&diagonal(f64::NAN, 0.0, 0.0)), ['R', 'A', 'S']);
    }
}
