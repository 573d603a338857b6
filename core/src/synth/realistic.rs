//! Tumours shaped after real BraTS cases ([`super::LesionStyle::Realistic`]).
//!
//! What the three real patients in `../shared/data/real` show (measured with their reference
//! maps, `docs/results.md`) and the classic model ([`super::tumour`]) lacks:
//! - a high-grade glioma's enhancing tumour is a **thin, irregular rim** (a few mm) around a
//!   necrotic centre, not a thick shell, and its thickness varies along the surface;
//! - a low-grade glioma has a **non-enhancing core** (label 1: dark on T1, bright on T2) inside
//!   a thin oedema, so its tumour core is not empty;
//! - **metastases** are one to a few small lesions, solid or ring-enhancing, each with oedema
//!   reaching far along white matter.
//!
//! Lesions are irregular ellipsoids (radius modulated by two scales of smooth waves) with a
//! radial mass effect each; where lesions overlap the core labels win over oedema.

use super::anatomy::{Anatomy, CHANNELS, GM, WM};
use super::plan::Grade;
use super::tumour::{random_rotation, MassEffect, Waves, ENHANCING, MIN_TISSUE, NECROSIS, OEDEMA};
use crate::rng::Rng;

/// What kind of tumour a subject has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TumourKind {
    /// High-grade glioma: necrosis (1) inside a thin enhancing rim (4), oedema (2) around.
    Glioma,
    /// Low-grade glioma: a non-enhancing core (1) and a thin oedema (2).
    LowGrade,
    /// One to three metastases: enhancing (4), necrotic centre (1) when large, wide oedema (2).
    Metastases,
}

/// Share of the high-grade subjects that get metastases instead of a glioma.
const METASTASIS_SHARE: f64 = 0.35;

/// One lesion in template voxel coordinates.
#[derive(Debug, Clone)]
struct Lesion {
    centre: [f32; 3],
    /// Maps an offset in mm to ellipsoid coordinates (norm 1 on the mean core surface).
    shape: [[f32; 3]; 3],
    /// Mean core radius (mm).
    radius_mm: f32,
    /// Mean enhancing-rim thickness (mm); 0 for a non-enhancing core.
    rim_mm: f32,
    shape_noise: Waves,
    lobes: Waves,
    rim_noise: Waves,
    oedema_ratio: f32,
    oedema_noise: Waves,
    reach_mm: f32,
    mass: MassEffect,
}

/// The draws that set one lesion's size and compartments.
struct LesionSize {
    radius_mm: f64,
    rim_mm: f64,
    oedema_ratio: f64,
    mass_strength: f64,
}

impl Lesion {
    fn random(rng: &mut Rng, centre: [f32; 3], size: LesionSize) -> Self {
        let radius = size.radius_mm;
        let axes: [f64; 3] = std::array::from_fn(|_| radius * rng.range_f64(0.7, 1.35));
        let rotation = random_rotation(rng);
        let shape = std::array::from_fn(|row| {
            std::array::from_fn(|col| (rotation[col][row] / axes[row]) as f32)
        });
        let shape_noise = Waves::random(rng, (radius, 2.5 * radius), (0.03, 0.08));
        let lobes = Waves::random(rng, (0.4 * radius, radius), (0.0, 0.04));
        let rim_noise = Waves::random(rng, (0.5 * radius, 1.5 * radius), (0.05, 0.12));
        let oedema_noise = Waves::random(rng, (radius, 3.0 * radius), (0.04, 0.1));
        let widest = axes.iter().cloned().fold(0.0, f64::max) as f32;
        let wobble = 1.0 + shape_noise.bound() + lobes.bound();
        let max_ratio = size.oedema_ratio as f32 * 1.25 + oedema_noise.bound();
        Self {
            centre,
            shape,
            radius_mm: radius as f32,
            rim_mm: size.rim_mm as f32,
            shape_noise,
            lobes,
            rim_noise,
            oedema_ratio: size.oedema_ratio as f32,
            oedema_noise,
            reach_mm: widest * max_ratio * wobble + 1.0,
            mass: MassEffect::new(size.mass_strength, 1.2 * radius),
        }
    }

    /// The label at offset `d` (mm) from the centre, and the oedema depth (1 inside the core).
    #[inline]
    fn label(&self, d: [f32; 3], tissue: &[f32; CHANNELS], kind: TumourKind) -> (u8, f32) {
        if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] > self.reach_mm * self.reach_mm {
            return (0, 0.0);
        }
        let u: [f32; 3] = std::array::from_fn(|row| {
            self.shape[row][0] * d[0] + self.shape[row][1] * d[1] + self.shape[row][2] * d[2]
        });
        let wobble = 1.0 + self.shape_noise.value(d) + self.lobes.value(d);
        let rho = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt() / wobble;
        if rho < 1.0 {
            if kind == TumourKind::LowGrade {
                return (NECROSIS, 1.0);
            }
            // Depth below the core surface (mm) against the local rim thickness.
            let depth_mm = (1.0 - rho) * self.radius_mm;
            let rim = self.rim_mm * (1.0 + 4.0 * self.rim_noise.value(d)).max(0.25);
            return if depth_mm < rim {
                (ENHANCING, 1.0)
            } else {
                (NECROSIS, 1.0)
            };
        }
        let brain = tissue[GM] + tissue[WM];
        let white_share = tissue[WM] / brain.max(1e-6);
        let edge = 1.0
            + (self.oedema_ratio - 1.0) * (0.35 + 0.9 * white_share)
            + self.oedema_noise.value(d);
        if rho < edge {
            let depth = ((edge - rho) / (0.3 * edge)).clamp(0.0, 1.0);
            return (OEDEMA, depth);
        }
        (0, 0.0)
    }
}

/// A subject's tumour: one lesion, or several metastases.
#[derive(Debug, Clone)]
pub struct RealisticTumour {
    pub kind: TumourKind,
    /// Voxel size (mm) of the grid.
    spacing: [f32; 3],
    lesions: Vec<Lesion>,
}

impl RealisticTumour {
    /// Draw a tumour of `grade` (not [`Grade::None`]) at the anatomy's tumour sites.
    pub fn random(rng: &mut Rng, anatomy: &Anatomy, grade: Grade) -> Self {
        let spacing = anatomy.spacing().map(|s| s as f32);
        let kind = match grade {
            Grade::Lgg => TumourKind::LowGrade,
            _ if rng.chance(METASTASIS_SHARE) => TumourKind::Metastases,
            _ => TumourKind::Glioma,
        };
        let count = match kind {
            TumourKind::Metastases => 1 + rng.below(3),
            _ => 1,
        };
        let lesions = (0..count)
            .map(|_| {
                let site = anatomy.tumour_sites[rng.below(anatomy.tumour_sites.len())];
                let centre =
                    std::array::from_fn(|a| site[a] + rng.range_f64(-3.0, 3.0) as f32 / spacing[a]);
                let size = draw_size(rng, kind, count);
                Lesion::random(rng, centre, size)
            })
            .collect();
        Self {
            kind,
            spacing,
            lesions,
        }
    }

    fn offset_mm(&self, lesion: &Lesion, position: [f32; 3]) -> [f32; 3] {
        std::array::from_fn(|a| (position[a] - lesion.centre[a]) * self.spacing[a])
    }

    /// Mass effect of every lesion in turn (see [`super::tumour::Tumour::mass_pull`]).
    #[inline]
    pub fn mass_pull(&self, position: [f32; 3]) -> [f32; 3] {
        self.lesions.iter().fold(position, |current, lesion| {
            lesion.mass.apply(lesion.centre, current, self.spacing)
        })
    }

    /// The label at template position `position`: a core label of any lesion wins over oedema,
    /// the deepest oedema over shallower.
    #[inline]
    pub fn label(&self, position: [f32; 3], tissue: &[f32; CHANNELS]) -> (u8, f32) {
        if tissue[GM] + tissue[WM] < MIN_TISSUE {
            return (0, 0.0);
        }
        let mut best = (0u8, 0.0f32);
        for lesion in &self.lesions {
            let found = lesion.label(self.offset_mm(lesion, position), tissue, self.kind);
            match found.0 {
                NECROSIS | ENHANCING => return found,
                OEDEMA if found.1 >= best.1 => best = found,
                _ => {}
            }
        }
        best
    }
}

/// Sizes by kind: glioma cores 8–24 mm with 1.5–5 mm rims; low-grade cores 8–20 mm with a thin
/// oedema; metastases 3–16 mm (smaller when there are several) with wide oedema.
fn draw_size(rng: &mut Rng, kind: TumourKind, count: usize) -> LesionSize {
    match kind {
        TumourKind::Glioma => LesionSize {
            radius_mm: rng.range_f64(8.0, 24.0),
            rim_mm: rng.range_f64(1.5, 5.0),
            oedema_ratio: rng.range_f64(1.25, 2.3),
            mass_strength: rng.range_f64(0.15, 0.35),
        },
        TumourKind::LowGrade => LesionSize {
            radius_mm: rng.range_f64(8.0, 20.0),
            rim_mm: 0.0,
            oedema_ratio: rng.range_f64(1.08, 1.5),
            mass_strength: rng.range_f64(0.05, 0.2),
        },
        TumourKind::Metastases => {
            let largest = if count == 1 { 16.0 } else { 11.0 };
            LesionSize {
                radius_mm: rng.range_f64(3.0, largest),
                rim_mm: rng.range_f64(1.5, 4.0),
                oedema_ratio: rng.range_f64(1.6, 3.2),
                mass_strength: rng.range_f64(0.05, 0.25),
            }
        }
    }
}
