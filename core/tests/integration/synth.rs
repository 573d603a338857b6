//! The synthetic cohort: determinism, file layout, and contrast rules measured on the written
//! files against the ground-truth segmentation and the upsampled tissue maps.

use crate::support::scratch;
use brainmvp_core::nifti;
use brainmvp_core::synth::anatomy::{CSF, GM, WM};
use brainmvp_core::synth::{
    self, load_anatomy, locate_templates, plan_cohort, subject_file, write_cohort_with, Grade,
    SharedAnatomy, SynthConfig, SynthModality, SYNTH_MODALITIES,
};
use brainmvp_core::Volume;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn templates() -> PathBuf {
    locate_templates(None).expect("ICBM152 templates in ../shared/data/mri/icbm152-2mm")
}

/// The anatomy at 2 mm (the source grid) and at the default 1 mm, built once per test binary.
fn shared(spacing_mm: f64) -> &'static SharedAnatomy {
    static TWO: OnceLock<SharedAnatomy> = OnceLock::new();
    static ONE: OnceLock<SharedAnatomy> = OnceLock::new();
    let cell = if spacing_mm == 2.0 { &TWO } else { &ONE };
    cell.get_or_init(|| SharedAnatomy::new(load_anatomy(&templates(), spacing_mm).unwrap()))
}

fn config(subjects: usize, seed: u64, spacing_mm: f64) -> SynthConfig {
    SynthConfig {
        subjects,
        seed,
        spacing_mm,
        template_dir: Some(templates().display().to_string()),
        ..SynthConfig::default()
    }
}

/// Every file under `dir` (relative path → bytes).
fn tree_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

fn write_with_threads(
    config: &SynthConfig,
    out: &Path,
    threads: usize,
) -> Vec<synth::SubjectRecord> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| write_cohort_with(config, shared(config.spacing_mm), out, |_| {}).unwrap())
}

#[test]
fn same_seed_is_byte_identical_whatever_the_threads_and_seed_matters() {
    let cfg = config(3, 11, 2.0);
    let (a, b, c) = (scratch("det-a"), scratch("det-b"), scratch("det-c"));
    write_with_threads(&cfg, &a, 1);
    write_with_threads(&cfg, &b, 3);
    write_with_threads(
        &SynthConfig {
            seed: 12,
            ..cfg.clone()
        },
        &c,
        2,
    );
    let (files_a, files_b, files_c) = (tree_bytes(&a), tree_bytes(&b), tree_bytes(&c));
    // 3 subjects × (≤ 5 images + seg) + csv + json.
    assert!(files_a.len() >= 2 + 3 * 4, "{} files", files_a.len());
    assert_eq!(
        files_a.keys().collect::<Vec<_>>(),
        files_b.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &files_a {
        assert!(
            bytes == &files_b[path],
            "{} differs between 1 and 3 threads",
            path.display()
        );
    }
    let t1 = Path::new("SynthBraTS_00000").join("SynthBraTS_00000_t2.nii.gz");
    let t1_other_seed = files_c
        .get(&t1)
        .or_else(|| files_c.values().nth(3))
        .unwrap();
    assert!(files_a.get(&t1).is_none_or(|bytes| bytes != t1_other_seed));
    let differing = files_a
        .iter()
        .filter(|(path, bytes)| {
            path.extension().is_some_and(|e| e == "gz") && files_c.get(*path) != Some(bytes)
        })
        .count();
    assert!(
        differing >= 3,
        "only {differing} image files differ with another seed"
    );
    for dir in [a, b, c] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Mean of `image` over voxels where `mask` holds.
fn masked_mean(image: &Volume<f32>, mask: impl Fn(usize) -> bool) -> (f64, usize) {
    let (mut sum, mut count) = (0.0, 0usize);
    for (i, &v) in image.data.iter().enumerate() {
        if mask(i) {
            sum += v as f64;
            count += 1;
        }
    }
    (sum / count.max(1) as f64, count)
}

struct SubjectFiles {
    images: BTreeMap<&'static str, Volume<f32>>,
    seg: Volume<f32>,
}

fn read_subject(out: &Path, id: &str, expected: &Volume<f32>) -> SubjectFiles {
    let read = |name: String| {
        let image = nifti::read_path(&out.join(id).join(name)).unwrap();
        assert_eq!(image.volume.dims, expected.dims);
        for (row, expected_row) in image.volume.affine.iter().zip(&expected.affine) {
            for (v, e) in row.iter().zip(expected_row) {
                assert!(
                    (v - e).abs() < 1e-4,
                    "affine {:?} != {:?}",
                    image.volume.affine,
                    expected.affine
                );
            }
        }
        image
    };
    let mut images = BTreeMap::new();
    for modality in SYNTH_MODALITIES {
        let path = out.join(id).join(subject_file(id, Some(modality)));
        if path.exists() {
            let image = read(subject_file(id, Some(modality)));
            assert_eq!(image.datatype, nifti::Datatype::I16, "{}", path.display());
            images.insert(modality.token(), image.volume);
        }
    }
    let seg = read(subject_file(id, None));
    assert_eq!(seg.datatype, nifti::Datatype::U8);
    SubjectFiles {
        images,
        seg: seg.volume,
    }
}

/// Contrast rules of one tumour subject, measured against the undeformed tissue maps.
fn check_contrasts(files: &SubjectFiles, tissue: &[Volume<f32>; 3], grade: Grade) {
    let [gm, wm, csf] = tissue;
    let seg = &files.seg.data;
    let healthy_wm = |i: usize| wm.data[i] > 0.9 && seg[i] == 0.0;
    let mean = |name: &str, mask: &dyn Fn(usize) -> bool| masked_mean(&files.images[name], mask);
    if files.images.contains_key("flair") {
        let (flair_csf, n_csf) = mean("flair", &|i| csf.data[i] > 0.9 && seg[i] == 0.0);
        let (flair_wm, _) = mean("flair", &healthy_wm);
        let (flair_gm, _) = mean("flair", &|i| gm.data[i] > 0.8 && seg[i] == 0.0);
        assert!(
            n_csf > 100 && flair_csf < 0.5 * flair_wm,
            "FLAIR CSF {flair_csf} vs WM {flair_wm}"
        );
        assert!(
            flair_wm < flair_gm,
            "FLAIR WM {flair_wm} should be below GM {flair_gm}"
        );
    }
    let label = |value: f32| move |i: usize| seg[i] == value;
    if files.images.contains_key("t2") {
        let (t2_oedema, n_oedema) = mean("t2", &label(2.0));
        let (t2_wm, _) = mean("t2", &healthy_wm);
        assert!(
            n_oedema > 0 && t2_oedema > 1.2 * t2_wm,
            "T2 oedema {t2_oedema} vs WM {t2_wm}"
        );
    }
    if grade != Grade::Hgg {
        return;
    }
    if let (true, true) = (
        files.images.contains_key("t1ce"),
        files.images.contains_key("t1"),
    ) {
        let (t1ce_rim, _) = mean("t1ce", &label(4.0));
        let (t1ce_wm, _) = mean("t1ce", &healthy_wm);
        let (t1_rim, _) = mean("t1", &label(4.0));
        let (t1_wm, _) = mean("t1", &healthy_wm);
        assert!(
            t1ce_rim > 1.2 * t1ce_wm,
            "T1ce rim {t1ce_rim} vs WM {t1ce_wm}"
        );
        assert!(
            t1ce_rim / t1ce_wm > 1.2 * (t1_rim / t1_wm),
            "rim enhances on T1 too: {t1_rim}/{t1_wm}"
        );
    }
    if files.images.contains_key("t1") {
        let (t1_necrosis, _) = mean("t1", &label(1.0));
        let (t1_wm, _) = mean("t1", &healthy_wm);
        assert!(
            t1_necrosis < 0.8 * t1_wm,
            "T1 necrosis {t1_necrosis} vs WM {t1_wm}"
        );
    }
}

/// Labels ⊆ {0,1,2,4}, the grade's label set, tumour inside the (undeformed) head.
fn check_labels(
    seg: &Volume<f32>,
    tissue: &[Volume<f32>; 3],
    grade: Grade,
    record: &synth::SubjectRecord,
) {
    let mut counts = [0usize; 5];
    let mut outside = 0usize;
    for (i, &label) in seg.data.iter().enumerate() {
        assert!([0.0, 1.0, 2.0, 4.0].contains(&label), "label {label}");
        counts[label as usize] += 1;
        let head = tissue[0].data[i] + tissue[1].data[i] + tissue[2].data[i];
        if label != 0.0 && head < 0.2 {
            outside += 1;
        }
    }
    let lesion = counts[1] + counts[2] + counts[4];
    assert!(
        outside * 100 <= lesion,
        "{outside} of {lesion} lesion voxels outside the head"
    );
    assert_eq!(
        [counts[1], counts[2], counts[4]],
        [
            record.counts.necrosis,
            record.counts.oedema,
            record.counts.enhancing
        ]
    );
    match grade {
        Grade::None => assert_eq!(lesion, 0),
        Grade::Lgg => assert!(
            counts[2] > 0 && counts[1] == 0 && counts[4] == 0,
            "{counts:?}"
        ),
        Grade::Hgg => assert!(
            counts[1] > 0 && counts[2] > 0 && counts[4] > 0,
            "{counts:?}"
        ),
    }
}

fn tissue_maps(shared: &SharedAnatomy) -> [Volume<f32>; 3] {
    [GM, WM, CSF].map(|c| shared.anatomy.channel(c))
}

#[test]
fn cohort_files_labels_and_contrasts_at_two_mm() {
    let cfg = SynthConfig {
        no_tumour_fraction: 0.2,
        low_grade_fraction: 0.25,
        missing_modality_fraction: 0.2,
        ..config(5, 3, 2.0)
    };
    let out = scratch("rules-2mm");
    let records = write_with_threads(&cfg, &out, 2);
    let grades: Vec<Grade> = records.iter().map(|r| r.grade).collect();
    assert_eq!(grades.iter().filter(|&&g| g == Grade::None).count(), 1);
    assert_eq!(grades.iter().filter(|&&g| g == Grade::Lgg).count(), 1);
    assert_eq!(grades.iter().filter(|&&g| g == Grade::Hgg).count(), 3);
    let shared = shared(2.0);
    let tissue = tissue_maps(shared);
    let reference = shared.anatomy.channel(WM);
    for record in &records {
        let files = read_subject(&out, &record.id, &reference);
        check_labels(&files.seg, &tissue, record.grade, record);
        if record.grade != Grade::None {
            check_contrasts(&files, &tissue, record.grade);
        }
    }
    check_csv(&out, &records);
    std::fs::remove_dir_all(out).unwrap();
}

/// `subjects.csv` lists every subject, and exactly the recorded modalities are missing on disk.
fn check_csv(out: &Path, records: &[synth::SubjectRecord]) {
    let csv = std::fs::read_to_string(out.join("subjects.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,grade,necrosis_voxels,oedema_voxels,enhancing_voxels,missing_modalities"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), records.len());
    for (row, record) in rows.iter().zip(records) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[0], record.id);
        assert_eq!(fields[1], record.grade.name());
        let missing: Vec<&str> = fields[5].split(';').filter(|t| !t.is_empty()).collect();
        assert!(missing.len() <= 2);
        for modality in SYNTH_MODALITIES {
            let present = out
                .join(&record.id)
                .join(subject_file(&record.id, Some(modality)))
                .exists();
            assert_eq!(
                present,
                !missing.contains(&modality.token()),
                "{} {}",
                record.id,
                modality.token()
            );
        }
        assert!(out
            .join(&record.id)
            .join(subject_file(&record.id, None))
            .exists());
    }
    let saved: SynthConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("synth_config.json")).unwrap())
            .unwrap();
    assert_eq!(saved.subjects, records.len());
}

#[test]
fn every_subject_lacks_one_or_two_modalities_when_asked() {
    let cfg = SynthConfig {
        missing_modality_fraction: 1.0,
        ..config(8, 5, 2.0)
    };
    let plans = plan_cohort(&cfg);
    assert!(plans.iter().all(|p| (1..=2).contains(&p.missing.len())));
    let out = scratch("missing");
    let records = write_with_threads(&cfg, &out, 2);
    check_csv(&out, &records);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn default_one_mm_subject_has_the_mni_grid_and_the_contrasts() {
    let cfg = SynthConfig {
        no_tumour_fraction: 0.0,
        low_grade_fraction: 0.0,
        missing_modality_fraction: 0.0,
        ..config(1, 7, 1.0)
    };
    assert_eq!(cfg.spacing_mm, SynthConfig::default().spacing_mm);
    let out = scratch("one-mm");
    let records = write_with_threads(&cfg, &out, 2);
    let shared = shared(1.0);
    let reference = shared.anatomy.channel(WM);
    assert_eq!(reference.dims, [181, 217, 181]);
    // LAS 1 mm with the source origin (2 mm grid: 91 × 109 × 91).
    let source = nifti::read_path(&templates().join("avg152T1.nii.gz"))
        .unwrap()
        .volume;
    assert_eq!(nifti::orientation_code(&reference.affine), "LAS");
    for row in 0..3 {
        for col in 0..3 {
            assert!((reference.affine[row][col] - source.affine[row][col] / 2.0).abs() < 1e-6);
        }
        assert!((reference.affine[row][3] - source.affine[row][3]).abs() < 1e-6);
    }
    let files = read_subject(&out, &records[0].id, &reference);
    assert_eq!(files.images.len(), 5);
    let tissue = tissue_maps(shared);
    check_labels(&files.seg, &tissue, Grade::Hgg, &records[0]);
    check_contrasts(&files, &tissue, Grade::Hgg);
    // Skull-stripped as BraTS (the default): far outside the brain every image is exactly 0.
    let far_outside = |i: usize| tissue[0].data[i] + tissue[1].data[i] + tissue[2].data[i] < 0.01;
    for (name, image) in &files.images {
        let (outside, zero) = (0..image.data.len())
            .filter(|&i| far_outside(i))
            .fold((0usize, 0usize), |(n, z), i| {
                (n + 1, z + (image.data[i] == 0.0) as usize)
            });
        assert!(
            outside > 1000 && zero as f64 > 0.99 * outside as f64,
            "{name}: {zero} of {outside} voxels outside the brain are 0"
        );
    }
    // Outside the head: at most the noise floor (well below white matter).
    let t1 = &files.images["t1"];
    let (background, n) = masked_mean(t1, |i| {
        tissue[0].data[i] + tissue[1].data[i] + tissue[2].data[i] < 0.01
            && shared.anatomy.voxels[i][0] < 0.02
    });
    let (white, _) = masked_mean(t1, |i| tissue[1].data[i] > 0.9 && files.seg.data[i] == 0.0);
    assert!(
        n > 1000 && background < 0.1 * white,
        "background {background} vs WM {white}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn plan_counts_are_exact_and_config_is_validated() {
    let cfg = SynthConfig {
        no_tumour_fraction: 0.25,
        low_grade_fraction: 0.5,
        missing_modality_fraction: 0.5,
        ..config(20, 1, 2.0)
    };
    let plans = plan_cohort(&cfg);
    let count = |g: Grade| plans.iter().filter(|p| p.grade == g).count();
    assert_eq!(
        (count(Grade::None), count(Grade::Lgg), count(Grade::Hgg)),
        (5, 8, 7)
    );
    assert_eq!(plans.iter().filter(|p| !p.missing.is_empty()).count(), 10);
    assert_eq!(plans[7].id, "SynthBraTS_00007");
    assert_eq!(plan_cohort(&cfg), plans);
    assert!(SynthConfig {
        no_tumour_fraction: 1.5,
        ..cfg.clone()
    }
    .validate()
    .is_err());
    assert!(SynthConfig {
        spacing_mm: 0.0,
        ..cfg.clone()
    }
    .validate()
    .is_err());
    assert!(SynthConfig::default().validate().is_ok());
    let _ = SynthModality::Pd;
}

#[test]
fn locate_templates_checks_the_folder_and_says_where_it_looked() {
    let bogus = scratch("no-templates");
    std::fs::create_dir_all(&bogus).unwrap();
    let err = locate_templates(Some(&bogus)).unwrap_err().to_string();
    assert!(
        err.contains("avg152T1.nii.gz") && err.contains(&*bogus.display().to_string()),
        "{err}"
    );
    assert_eq!(locate_templates(Some(&templates())).unwrap(), templates());
    std::fs::remove_dir_all(bogus).unwrap();
}

/// Mean lesion / healthy-WM intensity minus 1 of `label` in `modality` (the lesion's excess
/// contrast), over the whole subject.
fn lesion_excess(
    files: &SubjectFiles,
    tissue: &[Volume<f32>; 3],
    modality: &str,
    label: f32,
) -> f64 {
    let seg = &files.seg.data;
    let (lesion, count) = masked_mean(&files.images[modality], |i| seg[i] == label);
    let (wm, _) = masked_mean(&files.images[modality], |i| {
        tissue[1].data[i] > 0.9 && seg[i] == 0.0
    });
    assert!(count > 0, "no voxel of label {label}");
    lesion / wm - 1.0
}

#[test]
fn secondary_contrast_fades_each_lesion_outside_its_key_modality_only() {
    let cohort = |secondary_contrast: f64, name: &str| {
        let cfg = SynthConfig {
            no_tumour_fraction: 0.0,
            low_grade_fraction: 0.0,
            missing_modality_fraction: 0.0,
            secondary_contrast,
            ..config(1, 11, 2.0)
        };
        let out = scratch(name);
        let records = write_with_threads(&cfg, &out, 2);
        let files = read_subject(&out, &records[0].id, &shared(2.0).anatomy.channel(WM));
        std::fs::remove_dir_all(out).unwrap();
        files
    };
    let usual = cohort(1.0, "contrast-usual");
    let subtle = cohort(0.2, "contrast-subtle");
    assert_eq!(
        usual.seg.data, subtle.seg.data,
        "same subjects, same labels"
    );
    let tissue = tissue_maps(shared(2.0));
    // (modality, label, is it the label's key modality)
    let cases = [
        ("flair", 2.0, true),
        ("t2", 2.0, false),
        ("t1ce", 4.0, true),
        ("t1", 4.0, false),
        ("flair", 4.0, false),
        ("t2", 1.0, true),
        ("t1", 1.0, false),
    ];
    for (modality, label, key) in cases {
        let before = lesion_excess(&usual, &tissue, modality, label);
        let after = lesion_excess(&subtle, &tissue, modality, label);
        if key {
            assert!(
                (after - before).abs() < 0.05 * before.abs() + 0.01,
                "{modality} label {label}: key contrast {before:.3} became {after:.3}"
            );
        } else {
            assert!(
                after.abs() < 0.4 * before.abs() + 0.02,
                "{modality} label {label}: contrast {before:.3} should fade, got {after:.3}"
            );
        }
    }
    let invalid = SynthConfig {
        secondary_contrast: 1.5,
        ..config(1, 0, 2.0)
    };
    assert!(invalid
        .validate()
        .unwrap_err()
        .to_string()
        .contains("secondary_contrast"));
}
