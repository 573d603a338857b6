//! Tissue → intensity per modality, and the lesion contrasts.
//!
//! Base images come from the real templates: T1 and T1ce from the T1 average, T2 from the T2
//! average, PD from the PD average, and FLAIR as the T2 average with the CSF signal suppressed by
//! the CSF probability (`t2 · (1 - csf)^1.5`: CSF dark, partial-volume CSF darkened, WM < GM as in
//! T2). Lesion intensities
//! are multiples of the subject's white-matter intensity in each modality.

use super::anatomy::{Anatomy, CHANNELS, CSF, PD, T1, T2, WM};
use super::plan::{SynthModality, SYNTH_MODALITIES};
use super::tumour::{ENHANCING, NECROSIS, OEDEMA};
use crate::rng::Rng;

/// Number of synthesised modalities.
pub const MODALITIES: usize = SYNTH_MODALITIES.len();

/// Typical white-matter intensity of each modality in the int16 output (file order).
pub const WM_TARGET: [f32; MODALITIES] = [1000.0, 1000.0, 800.0, 900.0, 1100.0];

/// Lesion intensity / white-matter intensity, per label (necrosis, oedema, enhancing) and
/// modality (t1, t1ce, t2, flair, pd): centre values that subjects jitter around.
const LESION_RATIO: [[f32; MODALITIES]; 3] = [
    // Necrosis: dark on T1 and T1ce, bright on T2, intermediate on FLAIR.
    [0.45, 0.5, 1.9, 1.1, 1.3],
    // Oedema: slightly dark on T1, bright on T2 and FLAIR.
    [0.82, 0.82, 1.6, 1.75, 1.15],
    // Enhancing rim: like tissue on T1, bright on T1ce only.
    [0.92, 1.55, 1.3, 1.35, 1.1],
];

/// The modality (file order) in which each lesion label (necrosis, oedema, enhancing) shows
/// most clearly and keeps its full contrast under [`crate::synth::SynthConfig::secondary_contrast`]:
/// necrosis on T2, oedema on FLAIR, the enhancing rim on T1ce.
pub const KEY_MODALITY: [usize; 3] = [2, 3, 1];

/// Lesion / white-matter ratio of `label_row` in `modality` with the contrast outside the
/// label's key modality scaled by `secondary` (1 keeps [`LESION_RATIO`] exactly).
fn lesion_ratio(label_row: usize, modality: usize, secondary: f32) -> f32 {
    let typical = LESION_RATIO[label_row][modality];
    if secondary == 1.0 || KEY_MODALITY[label_row] == modality {
        return typical;
    }
    1.0 + secondary * (typical - 1.0)
}

/// The base (lesion-free) intensity of `modality` for template values `tissue`.
#[inline]
pub fn base_intensity(modality: usize, tissue: &[f32; CHANNELS]) -> f32 {
    match modality {
        0 | 1 => tissue[T1],
        2 => tissue[T2],
        3 => {
            let kept = (1.0 - tissue[CSF]).clamp(0.0, 1.0);
            tissue[T2] * kept * kept.sqrt()
        }
        _ => tissue[PD],
    }
}

/// Mean base intensity of each modality where white matter is above 0.7 (or over the whole grid
/// when there is no such voxel).
pub fn white_matter_reference(anatomy: &Anatomy) -> [f32; MODALITIES] {
    let mut sums = [0f64; MODALITIES];
    let mut count = 0usize;
    for tissue in anatomy.voxels.iter().filter(|t| t[WM] > 0.7) {
        count += 1;
        for (m, sum) in sums.iter_mut().enumerate() {
            *sum += base_intensity(m, tissue) as f64;
        }
    }
    if count == 0 {
        for tissue in &anatomy.voxels {
            count += 1;
            for (m, sum) in sums.iter_mut().enumerate() {
                *sum += base_intensity(m, tissue) as f64;
            }
        }
    }
    sums.map(|s| ((s / count.max(1) as f64) as f32).max(1e-3))
}

/// One subject's contrast: per-modality gain to the int16 range and lesion intensities.
#[derive(Debug, Clone)]
pub struct SubjectContrast {
    /// Output value of a base intensity of 1 (before bias and noise).
    pub gain: [f32; MODALITIES],
    /// Lesion intensity in base units, per label (necrosis, oedema, enhancing) and modality.
    lesion: [[f32; MODALITIES]; 3],
    /// Tissue-contrast exponent per modality around the white-matter reference (`None`: the
    /// templates' own contrast; see [`super::randomise`]).
    gamma: Option<([f32; MODALITIES], [f32; MODALITIES])>,
}

impl SubjectContrast {
    /// Draw gains (±10 %) and lesion contrasts (±10 %) around the typical values, the lesion
    /// contrast outside each label's key modality scaled by `secondary` (1 = typical).
    pub fn random(rng: &mut Rng, reference: &[f32; MODALITIES], secondary: f32) -> Self {
        let gain =
            std::array::from_fn(|m| WM_TARGET[m] / reference[m] * rng.range_f64(0.9, 1.1) as f32);
        let lesion = std::array::from_fn(|label| {
            std::array::from_fn(|m| {
                lesion_ratio(label, m, secondary) * reference[m] * rng.range_f64(0.9, 1.1) as f32
            })
        });
        Self {
            gain,
            lesion,
            gamma: None,
        }
    }

    /// A contrast drawn as [`super::randomise`] says: lesion intensities from the ranges
    /// measured on real cases, tissue contrast bent by a random exponent per modality of
    /// strength `randomisation` (0 keeps the templates' contrast).
    pub fn realistic(rng: &mut Rng, reference: &[f32; MODALITIES], randomisation: f32) -> Self {
        let gain =
            std::array::from_fn(|m| WM_TARGET[m] / reference[m] * rng.range_f64(0.9, 1.1) as f32);
        let ratios = super::randomise::lesion_ratios(rng);
        let lesion =
            std::array::from_fn(|label| std::array::from_fn(|m| ratios[label][m] * reference[m]));
        let exponents = super::randomise::tissue_exponents(rng, randomisation);
        let gamma = (randomisation > 0.0).then_some((exponents, *reference));
        Self {
            gain,
            lesion,
            gamma,
        }
    }

    /// Intensity (base units) of `modality` for `tissue`, with lesion `label` blended in by
    /// `depth` (oedema keeps some of the underlying anatomy; core labels replace it).
    #[inline]
    pub fn intensity(
        &self,
        modality: usize,
        tissue: &[f32; CHANNELS],
        label: u8,
        depth: f32,
    ) -> f32 {
        let mut base = base_intensity(modality, tissue);
        if let Some((exponents, reference)) = &self.gamma {
            let white = reference[modality];
            base = white * (base.max(0.0) / white).powf(exponents[modality]);
        }
        let (row, weight) = match label {
            NECROSIS => (0, 1.0),
            OEDEMA => (1, 0.55 + 0.35 * depth),
            ENHANCING => (2, 1.0),
            _ => return base,
        };
        base + weight * (self.lesion[row][modality] - base)
    }
}

/// The modality at position `index` of the file order.
pub fn modality_at(index: usize) -> SynthModality {
    SYNTH_MODALITIES[index]
}
