//! Fitting a head on embeddings of labelled rows: split, weights, training with early stopping,
//! per-label thresholds (multi-label) and validation figures.

use std::time::Instant;

use super::HeadError;
use super::format::ValidationFigures;
use super::labels::{LabelledData, TaskKind};
use super::split::{Split, stratified};
use crate::metrics::binary::best_f1_threshold;
use crate::metrics::classes::{ConfusionMatrix, MultiLabelFigures, log_loss};
use crate::mlp::{self, Data, EpochStats, Mlp, MlpConfig, Objective, Targets};

/// Threshold of a multi-label head's label when there are no validation rows to tune it on.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// How to train a head.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Model and optimiser settings.
    pub mlp: MlpConfig,
    /// Share of rows held out (stratified) for early stopping, thresholds and figures.
    pub val_fraction: f64,
    /// Weight rows inversely to their label's frequency.
    pub balanced: bool,
    /// After early stopping picked the number of epochs, train again on every row (training
    /// and validation) for that many epochs. Thresholds and validation figures still come from
    /// the first model, which never saw the validation rows.
    pub refit: bool,
}

/// What one epoch reports.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// Losses and time.
    pub stats: EpochStats,
    /// Macro-F1 on the validation rows (multi-label: at a 0.5 threshold).
    pub val_macro_f1: Option<f64>,
}

/// A fitted head and how fitting went.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The weights of the best epoch.
    pub mlp: Mlp,
    /// Per-label thresholds (multi-label), else empty.
    pub thresholds: Vec<f32>,
    /// Figures on the validation rows.
    pub validation: Option<ValidationFigures>,
    /// Rows trained on and validated on.
    pub split: Split,
    /// Epochs run.
    pub epochs_run: usize,
    /// Epoch kept.
    pub best_epoch: usize,
    /// Whether the weights come from a refit on every row.
    pub refitted: bool,
    /// Seconds of training.
    pub seconds: f64,
}

/// Fits a head on `features` (one row of `dimension` values per row of `data`).
///
/// # Errors
/// Fails when the features do not match the data or a computation fails.
pub fn fit(
    features: &[f32],
    dimension: usize,
    data: &LabelledData,
    options: &TrainOptions,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Fitted, HeadError> {
    let started = Instant::now();
    let labels = data.labels.len();
    let split = stratified(&data.targets, labels, options.val_fraction, options.mlp.seed);
    let rows_of = |idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| features[i * dimension..(i + 1) * dimension].iter().copied())
            .collect()
    };
    let (train_x, val_x) = (rows_of(&split.train), rows_of(&split.val));
    let targets_of = |idx: &[usize]| match data.kind {
        TaskKind::SingleLabel => {
            Targets::Classes(idx.iter().map(|&i| data.targets[i][0]).collect())
        }
        TaskKind::MultiLabel => Targets::Matrix { values: data.target_matrix(idx), width: labels },
    };
    let (train_t, val_t) = (targets_of(&split.train), targets_of(&split.val));
    let objective = objective(data, &split.train, options.balanced);

    let train_data = Data { features: &train_x, width: dimension, targets: &train_t };
    let val_data = Data { features: &val_x, width: dimension, targets: &val_t };
    let val = (!split.val.is_empty()).then_some(&val_data);
    let mut observe = |stats: &EpochStats, model: &Mlp| {
        let val_macro_f1 = val.and_then(|v| {
            let probs = probabilities(model, data.kind, v.features).ok()?;
            let thresholds = vec![DEFAULT_THRESHOLD; labels];
            Some(figures(data.kind, &probs, labels, v.targets, &thresholds, 0.0).macro_f1)
        });
        on_epoch(&EpochReport { stats: stats.clone(), val_macro_f1 });
    };
    let trained = mlp::train_observed(&train_data, val, &objective, &options.mlp, &mut observe)?;

    let mut thresholds = match data.kind {
        TaskKind::SingleLabel => vec![],
        TaskKind::MultiLabel => vec![DEFAULT_THRESHOLD; labels],
    };
    let validation = match val {
        Some(v) => {
            let probs = probabilities(&trained.mlp, data.kind, v.features)?;
            if data.kind == TaskKind::MultiLabel {
                thresholds = tune_thresholds(&probs, labels, &data.target_matrix(&split.val));
            }
            let loss = trained.history[trained.best_epoch - 1].val_loss.unwrap_or(f64::NAN);
            Some(figures(data.kind, &probs, labels, v.targets, &thresholds, loss))
        }
        None => None,
    };
    let mut mlp = trained.mlp;
    let refitted = options.refit && val.is_some();
    if refitted {
        let all: Vec<usize> = (0..data.len()).collect();
        let all_t = targets_of(&all);
        let all_data = Data { features, width: dimension, targets: &all_t };
        let config = MlpConfig { epochs: trained.best_epoch, ..options.mlp.clone() };
        let objective = self::objective(data, &all, options.balanced);
        mlp = mlp::train(&all_data, None, &objective, &config, &mut |_| {})?.mlp;
        tracing::debug!(epochs = trained.best_epoch, rows = all.len(), "refitted on every row");
    }
    // A learning rate too high sends the weights to infinity or NaN; such a head cannot be
    // saved in a form anyone could read back.
    let sample = &features[..features.len().min(64 * dimension)];
    if probabilities(&mlp, data.kind, sample)?.iter().any(|p| !p.is_finite()) {
        return Err(HeadError::Diverged { lr: options.mlp.lr });
    }
    Ok(Fitted {
        epochs_run: trained.history.len(),
        best_epoch: trained.best_epoch,
        refitted,
        mlp,
        thresholds,
        validation,
        split,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The loss, with balanced weights computed on the training rows when asked.
fn objective(data: &LabelledData, train: &[usize], balanced: bool) -> Objective {
    let labels = data.labels.len();
    let mut counts = vec![0usize; labels];
    for &i in train {
        for &l in &data.targets[i] {
            counts[l as usize] += 1;
        }
    }
    let n = train.len() as f32;
    match data.kind {
        TaskKind::SingleLabel => Objective::Softmax {
            class_weights: balanced.then(|| {
                let present = counts.iter().filter(|&&c| c > 0).count().max(1) as f32;
                counts
                    .iter()
                    .map(|&c| if c == 0 { 1.0 } else { n / (present * c as f32) })
                    .collect()
            }),
        },
        TaskKind::MultiLabel => {
            Objective::Sigmoid {
                pos_weights: balanced.then(|| {
                    counts
                        .iter()
                        .map(|&c| {
                            if c == 0 {
                                1.0
                            } else {
                                ((n - c as f32) / c as f32).clamp(1.0, 1000.0)
                            }
                        })
                        .collect()
                }),
            }
        }
    }
}

/// Probabilities of a model's outputs: softmax or sigmoid.
pub(crate) fn probabilities(
    model: &Mlp,
    kind: TaskKind,
    features: &[f32],
) -> Result<Vec<f32>, HeadError> {
    let mut out = model.forward(features)?;
    match kind {
        TaskKind::SingleLabel => mlp::softmax_in_place(&mut out, model.outputs()),
        TaskKind::MultiLabel => out.iter_mut().for_each(|x| *x = mlp::sigmoid(*x)),
    }
    Ok(out)
}

/// Per label, the probability cut-off with the best F1 on `truth` (rows × labels, 0/1).
pub fn tune_thresholds(probs: &[f32], labels: usize, truth: &[f32]) -> Vec<f32> {
    (0..labels)
        .map(|l| {
            let scores: Vec<f32> = probs.iter().skip(l).step_by(labels).copied().collect();
            let positives: Vec<bool> =
                truth.iter().skip(l).step_by(labels).map(|&t| t > 0.5).collect();
            if positives.iter().any(|&p| p) {
                best_f1_threshold(&scores, &positives).0
            } else {
                DEFAULT_THRESHOLD
            }
        })
        .collect()
}

/// Validation figures of `probs` against `targets`.
pub(crate) fn figures(
    kind: TaskKind,
    probs: &[f32],
    labels: usize,
    targets: &Targets,
    thresholds: &[f32],
    loss: f64,
) -> ValidationFigures {
    match (kind, targets) {
        (TaskKind::SingleLabel, Targets::Classes(truth)) => {
            let predicted: Vec<u32> = probs.chunks_exact(labels).map(argmax).collect();
            let m = ConfusionMatrix::new(truth, &predicted, labels);
            let loss = if loss.is_nan() { log_loss(probs, labels, truth) } else { loss };
            let mut seen = vec![false; labels];
            truth.iter().for_each(|&c| seen[c as usize] = true);
            ValidationFigures {
                rows: truth.len(),
                loss,
                accuracy: m.accuracy(),
                macro_f1: m.macro_f1(),
                weighted_f1: Some(m.weighted_f1()),
                micro_f1: None,
                labels_seen: Some(seen.iter().filter(|&&s| s).count()),
            }
        }
        (_, Targets::Matrix { values, .. }) => {
            let truth: Vec<bool> = values.iter().map(|&v| v > 0.5).collect();
            let predicted: Vec<bool> =
                probs.iter().enumerate().map(|(k, &p)| p >= thresholds[k % labels]).collect();
            let m = MultiLabelFigures::new(&truth, &predicted, labels);
            let seen = (0..labels).filter(|&l| truth.iter().skip(l).step_by(labels).any(|&t| t));
            let labels_seen = Some(seen.count());
            ValidationFigures {
                rows: truth.len() / labels,
                loss,
                accuracy: m.exact_match,
                macro_f1: m.macro_f1,
                weighted_f1: None,
                micro_f1: Some(m.micro_f1),
                labels_seen,
            }
        }
        _ => unreachable!("single-label heads have class targets, multi-label heads a matrix"),
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_tuned_per_label_on_validation_rows() {
        // Label 0 separates at about 0.6; label 1 at about 0.25; label 2 has no positive.
        let probs = [0.9, 0.3, 0.1, 0.7, 0.2, 0.1, 0.5, 0.1, 0.2, 0.2, 0.35, 0.3];
        let truth = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let t = tune_thresholds(&probs, 3, &truth);
        assert!(t[0] > 0.5 && t[0] <= 0.7, "{t:?}");
        assert!(t[1] > 0.2 && t[1] <= 0.3, "{t:?}");
        assert_eq!(t[2], DEFAULT_THRESHOLD);
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.2, 0.5, 0.5]), 1);
        assert_eq!(argmax(&[1.0]), 0);
    }
}
