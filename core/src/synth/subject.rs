//! Generating one synthetic subject in memory: deform the anatomy, place the tumour, apply the
//! contrasts, the bias field and Rician noise.

use super::anatomy::{Anatomy, CHANNELS, CSF, GM, PD, T1, T2, WM};
use super::bias::BiasField;
use super::contrast::{SubjectContrast, MODALITIES};
use super::deform::Deformation;
use super::distractors::Distractors;
use super::noise::GaussianSource;
use super::plan::{Grade, SubjectPlan, SynthModality, SYNTH_MODALITIES};
use super::realistic::RealisticTumour;
use super::tumour::{Tumour, Waves, ENHANCING, NECROSIS, OEDEMA};
use super::{LesionStyle, SynthConfig};
use crate::rng::Rng;
use crate::Volume;

/// What the cohort shares: the anatomy on the output grid and its white-matter reference.
#[derive(Debug, Clone)]
pub struct SharedAnatomy {
    pub anatomy: Anatomy,
    /// Mean base intensity of each modality in white matter.
    pub reference: [f32; MODALITIES],
}

impl SharedAnatomy {
    pub fn new(anatomy: Anatomy) -> Self {
        let reference = super::contrast::white_matter_reference(&anatomy);
        Self { anatomy, reference }
    }
}

/// Voxel counts of labels 1, 2 and 4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelCounts {
    pub necrosis: usize,
    pub oedema: usize,
    pub enhancing: usize,
}

/// One generated subject: all five modalities (missing ones included; the writer skips them)
/// and the segmentation, on the anatomy's grid.
#[derive(Debug, Clone)]
pub struct SyntheticSubject {
    pub plan: SubjectPlan,
    /// Images in file order ([`SYNTH_MODALITIES`]), intensities in the int16 output range.
    pub images: Vec<Volume<f32>>,
    pub seg: Volume<u8>,
    pub counts: LabelCounts,
}

impl SyntheticSubject {
    /// The image of `modality`.
    pub fn image(&self, modality: SynthModality) -> &Volume<f32> {
        &self.images[modality.index()]
    }
}

/// A subject's tumour in either [`LesionStyle`].
enum TumourModel {
    Classic(Box<Tumour>),
    Realistic(RealisticTumour),
}

impl TumourModel {
    fn random(rng: &mut Rng, anatomy: &Anatomy, grade: Grade, style: LesionStyle) -> Self {
        match style {
            LesionStyle::Classic => Self::Classic(Box::new(Tumour::random(rng, anatomy, grade))),
            LesionStyle::Realistic => Self::Realistic(RealisticTumour::random(rng, anatomy, grade)),
        }
    }

    #[inline]
    fn mass_pull(&self, position: [f32; 3]) -> [f32; 3] {
        match self {
            Self::Classic(tumour) => tumour.mass_pull(position),
            Self::Realistic(tumour) => tumour.mass_pull(position),
        }
    }

    #[inline]
    fn label(&self, position: [f32; 3], tissue: &[f32; CHANNELS]) -> (u8, f32) {
        match self {
            Self::Classic(tumour) => tumour.label(position, tissue),
            Self::Realistic(tumour) => tumour.label(position, tissue),
        }
    }
}

/// Everything random about one subject, drawn from its own stream.
struct SubjectModel {
    deformation: Deformation,
    tumour: Option<TumourModel>,
    contrast: SubjectContrast,
    /// Realistic style: smooth heterogeneity of lesion intensities (relative, around 0, over
    /// offsets in mm) and the grid's voxel size.
    texture: Option<(Waves, [f32; 3])>,
    /// Realistic style: unlabelled bright spots ([`Distractors`]).
    distractors: Distractors,
    bias: Vec<BiasField>,
    sigma: [f32; MODALITIES],
    noise_seed: u64,
    skull_strip: bool,
}

impl SubjectModel {
    fn draw(shared: &SharedAnatomy, config: &SynthConfig, plan: &SubjectPlan) -> Self {
        let anatomy = &shared.anatomy;
        let mut rng = Rng::stream(config.seed, plan.index as u64);
        let deformation = Deformation::random(
            &mut rng,
            anatomy.dims,
            anatomy.spacing(),
            config.deformation_mm,
        );
        let style = config.lesion_style;
        let tumour = (plan.grade != Grade::None)
            .then(|| TumourModel::random(&mut rng, anatomy, plan.grade, style));
        let (contrast, texture, distractors) = match style {
            LesionStyle::Classic => {
                let secondary = config.secondary_contrast as f32;
                let contrast = SubjectContrast::random(&mut rng, &shared.reference, secondary);
                (contrast, None, Distractors::default())
            }
            LesionStyle::Realistic => {
                let strength = config.domain_randomisation as f32;
                let contrast = SubjectContrast::realistic(&mut rng, &shared.reference, strength);
                let texture = Waves::random(&mut rng, (4.0, 14.0), (0.01, 0.04));
                let spacing = anatomy.spacing().map(|s| s as f32);
                let distractors = Distractors::random(&mut rng, anatomy);
                (contrast, Some((texture, spacing)), distractors)
            }
        };
        let bias = (0..MODALITIES)
            .map(|_| BiasField::random(&mut rng, anatomy.dims, config.bias_strength))
            .collect();
        let noise_share = rng.range_f64(config.noise_min, config.noise_max) as f32;
        let sigma = std::array::from_fn(|m| noise_share * contrast.gain[m] * shared.reference[m]);
        let noise_seed = rng.next_u64();
        Self {
            deformation,
            tumour,
            contrast,
            texture,
            distractors,
            bias,
            sigma,
            noise_seed,
            skull_strip: config.skull_strip,
        }
    }
}

/// Generate the subject described by `plan` (deterministic for a config and plan).
pub fn generate_subject(
    shared: &SharedAnatomy,
    config: &SynthConfig,
    plan: &SubjectPlan,
) -> SyntheticSubject {
    let anatomy = &shared.anatomy;
    let model = SubjectModel::draw(shared, config, plan);
    let [nx, ny, nz] = anatomy.dims;
    let slice_len = nx * ny;
    let mut images: Vec<Vec<f32>> = (0..MODALITIES)
        .map(|_| vec![0f32; slice_len * nz])
        .collect();
    let mut seg = vec![0u8; slice_len * nz];
    let mut displacement = vec![[0f32; 3]; nx];
    let mut values = [0f32; MODALITIES];
    for z in 0..nz {
        let mut noise = GaussianSource::new(Rng::stream(model.noise_seed, z as u64));
        for y in 0..ny {
            model.deformation.row(y, z, &mut displacement);
            let row_bias: [f32; MODALITIES] =
                std::array::from_fn(|m| model.bias[m].row_factor(y, z) * model.contrast.gain[m]);
            let row_start = z * slice_len + y * nx;
            for (x, d) in displacement.iter().enumerate() {
                let position = [x as f32 + d[0], y as f32 + d[1], z as f32 + d[2]];
                let label = model.voxel(anatomy, position, x, &row_bias, &mut noise, &mut values);
                let voxel = row_start + x;
                seg[voxel] = label;
                for (image, value) in images.iter_mut().zip(values) {
                    image[voxel] = value;
                }
            }
        }
    }
    let counts = count_labels(&seg);
    let volume = |data| Volume {
        dims: anatomy.dims,
        affine: anatomy.affine,
        data,
    };
    SyntheticSubject {
        plan: plan.clone(),
        images: images.into_iter().map(volume).collect(),
        seg: Volume {
            dims: anatomy.dims,
            affine: anatomy.affine,
            data: seg,
        },
        counts,
    }
}

/// Template signal (T1 + T2 + PD) below which a voxel is background: noise floor only.
const BACKGROUND: f32 = 1e-3;

/// Brain probability (GM + WM + CSF) below which a skull-stripped voxel is outside the brain.
const BRAIN: f32 = 0.5;

impl SubjectModel {
    /// Label and noisy intensities (`values`, file order) of the voxel shown at deformed template
    /// position `position`; `row_bias` is gain × the y/z bias factors of the voxel's row.
    #[inline]
    fn voxel(
        &self,
        anatomy: &Anatomy,
        position: [f32; 3],
        x: usize,
        row_bias: &[f32; MODALITIES],
        noise: &mut GaussianSource,
        values: &mut [f32; MODALITIES],
    ) -> u8 {
        let (label, depth, tissue) = match &self.tumour {
            Some(tumour) => {
                let pulled = tumour.mass_pull(position);
                let tissue = anatomy.sample(pulled);
                let (label, depth) = tumour.label(pulled, &tissue);
                (label, depth, tissue)
            }
            None => (0, 0.0, anatomy.sample(position)),
        };
        if label == 0 && self.skull_strip && tissue[GM] + tissue[WM] + tissue[CSF] < BRAIN {
            *values = [0.0; MODALITIES];
            return 0;
        }
        if label == 0 && tissue[T1] + tissue[T2] + tissue[PD] < BACKGROUND {
            for (value, sigma) in values.iter_mut().zip(self.sigma) {
                *value = noise.rayleigh(sigma);
            }
            return 0;
        }
        let heterogeneity = match (&self.texture, label) {
            (Some((texture, spacing)), 1..) => {
                1.0 + texture.value(std::array::from_fn(|a| position[a] * spacing[a]))
            }
            _ => 1.0,
        };
        let spots = label == 0 && !self.distractors.is_empty();
        for (m, value) in values.iter_mut().enumerate() {
            let spot = match spots {
                true => {
                    let brain = tissue[GM] + tissue[WM] + tissue[CSF];
                    self.distractors.factor(m, position) * self.distractors.edge_factor(m, brain)
                }
                false => 1.0,
            };
            let signal = self.contrast.intensity(m, &tissue, label, depth)
                * heterogeneity
                * spot
                * row_bias[m]
                * self.bias[m].x_factor(x);
            *value = noise.rician(signal, self.sigma[m]);
        }
        label
    }
}

fn count_labels(seg: &[u8]) -> LabelCounts {
    let mut counts = LabelCounts::default();
    for &label in seg {
        match label {
            NECROSIS => counts.necrosis += 1,
            OEDEMA => counts.oedema += 1,
            ENHANCING => counts.enhancing += 1,
            _ => {}
        }
    }
    counts
}

/// Modalities in file order (re-exported for callers that iterate images).
pub const FILE_ORDER: [SynthModality; MODALITIES] = SYNTH_MODALITIES;
