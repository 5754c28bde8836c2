//! Purchase prediction from tabular customer or session data: will this visitor buy (a
//! probability and a decision), or how much will this customer spend (an amount).
//!
//! The parts, in the order a training run uses them:
//! 1. [`table`] reads the whole CSV file as text cells;
//! 2. [`schema`] decides each column's kind (numeric, boolean, categorical, text) and reads the
//!    target;
//! 3. [`encode`] learns feature statistics from the training rows and turns rows into vectors;
//! 4. [`train`] splits off validation rows, fits a [`crate::mlp`] model, tunes the decision
//!    threshold for F1 on the validation rows and bundles everything as a [`PurchaseModel`];
//! 5. [`PurchaseModel::save`] writes a model folder; [`PurchaseModel::load`] reads it back and
//!    [`PurchaseModel::check_columns`] refuses input whose columns do not match;
//! 6. [`importance`] measures how much each input column matters by permuting it.

pub mod encode;
pub mod importance;
mod model;
pub mod schema;
pub mod table;
pub mod train;

pub(crate) use model::read_amounts;
pub use model::{
    BinaryMetrics, ModelSchema, PurchaseModel, RegressionMetrics, SCHEMA_FILE, Settings,
    TrainingSummary, Validation, WEIGHTS_FILE,
};

use std::path::PathBuf;

/// What went wrong in purchase prediction. Errors about input name the file, and the row
/// (1-based, header excluded) and column where there is one.
#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    /// The file cannot be read.
    #[error("cannot read `{file}`")]
    Io {
        /// File name.
        file: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The extension names a format that is not CSV/TSV.
    #[error(
        "cannot read `{file}`: `.{extension}` files are not supported\nhint: purchase \
         commands read CSV (`.csv`) or TSV (`.tsv`) files with a header row"
    )]
    UnknownFormat {
        /// File name.
        file: String,
        /// Its extension.
        extension: String,
    },
    /// A quoted field of the header is never closed.
    #[error("`{file}`, header (line 1): {}", crate::csv_watch::HEADER_NEVER_CLOSED)]
    HeaderQuote {
        /// File name.
        file: String,
    },
    /// The file has no header or no rows.
    #[error("`{file}` is empty: {what}")]
    Empty {
        /// File name.
        file: String,
        /// What is missing.
        what: &'static str,
    },
    /// Two columns have the same name.
    #[error("`{file}` has two columns named `{column}`")]
    DuplicateColumn {
        /// File name.
        file: String,
        /// The name.
        column: String,
    },
    /// A row is malformed (too few or too many fields, bad quoting, invalid UTF-8).
    #[error("`{file}`, row {row} (line {line}): {problem}")]
    Malformed {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Line number in the file.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// A column named by an option does not exist.
    #[error("`{file}` has no column `{column}` (named by `{flag}`); its columns are: {available}")]
    MissingColumn {
        /// File name.
        file: String,
        /// The column asked for.
        column: String,
        /// The option that named it.
        flag: String,
        /// The columns present.
        available: String,
    },
    /// One column was given two roles.
    #[error("column `{column}` is named by both `{first}` and `{second}`")]
    ConflictingRoles {
        /// The column.
        column: String,
        /// One option.
        first: String,
        /// The other.
        second: String,
    },
    /// No column is left to learn from.
    #[error(
        "`{file}` has no feature column besides the target, id and ignored ones; its columns are: {available}"
    )]
    NoFeatures {
        /// File name.
        file: String,
        /// The columns present.
        available: String,
    },
    /// A numeric column holds something else.
    #[error(
        "`{file}`, row {row}, column `{column}`: `{value}` is not a number\nhint: fix the cell, \
         or train with `--categorical {column}` when the column holds labels"
    )]
    NotNumeric {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Column name.
        column: String,
        /// The cell.
        value: String,
    },
    /// A boolean column holds something else.
    #[error(
        "`{file}`, row {row}, column `{column}`: `{value}` is not a yes/no value like TRUE or \
         FALSE\nhint: fix the cell, or train with `--categorical {column}` when the column holds \
         labels"
    )]
    NotBoolean {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Column name.
        column: String,
        /// The cell.
        value: String,
    },
    /// An amount target (`--task regress`) holds something that is not a number.
    #[error(
        "`{file}`, row {row}, column `{column}`: the target `{value}` is not an amount\nhint: \
         a yes/no target needs `--task classify`"
    )]
    NotAnAmount {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Target column.
        column: String,
        /// The cell.
        value: String,
    },
    /// The target of a row is missing.
    #[error(
        "`{file}`, row {row}, column `{column}`: the target is missing\nhint: fill it in \
         (`purchase train --skip-missing-target` leaves such rows out of training and counts \
         them)"
    )]
    MissingTarget {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Target column.
        column: String,
    },
    /// The target of a row is not one of the model's two values.
    #[error("`{file}`, row {row}, column `{column}`: `{value}` is neither {expected}")]
    UnknownTarget {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Target column.
        column: String,
        /// The cell.
        value: String,
        /// The two values, as "`yes` nor `no`".
        expected: String,
    },
    /// The target has one value only: there is nothing to tell apart.
    #[error(
        "`{file}`: the target `{column}` has one value only (`{value}`); a yes/no model needs both outcomes"
    )]
    OneClass {
        /// File name.
        file: String,
        /// Target column.
        column: String,
        /// Its only value.
        value: String,
    },
    /// The target has more than two values.
    #[error(
        "`{file}`: the target `{column}` has {count} values ({examples}{more}), a yes/no model \
         needs 2\nhint: {hint}"
    )]
    TooManyClasses {
        /// File name.
        file: String,
        /// Target column.
        column: String,
        /// Number of distinct values.
        count: usize,
        /// The commonest values.
        examples: String,
        /// `, ...` when there are more values than examples.
        more: &'static str,
        /// What to do: amounts for numbers, consistent spelling for yes/no words.
        hint: &'static str,
    },
    /// The positive value cannot be told.
    #[error(
        "`{file}`: cannot tell which value of the target `{column}` means yes: {values}\nhint: \
         pass `--positive VALUE`"
    )]
    AmbiguousPositive {
        /// File name.
        file: String,
        /// Target column.
        column: String,
        /// The two values.
        values: String,
    },
    /// `--positive` names a value the target does not have.
    #[error("`{file}`: the target `{column}` has no value `{positive}`; its values are {values}")]
    UnknownPositive {
        /// File name.
        file: String,
        /// Target column.
        column: String,
        /// The value asked for.
        positive: String,
        /// The two values.
        values: String,
    },
    /// Permutation importance was asked for on rows where its score is undefined.
    #[error(
        "`{file}`: `--importance` measures the drop in {metric}, which is undefined on these \
         rows: it needs {needs}\nhint: evaluate importance on rows with {needs}, or leave out \
         `--importance`"
    )]
    ImportanceUndefined {
        /// File name.
        file: String,
        /// The score.
        metric: &'static str,
        /// What the rows lack.
        needs: &'static str,
    },
    /// Training diverged: the network's outputs are not numbers.
    #[error(
        "`{file}`: training diverged: after {epochs} epoch(s) the network's outputs are not \
         numbers\nhint: lower `--lr` (it was {lr})"
    )]
    Diverged {
        /// File name.
        file: String,
        /// Epochs run.
        epochs: usize,
        /// The learning rate.
        lr: f64,
    },
    /// Too few rows to split into training and validation.
    #[error("`{file}`: {problem}")]
    TooFewRows {
        /// File name.
        file: String,
        /// What is short.
        problem: String,
    },
    /// The input's columns are not the model's.
    #[error("`{file}` does not have the columns the model was trained on: {}", mismatch(.missing, .unexpected))]
    ColumnMismatch {
        /// File name.
        file: String,
        /// Model columns the file lacks.
        missing: Vec<String>,
        /// File columns the model does not know.
        unexpected: Vec<String>,
    },
    /// A text column has no embeddings (a bug in the caller).
    #[error("no embeddings were given for the text column `{column}`")]
    NoTextVectors {
        /// Column name.
        column: String,
    },
    /// The embeddings do not have the model's length.
    #[error(
        "the embeddings of text column `{column}` have {got} dimensions, the model was trained \
         on {expected}\nhint: use the embedding model the purchase model was trained with"
    )]
    TextDimension {
        /// Column name.
        column: String,
        /// Length the model expects.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The model folder cannot be read.
    #[error("cannot read the purchase model `{path}`: {reason}")]
    ModelRead {
        /// File in the folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model folder cannot be written.
    #[error("cannot write the purchase model `{path}`")]
    ModelWrite {
        /// File in the folder.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Training or running the network failed.
    #[error("the purchase network failed")]
    Mlp(#[from] crate::mlp::MlpError),
}

impl PurchaseError {
    /// Whether the input or the way the command was called is at fault (exit code 2), rather
    /// than something unexpected.
    pub fn is_user_fault(&self) -> bool {
        !matches!(self, Self::Mlp(_) | Self::ModelWrite { .. } | Self::NoTextVectors { .. })
    }
}

fn mismatch(missing: &[String], unexpected: &[String]) -> String {
    let list = |names: &[String]| table::list_columns(names);
    match (missing.is_empty(), unexpected.is_empty()) {
        (false, false) => format!("missing {}; unexpected {}", list(missing), list(unexpected)),
        (false, true) => format!("missing {}", list(missing)),
        (true, false) => format!("unexpected {}", list(unexpected)),
        (true, true) => "none".to_string(),
    }
}
