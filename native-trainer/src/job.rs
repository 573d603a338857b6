//! Job files: every verb's TOML job (pre-training, fine-tuning, the label-efficiency experiment,
//! cache preparation) is read, checked, printed and saved the same way.

use anyhow::{Context, Result};
use brainmvp_core::fs::write_atomic;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// A TOML job: every key has a default (`#[serde(default)]`), unknown keys are errors.
pub trait JobFile: Serialize + DeserializeOwned {
    /// Checks everything that can be checked before touching data.
    fn validate(&self) -> Result<()>;

    /// Reads a TOML job file and checks it; every error is one line naming the file.
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let job: Self = toml::from_str(&text)
            .map_err(|err| anyhow::anyhow!("{}: {}", path.display(), one_line(&err.to_string())))?;
        job.validate()
            .with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(job)
    }

    /// The resolved job as TOML (what a run prints at its start and saves beside its outputs).
    fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Prints the resolved job under `# title` and writes it to `path` atomically.
    fn print_and_save(&self, title: &str, path: &Path) -> Result<()> {
        let text = self.to_toml()?;
        println!("# {title}\n{text}");
        write_atomic(path, |file| file.write_all(text.as_bytes()))?;
        Ok(())
    }
}

/// Starts a run in `out`: refuses a fresh run where one already is (its checkpoints), creates
/// the folder, prints the resolved job under `title` and saves it as `out/config.toml`.
pub fn start_run<J: JobFile>(job: &J, out: &Path, resume: bool, title: &str) -> Result<()> {
    check_fresh_out(out, resume)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    job.print_and_save(title, &out.join("config.toml"))
}

/// Refuses to start a new run (not `--resume`) in a folder that holds one.
pub fn check_fresh_out(out: &Path, resume: bool) -> Result<()> {
    if !resume && out.join("checkpoints").exists() {
        anyhow::bail!(
            "{}: already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// A parser message on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl JobFile for brainmvp_core::cache::PrepareConfig {
    fn validate(&self) -> Result<()> {
        Ok(self.preprocess.validate()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::FinetuneConfig;
    use crate::test_dir::TestDir;

    #[test]
    fn errors_are_one_line_naming_the_file() {
        let dir = TestDir::new("job");
        let path = dir.join("finetune.toml");
        std::fs::write(&path, "steps = 10\nstepz = 3\n").unwrap();
        let err = format!("{:#}", FinetuneConfig::load(&path).unwrap_err());
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("stepz") && !err.contains('\n'), "{err}");
        std::fs::write(&path, "steps = 0\n").unwrap();
        let err = format!("{:#}", FinetuneConfig::load(&path).unwrap_err());
        assert!(err.contains("invalid config"), "{err}");
        let saved = dir.join("saved.toml");
        let job = FinetuneConfig::default();
        job.print_and_save("finetune", &saved).unwrap();
        assert_eq!(FinetuneConfig::load(&saved).unwrap(), job);
    }

    /// `Default` is what an empty file means, and the printed config reads back as itself.
    fn defaults_and_printing_agree<J: JobFile + Default + PartialEq + std::fmt::Debug>() {
        let default = J::default();
        assert_eq!(toml::from_str::<J>("").unwrap(), default);
        default.validate().unwrap();
        let printed = default.to_toml().unwrap();
        assert_eq!(toml::from_str::<J>(&printed).unwrap(), default, "{printed}");
    }

    #[test]
    fn every_jobs_default_is_the_empty_file_and_its_printed_config_round_trips() {
        defaults_and_printing_agree::<crate::pretrain::PretrainConfig>();
        defaults_and_printing_agree::<FinetuneConfig>();
        defaults_and_printing_agree::<crate::experiment::config::LabelEfficiencyConfig>();
        defaults_and_printing_agree::<brainmvp_core::cache::PrepareConfig>();
    }

    /// Unknown keys are refused by name in nested sections too; the backbone has one spelling
    /// everywhere, and the old fine-tuning spellings still read.
    #[test]
    fn nested_unknown_keys_are_refused_and_old_encoder_spellings_still_read() {
        use brainmvp_core::model::Architecture;
        let err = toml::from_str::<brainmvp_core::cache::PrepareConfig>(
            "[preprocess]\ntarget_spacing = 2.0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `target_spacing`"), "{err}");
        let err = toml::from_str::<crate::pretrain::PretrainConfig>("[model]\narchitecture = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `architecture`"), "{err}");
        let pretrain: crate::pretrain::PretrainConfig =
            toml::from_str("[model]\narch = \"uniformer-tiny\"\n").unwrap();
        assert_eq!(pretrain.model.arch, Architecture::UniformerTiny);
        for (text, arch) in [
            ("encoder = \"uniformer-tiny\"", Architecture::UniformerTiny),
            ("encoder = \"uniformer-s\"", Architecture::UniformerS),
            ("encoder = \"Tiny\"", Architecture::UniformerTiny),
            ("encoder = \"Small\"", Architecture::UniformerS),
        ] {
            let job: FinetuneConfig = toml::from_str(text).unwrap();
            assert_eq!(job.encoder, arch, "{text}");
            assert!(job
                .to_toml()
                .unwrap()
                .contains(&format!("encoder = \"{arch}\"")));
        }
        let err = toml::from_str::<FinetuneConfig>("encoder = \"resnet\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("uniformer-s, uniformer-tiny or unet3d"),
            "{err}"
        );
    }

    /// `[data]` takes the loader's keys with each job's defaults; unknown keys and the keys a job
    /// sets itself are refused, naming the key.
    #[test]
    fn data_sections_keep_their_keys_and_defaults() {
        use crate::pretrain::PretrainConfig;
        let pretrain: PretrainConfig = toml::from_str("seed = 5\n[data]\nworkers = 3\n").unwrap();
        assert_eq!(
            (pretrain.data.batch_size, pretrain.data.queue_depth),
            (3, PretrainConfig::default().data.queue_depth)
        );
        assert_eq!((pretrain.loader().seed, pretrain.loader().workers), (5, 3));
        let finetune: FinetuneConfig = toml::from_str("[data]\nworkers = 3\n").unwrap();
        assert!(finetune.data.flips && finetune.data.batch_size == 2);
        assert_eq!(finetune.loader().queue_depth, 6);
        let refused = [
            ("[data]\nbatchsize = 2\n", "unknown field `batchsize`"),
            ("[data]\nseed = 2\n", "key `seed` cannot be set here"),
            (
                "[data]\nforeground_fraction = 0.5\n",
                "key `foreground_fraction` cannot",
            ),
        ];
        for (text, message) in refused {
            let err = toml::from_str::<PretrainConfig>(text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
        let refused = [
            ("[data]\nbatchsize = 2\n", "unknown field `batchsize`"),
            ("[data]\nseed = 2\n", "key `seed` cannot be set here"),
            ("[data]\nqueue_depth = 2\n", "key `queue_depth` cannot"),
        ];
        for (text, message) in refused {
            let err = toml::from_str::<FinetuneConfig>(text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }
}
