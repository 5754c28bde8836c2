//! Arguments of `habitlens purchase`: train, predict and evaluate a purchase model on tabular
//! data.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cli::{ENV_MODEL, EngineArg};
use crate::model::DEFAULT_MODEL;
use crate::purchase::schema::Task;

/// Arguments of `habitlens purchase`.
#[derive(Debug, Args)]
pub struct PurchaseArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PurchaseCommand,
}

/// The purchase commands.
#[derive(Debug, Subcommand)]
pub enum PurchaseCommand {
    /// Train a model that predicts a purchase (yes/no) or an amount from a CSV file.
    Train(Box<PurchaseTrainArgs>),
    /// Write a probability (or amount) and a decision for every row of a CSV file.
    Predict(PurchasePredictArgs),
    /// Score a model on a CSV file with known outcomes.
    Evaluate(PurchaseEvaluateArgs),
}

/// Hidden layer widths parsed from `64,32` (`none` for a linear model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(pub Vec<usize>);

/// Comma-separated layer widths (`64,32`); `none` or an empty string for a linear model.
fn widths(s: &str) -> Result<Widths, String> {
    if s.trim().is_empty() || s.eq_ignore_ascii_case("none") {
        return Ok(Widths(Vec::new()));
    }
    s.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("expected positive layer widths like `64,32`, got `{w}`")),
        })
        .collect::<Result<_, _>>()
        .map(Widths)
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..0.9).contains(&f) => Ok(f),
        _ => Err(format!("expected a fraction in [0, 0.9), got `{s}`")),
    }
}

/// A learning rate: a finite number above 0 (`NaN` made training spin without end).
fn learning_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("expected a number above 0, got `{s}`")),
    }
}

/// A weight decay: a finite number, 0 or more.
fn weight_decay(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("expected a number, 0 or more, got `{s}`")),
    }
}

fn dropout(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a probability in [0, 1), got `{s}`")),
    }
}

/// Which model embeds a text column.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Text column")]
pub struct EmbeddingArgs {
    /// Sentence-transformers model for `--text-column`: Hub id or local folder.
    ///
    /// At predict and evaluate time the model the purchase model was trained with is used
    /// unless this is given.
    #[arg(long, env = ENV_MODEL, value_name = "ID|DIR")]
    pub embedding_model: Option<String>,
    /// Texts per embedding forward pass.
    #[arg(long, default_value_t = crate::embed::DEFAULT_BATCH_SIZE, value_name = "N")]
    pub embed_batch_size: usize,
    /// Encoder forward pass (see `habitlens embed --help`).
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<EngineArg>,
}

impl EmbeddingArgs {
    /// The embedding model to use: this option, else `trained_with`, else the default.
    pub fn model_or(&self, trained_with: Option<&str>) -> String {
        self.embedding_model
            .clone()
            .or(trained_with.map(str::to_string))
            .unwrap_or_else(|| DEFAULT_MODEL.to_string())
    }
}

/// Arguments of `habitlens purchase train`.
#[derive(Debug, Args)]
pub struct PurchaseTrainArgs {
    /// Training data: CSV (or `.tsv`) with a header row.
    pub data: PathBuf,
    /// Column to predict: yes/no values (TRUE/FALSE, 1/0, yes/no) or amounts.
    #[arg(long, value_name = "COL", help_heading = "Columns")]
    pub target: String,
    /// Folder to write the model to (weights and schema.json).
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    /// `classify`: a yes/no outcome with a probability; `regress`: an amount.
    #[arg(long, value_enum, default_value_t = Task::Classify)]
    pub task: Task,
    /// The target value meaning yes, when it is not TRUE/yes/1.
    #[arg(long, value_name = "VALUE", help_heading = "Columns")]
    pub positive: Option<String>,
    /// Columns to treat as numbers (comma-separated); others are inferred.
    #[arg(long, value_delimiter = ',', value_name = "COLS", help_heading = "Columns")]
    pub numeric: Vec<String>,
    /// Columns to treat as categories, such as integer-coded ones (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "COLS", help_heading = "Columns")]
    pub categorical: Vec<String>,
    /// Column of free text to embed with the sentence transformer and join to the features.
    #[arg(long, value_name = "COL", help_heading = "Columns")]
    pub text_column: Option<String>,
    /// Column holding the row id (not a feature); predictions carry it.
    #[arg(long, value_name = "COL", help_heading = "Columns")]
    pub id_column: Option<String>,
    /// Columns to leave out of the model (comma-separated); predict accepts and ignores them.
    #[arg(long, value_delimiter = ',', value_name = "COLS", help_heading = "Columns")]
    pub ignore: Vec<String>,
    /// Leave out rows whose target is empty (counted in a warning) instead of failing.
    #[arg(long, help_heading = "Columns")]
    pub skip_missing_target: bool,
    /// Hidden layer widths, comma-separated; `none` for a linear model.
    #[arg(long, value_parser = widths, default_value = "64,32", value_name = "WIDTHS", help_heading = "Network")]
    pub hidden: Widths,
    /// Dropout probability on hidden activations.
    #[arg(long, value_parser = dropout, default_value_t = 0.1, value_name = "P", help_heading = "Network")]
    pub dropout: f32,
    /// Most passes over the training rows (training stops earlier without progress).
    #[arg(long, default_value_t = 200, value_name = "N", help_heading = "Network")]
    pub epochs: usize,
    /// Epochs without a lower validation loss before training stops.
    #[arg(long, default_value_t = 15, value_name = "N", help_heading = "Network")]
    pub patience: usize,
    /// AdamW learning rate.
    #[arg(long, value_parser = learning_rate, default_value_t = 1e-3, value_name = "X", help_heading = "Network")]
    pub lr: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, value_parser = weight_decay, default_value_t = 1e-2, value_name = "X", help_heading = "Network")]
    pub weight_decay: f64,
    /// Rows per optimiser step.
    #[arg(long, default_value_t = 64, value_name = "N", help_heading = "Network")]
    pub batch_size: usize,
    /// Share of rows held out (stratified by outcome) for early stopping and the threshold.
    #[arg(long, value_parser = fraction, default_value_t = 0.2, value_name = "F", help_heading = "Network")]
    pub val_fraction: f64,
    /// Weight of a positive row in the loss: a number, or `balanced` (negatives / positives).
    ///
    /// The decision threshold is tuned for F1 either way; weighting mostly changes how
    /// probabilities are calibrated.
    #[arg(long, value_name = "W|balanced", help_heading = "Network")]
    pub pos_weight: Option<String>,
    /// Seed of the split, initialisation, shuffling and dropout: the same seed gives the same
    /// weights, bit for bit, on the same machine.
    #[arg(long, default_value_t = 42, value_name = "S", help_heading = "Network")]
    pub seed: u64,
    /// Text column embedding options.
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

/// Arguments of `habitlens purchase predict`.
#[derive(Debug, Args)]
pub struct PurchasePredictArgs {
    /// Rows to predict: CSV with the columns the model was trained on (the target may be
    /// absent).
    pub data: PathBuf,
    /// Model folder written by `purchase train`.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Output file, `.csv` or `.jsonl`: one row per input row with `id`, `probability` and
    /// `decision` (or `id` and `amount`).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Decision threshold on the probability; the one saved with the model by default.
    #[arg(long, value_name = "P")]
    pub threshold: Option<f32>,
    /// Text column embedding options.
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

/// Arguments of `habitlens purchase evaluate`.
#[derive(Debug, Args)]
pub struct PurchaseEvaluateArgs {
    /// Rows with known outcomes: CSV with the model's columns and its target.
    pub data: PathBuf,
    /// Model folder written by `purchase train`.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Also write the metrics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Decision threshold on the probability; the one saved with the model by default.
    #[arg(long, value_name = "P")]
    pub threshold: Option<f32>,
    /// Print permutation feature importance per input column: the drop in ROC-AUC (R² for
    /// amounts) when the column's values are shuffled.
    #[arg(long, help_heading = "Importance")]
    pub importance: bool,
    /// Shuffles per column for `--importance`.
    #[arg(long, default_value_t = 5, value_name = "N", help_heading = "Importance")]
    pub repeats: usize,
    /// Seed of the shuffles for `--importance`.
    #[arg(long, default_value_t = 42, value_name = "S", help_heading = "Importance")]
    pub seed: u64,
    /// Text column embedding options.
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_fractions_parse() {
        assert_eq!(widths("64,32"), Ok(Widths(vec![64, 32])));
        assert_eq!(widths("none"), Ok(Widths(vec![])));
        assert!(widths("64,0").is_err() && widths("a").is_err());
        assert!(fraction("0.2").is_ok() && fraction("1").is_err());
    }
}
