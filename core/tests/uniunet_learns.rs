//! The tiny UniUnet learns a segmentation that is a simple function of the input: a few Adam
//! (60, seeded) steps on bright blobs raise the Dice of the decoded prediction far above the untrained one's.

use brainmvp_core::labels::LabelScheme;
use brainmvp_core::model::{Architecture, UniUnetConfig};
use brainmvp_core::rng::Rng;
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{Tensor, TensorData};

type AD = Autodiff<Flex>;
const EDGE: usize = 32;

/// Two channels of noise; voxels inside a random ball are bright in channel 0 and labelled
/// oedema (2), its core enhancing (4).
fn case(rng: &mut Rng) -> (Vec<f32>, Vec<u8>) {
    let voxels = EDGE * EDGE * EDGE;
    let centre: Vec<f64> = (0..3).map(|_| rng.range_f64(10.0, 22.0)).collect();
    let radius = rng.range_f64(6.0, 10.0);
    let mut image = vec![0f32; 2 * voxels];
    let mut label = vec![0u8; voxels];
    for index in 0..voxels {
        let p = [index % EDGE, (index / EDGE) % EDGE, index / (EDGE * EDGE)];
        let distance = (0..3)
            .map(|a| (p[a] as f64 - centre[a]).powi(2))
            .sum::<f64>()
            .sqrt();
        let noise = 0.1 * rng.uniform() as f32;
        image[index] = noise + if distance < radius { 0.8 } else { 0.2 };
        image[voxels + index] = 0.3 + 0.1 * rng.uniform() as f32;
        label[index] = match distance {
            d if d < radius * 0.5 => 4,
            d if d < radius => 2,
            _ => 0,
        };
    }
    (image, label)
}

fn mean_dice<B: burn::tensor::backend::Backend>(
    model: &brainmvp_core::model::UniUnet<B>,
    scheme: &LabelScheme,
    cases: &[(Vec<f32>, Vec<u8>)],
) -> f64 {
    let device = Default::default();
    let mut total = 0.0;
    for (image, label) in cases {
        let input = Tensor::<B, 5>::from_data(
            TensorData::new(image.clone(), [1, 2, EDGE, EDGE, EDGE]),
            &device,
        );
        let probabilities = scheme.probabilities(model.forward_inference(input));
        let values = probabilities.into_data().into_vec::<f32>().unwrap();
        let predicted = scheme.decode(&values, EDGE * EDGE * EDGE).unwrap();
        let scores = scheme
            .score(&predicted, label, [EDGE; 3], [1.0; 3])
            .unwrap();
        total += scores.iter().map(|s| s.dice).sum::<f64>() / scores.len() as f64;
    }
    total / cases.len() as f64
}

#[test]
fn a_few_adam_steps_learn_bright_blobs() {
    let device = Default::default();
    // Seeded: burn's initialisers draw from the backend RNG, and an unseeded run made this test
    // depend on luck (seeds 1–3 reach Dice 0.77, 0.84 and 0.46 after 60 steps).
    <AD as burn::tensor::backend::Backend>::seed(&device, 1);
    let scheme = LabelScheme::Brats { enhancing_label: 4 };
    let mut model = UniUnetConfig::new(2, 3)
        .with_encoder(Architecture::UniformerTiny)
        .with_deep_supervision(true)
        .init::<AD>(&device)
        .unwrap();
    let mut rng = Rng::new(4);
    let held_out: Vec<_> = (0..3).map(|_| case(&mut rng)).collect();
    let before = mean_dice(&model.valid(), &scheme, &held_out);
    let mut optim = AdamConfig::new().init::<AD, brainmvp_core::model::UniUnet<AD>>();
    let mut losses = Vec::new();
    for _ in 0..60 {
        let (a, b) = (case(&mut rng), case(&mut rng));
        let input = Tensor::<AD, 5>::from_data(
            TensorData::new([a.0, b.0].concat(), [2, 2, EDGE, EDGE, EDGE]),
            &device,
        );
        let outputs = model.try_forward(input).unwrap();
        let loss = scheme
            .loss(&outputs, &[a.1, b.1].concat(), 2, [EDGE; 3])
            .unwrap();
        losses.push(loss.clone().into_scalar());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let after = mean_dice(&model.valid(), &scheme, &held_out);
    eprintln!("losses {:?}", losses.iter().step_by(5).collect::<Vec<_>>());
    assert!(
        after > before + 0.3 && after > 0.4,
        "Dice {before:.3} -> {after:.3}"
    );
}
