//! Training the transformer itself: a BERT encoder whose weights are variables, with a backward
//! pass that reaches every one of them, and export as a sentence-transformers folder.
//!
//! candle's fused layer norm has no backward pass, so gradients through candle-transformers'
//! BERT silently stop at the first layer norm. [`TrainableEncoder`] runs our own
//! [`BertModel`] in its differentiable mode (composed layer norm and softmax), so every encoder
//! weight gets a gradient; `tests/finetune.rs` checks that one optimiser step changes all of them.
//!
//! A run ([`TrainableEncoder::finetune`], in `train.rs`) optionally starts with a contrastive
//! stage ([`contrastive`]), fits a linear head on the encoder's embeddings as they are (a
//! linear probe), then trains encoder and head together from there. The optimiser
//! ([`optim::Optimiser`]) updates only the word-embedding rows each batch uses, and each batch
//! runs as a few passes over texts of similar length ([`lengths`]), so padding costs little.

pub mod contrastive;
pub mod lengths;
pub mod optim;
mod train;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::embed::in_length_order;
use crate::model::{BertModel, Dropout, ModelError, ModelFiles, ModelInfo, Pass, l2_normalize};
use optim::WordRows;

/// What one more forward pass over a group of texts costs, in padded tokens, when a training
/// batch is cut by length ([`lengths::length_groups`]).
/// Measured on two cores with all-MiniLM-L6-v2: 0 (a pass per length) ran 1.4 times slower
/// than 32, 256 1.3 times, and 32 to 96 alike.
pub const PASS_OVERHEAD_TOKENS: usize = 32;

/// Name of the word-embedding table in the variable map.
const WORD_TABLE: &str = "embeddings.word_embeddings.weight";

/// What went wrong while fine-tuning or exporting.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A tensor operation failed.
    #[error("a training computation failed")]
    Compute(#[from] candle_core::Error),
    /// A file of the exported folder could not be written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// The exported folder could not be made, or a file to copy into it read.
    #[error("cannot make or read `{path}`")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A sentence encoder whose weights are trainable variables.
pub struct TrainableEncoder {
    model: BertModel,
    vars: VarMap,
    /// The word-embedding table, also held in `vars`.
    word: Var,
    info: ModelInfo,
    device: Device,
}

impl TrainableEncoder {
    /// Loads the checkpoint of `files` into fresh variables on `device`.
    ///
    /// # Errors
    /// Fails when the weights cannot be read or do not fit the configuration.
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, FinetuneError> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
        let model = BertModel::load(vb, &files.config)?.with_differentiable(true);
        let weights = candle_core::safetensors::load(&files.weights, device)?;
        let word = {
            let data = vars.data().lock().expect("the variable map lock is not poisoned");
            for (name, var) in data.iter() {
                let stored =
                    weights.get(name).or_else(|| weights.get(&format!("bert.{name}"))).ok_or_else(
                        || candle_core::Error::Msg(format!("checkpoint has no `{name}`")),
                    )?;
                var.set(&stored.to_dtype(DType::F32)?)?;
            }
            data.get(WORD_TABLE).cloned().ok_or_else(|| {
                candle_core::Error::Msg(format!("the model has no `{WORD_TABLE}`"))
            })?
        };
        Ok(Self { model, vars, word, info: files.info.clone(), device: device.clone() })
    }

    /// Every trainable variable of the encoder.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.all_vars()
    }

    /// Every trainable variable of the encoder except the word-embedding table, which
    /// [`optim::Optimiser`] updates row by row.
    pub fn dense_vars(&self) -> Vec<Var> {
        let word = self.word.as_tensor().id();
        self.vars.all_vars().into_iter().filter(|v| v.as_tensor().id() != word).collect()
    }

    /// The word-embedding table.
    pub fn word_table(&self) -> &Var {
        &self.word
    }

    /// Variables by checkpoint name, for inspection.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.vars.data().lock().expect("the variable map lock is not poisoned");
        let mut named: Vec<_> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// What the model says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Pads a batch of token-id sequences to its longest: ids and attention mask, (batch, seq).
    fn pad(&self, ids: &[&[u32]]) -> candle_core::Result<(Vec<u32>, Tensor, usize)> {
        let (flat, mask, seq_len) = crate::model::pad_batch(ids);
        let mask = Tensor::from_vec(mask, (ids.len(), seq_len), &self.device)?;
        Ok((flat, mask, seq_len))
    }

    fn pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor, FinetuneError> {
        let pooled = self.info.pooling.apply(hidden, mask)?;
        Ok(if self.info.normalize { l2_normalize(&pooled)? } else { pooled })
    }

    /// Pooled (and normalised, when the model says so) embeddings of a batch of token-id
    /// sequences, as a (batch, dimension) tensor that carries gradients to every weight,
    /// the whole word table included.
    pub fn forward(&self, ids: &[&[u32]]) -> Result<Tensor, FinetuneError> {
        let (flat, mask, seq_len) = self.pad(ids)?;
        let flat = Tensor::from_vec(flat, (ids.len(), seq_len), &self.device)?;
        let hidden = self.model.forward(&flat, &mask)?;
        self.pool(&hidden, &mask)
    }

    /// As [`TrainableEncoder::forward`], but the word vectors come from a copy of just the rows
    /// the batch's texts use, returned beside the embeddings: their gradient is what
    /// [`optim::Optimiser::step`] applies to the table. `dropout`, if any, applies inside the
    /// encoder. The batch runs as a few passes over texts of similar length
    /// ([`lengths::length_groups`]); the embeddings come back in the batch's order.
    ///
    /// # Errors
    /// Fails when a tensor operation fails.
    pub fn forward_rows(
        &self,
        ids: &[&[u32]],
        dropout: Option<&Dropout>,
    ) -> Result<(Tensor, WordRows), FinetuneError> {
        let mut used: Vec<u32> = ids.iter().flat_map(|t| t.iter().copied()).collect();
        used.sort_unstable();
        used.dedup();
        let local: HashMap<u32, u32> =
            used.iter().enumerate().map(|(k, &id)| (id, k as u32)).collect();
        let picked =
            self.word.as_tensor().index_select(&Tensor::new(used.as_slice(), &self.device)?, 0)?;
        let rows = WordRows { ids: used, var: Var::from_tensor(&picked.detach())? };
        let hidden_size = picked.dim(1)?;
        let lengths: Vec<usize> = ids.iter().map(|t| t.len()).collect();
        let groups = lengths::length_groups(&lengths, PASS_OVERHEAD_TOKENS);
        let mut parts = Vec::with_capacity(groups.len());
        for group in &groups {
            let texts: Vec<&[u32]> = group.iter().map(|&i| ids[i]).collect();
            let (flat, mask, seq_len) = crate::model::pad_batch(&texts);
            // Padding looks up any row: masked out of attention and pooling, it gets no
            // gradient.
            let flat: Vec<u32> = (flat.iter().zip(&mask))
                .map(|(id, &m)| if m > 0.0 { local[id] } else { 0 })
                .collect();
            let mask = Tensor::from_vec(mask, (texts.len(), seq_len), &self.device)?;
            let words = (rows.var.as_tensor())
                .index_select(&Tensor::from_vec(flat, texts.len() * seq_len, &self.device)?, 0)?
                .reshape((texts.len(), seq_len, hidden_size))?;
            let hidden = self.model.forward_words(&words, &mask, Pass::Training(dropout))?;
            parts.push(self.pool(&hidden, &mask)?);
        }
        let pooled = Tensor::cat(&parts, 0)?;
        let order: Vec<usize> = groups.concat();
        if order.iter().enumerate().all(|(k, &i)| k == i) {
            return Ok((pooled, rows));
        }
        let mut back = vec![0u32; order.len()];
        for (k, &i) in order.iter().enumerate() {
            back[i] = k as u32;
        }
        Ok((pooled.index_select(&Tensor::new(back.as_slice(), &self.device)?, 0)?, rows))
    }

    /// Embeddings of token-id sequences without gradients, with the fast inference kernels,
    /// rows × dimension, row-major. Texts run in passes of 32 of similar length
    /// ([`in_length_order`]).
    ///
    /// # Errors
    /// Fails when a tensor operation fails.
    pub fn embed(&self, ids: &[Vec<u32>]) -> Result<Vec<f32>, FinetuneError> {
        let dim = self.info.dimension;
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        in_length_order(&lengths, 32, dim, &mut |_| {}, |chunk| {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let (flat, mask, seq_len) = self.pad(&batch)?;
            let flat = Tensor::from_vec(flat, batch.len() * seq_len, &self.device)?;
            let words = self.model.word_embeddings().detach().embedding(&flat)?.reshape((
                batch.len(),
                seq_len,
                dim,
            ))?;
            let hidden = self.model.forward_words(&words, &mask, Pass::Inference)?.detach();
            Ok(self.pool(&hidden, &mask)?.flatten_all()?.to_vec1::<f32>()?)
        })
    }

    /// Writes a complete sentence-transformers folder: the trained weights as
    /// `model.safetensors`, and the configuration, tokenizer and pipeline files copied from the
    /// base model, so the folder loads in habitlens (`--model DIR`) and in sentence-transformers.
    ///
    /// # Errors
    /// Fails when a file cannot be written or copied.
    pub fn export(&self, base: &ModelFiles, dir: &Path) -> Result<(), FinetuneError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FinetuneError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // The trained weights, plus whatever else the base checkpoint holds (BERT's pooler,
        // which mean pooling never uses, and buffers) unchanged, so that loaders that expect a
        // full checkpoint (transformers' BertModel under sentence-transformers) find every
        // tensor and initialise nothing at random.
        let mut tensors: HashMap<String, Tensor> = {
            let data = self.vars.data().lock().expect("the variable map lock is not poisoned");
            data.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
        };
        for (name, tensor) in candle_core::safetensors::load(&base.weights, &Device::Cpu)? {
            let name = name.strip_prefix("bert.").map_or(name.clone(), str::to_string);
            tensors.entry(name).or_insert(tensor);
        }
        let weights = dir.join("model.safetensors");
        let bytes = safetensors::serialize(&tensors, None)
            .map_err(|e| candle_core::Error::Msg(format!("serialising the weights: {e}")))?;
        crate::output::write_bytes(&weights, &bytes)?;
        drop(bytes);
        let source_dir = base.weights.parent().expect("a weights file has a folder");
        for file in [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
            "modules.json",
            "sentence_bert_config.json",
            "config_sentence_transformers.json",
            "1_Pooling/config.json",
        ] {
            let from = source_dir.join(file);
            if from.is_file() {
                let to = dir.join(file);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                // Read and written anew rather than copied: a copy would keep the cache's
                // read-only mode, and the README invites editing `sentence_bert_config.json`.
                let bytes = std::fs::read(&from).map_err(io(&from))?;
                crate::output::write_bytes(&to, &bytes)?;
            }
        }
        Ok(())
    }
}

/// Settings of a fine-tuning run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinetuneConfig {
    /// Passes over the training texts.
    pub epochs: usize,
    /// Peak learning rate, reached after the warm-up.
    pub lr: f64,
    /// Share of all steps spent warming the learning rate up linearly from 0; it then decays
    /// linearly to 0 at the last step.
    pub warmup_fraction: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Texts per step.
    pub batch_size: usize,
    /// Gradients are rescaled so their global L2 norm is at most this.
    pub max_grad_norm: f64,
    /// Epochs without a better validation figure (see `select_by`) before stopping.
    pub patience: usize,
    /// Seed of the shuffling, the contrastive batches, the linear probe and dropout.
    pub seed: u64,
    /// Epochs of the contrastive first stage (single-label only); 0 skips it.
    #[serde(default)]
    pub contrastive_epochs: usize,
    /// Temperature of the contrastive loss (see [`contrastive::loss`]).
    #[serde(default = "default_temperature")]
    pub contrastive_temperature: f64,
    /// Dropout probability inside the encoder while training (hidden states and attention
    /// weights); BERT checkpoints are trained with 0.1.
    #[serde(default)]
    pub dropout: f32,
    /// Which validation figure picks the epoch to keep and drives early stopping.
    #[serde(default)]
    pub select_by: Selection,
}

/// The validation figure that picks the epoch whose weights are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// The lowest validation loss.
    #[default]
    Loss,
    /// The highest validation score (see [`EpochReport::val_score`]); among equal scores, the
    /// lower loss. Fine-tuning can sharpen a model's confidence, raising the loss on the
    /// texts it gets wrong, while it gets more of them right.
    Score,
}

fn default_temperature() -> f64 {
    contrastive::TEMPERATURE
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            epochs: 4,
            lr: 5e-5,
            warmup_fraction: 0.1,
            weight_decay: 0.01,
            batch_size: 16,
            max_grad_norm: 1.0,
            patience: 2,
            seed: 42,
            contrastive_epochs: 0,
            contrastive_temperature: contrastive::TEMPERATURE,
            dropout: 0.1,
            select_by: Selection::Loss,
        }
    }
}

/// What each text should be labelled: one class, or a set of labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class index per text, softmax and cross-entropy.
    Single(Vec<u32>),
    /// 0/1 per label per text (row-major, texts × labels), sigmoid and binary cross-entropy.
    Multi(Vec<f32>),
}

impl Targets {
    /// The same targets in the form the head trainer ([`crate::mlp`]) takes.
    pub fn to_mlp(&self, labels: usize) -> crate::mlp::Targets {
        match self {
            Self::Single(c) => crate::mlp::Targets::Classes(c.clone()),
            Self::Multi(m) => crate::mlp::Targets::Matrix { values: m.clone(), width: labels },
        }
    }

    fn select(&self, idx: &[usize], labels: usize, device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Self::Single(classes) => {
                let picked: Vec<u32> = idx.iter().map(|&i| classes[i]).collect();
                Tensor::new(picked.as_slice(), device)
            }
            Self::Multi(hot) => {
                let picked: Vec<f32> = idx
                    .iter()
                    .flat_map(|&i| hot[i * labels..(i + 1) * labels].iter().copied())
                    .collect();
                Tensor::from_vec(picked, (idx.len(), labels), device)
            }
        }
    }
}

/// Figures of one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Loss on the validation texts after the epoch; `None` when training ran without
    /// validation.
    pub val_loss: Option<f64>,
    /// Validation score after the epoch: accuracy for single-label targets, micro-F1 at a
    /// probability cut-off of 0.5 for multi-label ones; `None` without validation.
    #[serde(default)]
    pub val_score: Option<f64>,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
    /// Optimiser steps of the epoch.
    #[serde(default)]
    pub steps: usize,
    /// Seconds all the epoch's steps took together (validation excluded).
    #[serde(default)]
    pub step_seconds: f64,
}

/// A fine-tuned encoder and its linear head.
pub struct Finetuned {
    /// The encoder, with the weights of the best epoch.
    pub encoder: TrainableEncoder,
    /// Head weights, (labels × dimension) row-major.
    pub head_weight: Vec<f32>,
    /// Head biases, one per label.
    pub head_bias: Vec<f32>,
    /// Per-epoch figures.
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights were kept (best by [`FinetuneConfig::select_by`], or the last
    /// without validation); 0 when no epoch of joint training beat the linear probe on the encoder as it
    /// was before.
    pub best_epoch: usize,
    /// Validation loss of the linear probe the head started from, before the encoder moved;
    /// `None` without validation.
    pub probe_val_loss: Option<f64>,
    /// Validation score (as [`EpochReport::val_score`]) of that probe; `None` without
    /// validation.
    pub probe_val_score: Option<f64>,
    /// Mean loss of each epoch of the contrastive stage, if it ran.
    pub contrastive_losses: Vec<f64>,
    /// Seconds the contrastive stage took (0 when it did not run).
    pub contrastive_seconds: f64,
}
