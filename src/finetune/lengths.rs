//! Cutting a training batch into groups of texts of similar length, so that each group is
//! padded only to its own longest text.
//!
//! Short survey answers and tickets vary a lot in length: on the Banking77 training texts a
//! random batch of 16, padded to its longest, holds about 2.5 times the tokens its texts have.
//! The encoder's work grows with the padded tokens, so one batch is run as a few forward passes
//! over groups of texts sorted by length, and their embeddings are put back in the batch's
//! order before the loss. The batch, and so the step, stays what it was: only padding goes.

/// Groups of positions of `lengths` (token counts) whose forward passes cost the least in all:
/// a group costs its texts times its longest text, plus `overhead` tokens for the pass itself.
/// Every position appears once; within and across groups positions run from short to long
/// (ties keep their order).
pub fn length_groups(lengths: &[usize], overhead: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let n = order.len();
    // cost[j]: the least cost of the first j texts in length order; start[j]: where the last
    // group of that cheapest cut begins.
    let mut cost = vec![0usize; n + 1];
    let mut start = vec![0usize; n + 1];
    for j in 1..=n {
        let longest = lengths[order[j - 1]];
        let (best, from) = (0..j)
            .map(|i| (cost[i] + (j - i) * longest + overhead, i))
            .min()
            .expect("j is at least 1");
        (cost[j], start[j]) = (best, from);
    }
    let mut groups = Vec::new();
    let mut end = n;
    while end > 0 {
        groups.push(order[start[end]..end].to_vec());
        end = start[end];
    }
    groups.reverse();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_position_once_in_length_order() {
        let lengths = [12, 3, 40, 3, 9, 41, 12, 5];
        let groups = length_groups(&lengths, 8);
        let flat: Vec<usize> = groups.concat();
        let mut seen = flat.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        assert!(flat.windows(2).all(|w| lengths[w[0]] <= lengths[w[1]]), "{flat:?}");
        assert!(length_groups(&[], 8).is_empty());
    }

    #[test]
    fn splits_only_where_the_padding_saved_pays_for_another_pass() {
        // Two short texts and two long ones: apart they cost 2*3 + 2*40 + 2*8 = 102 tokens,
        // together 4*40 + 8 = 168.
        assert_eq!(length_groups(&[40, 3, 3, 40], 8), vec![vec![1, 2], vec![0, 3]]);
        // When a pass costs more than the padding it would save, one group stays.
        assert_eq!(length_groups(&[40, 3, 3, 40], 100), vec![vec![1, 2, 0, 3]]);
        // Equal lengths never split.
        assert_eq!(length_groups(&[7, 7, 7], 0).len(), 1);
    }
}
