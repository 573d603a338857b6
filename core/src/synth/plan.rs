//! The cohort plan: which subjects get which kind of tumour and which lack modalities.
//!
//! Counts are exact (`round(fraction · subjects)`), and the subjects that get them are chosen by a
//! shuffle from a cohort-level random stream, so the plan depends on the config only.

use super::SynthConfig;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// The modalities a synthetic subject can have, in file order, with their BraTS 2021 file tokens.
pub const SYNTH_MODALITIES: [SynthModality; 5] = [
    SynthModality::T1,
    SynthModality::T1ce,
    SynthModality::T2,
    SynthModality::Flair,
    SynthModality::Pd,
];

/// One synthesised modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SynthModality {
    T1,
    T1ce,
    T2,
    Flair,
    Pd,
}

impl SynthModality {
    /// The BraTS 2021 file-name token (`t1`, `t1ce`, `t2`, `flair`, `pd`).
    pub fn token(self) -> &'static str {
        match self {
            SynthModality::T1 => "t1",
            SynthModality::T1ce => "t1ce",
            SynthModality::T2 => "t2",
            SynthModality::Flair => "flair",
            SynthModality::Pd => "pd",
        }
    }

    /// Position in [`SYNTH_MODALITIES`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The class of a subject's lesion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grade {
    /// No tumour: the segmentation is all zero.
    None,
    /// Low grade: an oedema-like lesion only (label 2), no necrosis or enhancement.
    Lgg,
    /// High grade: necrotic core (1), enhancing rim (4) and oedema (2).
    Hgg,
}

impl Grade {
    /// The name written to `subjects.csv` (`none`, `LGG`, `HGG`).
    pub fn name(self) -> &'static str {
        match self {
            Grade::None => "none",
            Grade::Lgg => "LGG",
            Grade::Hgg => "HGG",
        }
    }
}

/// What is decided about one subject before its images are generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPlan {
    /// Position in the cohort (also the random stream id).
    pub index: usize,
    /// `SynthBraTS_00042`.
    pub id: String,
    pub grade: Grade,
    /// Modalities not written for this subject (empty, or one or two of them).
    pub missing: Vec<SynthModality>,
}

impl SubjectPlan {
    /// Whether `modality` is written for this subject.
    pub fn has(&self, modality: SynthModality) -> bool {
        !self.missing.contains(&modality)
    }
}

/// The subject id of position `index`.
pub fn subject_id(index: usize) -> String {
    format!("SynthBraTS_{index:05}")
}

/// Stream id of the cohort-level choices (subjects use their index).
const PLAN_STREAM: u64 = u64::MAX;

/// Decide grades and missing modalities for every subject of `config`.
pub fn plan_cohort(config: &SynthConfig) -> Vec<SubjectPlan> {
    let count = config.subjects;
    let mut rng = Rng::stream(config.seed, PLAN_STREAM);
    let share = |fraction: f64, of: usize| ((fraction * of as f64).round() as usize).min(of);

    let no_tumour = share(config.no_tumour_fraction, count);
    let low_grade = share(config.low_grade_fraction, count - no_tumour);
    let mut grades: Vec<Grade> = (0..count)
        .map(|i| match i {
            i if i < no_tumour => Grade::None,
            i if i < no_tumour + low_grade => Grade::Lgg,
            _ => Grade::Hgg,
        })
        .collect();
    rng.shuffle(&mut grades);

    let mut lacking: Vec<bool> = (0..count)
        .map(|i| i < share(config.missing_modality_fraction, count))
        .collect();
    rng.shuffle(&mut lacking);

    grades
        .into_iter()
        .zip(lacking)
        .enumerate()
        .map(|(index, (grade, lacks))| {
            let missing = if lacks {
                draw_missing(&mut rng)
            } else {
                Vec::new()
            };
            SubjectPlan {
                index,
                id: subject_id(index),
                grade,
                missing,
            }
        })
        .collect()
}

/// One or two distinct modalities, in file order.
fn draw_missing(rng: &mut Rng) -> Vec<SynthModality> {
    let mut order = SYNTH_MODALITIES;
    rng.shuffle(&mut order);
    let mut missing = order[..1 + rng.below(2)].to_vec();
    missing.sort_by_key(|m| m.index());
    missing
}
