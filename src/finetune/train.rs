//! The fine-tuning loop: an optional contrastive stage, a linear probe to start the head from,
//! then encoder and head trained together with warm-up, linear decay, clipping and early
//! stopping.
//!
//! Starting the head from a probe fitted on the unchanged encoder's embeddings (Kumar et al.,
//! 2022, <https://arxiv.org/abs/2202.10054>) matters here more than usual: the model's
//! embeddings are L2-normalised, so a freshly initialised head gives logits near 0, and at the
//! learning rates that suit the encoder (around 5e-5) it would take many epochs to grow, while
//! its near-random gradients pull the encoder's features about in the meantime.

use candle_core::{D, Tensor, Var};

use super::contrastive;
use super::optim::Optimiser;
use super::{
    EpochReport, FinetuneConfig, FinetuneError, Finetuned, Selection, Targets, TrainableEncoder,
};
use crate::metrics::{binary::Counts, classes::ConfusionMatrix};
use crate::mlp::{self, MlpConfig, Objective};
use crate::model::{Dropout, l2_normalize};
use crate::rng::SplitMix;

/// Learning rate at `step` (1-based) of `total`: linear warm-up over `warmup` steps, then
/// linear decay towards 0, which it would reach one step after the last (so no step is wasted
/// at a rate of 0).
fn scheduled(lr: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step <= warmup {
        lr * step as f64 / warmup.max(1) as f64
    } else {
        lr * (total + 1).saturating_sub(step) as f64 / (total - warmup).max(1) as f64
    }
}

fn warmup_steps(total: usize, fraction: f64) -> usize {
    ((total as f64 * fraction).round() as usize).max(1)
}

/// Loss of `logits` against the targets of rows `idx`.
fn head_loss(
    logits: &Tensor,
    targets: &Targets,
    idx: &[usize],
    labels: usize,
) -> candle_core::Result<Tensor> {
    let target = targets.select(idx, labels, logits.device())?;
    match targets {
        Targets::Single(_) => candle_nn::loss::cross_entropy(logits, &target),
        Targets::Multi(_) => mlp::binary_cross_entropy_with_logits(logits, &target),
    }
}

fn logits(pooled: &Tensor, head: (&Var, &Var)) -> candle_core::Result<Tensor> {
    pooled.matmul(&head.0.as_tensor().t()?)?.broadcast_add(head.1.as_tensor())
}

/// Validation figures of an encoder and head.
#[derive(Debug, Clone, Copy)]
struct Checked {
    loss: f64,
    /// Accuracy, or micro-F1 at a cut-off of 0.5.
    score: f64,
}

impl Checked {
    /// Figures that lose to any others (a probe whose loss could not be computed).
    const UNKNOWN: Self = Self { loss: f64::NAN, score: f64::NAN };

    /// Whether `self` is better than `other` by `select`; anything beats figures that are NaN.
    fn beats(&self, other: &Self, select: Selection) -> bool {
        match select {
            Selection::Loss => self.loss < other.loss || other.loss.is_nan(),
            Selection::Score => {
                self.score > other.score
                    || (self.score == other.score && self.loss < other.loss)
                    || other.score.is_nan()
            }
        }
    }
}

/// Accuracy of `logits` (rows × labels) against single-label `targets`, or micro-F1 of
/// `logits ≥ 0` (probability 0.5) against multi-label ones.
fn score(logits: &Tensor, targets: &Targets, labels: usize) -> candle_core::Result<f64> {
    Ok(match targets {
        Targets::Single(classes) => {
            let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            ConfusionMatrix::new(classes, &predicted, labels).accuracy()
        }
        Targets::Multi(hot) => {
            let logits = logits.flatten_all()?.to_vec1::<f32>()?;
            let positives: Vec<bool> = hot.iter().map(|&t| t > 0.5).collect();
            Counts::at(&logits, &positives, 0.0).f1()
        }
    })
}

impl TrainableEncoder {
    /// Trains the encoder and a linear head together on `train`, validating on `val` after each
    /// epoch and keeping the weights of the epoch with the best validation figure
    /// ([`FinetuneConfig::select_by`]: the lowest loss, or the highest score), stopping after
    /// `patience` epochs without improvement. Epoch 0, the linear probe on the encoder
    /// as joint training found it (after the contrastive stage, if any), competes too, so a run
    /// that only overfits keeps that encoder.
    ///
    /// With no validation texts (`val` empty: the few-shot case, where every labelled text is
    /// worth more in training than in choosing an epoch) every epoch runs and the last is kept;
    /// the validation losses are then `None`.
    ///
    /// With `contrastive_epochs` above 0 (single-label only) the encoder is first trained with
    /// [`contrastive::loss`]. The head then starts from a linear probe: a linear model fitted,
    /// with early stopping, on the encoder's embeddings of `train` as they are at that point.
    ///
    /// `progress` hears the number of texts done after each step; `on_epoch` hears each
    /// epoch's figures.
    ///
    /// # Errors
    /// Fails when a tensor operation fails, or when the contrastive stage is asked of
    /// multi-label targets or of texts none of which shares a label with another.
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
        if train.0.is_empty() {
            return Err(candle_core::Error::Msg("fine-tuning needs training texts".into()).into());
        }
        let validate = !val.0.is_empty();
        let mut rng = SplitMix::new(config.seed);
        let contrastive_started = std::time::Instant::now();
        // Its own stream, so that dropout does not change the order of the batches.
        let dropout = Dropout::new(config.dropout, config.seed ^ 0x6472_6f70_6f75_7421);
        let contrastive_losses =
            self.contrastive_stage(train, config, &mut rng, &dropout, progress)?;
        let contrastive_seconds = if contrastive_losses.is_empty() {
            0.0
        } else {
            contrastive_started.elapsed().as_secs_f64()
        };

        // The head starts from a linear probe on the current embeddings.
        let (head_w, head_b, val_x) = self.probe(train, val, labels, config.seed)?;
        let head_w = Var::from_tensor(&head_w)?;
        let head_b = Var::from_tensor(&head_b)?;
        let probe_checked = if validate {
            Some(self.check(&val_x, val.1, labels, (&head_w, &head_b))?)
        } else {
            None
        };
        tracing::debug!(?probe_checked, "linear probe fitted");
        let mut opt = self.optimiser(&[head_w.clone(), head_b.clone()], config)?;
        let mut all = self.vars();
        all.extend([head_w.clone(), head_b.clone()]);

        let batch_size = config.batch_size.max(1);
        let steps_per_epoch = train.0.len().div_ceil(batch_size);
        let total_steps = (steps_per_epoch * config.epochs).max(1);
        let warmup = warmup_steps(total_steps, config.warmup_fraction);
        let mut step = 0usize;
        // Epoch 0, the encoder as it is with the probe, is a candidate too: when fine-tuning
        // never validates better, that is what is kept.
        let snapshot = |vars: &[Var]| -> candle_core::Result<Vec<Tensor>> {
            vars.iter().map(|v| v.as_tensor().copy()).collect()
        };
        // Without validation nothing is compared, and the last epoch is kept after the loop.
        let probe_snapshot = if validate { snapshot(&all)? } else { Vec::new() };
        let mut best = (probe_checked.unwrap_or(Checked::UNKNOWN), 0usize, probe_snapshot);
        let mut reports = Vec::new();
        let mut order: Vec<usize> = (0..train.0.len()).collect();

        for epoch in 1..=config.epochs {
            let started = std::time::Instant::now();
            rng.shuffle(&mut order);
            let (mut train_loss, mut steps, mut step_seconds) = (0.0, 0, 0.0);
            for batch in order.chunks(batch_size) {
                let step_started = std::time::Instant::now();
                step += 1;
                let ids: Vec<&[u32]> = batch.iter().map(|&i| train.0[i].as_slice()).collect();
                let (pooled, rows) = self.forward_rows(&ids, Some(&dropout))?;
                let loss =
                    head_loss(&logits(&pooled, (&head_w, &head_b))?, train.1, batch, labels)?;
                train_loss += f64::from(loss.to_scalar::<f32>()?) * batch.len() as f64;
                opt.step(&loss, &rows, scheduled(config.lr, step, warmup, total_steps))?;
                steps += 1;
                step_seconds += step_started.elapsed().as_secs_f64();
                progress(batch.len());
            }

            let checked = if validate {
                let x = self.embed_tensor(val.0)?;
                Some(self.check(&x, val.1, labels, (&head_w, &head_b))?)
            } else {
                None
            };
            let report = EpochReport {
                epoch,
                train_loss: train_loss / train.0.len().max(1) as f64,
                val_loss: checked.map(|c| c.loss),
                val_score: checked.map(|c| c.score),
                seconds: started.elapsed().as_secs_f64(),
                steps,
                step_seconds,
            };
            on_epoch(&report);
            reports.push(report);
            // Without validation nothing is compared (the last epoch is kept below); a probe
            // whose figures could not be computed (NaN) loses to any epoch (`Checked::beats`).
            let Some(checked) = checked else { continue };
            if checked.beats(&best.0, config.select_by) {
                best = (checked, epoch, snapshot(&all)?);
            } else if epoch - best.1 >= config.patience {
                tracing::debug!(epoch, "validation stopped improving; stopping early");
                break;
            }
        }

        if !validate {
            best.1 = reports.len();
        }
        // An empty snapshot (no validation): the weights as they are now, the last epoch's, stay.
        let (_, best_epoch, snapshot) = best;
        for (var, saved) in all.iter().zip(&snapshot) {
            var.set(saved)?;
        }
        Ok(Finetuned {
            head_weight: head_w.as_tensor().flatten_all()?.to_vec1()?,
            head_bias: head_b.as_tensor().to_vec1()?,
            encoder: self,
            epochs: reports,
            best_epoch,
            probe_val_loss: probe_checked.map(|c| c.loss),
            probe_val_score: probe_checked.map(|c| c.score),
            contrastive_losses,
            contrastive_seconds,
        })
    }

    /// An optimiser over the encoder and `extra` variables (the head).
    fn optimiser(&self, extra: &[Var], config: &FinetuneConfig) -> candle_core::Result<Optimiser> {
        let mut dense = self.dense_vars();
        dense.extend(extra.iter().cloned());
        Optimiser::new(dense, self.word_table().clone(), config.weight_decay, config.max_grad_norm)
    }

    /// The contrastive stage: `contrastive_epochs` passes of [`contrastive::batches`] with
    /// [`contrastive::loss`], its own warm-up and decay. Returns each epoch's mean loss.
    fn contrastive_stage(
        &self,
        train: (&[Vec<u32>], &Targets),
        config: &FinetuneConfig,
        rng: &mut SplitMix,
        dropout: &Dropout,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f64>, FinetuneError> {
        if config.contrastive_epochs == 0 {
            return Ok(Vec::new());
        }
        let Targets::Single(classes) = train.1 else {
            return Err(candle_core::Error::Msg(
                "the contrastive stage needs single-label targets".into(),
            )
            .into());
        };
        let mut opt = self.optimiser(&[], config)?;
        let epochs: Vec<Vec<Vec<usize>>> = (0..config.contrastive_epochs)
            .map(|_| contrastive::batches(classes, config.batch_size, rng))
            .collect();
        let total: usize = epochs.iter().map(Vec::len).sum();
        if total == 0 {
            return Err(candle_core::Error::Msg(
                "the contrastive stage needs labels with two or more training texts".into(),
            )
            .into());
        }
        let warmup = warmup_steps(total, config.warmup_fraction);
        let mut step = 0;
        let mut losses = Vec::new();
        for (epoch, batches) in epochs.iter().enumerate() {
            let (mut sum, mut texts) = (0.0, 0usize);
            for batch in batches {
                step += 1;
                let ids: Vec<&[u32]> = batch.iter().map(|&i| train.0[i].as_slice()).collect();
                let batch_classes: Vec<u32> = batch.iter().map(|&i| classes[i]).collect();
                let (pooled, rows) = self.forward_rows(&ids, Some(dropout))?;
                let pooled = if self.info.normalize { pooled } else { l2_normalize(&pooled)? };
                let loss =
                    contrastive::loss(&pooled, &batch_classes, config.contrastive_temperature)?;
                sum += f64::from(loss.to_scalar::<f32>()?) * batch.len() as f64;
                texts += batch.len();
                opt.step(&loss, &rows, scheduled(config.lr, step, warmup, total))?;
                progress(batch.len());
            }
            let mean = sum / texts.max(1) as f64;
            tracing::info!(epoch = epoch + 1, loss = format!("{mean:.4}"), "contrastive epoch");
            losses.push(mean);
        }
        Ok(losses)
    }

    /// A linear model fitted on the current embeddings of `train` (early stopping on `val`, or
    /// every epoch when `val` is empty): weight (labels, dimension), bias (labels), and the
    /// embeddings of `val` (validation texts × dimension) it was checked on.
    fn probe(
        &self,
        train: (&[Vec<u32>], &Targets),
        val: (&[Vec<u32>], &Targets),
        labels: usize,
        seed: u64,
    ) -> Result<(Tensor, Tensor, Tensor), FinetuneError> {
        let dim = self.info.dimension;
        let (train_x, val_x) = (self.embed(train.0)?, self.embed(val.0)?);
        let (train_t, val_t) = (train.1.to_mlp(labels), val.1.to_mlp(labels));
        let objective = match train.1 {
            Targets::Single(_) => Objective::Softmax { class_weights: None },
            Targets::Multi(_) => Objective::Sigmoid { pos_weights: None },
        };
        // The settings of a head on frozen embeddings (`habitlens train` without
        // `--fine-tune`).
        let config = MlpConfig {
            epochs: 200,
            lr: 1e-3,
            weight_decay: 1.0,
            patience: 10,
            standardize: true,
            seed,
            ..MlpConfig::default()
        };
        let train_data = mlp::Data { features: &train_x, width: dim, targets: &train_t };
        let val_data = mlp::Data { features: &val_x, width: dim, targets: &val_t };
        let val_data = (!val.0.is_empty()).then_some(&val_data);
        let fitted = mlp::train(&train_data, val_data, &objective, &config, &mut |_| {})
            .map_err(|e| candle_core::Error::Msg(format!("fitting the linear probe: {e}")))?;
        let linear = fitted
            .mlp
            .as_linear()
            .map_err(|e| candle_core::Error::Msg(format!("reading the linear probe: {e}")))?
            .expect("the probe has no hidden layer");
        let w = Tensor::from_vec(linear.weight, (labels, dim), &self.device)?;
        let b = Tensor::from_vec(linear.bias, labels, &self.device)?;
        let val_x = Tensor::from_vec(val_x, (val.0.len(), dim), &self.device)?;
        Ok((w, b, val_x))
    }

    /// Embeddings of `ids` without gradients, as a (texts, dimension) tensor.
    fn embed_tensor(&self, ids: &[Vec<u32>]) -> Result<Tensor, FinetuneError> {
        let x = self.embed(ids)?;
        Ok(Tensor::from_vec(x, (ids.len(), self.info.dimension), &self.device)?)
    }

    /// Mean loss and score of `head` on validation embeddings `x` against `targets`.
    fn check(
        &self,
        x: &Tensor,
        targets: &Targets,
        labels: usize,
        head: (&Var, &Var),
    ) -> Result<Checked, FinetuneError> {
        let logits = logits(x, head)?;
        let all: Vec<usize> = (0..x.dim(0)?).collect();
        let loss = head_loss(&logits, targets, &all, labels)?;
        Ok(Checked {
            loss: f64::from(loss.to_scalar::<f32>()?),
            score: score(&logits, targets, labels)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_accuracy_or_micro_f1_at_one_half() {
        let device = candle_core::Device::Cpu;
        let logits = Tensor::new(&[[2.0f32, -1.0], [0.5, 1.5], [-0.2, -0.1]], &device).unwrap();
        // Predicted classes 0, 1, 1 against 0, 0, 1.
        let single = score(&logits, &Targets::Single(vec![0, 0, 1]), 2).unwrap();
        assert!((single - 2.0 / 3.0).abs() < 1e-12, "{single}");
        // Positive (logit ≥ 0): (0,0), (1,0), (1,1); truth (0,0), (1,1), (2,1):
        // 2 true positives, 1 false positive, 1 false negative.
        let hot = vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let multi = score(&logits, &Targets::Multi(hot), 2).unwrap();
        assert!((multi - 4.0 / 6.0).abs() < 1e-12, "{multi}");
    }

    #[test]
    fn selection_compares_loss_or_score_and_breaks_ties_by_loss() {
        let a = Checked { loss: 0.30, score: 0.90 };
        let b = Checked { loss: 0.25, score: 0.88 };
        assert!(b.beats(&a, Selection::Loss) && !a.beats(&b, Selection::Loss));
        assert!(a.beats(&b, Selection::Score) && !b.beats(&a, Selection::Score));
        let tied = Checked { loss: 0.20, score: 0.90 };
        assert!(tied.beats(&a, Selection::Score) && !a.beats(&tied, Selection::Score));
        for select in [Selection::Loss, Selection::Score] {
            assert!(a.beats(&Checked::UNKNOWN, select));
        }
    }

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((scheduled(1.0, 1, 4, 20) - 0.25).abs() < 1e-12);
        assert!((scheduled(1.0, 4, 4, 20) - 1.0).abs() < 1e-12);
        assert!((scheduled(1.0, 5, 4, 20) - 1.0).abs() < 1e-12);
        assert!((scheduled(1.0, 13, 4, 20) - 0.5).abs() < 1e-12);
        assert!((scheduled(1.0, 20, 4, 20) - 1.0 / 16.0).abs() < 1e-12);
        assert_eq!(warmup_steps(100, 0.1), 10);
        assert_eq!(warmup_steps(3, 0.0), 1);
    }
}
