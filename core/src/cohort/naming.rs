//! What a NIfTI file name says: which subject, which modality (or the label map), which scheme.
//!
//! The modality is the last token of the name without its `.nii`/`.nii.gz` extension, tokens being
//! separated by `_`, `-` or `.`; the subject prefix is everything before it. Examples:
//! `BraTS2021_00000_t1ce.nii.gz` (prefix `BraTS2021_00000`, T1c), `BraTS-GLI-00000-000-t2f.nii.gz`
//! (prefix `BraTS-GLI-00000-000`, FLAIR), `IXI002-Guys-0828-T1.nii.gz` (prefix `IXI002-Guys-0828`,
//! T1), `sub-01_T1w.nii` (BIDS-like, T1). A trailing number after a modality token, as in IXI's
//! per-direction `IXI002-Guys-0828-DTI-00.nii.gz`, is a series index of that modality.

use crate::Modality;
use serde::{Deserialize, Serialize};

/// What a recognised file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FileRole {
    /// An image of this canonical modality.
    Image(Modality),
    /// A segmentation / label map (`seg`, `label`, `labels`, `segmentation`, `dseg`).
    Label,
}

/// The naming convention a file (or a whole cohort) follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NamingScheme {
    /// `BraTS2021_00000_t1.nii.gz`: `_`-separated, tokens `t1 t1ce t2 flair seg`.
    Brats2021,
    /// `BraTS-GLI-00000-000-t1n.nii.gz`: `-`-separated, tokens `t1n t1c t2w t2f seg`.
    Brats2023,
    /// `IXI002-Guys-0828-T1.nii.gz`: `-`-separated, tokens `T1 T2 PD MRA DTI`.
    Ixi,
    /// Any other recognised name (`sub-01_T1w.nii`, `t1.nii`, ...).
    Generic,
    /// A cohort whose files follow several schemes.
    Mixed,
}

/// A parsed NIfTI file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName {
    /// The subject part of the name (may be empty, e.g. for `t1.nii.gz`).
    pub prefix: String,
    pub role: FileRole,
    /// The series index after the modality token (`DTI-03` → 3), if any.
    pub series: Option<u32>,
    pub scheme: NamingScheme,
}

/// The role of a file from its name alone, or `None` when it is not a recognised NIfTI image or
/// label map (other extensions, unknown modality tokens).
pub fn classify_file_name(name: &str) -> Option<FileRole> {
    parse_file_name(name).map(|parsed| parsed.role)
}

/// Split a NIfTI file name into subject prefix, role and scheme; `None` when not recognised.
pub fn parse_file_name(name: &str) -> Option<ParsedName> {
    let stem = nifti_stem(name)?;
    let (prefix, separator, token) = split_last_token(stem);
    if let Some(role) = role_of_token(token) {
        let scheme = scheme_of(token, separator, prefix);
        return Some(ParsedName {
            prefix: prefix.to_string(),
            role,
            series: None,
            scheme,
        });
    }
    // `<prefix>-<modality>-<series number>` (IXI DTI directions).
    let series: u32 = token.parse().ok()?;
    let (inner_prefix, inner_separator, inner_token) = split_last_token(prefix);
    let role = role_of_token(inner_token).filter(|role| *role != FileRole::Label)?;
    Some(ParsedName {
        prefix: inner_prefix.to_string(),
        role,
        series: Some(series),
        scheme: scheme_of(inner_token, inner_separator, inner_prefix),
    })
}

/// `name` without its `.nii.gz` / `.nii` extension (case-insensitive), or `None` if it has neither.
pub fn nifti_stem(name: &str) -> Option<&str> {
    let lower = name.to_ascii_lowercase();
    let extension_len = if lower.ends_with(".nii.gz") {
        ".nii.gz".len()
    } else if lower.ends_with(".nii") {
        ".nii".len()
    } else {
        return None;
    };
    let stem = &name[..name.len() - extension_len];
    (!stem.is_empty()).then_some(stem)
}

/// `(prefix, separator, token)`: the text after the last `_`, `-` or `.`, and what precedes it
/// (with any run of separators trimmed). Without a separator the whole text is the token.
fn split_last_token(text: &str) -> (&str, Option<char>, &str) {
    let is_separator = |c: char| matches!(c, '_' | '-' | '.');
    match text.rfind(is_separator) {
        Some(at) => {
            let separator = text[at..].chars().next();
            let prefix = text[..at].trim_end_matches(is_separator);
            (prefix, separator, &text[at + 1..])
        }
        None => ("", None, text),
    }
}

fn role_of_token(token: &str) -> Option<FileRole> {
    let lower = token.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "seg" | "label" | "labels" | "segmentation" | "dseg"
    ) {
        return Some(FileRole::Label);
    }
    Modality::from_token(&lower).map(FileRole::Image)
}

fn scheme_of(token: &str, separator: Option<char>, prefix: &str) -> NamingScheme {
    let lower = token.to_ascii_lowercase();
    let prefix_lower = prefix.to_ascii_lowercase();
    let brats = prefix_lower.starts_with("brats");
    match (separator, lower.as_str()) {
        (Some('_'), "t1" | "t1ce" | "t2" | "flair" | "seg") if brats => NamingScheme::Brats2021,
        (Some('-'), "t1n" | "t1c" | "t2w" | "t2f" | "seg") if brats => NamingScheme::Brats2023,
        (Some('-'), "t1" | "t2" | "pd" | "mra" | "dti") if prefix_lower.starts_with("ixi") => {
            NamingScheme::Ixi
        }
        _ => NamingScheme::Generic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prefix_and_token() {
        let parsed = parse_file_name("BraTS-GLI-00000-000-t2f.nii.gz").unwrap();
        assert_eq!(parsed.prefix, "BraTS-GLI-00000-000");
        assert_eq!(parsed.role, FileRole::Image(Modality::Flair));
        assert_eq!(parsed.scheme, NamingScheme::Brats2023);
        let dti = parse_file_name("IXI002-Guys-0828-DTI-03.nii.gz").unwrap();
        assert_eq!(dti.prefix, "IXI002-Guys-0828");
        assert_eq!(
            (dti.role, dti.series),
            (FileRole::Image(Modality::Dwi), Some(3))
        );
        assert_eq!(parse_file_name("BraTS2021_00000.nii.gz"), None);
        assert_eq!(parse_file_name("t1.nii").unwrap().prefix, "");
    }
}
