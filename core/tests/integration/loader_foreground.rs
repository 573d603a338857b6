//! Foreground-centred crops of the loader: with fraction 1 every crop of a labelled subject holds
//! labelled voxels, subjects without a label or with an empty one fall back to the uniform crop,
//! fraction 0 reproduces the uniform crops of the per-sample stream exactly, an intermediate
//! fraction hits the blob at the configured rate, the voxel lists are made once, results do not
//! depend on the workers, the centring and clamping rule, and positives at random places in the crop.

use crate::support::scratch;
use brainmvp_core::cache::{prepare_subjects, CacheDtype, CacheReader, WriteOptions};
use brainmvp_core::loader::{
    crop_start, crop_start_around, Loader, LoaderConfig, Sampler, SAMPLE_SALT,
};
use brainmvp_core::nifti::Reorientation;
use brainmvp_core::preprocess::{CropBox, GridRecord, PreprocessedSubject};
use brainmvp_core::rng::Rng;
use brainmvp_core::volume::IDENTITY;
use brainmvp_core::{Modality, Volume};
use std::path::PathBuf;
use std::sync::Arc;

const CROP: [usize; 3] = [8, 8, 8];

/// A labelled 3×3×3 blob with value `value` at `corner`, or no label / an empty label.
enum Label {
    Blob([usize; 3], u8),
    Empty,
    Missing,
}

fn subject(id: &str, dims: [usize; 3], label: Label) -> PreprocessedSubject {
    let mut image = Volume::filled(dims, IDENTITY, 0.0f32);
    for (i, v) in image.data.iter_mut().enumerate() {
        *v = (i % 17) as f32 / 16.0;
    }
    let label = match label {
        Label::Missing => None,
        Label::Empty => Some(Volume::filled(dims, IDENTITY, 0u8)),
        Label::Blob(corner, value) => {
            let mut volume = Volume::filled(dims, IDENTITY, 0u8);
            for z in 0..3 {
                for y in 0..3 {
                    for x in 0..3 {
                        volume.set(corner[0] + x, corner[1] + y, corner[2] + z, value);
                    }
                }
            }
            Some(volume)
        }
    };
    let record = GridRecord {
        reorientation: Reorientation {
            source_dims: dims,
            source_affine: IDENTITY,
            source_axis: [0, 1, 2],
            flipped: [false; 3],
        },
        resampled_dims: dims,
        resampled_affine: IDENTITY,
        crop: CropBox {
            start: [0; 3],
            size: dims,
        },
    };
    PreprocessedSubject {
        id: id.to_string(),
        images: vec![(Modality::T1, image)],
        label,
        record,
    }
}

fn cache(name: &str, subjects: Vec<PreprocessedSubject>) -> (PathBuf, Arc<CacheReader>) {
    let dir = scratch(name);
    let ids: Vec<String> = subjects.iter().map(|s| s.id.clone()).collect();
    let options = WriteOptions {
        dtype: CacheDtype::F16,
        config: serde_json::json!({ "test": name }),
    };
    prepare_subjects(&ids, &dir, &options, |i| Ok(subjects[i].clone()), &|_| {}).unwrap();
    let reader = Arc::new(CacheReader::open(&dir).unwrap());
    (dir, reader)
}

/// A blob near a corner (uniform 8³ crops hit it about 2 % of the time), a second blob of
/// another label value, an empty label, no label, and a subject smaller than the crop on z.
fn cohort() -> Vec<PreprocessedSubject> {
    vec![
        subject("corner", [30, 28, 26], Label::Blob([24, 2, 20], 1)),
        subject("other", [25, 30, 20], Label::Blob([5, 20, 3], 3)),
        subject("empty", [20, 20, 20], Label::Empty),
        subject("missing", [20, 20, 20], Label::Missing),
        subject("thin", [20, 24, 5], Label::Blob([10, 1, 2], 2)),
    ]
}

fn config(fraction: f64) -> LoaderConfig {
    LoaderConfig {
        crop_size: CROP,
        batch_size: 2,
        flips: true,
        intensity_shift: 0.1,
        intensity_scale: 0.1,
        workers: 0,
        queue_depth: 2,
        seed: 9,
        foreground_fraction: fraction,
    }
}

#[test]
fn fraction_one_centres_every_labelled_crop_on_the_label() {
    let (dir, reader) = cache("one", cohort());
    let uniform = Sampler::new(Arc::clone(&reader), config(0.0)).unwrap();
    let sampler = Sampler::new(Arc::clone(&reader), config(1.0)).unwrap();
    let mut starts = std::collections::BTreeSet::new();
    for global in 0..200 {
        let sample = sampler.sample(global).unwrap();
        let labelled = sampler.foreground_voxels(sample.subject_index).unwrap();
        if labelled.is_empty() {
            // No label or an empty one: the uniform crop of the same stream.
            assert_eq!(sample.start, uniform.sample(global).unwrap().start);
            continue;
        }
        let label = sample.label.as_ref().unwrap();
        assert!(
            label.iter().any(|&v| v > 0),
            "{} at {:?} misses the blob",
            sample.subject_id,
            sample.start
        );
        starts.insert((sample.subject_index, sample.start));
    }
    // Different blob voxels give different (clamped) starts.
    assert!(starts.len() > 20, "{} distinct starts", starts.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fraction_zero_keeps_the_uniform_crops_of_the_sample_stream() {
    let (dir, reader) = cache("zero", cohort());
    let sampler = Sampler::new(Arc::clone(&reader), config(0.0)).unwrap();
    for global in 0..100 {
        let sample = sampler.sample(global).unwrap();
        let dims = reader.subject(sample.subject_index).unwrap().dims;
        let mut rng = Rng::stream(9 ^ SAMPLE_SALT, global);
        assert_eq!(sample.start, crop_start(dims, CROP, &mut rng));
        let flips = [rng.chance(0.5), rng.chance(0.5), rng.chance(0.5)];
        assert_eq!(sample.flipped, flips);
    }
    // An old configuration without the field reads as fraction 0.
    let old = r#"{"crop_size": [8, 8, 8], "batch_size": 2, "seed": 9}"#;
    let parsed: LoaderConfig = serde_json::from_str(old).unwrap();
    assert_eq!(parsed.foreground_fraction, 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn intermediate_fraction_hits_the_blob_at_that_rate() {
    let (dir, reader) = cache("half", vec![cohort().remove(0)]);
    let sampler = Sampler::new(reader, config(0.5)).unwrap();
    let hits = (0..600)
        .filter(|&global| {
            let sample = sampler.sample(global).unwrap();
            sample.label.unwrap().iter().any(|&v| v > 0)
        })
        .count();
    // 50 % centred on the blob plus about 2 % of the uniform half.
    assert!((260..360).contains(&hits), "{hits} of 600");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn voxel_lists_are_made_once_and_shared() {
    let (dir, reader) = cache("lists", cohort());
    let sampler = Sampler::new(reader, config(1.0)).unwrap();
    let first = sampler.foreground_voxels(0).unwrap();
    assert!(Arc::ptr_eq(
        &first,
        &sampler.clone().foreground_voxels(0).unwrap()
    ));
    assert_eq!(first.len(), 27);
    let [nx, ny] = [30usize, 28];
    for &index in first.iter() {
        let index = index as usize;
        let voxel = [index % nx, (index / nx) % ny, index / (nx * ny)];
        assert!((0..3).all(|a| (voxel[a] as isize - [25, 3, 21][a] as isize).abs() <= 1));
    }
    assert!(sampler.foreground_voxels(2).unwrap().is_empty());
    assert!(sampler.foreground_voxels(3).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batches_do_not_depend_on_the_workers() {
    let (dir, reader) = cache("workers", cohort());
    let take = |workers: usize| {
        let config = LoaderConfig {
            workers,
            ..config(0.7)
        };
        Loader::new(Arc::clone(&reader), config, 3)
            .unwrap()
            .take(8)
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    assert_eq!(take(0), take(3));
    let bad = LoaderConfig {
        foreground_fraction: 1.5,
        ..config(0.0)
    };
    let err = Sampler::new(reader, bad).unwrap_err().to_string();
    assert!(err.contains("foreground fraction"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn centring_and_clamping_rule() {
    // The voxel lands at index size / 2 when the crop fits around it.
    assert_eq!(
        crop_start_around([30, 30, 30], [8, 7, 8], [10, 10, 10]),
        [6, 7, 6]
    );
    // Clamped at both ends of a fitting axis, centred on the volume where the crop is larger.
    assert_eq!(
        crop_start_around([30, 30, 5], [8, 8, 8], [1, 29, 2]),
        [0, 22, -1]
    );
}

#[test]
fn positive_crops_hold_the_label_anywhere_not_always_at_the_centre() {
    // A blob in the middle of a large volume: no clamping, so the blob's place in the crop is
    // the random offset alone.
    let (dir, reader) = cache(
        "offsets",
        vec![subject(
            "middle",
            [40, 40, 40],
            Label::Blob([19, 19, 19], 1),
        )],
    );
    let mut no_flips = config(1.0);
    no_flips.flips = false;
    let sampler = Sampler::new(Arc::clone(&reader), no_flips).unwrap();
    let mut starts = std::collections::BTreeSet::new();
    for global in 0..200 {
        let sample = sampler.sample(global).unwrap();
        let label = sample.label.as_ref().unwrap();
        assert!(
            label.iter().any(|&v| v > 0),
            "crop {global} misses the blob"
        );
        starts.insert(sample.start);
    }
    // Centred crops would give at most 27 starts (one per blob voxel); offsets give many more.
    assert!(starts.len() > 100, "{} distinct crop starts", starts.len());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn crop_start_containing_keeps_the_voxel_inside() {
    use brainmvp_core::loader::crop_start_containing;
    assert_eq!(
        crop_start_containing([30, 30, 30], [8, 8, 8], [10, 10, 10], [0, 3, 7]),
        [10, 7, 3]
    );
    // Clamped at both ends, the voxel still inside; centred where the crop is larger.
    assert_eq!(
        crop_start_containing([30, 30, 5], [8, 8, 8], [1, 29, 2], [5, 0, 4]),
        [0, 22, -1]
    );
}
