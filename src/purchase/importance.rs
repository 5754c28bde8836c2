//! Permutation feature importance: how much the model's score drops when one input column's
//! values are shuffled across rows, breaking its link to the outcome while keeping its
//! distribution. The score is ROC-AUC for a yes/no model and R² for an amount model.
//!
//! Every feature of a column (one-hot buckets, missing flags, all embedding components) moves
//! together, since each input column owns a contiguous range of features.

use super::PurchaseError;
use super::model::PurchaseModel;
use crate::metrics::{binary, regression};
use crate::rng::SplitMix;

/// The true outcomes the score is computed against.
#[derive(Debug, Clone)]
pub enum Truth {
    /// Yes/no outcomes.
    Binary(Vec<bool>),
    /// Amounts.
    Amounts(Vec<f64>),
}

/// How much one input column matters.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColumnImportance {
    /// Column name.
    pub column: String,
    /// Mean drop of the score over the repeats (higher: matters more).
    pub drop: f64,
    /// Standard deviation of the drop over the repeats.
    pub std: f64,
}

/// The model's score on `features` against `truth`, and each input column's importance, most
/// important first. Each column is shuffled `repeats` times with a generator seeded by `seed`.
///
/// # Errors
/// Fails when the network fails, or when the score is undefined on these rows (ROC-AUC with one
/// outcome only, R² with amounts that do not vary): every drop would read 0. `file` names the
/// rows in that message.
pub fn permutation_importance(
    model: &PurchaseModel,
    features: &[f32],
    truth: &Truth,
    repeats: usize,
    seed: u64,
    file: &str,
) -> Result<(f64, Vec<ColumnImportance>), PurchaseError> {
    let width = model.schema.encoder.width();
    let rows = features.len() / width.max(1);
    let Some(baseline) = defined_score(&model.predict_features(features)?, truth) else {
        let (metric, needs) = match truth {
            Truth::Binary(_) => ("ROC-AUC", "both outcomes"),
            Truth::Amounts(_) => ("R²", "amounts that vary"),
        };
        return Err(PurchaseError::ImportanceUndefined { file: file.to_string(), metric, needs });
    };
    let mut rng = SplitMix::new(seed);
    let mut shuffled = features.to_vec();
    let mut out = Vec::new();
    for (column, range) in
        model.schema.encoder.columns.iter().zip(model.schema.encoder.column_ranges())
    {
        let mut drops = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let mut order: Vec<usize> = (0..rows).collect();
            rng.shuffle(&mut order);
            for (to, &from) in order.iter().enumerate() {
                shuffled[to * width + range.start..to * width + range.end].copy_from_slice(
                    &features[from * width + range.start..from * width + range.end],
                );
            }
            drops.push(baseline - score(&model.predict_features(&shuffled)?, truth));
        }
        // Put the column back before the next one.
        for r in 0..rows {
            shuffled[r * width + range.start..r * width + range.end]
                .copy_from_slice(&features[r * width + range.start..r * width + range.end]);
        }
        let n = drops.len() as f64;
        let mean = drops.iter().sum::<f64>() / n;
        let std = (drops.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
        out.push(ColumnImportance { column: column.name.clone(), drop: mean, std });
    }
    out.sort_by(|a, b| b.drop.total_cmp(&a.drop).then_with(|| a.column.cmp(&b.column)));
    Ok((baseline, out))
}

/// ROC-AUC or R² (0 when undefined).
fn score(predicted: &[f64], truth: &Truth) -> f64 {
    defined_score(predicted, truth).unwrap_or(0.0)
}

/// ROC-AUC or R², `None` when undefined.
fn defined_score(predicted: &[f64], truth: &Truth) -> Option<f64> {
    match truth {
        Truth::Binary(positives) => {
            let p: Vec<f32> = predicted.iter().map(|&v| v as f32).collect();
            binary::roc_auc(&p, positives)
        }
        Truth::Amounts(actual) => regression::r2(predicted, actual),
    }
}
