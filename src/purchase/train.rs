//! Training a purchase model: split off validation rows (stratified by outcome), learn the
//! feature encoding from the training rows only, fit the network with early stopping on the
//! validation loss, and tune the decision threshold for F1 on the validation rows.

use super::PurchaseError;
use super::encode::{Encoder, TextVectors};
use super::model::{
    AmountScaling, BinaryMetrics, ModelSchema, PurchaseModel, RegressionMetrics, Settings,
    TrainingSummary, Validation, read_amounts,
};
use super::schema::{BinaryLabels, ColumnSpec, Roles, Task};
use super::table::{Table, is_missing};
use crate::metrics::binary::best_f1_threshold;
use crate::mlp::{self, Data, EpochStats, MlpConfig, Objective, Targets};
use crate::rng::SplitMix;

/// Salt mixed into the seed for the validation split, so it does not share a stream with the
/// network's initialisation.
const SPLIT_SALT: u64 = 0x5eed_5917_u64;

/// How positive rows are weighted in the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PosWeight {
    /// Every row weighs 1.
    None,
    /// Positive rows weigh this much.
    Value(f32),
    /// Positive rows weigh negatives / positives of the training rows.
    Balanced,
}

impl PosWeight {
    /// Parses `balanced` or a positive number.
    ///
    /// # Errors
    /// A message for anything else.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("balanced") {
            return Ok(Self::Balanced);
        }
        match s.parse::<f32>() {
            Ok(w) if w.is_finite() && w > 0.0 => Ok(Self::Value(w)),
            _ => Err(format!("expected a positive number or `balanced`, got `{s}`")),
        }
    }
}

/// Everything a training run needs besides the data.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// What to predict.
    pub task: Task,
    /// Which column plays which role.
    pub roles: Roles,
    /// The target value meaning yes, when it cannot be told.
    pub positive: Option<String>,
    /// The embedding model id of the text column, kept in the schema.
    pub text_model: Option<String>,
    /// Network and optimiser settings (`standardize` is ignored: the encoder standardises).
    pub mlp: MlpConfig,
    /// Share of rows held out for early stopping and the threshold.
    pub val_fraction: f64,
    /// Weight of positive rows.
    pub pos_weight: PosWeight,
}

/// Rows of `table` whose target is present; the others are counted, for a warning.
pub fn drop_missing_targets(mut table: Table, target: usize) -> (Table, usize) {
    let skipped = table.retain(|r| !is_missing(&r[target]));
    (table, skipped)
}

/// Trains a model on `table` with the input columns `columns` (see
/// [`super::schema::infer_columns`]); `text` holds one vector per row when a column is text.
/// `skipped` is how many rows were left out before (for the summary); `on_epoch` sees each
/// epoch's losses.
///
/// # Errors
/// Fails on a bad target (missing, one value, more than two values for classification, not a
/// number for regression), a bad cell, too few rows to split, or a failing network.
pub fn train(
    table: &Table,
    columns: &[ColumnSpec],
    text: Option<&TextVectors>,
    options: &TrainOptions,
    skipped: usize,
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<PurchaseModel, PurchaseError> {
    let target = table.require(&options.roles.target, "--target")?;
    let seed = options.mlp.seed;

    // Targets and the validation split.
    let (labels, positives, amounts) = match options.task {
        Task::Classify => {
            let labels = BinaryLabels::infer(table, target, options.positive.as_deref())?;
            let positives: Vec<bool> =
                table.values(target).map(|c| labels.read(c) == Some(true)).collect();
            (Some(labels), positives, Vec::new())
        }
        Task::Regress => (None, Vec::new(), read_amounts(table, target)?),
    };
    let (train_rows, val_rows) = match options.task {
        Task::Classify => stratified_split(&positives, options.val_fraction, seed),
        Task::Regress => {
            let all = vec![false; table.len()];
            stratified_split(&all, options.val_fraction, seed)
        }
    };
    check_split(table, options, &positives, &train_rows, &val_rows)?;

    // Features, with statistics from the training rows only.
    let encoder = Encoder::fit(table, columns, &train_rows, text)?;
    let width = encoder.width();
    let train_x = encoder.encode(table, &train_rows, text)?;
    let val_x = encoder.encode(table, &val_rows, text)?;

    // Targets as the network sees them.
    let (objective, amount_scaling, pos_weight_value) = match options.task {
        Task::Classify => {
            let pos = train_rows.iter().filter(|&&r| positives[r]).count();
            let w = match options.pos_weight {
                PosWeight::None => None,
                PosWeight::Value(w) => Some(w),
                PosWeight::Balanced => Some((train_rows.len() - pos) as f32 / pos as f32),
            };
            (Objective::Sigmoid { pos_weights: w.map(|w| vec![w]) }, None, w)
        }
        Task::Regress => {
            let values: Vec<f64> = train_rows.iter().map(|&r| amounts[r]).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            let std = if var > 0.0 { var.sqrt() } else { 1.0 };
            (Objective::Mse, Some(AmountScaling { mean, std }), None)
        }
    };
    let target_values = |rows: &[usize]| -> Vec<f32> {
        rows.iter()
            .map(|&r| match amount_scaling {
                Some(s) => ((amounts[r] - s.mean) / s.std) as f32,
                None => f32::from(u8::from(positives[r])),
            })
            .collect()
    };
    let train_t = Targets::Matrix { values: target_values(&train_rows), width: 1 };
    let val_t = Targets::Matrix { values: target_values(&val_rows), width: 1 };
    let train_data = Data { features: &train_x, width, targets: &train_t };
    let val_data = Data { features: &val_x, width, targets: &val_t };

    let config = MlpConfig { standardize: false, ..options.mlp.clone() };
    let trained = mlp::train(
        &train_data,
        (!val_rows.is_empty()).then_some(&val_data),
        &objective,
        &config,
        on_epoch,
    )?;
    let epochs_run = trained.history.len();
    let mut model = PurchaseModel::new(
        ModelSchema {
            format: String::new(),
            version: 0,
            task: options.task,
            target: options.roles.target.clone(),
            labels,
            amount_scaling,
            id_column: options.roles.id.clone(),
            columns: columns.to_vec(),
            ignored: options.roles.ignore.clone(),
            text_model: text.and(options.text_model.clone()),
            features: encoder.feature_names(),
            encoder,
            threshold: None,
            settings: Settings {
                hidden: config.hidden.clone(),
                dropout: config.dropout,
                epochs: config.epochs,
                batch_size: config.batch_size,
                lr: config.lr,
                weight_decay: config.weight_decay,
                patience: config.patience,
                val_fraction: options.val_fraction,
                pos_weight: match options.pos_weight {
                    PosWeight::None => None,
                    PosWeight::Value(w) => Some(w.to_string()),
                    PosWeight::Balanced => Some("balanced".to_string()),
                },
                pos_weight_value,
                seed,
            },
            validation: Validation::Regression(RegressionMetrics::compute(&[], &[])),
            training: TrainingSummary {
                rows: table.len() + skipped,
                skipped_missing_target: skipped,
                train_rows: train_rows.len(),
                validation_rows: val_rows.len(),
                epochs_run,
                best_epoch: trained.best_epoch,
            },
        },
        trained.mlp,
    );

    // Threshold and metrics on the validation rows (the training rows when there are none).
    let (tune_rows, tune_x) =
        if val_rows.is_empty() { (&train_rows, &train_x) } else { (&val_rows, &val_x) };
    let predicted = model.predict_features(tune_x)?;
    if predicted.iter().any(|p| !p.is_finite()) {
        // A learning rate too high for the data sends the weights to NaN; tuning a threshold
        // on NaN probabilities never ended.
        return Err(PurchaseError::Diverged {
            file: table.file.clone(),
            epochs: epochs_run,
            lr: config.lr,
        });
    }
    model.schema.validation = match options.task {
        Task::Classify => {
            let probs: Vec<f32> = predicted.iter().map(|&p| p as f32).collect();
            let truth: Vec<bool> = tune_rows.iter().map(|&r| positives[r]).collect();
            let (threshold, _) = best_f1_threshold(&probs, &truth);
            model.schema.threshold = Some(threshold);
            Validation::Binary(BinaryMetrics::compute(&probs, &truth, threshold))
        }
        Task::Regress => {
            let truth: Vec<f64> = tune_rows.iter().map(|&r| amounts[r]).collect();
            Validation::Regression(RegressionMetrics::compute(&predicted, &truth))
        }
    };
    Ok(model)
}

/// Splits row indices into training and validation rows: within each outcome (all rows form
/// one group for regression), a seeded shuffle and the first `fraction` (rounded, at least one
/// when the fraction is above 0 and the group has two rows) go to validation. Both lists come
/// back in file order.
pub fn stratified_split(groups: &[bool], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = SplitMix::new(seed ^ SPLIT_SALT);
    let mut is_val = vec![false; groups.len()];
    for group in [false, true] {
        let mut members: Vec<usize> = (0..groups.len()).filter(|&i| groups[i] == group).collect();
        rng.shuffle(&mut members);
        let mut take = (fraction * members.len() as f64).round() as usize;
        if fraction > 0.0 && members.len() >= 2 {
            take = take.clamp(1, members.len() - 1);
        }
        for &i in &members[..take.min(members.len())] {
            is_val[i] = true;
        }
    }
    (0..groups.len()).partition(|&i| !is_val[i])
}

fn check_split(
    table: &Table,
    options: &TrainOptions,
    positives: &[bool],
    train_rows: &[usize],
    val_rows: &[usize],
) -> Result<(), PurchaseError> {
    let too_few = |problem: String| PurchaseError::TooFewRows { file: table.file.clone(), problem };
    if train_rows.is_empty() {
        return Err(too_few(format!("{} row(s) leave none to train on", table.len())));
    }
    if options.task == Task::Classify {
        let pos = train_rows.iter().filter(|&&r| positives[r]).count();
        if pos == 0 || pos == train_rows.len() {
            return Err(too_few(format!(
                "the training rows hold one outcome only ({pos} positive of {})",
                train_rows.len()
            )));
        }
        let val_pos = val_rows.iter().filter(|&&r| positives[r]).count();
        if !val_rows.is_empty() && val_pos == 0 {
            tracing::warn!(
                "the {} validation row(s) hold no positive outcome; the threshold cannot be tuned \
                 well",
                val_rows.len()
            );
        }
    }
    if val_rows.is_empty() {
        tracing::warn!(
            "no validation rows (`--val-fraction` {} of {} row(s)): training runs all epochs and \
             the threshold is tuned on the training rows",
            options.val_fraction,
            table.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_seeded_and_complete() {
        let groups: Vec<bool> = (0..100).map(|i| i % 5 == 0).collect();
        let (train, val) = stratified_split(&groups, 0.2, 7);
        assert_eq!(val.len(), 20);
        assert_eq!(val.iter().filter(|&&i| groups[i]).count(), 4);
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(stratified_split(&groups, 0.2, 7), (train, val.clone()));
        assert_ne!(stratified_split(&groups, 0.2, 8).1, val);
    }

    #[test]
    fn tiny_groups_keep_a_row_on_each_side() {
        let groups = [true, true, false, false, false];
        let (train, val) = stratified_split(&groups, 0.1, 1);
        assert_eq!(val.iter().filter(|&&i| groups[i]).count(), 1);
        assert_eq!(train.iter().filter(|&&i| groups[i]).count(), 1);
        assert_eq!(stratified_split(&groups, 0.0, 1).1, Vec::<usize>::new());
    }

    #[test]
    fn pos_weight_parses() {
        assert_eq!(PosWeight::parse("balanced"), Ok(PosWeight::Balanced));
        assert_eq!(PosWeight::parse("2.5"), Ok(PosWeight::Value(2.5)));
        assert!(PosWeight::parse("-1").is_err() && PosWeight::parse("lots").is_err());
    }
}
