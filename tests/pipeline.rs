//! Cross-module: a synthetic cohort written as NIfTI, discovered, preprocessed into the cache and
//! read back must keep its ground truth: every tumour voxel survives the crop, and the cached
//! label map put back into the subject's own grid is the written segmentation, voxel for voxel.

use brainmvp_core::cache::{prepare_cohort, CacheReader, PrepareConfig};
use brainmvp_core::cohort::discover;
use brainmvp_core::nifti;
use brainmvp_core::synth::{write_cohort, SynthConfig};
use brainmvp_core::Modality;
use brainmvp_tests::shared_mri;

#[test]
fn synthetic_ground_truth_survives_preprocessing_and_restores_exactly() {
    let dir = std::env::temp_dir().join(format!("brainmvp-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (cohort_dir, cache_dir) = (dir.join("cohort"), dir.join("cache"));
    let config = SynthConfig {
        subjects: 2,
        seed: 3,
        no_tumour_fraction: 0.0,
        missing_modality_fraction: 0.0,
        low_grade_fraction: 0.0,
        template_dir: Some(shared_mri().join("icbm152-2mm").display().to_string()),
        ..SynthConfig::default()
    };
    let records = write_cohort(&config, &cohort_dir, |_| {}).unwrap();
    let cohort = discover(&cohort_dir).unwrap();
    assert_eq!(cohort.subjects.len(), 2);
    assert_eq!(
        cohort.modalities(),
        [
            Modality::Flair,
            Modality::T1,
            Modality::T1c,
            Modality::T2,
            Modality::Pd
        ]
    );
    let manifest = prepare_cohort(&cohort, &cache_dir, &PrepareConfig::default(), &|_| {}).unwrap();
    assert!(manifest.failures.is_empty());
    let reader = CacheReader::open(&cache_dir).unwrap();

    for (index, record) in records.iter().enumerate() {
        let entry = reader.subject(index).unwrap();
        assert_eq!(entry.id, record.id);
        // Skull-stripped input: the symmetric foreground crop really crops (1 mm, 181×217×181).
        assert!(entry
            .dims
            .iter()
            .zip([181, 217, 181])
            .all(|(&d, full)| d < full));
        let cached = reader.read_label_volume(index).unwrap();
        let count = |label: u8| cached.data.iter().filter(|&&v| v == label).count();
        assert_eq!(count(1), record.counts.necrosis, "{}", record.id);
        assert_eq!(count(2), record.counts.oedema, "{}", record.id);
        assert_eq!(count(4), record.counts.enhancing, "{}", record.id);
        assert!(record.counts.enhancing > 0 && record.counts.necrosis > 0);

        let seg_path = cohort.subjects[index].label.clone().unwrap();
        let written = nifti::read_path(&seg_path).unwrap().volume;
        let restored = entry.record.restore(&cached).unwrap();
        assert_eq!(restored.dims, written.dims);
        for (row, written_row) in restored.affine.iter().zip(&written.affine) {
            for (a, b) in row.iter().zip(written_row) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{:?} vs {:?}",
                    restored.affine,
                    written.affine
                );
            }
        }
        let differing = restored
            .data
            .iter()
            .zip(&written.data)
            .filter(|(&a, &b)| a as f32 != b)
            .count();
        assert_eq!(differing, 0, "{}: {differing} voxels differ", record.id);

        // Every cached image is scaled to [0, 1] with the 5th/95th percentiles at 0 and 1.
        for modality in entry.modalities() {
            let image = reader.read_volume(index, modality).unwrap();
            let (min, max) = image
                .data
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!(min >= 0.0 && max <= 1.0, "{modality}: [{min}, {max}]");
            let ones = image.data.iter().filter(|&&v| v >= 0.999).count();
            let share = ones as f64 / image.data.len() as f64;
            assert!(
                (0.03..0.08).contains(&share),
                "{modality}: {share} at the top"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
