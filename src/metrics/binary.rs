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
}
