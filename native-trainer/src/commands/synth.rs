//! `brainmvp synth`: write a synthetic multi-modal tumour cohort (BraTS 2021 names) made from the
//! ICBM152 templates.
use brainmvp_core::synth::{self, LesionStyle, SynthConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Output folder (one sub-folder per subject, plus subjects.csv and synth_config.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of subjects.
    #[arg(long, default_value_t = 20)]
    pub subjects: usize,
    /// Random seed (same seed, same bytes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of subjects without a tumour (all-zero segmentation).
    #[arg(long, default_value_t = SynthConfig::default().no_tumour_fraction)]
    pub no_tumour_fraction: f64,
    /// Share of subjects lacking one or two modalities.
    #[arg(long, default_value_t = SynthConfig::default().missing_modality_fraction)]
    pub missing_modality_fraction: f64,
    /// Share of tumour subjects with a low-grade (oedema-like only) lesion.
    #[arg(long, default_value_t = SynthConfig::default().low_grade_fraction)]
    pub low_grade_fraction: f64,
    /// ICBM152 2 mm template folder (default: $BRAINMVP_MRI_DIR/icbm152-2mm, then
    /// ../shared/data/mri/icbm152-2mm or shared/data/mri/icbm152-2mm near the current folder or
    /// the executable).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Output voxel size in mm (1 as BraTS).
    #[arg(long, default_value_t = SynthConfig::default().spacing_mm)]
    pub spacing_mm: f64,
    /// Keep the whole head with a noise floor instead of skull-stripping as BraTS does.
    #[arg(long)]
    pub keep_skull: bool,
    /// Lesion contrast outside each label's key modality (necrosis: T2, oedema: FLAIR,
    /// enhancing: T1ce) as a share of the usual one; e.g. 0.2 for a task that needs the right
    /// modality.
    #[arg(long, default_value_t = SynthConfig::default().secondary_contrast)]
    pub secondary_contrast: f64,
    /// Tumour model: `classic`, or `realistic` (shaped after real BraTS cases: thin enhancing
    /// rims, non-enhancing low-grade cores, metastases; lesion contrasts drawn per subject).
    #[arg(long, value_enum, default_value = "classic")]
    pub lesion_style: LesionStyleArg,
    /// Domain randomisation of the tissue contrast (0 to 1; `realistic` style only).
    #[arg(long, default_value_t = SynthConfig::default().domain_randomisation)]
    pub domain_randomisation: f64,
    /// Peak amplitude (mm) of the random smooth deformation of the anatomy.
    #[arg(long, default_value_t = SynthConfig::default().deformation_mm)]
    pub deformation_mm: f64,
    /// Strength of the multiplicative bias field.
    #[arg(long, default_value_t = SynthConfig::default().bias_strength)]
    pub bias_strength: f64,
    /// Largest Rician noise level, as a share of white matter (each subject draws up to it).
    #[arg(long, default_value_t = SynthConfig::default().noise_max)]
    pub noise_max: f64,
}

/// `--lesion-style` values (see [`LesionStyle`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LesionStyleArg {
    Classic,
    Realistic,
}

impl From<LesionStyleArg> for LesionStyle {
    fn from(arg: LesionStyleArg) -> Self {
        match arg {
            LesionStyleArg::Classic => LesionStyle::Classic,
            LesionStyleArg::Realistic => LesionStyle::Realistic,
        }
    }
}

pub fn run(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let template_dir = synth::locate_templates(args.templates.as_deref())?;
    let config = SynthConfig {
        subjects: args.subjects,
        seed: args.seed,
        no_tumour_fraction: args.no_tumour_fraction,
        missing_modality_fraction: args.missing_modality_fraction,
        low_grade_fraction: args.low_grade_fraction,
        template_dir: Some(template_dir.display().to_string()),
        spacing_mm: args.spacing_mm,
        skull_strip: !args.keep_skull,
        secondary_contrast: args.secondary_contrast,
        lesion_style: args.lesion_style.into(),
        domain_randomisation: args.domain_randomisation,
        deformation_mm: args.deformation_mm,
        bias_strength: args.bias_strength,
        noise_max: args.noise_max,
        ..SynthConfig::default()
    };
    let records = crate::cohort::synthesise(&config, &args.out)?;
    println!(
        "wrote {} subjects to {} in {:.1} s",
        records.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
