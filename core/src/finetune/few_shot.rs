//! Fine-tuning on a few labelled cases held in memory: what the browser does when a user adds
//! cases with a label map and presses "Fine-tune". The cases are preprocessed as at inference
//! (the model's own [`PreprocessConfig`](crate::preprocess::PreprocessConfig)), missing
//! modalities are filled from the model's templates, and each step trains on random crops of the
//! model's window size, half of them placed so that a labelled voxel lies inside, flipped at
//! random. Adam with a constant learning rate; the caller reads the loss (asynchronously on
//! WebGPU) and decides when to stop.
//!
//! Teaching from hand corrections ([`crate::correction`]) is the same loop with a weight class per
//! voxel ([`LabelledCase::weight_classes`]): the loss is weighted ([`FewShotSet::with_focus`]),
//! half the crops hold a corrected voxel and the others a voxel that is trained on. The classes
//! ride through preprocessing in the label map's high bits ([`WEIGHT_CLASS_SHIFT`]), so they take
//! the label's exact nearest-neighbour path (reorientation, resampling, crops).

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use crate::correction::{TeachingFocus, WeightClass};
use crate::crops::{copy_crop, crop_start, crop_start_containing, flip_in_place};
use crate::inference::segment::SegmenterManifest;
use crate::model::batch_norm::with_running_statistics;
use crate::model::UniUnet;
use crate::preprocess::preprocess_images;
use crate::rng::Rng;
use crate::template_bank::{fill_missing, TemplateBank};
use crate::{Error, Modality, Result, Volume};

/// One labelled case as the user gives it: raw images and the label map on their grid.
#[derive(Debug, Clone)]
pub struct LabelledCase {
    /// Names the case in errors (e.g. the label file's name).
    pub id: String,
    /// Raw images (any subset of the model's modalities).
    pub images: Vec<(Modality, Volume<f32>)>,
    /// Label values on the images' grid (as read from NIfTI).
    pub label: Volume<f32>,
    /// Teaching from corrections: a [`WeightClass`] value per voxel on the label's grid; `None`
    /// trains on every voxel alike.
    pub weight_classes: Option<Volume<f32>>,
}

/// Bits of the label value below the weight class while both ride through preprocessing: label
/// values of a teaching case must stay under `1 << WEIGHT_CLASS_SHIFT`.
pub const WEIGHT_CLASS_SHIFT: u32 = 6;

/// A preprocessed case: channels in the model's order and the label map, on one grid.
struct PreparedCase {
    dims: [usize; 3],
    channels: Vec<Vec<f32>>,
    label: Vec<u8>,
    /// The [`WeightClass`] of every voxel, when teaching.
    weight_classes: Option<Vec<u8>>,
    /// What half the crops are placed around: the labelled voxels, or the corrected ones when
    /// teaching.
    focus_voxels: Vec<u32>,
}

/// The few labelled cases, ready to be cropped into training batches.
pub struct FewShotSet {
    cases: Vec<PreparedCase>,
    crop_size: [usize; 3],
    class_weights: [f32; 3],
}

/// One training batch: `[batch, C, z, y, x]` inputs, the labels (x fastest) and, when teaching,
/// a weight per label voxel.
pub struct FewShotBatch {
    pub inputs: Vec<f32>,
    pub labels: Vec<u8>,
    pub weights: Option<Vec<f32>>,
    pub shape: [usize; 5],
}

impl FewShotSet {
    /// Preprocesses `cases` for the model of `manifest`; missing modalities are filled from
    /// `templates` (zeros without). Crops have the model's sliding-window size.
    pub fn new(
        manifest: &SegmenterManifest,
        cases: Vec<LabelledCase>,
        templates: Option<&TemplateBank>,
    ) -> Result<Self> {
        if cases.is_empty() {
            return Err(Error::new("fine-tuning", "no labelled case given"));
        }
        let prepared = cases
            .into_iter()
            .map(|case| prepare_case(manifest, case, templates))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cases: prepared,
            crop_size: manifest.window.roi,
            class_weights: TeachingFocus::default().class_weights(),
        })
    }

    /// Weight the loss of teaching cases as `focus` says (the default is
    /// [`TeachingFocus::UpWeighted`]); cases without weight classes are not affected.
    pub fn with_focus(mut self, focus: TeachingFocus) -> Self {
        self.class_weights = focus.class_weights();
        self
    }

    /// How many cases the set holds.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether the set is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// `batch` random crops of the cases, flipped at random.
    pub fn sample(&self, rng: &mut Rng, batch: usize) -> FewShotBatch {
        let size = self.crop_size;
        let crop_voxels = size.iter().product::<usize>();
        let channels = self.cases[0].channels.len();
        let teaching = self.cases.iter().any(|case| case.weight_classes.is_some());
        let mut inputs = Vec::with_capacity(batch * channels * crop_voxels);
        let mut labels = Vec::with_capacity(batch * crop_voxels);
        let mut weights = Vec::with_capacity(if teaching { batch * crop_voxels } else { 0 });
        for _ in 0..batch {
            let case = &self.cases[rng.below(self.cases.len())];
            let (start, flipped) = self.crop_placement(case, teaching, rng);
            for channel in &case.channels {
                inputs.extend_from_slice(&copy_flipped(channel, case.dims, start, size, flipped));
            }
            labels.extend_from_slice(&copy_flipped(&case.label, case.dims, start, size, flipped));
            if teaching {
                let all_reviewed = vec![WeightClass::Reviewed as u8; case.label.len()];
                let classes = case.weight_classes.as_ref().unwrap_or(&all_reviewed);
                let crop = copy_flipped(classes, case.dims, start, size, flipped);
                weights.extend(
                    crop.iter()
                        .map(|&class| self.class_weights[usize::from(class)]),
                );
            }
        }
        FewShotBatch {
            inputs,
            labels,
            weights: teaching.then_some(weights),
            shape: [batch, channels, size[2], size[1], size[0]],
        }
    }

    /// Where one crop starts, and its flips. Half the crops are placed around a focus voxel;
    /// the others anywhere, except that a teaching crop must hold a voxel that is trained on
    /// (weight class above [`WeightClass::Ignored`]): around such a voxel found by
    /// [`REVIEWED_TRIES`] random draws, else around a focus voxel.
    fn crop_placement(
        &self,
        case: &PreparedCase,
        teaching: bool,
        rng: &mut Rng,
    ) -> ([isize; 3], [bool; 3]) {
        let size = self.crop_size;
        let mut start = crop_start(case.dims, size, rng);
        let around_focus = !case.focus_voxels.is_empty() && rng.chance(0.5);
        let around = if around_focus {
            Some(case.focus_voxels[rng.below(case.focus_voxels.len())] as usize)
        } else if let Some(classes) = case.weight_classes.as_ref().filter(|_| teaching) {
            let reviewed = (0..REVIEWED_TRIES)
                .map(|_| rng.below(classes.len()))
                .find(|&index| classes[index] != WeightClass::Ignored as u8);
            Some(reviewed.unwrap_or(case.focus_voxels[rng.below(case.focus_voxels.len())] as usize))
        } else {
            None
        };
        if let Some(pick) = around {
            let voxel = [
                pick % case.dims[0],
                (pick / case.dims[0]) % case.dims[1],
                pick / (case.dims[0] * case.dims[1]),
            ];
            let offset = [0, 1, 2].map(|axis| rng.below(size[axis]));
            start = crop_start_containing(case.dims, size, voxel, offset);
        }
        (start, [0, 1, 2].map(|_| rng.chance(0.5)))
    }
}

/// Random draws for a trained-on voxel before a teaching crop falls back to a corrected one.
const REVIEWED_TRIES: usize = 256;

fn copy_flipped<T: Copy + Default>(
    values: &[T],
    dims: [usize; 3],
    start: [isize; 3],
    size: [usize; 3],
    flipped: [bool; 3],
) -> Vec<T> {
    let mut crop = copy_crop(values, dims, start, size);
    flip_in_place(&mut crop, size, flipped);
    crop
}

fn prepare_case(
    manifest: &SegmenterManifest,
    case: LabelledCase,
    templates: Option<&TemplateBank>,
) -> Result<PreparedCase> {
    let id = case.id;
    let images: Vec<_> = case
        .images
        .into_iter()
        .filter(|(modality, _)| manifest.modalities.contains(modality))
        .collect();
    if images.is_empty() {
        return Err(Error::new(&id, "none of the model's modalities given"));
    }
    let teaching = case.weight_classes.is_some();
    let label = match case.weight_classes {
        Some(classes) => pack_weight_classes(&id, case.label, &classes)?,
        None => case.label,
    };
    let mut subject = preprocess_images(&id, images, Some(label), &manifest.preprocess)?;
    fill_missing(&mut subject.images, &manifest.modalities, templates)?;
    let label = subject
        .label
        .ok_or_else(|| Error::new(&id, "the label map was lost in preprocessing"))?;
    let channels = manifest
        .modalities
        .iter()
        .map(|wanted| {
            subject
                .images
                .iter()
                .find(|(modality, _)| modality == wanted)
                .map(|(_, volume)| volume.data.clone())
                .ok_or_else(|| Error::new(&id, format!("no {wanted} channel")))
        })
        .collect::<Result<Vec<_>>>()?;
    let dims = label.dims;
    let (label, weight_classes) = if teaching {
        let (label, classes) = unpack_weight_classes(&label.data);
        (label, Some(classes))
    } else {
        (label.data, None)
    };
    let focus_voxels = match &weight_classes {
        Some(classes) => voxels_where(classes, |class| class == WeightClass::Corrected as u8),
        None => voxels_where(&label, |value| value > 0),
    };
    if teaching && focus_voxels.is_empty() {
        return Err(Error::new(&id, "no corrected voxel to teach from"));
    }
    Ok(PreparedCase {
        dims,
        channels,
        label,
        weight_classes,
        focus_voxels,
    })
}

/// The indices of the voxels whose value `selected` accepts.
fn voxels_where(values: &[u8], selected: impl Fn(u8) -> bool) -> Vec<u32> {
    values
        .iter()
        .enumerate()
        .filter(|(_, &value)| selected(value))
        .map(|(index, _)| index as u32)
        .collect()
}

/// `label + class << WEIGHT_CLASS_SHIFT` per voxel; an error naming the case when the grids
/// differ, a class is not a [`WeightClass`] or a label does not fit under the shift.
fn pack_weight_classes(id: &str, label: Volume<f32>, classes: &Volume<f32>) -> Result<Volume<f32>> {
    if classes.dims != label.dims || classes.data.len() != label.data.len() {
        let cause = format!(
            "the weight classes' grid {:?} differs from the label map's {:?}",
            classes.dims, label.dims
        );
        return Err(Error::new(id, cause));
    }
    let limit = (1u32 << WEIGHT_CLASS_SHIFT) as f32;
    if let Some(bad) = label.data.iter().find(|&&value| value >= limit) {
        let cause = format!("label value {bad} is too large to teach from (under {limit})");
        return Err(Error::new(id, cause));
    }
    let mut packed = label;
    for (value, &class) in packed.data.iter_mut().zip(&classes.data) {
        if WeightClass::from_value(class as u8).is_none() || class.fract() != 0.0 {
            let cause = format!("weight class {class} is not 0, 1 or 2");
            return Err(Error::new(id, cause));
        }
        *value += class * limit;
    }
    Ok(packed)
}

/// The labels and the weight classes of packed values.
fn unpack_weight_classes(packed: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mask = (1u8 << WEIGHT_CLASS_SHIFT) - 1;
    packed
        .iter()
        .map(|&value| (value & mask, value >> WEIGHT_CLASS_SHIFT))
        .unzip()
}

/// Adam on a [`FewShotSet`], one step at a time.
pub struct FewShotTrainer<B: AutodiffBackend> {
    model: UniUnet<B>,
    optimizer: OptimizerAdaptor<Adam, UniUnet<B>, B>,
    manifest: SegmenterManifest,
    set: FewShotSet,
    rng: Rng,
    batch: usize,
    steps_done: usize,
}

impl<B: AutodiffBackend> FewShotTrainer<B> {
    /// Starts from `model` (the loaded segmenter); `seed` fixes the crops.
    pub fn new(
        model: UniUnet<B>,
        manifest: &SegmenterManifest,
        set: FewShotSet,
        batch: usize,
        seed: u64,
    ) -> Self {
        Self {
            model,
            optimizer: AdamConfig::new().init(),
            manifest: manifest.clone(),
            set,
            rng: Rng::new(seed),
            batch: batch.max(1),
            steps_done: 0,
        }
    }

    /// One Adam step at `learning_rate` on a fresh batch; returns the loss before the step (read
    /// it with `into_scalar` or, on WebGPU, `into_scalar_async`).
    pub fn step(&mut self, learning_rate: f64) -> Result<Tensor<B::InnerBackend, 1>> {
        let batch = self.set.sample(&mut self.rng, self.batch);
        let shape = batch.shape;
        let device = self.model.devices().into_iter().next().unwrap_or_default();
        let input = Tensor::<B, 5>::from_data(TensorData::new(batch.inputs, shape), &device);
        let teaching = batch.weights.is_some();
        let outputs = if teaching {
            with_running_statistics(|| self.model.try_forward(input))?
        } else {
            self.model.try_forward(input)?
        };
        let dims = [shape[4], shape[3], shape[2]];
        let loss = self.manifest.labels.weighted_loss(
            &outputs,
            &batch.labels,
            batch.weights.as_deref(),
            shape[0],
            dims,
        )?;
        let gradients = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self
            .optimizer
            .step(learning_rate, self.model.clone(), gradients);
        self.steps_done += 1;
        Ok(loss.inner())
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// The model as trained so far, without autodiff (for inference and export).
    pub fn model(&self) -> UniUnet<B::InnerBackend> {
        self.model.valid()
    }
}
