//! Matching predicted lesions to reference lesions: the overlap table of two sets of connected
//! components and the maximal bipartite matching by Dice of the BraTS challenge metrics.
//!
//! As panoptica's `MaxBipartiteMatching(matching_metric=DSC, matching_threshold=1e-6)` (the
//! official package's `gli` config): every (reference, prediction) pair whose Dice reaches the
//! threshold is a candidate at cost `1 − Dice`, every other pair costs `1 + 1e-6`, the optimal
//! assignment (scipy's `linear_sum_assignment`) is taken and its pairs cheaper than 1 are the
//! matches. Since every non-candidate pair costs the same, that is the matching of candidates with
//! the largest total Dice; it is solved here on each connected part of the candidate graph
//! separately (the Hungarian method on a small dense matrix), which gives the same optimum. Where
//! two matchings tie exactly, the one picked may differ from scipy's.

use super::components::Components;
use std::collections::{BTreeMap, HashMap};

/// The Dice a pair of lesions needs to be a candidate for matching (`>=`, as panoptica).
pub const MATCHING_THRESHOLD: f64 = 1e-6;
/// panoptica's cost of a pair that is not a candidate.
const NON_CANDIDATE_COST: f64 = 1.0 + 1e-6;

/// Voxels shared by one reference and one predicted component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// Reference component label (1-based).
    pub reference: u32,
    /// Predicted component label (1-based).
    pub prediction: u32,
    /// Voxels in both.
    pub shared_voxels: usize,
}

/// A matched pair of lesions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LesionMatch {
    /// Reference component label (1-based).
    pub reference: u32,
    /// Predicted component label (1-based).
    pub prediction: u32,
    /// Dice of the two lesions.
    pub dice: f64,
}

/// Every pair of components that shares voxels, sorted by reference then prediction label.
/// Both label maps must have the same length.
pub fn overlap_table(reference: &[u32], prediction: &[u32]) -> Vec<Overlap> {
    let mut shared: HashMap<(u32, u32), usize> = HashMap::new();
    for (&r, &p) in reference.iter().zip(prediction) {
        if r != 0 && p != 0 {
            *shared.entry((r, p)).or_insert(0) += 1;
        }
    }
    let mut table: Vec<Overlap> = shared
        .into_iter()
        .map(|((reference, prediction), shared_voxels)| Overlap {
            reference,
            prediction,
            shared_voxels,
        })
        .collect();
    table.sort_by_key(|o| (o.reference, o.prediction));
    table
}

/// Dice `2|R∩P| / (|R| + |P|)` of an overlapping pair of `reference` and `prediction`.
pub fn pair_dice(overlap: &Overlap, reference: &Components, prediction: &Components) -> f64 {
    let reference_voxels = reference.voxel_counts[overlap.reference as usize - 1];
    let predicted_voxels = prediction.voxel_counts[overlap.prediction as usize - 1];
    2.0 * overlap.shared_voxels as f64 / (reference_voxels + predicted_voxels) as f64
}

/// The maximal bipartite matching by Dice of the lesions of `reference` and `prediction`, with
/// their overlap `table`; matches sorted by reference label.
pub fn match_lesions(
    table: &[Overlap],
    reference: &Components,
    prediction: &Components,
) -> Vec<LesionMatch> {
    let candidates: Vec<LesionMatch> = table
        .iter()
        .map(|overlap| LesionMatch {
            reference: overlap.reference,
            prediction: overlap.prediction,
            dice: pair_dice(overlap, reference, prediction),
        })
        .filter(|candidate| candidate.dice >= MATCHING_THRESHOLD)
        .collect();
    let mut matches: Vec<LesionMatch> = candidate_groups(&candidates)
        .iter()
        .flat_map(|group| match_group(group))
        .collect();
    matches.sort_by_key(|m| m.reference);
    matches
}

/// The candidates split into the connected parts of their bipartite graph, ordered by their
/// smallest reference label.
fn candidate_groups(candidates: &[LesionMatch]) -> Vec<Vec<LesionMatch>> {
    // Nodes: reference `r` is node `r`, prediction `p` is node `reference_count + p`.
    let reference_count = candidates.iter().map(|c| c.reference).max().unwrap_or(0) as usize;
    let prediction_count = candidates.iter().map(|c| c.prediction).max().unwrap_or(0) as usize;
    let mut parent: Vec<usize> = (0..=reference_count + prediction_count).collect();
    for candidate in candidates {
        let a = find_root(&mut parent, candidate.reference as usize);
        let b = find_root(&mut parent, reference_count + candidate.prediction as usize);
        parent[a.max(b)] = a.min(b);
    }
    let mut groups: BTreeMap<usize, Vec<LesionMatch>> = BTreeMap::new();
    for candidate in candidates {
        let group = find_root(&mut parent, candidate.reference as usize);
        groups.entry(group).or_default().push(*candidate);
    }
    groups.into_values().collect()
}

/// The root of `node` in the forest `parent`, halving the path on the way.
fn find_root(parent: &mut [usize], mut node: usize) -> usize {
    while parent[node] != node {
        parent[node] = parent[parent[node]];
        node = parent[node];
    }
    node
}

/// The optimal assignment within one connected group of candidates.
fn match_group(group: &[LesionMatch]) -> Vec<LesionMatch> {
    let mut references: Vec<u32> = group.iter().map(|c| c.reference).collect();
    let mut predictions: Vec<u32> = group.iter().map(|c| c.prediction).collect();
    references.sort_unstable();
    references.dedup();
    predictions.sort_unstable();
    predictions.dedup();
    let index_of = |list: &[u32], label: u32| list.binary_search(&label).unwrap_or(0);
    let mut cost = vec![NON_CANDIDATE_COST; references.len() * predictions.len()];
    for candidate in group {
        let row = index_of(&references, candidate.reference);
        let column = index_of(&predictions, candidate.prediction);
        cost[row * predictions.len() + column] = 1.0 - candidate.dice;
    }
    let assignment = minimum_cost_assignment(&cost, references.len(), predictions.len());
    assignment
        .into_iter()
        .filter(|&(row, column)| cost[row * predictions.len() + column] < 1.0)
        .map(|(row, column)| LesionMatch {
            reference: references[row],
            prediction: predictions[column],
            dice: 1.0 - cost[row * predictions.len() + column],
        })
        .collect()
}

/// The `(row, column)` pairs of a minimum-cost assignment of `min(rows, columns)` pairs for the
/// row-major `cost` matrix (Hungarian method with potentials, O(n²·m)).
pub fn minimum_cost_assignment(cost: &[f64], rows: usize, columns: usize) -> Vec<(usize, usize)> {
    if rows > columns {
        let transposed: Vec<f64> = (0..columns * rows)
            .map(|i| cost[(i % rows) * columns + i / rows])
            .collect();
        return minimum_cost_assignment(&transposed, columns, rows)
            .into_iter()
            .map(|(row, column)| (column, row))
            .collect();
    }
    let column_of_row = hungarian(cost, rows, columns);
    column_of_row.into_iter().enumerate().collect()
}

/// The column assigned to each row (`rows <= columns`), 1-based internals as in the classic
/// shortest-augmenting-path formulation.
fn hungarian(cost: &[f64], rows: usize, columns: usize) -> Vec<usize> {
    let at = |row: usize, column: usize| cost[(row - 1) * columns + (column - 1)];
    let mut row_potential = vec![0.0; rows + 1];
    let mut column_potential = vec![0.0; columns + 1];
    let mut row_of_column = vec![0usize; columns + 1];
    let mut previous = vec![0usize; columns + 1];
    for row in 1..=rows {
        row_of_column[0] = row;
        let mut current = 0usize;
        let mut slack = vec![f64::INFINITY; columns + 1];
        let mut used = vec![false; columns + 1];
        loop {
            used[current] = true;
            let active = row_of_column[current];
            let mut delta = f64::INFINITY;
            let mut next = 0usize;
            for column in 1..=columns {
                if used[column] {
                    continue;
                }
                let reduced = at(active, column) - row_potential[active] - column_potential[column];
                if reduced < slack[column] {
                    slack[column] = reduced;
                    previous[column] = current;
                }
                if slack[column] < delta {
                    delta = slack[column];
                    next = column;
                }
            }
            for column in 0..=columns {
                if used[column] {
                    row_potential[row_of_column[column]] += delta;
                    column_potential[column] -= delta;
                } else {
                    slack[column] -= delta;
                }
            }
            current = next;
            if row_of_column[current] == 0 {
                break;
            }
        }
        while current != 0 {
            let before = previous[current];
            row_of_column[current] = row_of_column[before];
            current = before;
        }
    }
    let mut column_of_row = vec![0usize; rows];
    for column in 1..=columns {
        if row_of_column[column] != 0 {
            column_of_row[row_of_column[column] - 1] = column - 1;
        }
    }
    column_of_row
}
