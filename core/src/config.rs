//! [`config!`](crate::config!): the one way a config is declared in brainmvp, from a TOML job's
//! section to a network's shape: the struct with each default written next to its field, as
//! burn's `#[derive(Config)]` does with `#[config(default = ...)]`, plus `Default` and a
//! `with_<field>` builder per field (the builders burn's derive makes).
//!
//! burn's derive is not used because its generated serde code drops the struct's serde attributes:
//! a missing key would be an error instead of taking its default (`#[serde(default)]`) and an
//! unknown key would be ignored instead of refused (`#[serde(deny_unknown_fields)]`). This macro
//! only adds `impl Default` and the builders; the struct, its derives and its serde attributes are
//! exactly what is written, so serde behaves as with a hand-written `Default`. A network config's
//! fields that burn's derive made required (`UniUnetConfig::new(in_channels, out_channels)`) have
//! the official model's values as defaults, and the config keeps a hand-written `new`.

/// Declares a struct and its `Default` from a default written after each field:
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// brainmvp_core::config! {
///     /// Optimiser settings.
///     #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
///     #[serde(default, deny_unknown_fields)]
///     pub struct Optim {
///         /// Peak learning rate.
///         pub lr: f64 = 3e-4,
///         /// Steps of linear warm-up.
///         pub warmup: u64 = 100,
///         /// No `= value`: the type's own default (here `false`).
///         pub amsgrad: bool,
///     }
/// }
///
/// let optim: Optim = serde_json::from_str(r#"{"lr": 1e-3}"#).unwrap();
/// assert_eq!(optim, Optim { lr: 1e-3, ..Optim::default() });
/// assert_eq!(Optim::default().with_lr(1e-3), optim);
/// assert_eq!((Optim::default().warmup, Optim::default().amsgrad), (100, false));
/// let unknown = serde_json::from_str::<Optim>(r#"{"lrr": 1e-3}"#).unwrap_err();
/// assert!(unknown.to_string().contains("unknown field `lrr`"));
/// ```
///
/// Attributes (doc comments, derives, serde attributes) are kept on the struct and its fields. A
/// field without `= value` takes `Default::default()` of its type. Every field gets a
/// `with_<field>(value) -> Self` builder. The struct should carry
/// `#[serde(default)]` so that a missing key takes the default written here.
#[macro_export]
macro_rules! config {
    (@default) => { ::core::default::Default::default() };
    (@default $default:expr) => { $default };
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                $field_vis:vis $field:ident : $ty:ty $(= $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $(
                $(#[$field_attr])*
                $field_vis $field: $ty,
            )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self {
                    $($field: $crate::config!(@default $($default)?),)*
                }
            }
        }

        $crate::__pastey::paste! {
            #[allow(dead_code)]
            impl $name {
                $(
                    #[doc = concat!("This config with `", stringify!($field), "` set to `value`.")]
                    #[must_use]
                    $field_vis fn [<with_ $field>](mut self, value: $ty) -> Self {
                        self.$field = value;
                        self
                    }
                )*
            }
        }
    };
}
