//! Domain randomisation of the synthetic contrasts, as SynthSeg does for brain MRI: each subject
//! draws its own lesion intensities and tissue contrast, so that a model learns the shapes and
//! the relations between modalities rather than one generator's grey values.
//!
//! The lesion ranges (intensity / white-matter intensity, per modality) span what the reference
//! maps of the three real patients in `../shared/data/real` show, with a margin (measured by
//! `tests/reference/real_profiles.py`, `docs/results.md`):
//! - necrotic or non-enhancing core: dark to tissue-like on T1 and T1ce (0.36–0.85 measured),
//!   bright on T2 (1.5–2.2), anywhere from tissue-like to bright on FLAIR (1.35–1.86);
//! - oedema: darker than WM on T1 (0.67–0.83), bright on T2 (1.6–1.7) and FLAIR (1.5–1.8);
//! - enhancing tumour: bright on T1ce above the other compartments (1.16 against 0.74),
//!   moderately bright on T2 and FLAIR (1.3–1.4);
//! - a fluid-filled cavity (the metastasis case): CSF-like, T2 3.5, FLAIR 1.05, T1ce 0.44.

use super::contrast::MODALITIES;
use crate::rng::Rng;

/// `[low, high]` of lesion / white-matter intensity per modality (t1, t1ce, t2, flair, pd) for
/// the necrotic or non-enhancing core and the oedema.
const CORE_RANGE: [[f64; 2]; MODALITIES] =
    [[0.3, 0.9], [0.3, 0.85], [1.4, 2.4], [0.9, 2.0], [1.1, 1.6]];
/// A fluid-filled (cystic) core, one core in [`CYST_SHARE`]: dark on T1/T1ce, as bright as CSF on
/// T2 and partly suppressed on FLAIR (BraTS-MET-00110-000's cavity: T2 3.5, FLAIR 1.05).
const CYST_RANGE: [[f64; 2]; MODALITIES] =
    [[0.3, 0.6], [0.3, 0.6], [2.6, 3.8], [0.7, 1.3], [1.3, 1.8]];
/// Share of the cores drawn from [`CYST_RANGE`].
const CYST_SHARE: f64 = 0.25;
const OEDEMA_RANGE: [[f64; 2]; MODALITIES] = [
    [0.6, 0.9],
    [0.55, 0.9],
    [1.3, 2.0],
    [1.3, 2.1],
    [1.05, 1.35],
];
/// Enhancing tumour; its T1ce entry is a margin above the brighter of core and oedema on T1ce.
const ENHANCING_RANGE: [[f64; 2]; MODALITIES] =
    [[0.75, 1.0], [0.3, 0.9], [1.1, 1.6], [1.1, 1.7], [1.0, 1.3]];
/// Position of T1ce in the file order.
const T1CE: usize = 1;

/// One subject's lesion / white-matter ratios per label row (necrosis, oedema, enhancing).
pub fn lesion_ratios(rng: &mut Rng) -> [[f32; MODALITIES]; 3] {
    let cystic = rng.chance(CYST_SHARE);
    let mut draw = |range: &[[f64; 2]; MODALITIES]| {
        std::array::from_fn(|m| rng.range_f64(range[m][0], range[m][1]) as f32)
    };
    let core: [f32; MODALITIES] = draw(if cystic { &CYST_RANGE } else { &CORE_RANGE });
    let oedema: [f32; MODALITIES] = draw(&OEDEMA_RANGE);
    let mut enhancing: [f32; MODALITIES] = draw(&ENHANCING_RANGE);
    enhancing[T1CE] += core[T1CE].max(oedema[T1CE]);
    [core, oedema, enhancing]
}

/// Exponent per modality that bends the tissue contrast around white matter:
/// `exp(strength · U(-0.4, 0.4))` (GM/WM and CSF/WM contrasts vary by ±40 % in log at 1).
pub fn tissue_exponents(rng: &mut Rng, strength: f32) -> [f32; MODALITIES] {
    std::array::from_fn(|_| (strength as f64 * rng.range_f64(-0.4, 0.4)).exp() as f32)
}
