//! A trained purchase model: the network, and the schema that says how rows become its
//! features and how its outputs read. Saved as a folder holding [`WEIGHTS_FILE`] (safetensors)
//! and [`SCHEMA_FILE`] (JSON).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::PurchaseError;
use super::encode::{Encoder, TextVectors};
use super::schema::{BinaryLabels, ColumnKind, ColumnSpec, Task};
use super::table::Table;
use crate::metrics::{binary, regression};
use crate::mlp::{Mlp, sigmoid};

/// The weights file in a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The schema file in a model folder.
pub const SCHEMA_FILE: &str = "schema.json";
/// What [`ModelSchema::format`] holds.
const FORMAT: &str = "habitlens-purchase";
/// The schema version this build writes and reads.
const VERSION: u32 = 1;
/// Rows per forward pass when predicting.
const PREDICT_CHUNK: usize = 4096;

/// Training settings, as used (after defaults), kept in the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Dropout on hidden activations.
    pub dropout: f32,
    /// Most epochs.
    pub epochs: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Epochs without a lower validation loss before stopping.
    pub patience: usize,
    /// Share of rows held out for validation.
    pub val_fraction: f64,
    /// Weight of a positive row in the loss (classification), as given: a number or `balanced`.
    pub pos_weight: Option<String>,
    /// Weight of a positive row in the loss as used (1 for none).
    pub pos_weight_value: Option<f32>,
    /// Seed of the split, initialisation, shuffling and dropout.
    pub seed: u64,
}

/// Metrics of yes/no predictions at a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    /// Rows scored.
    pub rows: usize,
    /// Rows with a positive target.
    pub positives: usize,
    /// Share of correct decisions.
    pub accuracy: f64,
    /// Of rows predicted positive, the share that are.
    pub precision: f64,
    /// Of positive rows, the share predicted positive.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Area under the ROC curve (`null` with one class only).
    pub roc_auc: Option<f64>,
    /// Area under the precision-recall curve, as average precision (`null` with no positive).
    pub pr_auc: Option<f64>,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// The decision threshold on the probability.
    pub threshold: f32,
}

impl BinaryMetrics {
    /// Scores probabilities against outcomes at `threshold` (positive when `p >= threshold`).
    pub fn compute(probabilities: &[f32], positives: &[bool], threshold: f32) -> Self {
        let counts = binary::Counts::at(probabilities, positives, threshold);
        Self {
            rows: probabilities.len(),
            positives: positives.iter().filter(|&&p| p).count(),
            accuracy: counts.accuracy(),
            precision: counts.precision(),
            recall: counts.recall(),
            f1: counts.f1(),
            roc_auc: binary::roc_auc(probabilities, positives),
            pr_auc: binary::average_precision(probabilities, positives),
            brier: binary::brier(probabilities, positives),
            threshold,
        }
    }
}

/// Metrics of predicted amounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Rows scored.
    pub rows: usize,
    /// Mean squared error.
    pub mse: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination (`null` when the true amounts are constant).
    pub r2: Option<f64>,
}

impl RegressionMetrics {
    /// Scores predicted amounts against true ones.
    pub fn compute(predicted: &[f64], actual: &[f64]) -> Self {
        Self {
            rows: actual.len(),
            mse: regression::mse(predicted, actual),
            rmse: regression::rmse(predicted, actual),
            mae: regression::mae(predicted, actual),
            r2: regression::r2(predicted, actual),
        }
    }
}

/// Metrics on the validation rows at the end of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Validation {
    /// For a yes/no model (the threshold was tuned on these rows, so F1 is optimistic).
    Binary(BinaryMetrics),
    /// For an amount model.
    Regression(RegressionMetrics),
}

/// How a training run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Rows in the file.
    pub rows: usize,
    /// Rows left out because their target was missing (`--skip-missing-target`).
    pub skipped_missing_target: usize,
    /// Rows trained on.
    pub train_rows: usize,
    /// Rows held out for validation.
    pub validation_rows: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// Mean and standard deviation of the training amounts; the network predicts standardised
/// amounts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AmountScaling {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
}

/// Everything about a model but its weights: written as `schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSchema {
    /// Always `habitlens-purchase`.
    pub format: String,
    /// Schema version.
    pub version: u32,
    /// What the model predicts.
    pub task: Task,
    /// The target column.
    pub target: String,
    /// The target's yes and no values (classification).
    pub labels: Option<BinaryLabels>,
    /// Scaling of the amounts (regression).
    pub amount_scaling: Option<AmountScaling>,
    /// The id column, if any.
    pub id_column: Option<String>,
    /// Input columns and their kinds.
    pub columns: Vec<ColumnSpec>,
    /// Columns of the training file left out with `--ignore`; accepted, and unused, at predict.
    pub ignored: Vec<String>,
    /// The embedding model of the text column, if any.
    pub text_model: Option<String>,
    /// How input columns become features, with the training statistics.
    pub encoder: Encoder,
    /// Feature names, in network input order.
    pub features: Vec<String>,
    /// Decision threshold on the probability (classification), tuned for F1 on validation rows.
    pub threshold: Option<f32>,
    /// Training settings.
    pub settings: Settings,
    /// Validation metrics.
    pub validation: Validation,
    /// Row counts and epochs.
    pub training: TrainingSummary,
}

/// A trained purchase model.
#[derive(Debug, Clone)]
pub struct PurchaseModel {
    /// How rows become features and outputs read.
    pub schema: ModelSchema,
    /// The network.
    pub mlp: Mlp,
}

impl PurchaseModel {
    /// Bundles a schema and its network, filling in the format fields.
    pub(super) fn new(mut schema: ModelSchema, mlp: Mlp) -> Self {
        schema.format = FORMAT.to_string();
        schema.version = VERSION;
        Self { schema, mlp }
    }

    /// Writes the model folder `dir` (created if needed).
    ///
    /// # Errors
    /// Fails when a file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), PurchaseError> {
        let schema_path = dir.join(SCHEMA_FILE);
        std::fs::create_dir_all(dir)
            .map_err(|e| PurchaseError::ModelWrite { path: dir.to_path_buf(), source: e.into() })?;
        let weights_path = dir.join(WEIGHTS_FILE);
        self.mlp.save(&weights_path)?;
        crate::output::write_json(&schema_path, &self.schema).map_err(|e| {
            PurchaseError::ModelWrite { path: schema_path.clone(), source: e.into() }
        })?;
        Ok(())
    }

    /// Reads the model folder `dir`.
    ///
    /// # Errors
    /// Fails when a file is missing or unreadable, or the schema and weights disagree.
    pub fn load(dir: &Path) -> Result<Self, PurchaseError> {
        let schema_path = dir.join(SCHEMA_FILE);
        let read_err =
            |reason: String| PurchaseError::ModelRead { path: schema_path.clone(), reason };
        let text = std::fs::read_to_string(&schema_path).map_err(|e| read_err(e.to_string()))?;
        let schema: ModelSchema =
            serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
        if schema.format != FORMAT || schema.version != VERSION {
            return Err(read_err(format!(
                "expected format `{FORMAT}` version {VERSION}, found `{}` version {}",
                schema.format, schema.version
            )));
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let mlp = Mlp::load(&weights_path).map_err(|e| PurchaseError::ModelRead {
            path: weights_path.clone(),
            reason: e.to_string(),
        })?;
        if mlp.inputs() != schema.encoder.width() || mlp.outputs() != 1 {
            return Err(PurchaseError::ModelRead {
                path: weights_path,
                reason: format!(
                    "the network takes {} features and gives {} outputs; the schema describes {} \
                     features and 1 output",
                    mlp.inputs(),
                    mlp.outputs(),
                    schema.encoder.width()
                ),
            });
        }
        Ok(Self { schema, mlp })
    }

    /// The text column, if the model has one.
    pub fn text_column(&self) -> Option<&str> {
        self.schema.columns.iter().find(|c| c.kind == ColumnKind::Text).map(|c| c.name.as_str())
    }

    /// Checks that `table` has every input column (and the id column) and nothing unknown; the
    /// target and the ignored columns may be present or not.
    ///
    /// # Errors
    /// [`PurchaseError::ColumnMismatch`] naming the missing and unexpected columns.
    pub fn check_columns(&self, table: &Table) -> Result<(), PurchaseError> {
        let schema = &self.schema;
        let required: Vec<&str> = schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .chain(schema.id_column.as_deref())
            .collect();
        let missing: Vec<String> =
            required.iter().filter(|c| table.column(c).is_none()).map(|c| c.to_string()).collect();
        let unexpected: Vec<String> = table
            .headers
            .iter()
            .filter(|h| {
                !required.contains(&h.as_str())
                    && **h != schema.target
                    && !schema.ignored.contains(h)
            })
            .cloned()
            .collect();
        if missing.is_empty() && unexpected.is_empty() {
            Ok(())
        } else {
            Err(PurchaseError::ColumnMismatch { file: table.file.clone(), missing, unexpected })
        }
    }

    /// Encodes every row of `table` (rows × features).
    ///
    /// # Errors
    /// See [`Encoder::encode`].
    pub fn features(
        &self,
        table: &Table,
        text: Option<&TextVectors>,
    ) -> Result<Vec<f32>, PurchaseError> {
        let rows: Vec<usize> = (0..table.len()).collect();
        self.schema.encoder.encode(table, &rows, text)
    }

    /// Probabilities (classification) or amounts (regression) for rows of features.
    ///
    /// # Errors
    /// Fails when the features are not whole rows of the model's width.
    pub fn predict_features(&self, features: &[f32]) -> Result<Vec<f64>, PurchaseError> {
        let width = self.mlp.inputs();
        let mut out = Vec::with_capacity(features.len() / width.max(1));
        for chunk in features.chunks(PREDICT_CHUNK * width.max(1)) {
            let raw = self.mlp.forward(chunk)?;
            match self.schema.amount_scaling {
                Some(s) => out.extend(raw.iter().map(|&v| f64::from(v) * s.std + s.mean)),
                None => out.extend(raw.iter().map(|&v| f64::from(sigmoid(v)))),
            }
        }
        Ok(out)
    }

    /// Probabilities or amounts for every row of `table`.
    ///
    /// # Errors
    /// See [`PurchaseModel::features`] and [`PurchaseModel::predict_features`].
    pub fn predict(
        &self,
        table: &Table,
        text: Option<&TextVectors>,
    ) -> Result<Vec<f64>, PurchaseError> {
        self.predict_features(&self.features(table, text)?)
    }

    /// Reads the target of every row of `table` as yes/no.
    ///
    /// # Errors
    /// Fails when the column is absent or a cell is missing or neither label.
    pub fn binary_targets(&self, table: &Table) -> Result<Vec<bool>, PurchaseError> {
        let labels = self.schema.labels.as_ref().expect("a classification model has labels");
        let index = table.require(&self.schema.target, "the model's target")?;
        table
            .values(index)
            .enumerate()
            .map(|(i, cell)| {
                if super::table::is_missing(cell) {
                    return Err(PurchaseError::MissingTarget {
                        file: table.file.clone(),
                        row: table.row_number(i),
                        column: self.schema.target.clone(),
                    });
                }
                labels.read(cell).ok_or_else(|| PurchaseError::UnknownTarget {
                    file: table.file.clone(),
                    row: table.row_number(i),
                    column: self.schema.target.clone(),
                    value: cell.to_string(),
                    expected: format!("`{}` nor `{}`", labels.positive, labels.negative),
                })
            })
            .collect()
    }

    /// Reads the target of every row of `table` as an amount.
    ///
    /// # Errors
    /// Fails when the column is absent or a cell is missing or not a number.
    pub fn amount_targets(&self, table: &Table) -> Result<Vec<f64>, PurchaseError> {
        let index = table.require(&self.schema.target, "the model's target")?;
        read_amounts(table, index)
    }
}

/// Reads column `index` as amounts, every cell required.
pub(crate) fn read_amounts(table: &Table, index: usize) -> Result<Vec<f64>, PurchaseError> {
    table
        .values(index)
        .enumerate()
        .map(|(i, cell)| {
            if super::table::is_missing(cell) {
                return Err(PurchaseError::MissingTarget {
                    file: table.file.clone(),
                    row: table.row_number(i),
                    column: table.headers[index].clone(),
                });
            }
            super::schema::parse_number(cell).ok_or_else(|| PurchaseError::NotAnAmount {
                file: table.file.clone(),
                row: table.row_number(i),
                column: table.headers[index].clone(),
                value: cell.to_string(),
            })
        })
        .collect()
}
