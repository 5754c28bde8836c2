//! Metrics of predicted labels against true labels: accuracy, per-class precision, recall, F1
//! and support, macro/weighted/micro F1, log loss and the confusion matrix.
//!
//! Conventions follow scikit-learn: a class with no predicted (or no true) rows has precision
//! (or recall) 0, and macro and weighted averages run over the classes that occur in the truth
//! or in the predictions.

use serde::Serialize;

/// Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` before the logarithm.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// Precision, recall, F1 and support of one class or label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassFigures {
    /// True positives over predicted positives (0 with no predicted positive).
    pub precision: f64,
    /// True positives over actual positives (0 with no actual positive).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Number of rows that truly carry the class.
    pub support: usize,
    /// Number of rows predicted to carry it.
    pub predicted: usize,
}

impl ClassFigures {
    /// Figures from true positive, false positive and false negative counts.
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = ratio(2 * tp, 2 * tp + fp + fn_);
        Self { precision, recall, f1, support: tp + fn_, predicted: tp + fp }
    }
}

/// Counts of (true class, predicted class) pairs; rows are true classes, columns predictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<usize>,
}

impl ConfusionMatrix {
    /// Counts `truth` against `predicted`, both class indices below `classes`.
    ///
    /// # Panics
    /// When the slices differ in length or an index is out of range.
    pub fn new(truth: &[u32], predicted: &[u32], classes: usize) -> Self {
        assert_eq!(truth.len(), predicted.len(), "one prediction per true label");
        let mut counts = vec![0; classes * classes];
        for (&t, &p) in truth.iter().zip(predicted) {
            counts[t as usize * classes + p as usize] += 1;
        }
        Self { classes, counts }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Rows of true class `truth` predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> usize {
        self.counts[truth * self.classes + predicted]
    }

    /// Number of rows counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Share of rows predicted right (0 with no rows).
    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.classes).map(|c| self.count(c, c)).sum();
        let total = self.total();
        if total == 0 { 0.0 } else { right as f64 / total as f64 }
    }

    /// Precision, recall, F1 and support of every class, in class order.
    pub fn per_class(&self) -> Vec<ClassFigures> {
        (0..self.classes)
            .map(|c| {
                let tp = self.count(c, c);
                let support: usize = (0..self.classes).map(|p| self.count(c, p)).sum();
                let predicted: usize = (0..self.classes).map(|t| self.count(t, c)).sum();
                ClassFigures::from_counts(tp, predicted - tp, support - tp)
            })
            .collect()
    }

    /// Unweighted mean F1 over the classes that occur in the truth or the predictions.
    pub fn macro_f1(&self) -> f64 {
        macro_f1(&self.per_class())
    }

    /// Mean F1 weighted by support.
    pub fn weighted_f1(&self) -> f64 {
        let figures = self.per_class();
        let total: usize = figures.iter().map(|f| f.support).sum();
        if total == 0 {
            return 0.0;
        }
        figures.iter().map(|f| f.f1 * f.support as f64).sum::<f64>() / total as f64
    }
}

/// Unweighted mean F1 over classes with a true or a predicted row.
pub fn macro_f1(figures: &[ClassFigures]) -> f64 {
    let present: Vec<f64> =
        figures.iter().filter(|f| f.support + f.predicted > 0).map(|f| f.f1).collect();
    if present.is_empty() { 0.0 } else { present.iter().sum::<f64>() / present.len() as f64 }
}

/// Mean negative log-likelihood of the true classes: `probabilities` holds one row of
/// `classes` probabilities per true label, row-major.
///
/// # Panics
/// When `probabilities` does not hold one row per true label.
pub fn log_loss(probabilities: &[f32], classes: usize, truth: &[u32]) -> f64 {
    assert_eq!(probabilities.len(), classes * truth.len(), "one probability row per label");
    if truth.is_empty() {
        return 0.0;
    }
    let total: f64 = truth
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let p = f64::from(probabilities[i * classes + t as usize]);
            -p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln()
        })
        .sum();
    total / truth.len() as f64
}

/// Figures of a multi-label prediction: per label, and micro- and macro-averaged F1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiLabelFigures {
    /// Per label, in label order.
    pub per_label: Vec<ClassFigures>,
    /// F1 of all (row, label) decisions pooled together.
    pub micro_f1: f64,
    /// Unweighted mean of the per-label F1 over labels with a true or predicted row.
    pub macro_f1: f64,
    /// Share of rows whose predicted label set equals the true set.
    pub exact_match: f64,
}

impl MultiLabelFigures {
    /// Compares `predicted` with `truth`, both row-major `rows x labels` 0/1 matrices.
    ///
    /// # Panics
    /// When the matrices differ in size or are not a whole number of rows.
    pub fn new(truth: &[bool], predicted: &[bool], labels: usize) -> Self {
        assert_eq!(truth.len(), predicted.len(), "matrices of the same shape");
        assert!(labels > 0 && truth.len().is_multiple_of(labels), "whole rows of {labels} labels");
        let mut counts = vec![(0usize, 0usize, 0usize); labels];
        let mut exact = 0;
        for (t_row, p_row) in truth.chunks_exact(labels).zip(predicted.chunks_exact(labels)) {
            exact += usize::from(t_row == p_row);
            for (l, (&t, &p)) in t_row.iter().zip(p_row).enumerate() {
                match (t, p) {
                    (true, true) => counts[l].0 += 1,
                    (false, true) => counts[l].1 += 1,
                    (true, false) => counts[l].2 += 1,
                    (false, false) => {}
                }
            }
        }
        let per_label: Vec<ClassFigures> =
            counts.iter().map(|&(tp, fp, fn_)| ClassFigures::from_counts(tp, fp, fn_)).collect();
        let (tp, fp, fn_) =
            counts.iter().fold((0, 0, 0), |acc, c| (acc.0 + c.0, acc.1 + c.1, acc.2 + c.2));
        let rows = truth.len() / labels;
        Self {
            micro_f1: ClassFigures::from_counts(tp, fp, fn_).f1,
            macro_f1: macro_f1(&per_label),
            per_label,
            exact_match: if rows == 0 { 0.0 } else { exact as f64 / rows as f64 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn single_label_figures_match_hand_computed_values() {
        // truth:     0 0 0 1 1 2
        // predicted: 0 0 1 1 2 2
        let m = ConfusionMatrix::new(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2], 3);
        assert_eq!(m.count(0, 1), 1);
        assert!(close(m.accuracy(), 4.0 / 6.0));
        let f = m.per_class();
        // class 0: tp 2, fp 0, fn 1 -> P 1, R 2/3, F1 0.8
        assert!(close(f[0].precision, 1.0) && close(f[0].recall, 2.0 / 3.0) && close(f[0].f1, 0.8));
        // class 1: tp 1, fp 1, fn 1 -> 0.5 each; class 2: tp 1, fp 1, fn 0 -> P 0.5, R 1, F1 2/3
        assert!(close(f[1].f1, 0.5));
        assert!(close(f[2].precision, 0.5) && close(f[2].recall, 1.0) && close(f[2].f1, 2.0 / 3.0));
        assert_eq!((f[0].support, f[1].support, f[2].support), (3, 2, 1));
        assert!(close(m.macro_f1(), (0.8 + 0.5 + 2.0 / 3.0) / 3.0));
        assert!(close(m.weighted_f1(), (0.8 * 3.0 + 0.5 * 2.0 + 2.0 / 3.0) / 6.0));
    }

    #[test]
    fn macro_f1_skips_classes_absent_from_truth_and_predictions() {
        let m = ConfusionMatrix::new(&[0, 1], &[0, 1], 3);
        assert!(close(m.macro_f1(), 1.0));
        // A class predicted but never true counts, with F1 0.
        let m = ConfusionMatrix::new(&[0, 0], &[0, 2], 3);
        assert!(close(m.macro_f1(), (2.0 / 3.0 + 0.0) / 2.0));
    }

    #[test]
    fn log_loss_matches_hand_computed_value_and_clips_zero() {
        let probs = [0.8, 0.2, 0.4, 0.6];
        let expected = -(0.8f64.ln() + 0.6f64.ln()) / 2.0;
        assert!((log_loss(&probs, 2, &[0, 1]) - expected).abs() < 1e-6);
        let clipped = log_loss(&[1.0, 0.0], 2, &[1]);
        assert!((clipped - -LOG_LOSS_EPS.ln()).abs() < 1e-6);
    }

    #[test]
    fn multi_label_micro_and_macro_f1() {
        // Two labels, three rows. Label 0: tp 2 fp 0 fn 0; label 1: tp 0 fp 1 fn 1.
        let truth = [true, false, true, true, false, false];
        let predicted = [true, true, true, false, false, false];
        let m = MultiLabelFigures::new(&truth, &predicted, 2);
        assert!(close(m.per_label[0].f1, 1.0) && close(m.per_label[1].f1, 0.0));
        assert!(close(m.micro_f1, 4.0 / 6.0)); // tp 2, fp 1, fn 1
        assert!(close(m.macro_f1, 0.5));
        assert!(close(m.exact_match, 1.0 / 3.0));
    }
}
