//! The class table: one class per subject from a CSV file with a header row.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Largest label table read (a table of a million subjects is far smaller).
const MAX_TABLE_BYTES: u64 = 256 << 20;

/// Reads a CSV table with a header row and returns `id → class` from the columns named
/// `id_column` and `label_column`. Errors name the file: unreadable, no header, a missing
/// column, a short row, an empty id or class, or an id listed twice with different classes.
pub fn read_label_table(
    path: &Path,
    id_column: &str,
    label_column: &str,
) -> Result<BTreeMap<String, String>> {
    let name = path.display();
    let size = std::fs::metadata(path)
        .with_context(|| format!("{name}: cannot read the label table"))?
        .len();
    if size > MAX_TABLE_BYTES {
        bail!("{name}: {size} bytes is too large for a label table");
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{name}: cannot read the label table"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{name}: empty label table"))?;
    let header = split_csv_line(header.trim_start_matches('\u{feff}'));
    let column = |wanted: &str| {
        header
            .iter()
            .position(|field| field == wanted)
            .with_context(|| {
                format!(
                    "{name}: no column {wanted:?} (columns: {})",
                    header.join(", ")
                )
            })
    };
    let (id_index, label_index) = (column(id_column)?, column(label_column)?);
    let mut table = BTreeMap::new();
    for (line_index, line) in lines {
        let fields = split_csv_line(line);
        let line_number = line_index + 1;
        let (Some(id), Some(label)) = (fields.get(id_index), fields.get(label_index)) else {
            bail!(
                "{name}: line {line_number} has {} fields, fewer than the header",
                fields.len()
            );
        };
        if id.is_empty() || label.is_empty() {
            bail!("{name}: line {line_number}: empty {id_column:?} or {label_column:?}");
        }
        if let Some(previous) = table.insert(id.clone(), label.clone()) {
            if &previous != label {
                bail!("{name}: subject {id} is listed as {previous:?} and as {label:?}");
            }
        }
    }
    Ok(table)
}

/// Fields of one CSV line: separated by commas, trimmed, double quotes removed (`""` inside
/// quotes is a quote).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(character) = chars.next() {
        match (character, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_string()),
            _ => field.push(character),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub(super) fn csv_field(value: &str) -> String {
    match value.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", value.replace('"', "\"\"")),
        false => value.to_string(),
    }
}

/// The classes (sorted distinct labels of `ids`) and each id's class index. Errors name
/// `table_path` when an id has no row or when fewer than two classes remain.
pub fn subject_classes(
    table: &BTreeMap<String, String>,
    ids: &[String],
    table_path: &Path,
) -> Result<(Vec<String>, Vec<usize>)> {
    let mut labels = Vec::with_capacity(ids.len());
    for id in ids {
        let label = table.get(id).with_context(|| {
            format!(
                "{}: no row for subject {id} of the cache",
                table_path.display()
            )
        })?;
        labels.push(label.clone());
    }
    let mut classes = labels.clone();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        bail!(
            "{}: the cache's subjects have {} class(es) ({}); classification needs at least 2",
            table_path.display(),
            classes.len(),
            classes.join(", ")
        );
    }
    let indices = labels
        .iter()
        .map(|label| classes.binary_search(label).unwrap_or(0))
        .collect();
    Ok((classes, indices))
}
