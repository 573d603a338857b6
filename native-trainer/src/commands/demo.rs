//! `brainmvp demo`: the main job on embedded data (see [`crate::demo`]): synthesise → prepare →
//! pre-train → fine-tune (pre-trained and scratch) → evaluate → export, on the CPU by default.

use anyhow::Context;
use brainmvp_core::fs::write_atomic;
use brainmvp_core::synth;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::backend::DeviceSpec;
use crate::demo::{demo_config, run_demo};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Output folder (cohort/, cache/, pretrain/, finetune-*/, model/, results.md, demo-config.toml).
    #[arg(long, default_value = "demo-output")]
    pub out: PathBuf,
    /// Number of synthetic subjects (a quarter validates, a quarter tests).
    #[arg(long, default_value_t = 12)]
    pub subjects: usize,
    /// Seed of the cohort, the crops and the weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// ICBM152 2 mm template folder (default: looked up as `brainmvp synth` does).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Pre-training steps.
    #[arg(long, default_value_t = 120)]
    pub pretrain_steps: u64,
    /// Fine-tuning steps of each of the two runs.
    #[arg(long, default_value_t = 100)]
    pub finetune_steps: u64,
    /// `cpu`, `cuda[:i]`, `wgpu[:i|integrated|cpu]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let template_dir = synth::locate_templates(args.templates.as_deref())?;
    let steps = [args.pretrain_steps, args.finetune_steps];
    let config = demo_config(&args.out, args.subjects, args.seed, &template_dir, steps);
    let config_toml = toml::to_string_pretty(&config).context("printing the demo config")?;
    println!("== brainmvp demo\n{config_toml}");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output folder", args.out.display()))?;
    write_atomic(&args.out.join("demo-config.toml"), |w| {
        w.write_all(config_toml.as_bytes())
    })?;
    let spec = DeviceSpec::parse(&args.device)?;
    let table = crate::with_autodiff_backend!(spec, |B, devices| {
        run_demo::<B>(
            &config,
            &args.out,
            devices.into_iter().next().unwrap_or_default(),
        )?
    });
    let out = args.out.display();
    println!("\nTest Dice on the held-out synthetic subjects (pre-trained vs scratch):\n\n{table}");
    println!(
        "demo finished in {:.1} s; outputs in {out}: cohort/, cache/, summary.md, pretrain/ (loss.png, export/ with the templates), finetune-pretrained/ and finetune-scratch/ (loss.png, dice.png, test/), model/ (for `brainmvp segment --model {out}/model`), segmentation/, results.md, demo-config.toml",
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
