//! The options of a synthetic cohort ([`SynthConfig`]), saved next to the cohort as JSON.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Largest cohort [`SynthConfig::validate`] accepts (each 1 mm subject is ~70 MB on disk).
pub const MAX_SUBJECTS: usize = 100_000;

crate::config! {
    /// Everything that defines a synthetic cohort: with the same config (and the same template
    /// files) the output is byte-identical, whatever the number of threads.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct SynthConfig {
        /// Number of subjects (`SynthBraTS_00000` ...).
        pub subjects: usize = 20,
        /// Seed of every random choice; subject `i` draws from `Rng::stream(seed, i)`.
        pub seed: u64 = 0,
        /// Share of subjects without a tumour (their segmentation is all zero).
        pub no_tumour_fraction: f64 = 0.1,
        /// Share of subjects that lack one or two random modalities (never all of them).
        pub missing_modality_fraction: f64 = 0.2,
        /// Share of the tumour subjects whose lesion is low grade (oedema-like only, label 2).
        pub low_grade_fraction: f64 = 0.3,
        /// Folder with the ICBM152 2 mm templates; `None` means "look in the usual places"
        /// (see [`crate::synth::locate_templates`]).
        pub template_dir: Option<String> = None,
        /// Output voxel size in mm (isotropic). 1 mm as BraTS; tests may use 2 mm for speed.
        pub spacing_mm: f64 = 1.0,
        /// Peak amplitude (mm) of the random smooth deformation of the anatomy.
        pub deformation_mm: f64 = 4.0,
        /// Strength of the multiplicative bias field (its log has about this amplitude per axis).
        pub bias_strength: f64 = 0.15,
        /// Rician noise standard deviation as a share of each modality's white-matter intensity:
        /// each subject draws uniformly in `[noise_min, noise_max]`.
        pub noise_min: f64 = 0.02,
        /// See [`SynthConfig::noise_min`].
        pub noise_max: f64 = 0.05,
        /// Skull-strip as BraTS does: voxels outside the brain (GM + WM + CSF probability below
        /// 0.5 at the deformed position, and not tumour) are exactly 0 in every image. Off keeps
        /// the whole head with a Rayleigh noise floor in the background.
        pub skull_strip: bool = true,
        /// Lesion contrast outside each label's key modality (necrosis: T2, oedema: FLAIR,
        /// enhancing rim: T1ce) as a share of the typical contrast: 1 keeps every modality's usual
        /// contrast; 0.2 makes each lesion subtle everywhere but in its key modality, so that
        /// segmenting it needs the right channel (a harder, cross-modal fine-tuning task).
        pub secondary_contrast: f64 = 1.0,
        /// How tumours are drawn: `classic` (one ellipsoid, thick enhancing shell, oedema-only low
        /// grade, the template lesion contrasts) or `realistic` (shaped after real BraTS cases: thin
        /// irregular enhancing rims, non-enhancing low-grade cores, metastases; lesion intensities
        /// drawn per subject from the ranges real cases show; see [`crate::synth::realistic`]).
        pub lesion_style: LesionStyle = LesionStyle::Classic,
        /// Domain randomisation of the tissue contrast (`realistic` style only): 0 keeps the
        /// templates' GM/WM/CSF contrast, 1 bends it per subject and modality by up to ±40 % in log.
        pub domain_randomisation: f64 = 0.0,
    }
}

/// See [`SynthConfig::lesion_style`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LesionStyle {
    #[default]
    Classic,
    Realistic,
}

impl SynthConfig {
    /// Refuse options that make no sense (fractions outside `[0, 1]`, absurd sizes).
    pub fn validate(&self) -> Result<()> {
        let context = "synth config";
        let fractions = [
            ("no_tumour_fraction", self.no_tumour_fraction),
            ("missing_modality_fraction", self.missing_modality_fraction),
            ("low_grade_fraction", self.low_grade_fraction),
        ];
        for (name, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::new(
                    context,
                    format!("{name} must be in [0, 1], got {value}"),
                ));
            }
        }
        if self.subjects > MAX_SUBJECTS {
            return Err(Error::new(
                context,
                format!(
                    "{} subjects is more than the limit of {MAX_SUBJECTS}",
                    self.subjects
                ),
            ));
        }
        if !(self.spacing_mm.is_finite() && (0.5..=4.0).contains(&self.spacing_mm)) {
            return Err(Error::new(
                context,
                format!("spacing_mm must be in [0.5, 4] mm, got {}", self.spacing_mm),
            ));
        }
        let amplitudes = [
            ("deformation_mm", self.deformation_mm, 20.0),
            ("bias_strength", self.bias_strength, 1.0),
            ("noise_min", self.noise_min, 1.0),
            ("noise_max", self.noise_max, 1.0),
            ("secondary_contrast", self.secondary_contrast, 1.0),
            ("domain_randomisation", self.domain_randomisation, 1.0),
        ];
        for (name, value, limit) in amplitudes {
            if !(value.is_finite() && (0.0..=limit).contains(&value)) {
                return Err(Error::new(
                    context,
                    format!("{name} must be in [0, {limit}], got {value}"),
                ));
            }
        }
        if self.noise_min > self.noise_max {
            return Err(Error::new(context, "noise_min is larger than noise_max"));
        }
        Ok(())
    }
}
