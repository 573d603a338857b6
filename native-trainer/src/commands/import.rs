//! `brainmvp import --torch FILE --arch uniunet|rec-model|unet3d|uniformer-s|uniformer-tiny --out X`:
//! an official BrainMVP PyTorch checkpoint as a brainmvp model (see `crate::torch`).

use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::Modality;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::torch::convert::{import_checkpoint, ImportJob, OfficialArch, OFFICIAL_BRATS_CHANNELS};

/// Arguments of `brainmvp import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// The official checkpoint: `.pt`/`.pth` (a state dict, or nested under `state_dict`,
    /// `model` or `net`; DDP's `module.` prefix is removed) or `.safetensors`.
    #[arg(long)]
    pub torch: PathBuf,
    /// What it holds.
    #[arg(long, value_enum)]
    pub arch: OfficialArch,
    /// Output: a model folder or `X.bmvp` (uniunet), an export folder usable as
    /// `finetune --init` (rec-model, uniformer-s, uniformer-tiny), an export folder with the
    /// UNet3D encoder and the templates (unet3d).
    #[arg(long)]
    pub out: PathBuf,
    /// Refuse the file unless its first layer takes this many channels.
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// uniunet: the modality of each input channel, in order (official BraTS order by default).
    #[arg(long, value_delimiter = ',')]
    pub modalities: Option<Vec<Modality>>,
    /// rec-model, unet3d: the modality of each template, in order (default: flair,t1,t1c,t2 for four
    /// templates, all eight for eight, as the official code).
    #[arg(long, value_delimiter = ',')]
    pub template_modalities: Option<Vec<Modality>>,
    /// uniunet: the enhancing-tumour label of the label maps (4 BraTS 2021, 3 BraTS 2023).
    #[arg(long, default_value_t = 4)]
    pub enhancing_label: u8,
    /// uniunet: sliding-window edge in voxels (the official inference uses the training patch).
    #[arg(long, default_value_t = 96)]
    pub roi: usize,
    /// uniunet into a `.bmvp`: store the weights as IEEE half (half the file, as the page wants).
    #[arg(long)]
    pub f16: bool,
}

/// Runs `brainmvp import`.
pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let job = ImportJob {
        torch: args.torch,
        arch: args.arch,
        out: args.out,
        in_channels: args.in_channels,
        modalities: args.modalities.unwrap_or(OFFICIAL_BRATS_CHANNELS.to_vec()),
        template_modalities: args.template_modalities,
        enhancing_label: args.enhancing_label,
        window: SlidingWindowConfig {
            roi: [args.roi; 3],
            ..SlidingWindowConfig::default()
        },
        half: args.f16,
    };
    println!("import job: {}", serde_json::to_string(&job)?);
    let report = import_checkpoint(&job)?;
    println!("{}", report.summary());
    for (name, reason) in &report.ignored {
        log::debug!("ignored {name}: {reason}");
    }
    println!("wrote {}", job.out.display());
    Ok(ExitCode::SUCCESS)
}
