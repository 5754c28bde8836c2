//! Training the transformer itself: a BERT encoder whose weights are variables, with a backward
//! pass that reaches every one of them, and export as a sentence-transformers folder.
//!
//! candle's fused layer norm has no backward pass, so gradients through candle-transformers'
//! BERT silently stop at the first layer norm. [`TrainableEncoder`] runs our own
//! [`BertModel`] in its differentiable mode (composed layer norm and softmax), so every encoder
//! weight gets a gradient; `tests/finetune.rs` checks that one optimiser step changes all of them.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::model::{BertModel, ModelError, ModelFiles, ModelInfo, l2_normalize};

/// What went wrong while fine-tuning or exporting.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A tensor operation failed.
    #[error("a training computation failed")]
    Compute(#[from] candle_core::Error),
    /// The exported folder could not be written.
    #[error("cannot write `{path}`")]
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
        {
            let data = vars.data().lock().expect("the variable map lock is not poisoned");
            for (name, var) in data.iter() {
                let stored =
                    weights.get(name).or_else(|| weights.get(&format!("bert.{name}"))).ok_or_else(
                        || candle_core::Error::Msg(format!("checkpoint has no `{name}`")),
                    )?;
                var.set(&stored.to_dtype(DType::F32)?)?;
            }
        }
        Ok(Self { model, vars, info: files.info.clone(), device: device.clone() })
    }

    /// Every trainable variable of the encoder.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.all_vars()
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

    /// Pooled (and normalised, when the model says so) embeddings of a batch of token-id
    /// sequences, as a (batch, dimension) tensor that carries gradients.
    pub fn forward(&self, ids: &[&[u32]]) -> Result<Tensor, FinetuneError> {
        let seq_len = ids.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut flat = vec![0u32; ids.len() * seq_len];
        let mut mask = vec![0f32; ids.len() * seq_len];
        for (row, text) in ids.iter().enumerate() {
            flat[row * seq_len..row * seq_len + text.len()].copy_from_slice(text);
            mask[row * seq_len..row * seq_len + text.len()].fill(1.0);
        }
        let flat = Tensor::from_vec(flat, (ids.len(), seq_len), &self.device)?;
        let mask = Tensor::from_vec(mask, (ids.len(), seq_len), &self.device)?;
        let hidden = self.model.forward(&flat, &mask)?;
        let pooled = self.info.pooling.apply(&hidden, &mask)?;
        Ok(if self.info.normalize { l2_normalize(&pooled)? } else { pooled })
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
        let weights = dir.join("model.safetensors");
        let tmp = dir.join(".model.safetensors.tmp");
        self.vars.save(&tmp)?;
        std::fs::rename(&tmp, &weights).map_err(io(&weights))?;
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
                std::fs::copy(&from, &to).map_err(io(&to))?;
            }
        }
        Ok(())
    }
}
