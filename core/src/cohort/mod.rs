//! Cohort discovery: the subjects of a data folder and their files, from BraTS 2021, BraTS 2023,
//! IXI-style and similar names, mapped onto the canonical modalities.

pub mod discover;
pub mod naming;

pub use discover::{discover, Cohort, SubjectFiles, MAX_DEPTH};
pub use naming::{classify_file_name, parse_file_name, FileRole, NamingScheme, ParsedName};
