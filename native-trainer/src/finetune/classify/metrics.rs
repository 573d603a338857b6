//! Classification metrics of a set of predictions (accuracy, macro F1, ROC AUC) and the run's
//! summary (`test/classification.md`).

use anyhow::Result;
use brainmvp_core::classification::{accuracy, macro_f1, roc_auc};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Accuracy, macro F1 and ROC AUC of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Fraction of subjects whose arg-max class is the true class.
    pub accuracy: f64,
    /// F1 averaged over the classes present in the predictions or the truth.
    pub macro_f1: f64,
    /// Two classes: ROC AUC of the last class's probability (the last class is the positive
    /// one). More classes: the mean one-vs-rest AUC over the classes it is defined for. `None`
    /// when undefined (a single class among the true labels).
    pub auc: Option<f64>,
    /// Subjects scored.
    pub cases: usize,
}

/// One subject's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Subject id.
    pub id: String,
    /// True class index.
    pub truth: usize,
    /// Softmax probability of each class.
    pub probabilities: Vec<f64>,
}

impl Prediction {
    /// The class of highest probability (the first one on ties).
    pub fn predicted(&self) -> usize {
        let mut best = 0;
        for (class, &probability) in self.probabilities.iter().enumerate() {
            if probability > self.probabilities[best] {
                best = class;
            }
        }
        best
    }
}

impl ClassMetrics {
    /// Scores `predictions` over `classes` classes; an error when there is none.
    pub fn of(predictions: &[Prediction], classes: usize) -> Result<Self> {
        let predicted: Vec<usize> = predictions.iter().map(Prediction::predicted).collect();
        let truth: Vec<usize> = predictions.iter().map(|p| p.truth).collect();
        let positives: Vec<usize> = match classes {
            2 => vec![1],
            _ => (0..classes).collect(),
        };
        let mut aucs = Vec::new();
        for positive in positives {
            let is_positive: Vec<bool> = truth.iter().map(|&t| t == positive).collect();
            if is_positive.iter().all(|&p| p) || !is_positive.iter().any(|&p| p) {
                continue;
            }
            let scores: Vec<f64> = predictions
                .iter()
                .map(|p| p.probabilities.get(positive).copied().unwrap_or(0.0))
                .collect();
            aucs.push(roc_auc(&scores, &is_positive)?);
        }
        Ok(Self {
            accuracy: accuracy(&predicted, &truth)?,
            macro_f1: macro_f1(&predicted, &truth)?,
            auc: (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64),
            cases: predictions.len(),
        })
    }

    /// Better than `other`: a higher macro F1, or the same and a higher accuracy.
    pub fn better_than(&self, other: &Self) -> bool {
        self.macro_f1 > other.macro_f1
            || (self.macro_f1 == other.macro_f1 && self.accuracy > other.accuracy)
    }

    /// `(name, value)` pairs for the metrics log (an undefined AUC is logged as NaN = `null`).
    pub fn log_values(&self) -> [(&'static str, f64); 3] {
        [
            ("accuracy", self.accuracy),
            ("macro_f1", self.macro_f1),
            ("auc", self.auc.unwrap_or(f64::NAN)),
        ]
    }
}

/// What a finished classification run reports.
#[derive(Debug, Clone)]
pub struct ClassifySummary {
    /// Class names in index order (sorted).
    pub classes: Vec<String>,
    /// Step of the best validation and its metrics.
    pub best_step: u64,
    pub best_validation: ClassMetrics,
    /// The best model on the test subjects.
    pub test: ClassMetrics,
    /// What the pre-trained encoder contributed (none from scratch).
    pub init_report: Option<String>,
    /// Training subjects used (after the label fraction).
    pub train_subjects: usize,
}

impl ClassifySummary {
    /// A markdown report: classes, training subjects, init, and a table of the best validation
    /// and the test metrics.
    pub fn to_markdown(&self) -> String {
        let mut text = String::from("# Classification\n\n");
        let _ = writeln!(text, "- classes: {}", self.classes.join(", "));
        let _ = writeln!(text, "- training subjects: {}", self.train_subjects);
        let init = self.init_report.as_deref().unwrap_or("from scratch");
        let _ = writeln!(text, "- init: {init}\n");
        text.push_str("| set | cases | accuracy | macro F1 | AUC |\n|---|---:|---:|---:|---:|\n");
        let rows = [
            (
                format!("validation (best, step {})", self.best_step),
                &self.best_validation,
            ),
            ("test".to_string(), &self.test),
        ];
        for (name, metrics) in rows {
            let auc = metrics
                .auc
                .map_or_else(|| "undefined".to_string(), |auc| format!("{auc:.4}"));
            let _ = writeln!(
                text,
                "| {name} | {} | {:.4} | {:.4} | {auc} |",
                metrics.cases, metrics.accuracy, metrics.macro_f1
            );
        }
        text
    }
}
