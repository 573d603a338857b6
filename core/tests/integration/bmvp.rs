//! `.bmvp` model files: f32 round trips are exact, f16 halves the file and stays close, the
//! templates travel along, and no damaged or foreign file loads (nor panics).

use crate::support::B;
use brainmvp_core::bmvp::{BmvpModel, WeightPrecision};
use brainmvp_core::inference::segment::{SegmenterManifest, SEGMENTER_FORMAT, SEGMENTER_VERSION};
use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::model::{Architecture, UniUnet, UniUnetConfig};
use brainmvp_core::preprocess::PreprocessConfig;
use brainmvp_core::volume::IDENTITY;
use brainmvp_core::{Modality, Volume};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

fn manifest() -> SegmenterManifest {
    SegmenterManifest {
        format: SEGMENTER_FORMAT.to_string(),
        version: SEGMENTER_VERSION,
        model: UniUnetConfig::new(2, 3).with_encoder(Architecture::UniformerTiny),
        modalities: vec![Modality::T1, Modality::Flair],
        labels: LabelScheme::Brats { enhancing_label: 4 },
        preprocess: PreprocessConfig::default(),
        window: SlidingWindowConfig {
            roi: [32; 3],
            ..SlidingWindowConfig::default()
        },
        templates: Vec::new(),
        init: "scratch".into(),
        brainmvp_version: String::new(),
    }
}

fn model(seed: u64) -> UniUnet<B> {
    let device = Default::default();
    B::seed(&device, seed);
    manifest().model.init::<B>(&device).unwrap()
}

fn template(value_offset: f32) -> Volume<f32> {
    let dims = [5, 4, 3];
    let data = (0..60).map(|i| value_offset + i as f32 * 0.01).collect();
    Volume {
        dims,
        affine: IDENTITY,
        data,
    }
}

/// The model's output on one fixed input. The input is a formula, not the backend's seeded
/// generator: that generator is global, and tests running in parallel draw from it too.
fn outputs(model: &UniUnet<B>) -> Vec<f32> {
    let device = Default::default();
    let shape = [1, 2, 32, 32, 32];
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| 0.5 + 0.5 * (i as f32 * 0.618).sin())
        .collect();
    let input = Tensor::<B, 5>::from_data(TensorData::new(values, shape), &device);
    model
        .forward_inference(input)
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn f32_round_trip_is_exact_and_templates_travel() {
    let original = model(1);
    let templates = vec![
        (Modality::T1, template(0.0)),
        (Modality::Flair, template(1.0)),
    ];
    let bmvp = BmvpModel::from_model(
        &manifest(),
        &original,
        WeightPrecision::F32,
        templates.clone(),
    )
    .unwrap();
    assert_eq!(bmvp.manifest.templates, vec![Modality::T1, Modality::Flair]);
    let bytes = bmvp.to_bytes().unwrap();
    let read = BmvpModel::from_bytes(&bytes, "model.bmvp").unwrap();
    assert_eq!(read.precision, WeightPrecision::F32);
    assert_eq!(read.tensors, bmvp.tensors);
    assert_eq!(read.templates.len(), 2);
    for ((m, a), (n, b)) in read.templates.iter().zip(&templates) {
        assert_eq!(
            (m, a.dims, a.affine, &a.data),
            (n, b.dims, b.affine, &b.data)
        );
    }
    let loaded = read.load_model::<B>(&Default::default()).unwrap();
    assert_eq!(outputs(&loaded), outputs(&original));
    // A different network gives different outputs: the comparison above can fail.
    assert_ne!(outputs(&model(2)), outputs(&original));
    assert!(read.template_bank().unwrap().is_some());
}

#[test]
fn f16_halves_the_file_and_stays_close() {
    let original = model(3);
    let bmvp =
        BmvpModel::from_model(&manifest(), &original, WeightPrecision::F32, Vec::new()).unwrap();
    let f32_bytes = bmvp.to_bytes().unwrap();
    let f16_bytes = bmvp
        .with_precision(WeightPrecision::F16)
        .to_bytes()
        .unwrap();
    let ratio = f16_bytes.len() as f64 / f32_bytes.len() as f64;
    assert!((0.49..0.53).contains(&ratio), "f16/f32 size {ratio}");
    let read = BmvpModel::from_bytes(&f16_bytes, "half.bmvp").unwrap();
    assert_eq!(read.precision, WeightPrecision::F16);
    let (exact, half) = (
        outputs(&original),
        outputs(&read.load_model::<B>(&Default::default()).unwrap()),
    );
    let largest = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = exact
        .iter()
        .zip(&half)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst > 0.0, "f16 changed nothing: not stored as f16?");
    assert!(
        worst < 0.01 * largest.max(1.0),
        "f16 error {worst} (largest output {largest})"
    );
    assert!(read.template_bank().unwrap().is_none());
}

#[test]
fn damaged_and_foreign_files_are_refused_without_panic() {
    let bmvp = BmvpModel::from_model(
        &manifest(),
        &model(4),
        WeightPrecision::F16,
        vec![(Modality::T1, template(0.5))],
    )
    .unwrap();
    let bytes = bmvp.to_bytes().unwrap();
    let step = (bytes.len() / 300).max(1);
    for cut in (0..bytes.len()).step_by(step) {
        let err = BmvpModel::from_bytes(&bytes[..cut], "cut.bmvp")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cut.bmvp: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    for position in (0..bytes.len()).step_by(step) {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x5a;
        assert!(
            BmvpModel::from_bytes(&damaged, "damaged.bmvp").is_err(),
            "byte {position}"
        );
    }
    let err = BmvpModel::from_bytes(b"\x89PNG\r\n\x1a\n not a model at all", "photo.png")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "photo.png: not a brainmvp model (.bmvp) file");
    let mut newer = bytes.clone();
    newer[16] = 9;
    let err = BmvpModel::from_bytes(&newer, "new.bmvp")
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 9"), "{err}");
}

#[test]
fn weights_of_another_network_are_refused() {
    let bmvp =
        BmvpModel::from_model(&manifest(), &model(5), WeightPrecision::F32, Vec::new()).unwrap();
    let mut wrong = bmvp.clone();
    wrong.manifest.model = UniUnetConfig::new(2, 3).with_encoder(Architecture::UniformerS);
    let bytes = wrong.to_bytes().unwrap();
    let read = BmvpModel::from_bytes(&bytes, "wrong.bmvp").unwrap();
    let err = read
        .load_model::<B>(&Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shape") || err.contains("weight tensors"),
        "{err}"
    );
}

/// A bmvp's sections: the JSON header's bytes and the raw values.
fn sections(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let header_len = u64::from_le_bytes(bytes[20..28].try_into().unwrap()) as usize;
    let values_at = 28 + header_len + 8;
    (
        bytes[28..28 + header_len].to_vec(),
        bytes[values_at..bytes.len() - 4].to_vec(),
    )
}

/// A file with the given header and values, lengths as given, and a valid checksum, so the
/// reader's own checks (not the CRC) must refuse what is wrong.
fn sealed(header: &[u8], header_len: u64, values: &[u8], value_len: u64) -> Vec<u8> {
    let mut bytes = b"BRAINMVP-BUNDLE\n".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&header_len.to_le_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&value_len.to_le_bytes());
    bytes.extend_from_slice(values);
    let mut crc = flate2::Crc::new();
    crc.update(&bytes);
    bytes.extend_from_slice(&crc.sum().to_le_bytes());
    bytes
}

fn refusal(bytes: &[u8]) -> String {
    let err = BmvpModel::from_bytes(bytes, "sealed.bmvp")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sealed.bmvp: ") && !err.contains('\n'),
        "{err}"
    );
    err
}

#[test]
fn wrong_lengths_and_headers_with_a_valid_checksum_are_refused() {
    let bmvp = BmvpModel::from_model(
        &manifest(),
        &model(6),
        WeightPrecision::F16,
        vec![
            (Modality::T1, template(0.0)),
            (Modality::Flair, template(2.0)),
        ],
    )
    .unwrap();
    let bytes = bmvp.to_bytes().unwrap();
    let (json, values) = sections(&bytes);
    let header: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let (header_len, value_len) = (json.len() as u64, values.len() as u64);
    // The helpers rebuild the very same file: the checks below differ from it in one thing.
    assert!(sealed(&json, header_len, &values, value_len) == bytes);

    let err = refusal(&sealed(&json, u64::MAX, &values, value_len));
    assert!(err.contains("implausibly large"), "{err}");
    let err = refusal(&sealed(
        &json,
        header_len + value_len + 1000,
        &values,
        value_len,
    ));
    assert!(err.contains("truncated"), "{err}");
    let err = refusal(&sealed(&json, header_len, &values, u64::MAX));
    assert!(err.contains("implausibly large"), "{err}");
    let err = refusal(&sealed(&json, header_len, &values, value_len + 2));
    assert!(err.contains("truncated"), "{err}");
    let err = refusal(&sealed(
        &json,
        header_len,
        &values[..values.len() - 2],
        value_len - 2,
    ));
    assert!(err.contains("the values end inside"), "{err}");

    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut header = header.clone();
        edit(&mut header);
        let json = serde_json::to_vec(&header).unwrap();
        sealed(&json, json.len() as u64, &values, value_len)
    };
    let err = refusal(&edited(&|h| {
        h["templates"][1]["dims"] = serde_json::json!([5, 4, 2])
    }));
    assert!(err.contains("more values"), "{err}");
    let err = refusal(&edited(&|h| {
        h["templates"][0]["dims"] = serde_json::json!([5, 3, 4]);
    }));
    assert!(err.contains("template has dims"), "{err}");
    let err = refusal(&edited(&|h| h["templates"][1]["modality"] = "t1".into()));
    assert!(err.contains("two"), "{err}");
    let err = refusal(&edited(&|h| {
        h["tensors"][0] = serde_json::json!([usize::MAX, 2]);
    }));
    assert!(err.contains("overflows"), "{err}");
    let err = refusal(&edited(&|h| {
        h["manifest"]["modalities"] = serde_json::json!(["t1"]);
    }));
    assert!(err.contains("input channels"), "{err}");
    let err = refusal(&edited(&|h| h["precision"] = "f8".into()));
    assert!(err.contains("bad header"), "{err}");

    // Any byte of the header changed (checksum repaired) loads or is refused: it never panics.
    for position in 0..json.len() {
        for flip in [0x01u8, 0x20, 0x80] {
            let mut damaged = json.clone();
            damaged[position] ^= flip;
            let _ = BmvpModel::from_bytes(
                &sealed(&damaged, header_len, &values, value_len),
                "flip.bmvp",
            );
        }
    }
}

#[test]
fn every_short_or_long_cut_is_refused() {
    let bmvp =
        BmvpModel::from_model(&manifest(), &model(7), WeightPrecision::F16, Vec::new()).unwrap();
    let bytes = bmvp.to_bytes().unwrap();
    // Every cut through the magic, version, lengths and header, and the last kilobyte.
    let cuts = (0..8192.min(bytes.len())).chain(bytes.len().saturating_sub(1024)..bytes.len());
    for cut in cuts {
        let err = BmvpModel::from_bytes(&bytes[..cut], "cut.bmvp")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cut.bmvp: ") && !err.contains('\n'),
            "{err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(BmvpModel::from_bytes(&longer, "long.bmvp").is_err());
}
