//! One case's sliding-window prediction as a list of model calls ("jobs"): every mirroring of
//! the input times every batch of windows. Whoever runs the model — this thread
//! ([`super::segment::predict_labels`]), an awaited GPU queue, or a pool of Web Workers in the
//! page, each with its own copy of the model — takes a job's input with [`WindowJobs::input`]
//! and hands the model's output back with [`WindowJobs::accept`], **in job order**. The
//! blending, the mirroring and the mean of the probabilities happen here, in that order, so every
//! caller gets the same numbers from the same model outputs.

use std::ops::Range;

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::sliding_window::{window_batch_from, window_count, SlidingWindowConfig, WindowRun};
use crate::labels::LabelScheme;
use crate::{Error, Result};

/// The axis sets (burn's z, y, x = 2, 3, 4) a prediction is mirrored along: none, or all 8.
fn mirrorings(mirror: bool) -> Vec<Vec<usize>> {
    if !mirror {
        return vec![Vec::new()];
    }
    (0..8usize)
        .map(|bits| {
            (0..3)
                .filter(|bit| bits & (1 << bit) != 0)
                .map(|bit| bit + 2)
                .collect()
        })
        .collect()
}

fn flip_axes<B: Backend>(mut tensor: Tensor<B, 5>, axes: &[usize]) -> Tensor<B, 5> {
    for &axis in axes {
        tensor = tensor.flip([axis as isize]);
    }
    tensor
}

/// The model calls of one prediction and the sums they feed (see the module docs).
pub struct WindowJobs<B: Backend> {
    /// `[N, C_in, z, y, x]`, unmirrored.
    input: Tensor<B, 5>,
    window: SlidingWindowConfig,
    scheme: LabelScheme,
    /// The mirroring of each pass.
    flips: Vec<Vec<usize>>,
    /// The window batches of one pass (the same for every pass).
    chunks: Vec<Range<usize>>,
    /// The pass being handed out or blended, built on first use, with its index.
    runs: Vec<(usize, WindowRun<B>)>,
    /// The next job [`Self::accept`] takes.
    next_job: usize,
    windows_done: usize,
    /// Sum of the probability maps of the finished passes.
    sum: Option<Tensor<B, 5>>,
}

impl<B: Backend> WindowJobs<B> {
    /// The jobs of predicting `input` `[N, C_in, z, y, x]` with windows of `window` (its `batch`
    /// windows per job), mirrored 8 ways when `mirror`; `scheme` turns logits into probabilities.
    pub fn new(
        input: Tensor<B, 5>,
        window: &SlidingWindowConfig,
        scheme: &LabelScheme,
        mirror: bool,
    ) -> Result<Self> {
        window.validate()?;
        let [images, _, depth, height, width] = input.dims();
        let per_pass = images * window_count([depth, height, width], window);
        let chunks = (0..per_pass)
            .step_by(window.batch)
            .map(|first| window_batch_from(first, window.batch, per_pass))
            .collect();
        Ok(Self {
            input,
            window: window.clone(),
            scheme: scheme.clone(),
            flips: mirrorings(mirror),
            chunks,
            runs: Vec::new(),
            next_job: 0,
            windows_done: 0,
            sum: None,
        })
    }

    /// How many model calls the prediction takes.
    pub fn len(&self) -> usize {
        self.flips.len() * self.chunks.len()
    }

    /// Whether there is no job (never: a case has at least one window).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Windows over all passes (8 × the windows of one pass with mirroring).
    pub fn windows_total(&self) -> usize {
        self.flips.len() * self.chunks.last().map_or(0, |chunk| chunk.end)
    }

    /// Windows whose outputs have been accepted.
    pub fn windows_done(&self) -> usize {
        self.windows_done
    }

    /// The pass and window batch of `job`, or an error naming it when it does not exist.
    fn locate(&self, job: usize) -> Result<(usize, Range<usize>)> {
        if job >= self.len() {
            return Err(Error::new(
                "prediction",
                format!("job {job} does not exist ({} jobs)", self.len()),
            ));
        }
        let per_pass = self.chunks.len();
        Ok((job / per_pass, self.chunks[job % per_pass].clone()))
    }

    /// The sliding-window state of `pass`, built when first asked for.
    fn run_of(&mut self, pass: usize) -> Result<&mut WindowRun<B>> {
        let position = match self.runs.iter().position(|(index, _)| *index == pass) {
            Some(position) => position,
            None => {
                let mirrored = flip_axes(self.input.clone(), &self.flips[pass]);
                self.runs
                    .push((pass, WindowRun::new(mirrored, &self.window)?));
                self.runs.len() - 1
            }
        };
        Ok(&mut self.runs[position].1)
    }

    /// The model's input for `job`: `[windows, C_in, rz, ry, rx]`. Jobs may be taken in any
    /// order, but only passes not yet finished can be asked for.
    pub fn input(&mut self, job: usize) -> Result<Tensor<B, 5>> {
        let (pass, chunk) = self.locate(job)?;
        if pass < self.next_job / self.chunks.len() {
            return Err(Error::new(
                "prediction",
                format!("job {job} belongs to a finished pass"),
            ));
        }
        Ok(self.run_of(pass)?.window_batch(chunk))
    }

    /// Takes the model's output `[windows, C_out, rz, ry, rx]` for `job`, which must be the next
    /// job in order; a pass's probabilities join the sum when its last batch is in.
    pub fn accept(&mut self, job: usize, predicted: Tensor<B, 5>) -> Result<()> {
        if job != self.next_job {
            return Err(Error::new(
                "prediction",
                format!("job {job} handed back before job {}", self.next_job),
            ));
        }
        let (pass, chunk) = self.locate(job)?;
        let windows = chunk.len();
        let run = self.run_of(pass)?;
        run.blend(chunk, predicted)?;
        if run.done() == run.total() {
            let position = self.runs.iter().position(|(index, _)| *index == pass);
            let (_, run) = self.runs.remove(position.expect("the run exists"));
            let probabilities = self.scheme.probabilities(run.finish()?);
            let probabilities = flip_axes(probabilities, &self.flips[pass]);
            self.sum = Some(match self.sum.take() {
                Some(sum) => sum + probabilities,
                None => probabilities,
            });
        }
        self.next_job += 1;
        self.windows_done += windows;
        Ok(())
    }

    /// Runs every job left through `model` on this thread, in order, calling `on_window(done,
    /// total)` after each.
    pub fn run_all<F>(
        &mut self,
        mut model: F,
        mut on_window: impl FnMut(usize, usize),
    ) -> Result<()>
    where
        F: FnMut(Tensor<B, 5>) -> Result<Tensor<B, 5>>,
    {
        for job in self.next_job..self.len() {
            let predicted = model(self.input(job)?)?;
            self.hand_back(job, predicted, &mut on_window)?;
        }
        Ok(())
    }

    /// [`Self::run_all`] for backends that cannot block on a read (WebGPU in the browser): each
    /// model output is awaited before the next job, so `on_window` reports real progress and
    /// the event loop runs in between.
    pub async fn run_all_async<F>(
        &mut self,
        mut model: F,
        mut on_window: impl FnMut(usize, usize),
    ) -> Result<()>
    where
        F: FnMut(Tensor<B, 5>) -> Result<Tensor<B, 5>>,
    {
        for job in self.next_job..self.len() {
            let predicted = model(self.input(job)?)?;
            let corner = predicted.clone().slice([0..1, 0..1, 0..1, 0..1, 0..1]);
            corner.into_data_async().await.map_err(read_failed)?;
            self.hand_back(job, predicted, &mut on_window)?;
        }
        Ok(())
    }

    /// [`Self::accept`], then `on_window(done, total)`.
    fn hand_back(
        &mut self,
        job: usize,
        predicted: Tensor<B, 5>,
        on_window: &mut impl FnMut(usize, usize),
    ) -> Result<()> {
        self.accept(job, predicted)?;
        on_window(self.windows_done, self.windows_total());
        Ok(())
    }

    /// The mean probability map `[N, C_out, z, y, x]` over the mirrorings, once every job is in.
    pub fn finish(self) -> Result<Tensor<B, 5>> {
        if self.next_job != self.len() {
            return Err(Error::new(
                "prediction",
                format!("{} of {} jobs handed back", self.next_job, self.len()),
            ));
        }
        let passes = self.flips.len();
        self.sum
            .map(|sum| sum / passes as f32)
            .ok_or_else(|| Error::new("prediction", "no prediction was made"))
    }
}

/// A failed read of a tensor, as one error.
pub fn read_failed(err: impl std::fmt::Debug) -> Error {
    Error::new("prediction", format!("{err:?}"))
}

/// The label map, x fastest, of the mean probabilities `data` of one case of `voxels` voxels.
pub fn decode_probabilities(
    scheme: &LabelScheme,
    data: TensorData,
    voxels: usize,
) -> Result<Vec<u8>> {
    let values = data
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(read_failed)?;
    scheme.decode(&values, voxels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    /// A stand-in model: per-voxel channel mixes of the window, as a network's output would be.
    fn model(batch: Tensor<B, 5>) -> Result<Tensor<B, 5>> {
        let first = batch.clone().narrow(1, 0, 1);
        Ok(Tensor::cat(
            vec![first.clone() * 2.0 - 1.0, first.clone().sin(), -first],
            1,
        ))
    }

    fn case() -> Tensor<B, 5> {
        let dims = [1, 1, 20, 18, 23];
        let values: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| ((i as f32) * 0.173).sin() + ((i as f32) * 0.011).cos())
            .collect();
        Tensor::from_data(TensorData::new(values, dims), &Default::default())
    }

    fn jobs() -> WindowJobs<B> {
        let window = SlidingWindowConfig {
            roi: [16; 3],
            batch: 3,
            ..Default::default()
        };
        WindowJobs::new(case(), &window, &LabelScheme::default(), true).unwrap()
    }

    /// Inputs taken ahead and out of order (as a pool of workers takes them), outputs handed
    /// back in order: the same probabilities to the bit as one thread running every job.
    #[test]
    fn jobs_taken_out_of_order_give_the_same_sums_as_one_thread() {
        let mut serial = jobs();
        serial.run_all(model, |_, _| {}).unwrap();
        let expected = serial.finish().unwrap().into_data();

        let mut pooled = jobs();
        let count = pooled.len();
        assert_eq!(
            pooled.windows_total(),
            8 * 8,
            "8 windows of 16³, 8 mirrorings"
        );
        let mut outputs = std::collections::BTreeMap::new();
        for pair in (0..count).collect::<Vec<_>>().chunks(2) {
            for &job in pair.iter().rev() {
                outputs.insert(job, model(pooled.input(job).unwrap()).unwrap());
            }
            for &job in pair {
                pooled.accept(job, outputs.remove(&job).unwrap()).unwrap();
            }
        }
        assert_eq!(pooled.windows_done(), pooled.windows_total());
        let got = pooled.finish().unwrap().into_data();
        assert_eq!(
            got.as_slice::<f32>().unwrap(),
            expected.as_slice::<f32>().unwrap()
        );
    }

    #[test]
    fn outputs_out_of_order_and_unfinished_predictions_are_refused() {
        let mut jobs = jobs();
        let second = model(jobs.input(1).unwrap()).unwrap();
        let err = jobs.accept(1, second).unwrap_err().to_string();
        assert!(err.contains("job 1 handed back before job 0"), "{err}");
        let err = jobs.input(jobs.len()).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let first = model(jobs.input(0).unwrap()).unwrap();
        jobs.accept(0, first).unwrap();
        let err = jobs.finish().unwrap_err().to_string();
        assert!(err.contains("1 of 24 jobs handed back"), "{err}");
    }

    #[test]
    fn inputs_of_a_finished_pass_are_refused() {
        let mut jobs = jobs();
        let per_pass = jobs.len() / 8;
        for job in 0..per_pass {
            let output = model(jobs.input(job).unwrap()).unwrap();
            jobs.accept(job, output).unwrap();
        }
        let err = jobs.input(0).unwrap_err().to_string();
        assert!(err.contains("finished pass"), "{err}");
        assert!(jobs.input(per_pass).is_ok());
    }
}
