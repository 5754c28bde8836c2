//! The optional first stage of fine-tuning for few examples (`--contrastive`): before any head
//! exists, the encoder is trained to pull texts of the same label together and push the others
//! apart, as SetFit does.
//!
//! SetFit draws pairs of texts and fits their cosine to 1 or 0. Here each batch holds pairs of
//! texts sharing a label, and the loss is the supervised contrastive loss of Khosla et al.
//! (2020, <https://arxiv.org/abs/2004.11362>): every text should find its same-label partners
//! among all the other texts of the batch by cosine similarity. One pass over the texts thus
//! contrasts each of them with a whole batch of others at the cost of one forward pass, where
//! pair sampling needs two texts per comparison.

use candle_core::{D, DType, Device, Tensor};

use crate::rng::SplitMix;

/// Default temperature of the similarity softmax (cosines are divided by it).
pub const TEMPERATURE: f64 = 0.05;

/// The lowest temperature accepted: cosines divided by it stay far inside `f32`.
pub const MIN_TEMPERATURE: f64 = 1e-3;

/// One epoch of batches for single-label `classes`: the texts of each label are shuffled and
/// cut into pairs, the pairs are shuffled and packed into batches of about `batch_size` texts,
/// so that every text with a same-label partner sits next to it. A label's odd text out joins
/// its last pair. Labels with a single text are left out: they have nothing to be pulled to.
pub fn batches(classes: &[u32], batch_size: usize, rng: &mut SplitMix) -> Vec<Vec<usize>> {
    let labels = classes.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); labels];
    for (i, &c) in classes.iter().enumerate() {
        by_label[c as usize].push(i);
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for mut texts in by_label.into_iter().filter(|t| t.len() >= 2) {
        rng.shuffle(&mut texts);
        let mut pairs: Vec<Vec<usize>> = texts.chunks(2).map(<[usize]>::to_vec).collect();
        if pairs.last().is_some_and(|p| p.len() == 1) {
            let odd = pairs.pop().expect("a last pair");
            pairs.last_mut().expect("two or more texts make a pair").extend(odd);
        }
        groups.extend(pairs);
    }
    rng.shuffle(&mut groups);
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    for group in groups {
        if !current.is_empty() && current.len() + group.len() > batch_size.max(2) {
            out.push(std::mem::take(&mut current));
        }
        current.extend(group);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Texts that [`batches`] places in each epoch: those of labels with two or more texts.
pub fn paired_texts(classes: &[u32]) -> usize {
    let labels = classes.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut per_label = vec![0usize; labels];
    for &c in classes {
        per_label[c as usize] += 1;
    }
    per_label.into_iter().filter(|&n| n >= 2).sum()
}

/// Supervised contrastive loss of a batch: `embeddings` (batch, dimension), L2-normalised, and
/// the class of each row. For each row with at least one same-class partner, the mean over its
/// partners of −log softmax (over all other rows) of cosine / `temperature`; averaged over
/// those rows.
///
/// # Errors
/// Fails when a tensor operation fails or no row has a partner.
pub fn loss(embeddings: &Tensor, classes: &[u32], temperature: f64) -> candle_core::Result<Tensor> {
    let n = classes.len();
    let device = embeddings.device();
    let sims = (embeddings.matmul(&embeddings.t()?)? / temperature)?;
    // A row is not its own candidate: its entry drops far below every other, which lie within
    // ±1/temperature, so its softmax weight is exactly 0 at any temperature.
    let eye = Tensor::eye(n, DType::F32, device)?;
    let sims = (sims - (eye * (2.0 / temperature + 1e4))?)?;
    let log_prob = candle_nn::ops::log_softmax(&sims, D::Minus1)?;
    let (partners, weights) = partner_weights(classes, device)?;
    if partners == 0 {
        candle_core::bail!("no text of the batch has a same-label partner");
    }
    // Σ over rows of (mean over the row's partners of −log p), divided by the rows with any.
    let per_row = (log_prob * weights)?.sum(1)?;
    (per_row.sum_all()? * (-1.0 / partners as f64))?.reshape(())
}

/// For each pair of rows, 1 / (partners of the row) when they share a class (and are not the
/// same row), else 0; and the number of rows with any partner.
fn partner_weights(classes: &[u32], device: &Device) -> candle_core::Result<(usize, Tensor)> {
    let n = classes.len();
    let mut w = vec![0f32; n * n];
    let mut rows_with = 0;
    for i in 0..n {
        let count = (0..n).filter(|&j| j != i && classes[j] == classes[i]).count();
        if count == 0 {
            continue;
        }
        rows_with += 1;
        for j in 0..n {
            if j != i && classes[j] == classes[i] {
                w[i * n + j] = 1.0 / count as f32;
            }
        }
    }
    Ok((rows_with, Tensor::from_vec(w, (n, n), device)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_same_label_texts_together_and_cover_every_pairable_text() {
        let classes = [0, 1, 0, 2, 1, 0, 3, 1, 1, 0];
        let mut rng = SplitMix::new(3);
        let out = batches(&classes, 4, &mut rng);
        let mut seen: Vec<usize> = out.iter().flatten().copied().collect();
        seen.sort_unstable();
        // Labels 2 and 3 have one text each and are left out.
        assert_eq!(seen, vec![0, 1, 2, 4, 5, 7, 8, 9]);
        for batch in &out {
            for &i in batch {
                assert!(
                    batch.iter().any(|&j| j != i && classes[j] == classes[i]),
                    "text {i} has no partner in {batch:?}"
                );
            }
        }
    }

    #[test]
    fn loss_is_low_when_partners_are_closest_and_high_otherwise() {
        let device = Device::Cpu;
        let v = |rows: &[[f32; 2]]| {
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::from_vec(flat, (rows.len(), 2), &device).unwrap()
        };
        let classes = [0, 0, 1, 1];
        let together = v(&[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]);
        let crossed = v(&[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]);
        let low = loss(&together, &classes, TEMPERATURE).unwrap().to_scalar::<f32>().unwrap();
        let high = loss(&crossed, &classes, TEMPERATURE).unwrap().to_scalar::<f32>().unwrap();
        assert!(low < 1e-3, "partners identical, others orthogonal: {low}");
        assert!(high > 10.0, "partners orthogonal, others identical: {high}");
        assert!(loss(&together, &[0, 1, 2, 3], TEMPERATURE).is_err(), "nobody has a partner");
        // At temperature 1 each row weighs its partner (cosine 0) against one text at cosine 1
        // and one at 0: −log(1 / (1 + e + 1)).
        let at_one = loss(&crossed, &classes, 1.0).unwrap().to_scalar::<f32>().unwrap();
        let expected = (2.0 + std::f32::consts::E).ln();
        assert!((at_one - expected).abs() < 1e-5, "{at_one} against {expected}");
        // At the lowest temperature a row still does not count itself: partners identical,
        // others orthogonal gives a loss of 0.
        let coldest =
            loss(&together, &classes, MIN_TEMPERATURE).unwrap().to_scalar::<f32>().unwrap();
        assert!(coldest.abs() < 1e-3, "{coldest}");
    }
}
