//! The main job on embedded data (`brainmvp demo`): synthesise a multi-modal tumour cohort from
//! ICBM152 at 2 mm, prepare it, pre-train the tiny UniFormer with BrainMVP, fine-tune UniUnet from
//! the pre-trained encoder and from scratch with the same seed, steps and test set, evaluate both
//! on the test subjects, export the better model folder (and `model.bmvp` for the browser, f16 when
//! it keeps the Dice) and segment one raw case with it.

use anyhow::{Context, Result};
use brainmvp_core::cache::{summarize, CacheReader, PrepareConfig};
use brainmvp_core::inference::segment::InferenceOptions;
use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::loader::{Loader, LoaderConfig};
use brainmvp_core::model::Architecture;
use brainmvp_core::postprocess::PostprocessConfig;
use brainmvp_core::pretext::template_init::TemplateInit;
use brainmvp_core::synth::SynthConfig;
use brainmvp_core::Modality;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cohort::{prepare, synthesise};
use crate::evaluate::real_cases::{discover_real_cases, evaluate_real_cases, RealCaseReport};
use crate::finetune::{run_finetune, FinetuneConfig, FinetuneSummary};
use crate::job::JobFile;
use crate::paired::{differences_by_id, headline_of, headline_region, PairedDifference};
use crate::pretrain::{run_pretrain, PretrainConfig};
use brainmvp_core::fs::write_atomic;

/// Everything the demo does, printed at start and saved as `demo-config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoConfig {
    pub synth: SynthConfig,
    pub prepare: PrepareConfig,
    pub loader: LoaderConfig,
    pub pretrain: PretrainConfig,
    pub finetune: FinetuneConfig,
}

/// The demo's settings for `subjects` subjects, `seed`, the ICBM152 folder and the step counts.
pub fn demo_config(
    out: &Path,
    subjects: usize,
    seed: u64,
    template_dir: &Path,
    steps: [u64; 2],
) -> DemoConfig {
    let mut prepare = PrepareConfig::default();
    prepare.preprocess.target_spacing_mm = 2.0;
    // Unclipped percentile scaling: the lesions stay brighter than the brightest normal tissue.
    prepare.preprocess.clip = false;
    let crop = [32, 32, 32];
    let modalities = vec![Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];
    let mut pretrain = PretrainConfig {
        cache: out.join("cache"),
        out: out.join("pretrain"),
        seed,
        steps: steps[0],
        ..PretrainConfig::default()
    };
    pretrain.model.arch = Architecture::UniformerTiny;
    pretrain.model.templates.canvas = [96, 112, 96];
    pretrain.model.templates.modalities = [modalities.clone(), vec![Modality::Pd]].concat();
    // The recipe of the label-efficiency study (docs/results.md, second round): templates start
    // from the cohort's mean images, so template-filled channels look like brains from step 1.
    pretrain.model.templates.init = TemplateInit::CohortMean;
    pretrain.data.crop_size = crop;
    pretrain.data.batch_size = 2;
    pretrain.optim.lr = 2e-3;
    pretrain.optim.warmup_fraction = 0.05;
    pretrain.checkpoint.every = steps[0].max(1);
    pretrain.checkpoint.log_every = 25;
    let mut finetune = FinetuneConfig {
        cache: out.join("cache"),
        seed,
        encoder: Architecture::UniformerTiny,
        modalities,
        labels: Some(LabelScheme::Brats { enhancing_label: 4 }),
        steps: steps[1],
        window: SlidingWindowConfig {
            roi: crop,
            overlap: 0.25,
            batch: 8,
            ..SlidingWindowConfig::default()
        },
        ..FinetuneConfig::default()
    };
    finetune.split.validation_fraction = 0.25;
    finetune.split.test_fraction = 0.25;
    finetune.data.crop_size = crop;
    finetune.data.foreground_fraction = 0.7;
    finetune.optim.lr = 1e-2;
    // The study's recipe for a pre-trained encoder (scratch ignores both): the decoder alone for
    // the first sixth of the steps, then the encoder at a tenth of the learning rate.
    finetune.optim.encoder_lr_scale = 0.1;
    finetune.optim.freeze_encoder_steps = steps[1] / 6;
    finetune.deep_supervision = false;
    finetune.validation.every = (steps[1] / 2).max(1);
    finetune.validation.log_every = 25;
    DemoConfig {
        synth: SynthConfig {
            subjects,
            seed,
            spacing_mm: 2.0,
            template_dir: Some(template_dir.display().to_string()),
            ..SynthConfig::default()
        },
        prepare,
        loader: LoaderConfig {
            seed,
            flips: true,
            crop_size: crop,
            ..LoaderConfig::default()
        },
        pretrain,
        finetune,
    }
}

/// Runs the whole demo into `out`; returns the final table (markdown).
pub fn run_demo<B: AutodiffBackend>(
    config: &DemoConfig,
    out: &Path,
    device: B::Device,
) -> Result<String> {
    let cohort_dir = out.join("cohort");
    let cache_dir = out.join("cache");
    println!(
        "== [1/6] synthesise {} subjects → {}",
        config.synth.subjects,
        cohort_dir.display()
    );
    synthesise(&config.synth, &cohort_dir)?;
    println!("== [2/6] prepare → {}", cache_dir.display());
    prepare(&cohort_dir, &cache_dir, &config.prepare, None)?;
    summarise(out, &cache_dir, &config.loader)?;
    println!(
        "== [3/6] pre-train the tiny UniFormer ({} steps) → {}",
        config.pretrain.steps,
        config.pretrain.out.display()
    );
    save_config(&config.pretrain.out, &config.pretrain.to_toml()?)?;
    run_pretrain::<B>(&config.pretrain, vec![device.clone()], false)?;
    let export = config.pretrain.out.join("export");
    println!(
        "== [4/6] fine-tune UniUnet from the pre-trained encoder and from scratch ({} steps each)",
        config.finetune.steps
    );
    let pretrained = finetune_one::<B>(
        config,
        out.join("finetune-pretrained"),
        Some(export),
        &device,
    )?;
    let scratch = finetune_one::<B>(config, out.join("finetune-scratch"), None, &device)?;
    println!(
        "== [5/6] evaluate on the {} test subjects",
        pretrained.test.cases.len()
    );
    let table = format!(
        "{}\n{}\n",
        final_table(&pretrained, &scratch),
        verdict(&pretrained, &scratch)
    );
    let better = match mean(&pretrained) >= mean(&scratch) {
        true => &pretrained,
        false => &scratch,
    };
    println!(
        "== [6/6] export the better model → {}",
        out.join("model").display()
    );
    copy_dir(&better.model_dir, &out.join("model"))?;
    let export = crate::bmvp::export_model(&crate::bmvp::ExportOptions {
        model: out.join("model"),
        out: out.join("model.bmvp"),
        precision: crate::bmvp::PrecisionChoice::Auto,
        check: Some(cohort_dir.clone()),
        check_cases: 3,
    })?;
    println!("{}", export.table());
    segment_example::<B::InnerBackend>(out, &cohort_dir, &device)?;
    let models = [
        ("pre-trained encoder", Some(pretrained.model_dir.clone())),
        ("scratch", Some(scratch.model_dir.clone())),
        ("the page's bundled model", page_model()),
    ];
    let real = real_case_table::<B::InnerBackend>(config, out, &models, &device);
    let table = format!(
        "{table}\nExported for the browser: {}\n{real}\n{}\n",
        export.table(),
        scale_note(config)
    );
    write_atomic(&out.join("results.md"), |f| f.write_all(table.as_bytes()))?;
    Ok(table)
}

fn mean(summary: &FinetuneSummary) -> f64 {
    summary.test.mean_over_regions()
}

fn finetune_one<B: AutodiffBackend>(
    config: &DemoConfig,
    out: PathBuf,
    init: Option<PathBuf>,
    device: &B::Device,
) -> Result<FinetuneSummary> {
    let mut job = config.finetune.clone();
    job.out = out;
    job.init = init;
    save_config(&job.out, &job.to_toml()?)?;
    run_finetune::<B>(&job, device.clone(), false)
}

fn save_config(dir: &Path, text: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    write_atomic(&dir.join("config.toml"), |file| {
        file.write_all(text.as_bytes())
    })?;
    Ok(())
}

/// Pre-trained vs scratch: test Dice per region and mean.
pub fn final_table(pretrained: &FinetuneSummary, scratch: &FinetuneSummary) -> String {
    let regions = &pretrained.test.regions;
    let mut text = String::from("| fine-tuned from |");
    regions
        .iter()
        .for_each(|r| text.push_str(&format!(" Dice {r} |")));
    text.push_str(" mean Dice | best validation step | test cases |\n|---|");
    regions.iter().for_each(|_| text.push_str("---|"));
    text.push_str("---|---|---|\n");
    for (name, summary) in [("pre-trained encoder", pretrained), ("scratch", scratch)] {
        let _ = write!(text, "| {name} |");
        for index in 0..regions.len() {
            let _ = write!(text, " {:.3} |", summary.test.mean_dice(index));
        }
        let _ = writeln!(
            text,
            " {:.3} | {} | {} |",
            mean(summary),
            summary.best_step,
            summary.test.cases.len()
        );
    }
    text
}

/// The headline region's name and its Dice per test subject, by id (see [`headline_region`]).
fn headline_by_case(summary: &FinetuneSummary) -> (String, Vec<(String, f64)>) {
    let regions = &summary.test.regions;
    let index = headline_region(regions.iter().map(String::as_str));
    let name = index.map_or("mean Dice".to_string(), |i| format!("{} Dice", regions[i]));
    let values = summary
        .test
        .cases
        .iter()
        .map(|case| {
            let dice: Vec<f64> = case.scores.iter().map(|s| s.dice).collect();
            (case.id.clone(), headline_of(&dice, index))
        })
        .collect();
    (name, values)
}

/// Pre-trained − scratch on the headline Dice, paired by test subject, with its 95 % interval,
/// and in plain words whether these test subjects can tell the two apart.
pub fn verdict(pretrained: &FinetuneSummary, scratch: &FinetuneSummary) -> String {
    let (region, values) = headline_by_case(pretrained);
    let (_, others) = headline_by_case(scratch);
    let difference = PairedDifference::over_pairs(&[differences_by_id(&values, &others)]);
    let cases = difference.pairs;
    let leader = match difference.mean > 0.0 {
        true => "pre-trained",
        false => "scratch",
    };
    let reading = match difference.resolved() {
        false => format!("within the noise: {cases} test subjects and one training seed cannot tell pre-trained from scratch apart"),
        true => format!("{leader} ahead on these {cases} test subjects (one training seed; other seeds may differ)"),
    };
    format!(
        "{region}, pre-trained − scratch, paired by test subject: {} (95 % t-interval over {cases} subjects; pre-trained better on {}, worse on {}) — {reading}. The label-efficiency study (`brainmvp experiment label-efficiency`, docs/results.md) is the experiment that can answer it.",
        difference.cell(),
        difference.wins,
        difference.losses
    )
}

/// Segments the first test-like raw subject with the exported model (shows `segment` works).
fn segment_example<B: burn::tensor::backend::Backend>(
    out: &Path,
    cohort: &Path,
    device: &B::Device,
) -> Result<()> {
    let id = "SynthBraTS_00000";
    let files: Vec<(Modality, PathBuf)> = [
        (Modality::Flair, "flair"),
        (Modality::T1, "t1"),
        (Modality::T1c, "t1ce"),
        (Modality::T2, "t2"),
    ]
    .into_iter()
    .map(|(m, token)| (m, cohort.join(id).join(format!("{id}_{token}.nii.gz"))))
    .filter(|(_, path)| path.is_file())
    .collect();
    let target = out.join("segmentation").join(format!("{id}_seg.nii.gz"));
    std::fs::create_dir_all(out.join("segmentation"))?;
    let options = brainmvp_core::inference::segment::InferenceOptions::default();
    crate::segment::segment_files::<B>(&out.join("model"), &files, &target, &options, device)
}

/// The page's bundled model, relative to the repository root.
const PAGE_MODEL: &str = "www/assets/demo-model.bmvp";

/// The page's bundled model found from the current folder or an ancestor of the executable's.
fn page_model() -> Option<PathBuf> {
    let exe_dirs: Vec<PathBuf> = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .map(|dir| dir.ancestors().map(Path::to_path_buf).collect())
        })
        .unwrap_or_default();
    std::env::current_dir()
        .into_iter()
        .chain(exe_dirs)
        .map(|base| base.join(PAGE_MODEL))
        .find(|path| path.is_file())
}

/// The real patients beside the shared MRI folder: `<mri>/real` for the templates in
/// `<mri>/icbm152-2mm` (`../shared/data/real`), when present.
fn real_cases_dir(config: &DemoConfig) -> Option<PathBuf> {
    let templates = PathBuf::from(config.synth.template_dir.as_ref()?);
    let dir = templates.parent()?.parent()?.join("real");
    dir.is_dir().then_some(dir)
}

/// Dice against the reference maps of the real patients (without test-time mirroring, to keep
/// the demo short) of each model found, one row a model, the per-case tables in
/// `<out>/real-cases/`; empty when the real patients are not there. A model that cannot be
/// evaluated is left out with a note.
fn real_case_table<B: burn::tensor::backend::Backend>(
    config: &DemoConfig,
    out: &Path,
    models: &[(&str, Option<PathBuf>)],
    device: &B::Device,
) -> String {
    let Some(dir) = real_cases_dir(config) else {
        return String::new();
    };
    let cases = match discover_real_cases(&dir) {
        Ok(cases) => cases,
        Err(err) => return format!("\nReal patients not evaluated: {err}\n"),
    };
    println!("== real patients ({}): segment and score", dir.display());
    let options = InferenceOptions {
        mirror: false,
        postprocess: PostprocessConfig::recommended(),
        ..InferenceOptions::default()
    };
    let mut text = format!(
        "\nDice against the reference maps of the {} real patients in {} (algorithm outputs, not expert ground truth; no test-time mirroring, recommended clean-up; ET over the cases whose reference has enhancing tumour):\n\n| model | WT | TC | ET | WT per case ({}) |\n|---|---|---|---|---|\n",
        cases.len(),
        dir.display(),
        cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ")
    );
    for (name, model) in models {
        let Some(model) = model else { continue };
        let folder = out
            .join("real-cases")
            .join(name.replace(' ', "-").replace('\'', ""));
        let report = evaluate_real_cases::<B>(model, &cases, &options, &folder, device)
            .and_then(|report| report.write(&folder).map(|_| report).map_err(Into::into));
        match report {
            Ok(report) => text.push_str(&real_case_row(name, &report)),
            Err(err) => text.push_str(&format!("| {name} | not evaluated: {err:#} | | | |\n")),
        }
    }
    text
}

/// `| model | WT | TC | ET | a / b / c |` of one report.
fn real_case_row(name: &str, report: &RealCaseReport) -> String {
    let means = [0, 1, 2].map(|region| {
        report
            .mean_dice(region)
            .0
            .map_or("—".to_string(), |mean| format!("{mean:.3}"))
    });
    let per_case: Vec<String> = report
        .cases
        .iter()
        .map(|case| case.scores[0].map_or("—".to_string(), |s| format!("{:.2}", s.dice)))
        .collect();
    format!(
        "| {name} | {} | {} | {} | {} |\n",
        means[0],
        means[1],
        means[2],
        per_case.join(" / ")
    )
}

/// What the demo's scale can and cannot show.
fn scale_note(config: &DemoConfig) -> String {
    format!(
        "At this scale ({} synthetic subjects, a tiny model, {} fine-tuning steps) the demo cannot show whether pre-training helps; docs/results.md has the figures on real patients.",
        config.synth.subjects, config.finetune.steps
    )
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("{}: cannot replace", to.display()))?;
    }
    std::fs::create_dir_all(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("{}: cannot list", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        match entry.file_type()?.is_dir() {
            true => copy_dir(&entry.path(), &target)?,
            false => {
                std::fs::copy(entry.path(), &target)
                    .with_context(|| format!("{}: cannot copy", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Print and save the cache summary, then draw two batches through the crop loader.
fn summarise(out: &Path, cache_dir: &Path, loader_config: &LoaderConfig) -> Result<()> {
    let reader = Arc::new(CacheReader::open(cache_dir)?);
    let table = summarize(&reader)?.to_markdown();
    println!("{table}");
    let text = format!("# brainmvp demo: the prepared cohort\n\nLabel volumes in millilitres (BraTS: 1 necrotic core, 2 oedema, 4 enhancing rim).\n\n{table}");
    write_atomic(&out.join("summary.md"), |w| w.write_all(text.as_bytes()))?;
    let loader = Loader::new(reader, loader_config.clone(), 0)?;
    for batch in loader.take(2) {
        let batch = batch?;
        for sample in &batch.samples {
            let means: Vec<String> = sample
                .images
                .iter()
                .map(|(modality, crop)| {
                    let mean = crop.iter().sum::<f32>() / crop.len().max(1) as f32;
                    format!("{modality} {mean:.3}")
                })
                .collect();
            println!(
                "loader step {}: {} crop at {:?}, flipped {:?}, mean intensity: {}",
                batch.step,
                sample.subject_id,
                sample.start,
                sample.flipped,
                means.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{CaseScores, EvaluationReport};
    use brainmvp_core::metrics::RegionScores;

    /// A summary whose test subjects `s0, s1, …` have the whole-tumour Dice `wt` (TC, ET 0.5).
    fn summary(wt: &[f64]) -> FinetuneSummary {
        let score = |dice| RegionScores { dice, hd95: None };
        let cases = wt
            .iter()
            .enumerate()
            .map(|(index, &dice)| CaseScores {
                id: format!("s{index}"),
                scores: vec![score(0.5), score(dice), score(0.5)],
            })
            .collect();
        FinetuneSummary {
            best_step: 10,
            best_dice: 0.5,
            test: EvaluationReport {
                regions: vec!["TC".into(), "WT".into(), "ET".into()],
                cases,
            },
            model_dir: PathBuf::from("model"),
            init_report: None,
            train_subjects: 4,
        }
    }

    #[test]
    fn the_verdict_pairs_test_subjects_on_the_whole_tumour_and_says_when_it_is_noise() {
        let scratch = summary(&[0.50, 0.60, 0.40, 0.55]);
        // Differences +0.1, −0.1, +0.2, −0.12: the interval spans zero.
        let mixed = verdict(&summary(&[0.60, 0.50, 0.60, 0.43]), &scratch);
        assert!(mixed.starts_with("WT Dice"), "{mixed}");
        assert!(mixed.contains("+0.020 ["), "{mixed}");
        assert!(
            mixed.contains("within the noise: 4 test subjects"),
            "{mixed}"
        );
        assert!(mixed.contains("better on 2, worse on 2"), "{mixed}");
        // +0.1 on every subject but one (+0.12): resolved in favour of pre-training.
        let ahead = verdict(&summary(&[0.60, 0.70, 0.50, 0.67]), &scratch);
        assert!(ahead.contains("pre-trained ahead on these 4"), "{ahead}");
        let behind = verdict(&scratch, &summary(&[0.60, 0.70, 0.50, 0.67]));
        assert!(behind.contains("scratch ahead on these 4"), "{behind}");
    }

    #[test]
    fn the_table_names_the_number_of_test_cases() {
        let table = final_table(&summary(&[0.6, 0.5, 0.4]), &summary(&[0.5, 0.5, 0.5]));
        assert!(table.contains("| test cases |"), "{table}");
        assert!(
            table.contains("| pre-trained encoder | 0.500 | 0.500 | 0.500 | 0.500 | 10 | 3 |"),
            "{table}"
        );
    }

    #[test]
    fn the_demo_uses_the_studys_recipe() {
        let config = demo_config(Path::new("out"), 12, 0, Path::new("icbm"), [120, 150]);
        assert_eq!(
            config.pretrain.model.templates.init,
            TemplateInit::CohortMean
        );
        assert_eq!(config.finetune.optim.encoder_lr_scale, 0.1);
        assert_eq!(config.finetune.optim.freeze_encoder_steps, 25);
    }
}
