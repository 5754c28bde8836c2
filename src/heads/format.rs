//! `head.json`: everything needed to use a head safely and to know where it came from.
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "name": "sentiment",
//!   "base_model": { "id": "...", "revision": "...", "dimension": 384, "pooling": "mean", "normalize": true },
//!   "task": "single_label",
//!   "labels": ["negative", "positive"],
//!   "thresholds": [],
//!   "text_column": "text", "label_column": "label", "label_separator": null,
//!   "training": { ... }, "validation": { ... }, "data": { ... }
//! }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{HeadError, TaskKind};
use crate::mlp::MlpConfig;
use crate::model::{ModelInfo, Pooling};

/// Version of the head folder format this habitlens writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The embeddings a head was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseModel {
    /// Hub id or folder of the sentence-transformers model.
    pub id: String,
    /// Resolved commit (`local` for a folder).
    pub revision: String,
    /// Embedding dimension.
    pub dimension: usize,
    /// Pooling of token vectors.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// For a local folder, the digest of its files when the head was trained
    /// ([`crate::model::ModelFiles::content_digest`]), so a folder trained again in place is
    /// told apart; absent for Hub models and in heads written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl BaseModel {
    /// The model `embedder` runs, with the digest of its files when it is a local folder.
    pub fn of(embedder: &crate::embed::Embedder) -> Self {
        Self { content: embedder.local_digest().map(String::from), ..Self::from(embedder.info()) }
    }
}

impl From<&ModelInfo> for BaseModel {
    /// A local model folder is recorded by its absolute path, so the head finds it again from
    /// any working directory and however `--model` spelled it.
    fn from(info: &ModelInfo) -> Self {
        let id = match std::path::Path::new(&info.id).canonicalize() {
            Ok(path) if info.revision == "local" => path.display().to_string(),
            _ => info.id.clone(),
        };
        Self {
            id,
            revision: info.revision.clone(),
            dimension: info.dimension,
            pooling: info.pooling,
            normalize: info.normalize,
            content: None,
        }
    }
}

/// How the head was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSettings {
    /// Model and optimiser settings.
    #[serde(flatten)]
    pub mlp: MlpConfig,
    /// Share of rows held out for validation.
    pub val_fraction: f64,
    /// `balanced` when rows were weighted inversely to their label's frequency.
    pub class_weights: Option<String>,
    /// Epochs run before stopping.
    pub epochs_run: usize,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Whether the head was trained again on every row for `best_epoch` epochs.
    #[serde(default)]
    pub refit: bool,
    /// Seconds spent training (embedding excluded).
    pub seconds: f64,
}

/// Figures on the validation rows, with the weights kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationFigures {
    /// Validation rows.
    pub rows: usize,
    /// Mean validation loss.
    pub loss: f64,
    /// Accuracy (single-label) or exact-match ratio (multi-label).
    pub accuracy: f64,
    /// Unweighted mean F1 over labels.
    pub macro_f1: f64,
    /// Support-weighted F1 (single-label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted_f1: Option<f64>,
    /// F1 of all label decisions pooled (multi-label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_f1: Option<f64>,
    /// Labels with at least one validation row (multi-label: one positive); the figures say
    /// nothing of the others. Absent in heads written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_seen: Option<usize>,
}

/// The data the head was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSeen {
    /// File name as given.
    pub file: String,
    /// Rows read.
    pub rows: usize,
    /// Rows used (training and validation).
    pub rows_used: usize,
    /// Rows skipped (blank text or empty label).
    pub rows_skipped: usize,
    /// SHA-256 of the file's bytes (of the rows read, for standard input), hex.
    pub sha256: String,
}

/// Contents of `head.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadMeta {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Prefix of the head's output columns (the folder name when trained).
    pub name: String,
    /// The embeddings it expects.
    pub base_model: BaseModel,
    /// Single- or multi-label.
    pub task: TaskKind,
    /// Label names in output order.
    pub labels: Vec<String>,
    /// Per-label decision thresholds of a multi-label head (empty for single-label).
    #[serde(default)]
    pub thresholds: Vec<f32>,
    /// Column of the texts it was trained on.
    pub text_column: String,
    /// Column of the labels it was trained on.
    pub label_column: String,
    /// Separator of labels in a multi-label cell.
    #[serde(default)]
    pub label_separator: Option<String>,
    /// How it was trained.
    pub training: TrainingSettings,
    /// Figures on the validation split, when there was one.
    pub validation: Option<ValidationFigures>,
    /// The data it saw.
    pub data: DataSeen,
    /// habitlens version that trained it.
    pub habitlens_version: String,
    /// How the encoder was fine-tuned, for a head whose folder is also a sentence-transformers
    /// model (`train --fine-tune`); absent for a head on frozen embeddings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tune: Option<FineTuneRecord>,
}

/// What `train --fine-tune` did to the encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneRecord {
    /// The model the encoder started from.
    pub from_model: BaseModel,
    /// Longest text in tokens while training (also written to `sentence_bert_config.json`).
    pub max_seq_length: usize,
    /// Optimiser and schedule settings.
    pub settings: crate::finetune::FinetuneConfig,
    /// Per-epoch training and validation loss, and seconds.
    pub epochs: Vec<crate::finetune::EpochReport>,
    /// Optimiser steps run.
    pub steps: usize,
    /// Mean seconds per optimiser step (validation excluded).
    pub seconds_per_step: f64,
    /// Validation loss of the linear probe the head started from, before the encoder moved.
    #[serde(default)]
    pub probe_val_loss: Option<f64>,
    /// Validation score of that probe: accuracy (single-label) or micro-F1 at 0.5
    /// (multi-label).
    #[serde(default)]
    pub probe_val_score: Option<f64>,
    /// Mean loss of each epoch of the contrastive stage (empty when it did not run).
    #[serde(default)]
    pub contrastive_losses: Vec<f64>,
    /// Seconds the contrastive stage took (0 when it did not run); `steps` and
    /// `seconds_per_step` count joint training only.
    #[serde(default)]
    pub contrastive_seconds: f64,
}

impl HeadMeta {
    /// Reads and checks the version of a `head.json`.
    ///
    /// # Errors
    /// Fails when the file cannot be read or parsed, or has another format version.
    pub fn read(path: &Path) -> Result<Self, HeadError> {
        let meta_err = |source: Box<dyn std::error::Error + Send + Sync>| HeadError::Meta {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| meta_err(e.into()))?;
        let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| meta_err(e.into()))?;
        let found = raw.get("format_version").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if found != u64::from(FORMAT_VERSION) {
            return Err(HeadError::Version {
                path: path.to_path_buf(),
                found: found as u32,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_value(raw).map_err(|e| meta_err(e.into()))
    }
}
