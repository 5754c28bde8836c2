//! Zero-shot labelling: score each text against every label of a taxonomy, then decide which
//! labels it carries.
//!
//! A text's score for a label is the highest cosine similarity between the text and any of the
//! label's phrases. Raw cosines are not comparable across labels: a label phrased in generic
//! words is close to most texts, a specific one to few, and a label present in half the corpus
//! has a different score distribution from one present in 2% of it. So each label gets its own
//! threshold, read from the corpus itself: on a sample of texts, a label's scores form two
//! populations, texts about it (high scores) and texts not about it (low scores). We fit a
//! two-component Gaussian mixture to each label's sample scores and put the threshold where a
//! score becomes more likely to come from the high component than the low one. When a label's
//! scores show no second population (the mixture does not separate), the threshold falls back to
//! two standard deviations above the mean, so only outliers carry it. A small absolute floor
//! keeps a label nobody mentions from being forced onto the best of a bad lot.
//!
//! The sample is the first [`CALIBRATION_TEXTS`] non-empty texts, which keeps memory bounded on
//! inputs of any size; a file sorted by topic calibrates on its first topic, so shuffle such
//! files. On SemEval-2014 restaurant sentences this calibration scores within a point of the
//! best fixed cut-off found with the gold labels in hand (see the README), without seeing them.

use crate::embed::{EmbedError, Embedder};
use crate::taxonomy::Taxonomy;

/// Number of non-empty texts used to calibrate the per-label thresholds.
pub const CALIBRATION_TEXTS: usize = 2000;

/// Fewest texts for which per-label calibration is attempted; below it, a fixed cosine
/// threshold is used.
pub const MIN_CALIBRATION_TEXTS: usize = 20;

/// Scores below this cosine never carry a label, whatever the calibration says.
pub const DEFAULT_FLOOR: f32 = 0.2;

/// Fixed cosine threshold used when there are too few texts to calibrate.
pub const FALLBACK_THRESHOLD: f32 = 0.4;

/// One label's identity inside a scorer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRef {
    /// Group name.
    pub group: String,
    /// Label name.
    pub name: String,
}

/// Embedded phrases of every label of a taxonomy.
pub struct Scorer {
    labels: Vec<LabelRef>,
    /// For each label, its phrase vectors (unit length), flattened.
    phrases: Vec<Vec<f32>>,
    dimension: usize,
}

impl Scorer {
    /// Embeds every phrase of `taxonomy` with `embedder`.
    ///
    /// # Errors
    /// Fails when embedding fails.
    pub fn new(taxonomy: &Taxonomy, embedder: &Embedder) -> Result<Self, EmbedError> {
        let mut labels = Vec::new();
        let mut texts = Vec::new();
        let mut owners = Vec::new();
        for group in &taxonomy.groups {
            for label in &group.labels {
                for phrase in label.phrases.iter().filter(|p| !p.trim().is_empty()) {
                    texts.push(phrase.as_str());
                    owners.push(labels.len());
                }
                labels.push(LabelRef { group: group.name.clone(), name: label.name.clone() });
            }
        }
        let embedded = embedder.embed(&texts)?;
        let dimension = embedded.dimension();
        let mut phrases = vec![Vec::new(); labels.len()];
        for (row, owner) in embedded.rows().zip(owners) {
            phrases[owner].extend(unit(row));
        }
        Ok(Self { labels, phrases, dimension })
    }

    /// Labels in scoring order: groups in taxonomy order, labels in group order.
    pub fn labels(&self) -> &[LabelRef] {
        &self.labels
    }

    /// Scores one text vector against every label.
    pub fn score(&self, text: &[f32]) -> Vec<f32> {
        let text = unit(text);
        self.phrases
            .iter()
            .map(|phrases| {
                phrases
                    .chunks_exact(self.dimension)
                    .map(|p| dot(p, &text))
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .collect()
    }
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// How a label's decision threshold was set.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ThresholdRule {
    /// Per label: where a two-component Gaussian mixture of the sample's scores switches from
    /// the low to the high component, at least `floor`.
    Mixture {
        /// Absolute minimum cosine.
        floor: f32,
    },
    /// One cosine cut-off for every label.
    Fixed {
        /// The cut-off.
        threshold: f32,
    },
}

/// A label's fitted mixture: the low ("not about it") and high ("about it") components.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Mixture {
    /// Mean score of texts not about the label.
    pub low_mean: f32,
    /// Spread of the low component.
    pub low_std: f32,
    /// Mean score of texts about the label.
    pub high_mean: f32,
    /// Spread of the high component.
    pub high_std: f32,
    /// Estimated share of texts about the label.
    pub high_weight: f32,
}

impl Mixture {
    /// Fits two Gaussians to `xs` by expectation-maximisation; `None` when they do not separate
    /// (one component nearly empty, or means closer than their spreads allow).
    pub fn fit(xs: &[f32]) -> Option<Self> {
        let n = xs.len();
        if n < 4 {
            return None;
        }
        let mut sorted = xs.to_vec();
        sorted.sort_by(f32::total_cmp);
        let (_, std) = mean_std(xs);
        let mut m = Self {
            low_mean: sorted[n / 4],
            low_std: (std / 2.0).max(1e-3),
            high_mean: sorted[3 * n / 4],
            high_std: (std / 2.0).max(1e-3),
            high_weight: 0.5,
        };
        if m.high_mean - m.low_mean < 1e-4 {
            return None;
        }
        let mut resp = vec![0f32; n];
        for _ in 0..200 {
            for (r, &x) in resp.iter_mut().zip(xs) {
                *r = m.posterior_high(x);
            }
            let high: f32 = resp.iter().sum();
            let low = n as f32 - high;
            if high < 1.0 || low < 1.0 {
                return None;
            }
            let next_high = resp.iter().zip(xs).map(|(r, x)| r * x).sum::<f32>() / high;
            let next_low = resp.iter().zip(xs).map(|(r, x)| (1.0 - r) * x).sum::<f32>() / low;
            let var_high =
                resp.iter().zip(xs).map(|(r, x)| r * (x - next_high).powi(2)).sum::<f32>() / high;
            let var_low =
                resp.iter().zip(xs).map(|(r, x)| (1.0 - r) * (x - next_low).powi(2)).sum::<f32>()
                    / low;
            let next = Self {
                low_mean: next_low,
                low_std: var_low.sqrt().max(1e-3),
                high_mean: next_high,
                high_std: var_high.sqrt().max(1e-3),
                high_weight: high / n as f32,
            };
            let moved = (next.low_mean - m.low_mean).abs() + (next.high_mean - m.high_mean).abs();
            m = next;
            if moved < 1e-6 {
                break;
            }
        }
        let separated = m.high_mean - m.low_mean >= 0.5 * (m.low_std + m.high_std);
        let both_present = m.high_weight >= 0.01 && m.high_weight <= 0.99;
        (separated && both_present && m.high_mean > m.low_mean).then_some(m)
    }

    /// Probability that a score comes from the high component.
    pub fn posterior_high(&self, x: f32) -> f32 {
        let density = |mean: f32, std: f32| (-0.5 * ((x - mean) / std).powi(2)).exp() / std;
        let high = self.high_weight * density(self.high_mean, self.high_std);
        let low = (1.0 - self.high_weight) * density(self.low_mean, self.low_std);
        if high + low > 0.0 {
            high / (high + low)
        } else if x > self.high_mean {
            1.0
        } else {
            0.0
        }
    }

    /// The score between the two means where the high component becomes the more likely one.
    pub fn threshold(&self) -> f32 {
        let (mut lo, mut hi) = (self.low_mean, self.high_mean);
        for _ in 0..50 {
            let mid = 0.5 * (lo + hi);
            if self.posterior_high(mid) >= 0.5 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

fn mean_std(xs: &[f32]) -> (f32, f32) {
    let n = xs.len().max(1) as f32;
    let mean = xs.iter().sum::<f32>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Per-label thresholds and what they came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Thresholds {
    /// The rule that set them.
    pub rule: ThresholdRule,
    /// Number of texts the calibration used.
    pub calibration_texts: usize,
    /// Per label, the fitted mixture, or `None` when it did not separate (or was not fitted).
    pub mixtures: Vec<Option<Mixture>>,
    /// Decision threshold per label.
    pub values: Vec<f32>,
}

impl Thresholds {
    /// Derives per-label thresholds from score rows of a calibration sample.
    ///
    /// With fewer than [`MIN_CALIBRATION_TEXTS`] rows a mixture rule falls back to
    /// [`FALLBACK_THRESHOLD`] for every label; check [`Thresholds::rule`] to tell.
    pub fn fit(rule: ThresholdRule, sample: &[Vec<f32>], label_count: usize) -> Self {
        let n = sample.len();
        let rule = match rule {
            ThresholdRule::Mixture { .. } if n < MIN_CALIBRATION_TEXTS => {
                ThresholdRule::Fixed { threshold: FALLBACK_THRESHOLD }
            }
            other => other,
        };
        let (mixtures, values) = match rule {
            ThresholdRule::Mixture { floor } => (0..label_count)
                .map(|j| {
                    let column: Vec<f32> = sample.iter().map(|row| row[j]).collect();
                    let mixture = Mixture::fit(&column);
                    let value = match &mixture {
                        Some(m) => m.threshold(),
                        None => {
                            let (mean, std) = mean_std(&column);
                            mean + 2.0 * std
                        }
                    };
                    (mixture, value.max(floor))
                })
                .unzip(),
            ThresholdRule::Fixed { threshold } => {
                (vec![None; label_count], vec![threshold; label_count])
            }
        };
        Self { rule, calibration_texts: n, mixtures, values }
    }

    /// Which labels a score row carries.
    pub fn assign(&self, scores: &[f32]) -> Vec<bool> {
        scores.iter().zip(&self.values).map(|(s, t)| s >= t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-normal numbers (sum of uniforms), so tests need no extra crate.
    fn normals(n: usize, mean: f32, std: f32, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32
        };
        (0..n).map(|_| mean + std * ((0..12).map(|_| uniform()).sum::<f32>() - 6.0)).collect()
    }

    #[test]
    fn mixture_finds_the_gap_between_two_populations() {
        let mut xs = normals(700, 0.2, 0.05, 1);
        xs.extend(normals(300, 0.55, 0.05, 2));
        let m = Mixture::fit(&xs).expect("two clear populations separate");
        assert!((m.high_weight - 0.3).abs() < 0.05, "{m:?}");
        let t = m.threshold();
        assert!(t > 0.3 && t < 0.45, "threshold {t}");
    }

    #[test]
    fn labels_with_different_prevalence_get_their_own_thresholds() {
        // Label 0: common and high-scoring; label 1: rare and low-scoring.
        let mut common = normals(500, 0.3, 0.05, 3);
        common.extend(normals(500, 0.6, 0.05, 4));
        let mut rare = normals(950, 0.1, 0.04, 5);
        rare.extend(normals(50, 0.4, 0.04, 6));
        let sample: Vec<Vec<f32>> = common.iter().zip(&rare).map(|(a, b)| vec![*a, *b]).collect();
        let t = Thresholds::fit(ThresholdRule::Mixture { floor: 0.05 }, &sample, 2);
        assert!(t.values[0] > 0.4 && t.values[0] < 0.5, "{:?}", t.values);
        assert!(t.values[1] > 0.2 && t.values[1] < 0.35, "{:?}", t.values);
        assert_eq!(t.assign(&[0.55, 0.38]), vec![true, true]);
        assert_eq!(t.assign(&[0.35, 0.15]), vec![false, false]);
    }

    #[test]
    fn one_population_falls_back_to_outliers_only() {
        let xs = normals(1000, 0.3, 0.05, 7);
        let sample: Vec<Vec<f32>> = xs.iter().map(|x| vec![*x]).collect();
        let t = Thresholds::fit(ThresholdRule::Mixture { floor: 0.05 }, &sample, 1);
        if t.mixtures[0].is_none() {
            assert!(t.values[0] > 0.38, "{:?}", t.values);
        }
        let carried = xs.iter().filter(|&&x| x >= t.values[0]).count();
        assert!(carried < 100, "{carried} of 1000 texts carry a label with one population");
    }

    #[test]
    fn too_few_texts_fall_back_to_a_fixed_threshold() {
        let sample = vec![vec![0.5f32]; MIN_CALIBRATION_TEXTS - 1];
        let t = Thresholds::fit(ThresholdRule::Mixture { floor: 0.2 }, &sample, 1);
        assert_eq!(t.rule, ThresholdRule::Fixed { threshold: FALLBACK_THRESHOLD });
        assert_eq!(t.values, vec![FALLBACK_THRESHOLD]);
    }
}
