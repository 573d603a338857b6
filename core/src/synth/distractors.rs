//! Unlabelled look-alikes in the realistic style: real patients' scans hold bright spots that are
//! not tumour (vessels and choroid plexus bright on T1ce, white-matter hyperintensities on T2 and
//! FLAIR, bright CSF spaces), and a model trained only on clean anatomy calls them tumour. Each
//! realistic subject gets a few small smooth blobs, each bright in one or two modalities only and
//! never labelled, so that a label has to rest on the combination of modalities and the shape
//! around it, as the BraTS definitions do. The brain's edge may be bright too (dura, venous
//! sinuses, CSF and inflow left by skull stripping), where a model trained on clean synthetic
//! edges put false oedema on real scans (docs/results.md).

use super::anatomy::{Anatomy, GM, WM};
use super::contrast::MODALITIES;
use crate::rng::Rng;

/// Most blobs per subject.
const MAX_BLOBS: usize = 12;

/// Which modalities a blob brightens (file order t1, t1ce, t2, flair, pd) and by how much.
const KINDS: [([bool; MODALITIES], (f64, f64)); 4] = [
    // Enhancing vessel or choroid plexus: T1ce only.
    ([false, true, false, false, false], (1.3, 2.0)),
    // White-matter hyperintensity: T2, FLAIR and PD.
    ([false, false, true, true, true], (1.25, 1.7)),
    // Fluid-like spot: T2 only (FLAIR-suppressed, as CSF).
    ([false, false, true, false, false], (1.4, 2.2)),
    // FLAIR artefact (inflow, cortex of the posterior fossa): FLAIR only.
    ([false, false, false, true, false], (1.2, 1.6)),
];

/// One blob: an isotropic Gaussian bump of relative brightness.
#[derive(Debug, Clone)]
struct Blob {
    centre: [f32; 3],
    /// `1 / (2 σ²)` in voxel units per axis.
    falloff: [f32; 3],
    /// Squared reach (voxels², per-axis scaled) beyond which the blob is ignored.
    reach: f32,
    modalities: [bool; MODALITIES],
    /// Peak brightness factor minus 1.
    excess: f32,
}

/// The blobs of one subject, and its brain-edge brightening.
#[derive(Debug, Clone, Default)]
pub struct Distractors {
    blobs: Vec<Blob>,
    /// Extra brightness per modality at the brain's edge (dura, venous sinuses and vessels bright
    /// on T1ce, CSF on T2, inflow on FLAIR, where skull stripping leaves them; 0: none).
    edge: [f32; MODALITIES],
}

/// Modalities that may get a bright brain edge (file order) and the largest extra brightness.
const EDGE_GAIN: [f64; MODALITIES] = [0.0, 0.9, 0.6, 0.5, 0.0];
/// Brain probability (GM + WM + CSF) below which a voxel is in the edge band (the stripped
/// boundary is at 0.5).
const EDGE_BAND: f32 = 0.9;

impl Distractors {
    /// Draws 0 to [`MAX_BLOBS`] blobs (1.5–6 mm σ) at brain positions of `anatomy`.
    pub fn random(rng: &mut Rng, anatomy: &Anatomy) -> Self {
        let spacing = anatomy.spacing();
        let count = rng.below(MAX_BLOBS + 1);
        let blobs = (0..count)
            .filter_map(|_| {
                let centre = brain_position(rng, anatomy)?;
                let (modalities, (low, high)) = KINDS[rng.below(KINDS.len())];
                let sigma_mm = rng.range_f64(1.5, 6.0);
                let falloff = spacing.map(|s| (s * s / (2.0 * sigma_mm * sigma_mm)) as f32);
                Some(Blob {
                    centre,
                    falloff,
                    reach: 9.0 * 0.5,
                    modalities,
                    excess: (rng.range_f64(low, high) - 1.0) as f32,
                })
            })
            .collect();
        let edge = EDGE_GAIN.map(|gain| match gain > 0.0 && rng.chance(0.5) {
            true => rng.range_f64(0.0, gain) as f32,
            false => 0.0,
        });
        Self { blobs, edge }
    }

    /// The brain-edge brightness factor of `modality` for brain probability `brain` (1 inside).
    #[inline]
    pub fn edge_factor(&self, modality: usize, brain: f32) -> f32 {
        let depth = ((EDGE_BAND - brain) / (EDGE_BAND - 0.5)).clamp(0.0, 1.0);
        1.0 + self.edge[modality] * depth
    }

    /// The brightness factor of `modality` at grid position `position` (1 away from blobs).
    #[inline]
    pub fn factor(&self, modality: usize, position: [f32; 3]) -> f32 {
        let mut factor = 1.0;
        for blob in self.blobs.iter().filter(|blob| blob.modalities[modality]) {
            let exponent: f32 = (0..3)
                .map(|a| {
                    let d = position[a] - blob.centre[a];
                    d * d * blob.falloff[a]
                })
                .sum();
            if exponent < blob.reach {
                factor += blob.excess * (-exponent).exp();
            }
        }
        factor
    }

    /// Whether there is nothing to add (the voxel loop skips the lookups then).
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.edge.iter().all(|&gain| gain == 0.0)
    }
}

/// A random grid position inside the brain (GM + WM above 0.5), or `None` after 64 tries.
fn brain_position(rng: &mut Rng, anatomy: &Anatomy) -> Option<[f32; 3]> {
    let dims = anatomy.dims;
    (0..64).find_map(|_| {
        let position: [f32; 3] = std::array::from_fn(|a| rng.range_f64(0.0, dims[a] as f64) as f32);
        let tissue = anatomy.sample(position);
        (tissue[GM] + tissue[WM] > 0.5).then_some(position)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_brightens_its_modalities_at_its_centre_only() {
        let blob = Blob {
            centre: [10.0, 10.0, 10.0],
            falloff: [0.125; 3],
            reach: 4.5,
            modalities: KINDS[0].0,
            excess: 0.5,
        };
        let spots = Distractors {
            blobs: vec![blob],
            edge: [0.0, 0.4, 0.0, 0.0, 0.0],
        };
        assert_eq!(spots.edge_factor(1, 0.5), 1.4);
        assert_eq!(spots.edge_factor(1, 0.95), 1.0);
        assert_eq!(spots.edge_factor(2, 0.5), 1.0);
        assert_eq!(spots.factor(1, [10.0, 10.0, 10.0]), 1.5);
        assert_eq!(spots.factor(0, [10.0, 10.0, 10.0]), 1.0);
        let near = spots.factor(1, [12.0, 10.0, 10.0]);
        assert!((near - (1.0 + 0.5 * (-0.5f32).exp())).abs() < 1e-6);
        assert_eq!(spots.factor(1, [30.0, 10.0, 10.0]), 1.0);
        assert!(Distractors::default().is_empty());
    }
}
