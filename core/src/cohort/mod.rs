//! Cohort discovery: the subjects of a data folder and their files, from BraTS 2021, BraTS 2023,
//! IXI-style and similar names, mapped onto the canonical modalities. File-name classification ([`naming`]) also works without the
//! `fs` feature (the browser maps dropped files with it); folder discovery needs it.

#[cfg(feature = "fs")]
pub mod discover;
pub mod naming;

#[cfg(feature = "fs")]
pub use discover::{discover, Cohort, SubjectFiles, MAX_DEPTH};
pub use naming::{classify_file_name, parse_file_name, FileRole, NamingScheme, ParsedName};
