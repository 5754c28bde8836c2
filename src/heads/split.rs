//! A seeded, stratified split of labelled rows into training and validation rows.
//!
//! Rows are grouped by a stratum: their label (single-label) or their rarest label
//! (multi-label, so rare labels reach both sides). Each stratum is shuffled and
//! `round(fraction * n)` of its rows go to validation, at least one when the stratum has two or
//! more rows and never all of them, so every label with two examples is both learnt and checked.

use std::collections::BTreeMap;

use crate::rng::SplitMix;

/// Row indices on each side of a split, each in increasing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows to train on.
    pub train: Vec<usize>,
    /// Rows to validate on (empty with a fraction of 0).
    pub val: Vec<usize>,
}

/// Splits the rows whose label indices are `targets` (one list per row), sending about
/// `fraction` of each stratum to validation.
///
/// `label_count` is the number of labels; the same inputs and seed give the same split.
pub fn stratified(targets: &[Vec<u32>], label_count: usize, fraction: f64, seed: u64) -> Split {
    if fraction <= 0.0 {
        return Split { train: (0..targets.len()).collect(), val: vec![] };
    }
    let mut frequency = vec![0usize; label_count];
    for row in targets {
        for &l in row {
            frequency[l as usize] += 1;
        }
    }
    let stratum = |row: &[u32]| {
        row.iter().copied().min_by_key(|&l| (frequency[l as usize], l)).map_or(u32::MAX, |l| l)
    };
    let mut strata: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, row) in targets.iter().enumerate() {
        strata.entry(stratum(row)).or_default().push(i);
    }

    let mut rng = SplitMix::new(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for rows in strata.values_mut() {
        rng.shuffle(rows);
        let n = rows.len();
        let take = if n < 2 { 0 } else { ((fraction * n as f64).round() as usize).clamp(1, n - 1) };
        val.extend_from_slice(&rows[..take]);
        train.extend_from_slice(&rows[take..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    Split { train, val }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(labels: &[u32]) -> Vec<Vec<u32>> {
        labels.iter().map(|&l| vec![l]).collect()
    }

    #[test]
    fn each_class_keeps_its_share_on_both_sides() {
        // 80 of class 0, 20 of class 1, 2 of class 2, 1 of class 3.
        let mut labels = vec![0; 80];
        labels.extend([1; 20]);
        labels.extend([2, 2, 3]);
        let targets = single(&labels);
        let s = stratified(&targets, 4, 0.2, 7);
        let count = |side: &[usize], c: u32| side.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((count(&s.val, 0), count(&s.val, 1)), (16, 4));
        assert_eq!(count(&s.val, 2), 1, "a class of two gives one row to validation");
        assert_eq!(count(&s.val, 3), 0, "a single example stays in training");
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>(), "every row on exactly one side");
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let targets = single(&(0..200).map(|i| i % 3).collect::<Vec<u32>>());
        assert_eq!(stratified(&targets, 3, 0.25, 1), stratified(&targets, 3, 0.25, 1));
        assert_ne!(stratified(&targets, 3, 0.25, 1), stratified(&targets, 3, 0.25, 2));
    }

    #[test]
    fn multi_label_rows_are_stratified_by_their_rarest_label() {
        // Label 1 is rare and always comes with the common label 0.
        let mut targets = vec![vec![0]; 50];
        targets.extend(vec![vec![0, 1]; 10]);
        let s = stratified(&targets, 2, 0.2, 3);
        let rare_val = s.val.iter().filter(|&&i| targets[i].contains(&1)).count();
        assert_eq!(rare_val, 2);
        assert_eq!(s.val.len(), 12);
    }

    #[test]
    fn zero_fraction_keeps_everything_for_training() {
        let s = stratified(&single(&[0, 1, 0]), 2, 0.0, 1);
        assert_eq!((s.train.len(), s.val.len()), (3, 0));
    }
}
