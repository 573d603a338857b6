//! The preprocessed training cache: one raw little-endian file per subject and modality, a `u8`
//! label map, and `manifest.json`, read back through memory maps.
//!
//! Layout of a cache folder:
//! - `<id>_<modality>.f16` (or `.f32`): the preprocessed image, `dims[0] * dims[1] * dims[2]` voxels,
//!   x fastest, little-endian IEEE half (or single) floats;
//! - `<id>_seg.u8`: the label map, one byte per voxel, same grid;
//! - `<id>.subject.json`: the subject's entry, written after its volumes (lets a re-run resume);
//! - `manifest.json`: everything above for all subjects plus the configuration, written last.
//!
//! Every file is written to `<name>.tmp` and renamed once complete, so a killed `prepare` never
//! leaves a manifest pointing at partial files; a re-run skips the subjects that are complete.

pub mod cohort;
pub mod files;
pub mod manifest;
pub mod prepare;
pub mod reader;
pub mod summary;

pub use cohort::{prepare_cohort, PrepareConfig};
pub use manifest::{
    CacheDtype, FailedSubject, Manifest, SubjectEntry, CACHE_MANIFEST_FILE, FORMAT_VERSION,
};
pub use prepare::{prepare_subjects, PrepareProgress, SubjectOutcome, WriteOptions};
pub use reader::CacheReader;
pub use summary::{summarize, CacheSummary, SubjectSummary};
