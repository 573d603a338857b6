//! What a NIfTI file name says: which subject, which modality (or the label map), which scheme.
//!
//! The name without its `.nii`/`.nii.gz` extension is split into tokens at `_`, `-`, `.`, `+` and
//! spaces. The modality is the recognised token nearest the end: a modality word (`t1`, `T1w`,
//! `t1ce`, `FLAIR`, `t2f`, `PD`, ...), else a sequence name (`MPRAGE`, `SPGR`, `TOF`, ...), else a
//! weak T2 sequence word (`SPACE`, `TSE`, ...), else a modality inside a CamelCase token
//! (`avg152T1`, `BrainT1UCharRaw`). Words elsewhere in the name refine it: a post-contrast word
//! (`post`, `gd`, `contrast`, BIDS `ce-<agent>`) makes T1 into T1c, `flair` makes T2 into FLAIR. A
//! label word anywhere (`seg`, `label`, `labels`, `segmentation`, `dseg`) makes it a label map. The
//! subject prefix is the text before the modality token; in BIDS names it is the `sub-` and `ses-`
//! entities. Every name the rules are held to is in `docs/file-names.md` (checked by a test).
//! Examples: `BraTS2021_00000_t1ce.nii.gz` (prefix `BraTS2021_00000`, T1c),
//! `BraTS-GLI-00000-000-t2f.nii.gz` (FLAIR), `IXI002-Guys-0828-T1.nii.gz` (T1),
//! `sub-01_ce-gd_T1w.nii` (prefix `sub-01`, T1c), `mni_icbm152_t1_tal_nlin_sym_09a.nii` (prefix
//! `mni_icbm152`, T1). A number right after the modality token and ending the name, as in IXI's
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
    /// BIDS: `sub-01[_ses-1][_ce-gd]_T1w.nii.gz`, entities then a suffix (`T1w T2w FLAIR PDw`).
    Bids,
    /// Any other recognised name (`t1.nii`, `patient_T1_post.nii`, ...).
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
    let tokens = tokenize(stem);
    let bids = is_bids(stem);
    if tokens.iter().any(|token| is_label_word(token.text)) {
        let prefix = match bids {
            true => bids_subject(stem),
            false => text_before_last_label(stem, &tokens),
        };
        return Some(ParsedName {
            prefix,
            role: FileRole::Label,
            series: None,
            scheme: scheme_of_label(stem, bids),
        });
    }
    let found = find_modality(&tokens)?;
    let modality = refine_modality(found.modality, &tokens, found.token_index);
    let series = series_after(&tokens, found.token_index);
    let prefix = match bids {
        true => bids_subject(stem),
        false => stem[..descriptor_run_start(&tokens, &found)]
            .trim_end_matches(is_separator)
            .to_string(),
    };
    let scheme = match bids {
        true => NamingScheme::Bids,
        false => scheme_of(found.token, separator_before(stem, found.start), &prefix),
    };
    Some(ParsedName {
        prefix,
        role: FileRole::Image(modality),
        series,
        scheme,
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

fn is_separator(c: char) -> bool {
    matches!(c, '_' | '-' | '.' | '+' | ' ')
}

/// One token of a name and where it starts in the stem (bytes).
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    start: usize,
}

fn tokenize(stem: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (at, c) in stem
        .char_indices()
        .chain(std::iter::once((stem.len(), '_')))
    {
        match (is_separator(c), start) {
            (true, Some(from)) => {
                tokens.push(Token {
                    text: &stem[from..at],
                    start: from,
                });
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    tokens
}

/// The parts of a CamelCase token: `avg152T1` → `avg152`, `T1`; `T1UCharRaw` → `T1`, `U`, `Char`,
/// `Raw`. A new part starts at an upper-case letter after a lower-case letter or digit, and at the
/// last upper-case letter of a run that a lower-case letter follows.
fn camel_parts(token: Token<'_>) -> Vec<Token<'_>> {
    let bytes = token.text.as_bytes();
    let mut parts = Vec::new();
    let mut from = 0;
    for at in 1..bytes.len() {
        let (before, here) = (bytes[at - 1], bytes[at]);
        let after_lower = bytes.get(at + 1).is_some_and(u8::is_ascii_lowercase);
        let boundary = here.is_ascii_uppercase()
            && (before.is_ascii_lowercase()
                || before.is_ascii_digit()
                || (before.is_ascii_uppercase() && after_lower));
        if boundary {
            parts.push(Token {
                text: &token.text[from..at],
                start: token.start + from,
            });
            from = at;
        }
    }
    parts.push(Token {
        text: &token.text[from..],
        start: token.start + from,
    });
    parts
}

/// The CamelCase parts of a token and each pair of neighbours joined (`ProtonDensity`), in order.
fn camel_candidates(token: Token<'_>) -> Vec<Token<'_>> {
    let parts = camel_parts(token);
    let mut candidates = Vec::with_capacity(parts.len() * 2);
    for (index, part) in parts.iter().enumerate() {
        candidates.push(*part);
        if let Some(next) = parts.get(index + 1) {
            let from = part.start - token.start;
            let to = next.start - token.start + next.text.len();
            candidates.push(Token {
                text: &token.text[from..to],
                start: part.start,
            });
        }
    }
    candidates
}

fn is_label_word(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "seg" | "label" | "labels" | "segmentation" | "dseg"
    )
}

/// A modality word or the name of a sequence that acquires one (Siemens, GE, Philips names; BIDS
/// suffixes). Case-insensitive.
fn strong_modality(token: &str) -> Option<Modality> {
    let lower = token.to_ascii_lowercase();
    let modality = match lower.as_str() {
        "mprage" | "mp2rage" | "spgr" | "fspgr" | "bravo" | "tfl" | "unit1" | "inplanet1"
        | "t1wi" | "t1weighted" => Modality::T1,
        "t2wi" | "t2weighted" => Modality::T2,
        "angio" | "tof3d" => Modality::Mra,
        "protondensity" | "inplanepd" => Modality::Pd,
        "trace" => Modality::Dwi,
        _ => return Modality::from_token(&lower),
    };
    Some(modality)
}

/// T2-weighted sequence words that name no contrast on their own (`SPACE`, `CUBE`, `TSE`, ...).
fn weak_modality(token: &str) -> Option<Modality> {
    let lower = token.to_ascii_lowercase();
    matches!(lower.as_str(), "space" | "cube" | "tse" | "fse" | "haste").then_some(Modality::T2)
}

fn is_contrast_word(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "post"
            | "postcontrast"
            | "postgd"
            | "ce"
            | "gd"
            | "gad"
            | "gado"
            | "gadolinium"
            | "contrast"
            | "enhanced"
    )
}

fn is_native_word(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    matches!(lower.as_str(), "pre" | "precontrast" | "native" | "nativ")
}

/// Words of the acquisition that say nothing of the subject (`3D`, `ax`, `sag`, `iso`, ...).
fn is_acquisition_word(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "3d" | "2d" | "ax" | "axial" | "sag" | "sagittal" | "cor" | "coronal" | "tra" | "iso"
    )
}

/// A token that describes the image rather than the subject.
fn is_descriptor(token: &str) -> bool {
    strong_modality(token).is_some()
        || weak_modality(token).is_some()
        || is_contrast_word(token)
        || is_native_word(token)
        || is_acquisition_word(token)
}

/// Where the subject prefix ends: before the run of descriptor tokens (`3D_T1_MPRAGE`) that holds
/// the modality token, or before the modality part of a CamelCase token (`avg152T1`).
fn descriptor_run_start(tokens: &[Token<'_>], found: &FoundModality<'_>) -> usize {
    let whole = tokens[found.token_index];
    if found.start != whole.start {
        return found.start;
    }
    let run = tokens[..found.token_index]
        .iter()
        .rev()
        .take_while(|token| is_descriptor(token.text))
        .last();
    run.map_or(found.start, |token| token.start)
}

/// The token that names the modality.
struct FoundModality<'a> {
    modality: Modality,
    token: &'a str,
    /// Where the token starts in the stem (bytes).
    start: usize,
    /// Index of the whole token it is (or is part of).
    token_index: usize,
}

/// The recognised token nearest the end: modality words first, then weak sequence words, then
/// modalities inside CamelCase tokens.
fn find_modality<'a>(tokens: &[Token<'a>]) -> Option<FoundModality<'a>> {
    let nearest_end = |rule: fn(&str) -> Option<Modality>| {
        tokens.iter().enumerate().rev().find_map(|(index, token)| {
            rule(token.text).map(|modality| FoundModality {
                modality,
                token: token.text,
                start: token.start,
                token_index: index,
            })
        })
    };
    nearest_end(strong_modality)
        .or_else(|| nearest_end(weak_modality))
        .or_else(|| {
            tokens.iter().enumerate().rev().find_map(|(index, token)| {
                camel_candidates(*token).into_iter().rev().find_map(|part| {
                    strong_modality(part.text).map(|modality| FoundModality {
                        modality,
                        token: part.text,
                        start: part.start,
                        token_index: index,
                    })
                })
            })
        })
}

/// T1 with a post-contrast word (and no pre-contrast word) or a `C` right after it (`T1+C`) is
/// T1c; T2 with `flair` is FLAIR.
fn refine_modality(modality: Modality, tokens: &[Token<'_>], token_index: usize) -> Modality {
    let any = |rule: fn(&str) -> bool| tokens.iter().any(|token| rule(token.text));
    let plus_c = tokens
        .get(token_index + 1)
        .is_some_and(|next| next.text.eq_ignore_ascii_case("c"));
    match modality {
        Modality::T1 if (any(is_contrast_word) || plus_c) && !any(is_native_word) => Modality::T1c,
        Modality::T2 if any(|text| text.eq_ignore_ascii_case("flair")) => Modality::Flair,
        other => other,
    }
}

/// The series index: a number that follows the modality token and ends the name.
fn series_after(tokens: &[Token<'_>], token_index: usize) -> Option<u32> {
    match &tokens[token_index + 1..] {
        [last] => last.text.parse().ok(),
        _ => None,
    }
}

fn is_bids(stem: &str) -> bool {
    stem.starts_with("sub-") && stem.contains('_')
}

/// `sub-<label>[_ses-<label>]` of a BIDS name.
fn bids_subject(stem: &str) -> String {
    stem.split('_')
        .filter(|entity| entity.starts_with("sub-") || entity.starts_with("ses-"))
        .collect::<Vec<_>>()
        .join("_")
}

fn text_before_last_label(stem: &str, tokens: &[Token<'_>]) -> String {
    let label = tokens.iter().rev().find(|token| is_label_word(token.text));
    let end = label.map_or(0, |token| token.start);
    stem[..end].trim_end_matches(is_separator).to_string()
}

fn separator_before(stem: &str, start: usize) -> Option<char> {
    stem[..start]
        .chars()
        .next_back()
        .filter(|c| is_separator(*c))
}

fn scheme_of_label(stem: &str, bids: bool) -> NamingScheme {
    let tokens = tokenize(stem);
    match (bids, tokens.last()) {
        (true, _) => NamingScheme::Bids,
        (false, Some(last)) => {
            let prefix = stem[..last.start].trim_end_matches(is_separator);
            scheme_of(last.text, separator_before(stem, last.start), prefix)
        }
        (false, None) => NamingScheme::Generic,
    }
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

    /// Every row of the table in `docs/file-names.md` holds: the modality (or `label`, or `—` for
    /// not recognised) and the subject prefix.
    #[test]
    fn documented_names() {
        let table = include_str!("../../../docs/file-names.md");
        let mut checked = 0;
        for line in table.lines().filter(|line| line.starts_with("| `")) {
            let cells: Vec<&str> = line
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().trim_matches('`'))
                .collect();
            let [name, reads_as, prefix] = cells[..] else {
                panic!("docs/file-names.md: a row without three cells: {line}");
            };
            let parsed = parse_file_name(name);
            let role = parsed.as_ref().map_or("—", |parsed| match parsed.role {
                FileRole::Image(modality) => modality.name(),
                FileRole::Label => "label",
            });
            assert_eq!(role, reads_as, "{name}");
            if let Some(parsed) = parsed {
                assert_eq!(parsed.prefix, prefix, "{name}");
            }
            checked += 1;
        }
        assert!(
            checked >= 50,
            "only {checked} rows read from docs/file-names.md"
        );
    }
}
