//! A per-subject summary of a prepared cache: modalities, grid, and the volume of every label,
//! read from the cached label maps (works for any cohort, synthetic or real).

use super::CacheReader;
use crate::{Modality, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One subject of the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectSummary {
    pub id: String,
    pub modalities: Vec<Modality>,
    pub missing: Vec<Modality>,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    /// Millilitres per non-zero label value (empty when the subject has no label map or an
    /// all-zero one); `None` when there is no label map at all.
    pub label_ml: Option<BTreeMap<u8, f64>>,
}

/// The whole cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheSummary {
    pub subjects: Vec<SubjectSummary>,
    /// Every label value seen in any subject (the table's columns).
    pub labels: Vec<u8>,
    pub bytes_on_disk: u64,
}

/// Summarise every subject of `reader` (reads each label map once).
pub fn summarize(reader: &CacheReader) -> Result<CacheSummary> {
    let mut subjects = Vec::with_capacity(reader.len());
    for index in 0..reader.len() {
        let entry = reader.subject(index)?;
        let voxel_ml = entry.spacing.iter().product::<f64>() / 1000.0;
        let label_ml = match entry.label {
            Some(_) => Some(label_ml(&reader.read_label_volume(index)?.data, voxel_ml)),
            None => None,
        };
        subjects.push(SubjectSummary {
            id: entry.id.clone(),
            modalities: entry.modalities(),
            missing: entry.missing.clone(),
            dims: entry.dims,
            spacing_mm: entry.spacing,
            label_ml,
        });
    }
    let mut labels: Vec<u8> = subjects
        .iter()
        .filter_map(|s| s.label_ml.as_ref())
        .flat_map(|volumes| volumes.keys().copied())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    Ok(CacheSummary {
        subjects,
        labels,
        bytes_on_disk: reader.bytes_on_disk(),
    })
}

/// Millilitres per non-zero label value.
fn label_ml(labels: &[u8], voxel_ml: f64) -> BTreeMap<u8, f64> {
    let mut counts = [0usize; 256];
    for &label in labels {
        counts[label as usize] += 1;
    }
    (1..=255u8)
        .filter(|&label| counts[label as usize] > 0)
        .map(|label| (label, counts[label as usize] as f64 * voxel_ml))
        .collect()
}

impl CacheSummary {
    /// A markdown table: one row per subject, one column per label (ml), then the totals.
    pub fn to_markdown(&self) -> String {
        let mut table = String::from("| subject | modalities | missing | grid (1 mm voxels) |");
        for label in &self.labels {
            let _ = write!(table, " label {label} (ml) |");
        }
        table.push_str("\n|---|---|---|---|");
        table.push_str(&"---:|".repeat(self.labels.len()));
        table.push('\n');
        for subject in &self.subjects {
            let [x, y, z] = subject.dims;
            let _ = write!(
                table,
                "| {} | {} | {} | {x}×{y}×{z} |",
                subject.id,
                names(&subject.modalities),
                names(&subject.missing)
            );
            for label in &self.labels {
                let cell = match &subject.label_ml {
                    Some(volumes) => format!("{:.1}", volumes.get(label).copied().unwrap_or(0.0)),
                    None => "n/a".to_string(),
                };
                let _ = write!(table, " {cell} |");
            }
            table.push('\n');
        }
        let with_labels = self.subjects.iter().filter(|s| s.label_ml.is_some());
        let lesioned = with_labels
            .filter(|s| s.label_ml.as_ref().is_some_and(|v| !v.is_empty()))
            .count();
        let _ = writeln!(
            table,
            "\n{} subjects, {lesioned} with a non-empty label map, {:.1} MB on disk",
            self.subjects.len(),
            self.bytes_on_disk as f64 / 1e6
        );
        table
    }
}

fn names(modalities: &[Modality]) -> String {
    if modalities.is_empty() {
        return "-".to_string();
    }
    let names: Vec<&str> = modalities.iter().map(|m| m.name()).collect();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_volumes_count_each_value_in_ml() {
        // 2 mm voxels hold 0.008 ml each.
        let labels = [0u8, 1, 1, 4, 4, 4, 0, 2];
        let volumes = label_ml(&labels, 0.008);
        assert_eq!(volumes.keys().copied().collect::<Vec<_>>(), [1, 2, 4]);
        assert!((volumes[&1] - 0.016).abs() < 1e-12);
        assert!((volumes[&2] - 0.008).abs() < 1e-12);
        assert!((volumes[&4] - 0.024).abs() < 1e-12);
    }

    #[test]
    fn markdown_has_a_column_per_label_and_marks_missing_label_maps() {
        let summary = CacheSummary {
            subjects: vec![
                SubjectSummary {
                    id: "a".into(),
                    modalities: vec![Modality::T1, Modality::T2],
                    missing: vec![Modality::Flair],
                    dims: [2, 3, 4],
                    spacing_mm: [1.0; 3],
                    label_ml: Some(BTreeMap::from([(1, 1.5), (4, 0.25)])),
                },
                SubjectSummary {
                    id: "b".into(),
                    modalities: vec![Modality::Flair],
                    missing: vec![],
                    dims: [2, 3, 4],
                    spacing_mm: [1.0; 3],
                    label_ml: None,
                },
            ],
            labels: vec![1, 4],
            bytes_on_disk: 2_000_000,
        };
        let table = summary.to_markdown();
        assert!(
            table.contains("| a | t1 t2 | flair | 2×3×4 | 1.5 | 0.2 |"),
            "{table}"
        );
        assert!(
            table.contains("| b | flair | - | 2×3×4 | n/a | n/a |"),
            "{table}"
        );
        assert!(
            table.contains("2 subjects, 1 with a non-empty label map, 2.0 MB"),
            "{table}"
        );
    }
}
