//! The cache and the loader on subjects built in the test: crops against the full volumes, manifest,
//! corruption, resume, loader determinism, flips, intensity, crop coverage, tensors.

use crate::support::scratch;
use brainmvp_core::cache::{
    prepare_subjects, CacheDtype, CacheReader, Manifest, PrepareProgress, SubjectOutcome,
    WriteOptions, CACHE_MANIFEST_FILE,
};
use brainmvp_core::loader::{flip_in_place, Loader, LoaderConfig, Sampler};
use brainmvp_core::nifti::Reorientation;
use brainmvp_core::preprocess::{CropBox, GridRecord, PreprocessedSubject};
use brainmvp_core::volume::IDENTITY;
use brainmvp_core::{Error, Modality, Volume};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Image values: multiples of 1/64 (exact in f16), different per modality and subject.
fn image_value(x: usize, y: usize, z: usize, seed: usize) -> f32 {
    ((x * 7 + y * 13 + z * 29 + seed * 5) % 65) as f32 / 64.0
}

/// A subject with `modalities`, images from [`image_value`], label = 1 where the first image > 0.5.
fn subject(
    id: &str,
    dims: [usize; 3],
    modalities: &[Modality],
    seed: usize,
) -> PreprocessedSubject {
    let affine = [
        [1.0, 0.0, 0.0, -10.0],
        [0.0, 1.0, 0.0, -20.0],
        [0.0, 0.0, 1.0, 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let volume_of = |offset: usize| {
        let mut volume = Volume::filled(dims, affine, 0.0f32);
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    volume.set(x, y, z, image_value(x, y, z, seed + offset));
                }
            }
        }
        volume
    };
    let images: Vec<(Modality, Volume<f32>)> = modalities
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, volume_of(i * 11)))
        .collect();
    let label = images
        .first()
        .map(|(_, v)| v.map(|value| u8::from(value > 0.5)));
    let crop = CropBox {
        start: [3, 4, 5],
        size: dims,
    };
    let record = GridRecord {
        reorientation: Reorientation {
            source_dims: [dims[0] + 6, dims[1] + 8, dims[2] + 10],
            source_affine: IDENTITY,
            source_axis: [0, 1, 2],
            flipped: [false, true, false],
        },
        resampled_dims: [dims[0] + 6, dims[1] + 8, dims[2] + 10],
        resampled_affine: IDENTITY,
        crop,
    };
    PreprocessedSubject {
        id: id.to_string(),
        images,
        label,
        record,
    }
}

fn cohort() -> Vec<PreprocessedSubject> {
    vec![
        subject(
            "s01",
            [23, 17, 11],
            &[Modality::Flair, Modality::T1, Modality::T2],
            0,
        ),
        subject("s02", [20, 19, 13], &[Modality::Flair, Modality::T1], 3),
        subject(
            "s03",
            [9, 30, 16],
            &[Modality::Flair, Modality::T1, Modality::T2],
            7,
        ),
    ]
}

fn options(dtype: CacheDtype) -> WriteOptions {
    WriteOptions {
        dtype,
        config: serde_json::json!({ "dtype": dtype, "note": "test" }),
    }
}

fn ids(subjects: &[PreprocessedSubject]) -> Vec<String> {
    subjects.iter().map(|s| s.id.clone()).collect()
}

fn prepare(dir: &Path, subjects: &[PreprocessedSubject], dtype: CacheDtype) -> Manifest {
    prepare_subjects(
        &ids(subjects),
        dir,
        &options(dtype),
        |i| Ok(subjects[i].clone()),
        &|_| {},
    )
    .unwrap()
}

/// The crop of `volume` by per-voxel indexing, 0 outside, each value passed through `round`.
fn reference_crop<T: Copy + Default>(
    volume: &Volume<T>,
    start: [isize; 3],
    size: [usize; 3],
    round: impl Fn(T) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(size.iter().product());
    for z in 0..size[2] as isize {
        for y in 0..size[1] as isize {
            for x in 0..size[0] as isize {
                let p = [start[0] + x, start[1] + y, start[2] + z];
                let inside = (0..3).all(|a| p[a] >= 0 && p[a] < volume.dims[a] as isize);
                out.push(match inside {
                    true => round(volume.get(p[0] as usize, p[1] as usize, p[2] as usize)),
                    false => T::default(),
                });
            }
        }
    }
    out
}

/// Values that are not exact in f16, to check the rounding of the cache exactly.
fn rough_subject() -> PreprocessedSubject {
    let mut rough = subject("rough", [15, 12, 10], &[Modality::T1, Modality::Pd], 1);
    for (_, volume) in &mut rough.images {
        for (i, v) in volume.data.iter_mut().enumerate() {
            *v = ((i as f32) * 0.618_034).fract() * 1.3 - 0.1;
        }
    }
    rough
}

#[test]
fn cache_crops_equal_crops_of_the_full_volume_in_both_dtypes() {
    for dtype in [CacheDtype::F16, CacheDtype::F32] {
        let dir = scratch(&format!("crops-{dtype:?}"));
        let subjects = vec![rough_subject()];
        prepare(&dir, &subjects, dtype);
        let reader = CacheReader::open(&dir).unwrap();
        let source = &subjects[0];
        let starts = [
            [0, 0, 0],
            [-3, 2, 1],
            [10, 9, 8],
            [-20, -20, -20],
            [14, 11, 9],
            [-2, -1, -4],
            [5, -3, 7],
        ];
        let sizes = [[4, 4, 4], [8, 6, 5], [20, 16, 14], [1, 12, 1]];
        for start in starts {
            for size in sizes {
                for (modality, volume) in &source.images {
                    let crop = reader.read_crop(0, *modality, start, size).unwrap();
                    let expected = reference_crop(volume, start, size, |v| dtype.round(v));
                    assert_eq!(
                        crop, expected,
                        "{dtype:?} {modality} start {start:?} size {size:?}"
                    );
                }
                let label = reader.read_label_crop(0, start, size).unwrap();
                let expected = reference_crop(source.label.as_ref().unwrap(), start, size, |v| v);
                assert_eq!(label, expected, "label start {start:?} size {size:?}");
            }
        }
        let whole = reader.read_volume(0, Modality::Pd).unwrap();
        let expected = source.images[1].1.map(|v| dtype.round(v));
        assert_eq!(whole, expected);
        // f16 rounding really happened (the values are not exact in f16).
        assert_eq!(dtype == CacheDtype::F16, whole != source.images[1].1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn manifest_round_trip_and_contents() {
    let dir = scratch("manifest");
    let mut subjects = cohort();
    subjects[1].label = None;
    let manifest = prepare(&dir, &subjects, CacheDtype::F16);
    let loaded = Manifest::load(&dir).unwrap();
    assert_eq!(loaded, manifest);
    let reader = CacheReader::open(&dir).unwrap();
    assert_eq!(reader.manifest(), &manifest);

    assert_eq!(
        manifest.modalities,
        vec![Modality::Flair, Modality::T1, Modality::T2]
    );
    assert_eq!(manifest.config["note"], "test");
    assert_eq!(manifest.config["dtype"], "f16");
    for (entry, source) in manifest.subjects.iter().zip(&subjects) {
        assert_eq!(entry.id, source.id);
        assert_eq!(entry.dims, source.images[0].1.dims);
        assert_eq!(entry.affine, source.images[0].1.affine);
        assert_eq!(entry.spacing, [1.0; 3]);
        assert_eq!(entry.crop, source.record.crop);
        assert_eq!(entry.record, source.record);
        assert_eq!(entry.dtype, CacheDtype::F16);
        assert_eq!(entry.label.is_some(), source.label.is_some());
        let present: Vec<Modality> = source.images.iter().map(|(m, _)| *m).collect();
        assert_eq!(entry.modalities(), present);
    }
    assert_eq!(manifest.subjects[1].missing, vec![Modality::T2]);
    assert!(manifest.subjects[0].missing.is_empty());
    assert_eq!(manifest.subjects[0].images[&Modality::T1], "s01_t1.f16");
    let voxels = 23 * 17 * 11;
    let size = std::fs::metadata(dir.join("s01_t1.f16")).unwrap().len();
    assert_eq!(size, voxels as u64 * 2);
    let err = reader.read_label_crop(1, [0; 3], [2; 3]).unwrap_err();
    assert!(
        err.to_string().contains("s02") && err.to_string().contains("no label map"),
        "{err}"
    );
    let err = reader
        .read_crop(1, Modality::T2, [0; 3], [2; 3])
        .unwrap_err();
    assert!(err.to_string().contains("no t2 image"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn open_error(dir: &Path) -> Error {
    CacheReader::open(dir).unwrap_err()
}

#[test]
fn damaged_caches_give_errors_naming_the_file() {
    let dir = scratch("damaged");
    prepare(&dir, &cohort(), CacheDtype::F16);
    let file = dir.join("s02_t1.f16");
    let bytes = std::fs::read(&file).unwrap();

    std::fs::write(&file, &bytes[..bytes.len() - 2]).unwrap();
    let err = open_error(&dir);
    assert_eq!(err.context, file.display().to_string());
    assert!(err.cause.contains("expected"), "{err}");

    std::fs::remove_file(&file).unwrap();
    let err = open_error(&dir);
    assert_eq!(err.context, file.display().to_string(), "{err}");

    // Shortened after opening: the first map notices, no panic.
    std::fs::write(&file, &bytes).unwrap();
    let reader = CacheReader::open(&dir).unwrap();
    std::fs::write(&file, &bytes[..100]).unwrap();
    let err = reader
        .read_crop(1, Modality::T1, [0; 3], [4; 3])
        .unwrap_err();
    assert_eq!(err.context, file.display().to_string(), "{err}");
    std::fs::write(&file, &bytes).unwrap();

    let manifest_path = dir.join(CACHE_MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, &text[..text.len() / 2]).unwrap();
    let err = open_error(&dir);
    assert_eq!(err.context, manifest_path.display().to_string());
    std::fs::write(
        &manifest_path,
        text.replace("\"version\": 1", "\"version\": 99"),
    )
    .unwrap();
    assert!(open_error(&dir).cause.contains("version 99"));
    std::fs::remove_file(&manifest_path).unwrap();
    assert_eq!(
        open_error(&dir).context,
        manifest_path.display().to_string()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Prepare with a preprocess that counts its calls and can fail for chosen subjects.
fn prepare_counting(
    dir: &Path,
    subjects: &[PreprocessedSubject],
    opts: &WriteOptions,
    fail: &[&str],
) -> (Result<Manifest, Error>, Vec<String>, Vec<PrepareProgress>) {
    let called = Mutex::new(Vec::new());
    let events = Mutex::new(Vec::new());
    let result = prepare_subjects(
        &ids(subjects),
        dir,
        opts,
        |i| {
            called.lock().unwrap().push(subjects[i].id.clone());
            match fail.contains(&subjects[i].id.as_str()) {
                true => Err(Error::new(
                    format!("{}/t1.nii.gz", subjects[i].id),
                    "truncated",
                )),
                false => Ok(subjects[i].clone()),
            }
        },
        &|event| events.lock().unwrap().push(event),
    );
    let mut called = called.into_inner().unwrap();
    called.sort();
    (result, called, events.into_inner().unwrap())
}

#[test]
fn resume_after_a_killed_run_redoes_only_incomplete_subjects() {
    let dir = scratch("resume");
    let subjects = cohort();
    let opts = options(CacheDtype::F16);
    let (first, called, _) = prepare_counting(&dir, &subjects, &opts, &[]);
    let first = first.unwrap();
    assert_eq!(called, ids(&subjects));
    let original = std::fs::read(dir.join("s02_flair.f16")).unwrap();

    // Simulated kill: no manifest yet, one volume of s02 missing, a half-written temp file.
    std::fs::remove_file(dir.join(CACHE_MANIFEST_FILE)).unwrap();
    std::fs::remove_file(dir.join("s02_flair.f16")).unwrap();
    std::fs::write(dir.join("s03_t2.f16.tmp"), b"partial").unwrap();
    assert!(CacheReader::open(&dir).is_err());
    let (second, called, events) = prepare_counting(&dir, &subjects, &opts, &[]);
    assert_eq!(second.unwrap(), first);
    assert_eq!(called, vec!["s02".to_string()]);
    assert_eq!(events.len(), 3);
    for event in &events {
        let expected = if event.subject_id == "s02" {
            SubjectOutcome::Written
        } else {
            SubjectOutcome::Skipped
        };
        assert_eq!(event.outcome, expected);
        assert_eq!(event.total, 3);
    }
    assert!(!dir.join("s03_t2.f16.tmp").exists());
    assert_eq!(std::fs::read(dir.join("s02_flair.f16")).unwrap(), original);

    // A truncated file (size check) and a record without its volume are redone too.
    std::fs::write(dir.join("s01_t2.f16"), b"xx").unwrap();
    let (_, called, _) = prepare_counting(&dir, &subjects, &opts, &[]);
    assert_eq!(called, vec!["s01".to_string()]);
    CacheReader::open(&dir).unwrap();

    // Another configuration redoes everything.
    let (_, called, _) = prepare_counting(&dir, &subjects, &options(CacheDtype::F32), &[]);
    assert_eq!(called, ids(&subjects));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_subjects_are_left_out_unless_all_fail() {
    let dir = scratch("failures");
    let subjects = cohort();
    let opts = options(CacheDtype::F16);
    let (result, _, events) = prepare_counting(&dir, &subjects, &opts, &["s02"]);
    let manifest = result.unwrap();
    let kept: Vec<&str> = manifest.subjects.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(kept, vec!["s01", "s03"]);
    assert_eq!(manifest.failures.len(), 1);
    assert_eq!(manifest.failures[0].id, "s02");
    assert_eq!(manifest.failures[0].error, "s02/t1.nii.gz: truncated");
    assert!(events
        .iter()
        .any(|e| e.outcome == SubjectOutcome::Failed("s02/t1.nii.gz: truncated".into())));
    assert_eq!(CacheReader::open(&dir).unwrap().len(), 2);

    let dir_all = scratch("failures-all");
    let (result, _, _) = prepare_counting(&dir_all, &subjects, &opts, &["s01", "s02", "s03"]);
    let err = result.unwrap_err();
    assert!(err.cause.starts_with("all 3 subjects failed"), "{err}");
    assert!(!dir_all.join(CACHE_MANIFEST_FILE).exists());

    // Subjects whose grids disagree are failures, not panics.
    let mut broken = cohort();
    broken[0].label.as_mut().unwrap().dims = [1, 2, 3];
    let ids_broken = ids(&broken);
    let manifest = prepare_subjects(
        &ids_broken,
        &dir_all,
        &opts,
        |i| Ok(broken[i].clone()),
        &|_| {},
    )
    .unwrap();
    assert_eq!(manifest.failures[0].id, "s01");
    assert!(
        manifest.failures[0].error.contains("label grid"),
        "{}",
        manifest.failures[0].error
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir_all).unwrap();
}

fn shared_cache(name: &str) -> (PathBuf, Arc<CacheReader>) {
    let dir = scratch(name);
    prepare(&dir, &cohort(), CacheDtype::F16);
    let reader = Arc::new(CacheReader::open(&dir).unwrap());
    (dir, reader)
}

fn config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        crop_size: [12, 10, 8],
        batch_size: 2,
        flips: true,
        intensity_shift: 0.1,
        intensity_scale: 0.1,
        workers,
        queue_depth: 3,
        seed: 42,
        foreground_fraction: 0.0,
    }
}

fn batches(
    reader: &Arc<CacheReader>,
    config: LoaderConfig,
    start: u64,
    count: usize,
) -> Vec<brainmvp_core::loader::Batch> {
    let loader = Loader::new(Arc::clone(reader), config, start).unwrap();
    loader.take(count).map(|b| b.unwrap()).collect()
}

#[test]
fn loader_is_deterministic_across_worker_counts_and_resumes() {
    let (dir, reader) = shared_cache("determinism");
    let reference = batches(&reader, config(0), 0, 9);
    for workers in [1, 2, 3] {
        assert_eq!(
            batches(&reader, config(workers), 0, 9),
            reference,
            "{workers} workers"
        );
    }
    assert_eq!(batches(&reader, config(2), 4, 5), reference[4..].to_vec());
    let steps: Vec<u64> = reference.iter().map(|b| b.step).collect();
    assert_eq!(steps, (0..9).collect::<Vec<_>>());
    let other_seed = LoaderConfig {
        seed: 43,
        ..config(2)
    };
    assert_ne!(batches(&reader, other_seed, 0, 9), reference);
    // Each epoch (3 consecutive samples) visits every subject once.
    let visits: Vec<usize> = reference
        .iter()
        .flat_map(|b| b.samples.iter().map(|s| s.subject_index))
        .collect();
    for epoch in visits.chunks(3) {
        let mut sorted = epoch.to_vec();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2]);
    }
    // Dropping a loader mid-stream with full queues returns (workers stop).
    let mut loader = Loader::new(Arc::clone(&reader), config(3), 0).unwrap();
    loader.next().unwrap().unwrap();
    drop(loader);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn strided_ranks_together_see_each_batch_of_one_loader_once() {
    let (dir, reader) = shared_cache("strided");
    let reference = batches(&reader, config(0), 0, 12);
    let ranks = 3u64;
    for workers in [0, 2] {
        for rank in 0..ranks {
            // Rank `rank` resumes at its second batch: global step 1·P + rank.
            let loader =
                Loader::strided(Arc::clone(&reader), config(workers), ranks + rank, ranks).unwrap();
            let got: Vec<_> = loader.take(3).map(|b| b.unwrap()).collect();
            let expected: Vec<_> = (1..4)
                .map(|k| reference[(k * ranks + rank) as usize].clone())
                .collect();
            assert_eq!(got, expected, "rank {rank}, {workers} workers");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flips_are_the_same_for_all_modalities_and_the_label() {
    let (dir, reader) = shared_cache("flips");
    let plain = LoaderConfig {
        intensity_shift: 0.0,
        intensity_scale: 0.0,
        ..config(0)
    };
    let sampler = Sampler::new(Arc::clone(&reader), plain.clone()).unwrap();
    let mut seen = [[0usize; 2]; 3];
    for global in 0..200 {
        let sample = sampler.sample(global).unwrap();
        let label = sample.label.as_ref().unwrap();
        let first = &sample.images[0].1;
        // The label is the threshold of the first modality, wherever the crop went.
        let thresholded: Vec<u8> = first.iter().map(|&v| u8::from(v > 0.5)).collect();
        assert_eq!(label, &thresholded, "sample {global}");
        // Every modality is the unflipped crop at the same start, flipped the same way.
        for (modality, crop) in &sample.images {
            let mut expected = reader
                .read_crop(
                    sample.subject_index,
                    *modality,
                    sample.start,
                    plain.crop_size,
                )
                .unwrap();
            flip_in_place(&mut expected, plain.crop_size, sample.flipped);
            assert_eq!(crop, &expected, "sample {global} {modality}");
        }
        for axis in 0..3 {
            seen[axis][usize::from(sample.flipped[axis])] += 1;
        }
    }
    for counts in seen {
        assert!(counts[0] > 60 && counts[1] > 60, "flip counts {counts:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn intensity_shift_and_scale_are_per_modality_affine_maps_within_bounds() {
    let (dir, reader) = shared_cache("intensity");
    let plain = Sampler::new(
        Arc::clone(&reader),
        LoaderConfig {
            intensity_shift: 0.0,
            intensity_scale: 0.0,
            ..config(0)
        },
    )
    .unwrap();
    let augmented = Sampler::new(Arc::clone(&reader), config(0)).unwrap();
    let mut factors = Vec::new();
    for global in 0..30 {
        let (a, b) = (
            plain.sample(global).unwrap(),
            augmented.sample(global).unwrap(),
        );
        assert_eq!(
            (a.start, a.flipped, &a.label),
            (b.start, b.flipped, &b.label)
        );
        for ((_, base), (_, changed)) in a.images.iter().zip(&b.images) {
            // Fit changed = base * factor + offset from the extreme voxels, then check every voxel.
            let (low, high) = extremes(base);
            let factor = (changed[high] - changed[low]) / (base[high] - base[low]);
            let offset = changed[low] - base[low] * factor;
            assert!(
                (factor - 1.0).abs() <= 0.1 + 1e-5 && offset.abs() <= 0.1 + 1e-5,
                "{factor} {offset}"
            );
            for (x, y) in base.iter().zip(changed) {
                assert!((x * factor + offset - y).abs() < 1e-5);
            }
            factors.push(factor);
        }
    }
    factors.sort_by(f32::total_cmp);
    factors.dedup();
    assert!(
        factors.len() > 50,
        "factors are drawn per modality and sample"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn extremes(values: &[f32]) -> (usize, usize) {
    let low = (0..values.len())
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap();
    let high = (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap();
    (low, high)
}

#[test]
fn crop_starts_cover_the_volume_and_small_axes_are_centred() {
    let dir = scratch("coverage");
    let subjects = vec![subject("only", [40, 30, 20], &[Modality::T1], 0)];
    prepare(&dir, &subjects, CacheDtype::F16);
    let reader = Arc::new(CacheReader::open(&dir).unwrap());
    let crop = LoaderConfig {
        crop_size: [8, 30, 25],
        ..config(0)
    };
    let sampler = Sampler::new(reader, crop).unwrap();
    let mut hits = [0usize; 33];
    for global in 0..3000 {
        let start = sampler.sample(global).unwrap().start;
        assert_eq!(
            &start[1..],
            &[0, -2],
            "y fits exactly, z is padded 2 before and 3 after"
        );
        hits[start[0] as usize] += 1;
    }
    // Uniform over the 33 valid x starts: each about 91 times, both ends included.
    assert!(hits.iter().all(|&h| h > 40 && h < 160), "{hits:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batch_tensor_is_n_c_z_y_x() {
    use burn::backend::Flex;
    type B = Flex;
    let (dir, reader) = shared_cache("tensor");
    let batch = batches(&reader, config(0), 0, 1).remove(0);
    let device = Default::default();
    let tensor = batch.to_tensor::<B>(Modality::T1, &device).unwrap();
    let [x, y, z] = batch.crop_size;
    assert_eq!(tensor.dims(), [2, 1, z, y, x]);
    let values = tensor.into_data().to_vec::<f32>().unwrap();
    for (n, sample) in batch.samples.iter().enumerate() {
        let crop = sample.image(Modality::T1).unwrap();
        for (k, j, i) in [(0, 0, 0), (z - 1, 2, 5), (3, y - 1, x - 1)] {
            let at = (((n * z + k) * y + j) * x) + i;
            assert_eq!(values[at], crop[i + x * (j + y * k)]);
        }
    }
    let labels = batch.label_tensor::<B>(&device).unwrap();
    assert_eq!(labels.dims(), [2, 1, z, y, x]);
    let label_sum: i64 = batch
        .samples
        .iter()
        .flat_map(|s| s.label.as_ref().unwrap())
        .map(|&v| v as i64)
        .sum();
    assert_eq!(labels.sum().into_scalar() as i64, label_sum);
    // A modality missing from one sample gives no tensor (s02 has no T2; some batch holds it).
    let all = batches(&reader, config(0), 0, 3);
    let with_s02 = all
        .iter()
        .find(|b| b.samples.iter().any(|s| s.subject_id == "s02"))
        .unwrap();
    assert!(with_s02.to_tensor::<B>(Modality::T2, &device).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn progress_counts_every_subject() {
    let dir = scratch("progress");
    let subjects = cohort();
    let count = AtomicUsize::new(0);
    let max_done = AtomicUsize::new(0);
    prepare_subjects(
        &ids(&subjects),
        &dir,
        &options(CacheDtype::F16),
        |i| Ok(subjects[i].clone()),
        &|p| {
            count.fetch_add(1, Ordering::SeqCst);
            max_done.fetch_max(p.done, Ordering::SeqCst);
        },
    )
    .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(max_done.load(Ordering::SeqCst), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A BraTS-2021-named cohort of NIfTI files written here, prepared through discovery and
/// preprocessing, read back: every crop equals the same crop of the preprocessed volume (f16-rounded).
#[test]
fn end_to_end_prepare_of_a_nifti_cohort() {
    use brainmvp_core::cache::{prepare_cohort, PrepareConfig};
    use brainmvp_core::cohort::discover;
    use brainmvp_core::nifti;
    use brainmvp_core::preprocess::preprocess_subject;

    let root = scratch("e2e-data");
    let out = scratch("e2e-cache");
    // 1.5 mm voxels (so resampling runs), a bright box inside a dark background (so the crop runs).
    let affine = [
        [1.5, 0.0, 0.0, -12.0],
        [0.0, 1.5, 0.0, -9.0],
        [0.0, 0.0, 1.5, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let dims = [16, 14, 12];
    for (n, id) in ["BraTS2021_00001", "BraTS2021_00002"].iter().enumerate() {
        let folder = root.join(id);
        std::fs::create_dir_all(&folder).unwrap();
        for (k, token) in ["t1", "t1ce", "t2", "flair"].iter().enumerate() {
            if n == 1 && *token == "t2" {
                continue; // a missing modality
            }
            let mut volume = Volume::filled(dims, affine, 0.0f32);
            for z in 3..10 {
                for y in 2..12 {
                    for x in 4..13 {
                        volume.set(x, y, z, 100.0 + (x * 3 + y * 5 + z * 7 + k * 11 + n) as f32);
                    }
                }
            }
            nifti::write_f32(&folder.join(format!("{id}_{token}.nii.gz")), &volume).unwrap();
        }
        let mut seg = Volume::filled(dims, affine, 0u8);
        seg.set(8, 7, 6, 4);
        seg.set(9, 7, 6, 2);
        nifti::write_u8(&folder.join(format!("{id}_seg.nii.gz")), &seg).unwrap();
    }
    let cohort = discover(&root).unwrap();
    let config = PrepareConfig::default();
    let manifest = prepare_cohort(&cohort, &out, &config, &|_| {}).unwrap();
    assert_eq!(manifest.subjects.len(), 2);
    assert!(manifest.failures.is_empty());
    assert_eq!(manifest.subjects[1].missing, vec![Modality::T2]);
    assert_eq!(manifest.prepare_config().unwrap(), config);
    let reader = CacheReader::open(&out).unwrap();
    for (index, files) in cohort.subjects.iter().enumerate() {
        let reference = preprocess_subject(files, &config.preprocess).unwrap();
        let entry = reader.subject(index).unwrap();
        assert_eq!(entry.id, reference.id);
        assert_eq!(entry.record, reference.record);
        let dims = entry.dims;
        let starts = [
            [0, 0, 0],
            [-4, -3, -2],
            [dims[0] as isize - 3, 1, dims[2] as isize - 2],
        ];
        for (modality, volume) in &reference.images {
            assert_eq!(volume.dims, dims);
            for start in starts {
                let crop = reader
                    .read_crop(index, *modality, start, [7, 6, 5])
                    .unwrap();
                assert_eq!(
                    crop,
                    reference_crop(volume, start, [7, 6, 5], |v| CacheDtype::F16.round(v))
                );
            }
        }
        let label = reference.label.as_ref().unwrap();
        assert_eq!(&reader.read_label_volume(index).unwrap(), label);
        assert!(label.data.iter().any(|&v| v > 0));
    }
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}
