//! Fine-tuning on a few labelled cases held in memory: what the browser does when a user adds
//! cases with a label map and presses "Fine-tune". The cases are preprocessed as at inference
//! (the model's own [`PreprocessConfig`](crate::preprocess::PreprocessConfig)), missing
//! modalities are filled from the model's templates, and each step trains on random crops of the
//! model's window size, half of them placed so that a labelled voxel lies inside, flipped at
//! random. Adam with a constant learning rate; the caller reads the loss (asynchronously on
//! WebGPU) and decides when to stop.

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use super::cutmix::{fill_missing, TemplateBank};
use crate::crops::{copy_crop, crop_start, crop_start_containing, flip_in_place};
use crate::inference::segment::SegmenterManifest;
use crate::model::UniUnet;
use crate::preprocess::preprocess_images;
use crate::rng::Rng;
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
}

/// A preprocessed case: channels in the model's order and the label map, on one grid.
struct PreparedCase {
    dims: [usize; 3],
    channels: Vec<Vec<f32>>,
    label: Vec<u8>,
    labelled_voxels: Vec<u32>,
}

/// The few labelled cases, ready to be cropped into training batches.
pub struct FewShotSet {
    cases: Vec<PreparedCase>,
    crop_size: [usize; 3],
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
        })
    }

    /// How many cases the set holds.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether the set is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// `batch` random crops: the input `[batch, C, z, y, x]` values and their labels, x fastest.
    pub fn sample(&self, rng: &mut Rng, batch: usize) -> (Vec<f32>, Vec<u8>, [usize; 5]) {
        let size = self.crop_size;
        let crop_voxels = size.iter().product::<usize>();
        let channels = self.cases[0].channels.len();
        let mut inputs = Vec::with_capacity(batch * channels * crop_voxels);
        let mut labels = Vec::with_capacity(batch * crop_voxels);
        for _ in 0..batch {
            let case = &self.cases[rng.below(self.cases.len())];
            let mut start = crop_start(case.dims, size, rng);
            if !case.labelled_voxels.is_empty() && rng.chance(0.5) {
                let pick = case.labelled_voxels[rng.below(case.labelled_voxels.len())] as usize;
                let voxel = [
                    pick % case.dims[0],
                    (pick / case.dims[0]) % case.dims[1],
                    pick / (case.dims[0] * case.dims[1]),
                ];
                let offset = [0, 1, 2].map(|axis| rng.below(size[axis]));
                start = crop_start_containing(case.dims, size, voxel, offset);
            }
            let flipped = [0, 1, 2].map(|_| rng.chance(0.5));
            for channel in &case.channels {
                let mut crop = copy_crop(channel, case.dims, start, size);
                flip_in_place(&mut crop, size, flipped);
                inputs.extend_from_slice(&crop);
            }
            let mut crop = copy_crop(&case.label, case.dims, start, size);
            flip_in_place(&mut crop, size, flipped);
            labels.extend_from_slice(&crop);
        }
        (inputs, labels, [batch, channels, size[2], size[1], size[0]])
    }
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
    let mut subject = preprocess_images(&id, images, Some(case.label), &manifest.preprocess)?;
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
    let labelled_voxels = label
        .data
        .iter()
        .enumerate()
        .filter(|(_, &value)| value > 0)
        .map(|(index, _)| index as u32)
        .collect();
    Ok(PreparedCase {
        dims: label.dims,
        channels,
        label: label.data,
        labelled_voxels,
    })
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
        let (inputs, labels, shape) = self.set.sample(&mut self.rng, self.batch);
        let device = self.model.devices().into_iter().next().unwrap_or_default();
        let input = Tensor::<B, 5>::from_data(TensorData::new(inputs, shape), &device);
        let outputs = self.model.try_forward(input)?;
        let dims = [shape[4], shape[3], shape[2]];
        let loss = self
            .manifest
            .labels
            .loss(&outputs, &labels, shape[0], dims)?;
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
