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
use crate::rng::SplitMix;

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
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Seed of the head initialisation and the shuffling.
    pub seed: u64,
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
    /// Loss on the validation texts after the epoch.
    pub val_loss: f64,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
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
    /// The epoch whose weights were kept (lowest validation loss).
    pub best_epoch: usize,
}

impl TrainableEncoder {
    fn loss(
        &self,
        ids: &[Vec<u32>],
        idx: &[usize],
        targets: &Targets,
        labels: usize,
        head: (&Var, &Var),
    ) -> Result<Tensor, FinetuneError> {
        let batch: Vec<&[u32]> = idx.iter().map(|&i| ids[i].as_slice()).collect();
        let pooled = self.forward(&batch)?;
        let logits = pooled.matmul(&head.0.as_tensor().t()?)?.broadcast_add(head.1.as_tensor())?;
        let target = targets.select(idx, labels, &self.device)?;
        Ok(match targets {
            Targets::Single(_) => candle_nn::loss::cross_entropy(&logits, &target)?,
            Targets::Multi(_) => {
                candle_nn::loss::binary_cross_entropy_with_logit(&logits, &target)?
            }
        })
    }

    /// Trains the encoder and a linear head together on `train`, validating on `val` after each
    /// epoch and keeping the weights of the epoch with the lowest validation loss (stopping
    /// after `patience` epochs without improvement). `progress` hears the number of texts done
    /// after each step; `on_epoch` hears each epoch's figures.
    ///
    /// # Errors
    /// Fails when a tensor operation fails.
    #[allow(clippy::too_many_arguments)]
    pub fn finetune(
        self,
        train: (&[Vec<u32>], &Targets),
        val: (&[Vec<u32>], &Targets),
        labels: usize,
        config: &FinetuneConfig,
        progress: &mut dyn FnMut(usize),
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<Finetuned, FinetuneError> {
        use candle_nn::{AdamW, Optimizer, ParamsAdamW};

        let dim = self.info.dimension;
        let mut rng = SplitMix::new(config.seed);
        // Small uniform initialisation, as PyTorch's Linear does (bound 1/sqrt(fan_in)).
        let bound = 1.0 / (dim as f32).sqrt();
        let init: Vec<f32> =
            (0..labels * dim).map(|_| (rng.uniform() * 2.0 - 1.0) * bound).collect();
        let head_w = Var::from_tensor(&Tensor::from_vec(init, (labels, dim), &self.device)?)?;
        let head_b = Var::from_tensor(&Tensor::zeros(labels, DType::F32, &self.device)?)?;
        let mut vars = self.vars();
        vars.extend([head_w.clone(), head_b.clone()]);
        let params =
            ParamsAdamW { lr: 0.0, weight_decay: config.weight_decay, ..Default::default() };
        let mut opt = AdamW::new(vars.clone(), params)?;

        let steps_per_epoch = train.0.len().div_ceil(config.batch_size.max(1));
        let total_steps = (steps_per_epoch * config.epochs).max(1);
        let warmup = ((total_steps as f64 * config.warmup_fraction).round() as usize).max(1);
        let mut step = 0usize;
        let mut best: Option<(f64, usize, Vec<Tensor>)> = None;
        let mut reports = Vec::new();
        let mut order: Vec<usize> = (0..train.0.len()).collect();

        for epoch in 1..=config.epochs {
            let started = std::time::Instant::now();
            rng.shuffle(&mut order);
            let mut train_loss = 0.0;
            for batch in order.chunks(config.batch_size.max(1)) {
                step += 1;
                let lr = if step <= warmup {
                    config.lr * step as f64 / warmup as f64
                } else {
                    config.lr * (total_steps - step) as f64 / (total_steps - warmup).max(1) as f64
                };
                opt.set_learning_rate(lr);
                let loss = self.loss(train.0, batch, train.1, labels, (&head_w, &head_b))?;
                train_loss += f64::from(loss.to_scalar::<f32>()?) * batch.len() as f64;
                let mut grads = loss.backward()?;
                clip_grad_norm(&mut grads, &vars, config.max_grad_norm)?;
                opt.step(&grads)?;
                progress(batch.len());
            }

            let val_loss =
                self.mean_loss(val.0, val.1, labels, (&head_w, &head_b), config.batch_size)?;
            let report = EpochReport {
                epoch,
                train_loss: train_loss / train.0.len().max(1) as f64,
                val_loss,
                seconds: started.elapsed().as_secs_f64(),
            };
            on_epoch(&report);
            reports.push(report);
            if best.as_ref().is_none_or(|(loss, _, _)| val_loss < *loss) {
                let snapshot = vars
                    .iter()
                    .map(|v| v.as_tensor().copy())
                    .collect::<candle_core::Result<_>>()?;
                best = Some((val_loss, epoch, snapshot));
            } else if best.as_ref().is_some_and(|(_, e, _)| epoch - e >= config.patience) {
                tracing::debug!(epoch, "validation loss stopped improving; stopping early");
                break;
            }
        }

        let (_, best_epoch, snapshot) = best.expect("at least one epoch ran");
        for (var, saved) in vars.iter().zip(&snapshot) {
            var.set(saved)?;
        }
        Ok(Finetuned {
            head_weight: head_w.as_tensor().flatten_all()?.to_vec1()?,
            head_bias: head_b.as_tensor().to_vec1()?,
            encoder: self,
            epochs: reports,
            best_epoch,
        })
    }

    fn mean_loss(
        &self,
        ids: &[Vec<u32>],
        targets: &Targets,
        labels: usize,
        head: (&Var, &Var),
        batch_size: usize,
    ) -> Result<f64, FinetuneError> {
        let all: Vec<usize> = (0..ids.len()).collect();
        let mut total = 0.0;
        for batch in all.chunks(batch_size.max(1) * 2) {
            let loss = self.loss(ids, batch, targets, labels, head)?.detach();
            total += f64::from(loss.to_scalar::<f32>()?) * batch.len() as f64;
        }
        Ok(total / ids.len().max(1) as f64)
    }
}

/// Rescales all gradients so that their global L2 norm is at most `max_norm`.
fn clip_grad_norm(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    max_norm: f64,
) -> candle_core::Result<()> {
    let mut sum = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sum.sqrt();
    if norm > max_norm && norm > 0.0 {
        let scale = max_norm / norm;
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(())
}
