//! A synthetic tumour in template space: an irregular ellipsoid (radius modulated by
//! low-frequency waves) with a necrotic core (label 1), an enhancing rim (4) and surrounding
//! oedema (2) that spreads further in white matter, plus a radial mass effect.

use super::anatomy::{Anatomy, CHANNELS, GM, WM};
use super::plan::Grade;
use crate::rng::Rng;

/// BraTS label of the necrotic / non-enhancing core.
pub const NECROSIS: u8 = 1;
/// BraTS label of the peritumoural oedema.
pub const OEDEMA: u8 = 2;
/// BraTS label of the enhancing tumour.
pub const ENHANCING: u8 = 4;

/// Minimum GM + WM probability for a voxel to be lesioned (keeps labels inside the brain).
pub(super) const MIN_TISSUE: f32 = 0.3;
const WAVES: usize = 6;

/// A sum of random plane waves: smooth noise of a chosen wavelength.
#[derive(Debug, Clone)]
pub(super) struct Waves {
    /// `(frequency vector in rad/mm, phase, amplitude)`.
    terms: [([f32; 3], f32, f32); WAVES],
}

impl Waves {
    pub(super) fn random(rng: &mut Rng, wavelength_mm: (f64, f64), amplitude: (f64, f64)) -> Self {
        let terms = std::array::from_fn(|_| {
            let direction = random_unit(rng);
            let k = std::f64::consts::TAU / rng.range_f64(wavelength_mm.0, wavelength_mm.1);
            let phase = rng.range_f64(0.0, std::f64::consts::TAU) as f32;
            let amp = rng.range_f64(amplitude.0, amplitude.1) as f32;
            (direction.map(|d| (d * k) as f32), phase, amp)
        });
        Self { terms }
    }

    /// Upper bound of `|value|`.
    pub(super) fn bound(&self) -> f32 {
        self.terms.iter().map(|t| t.2).sum()
    }

    #[inline]
    pub(super) fn value(&self, d: [f32; 3]) -> f32 {
        self.terms
            .iter()
            .map(|(k, phase, amp)| amp * (k[0] * d[0] + k[1] * d[1] + k[2] * d[2] + phase).sin())
            .sum()
    }
}

fn random_unit(rng: &mut Rng) -> [f64; 3] {
    loop {
        let v = [rng.normal(), rng.normal(), rng.normal()];
        let norm = v.iter().map(|c| c * c).sum::<f64>().sqrt();
        if norm > 1e-6 {
            return v.map(|c| c / norm);
        }
    }
}

/// A random rotation matrix (from a uniformly random unit quaternion).
pub(super) fn random_rotation(rng: &mut Rng) -> [[f64; 3]; 3] {
    let mut q = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    let norm = q.iter().map(|c| c * c).sum::<f64>().sqrt().max(1e-9);
    q.iter_mut().for_each(|c| *c /= norm);
    let [w, x, y, z] = q;
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// A radial mass effect around a lesion centre: positions drawn towards it by
/// `strength · exp(-r² / 2w²)` of their offset (`r` in mm), shared by the classic and the
/// realistic lesions.
#[derive(Debug, Clone, Copy)]
pub(super) struct MassEffect {
    strength: f32,
    /// `1 / (2 w²)` of the Gaussian profile (mm⁻²).
    falloff: f32,
}

impl MassEffect {
    /// A pull of `strength` with a Gaussian profile of width `width_mm`.
    pub fn new(strength: f64, width_mm: f64) -> Self {
        Self {
            strength: strength as f32,
            falloff: (1.0 / (2.0 * width_mm * width_mm)) as f32,
        }
    }

    /// The template position shown at `position` around `centre`, on a grid of voxel size
    /// `spacing` (mm).
    #[inline]
    pub fn apply(&self, centre: [f32; 3], position: [f32; 3], spacing: [f32; 3]) -> [f32; 3] {
        let d: [f32; 3] = std::array::from_fn(|a| (position[a] - centre[a]) * spacing[a]);
        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        let exponent = r2 * self.falloff;
        if exponent > 12.0 {
            return position;
        }
        let keep = 1.0 - self.strength * (-exponent).exp();
        std::array::from_fn(|a| centre[a] + (position[a] - centre[a]) * keep)
    }
}

/// One subject's tumour, in template voxel coordinates.
#[derive(Debug, Clone)]
pub struct Tumour {
    pub grade: Grade,
    /// Centre (template voxel coordinates).
    pub centre: [f32; 3],
    /// Voxel size (mm) of the grid.
    spacing: [f32; 3],
    /// Maps an offset in mm to ellipsoid coordinates (norm 1 on the mean core surface).
    shape: [[f32; 3]; 3],
    necrosis_ratio: f32,
    oedema_ratio: f32,
    shape_noise: Waves,
    oedema_noise: Waves,
    /// No label beyond this distance (mm) from the centre.
    reach_mm: f32,
    mass: MassEffect,
}

impl Tumour {
    /// Draw a tumour of `grade` (not [`Grade::None`]) at one of the anatomy's tumour sites.
    pub fn random(rng: &mut Rng, anatomy: &Anatomy, grade: Grade) -> Self {
        let spacing = anatomy.spacing().map(|s| s as f32);
        let site = anatomy.tumour_sites[rng.below(anatomy.tumour_sites.len())];
        let centre =
            std::array::from_fn(|a| site[a] + rng.range_f64(-2.0, 2.0) as f32 / spacing[a]);
        let high = grade == Grade::Hgg;
        let radius = if high {
            rng.range_f64(7.0, 15.0)
        } else {
            rng.range_f64(9.0, 18.0)
        };
        let axes: [f64; 3] = std::array::from_fn(|_| radius * rng.range_f64(0.75, 1.3));
        let rotation = random_rotation(rng);
        // shape = diag(1/axes) · Rᵀ: offset (mm) → ellipsoid coordinates.
        let shape = std::array::from_fn(|row| {
            std::array::from_fn(|col| (rotation[col][row] / axes[row]) as f32)
        });
        let necrosis_ratio = rng.range_f64(0.4, 0.7) as f32;
        let oedema_ratio = if high {
            rng.range_f64(1.5, 2.3) as f32
        } else {
            1.0
        };
        let shape_noise = Waves::random(rng, (radius, 2.5 * radius), (0.02, 0.05));
        let oedema_noise = Waves::random(rng, (radius, 3.0 * radius), (0.03, 0.08));
        let widest = axes.iter().cloned().fold(0.0, f64::max) as f32;
        let max_ratio = oedema_ratio * 1.15 + oedema_noise.bound();
        let reach_mm = widest * max_ratio * (1.0 + shape_noise.bound()) + 1.0;
        let mass_strength = if high {
            rng.range_f64(0.15, 0.35)
        } else {
            rng.range_f64(0.05, 0.2)
        };
        Self {
            grade,
            centre,
            spacing,
            shape,
            necrosis_ratio,
            oedema_ratio,
            shape_noise,
            oedema_noise,
            reach_mm,
            mass: MassEffect::new(mass_strength, 1.2 * radius),
        }
    }

    /// Offset of `position` from the centre, in mm.
    #[inline]
    fn offset_mm(&self, position: [f32; 3]) -> [f32; 3] {
        std::array::from_fn(|a| (position[a] - self.centre[a]) * self.spacing[a])
    }

    /// Mass effect as a pull-back: the template position shown at `position`, drawn towards the
    /// centre by `strength · exp(-r² / 2w²)` of its offset (monotone in `r` as strength < 1, so
    /// tissue is pushed outwards without folding).
    #[inline]
    pub fn mass_pull(&self, position: [f32; 3]) -> [f32; 3] {
        self.mass.apply(self.centre, position, self.spacing)
    }

    /// The label at template position `position` with tissue `tissue`, and how deep inside its
    /// region the voxel is (1 = well inside, smaller near the outer edge of oedema).
    #[inline]
    pub fn label(&self, position: [f32; 3], tissue: &[f32; CHANNELS]) -> (u8, f32) {
        let d = self.offset_mm(position);
        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        let brain = tissue[GM] + tissue[WM];
        if r2 > self.reach_mm * self.reach_mm || brain < MIN_TISSUE {
            return (0, 0.0);
        }
        let u: [f32; 3] = std::array::from_fn(|row| {
            self.shape[row][0] * d[0] + self.shape[row][1] * d[1] + self.shape[row][2] * d[2]
        });
        let rho =
            (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt() / (1.0 + self.shape_noise.value(d));
        if self.grade == Grade::Hgg && rho < self.necrosis_ratio {
            return (NECROSIS, 1.0);
        }
        if self.grade == Grade::Hgg && rho < 1.0 {
            return (ENHANCING, 1.0);
        }
        // Oedema spreads further along white matter.
        let white_share = tissue[WM] / brain;
        let edge = self.oedema_ratio * (0.7 + 0.45 * white_share) + self.oedema_noise.value(d);
        if rho < edge {
            let depth = ((edge - rho) / (0.3 * edge)).clamp(0.0, 1.0);
            return (OEDEMA, depth);
        }
        (0, 0.0)
    }
}
