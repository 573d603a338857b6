//! `brainmvp demo`: the main job on embedded data. For now: synthesise a multi-modal tumour cohort
//! from ICBM152, prepare it into the training cache, and summarise it (later: pre-train, fine-tune,
//! evaluate, export).

use super::prepare::prepare;
use super::synth::synthesise;
use anyhow::Context;
use brainmvp_core::cache::{summarize, CacheReader, PrepareConfig};
use brainmvp_core::loader::{Loader, LoaderConfig};
use brainmvp_core::synth::{self, SynthConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Output folder: cohort/, cache/, summary.md and demo-config.toml go there.
    #[arg(long, default_value = "demo-output")]
    pub out: PathBuf,
    /// Number of synthetic subjects.
    #[arg(long, default_value_t = 8)]
    pub subjects: usize,
    /// Seed of the cohort and of the crop loader.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// ICBM152 2 mm template folder (default: looked up as `brainmvp synth` does).
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

/// Everything the demo does, printed at start and saved as `demo-config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoConfig {
    pub synth: SynthConfig,
    pub prepare: PrepareConfig,
    pub loader: LoaderConfig,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let template_dir = synth::locate_templates(args.templates.as_deref())?;
    let config = DemoConfig {
        synth: SynthConfig {
            subjects: args.subjects,
            seed: args.seed,
            template_dir: Some(template_dir.display().to_string()),
            ..SynthConfig::default()
        },
        prepare: PrepareConfig::default(),
        loader: LoaderConfig {
            seed: args.seed,
            flips: true,
            ..LoaderConfig::default()
        },
    };
    let config_toml = toml::to_string_pretty(&config).context("printing the demo config")?;
    println!("== brainmvp demo\n{config_toml}");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output folder", args.out.display()))?;
    brainmvp_core::cache::files::write_atomic(&args.out.join("demo-config.toml"), |w| {
        w.write_all(config_toml.as_bytes())
    })?;

    let cohort_dir = args.out.join("cohort");
    let cache_dir = args.out.join("cache");
    println!(
        "== [1/3] synthesise {} subjects → {}",
        args.subjects,
        cohort_dir.display()
    );
    synthesise(&config.synth, &cohort_dir)?;
    println!("== [2/3] prepare → {}", cache_dir.display());
    prepare(&cohort_dir, &cache_dir, &config.prepare, None)?;
    println!("== [3/3] summary");
    summarise(&args.out, &cache_dir, &config.loader)?;
    println!(
        "demo finished in {:.1} s; outputs: {} (cohort/, cache/, summary.md, demo-config.toml)",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Print and save the cache summary, then draw two batches through the crop loader.
fn summarise(out: &Path, cache_dir: &Path, loader_config: &LoaderConfig) -> anyhow::Result<()> {
    let reader = Arc::new(CacheReader::open(cache_dir)?);
    let table = summarize(&reader)?.to_markdown();
    println!("{table}");
    let summary_path = out.join("summary.md");
    let text = format!("# brainmvp demo: the prepared cohort\n\nLabel volumes in millilitres (BraTS: 1 necrotic core, 2 oedema, 4 enhancing rim).\n\n{table}");
    brainmvp_core::cache::files::write_atomic(&summary_path, |w| w.write_all(text.as_bytes()))?;
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
            let [x, y, z] = batch.crop_size;
            println!(
                "loader step {}: {} crop {x}×{y}×{z} at {:?}, flipped {:?}, mean intensity: {}",
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
