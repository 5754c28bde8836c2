//! Command-line arguments of the head commands (`train`, `classify`, `evaluate`): clap types
//! only; the commands live in [`crate::commands`].

use std::path::PathBuf;

use clap::Args;

use crate::cli::{EngineArg, InputArgs, ModelArgs};
use crate::heads::labels::DEFAULT_SEPARATOR;
use crate::model::DEFAULT_MODEL;

/// Where embeddings of labelled data are cached.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Embedding cache")]
pub struct CacheArgs {
    /// Folder of the embedding cache.
    ///
    /// Defaults to `HABITLENS_CACHE`, else `$XDG_CACHE_HOME/habitlens`, else
    /// `~/.cache/habitlens`. Deleting it is safe: texts are embedded again.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the embedding cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

/// Values of `--class-weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClassWeights {
    /// Weight each row inversely to its label's frequency in the training rows.
    Balanced,
}

/// Values of `--select-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SelectBy {
    /// The lowest validation loss.
    Loss,
    /// The highest validation accuracy (micro-F1 for multi-label heads).
    Score,
}

impl From<SelectBy> for crate::finetune::Selection {
    fn from(value: SelectBy) -> Self {
        match value {
            SelectBy::Loss => Self::Loss,
            SelectBy::Score => Self::Score,
        }
    }
}

/// Arguments of `habitlens train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Input options.
    #[command(flatten)]
    pub input: InputArgs,
    /// CSV column or JSONL field holding the label(s).
    #[arg(long, value_name = "NAME", help_heading = "Input")]
    pub label_column: String,
    /// Folder to write the head to (`head.safetensors`, `head.json`); with `--fine-tune`, also
    /// the fine-tuned sentence-transformers model.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Name of the head: the prefix of its columns in `classify` and `analyze`; the output
    /// folder's name by default.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Each text may carry several labels, split by `--label-separator` (sigmoid head with
    /// binary cross-entropy and per-label thresholds tuned for F1 on the validation rows).
    #[arg(long, help_heading = "Labels")]
    pub multi_label: bool,
    /// Separator of labels in a multi-label cell.
    #[arg(long, value_name = "SEP", default_value = DEFAULT_SEPARATOR, help_heading = "Labels")]
    pub label_separator: String,
    /// Weight rows against skewed labels.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        help_heading = "Labels",
        conflicts_with = "fine_tune"
    )]
    pub class_weights: Option<ClassWeights>,

    /// Width of one hidden layer (ReLU, with `--dropout`); a linear head when not given.
    #[arg(long, value_name = "N", help_heading = "Training", conflicts_with = "fine_tune")]
    pub hidden: Option<usize>,
    /// Dropout on the hidden layer during training; with `--fine-tune`, inside the encoder
    /// (its hidden states and attention weights, as BERT was trained).
    #[arg(long, value_name = "P", default_value_t = 0.1, help_heading = "Training")]
    pub dropout: f32,
    /// Most passes over the training rows; training stops earlier when the validation loss
    /// stops falling (see `--patience`). Default: 200, or 3 with `--fine-tune`.
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub epochs: Option<usize>,
    /// Epochs without a lower validation loss (with `--fine-tune`, a better `--select-by`
    /// figure) before stopping. Default: 10, or 2 with `--fine-tune`.
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub patience: Option<usize>,
    /// AdamW learning rate (with `--fine-tune`, the peak after the warm-up). Default: 1e-3,
    /// or 5e-5 with `--fine-tune`.
    #[arg(long, value_name = "X", help_heading = "Training")]
    pub lr: Option<f64>,
    /// AdamW decoupled weight decay (each step shrinks the weights by `lr × weight-decay`).
    /// Default: 1.0, or 0.01 with `--fine-tune`.
    #[arg(long, value_name = "X", help_heading = "Training")]
    pub weight_decay: Option<f64>,
    /// Rows per optimiser step. Default: 64, or 16 with `--fine-tune`.
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub batch_size: Option<usize>,
    /// Share of rows held out, stratified by label, for early stopping, thresholds and the
    /// validation figures; 0 trains on every row for `--epochs` epochs.
    #[arg(long, value_name = "F", default_value_t = 0.15, help_heading = "Training")]
    pub val_fraction: f64,
    /// Seed of the split, initialisation, shuffling and dropout: the same seed and data give
    /// the same head, bit for bit.
    #[arg(long, value_name = "S", default_value_t = 42, help_heading = "Training")]
    pub seed: u64,
    /// Keep the weights of the early-stopped run instead of training again on every row.
    ///
    /// By default, once early stopping has picked the number of epochs, the head is trained
    /// again on the training and validation rows together for that many epochs; thresholds and
    /// the validation figures come from the first run.
    #[arg(long, help_heading = "Training", conflicts_with = "fine_tune")]
    pub no_refit: bool,
    /// Feed embeddings to the head as they are, without per-feature standardisation.
    #[arg(long, help_heading = "Training", conflicts_with = "fine_tune")]
    pub no_standardize: bool,

    /// Hub id (`org/name`, optionally `@revision`) or a local folder.
    #[arg(long, env = crate::cli::ENV_MODEL, default_value = DEFAULT_MODEL, value_name = "ID|DIR", help_heading = "Model")]
    pub model: String,
    /// Texts per forward pass of the encoder.
    #[arg(long, default_value_t = crate::embed::DEFAULT_BATCH_SIZE, value_name = "N", help_heading = "Model")]
    pub embed_batch_size: usize,
    /// Forward pass of the encoder (see `habitlens embed --help`).
    #[arg(long, value_enum, value_name = "ENGINE", help_heading = "Model")]
    pub engine: Option<EngineArg>,
    /// Embedding cache options.
    #[command(flatten)]
    pub cache: CacheArgs,

    /// Train the transformer itself together with a linear head, and write `--output` as a
    /// complete sentence-transformers folder (usable as `--model DIR`) plus the head.
    ///
    /// Cross-entropy (binary cross-entropy with `--multi-label`), AdamW, linear warm-up then
    /// linear decay of the learning rate, gradient clipping, validation each epoch with early
    /// stopping; the encoder of the epoch with the best validation figure (`--select-by`) is
    /// kept. The head
    /// starts from a linear probe: a linear head fitted on the model's embeddings before the
    /// encoder moves.
    #[arg(long, help_heading = "Fine-tuning")]
    pub fine_tune: bool,
    /// Before the head, train the encoder to pull texts of the same label together and push
    /// the others apart (a supervised contrastive loss over pairs of same-label texts, in the
    /// spirit of SetFit): for few examples per label. Single-label only. With `--epochs 0` no
    /// joint training follows, and the head is a linear probe on the contrastive encoder's
    /// embeddings, as in SetFit.
    #[arg(
        long,
        requires = "fine_tune",
        conflicts_with = "multi_label",
        help_heading = "Fine-tuning"
    )]
    pub contrastive: bool,
    /// Passes over the training texts of the `--contrastive` stage.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        requires = "contrastive",
        help_heading = "Fine-tuning"
    )]
    pub contrastive_epochs: usize,
    /// Temperature of the `--contrastive` loss: cosine similarities are divided by it before
    /// the softmax, so a lower value pushes harder on the nearest wrong-label texts (at least
    /// 0.001).
    #[arg(
        long,
        value_name = "T",
        default_value_t = crate::finetune::contrastive::TEMPERATURE,
        allow_negative_numbers = true,
        requires = "contrastive",
        help_heading = "Fine-tuning"
    )]
    pub contrastive_temperature: f64,
    /// Longest text in tokens while fine-tuning (longer texts are cut); the model's own limit
    /// by default. It is written into the exported folder, so the folder embeds as it trained.
    #[arg(long, value_name = "N", requires = "fine_tune", help_heading = "Fine-tuning")]
    pub max_seq_length: Option<usize>,
    /// Share of the steps spent raising the learning rate linearly from 0 to `--lr`; it then
    /// falls linearly to 0 at the last step.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.1,
        requires = "fine_tune",
        help_heading = "Fine-tuning"
    )]
    pub warmup_fraction: f64,
    /// The validation figure that picks the epoch to keep and drives `--patience`: `loss`, or
    /// `score` (accuracy, or micro-F1 at a 0.5 cut-off with `--multi-label`; ties go to the
    /// lower loss). Fine-tuning can raise the loss on the texts a model gets wrong while it
    /// gets more of them right.
    #[arg(
        long,
        value_enum,
        value_name = "FIGURE",
        default_value_t = SelectBy::Loss,
        requires = "fine_tune",
        help_heading = "Fine-tuning"
    )]
    pub select_by: SelectBy,
    /// Gradients are rescaled so their global L2 norm is at most this.
    #[arg(
        long,
        value_name = "X",
        default_value_t = 1.0,
        requires = "fine_tune",
        help_heading = "Fine-tuning"
    )]
    pub max_grad_norm: f64,
}

impl TrainArgs {
    /// `--epochs`, or its default for the kind of training.
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(if self.fine_tune { 3 } else { 200 })
    }

    /// `--patience`, or its default for the kind of training.
    pub fn patience(&self) -> usize {
        self.patience.unwrap_or(if self.fine_tune { 2 } else { 10 })
    }

    /// `--lr`, or its default for the kind of training.
    pub fn lr(&self) -> f64 {
        self.lr.unwrap_or(if self.fine_tune { 5e-5 } else { 1e-3 })
    }

    /// `--weight-decay`, or its default for the kind of training.
    pub fn weight_decay(&self) -> f64 {
        self.weight_decay.unwrap_or(if self.fine_tune { 0.01 } else { 1.0 })
    }

    /// `--batch-size`, or its default for the kind of training.
    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(if self.fine_tune { 16 } else { 64 })
    }

    /// The model options in the form the other commands use.
    pub fn model_args(&self) -> ModelArgs {
        ModelArgs {
            model: Some(self.model.clone()),
            batch_size: self.embed_batch_size,
            engine: self.engine,
        }
    }
}

/// Arguments of `habitlens classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Input options.
    #[command(flatten)]
    pub input: InputArgs,
    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Head folder written by `habitlens train` (repeatable: every head shares one embedding
    /// pass).
    #[arg(long = "head", value_name = "DIR", required = true, help_heading = "Heads")]
    pub heads: Vec<PathBuf>,
    /// Output file: `.csv` or `.jsonl`, one row per input row in input order.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Also list the K most probable labels of each head with their probabilities.
    #[arg(long, value_name = "K", help_heading = "Heads")]
    pub top_k: Option<usize>,
    /// Probability cut-off overriding the heads' own: multi-label heads assign every label at
    /// or above it; single-label heads assign nothing when their best label is below it.
    #[arg(long, value_name = "T", help_heading = "Heads")]
    pub threshold: Option<f32>,
}

/// Arguments of `habitlens evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Input options; `--text-column` defaults to the column the head was trained on.
    #[command(flatten)]
    pub input: InputArgs,
    /// CSV column or JSONL field holding the true label(s); the head's own by default.
    #[arg(long, value_name = "NAME", help_heading = "Input")]
    pub label_column: Option<String>,
    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Head folder to measure (repeatable).
    #[arg(long = "head", value_name = "DIR", required = true, help_heading = "Heads")]
    pub heads: Vec<PathBuf>,
    /// Write the figures as JSON; with several heads, one file per head (`NAME-<head>.json`).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report: Option<PathBuf>,
    /// Write the confusion matrix of a single-label head as CSV (rows: true label, columns:
    /// predicted); with several heads, one file per head.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub confusion: Option<PathBuf>,
    /// Embedding cache options.
    #[command(flatten)]
    pub cache: CacheArgs,
}
