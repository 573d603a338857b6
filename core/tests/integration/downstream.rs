//! The official downstream preprocessing (`PreprocessConfig::official_downstream`) on volumes
//! whose answer is known by hand: percentiles of the whole raw volume, unclipped; the foreground
//! box widened by one voxel, stopped at the grid's edge; the way back restores the label map
//! exactly. (The comparison with MONAI itself on a real case is the CLI's
//! `official_pipeline` test.)

use brainmvp_core::preprocess::{
    percentile, preprocess_images, CropBox, Pipeline, PreprocessConfig,
};
use brainmvp_core::volume::IDENTITY;
use brainmvp_core::{Modality, Volume};

/// A `dims` volume, 0 outside the box `[start, start + size)`, and inside it a ramp
/// `10 + x + 2y + 3z`.
fn boxed_ramp(dims: [usize; 3], start: [usize; 3], size: [usize; 3]) -> Volume<f32> {
    let mut volume = Volume::filled(dims, IDENTITY, 0.0f32);
    for z in start[2]..start[2] + size[2] {
        for y in start[1]..start[1] + size[1] {
            for x in start[0]..start[0] + size[0] {
                volume.set(x, y, z, 10.0 + x as f32 + 2.0 * y as f32 + 3.0 * z as f32);
            }
        }
    }
    volume
}

#[test]
fn official_downstream_scales_the_raw_volume_and_crops_the_box_with_a_margin() {
    let dims = [20, 18, 16];
    let (start, size) = ([4, 5, 6], [9, 7, 5]);
    let raw = boxed_ramp(dims, start, size);
    let (p5, p95) = (
        percentile(&raw.data, 5.0).unwrap(),
        percentile(&raw.data, 95.0).unwrap(),
    );
    // Most of the volume is background: p5 is 0, p95 lies on the ramp.
    assert_eq!(p5, 0.0);
    assert!(p95 > 10.0);
    let config = PreprocessConfig::official_downstream();
    assert_eq!(config.pipeline, Pipeline::OfficialDownstream);
    let subject = preprocess_images("case", vec![(Modality::T1, raw.clone())], None, &config)
        .expect("preprocessed");
    let record = &subject.record;
    assert_eq!(
        record.crop,
        CropBox {
            start: [3, 4, 5],
            size: [11, 9, 7],
        }
    );
    let scaled = &subject.images[0].1;
    assert_eq!(scaled.dims, [11, 9, 7]);
    // Unclipped: the brightest voxel maps above 1, by the raw volume's own percentiles.
    let brightest = 10.0 + 12.0 + 2.0 * 11.0 + 3.0 * 10.0;
    let top = scaled.get(10 - 1, 8 - 1, 6 - 1);
    assert_eq!(top, (brightest - p5) / (p95 - p5));
    assert!(top > 1.0);
    // The margin is background (0 after scaling, since p5 = 0).
    assert_eq!(scaled.get(0, 0, 0), 0.0);
    // The crop's affine moves with it.
    assert_eq!(scaled.affine[0][3], 3.0);
    assert_eq!(scaled.affine[2][3], 5.0);
}

#[test]
fn a_box_at_the_grid_edge_stops_there_and_is_restored_exactly() {
    let dims = [12, 10, 8];
    // Foreground touching the x = 0 face and the z = 7 face.
    let (start, size) = ([0, 3, 4], [5, 4, 4]);
    let raw = boxed_ramp(dims, start, size);
    let label = raw.map(|value| {
        if value > 20.0 {
            2.0
        } else {
            f32::from(value > 0.0)
        }
    });
    let config = PreprocessConfig::official_downstream();
    let subject = preprocess_images(
        "edge",
        vec![(Modality::Flair, raw.clone())],
        Some(label.clone()),
        &config,
    )
    .expect("preprocessed");
    let record = &subject.record;
    // MONAI 1.4 (allow_smaller=True): the margin is cut where the grid ends.
    assert_eq!(
        record.crop,
        CropBox {
            start: [0, 2, 3],
            size: [6, 6, 5],
        }
    );
    let cropped_label = subject.label.as_ref().unwrap();
    let restored = record.restore(cropped_label).expect("restored");
    assert_eq!(restored.dims, dims);
    assert_eq!(restored.affine, label.affine);
    let expected: Vec<u8> = label.data.iter().map(|&value| value as u8).collect();
    assert_eq!(restored.data, expected);
}

#[test]
fn nothing_above_the_lower_percentile_is_refused_with_the_case() {
    let flat = Volume::filled([8, 8, 8], IDENTITY, 3.0f32);
    let config = PreprocessConfig::official_downstream();
    let err = preprocess_images("flat", vec![(Modality::T2, flat)], None, &config).unwrap_err();
    assert_eq!(err.context, "flat");
    assert!(err.cause.contains("no voxel above"), "{err}");
}

#[test]
fn pipeline_names_round_trip_and_old_configs_read_as_pretraining() {
    let config = PreprocessConfig::official_downstream();
    let text = serde_json::to_string(&config).unwrap();
    assert!(
        text.contains("\"pipeline\":\"official-downstream\""),
        "{text}"
    );
    let back: PreprocessConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, config);
    let old: PreprocessConfig = serde_json::from_str(r#"{"clip": false}"#).unwrap();
    assert_eq!(old.pipeline, Pipeline::Pretraining);
}
