//! Metrics of scores for a yes/no outcome.

/// The cut-off on `scores` with the highest F1 when a score at or above it is predicted
/// positive, and that F1.
///
/// The cut-off sits halfway between the lowest score predicted positive and the next lower
/// score, so that new scores close to the boundary fall on the side the data supports. With no
/// positive example F1 is undefined: the result is `(0.5, 0.0)`.
///
/// # Panics
/// When `scores` and `positives` differ in length.
pub fn best_f1_threshold(scores: &[f32], positives: &[bool]) -> (f32, f64) {
    assert_eq!(scores.len(), positives.len(), "one label per score");
    let total_pos = positives.iter().filter(|&&p| p).count();
    if total_pos == 0 {
        return (0.5, 0.0);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best = (f32::INFINITY, -1.0f64);
    let mut i = 0;
    while i < order.len() {
        // Every row tied at this score goes to the positive side together.
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            if positives[order[i]] {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + (total_pos - tp)) as f64;
        if f1 > best.1 {
            let next = order.get(i).map_or(score, |&j| scores[j]);
            best = (score - (score - next) / 2.0, f1);
        }
    }
    best
}

/// Counts of decisions at a threshold against the true outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Positive, predicted positive.
    pub tp: usize,
    /// Negative, predicted positive.
    pub fp: usize,
    /// Negative, predicted negative.
    pub tn: usize,
    /// Positive, predicted negative.
    pub fn_: usize,
}

impl Counts {
    /// Counts decisions `score >= threshold` against `positives`.
    ///
    /// # Panics
    /// When `scores` and `positives` differ in length.
    pub fn at(scores: &[f32], positives: &[bool], threshold: f32) -> Self {
        assert_eq!(scores.len(), positives.len(), "one label per score");
        let mut c = Self::default();
        for (&s, &p) in scores.iter().zip(positives) {
            match (s >= threshold, p) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    /// Share of correct decisions (0 for no rows).
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }

    /// Of the rows predicted positive, the share that are (0 when none is predicted positive).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Of the positive rows, the share predicted positive (0 when there is no positive).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall: 2·tp / (2·tp + fp + fn), 0 when undefined.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting half (the Mann-Whitney statistic). `None` when either class is
/// absent.
///
/// # Panics
/// When `scores` and `positives` differ in length.
pub fn roc_auc(scores: &[f32], positives: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positives.len(), "one label per score");
    let pos = positives.iter().filter(|&&p| p).count();
    let neg = positives.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * order[i..j].iter().filter(|&&k| positives[k]).count() as f64;
        i = j;
    }
    let (pos, neg) = (pos as f64, neg as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision, the usual estimate of the area under the precision-recall curve:
/// Σ (Rₙ − Rₙ₋₁) · Pₙ over the distinct scores from the highest down, rows tied on a score
/// entering together (as scikit-learn's `average_precision_score`). `None` without positives.
///
/// # Panics
/// When `scores` and `positives` differ in length.
pub fn average_precision(scores: &[f32], positives: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positives.len(), "one label per score");
    let total = positives.iter().filter(|&&p| p).count();
    if total == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            tp += usize::from(positives[order[i]]);
            seen += 1;
            i += 1;
        }
        let recall = tp as f64 / total as f64;
        ap += (recall - last_recall) * (tp as f64 / seen as f64);
        last_recall = recall;
    }
    Some(ap)
}

/// Brier score: the mean squared difference between probabilities and outcomes (0 perfect,
/// 0.25 for always 0.5). 0 for no rows.
///
/// # Panics
/// When `probabilities` and `positives` differ in length.
pub fn brier(probabilities: &[f32], positives: &[bool]) -> f64 {
    assert_eq!(probabilities.len(), positives.len(), "one label per probability");
    if probabilities.is_empty() {
        return 0.0;
    }
    let sum: f64 = probabilities
        .iter()
        .zip(positives)
        .map(|(&p, &y)| (f64::from(p) - f64::from(u8::from(y))).powi(2))
        .sum();
    sum / probabilities.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_scores_get_a_cut_between_the_classes() {
        let (t, f1) = best_f1_threshold(&[0.9, 0.8, 0.3, 0.1], &[true, true, false, false]);
        assert!((t - 0.55).abs() < 1e-6, "{t}");
        assert_eq!(f1, 1.0);
    }

    #[test]
    fn overlapping_scores_pick_the_best_trade_off() {
        // Cut after 0.7: tp 2, fp 1, fn 0 -> F1 0.8; cut after 0.9: tp 1, fn 1 -> 0.667.
        let (t, f1) = best_f1_threshold(&[0.9, 0.7, 0.8, 0.2], &[true, true, false, false]);
        assert!((f1 - 0.8).abs() < 1e-9, "{f1}");
        assert!(t > 0.2 && t <= 0.7, "{t}");
    }

    #[test]
    fn ties_move_together_and_no_positive_is_handled() {
        let (_, f1) = best_f1_threshold(&[0.5, 0.5, 0.5], &[true, false, false]);
        assert!((f1 - 0.5).abs() < 1e-9, "{f1}");
        assert_eq!(best_f1_threshold(&[0.4, 0.6], &[false, false]), (0.5, 0.0));
    }

    #[test]
    fn counts_and_rates_at_a_threshold() {
        // Scores 0.9 0.6 0.4 0.2 for y 1 0 1 0 at 0.5: tp 1, fp 1, fn 1, tn 1.
        let c = Counts::at(&[0.9, 0.6, 0.4, 0.2], &[true, false, true, false], 0.5);
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 1, 1, 1));
        assert_eq!((c.accuracy(), c.precision(), c.recall(), c.f1()), (0.5, 0.5, 0.5, 0.5));
        let none = Counts::at(&[0.1], &[true], 0.5);
        assert_eq!((none.precision(), none.f1()), (0.0, 0.0));
    }

    #[test]
    fn roc_auc_by_hand() {
        // Positives 0.8, 0.4; negatives 0.6, 0.2: pairs (0.8>0.6, 0.8>0.2, 0.4<0.6, 0.4>0.2)
        // give 3 of 4.
        let auc = roc_auc(&[0.8, 0.6, 0.4, 0.2], &[true, false, true, false]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12, "{auc}");
        // A tie between a positive and a negative counts half: (1 + 0.5) / 2.
        let auc = roc_auc(&[0.9, 0.5, 0.5], &[true, true, false]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[0.3, 0.4], &[true, true]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // Ranked 0.8(+) 0.6(-) 0.4(+) 0.2(-): recall steps 0.5 at P=1, 0.5 at P=2/3.
        let ap = average_precision(&[0.8, 0.6, 0.4, 0.2], &[true, false, true, false]).unwrap();
        assert!((ap - (0.5 + 0.5 * 2.0 / 3.0)).abs() < 1e-12, "{ap}");
        // Tied scores enter together: one step to recall 1 at precision 1/2.
        let ap = average_precision(&[0.5, 0.5], &[true, false]).unwrap();
        assert!((ap - 0.5).abs() < 1e-12, "{ap}");
        assert_eq!(average_precision(&[0.5], &[false]), None);
    }

    #[test]
    fn brier_by_hand() {
        // (0.1² + 0.4² + 0.5²) / 3 = 0.42 / 3.
        let b = brier(&[0.9, 0.4, 0.5], &[true, false, true]);
        assert!((b - 0.14).abs() < 1e-7, "{b}");
        assert_eq!(brier(&[], &[]), 0.0);
    }
}
