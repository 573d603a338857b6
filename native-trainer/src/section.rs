//! A job-file section that is another config: the `[data]` section of pre-training and of
//! fine-tuning is the loader's [`LoaderConfig`](brainmvp_core::loader::LoaderConfig), written once
//! in core, with the job's own defaults and without the keys the job sets itself (the loader seed
//! is the job's `seed`).
//!
//! `#[serde(flatten)]` cannot do this: a flattened struct fills missing keys from its own
//! `Default` (not the job's), `deny_unknown_fields` does not combine with it, and every key of
//! the inner struct, the job's own included, would be read and printed. A [`Section`] reads the
//! section as a table, refuses unknown keys and the job's keys with a message naming the key,
//! lays the given keys over the job's defaults, and prints the struct's fields in their order
//! without the job's keys.

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::{Error as _, Impossible, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a job reads and prints a section that is the config `T`. Use it from the field's
/// `serialize_with` / `deserialize_with` functions.
///
/// Every key of `T` must appear when `T` is serialised (no `skip_serializing_if`, no `None`
/// option in `defaults`) under its field name (no renames), as [`LoaderConfig`]'s do.
///
/// [`LoaderConfig`]: brainmvp_core::loader::LoaderConfig
pub struct Section<T> {
    /// The job's defaults of the section: a missing key takes its value from here.
    pub defaults: fn() -> T,
    /// The keys of `T` that the job sets itself, each with the reason shown when a file sets it:
    /// refused in the file and left out of the printed config.
    pub set_by_job: &'static [(&'static str, &'static str)],
}

impl<T: Serialize + DeserializeOwned> Section<T> {
    /// Reads the section: the given keys over the job's defaults; an unknown key or a key the
    /// job sets itself is an error naming the key.
    pub fn deserialize<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Result<T, D::Error> {
        let given = toml::Table::deserialize(deserializer)?;
        let mut table = toml::Table::try_from((self.defaults)()).map_err(D::Error::custom)?;
        for (key, value) in given {
            if let Some((_, reason)) = self.set_by_job.iter().find(|(owned, _)| *owned == key) {
                return Err(D::Error::custom(format!(
                    "key `{key}` cannot be set here: {reason}"
                )));
            }
            if !table.contains_key(&key) {
                return Err(D::Error::custom(format!(
                    "unknown field `{key}`, expected one of {}",
                    self.keys(&table)
                )));
            }
            table.insert(key, value);
        }
        T::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)
    }

    /// Prints the section: the fields of `value` in their order, without the job's keys.
    pub fn serialize<S: Serializer>(&self, value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(WithoutFields {
            inner: serializer,
            skip: self.set_by_job,
        })
    }

    /// The keys a file may set, for an error message.
    fn keys(&self, table: &toml::Table) -> String {
        let keys: Vec<String> = table
            .keys()
            .filter(|key| !self.set_by_job.iter().any(|(owned, _)| owned == key))
            .map(|key| format!("`{key}`"))
            .collect();
        keys.join(", ")
    }
}

/// A serializer for a struct that leaves out the fields named in `skip`; anything but a struct
/// is an error.
struct WithoutFields<S> {
    inner: S,
    skip: &'static [(&'static str, &'static str)],
}

/// The fields of a struct serialised by [`WithoutFields`].
struct KeptFields<S> {
    inner: S,
    skip: &'static [(&'static str, &'static str)],
}

impl<S: SerializeStruct> SerializeStruct for KeptFields<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<V: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), S::Error> {
        if self.skip.iter().any(|(owned, _)| *owned == key) {
            self.inner.skip_field(key)
        } else {
            self.inner.serialize_field(key, value)
        }
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

/// The [`Serializer`] methods of [`WithoutFields`] for values that are not structs.
macro_rules! not_a_struct {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(
            fn $method(self, $(_: $arg),*) -> Result<$ok, S::Error> {
                Err(S::Error::custom("a job section must be a struct"))
            }
        )*
    };
}

impl<S: Serializer> Serializer for WithoutFields<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = KeptFields<S::SerializeStruct>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(KeptFields {
            inner: self
                .inner
                .serialize_struct(name, len.saturating_sub(self.skip.len()))?,
            skip: self.skip,
        })
    }

    not_a_struct! {
        serialize_bool(bool) -> S::Ok;
        serialize_i8(i8) -> S::Ok;
        serialize_i16(i16) -> S::Ok;
        serialize_i32(i32) -> S::Ok;
        serialize_i64(i64) -> S::Ok;
        serialize_u8(u8) -> S::Ok;
        serialize_u16(u16) -> S::Ok;
        serialize_u32(u32) -> S::Ok;
        serialize_u64(u64) -> S::Ok;
        serialize_f32(f32) -> S::Ok;
        serialize_f64(f64) -> S::Ok;
        serialize_char(char) -> S::Ok;
        serialize_str(&str) -> S::Ok;
        serialize_bytes(&[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(&'static str) -> S::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> S::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<V: ?Sized + Serialize>(self, _: &V) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("a job section must be a struct"))
    }

    fn serialize_newtype_struct<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &V,
    ) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("a job section must be a struct"))
    }

    fn serialize_newtype_variant<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("a job section must be a struct"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainmvp_core::loader::LoaderConfig;

    const DATA: Section<LoaderConfig> = Section {
        defaults: || LoaderConfig {
            batch_size: 3,
            flips: true,
            ..LoaderConfig::default()
        },
        set_by_job: &[("seed", "the job's `seed` is the loader's")],
    };

    /// A job with a `[data]` section read and printed through `DATA`.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Job {
        #[serde(
            serialize_with = "serialize_data",
            deserialize_with = "deserialize_data"
        )]
        data: LoaderConfig,
    }

    fn serialize_data<S: Serializer>(
        data: &LoaderConfig,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        DATA.serialize(data, serializer)
    }

    fn deserialize_data<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<LoaderConfig, D::Error> {
        DATA.deserialize(deserializer)
    }

    #[test]
    fn missing_keys_take_the_jobs_defaults_and_the_jobs_keys_are_neither_read_nor_printed() {
        let job: Job = toml::from_str("[data]\nworkers = 5\nintensity_shift = 0.1\n").unwrap();
        let expected = LoaderConfig {
            workers: 5,
            intensity_shift: 0.1,
            ..(DATA.defaults)()
        };
        assert_eq!(job.data, expected);
        let printed = toml::to_string(&job).unwrap();
        assert!(!printed.contains("seed"), "{printed}");
        // Declaration order and f32 values as written (not widened to f64 digits).
        assert!(
            printed.contains("crop_size = [96, 96, 96]\nbatch_size = 3\n"),
            "{printed}"
        );
        assert!(printed.contains("intensity_shift = 0.1\n"), "{printed}");
        assert_eq!(toml::from_str::<Job>(&printed).unwrap(), job);

        let err = toml::from_str::<Job>("[data]\nseed = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `seed` cannot be set here: the job's `seed`"),
            "{err}"
        );
        let err = toml::from_str::<Job>("[data]\nbatchsize = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `batchsize`, expected one of"),
            "{err}"
        );
        assert!(
            err.contains("`batch_size`") && !err.contains("`seed`"),
            "{err}"
        );
        let err = toml::from_str::<Job>("[data]\nbatch_size = \"3\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_size"), "{err}");
    }
}
