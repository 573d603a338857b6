//! The synthetic multi-modal tumour cohort (`brainmvp synth`).
//!
//! No public package ships FLAIR, T1ce or tumour images, so the cohort is made from the real
//! co-registered ICBM152 T1/T2/PD averages and GM/WM/CSF probability maps: the 2 mm maps are
//! upsampled once to the output grid ([`Anatomy`]), and every subject gets, from its own random
//! stream `Rng::stream(seed, index)`:
//! - a smooth random deformation ([`deform`]) and, with a tumour, a radial mass effect;
//! - a tumour ([`tumour`]) with BraTS labels 1 (necrotic core), 4 (enhancing rim) and
//!   2 (oedema), or for low grade an oedema-like lesion only;
//! - per-modality contrasts ([`contrast`]): FLAIR as T2 with CSF suppressed, T1ce as T1 with
//!   enhancement in the rim;
//! - a multiplicative bias field ([`bias`]) and Rician noise ([`noise`]).
//!
//! The cohort plan ([`plan`]) fixes exact numbers of subjects without tumour, with low-grade
//! lesions and with missing modalities. With the `fs` feature, [`write_cohort`] writes
//! BraTS-2021-named int16 files, `subjects.csv` and `synth_config.json`, subjects in parallel,
//! byte-identical for a config whatever the number of threads.

pub mod anatomy;
pub mod bias;
pub mod config;
pub mod contrast;
pub mod deform;
pub mod distractors;
pub mod noise;
pub mod plan;
pub mod randomise;
pub mod realistic;
pub mod subject;
pub mod tumour;

pub use anatomy::Anatomy;
pub use config::{LesionStyle, SynthConfig};
pub use plan::{plan_cohort, subject_id, Grade, SubjectPlan, SynthModality, SYNTH_MODALITIES};
pub use subject::{generate_subject, LabelCounts, SharedAnatomy, SyntheticSubject};
pub use tumour::{ENHANCING, NECROSIS, OEDEMA};

#[cfg(feature = "fs")]
pub mod templates;
#[cfg(feature = "fs")]
pub mod writer;

#[cfg(feature = "fs")]
pub use templates::{load_anatomy, locate_templates};
#[cfg(feature = "fs")]
pub use writer::{load_shared, subject_file, write_cohort, write_cohort_with, SubjectRecord};
