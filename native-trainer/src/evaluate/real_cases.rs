//! `brainmvp evaluate --model MODEL --cases DIR`: one command that segments real tumour patients
//! with a model and scores the label maps against each case's reference (Dice and HD95 (MONAI)
//! per region WT/TC/ET, see [`super::score_case`]), timing each segmentation; optionally the
//! tumour volume the model labels in healthy brains (false positives).
//!
//! A case is a sub-folder of DIR holding a `reference/` folder with at least one NIfTI label map
//! and, beside it, one image of each of FLAIR, T1, T1c and T2, recognised by name as `brainmvp`
//! recognises cohort files (`<id>-t1c.nii.gz`, `<id>_t1_bet.nii.gz`, ...; BraTS-Toolkit's `fla`
//! is FLAIR). The reference is the first of [`PREFERRED_REFERENCES`] present, else the
//! alphabetically first map. Each reference is read in its own convention: a map holding 4 and no
//! 3 is BraTS 2021 (4 = enhancing), else BraTS 2023 (3 = enhancing); the prediction is read in the
//! reference's (see [`super::in_truth_convention`]). A reference without an enhancing label scores
//! no ET ("—", left out of the mean). The references of `../shared/data/real` are algorithm
//! outputs, not expert ground truth: the figure is "Dice against the reference".

use super::{
    csv_field, distinct_values, file_name, in_truth_convention, nifti_files, read_label_map,
    score_case,
};
use crate::model_folder::{load_segmenter, LoadedSegmenter};
use brainmvp_core::cohort::naming::{parse_file_name, FileRole};
use brainmvp_core::inference::segment::InferenceOptions;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::metrics::detect_enhancing_label;
use brainmvp_core::metrics::RegionScores;
use brainmvp_core::{Error, Modality, Result, Volume};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The folder of a case that holds its reference label maps.
pub const REFERENCE_FOLDER: &str = "reference";
/// Reference names (file stems) chosen first, in this order: the fusion of BraTS-Toolkit's
/// algorithms, the BraTS 2023 model's map, the AURORA metastasis model's map.
pub const PREFERRED_REFERENCES: [&str; 3] = ["mav", "BraTS23_1", "aurora-t1c"];
/// The modalities every case must have.
pub const CASE_MODALITIES: [Modality; 4] =
    [Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];
/// Name of the per-case table written by [`RealCaseReport::write`].
pub const REAL_CASES_CSV: &str = "real_cases.csv";
/// Name of the summary written by [`RealCaseReport::write`].
pub const REAL_CASES_MARKDOWN: &str = "real_cases.md";
/// The regions of the report, in column order.
pub const REGIONS: [&str; 3] = ["WT", "TC", "ET"];

/// Healthy brains of the shared MRI folder (`../shared/data/mri`): name and images, paths
/// relative to that folder.
const DEFAULT_HEALTHY: [(&str, &[(Modality, &str)]); 2] = [
    (
        "ICBM152",
        &[
            (Modality::T1, "icbm152-2mm/avg152T1.nii.gz"),
            (Modality::T2, "icbm152-2mm/avg152T2.nii.gz"),
        ],
    ),
    ("Colin27", &[(Modality::T1, "colin27/ch2bet.nii.gz")]),
];

/// One real patient: its images and the reference label map it is scored against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealCase {
    /// The case folder's name.
    pub id: String,
    /// The case folder.
    pub dir: PathBuf,
    /// One image per modality, in [`CASE_MODALITIES`] order.
    pub images: Vec<(Modality, PathBuf)>,
    /// The chosen reference label map.
    pub reference: PathBuf,
    /// The stems of every reference map of the case, sorted.
    pub references: Vec<String>,
}

impl RealCase {
    /// The chosen reference's name (its file stem).
    pub fn reference_name(&self) -> String {
        reference_stem(&self.reference)
    }

    /// `<id>: reference <name> (of a, b, c)`.
    pub fn describe(&self) -> String {
        format!(
            "{}: reference {} (of {})",
            self.id,
            self.reference_name(),
            self.references.join(", ")
        )
    }
}

/// A brain without tumour: name and images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthyCase {
    pub name: String,
    pub images: Vec<(Modality, PathBuf)>,
}

/// Scores of one case: per region of [`REGIONS`], `None` when the reference has no such region.
#[derive(Debug, Clone, PartialEq)]
pub struct RealCaseRow {
    pub id: String,
    /// The reference's name (file stem).
    pub reference: String,
    pub scores: [Option<RegionScores>; 3],
    /// Predicted volume (ml) of each region of [`REGIONS`], in the reference's convention.
    pub predicted_ml: [f64; 3],
    /// Wall-clock seconds of the segmentation (reading the images, inference, writing; the model
    /// is loaded once per report, before).
    pub seconds: f64,
}

/// The tumour a model labels in a healthy brain.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthyRow {
    pub name: String,
    /// `t1 avg152T1.nii.gz, t2 ...`.
    pub images: String,
    /// Millilitres of each non-zero label, in label order.
    pub label_ml: Vec<(u8, f64)>,
    pub seconds: f64,
}

impl HealthyRow {
    /// Millilitres of all non-zero labels.
    pub fn tumour_ml(&self) -> f64 {
        // A fold from +0: an empty f64 sum is -0.0, printed "-0.00".
        self.label_ml.iter().fold(0.0, |total, (_, ml)| total + ml)
    }
}

/// Per-case scores, the healthy brains and how the segmentations were made.
#[derive(Debug, Clone, PartialEq)]
pub struct RealCaseReport {
    /// The model, as given.
    pub model: String,
    pub options: InferenceOptions,
    pub cases: Vec<RealCaseRow>,
    pub healthy: Vec<HealthyRow>,
}

/// The real cases under `dir` (see the module docs), sorted by id; `dir` itself is the one case
/// when it holds a `reference/` folder. Errors, one line naming the folder: `dir` is not a
/// folder or holds no case; a case lacks one of [`CASE_MODALITIES`] or has two images of one.
pub fn discover_real_cases(dir: &Path) -> Result<Vec<RealCase>> {
    if !dir.is_dir() {
        return Err(Error::new(dir.display().to_string(), "not a folder"));
    }
    let folders = match dir.join(REFERENCE_FOLDER).is_dir() {
        true => vec![dir.to_path_buf()],
        false => sub_folders(dir)?,
    };
    let mut cases = Vec::new();
    for folder in folders {
        let references = reference_maps(&folder)?;
        if let Some(index) = choose_reference(&references) {
            cases.push(case_of(&folder, references, index)?);
        }
    }
    if cases.is_empty() {
        return Err(Error::new(
            dir.display().to_string(),
            "no case found: no sub-folder holds a reference/ folder with a .nii or .nii.gz label map",
        ));
    }
    Ok(cases)
}

/// The visible sub-folders of `dir`, sorted.
fn sub_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    super::visible_entries(dir, Path::is_dir)
}

/// The NIfTI files of `<case>/reference/` (none when there is no such folder).
fn reference_maps(case_dir: &Path) -> Result<Vec<PathBuf>> {
    let folder = case_dir.join(REFERENCE_FOLDER);
    match folder.is_dir() {
        true => nifti_files(&folder),
        false => Ok(Vec::new()),
    }
}

/// The case of `folder` with its reference `references[chosen]`.
fn case_of(folder: &Path, references: Vec<PathBuf>, chosen: usize) -> Result<RealCase> {
    let id = file_name(folder).unwrap_or_default().to_string();
    Ok(RealCase {
        images: case_images(folder)?,
        reference: references[chosen].clone(),
        references: references.iter().map(|p| reference_stem(p)).collect(),
        dir: folder.to_path_buf(),
        id,
    })
}

/// A file name without its `.nii` / `.nii.gz` extension.
fn reference_stem(path: &Path) -> String {
    let name = file_name(path).unwrap_or_default();
    brainmvp_core::cohort::naming::nifti_stem(name)
        .unwrap_or(name)
        .to_string()
}

/// Index of the reference to score against: the first of [`PREFERRED_REFERENCES`] present (by
/// stem, case-insensitive), else the alphabetically first; `None` when there is none.
pub fn choose_reference(references: &[PathBuf]) -> Option<usize> {
    let stems: Vec<String> = references.iter().map(|p| reference_stem(p)).collect();
    let preferred = PREFERRED_REFERENCES.iter().find_map(|wanted| {
        stems
            .iter()
            .position(|stem| stem.eq_ignore_ascii_case(wanted))
    });
    preferred.or_else(|| {
        (0..stems.len()).min_by(|&a, &b| {
            stems[a]
                .cmp(&stems[b])
                .then(references[a].cmp(&references[b]))
        })
    })
}

/// The modality a case file's name says: the project's file-name rules, then BraTS-Toolkit's
/// `fla` (FLAIR) as a token of its own (`TCGA-DU-7294_fla_bet.nii.gz`). `None` for label maps
/// and unrecognised names.
pub fn modality_of_file_name(name: &str) -> Option<Modality> {
    if let Some(parsed) = parse_file_name(name) {
        return match parsed.role {
            FileRole::Image(modality) => Some(modality),
            FileRole::Label => None,
        };
    }
    let stem = brainmvp_core::cohort::naming::nifti_stem(name)?;
    stem.split(['_', '-', '.', '+', ' '])
        .any(|token| token.eq_ignore_ascii_case("fla"))
        .then_some(Modality::Flair)
}

/// One image per modality of [`CASE_MODALITIES`] directly in `folder`; an error naming the folder
/// when one is missing or given twice.
fn case_images(folder: &Path) -> Result<Vec<(Modality, PathBuf)>> {
    let context = || folder.display().to_string();
    let mut found: Vec<(Modality, PathBuf)> = Vec::new();
    for path in nifti_files(folder)? {
        let Some(modality) = file_name(&path).and_then(modality_of_file_name) else {
            continue;
        };
        if let Some((_, previous)) = found.iter().find(|(m, _)| *m == modality) {
            let cause = format!(
                "two {modality} images: {} and {}",
                file_name(previous).unwrap_or_default(),
                file_name(&path).unwrap_or_default()
            );
            return Err(Error::new(context(), cause));
        }
        found.push((modality, path));
    }
    let missing: Vec<&str> = CASE_MODALITIES
        .iter()
        .filter(|m| !found.iter().any(|(f, _)| f == *m))
        .map(|m| m.name())
        .collect();
    if !missing.is_empty() {
        let cause = format!(
            "no {} image (a case needs flair, t1, t1c and t2 images named like <id>-t2f.nii.gz, <id>_flair.nii.gz or <id>_fla_bet.nii.gz)",
            missing.join(", ")
        );
        return Err(Error::new(context(), cause));
    }
    found.retain(|(m, _)| CASE_MODALITIES.contains(m));
    found.sort_by_key(|(m, _)| *m);
    Ok(found)
}

/// The healthy brains of the shared MRI folder `dir` (ICBM152 T1 + T2, Colin27 T1) that are
/// present; an error naming `dir` when none is.
pub fn healthy_cases(dir: &Path) -> Result<Vec<HealthyCase>> {
    let cases: Vec<HealthyCase> = DEFAULT_HEALTHY
        .iter()
        .map(|(name, images)| HealthyCase {
            name: name.to_string(),
            images: images.iter().map(|(m, rel)| (*m, dir.join(rel))).collect(),
        })
        .filter(|case| case.images.iter().all(|(_, path)| path.is_file()))
        .collect();
    if cases.is_empty() {
        let expected: Vec<&str> = DEFAULT_HEALTHY
            .iter()
            .flat_map(|(_, images)| images.iter().map(|(_, rel)| *rel))
            .collect();
        return Err(Error::new(
            dir.display().to_string(),
            format!("no healthy brain found (expected {})", expected.join(", ")),
        ));
    }
    Ok(cases)
}

/// Segments every case with the model `model` (a model folder or `.bmvp` file) into
/// `<out_dir>/<id>_seg.nii.gz`, timing each, and scores it against its reference (printing the
/// reference chosen); the report has no healthy brains (see [`measure_healthy_brains`]).
pub fn evaluate_real_cases<B: burn::tensor::backend::Backend>(
    model: &Path,
    cases: &[RealCase],
    options: &InferenceOptions,
    out_dir: &Path,
    device: &B::Device,
) -> anyhow::Result<RealCaseReport> {
    std::fs::create_dir_all(out_dir).map_err(|err| Error::io(out_dir.display(), err))?;
    let loaded = load_segmenter::<B>(model, device)?;
    let mut rows = Vec::with_capacity(cases.len());
    for case in cases {
        println!("== {}", case.describe());
        let prediction = out_dir.join(format!("{}_seg.nii.gz", case.id));
        let seconds = timed_segmentation(&loaded, &case.images, &prediction, options, device)?;
        let (scores, predicted_ml) = score_real_case(&case.id, &prediction, &case.reference)?;
        rows.push(RealCaseRow {
            id: case.id.clone(),
            reference: case.reference_name(),
            scores,
            predicted_ml,
            seconds,
        });
    }
    Ok(RealCaseReport {
        model: model.display().to_string(),
        options: options.clone(),
        cases: rows,
        healthy: Vec::new(),
    })
}

/// Segments the healthy brains with the model `model` into
/// `<out_dir>/healthy-<name>_seg.nii.gz` and measures every label they hold.
pub fn measure_healthy_brains<B: burn::tensor::backend::Backend>(
    model: &Path,
    brains: &[HealthyCase],
    options: &InferenceOptions,
    out_dir: &Path,
    device: &B::Device,
) -> anyhow::Result<Vec<HealthyRow>> {
    std::fs::create_dir_all(out_dir).map_err(|err| Error::io(out_dir.display(), err))?;
    let loaded = load_segmenter::<B>(model, device)?;
    let mut rows = Vec::with_capacity(brains.len());
    for brain in brains {
        println!(
            "== healthy {}: {}",
            brain.name,
            describe_images(&brain.images)
        );
        let name = brain.name.to_ascii_lowercase();
        let prediction = out_dir.join(format!("healthy-{name}_seg.nii.gz"));
        let seconds = timed_segmentation(&loaded, &brain.images, &prediction, options, device)?;
        rows.push(HealthyRow {
            name: brain.name.clone(),
            images: describe_images(&brain.images),
            label_ml: label_ml(&read_label_map(&prediction)?),
            seconds,
        });
    }
    Ok(rows)
}

/// Runs [`crate::segment::segment_loaded`] (the model loaded once per report); returns its
/// wall-clock seconds.
fn timed_segmentation<B: burn::tensor::backend::Backend>(
    model: &LoadedSegmenter<B>,
    images: &[(Modality, PathBuf)],
    out: &Path,
    options: &InferenceOptions,
    device: &B::Device,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    crate::segment::segment_loaded(model, images, out, options, device)?;
    Ok(started.elapsed().as_secs_f64())
}

/// `t1 avg152T1.nii.gz, t2 avg152T2.nii.gz`.
fn describe_images(images: &[(Modality, PathBuf)]) -> String {
    images
        .iter()
        .map(|(m, path)| format!("{m} {}", file_name(path).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Millilitres of every non-zero label of a map, in label order.
fn label_ml(labels: &Volume<u8>) -> Vec<(u8, f64)> {
    let voxel_ml = labels.spacing().iter().product::<f64>() / 1000.0;
    let mut counts = [0usize; 256];
    labels.data.iter().for_each(|&v| counts[v as usize] += 1);
    (1..=255u8)
        .filter(|&v| counts[v as usize] > 0)
        .map(|v| (v, counts[v as usize] as f64 * voxel_ml))
        .collect()
}

/// Dice and HD95 (MONAI) of the prediction at `prediction` against the reference at `reference`
/// per region of [`REGIONS`] (`None` for ET when the reference has no enhancing label), and the
/// predicted volume of each region.
pub fn score_real_case(
    id: &str,
    prediction: &Path,
    reference: &Path,
) -> Result<([Option<RegionScores>; 3], [f64; 3])> {
    let truth = read_label_map(reference)?;
    let truth_values = distinct_values(&truth.data);
    if let Some(&value) = truth_values.iter().find(|&&v| v > 4) {
        let cause = format!("holds label {value}; a BraTS reference holds labels 0 to 4");
        return Err(Error::new(reference.display().to_string(), cause));
    }
    let predicted = read_label_map(prediction)?;
    // The reference's convention; without an enhancing label it reads the same in both, so the
    // prediction's own is kept (no relabelling).
    let enhancing_label = detect_enhancing_label(&truth_values)
        .or_else(|| detect_enhancing_label(&distinct_values(&predicted.data)))
        .unwrap_or(3);
    let scheme = LabelScheme::Brats { enhancing_label };
    let predicted = in_truth_convention(&scheme, prediction, predicted)?;
    let case = score_case(&scheme, id, &predicted, &truth)?;
    let names = scheme.region_names();
    let has_enhancing = truth_values.contains(&enhancing_label);
    let scores = REGIONS.map(|region| {
        let index = names.iter().position(|name| name == region)?;
        (region != "ET" || has_enhancing).then(|| case.scores[index])
    });
    Ok((scores, region_ml(&predicted, enhancing_label)))
}

/// Millilitres of WT (any label), TC (1 and the enhancing label) and ET of a label map.
fn region_ml(labels: &Volume<u8>, enhancing_label: u8) -> [f64; 3] {
    let voxel_ml = labels.spacing().iter().product::<f64>() / 1000.0;
    let mut voxels = [0usize; 3];
    for &value in &labels.data {
        voxels[0] += usize::from(value != 0);
        voxels[1] += usize::from(value == 1 || value == enhancing_label);
        voxels[2] += usize::from(value == enhancing_label);
    }
    voxels.map(|count| count as f64 * voxel_ml)
}

impl RealCaseReport {
    /// Mean Dice of region `region` (index into [`REGIONS`]) over the cases that score it, and
    /// their number (`None` when none does).
    pub fn mean_dice(&self, region: usize) -> (Option<f64>, usize) {
        let values: Vec<f64> = self
            .cases
            .iter()
            .filter_map(|case| case.scores[region].map(|s| s.dice))
            .collect();
        let mean = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        (mean, values.len())
    }

    /// Mean seconds per case segmentation (0 without cases).
    pub fn mean_seconds(&self) -> f64 {
        let total: f64 = self.cases.iter().map(|case| case.seconds).sum();
        total / self.cases.len().max(1) as f64
    }

    /// `mirroring on, post-processing 0.1 ml + core holes` (how the label maps were made).
    pub fn settings(&self) -> String {
        let mirror = match self.options.mirror {
            true => "test-time mirroring on",
            false => "test-time mirroring off",
        };
        let post = &self.options.postprocess;
        let clean = match post.is_active() {
            true => format!(
                "post-processing on (components < {} ml removed{}{})",
                post.min_component_ml,
                if post.fill_core_holes {
                    ", core holes filled"
                } else {
                    ""
                },
                if post.keep_largest {
                    ", largest kept"
                } else {
                    ""
                }
            ),
            false => "post-processing off".to_string(),
        };
        format!("{mirror}, {clean}")
    }

    /// The Dice table (case | reference | WT | TC | ET | seconds, then the means), the HD95
    /// table and, when measured, the healthy brains.
    pub fn to_markdown(&self) -> String {
        let mut text = format!(
            "Dice against the reference label maps (algorithm outputs, not expert ground truth) of {} real cases; model `{}`, {}. ET \"—\": the reference has no enhancing label (not scored, not in the mean).\n\n",
            self.cases.len(),
            self.model,
            self.settings()
        );
        text.push_str("| case | reference | WT | TC | ET | seconds |\n|---|---|---|---|---|---|\n");
        for case in &self.cases {
            let cells = case
                .scores
                .map(|s| s.map_or("—".to_string(), |s| format!("{:.3}", s.dice)));
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {} | {:.1} |",
                case.id, case.reference, cells[0], cells[1], cells[2], case.seconds
            );
        }
        let means = [0, 1, 2].map(|region| match self.mean_dice(region) {
            (Some(mean), n) if n < self.cases.len() => format!("{mean:.3} (of {n})"),
            (Some(mean), _) => format!("{mean:.3}"),
            (None, _) => "—".to_string(),
        });
        let _ = writeln!(
            text,
            "| mean | | {} | {} | {} | {:.1} |",
            means[0],
            means[1],
            means[2],
            self.mean_seconds()
        );
        text.push_str(&self.hd95_markdown());
        text.push_str(&self.healthy_markdown());
        text
    }

    /// HD95 (MONAI) per case and region (mm; "undefined" when a mask is empty).
    fn hd95_markdown(&self) -> String {
        let mut text =
            String::from("\nHD95 (MONAI) in mm:\n\n| case | WT | TC | ET |\n|---|---|---|---|\n");
        for case in &self.cases {
            let cells = case.scores.map(|s| match s {
                None => "—".to_string(),
                Some(s) => s
                    .hd95
                    .map_or("undefined".to_string(), |d| format!("{d:.1}")),
            });
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} |",
                case.id, cells[0], cells[1], cells[2]
            );
        }
        text
    }

    /// The tumour labelled in healthy brains (empty when none was measured).
    fn healthy_markdown(&self) -> String {
        if self.healthy.is_empty() {
            return String::new();
        }
        let mut text = String::from(
            "\nHealthy brains (no tumour): every labelled voxel is a false positive.\n\n| healthy brain | images | tumour labelled (ml) | per label (ml) | seconds |\n|---|---|---|---|---|\n",
        );
        for row in &self.healthy {
            let labels: Vec<String> = row
                .label_ml
                .iter()
                .map(|(label, ml)| format!("{label}: {ml:.2}"))
                .collect();
            let labels = match labels.is_empty() {
                true => "—".to_string(),
                false => labels.join(", "),
            };
            let _ = writeln!(
                text,
                "| {} | {} | {:.2} | {labels} | {:.1} |",
                row.name,
                row.images,
                row.tumour_ml(),
                row.seconds
            );
        }
        text
    }

    /// `case,reference,region,dice,hd95_monai,predicted_ml,seconds`: one row per case and region
    /// (dice `not_scored` where the reference has no such region, HD95 `undefined` where it is),
    /// then one `WT` row per healthy brain (reference `healthy`, its false-positive volume).
    /// Numbers in full precision.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from("case,reference,region,dice,hd95_monai,predicted_ml,seconds\n");
        for case in &self.cases {
            for (index, region) in REGIONS.iter().enumerate() {
                let (dice, hd95) = match case.scores[index] {
                    None => ("not_scored".to_string(), String::new()),
                    Some(s) => (
                        s.dice.to_string(),
                        s.hd95.map_or("undefined".to_string(), |d| d.to_string()),
                    ),
                };
                let _ = writeln!(
                    csv,
                    "{},{},{region},{dice},{hd95},{},{}",
                    csv_field(&case.id),
                    csv_field(&case.reference),
                    case.predicted_ml[index],
                    case.seconds
                );
            }
        }
        for row in &self.healthy {
            let _ = writeln!(
                csv,
                "{},healthy,WT,,,{},{}",
                csv_field(&row.name),
                row.tumour_ml(),
                row.seconds
            );
        }
        csv
    }

    /// Writes [`REAL_CASES_CSV`] and [`REAL_CASES_MARKDOWN`] into `out_dir` (created if needed),
    /// each atomically; returns their paths.
    pub fn write(&self, out_dir: &Path) -> Result<(PathBuf, PathBuf)> {
        super::write_reports(
            out_dir,
            (REAL_CASES_CSV, &self.to_csv()),
            (REAL_CASES_MARKDOWN, &self.to_markdown()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|name| PathBuf::from("reference").join(name))
            .collect()
    }

    fn chosen(names: &[&str]) -> String {
        let references = paths(names);
        reference_stem(&references[choose_reference(&references).unwrap()])
    }

    #[test]
    fn the_reference_is_the_fusion_then_the_brats_2023_map_then_aurora_then_the_first() {
        let tcga = [
            "hnfnetv1-20.nii.gz",
            "isen-20.nii.gz",
            "mav.nii.gz",
            "sanet0-20.nii.gz",
            "simple.nii.gz",
        ];
        assert_eq!(chosen(&tcga), "mav");
        assert_eq!(chosen(&["isen.nii.gz", "BraTS23_1.nii.gz"]), "BraTS23_1");
        assert_eq!(chosen(&["aurora-t1c.nii.gz"]), "aurora-t1c");
        assert_eq!(chosen(&["BraTS23_1.nii", "mav.nii.gz"]), "mav");
        assert_eq!(
            chosen(&["aurora-t1c.nii.gz", "brats23_1.nii.gz"]),
            "brats23_1"
        );
        assert_eq!(
            chosen(&["zeta.nii.gz", "alpha.nii", "beta.nii.gz"]),
            "alpha"
        );
        assert_eq!(choose_reference(&[]), None);
    }

    #[test]
    fn case_files_are_recognised_by_the_project_rules_and_brats_toolkit_names() {
        let cases = [
            ("BraTS-GLI-00001-000-t2f.nii.gz", Some(Modality::Flair)),
            ("BraTS-GLI-00001-000-t1n.nii.gz", Some(Modality::T1)),
            ("BraTS-GLI-00001-000-t1c.nii.gz", Some(Modality::T1c)),
            ("BraTS-GLI-00001-000-t2w.nii.gz", Some(Modality::T2)),
            ("TCGA-DU-7294_fla_bet.nii.gz", Some(Modality::Flair)),
            ("TCGA-DU-7294_t1_bet.nii.gz", Some(Modality::T1)),
            ("TCGA-DU-7294_t1c_bet.nii.gz", Some(Modality::T1c)),
            ("TCGA-DU-7294_t2_bet.nii.gz", Some(Modality::T2)),
            ("BraTS2021_00000_seg.nii.gz", None),
            ("notes.txt", None),
            ("flat.nii.gz", None),
        ];
        for (name, expected) in cases {
            assert_eq!(modality_of_file_name(name), expected, "{name}");
        }
    }

    #[test]
    fn the_markdown_leaves_an_unscored_region_out_of_the_mean() {
        let score = |dice| {
            Some(RegionScores {
                dice,
                hd95: Some(2.0),
            })
        };
        let row = |id: &str, et| RealCaseRow {
            id: id.to_string(),
            reference: "mav".to_string(),
            scores: [score(0.6), score(0.2), et],
            predicted_ml: [1.0, 0.5, 0.25],
            seconds: 2.0,
        };
        let report = RealCaseReport {
            model: "m.bmvp".to_string(),
            options: InferenceOptions::default(),
            cases: vec![row("a", score(0.5)), row("b", None)],
            healthy: Vec::new(),
        };
        let table = report.to_markdown();
        assert!(
            table.contains("| b | mav | 0.600 | 0.200 | — | 2.0 |"),
            "{table}"
        );
        assert!(
            table.contains("| mean | | 0.600 | 0.200 | 0.500 (of 1) | 2.0 |"),
            "{table}"
        );
        assert!(report.to_csv().contains("b,mav,ET,not_scored,,0.25,2\n"));
    }
}
