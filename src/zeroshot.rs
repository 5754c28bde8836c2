//! Zero-shot labelling: score each text against every label of a taxonomy, then decide which
//! labels it carries.
//!
//! A text's score for a label is the highest cosine similarity between the text and any of the
//! label's phrases. Raw cosines are not comparable across labels: a label phrased in generic
//! words ("great value for the price") is close to most reviews, a specific one ("the box was
//! crushed") to few, so one fixed cut-off assigns some labels to nearly every text and others to
//! none. We therefore calibrate each label on the corpus itself: from a sample of texts we take
//! the mean and standard deviation of its scores, and a text carries the label when its score
//! stands `z` standard deviations above that mean (a per-label z-score), and also reaches a small
//! absolute floor so that a label no text is close to is not forced onto the best of a bad lot.
//! The sample is the first [`CALIBRATION_TEXTS`] non-empty texts, which keeps memory bounded on
//! inputs of any size; a file sorted by topic calibrates on its first topic, so shuffle such files.

use crate::embed::{EmbedError, Embedder};
use crate::taxonomy::Taxonomy;

/// Number of non-empty texts used to calibrate the per-label thresholds.
pub const CALIBRATION_TEXTS: usize = 2000;

/// Fewest texts for which per-label calibration is attempted; below it, a fixed cosine
/// threshold is used.
pub const MIN_CALIBRATION_TEXTS: usize = 20;

/// Default number of standard deviations above a label's mean score.
pub const DEFAULT_Z: f32 = 1.5;

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
    /// Per label: mean + `z` standard deviations of the corpus sample's scores, at least `floor`.
    Calibrated {
        /// Standard deviations above the mean.
        z: f32,
        /// Absolute minimum cosine.
        floor: f32,
    },
    /// One cosine cut-off for every label.
    Fixed {
        /// The cut-off.
        threshold: f32,
    },
}

/// Per-label thresholds and the statistics they came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Thresholds {
    /// The rule that set them.
    pub rule: ThresholdRule,
    /// Number of texts the statistics come from.
    pub calibration_texts: usize,
    /// Mean score per label over the calibration texts.
    pub means: Vec<f32>,
    /// Standard deviation per label over the calibration texts.
    pub stds: Vec<f32>,
    /// Decision threshold per label.
    pub values: Vec<f32>,
}

impl Thresholds {
    /// Derives per-label thresholds from score rows of a calibration sample.
    ///
    /// With fewer than [`MIN_CALIBRATION_TEXTS`] rows a calibrated rule falls back to
    /// [`FALLBACK_THRESHOLD`] for every label; check [`Thresholds::rule`] to tell.
    pub fn fit(rule: ThresholdRule, sample: &[Vec<f32>], label_count: usize) -> Self {
        let n = sample.len();
        let mut means = vec![0f32; label_count];
        let mut stds = vec![0f32; label_count];
        for row in sample {
            for (m, s) in means.iter_mut().zip(row) {
                *m += s / n as f32;
            }
        }
        for row in sample {
            for ((v, s), m) in stds.iter_mut().zip(row).zip(&means) {
                *v += (s - m).powi(2) / n.max(2).saturating_sub(1) as f32;
            }
        }
        stds.iter_mut().for_each(|v| *v = v.sqrt());
        let rule = match rule {
            ThresholdRule::Calibrated { .. } if n < MIN_CALIBRATION_TEXTS => {
                ThresholdRule::Fixed { threshold: FALLBACK_THRESHOLD }
            }
            other => other,
        };
        let values = match rule {
            ThresholdRule::Calibrated { z, floor } => {
                means.iter().zip(&stds).map(|(m, s)| (m + z * s).max(floor)).collect()
            }
            ThresholdRule::Fixed { threshold } => vec![threshold; label_count],
        };
        Self { rule, calibration_texts: n, means, stds, values }
    }

    /// Which labels a score row carries.
    pub fn assign(&self, scores: &[f32]) -> Vec<bool> {
        scores.iter().zip(&self.values).map(|(s, t)| s >= t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_sets_each_label_above_its_own_mean() {
        // Label 0 scores high on every text, label 1 low: one cut-off cannot serve both.
        let sample: Vec<Vec<f32>> = (0..100)
            .map(|i| vec![0.6 + (i % 10) as f32 * 0.01, 0.1 + (i % 10) as f32 * 0.03])
            .collect();
        let t = Thresholds::fit(ThresholdRule::Calibrated { z: 1.0, floor: 0.2 }, &sample, 2);
        assert!(t.values[0] > 0.64 && t.values[0] < 0.7, "{:?}", t.values);
        assert!(t.values[1] >= 0.2 && t.values[1] < t.values[0]);
        assert_eq!(t.assign(&[0.69, 0.35]), vec![true, true]);
        assert_eq!(t.assign(&[0.60, 0.15]), vec![false, false]);
    }

    #[test]
    fn too_few_texts_fall_back_to_a_fixed_threshold() {
        let sample = vec![vec![0.5f32]; MIN_CALIBRATION_TEXTS - 1];
        let t = Thresholds::fit(ThresholdRule::Calibrated { z: 1.0, floor: 0.2 }, &sample, 1);
        assert_eq!(t.rule, ThresholdRule::Fixed { threshold: FALLBACK_THRESHOLD });
        assert_eq!(t.values, vec![FALLBACK_THRESHOLD]);
    }
}
