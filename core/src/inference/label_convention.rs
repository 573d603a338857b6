//! Which value the written label map gives the enhancing tumour: BraTS 2021 writes 4, BraTS 2023
//! writes 3 (and uses 4 for the resection cavity). A model keeps the convention it was trained
//! with in its manifest; segmenting converts to the convention of the input's own file names
//! (`t1n/t1c/t2w/t2f`: 2023, `BraTS2021_..._t1ce/flair`: 2021) or the one the user asks for, so
//! that the map scores against that cohort's references without a conversion step.

use super::segment::Segmentation;
use crate::cohort::naming::{parse_file_name, NamingScheme};
use crate::labels::LabelScheme;

/// Enhancing label of BraTS 2021 (and of the models trained on it).
pub const BRATS2021_ENHANCING: u8 = 4;
/// Enhancing label of BraTS 2023.
pub const BRATS2023_ENHANCING: u8 = 3;

/// File-name tokens only BraTS 2023 uses for its images.
const BRATS2023_TOKENS: [&str; 3] = ["t1n", "t2w", "t2f"];

/// The enhancing label the input files' names call for, with the reason in words, or `None`
/// when the names say nothing (then the model's own convention is kept).
pub fn enhancing_label_from_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Option<(u8, &'static str)> {
    let mut brats2021 = false;
    for name in names {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let Some(parsed) = parse_file_name(base) else {
            continue;
        };
        let lower = base.to_ascii_lowercase();
        let token_2023 = BRATS2023_TOKENS.iter().any(|token| {
            lower.contains(&format!("-{token}.")) || lower.contains(&format!("_{token}."))
        });
        if parsed.scheme == NamingScheme::Brats2023 || token_2023 {
            return Some((
                BRATS2023_ENHANCING,
                "BraTS 2023 file names (t1n/t1c/t2w/t2f)",
            ));
        }
        brats2021 |= parsed.scheme == NamingScheme::Brats2021;
    }
    brats2021.then_some((
        BRATS2021_ENHANCING,
        "BraTS 2021 file names (t1/t1ce/t2/flair)",
    ))
}

/// One line for the user: which value the enhancing tumour has in the written map, and why.
pub fn describe(enhancing_label: u8, reason: &str) -> String {
    let era = match enhancing_label {
        BRATS2023_ENHANCING => "BraTS 2023",
        _ => "BraTS 2021",
    };
    format!("enhancing tumour written as {enhancing_label} ({era} convention: {reason})")
}

/// Gives the enhancing tumour of `segmentation` (a BraTS map written with `scheme`) the value
/// `wanted`; returns the scheme of the converted map. Other schemes pass through unchanged.
pub fn convert(segmentation: &mut Segmentation, scheme: &LabelScheme, wanted: u8) -> LabelScheme {
    let LabelScheme::Brats { enhancing_label } = *scheme else {
        return scheme.clone();
    };
    if enhancing_label != wanted {
        for label in segmentation.label_map.data.iter_mut() {
            if *label == enhancing_label {
                *label = wanted;
            }
        }
    }
    LabelScheme::Brats {
        enhancing_label: wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_decide_the_convention() {
        let brats23 = [
            "case/BraTS-GLI-00001-000-t1c.nii.gz",
            "BraTS-GLI-00001-000-t2f.nii.gz",
        ];
        assert_eq!(enhancing_label_from_names(brats23).unwrap().0, 3);
        let brats21 = [
            "BraTS2021_00000_t1ce.nii.gz",
            "BraTS2021_00000_flair.nii.gz",
        ];
        assert_eq!(enhancing_label_from_names(brats21).unwrap().0, 4);
        assert_eq!(
            enhancing_label_from_names(["my-case-t2w.nii"]).unwrap().0,
            3
        );
        assert_eq!(
            enhancing_label_from_names(["TCGA-DU-7294_t1c_bet.nii.gz"]),
            None
        );
        assert_eq!(enhancing_label_from_names(["t1.nii.gz", "flair.nii"]), None);
    }
}
