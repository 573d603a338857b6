//! Putting an image onto another image's grid through world space (their affines): the clinical
//! case of a 1 mm T1 with a 3 mm FLAIR, or two acquisitions with different fields of view.
//!
//! Output voxel `v` of the reference grid sits at world `A_ref · v`, which is voxel
//! `A_src⁻¹ · A_ref · v` of the source; images are interpolated trilinearly there, label maps take
//! the nearest voxel. A reference voxel more than half a voxel outside the source's grid gets 0
//! (background). Images that share no world space with the reference are refused.

use crate::volume::{mat_mul, voxel_to_world};
use crate::{Affine, Error, Result, Volume};

/// Largest difference (mm) between two affines' entries that still counts as the same grid.
pub const SAME_GRID_TOLERANCE_MM: f64 = 1e-3;

/// Whether a `dims`/`affine` grid is the reference's own (same dims, affines within
/// [`SAME_GRID_TOLERANCE_MM`]).
pub fn same_grid(dims: [usize; 3], affine: &Affine, reference: ([usize; 3], &Affine)) -> bool {
    dims == reference.0
        && (0..3).all(|row| {
            (0..4).all(|col| {
                (affine[row][col] - reference.1[row][col]).abs() <= SAME_GRID_TOLERANCE_MM
            })
        })
}

/// The 4×4 inverse of an affine (rotation/zoom/shear part invertible), `None` when singular.
pub fn invert_affine(affine: &Affine) -> Option<Affine> {
    let m: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| affine[r][c]));
    let cofactor = |r: usize, c: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum::<f64>();
    if !det.is_finite() || det.abs() <= 1e-12 {
        return None;
    }
    let linear: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| cofactor(c, r) / det));
    let mut inverse = crate::volume::IDENTITY;
    for r in 0..3 {
        inverse[r][..3].copy_from_slice(&linear[r]);
        inverse[r][3] = -(0..3).map(|c| linear[r][c] * affine[c][3]).sum::<f64>();
    }
    Some(inverse)
}

/// Source voxel coordinates of every reference voxel: `A_src⁻¹ · A_ref`.
fn reference_to_source(source: &Affine, reference: &Affine) -> Option<Affine> {
    invert_affine(source).map(|inverse| mat_mul(&inverse, reference))
}

fn source_position(map: &Affine, voxel: [usize; 3]) -> [f64; 3] {
    voxel_to_world(map, voxel.map(|v| v as f64))
}

/// Whether a source coordinate lies on the grid (within half a voxel of it).
fn inside(position: [f64; 3], dims: [usize; 3]) -> bool {
    (0..3).all(|axis| position[axis] >= -0.5 && position[axis] <= dims[axis] as f64 - 0.5)
}

/// The fraction of the reference grid's voxels (sampled on a lattice of at most 32³ points) that
/// fall on the source's grid: 0 when the two share no world space.
pub fn overlap_fraction(source: ([usize; 3], &Affine), reference: ([usize; 3], &Affine)) -> f64 {
    let Some(map) = reference_to_source(source.1, reference.1) else {
        return 0.0;
    };
    let steps = reference.0.map(|size| size.div_ceil(32).max(1));
    let (mut hits, mut samples) = (0usize, 0usize);
    for z in (0..reference.0[2]).step_by(steps[2]) {
        for y in (0..reference.0[1]).step_by(steps[1]) {
            for x in (0..reference.0[0]).step_by(steps[0]) {
                samples += 1;
                hits += usize::from(inside(source_position(&map, [x, y, z]), source.0));
            }
        }
    }
    hits as f64 / samples.max(1) as f64
}

/// `volume` on the reference grid `dims`/`affine`, trilinear.
pub fn regrid_linear(volume: &Volume<f32>, dims: [usize; 3], affine: Affine) -> Volume<f32> {
    regrid(volume, dims, affine, |position| {
        let [x, y, z] = std::array::from_fn(|axis| axis_weights(position[axis], volume.dims[axis]));
        let mut value = 0.0f32;
        for (zi, wz) in [(z.0, 1.0 - z.2), (z.1, z.2)] {
            for (yi, wy) in [(y.0, 1.0 - y.2), (y.1, y.2)] {
                for (xi, wx) in [(x.0, 1.0 - x.2), (x.1, x.2)] {
                    let weight = wx * wy * wz;
                    if weight != 0.0 {
                        value += weight * volume.get(xi, yi, zi);
                    }
                }
            }
        }
        value
    })
}

/// `volume` on the reference grid `dims`/`affine`, nearest voxel (label maps).
pub fn regrid_nearest<T: Copy + Default>(
    volume: &Volume<T>,
    dims: [usize; 3],
    affine: Affine,
) -> Volume<T> {
    regrid(volume, dims, affine, |position| {
        let [x, y, z] = std::array::from_fn(|axis| {
            (position[axis].round().max(0.0) as usize).min(volume.dims[axis].saturating_sub(1))
        });
        volume.get(x, y, z)
    })
}

/// `sample(source position)` at every reference voxel on the source's grid, default elsewhere.
fn regrid<T: Copy + Default, U: Copy + Default>(
    volume: &Volume<T>,
    dims: [usize; 3],
    affine: Affine,
    sample: impl Fn([f64; 3]) -> U,
) -> Volume<U> {
    let mut out = Volume::filled(dims, affine, U::default());
    let Some(map) = reference_to_source(&volume.affine, &affine) else {
        return out;
    };
    if volume.data.is_empty() {
        return out;
    }
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let position = source_position(&map, [x, y, z]);
                if inside(position, volume.dims) {
                    out.set(x, y, z, sample(position));
                }
            }
        }
    }
    out
}

/// The two neighbours along an axis and the weight of the second, clamped to the grid.
fn axis_weights(position: f64, size: usize) -> (usize, usize, f32) {
    let last = size.saturating_sub(1);
    let clamped = position.clamp(0.0, last as f64);
    let lower = (clamped.floor() as usize).min(last);
    let upper = (lower + 1).min(last);
    (lower, upper, (clamped - lower as f64) as f32)
}

/// How an image came onto the reference grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regridded {
    /// It was already on it.
    Same,
    /// It was resampled; the fraction of the reference grid it covers.
    Resampled { coverage: f64 },
}

/// `volume` (named `name`) on the grid of `reference` (named `reference_name`): unchanged when
/// already on it, else resampled (`labels`: nearest voxel, else trilinear). An error naming both
/// when they share no world space.
pub fn onto_reference(
    name: &str,
    volume: Volume<f32>,
    reference_name: &str,
    reference: ([usize; 3], &Affine),
    labels: bool,
) -> Result<(Volume<f32>, Regridded)> {
    if same_grid(volume.dims, &volume.affine, reference) {
        return Ok((volume, Regridded::Same));
    }
    let coverage = overlap_fraction((volume.dims, &volume.affine), reference);
    if coverage == 0.0 {
        let centre = |dims: [usize; 3], affine: &Affine| {
            voxel_to_world(affine, dims.map(|size| (size as f64 - 1.0) / 2.0))
        };
        let (a, b) = (
            centre(volume.dims, &volume.affine),
            centre(reference.0, reference.1),
        );
        let distance = (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt();
        return Err(Error::new(
            name,
            format!(
                "does not overlap {reference_name} in world space (centres {distance:.0} mm apart): not the same subject or session?"
            ),
        ));
    }
    let regridded = match labels {
        true => regrid_nearest(&volume, reference.0, *reference.1),
        false => regrid_linear(&volume, reference.0, *reference.1),
    };
    Ok((regridded, Regridded::Resampled { coverage }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::IDENTITY;

    fn grid(spacing: f64, origin: [f64; 3]) -> Affine {
        let mut affine = IDENTITY;
        for axis in 0..3 {
            affine[axis][axis] = spacing;
            affine[axis][3] = origin[axis];
        }
        affine
    }

    /// A linear ramp in world x: its value at world (x, y, z) is x.
    fn ramp(dims: [usize; 3], affine: Affine) -> Volume<f32> {
        let mut volume = Volume::filled(dims, affine, 0.0);
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    let world = voxel_to_world(&affine, [x as f64, y as f64, z as f64]);
                    volume.set(x, y, z, world[0] as f32);
                }
            }
        }
        volume
    }

    #[test]
    fn inverse_round_trips() {
        let mut affine = grid(1.5, [-90.0, 12.0, 3.0]);
        affine[0][1] = 0.2; // a shear, as oblique acquisitions have
        let inverse = invert_affine(&affine).unwrap();
        let product = mat_mul(&inverse, &affine);
        for (r, row) in product.iter().enumerate() {
            for (c, &value) in row.iter().enumerate() {
                let expected = if r == c { 1.0 } else { 0.0 };
                assert!((value - expected).abs() < 1e-12, "{product:?}");
            }
        }
        assert!(invert_affine(&[[0.0; 4]; 4]).is_none());
    }

    #[test]
    fn a_3mm_image_onto_a_1mm_grid_keeps_world_values() {
        // A 3 mm FLAIR and a 1 mm T1 over the same 60 mm box (shifted by half a voxel).
        let coarse = ramp([21, 21, 21], grid(3.0, [-30.0, -30.0, -30.0]));
        let fine_dims = [58, 58, 58];
        let fine = grid(1.0, [-29.0, -29.0, -29.0]);
        let (out, how) =
            onto_reference("flair.nii", coarse, "t1.nii", (fine_dims, &fine), false).unwrap();
        assert_eq!(how, Regridded::Resampled { coverage: 1.0 });
        assert_eq!(out.dims, fine_dims);
        assert_eq!(out.affine, fine);
        // Trilinear interpolation of a linear ramp is exact.
        for (x, y, z) in [(0, 0, 0), (10, 20, 30), (57, 57, 57)] {
            let world = voxel_to_world(&fine, [x as f64, y as f64, z as f64]);
            assert!(
                (out.get(x, y, z) - world[0] as f32).abs() < 1e-4,
                "at {x},{y},{z}"
            );
        }
    }

    #[test]
    fn flipped_axes_and_partial_overlap() {
        // The source stores x right-to-left (LAS) and covers only world x ≥ 0 of the reference.
        let mut flipped = grid(2.0, [40.0, -20.0, -20.0]);
        flipped[0][0] = -2.0;
        let source = ramp([21, 21, 21], flipped); // world x from 40 down to 0
        let reference = grid(2.0, [-40.0, -20.0, -20.0]); // world x from -40 to 40
        let (out, how) = onto_reference(
            "las.nii",
            source,
            "ref.nii",
            ([41, 21, 21], &reference),
            false,
        )
        .unwrap();
        let Regridded::Resampled { coverage } = how else {
            panic!("{how:?}");
        };
        assert!((0.45..0.6).contains(&coverage), "{coverage}");
        assert_eq!(out.get(30, 5, 5), 20.0); // world x = 20
        assert_eq!(out.get(5, 5, 5), 0.0); // world x = -30: outside the source
    }

    #[test]
    fn same_grid_is_untouched_and_disjoint_grids_are_refused() {
        let affine = grid(1.0, [0.0; 3]);
        let volume = ramp([4, 4, 4], affine);
        let (out, how) = onto_reference(
            "a.nii",
            volume.clone(),
            "b.nii",
            ([4, 4, 4], &affine),
            false,
        )
        .unwrap();
        assert_eq!((out, how), (volume.clone(), Regridded::Same));
        let far = grid(1.0, [500.0, 0.0, 0.0]);
        let err = onto_reference("a.nii", volume, "b.nii", ([4, 4, 4], &far), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.nii: does not overlap b.nii in world space (centres 500 mm apart): not the same subject or session?"
        );
    }

    #[test]
    fn labels_take_the_nearest_voxel() {
        let mut labels = Volume::filled([4, 4, 4], grid(2.0, [0.0; 3]), 0.0f32);
        labels.set(1, 1, 1, 4.0);
        let (out, _) = onto_reference(
            "seg.nii",
            labels,
            "t1.nii",
            ([8, 8, 8], &grid(1.0, [0.0; 3])),
            true,
        )
        .unwrap();
        // World (2, 2, 2) ± 0.5 voxel of the 2 mm grid → 1 mm voxels 2 (exact) and 1, 3 (ties).
        assert_eq!(out.get(2, 2, 2), 4.0);
        assert!(out.data.iter().all(|&v| v == 0.0 || v == 4.0));
    }
}
