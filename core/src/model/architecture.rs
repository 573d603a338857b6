//! The backbone: one enum, one spelling, wherever a backbone is named (pre-training and
//! fine-tuning TOML, `model.json` of a model folder, the command line, the page).
//!
//! Spellings: `uniformer-s`, `uniformer-tiny`, `unet3d`. Configs and model folders written
//! before the spelling was unified used `"Small"` / `"Tiny"` (fine-tuning TOML, `model.json`)
//! and `small` / `tiny` (`--encoder`); those still read, with a one-line deprecation warning.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::unet3d::Unet3dConfig;
use super::uniformer::{UniformerConfig, TOTAL_STRIDE};
use crate::error::{Error, Result};

/// The backbone: UniFormer-S, the tiny UniFormer, or UNet3D (pre-training only: UniUnet and the
/// classifier need a UniFormer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// UniFormer-S (22.0 M parameters), the paper's main backbone.
    UniformerS,
    /// A tiny UniFormer for CPU tests and the browser.
    UniformerTiny,
    /// The official second backbone, UNet3D, with its up-sampling decoder.
    Unet3d,
}

/// Spellings read before the names were unified, with the architecture each meant.
const OLD_SPELLINGS: [(&str, Architecture); 4] = [
    ("Small", Architecture::UniformerS),
    ("small", Architecture::UniformerS),
    ("Tiny", Architecture::UniformerTiny),
    ("tiny", Architecture::UniformerTiny),
];

/// Set once the deprecation warning has been logged (one line per process, not per file).
static OLD_SPELLING_WARNED: AtomicBool = AtomicBool::new(false);

impl Architecture {
    /// Every architecture, in the order the help texts list them.
    pub const ALL: [Architecture; 3] = [Self::UniformerS, Self::UniformerTiny, Self::Unet3d];

    /// The UniFormer encoders (what UniUnet and the classifier accept).
    pub const UNIFORMERS: [Architecture; 2] = [Self::UniformerS, Self::UniformerTiny];

    /// The name used in configs, model folders and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::UniformerS => "uniformer-s",
            Self::UniformerTiny => "uniformer-tiny",
            Self::Unet3d => "unet3d",
        }
    }

    /// How reports and the page name it for people: `UniFormer-S`, `UniFormer tiny`, `UNet3D`
    /// (configs and flags use [`name`](Self::name)).
    pub fn label(self) -> &'static str {
        match self {
            Self::UniformerS => "UniFormer-S",
            Self::UniformerTiny => "UniFormer tiny",
            Self::Unet3d => "UNet3D",
        }
    }

    /// The names of [`ALL`](Self::ALL), for error messages: `uniformer-s, uniformer-tiny or unet3d`.
    pub fn expected_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|arch| arch.name()).collect();
        format!(
            "{} or {}",
            names[..names.len() - 1].join(", "),
            names[names.len() - 1]
        )
    }

    /// Whether this is a UniFormer (an encoder UniUnet and the classifier can use).
    pub fn is_uniformer(self) -> bool {
        Self::UNIFORMERS.contains(&self)
    }

    /// The UniFormer configuration for `in_channels` inputs; UNet3D is refused (UniUnet and the
    /// classifier are built on a UniFormer).
    pub fn uniformer_config(self, in_channels: usize) -> Result<UniformerConfig> {
        match self {
            Self::UniformerS => Ok(UniformerConfig::small(in_channels)),
            Self::UniformerTiny => Ok(UniformerConfig::tiny(in_channels)),
            Self::Unet3d => Err(Error::new(
                "encoder",
                "unet3d is a pre-training backbone only: UniUnet and the classifier need \
                 uniformer-s or uniformer-tiny",
            )),
        }
    }

    /// The encoder's config for `in_channels` inputs, as JSON (saved beside exported weights).
    pub fn encoder_config_json(self, in_channels: usize) -> serde_json::Value {
        let value = match self.uniformer_config(in_channels) {
            Ok(config) => serde_json::to_value(config),
            Err(_) => serde_json::to_value(Unet3dConfig::official(in_channels)),
        };
        value.unwrap_or(serde_json::Value::Null)
    }

    /// Channels of the encoder's first feature map (`widths[0]` of a UniFormer, the base width
    /// of UNet3D).
    pub fn stem_width(self) -> usize {
        match self.uniformer_config(1) {
            Ok(config) => config.widths[0],
            Err(_) => Unet3dConfig::official(1).base_width,
        }
    }

    /// The crop edge must be a multiple of this (the encoder's total stride).
    pub fn stride(self) -> usize {
        match self {
            Self::UniformerS | Self::UniformerTiny => TOTAL_STRIDE,
            Self::Unet3d => 8,
        }
    }

    /// Reads `name`: a current spelling, or an old one (with a one-time deprecation warning).
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        if let Some(arch) = Self::ALL.into_iter().find(|arch| arch.name() == name) {
            return Ok(arch);
        }
        if let Some((old, arch)) = OLD_SPELLINGS.into_iter().find(|(old, _)| *old == name) {
            if !OLD_SPELLING_WARNED.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "deprecated encoder spelling {old:?}: write {:?} (the old spellings Small/Tiny/small/tiny still read)",
                    arch.name()
                );
            }
            return Ok(arch);
        }
        Err(format!(
            "unknown architecture {name:?}: expected {}",
            Self::expected_names()
        ))
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Architecture {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        Self::from_name(name)
    }
}

impl Serialize for Architecture {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Architecture {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for arch in Architecture::ALL {
            let json = serde_json::to_string(&arch).unwrap();
            assert_eq!(json, format!("\"{}\"", arch.name()));
            assert_eq!(serde_json::from_str::<Architecture>(&json).unwrap(), arch);
            assert_eq!(arch.name().parse::<Architecture>(), Ok(arch));
        }
    }

    #[test]
    fn old_spellings_read_as_the_architecture_they_meant() {
        for (old, arch) in OLD_SPELLINGS {
            assert_eq!(old.parse::<Architecture>(), Ok(arch));
            let json = format!("\"{old}\"");
            assert_eq!(serde_json::from_str::<Architecture>(&json).unwrap(), arch);
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_expected_ones() {
        let error = "resnet".parse::<Architecture>().unwrap_err();
        assert!(error.contains("\"resnet\""), "{error}");
        assert!(
            error.contains("uniformer-s, uniformer-tiny or unet3d"),
            "{error}"
        );
        assert!(serde_json::from_str::<Architecture>("\"UniformerS\"").is_err());
    }

    #[test]
    fn only_uniformers_configure_a_uniformer() {
        assert_eq!(
            Architecture::UniformerS.uniformer_config(4).unwrap().widths,
            [64, 128, 320, 512]
        );
        assert!(Architecture::UniformerTiny.uniformer_config(1).is_ok());
        let error = Architecture::Unet3d.uniformer_config(4).unwrap_err();
        assert!(error.to_string().contains("unet3d"), "{error}");
    }
}
