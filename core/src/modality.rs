//! The canonical modality set of BrainMVP and the mapping of dataset-specific names onto it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The canonical modalities, in the official order (`flair t1 t1c t2 mra pd dwi adc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Flair,
    T1,
    T1c,
    T2,
    Mra,
    Pd,
    Dwi,
    Adc,
}

impl Modality {
    /// All canonical modalities in the official order (the index is the template index).
    pub const ALL: [Modality; 8] = [
        Modality::Flair,
        Modality::T1,
        Modality::T1c,
        Modality::T2,
        Modality::Mra,
        Modality::Pd,
        Modality::Dwi,
        Modality::Adc,
    ];

    /// The canonical lower-case name (`flair`, `t1`, `t1c`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Modality::Flair => "flair",
            Modality::T1 => "t1",
            Modality::T1c => "t1c",
            Modality::T2 => "t2",
            Modality::Mra => "mra",
            Modality::Pd => "pd",
            Modality::Dwi => "dwi",
            Modality::Adc => "adc",
        }
    }

    /// Position in [`Modality::ALL`].
    pub fn index(self) -> usize {
        Modality::ALL.iter().position(|&m| m == self).unwrap_or(0)
    }

    /// Map a dataset-specific modality token (case-insensitive) onto the canonical set:
    /// BraTS 2021 (`t1 t1ce t2 flair`), BraTS 2023 (`t1n t1c t2w t2f`), IXI (`T1 T2 PD MRA DTI`)
    /// and common spellings. `None` for anything else (segmentations included).
    pub fn from_token(token: &str) -> Option<Modality> {
        let token = token.trim().to_ascii_lowercase();
        let modality = match token.as_str() {
            "flair" | "t2f" | "t2flair" | "t2-flair" | "t2_flair" => Modality::Flair,
            "t1" | "t1n" | "t1w" | "t1native" => Modality::T1,
            "t1c" | "t1ce" | "t1gd" | "t1-gd" | "t1post" | "t1wce" => Modality::T1c,
            "t2" | "t2w" => Modality::T2,
            "mra" | "tof" => Modality::Mra,
            "pd" | "pdw" => Modality::Pd,
            "dwi" | "dti" => Modality::Dwi,
            "adc" => Modality::Adc,
            _ => return None,
        };
        Some(modality)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Modality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Modality::from_token(s).ok_or_else(|| {
            format!(
                "unknown modality '{s}' (expected one of flair, t1, t1c, t2, mra, pd, dwi, adc)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_mapping() {
        assert_eq!(Modality::from_token("t1n"), Some(Modality::T1));
        assert_eq!(Modality::from_token("T1CE"), Some(Modality::T1c));
        assert_eq!(Modality::from_token("t1c"), Some(Modality::T1c));
        assert_eq!(Modality::from_token("t2w"), Some(Modality::T2));
        assert_eq!(Modality::from_token("t2f"), Some(Modality::Flair));
        assert_eq!(Modality::from_token("PD"), Some(Modality::Pd));
        assert_eq!(Modality::from_token("seg"), None);
        assert_eq!(Modality::Adc.index(), 7);
    }
}
