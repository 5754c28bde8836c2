//! `habitlens train --fine-tune`: train the transformer together with a linear head and write
//! the output folder as a complete sentence-transformers model plus the head.
//!
//! The rows are read and checked, and split for validation, exactly as for a head on frozen
//! embeddings ([`crate::heads::split::stratified`] with `--val-fraction` and `--seed`). The
//! texts are tokenized as the [`crate::embed::Embedder`] tokenizes them (no padding, truncation
//! at `--max-seq-length` or the model's limit), [`TrainableEncoder::finetune`] trains, and the
//! folder gets the encoder ([`TrainableEncoder::export`]), the head (`head.safetensors`, a
//! linear [`Mlp`]; `head.json` whose `base_model` is the folder itself) and
//! [`CHECK_FILE`]: embeddings of a few validation texts as the training run computed them, so
//! anyone can check that loading the folder reproduces them.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokenizers::{Tokenizer, TruncationParams};

use super::train::{head_name, read_checked};
use super::{Ui, UsageError, warn_truncated};
use crate::cli::heads::TrainArgs;
use crate::finetune::{EpochReport, FinetuneConfig, Selection, Targets, TrainableEncoder};
use crate::heads::format::{BaseModel, FineTuneRecord, HeadMeta, TrainingSettings};
use crate::heads::labels::TaskKind;
use crate::heads::split::stratified;
use crate::heads::train::{figures, probabilities, tune_thresholds};
use crate::heads::{FORMAT_VERSION, Head, META_FILE};
use crate::mlp::{Mlp, MlpConfig};
use crate::model::{ModelFiles, ModelInfo, ModelSource, ModelSpec};

/// File of the output folder holding embeddings of a few validation texts as the training run
/// computed them.
pub const CHECK_FILE: &str = "fine_tune_check.json";

/// Validation texts whose embeddings go into [`CHECK_FILE`].
const CHECK_TEXTS: usize = 4;

#[derive(Serialize)]
struct CheckFile<'a> {
    /// What the file is for.
    about: &'static str,
    texts: Vec<&'a str>,
    embeddings: Vec<&'a [f32]>,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)
}

/// What the validation score is for `kind` (see [`EpochReport::val_score`]).
fn score_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::SingleLabel => "accuracy",
        TaskKind::MultiLabel => "micro-F1 at 0.5",
    }
}

fn step_progress(ui: Ui, texts: usize, first: &str) -> ProgressBar {
    if !ui.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(texts as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "fine-tuning {bar:30} {pos}/{len} texts, {msg} {elapsed} (eta {eta})",
        )
        .expect("the progress template is valid"),
    );
    bar.set_message(first.to_string());
    bar
}

/// Writes `max_seq_length` into the folder's `sentence_bert_config.json`, keeping its other
/// settings.
fn record_max_seq_length(dir: &Path, max_seq_length: usize) -> anyhow::Result<()> {
    let path = dir.join("sentence_bert_config.json");
    let mut config = match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("reading `{}`", path.display()))?
        }
        Err(_) => serde_json::json!({}),
    };
    if let Some(object) = config.as_object_mut() {
        object.insert("max_seq_length".into(), max_seq_length.into());
    }
    crate::output::write_json(&path, &config)?;
    Ok(())
}

pub(super) fn run(args: &TrainArgs, ui: Ui) -> anyhow::Result<()> {
    let started = Instant::now();
    let name = head_name(args);
    let folder = crate::output::OutputFolder::claim(&args.output, META_FILE)?;
    let kind = if args.multi_label { TaskKind::MultiLabel } else { TaskKind::SingleLabel };

    // Read and check the data before loading the model.
    let (labelled, data, total) = read_checked(args, kind)?;
    let labels = data.labels.len();

    // The model to start from; the output folder must not be it (export copies its files).
    let spec = ModelSpec::parse(&args.model)?;
    if let ModelSpec::Local(dir) = &spec
        && crate::heads::same_path(dir, &args.output)
    {
        return Err(UsageError(format!(
            "`--output {}` is the model being fine-tuned: write the fine-tuned model to another \
             folder",
            args.output.display()
        ))
        .into());
    }
    let files = ModelFiles::resolve(&ModelSource::new(spec)?)
        .with_context(|| format!("loading model `{}`", args.model))?;
    let max_seq_length = args
        .max_seq_length
        .unwrap_or(files.info.max_seq_length)
        .min(files.config.max_position_embeddings);
    if args.max_seq_length.is_some_and(|n| n > max_seq_length) {
        tracing::warn!(
            "`--max-seq-length` {} is beyond what `{}` can read: texts are cut at its {} \
             positions",
            args.max_seq_length.unwrap_or_default(),
            files.info.id,
            max_seq_length
        );
    }

    // Tokenize as the embedder does: no padding, truncation at the limit.
    let tokenizer_err =
        |e| anyhow::anyhow!("cannot load tokenizer `{}`: {e}", files.tokenizer.display());
    let mut tokenizer = Tokenizer::from_file(&files.tokenizer).map_err(tokenizer_err)?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_seq_length,
            ..TruncationParams::default()
        }))
        .map_err(tokenizer_err)?;
    let texts: Vec<&str> = data.texts.iter().map(String::as_str).collect();
    let encodings = tokenizer
        .encode_batch(texts, true)
        .map_err(|e| anyhow::anyhow!("cannot tokenize the training texts: {e}"))?;
    let truncated = encodings.iter().filter(|e| !e.get_overflowing().is_empty()).count();
    warn_truncated(truncated, max_seq_length);
    let ids: Vec<Vec<u32>> = encodings.iter().map(|e| e.get_ids().to_vec()).collect();
    drop(encodings);

    // The same split as a head on frozen embeddings.
    let split = stratified(&data.targets, labels, args.val_fraction, args.seed);
    let ids_of = |idx: &[usize]| -> Vec<Vec<u32>> { idx.iter().map(|&i| ids[i].clone()).collect() };
    let targets_of = |idx: &[usize]| match kind {
        TaskKind::SingleLabel => Targets::Single(idx.iter().map(|&i| data.targets[i][0]).collect()),
        TaskKind::MultiLabel => Targets::Multi(data.target_matrix(idx)),
    };
    if split.val.is_empty() && args.val_fraction > 0.0 {
        return Err(UsageError(format!(
            "no validation rows: with `--val-fraction {}` no label of `{}` has enough examples to \
             give one to validation\nhint: add examples (a label needs two or more to give one \
             to validation), or train without validation with `--val-fraction 0`, which runs \
             every epoch and keeps the last",
            args.val_fraction, labelled.file
        ))
        .into());
    }
    if split.val.is_empty() && args.patience.is_some() {
        tracing::warn!(
            "`--patience` has no effect without validation rows (`--val-fraction 0`): every \
             epoch runs"
        );
    }
    if split.val.is_empty() && args.select_by == crate::cli::heads::SelectBy::Score {
        tracing::warn!(
            "`--select-by score` has no effect without validation rows (`--val-fraction 0`): the \
             last epoch is kept"
        );
    }
    // Texts the contrastive stage passes over each epoch: those of labels with a partner.
    let mut contrastive_texts = 0;
    if args.contrastive {
        let classes: Vec<u32> = split.train.iter().map(|&i| data.targets[i][0]).collect();
        contrastive_texts = crate::finetune::contrastive::paired_texts(&classes);
        if contrastive_texts == 0 {
            let held_out =
                if split.val.is_empty() { "" } else { " once the validation rows are held out" };
            return Err(UsageError(format!(
                "`--contrastive` needs a label with two or more training rows, and no label of \
                 `{}` has two{held_out}\nhint: add examples, or leave out `--contrastive`",
                labelled.file
            ))
            .into());
        }
    }
    let (train_ids, val_ids) = (ids_of(&split.train), ids_of(&split.val));
    let (train_t, val_t) = (targets_of(&split.train), targets_of(&split.val));

    let config = FinetuneConfig {
        epochs: args.epochs(),
        lr: args.lr(),
        warmup_fraction: args.warmup_fraction,
        weight_decay: args.weight_decay(),
        batch_size: args.batch_size(),
        max_grad_norm: args.max_grad_norm,
        patience: args.patience(),
        seed: args.seed,
        contrastive_epochs: if args.contrastive { args.contrastive_epochs } else { 0 },
        contrastive_temperature: args.contrastive_temperature,
        dropout: args.dropout,
        select_by: args.select_by.into(),
    };
    let device = Device::Cpu;
    let encoder = TrainableEncoder::load(&files, &device)
        .with_context(|| format!("loading model `{}` for training", args.model))?;
    tracing::info!(
        train = train_ids.len(),
        val = val_ids.len(),
        labels,
        max_seq_length,
        ?config,
        "fine-tuning"
    );

    // Progress, per-epoch figures, and the time of the optimiser steps alone.
    let first = if config.contrastive_epochs > 0 { "contrastive epoch 1" } else { "epoch 1" };
    let contrastive_total = contrastive_texts * config.contrastive_epochs;
    let bar = step_progress(ui, contrastive_total + train_ids.len() * config.epochs, first);
    let progress_bar = bar.clone();
    let (mut done, stage_started) = (0usize, Instant::now());
    let mut progress = |n: usize| {
        progress_bar.inc(n as u64);
        let before = done;
        done += n;
        // The contrastive stage has no figures of its own per epoch: say where it is.
        if before < contrastive_total && contrastive_texts > 0 {
            let epoch = done / contrastive_texts;
            if epoch > before / contrastive_texts && ui.progress {
                progress_bar.suspend(|| {
                    noteln!(
                        "contrastive epoch {epoch}/{}: done, {:.1} s in the stage",
                        config.contrastive_epochs,
                        stage_started.elapsed().as_secs_f64()
                    );
                });
                progress_bar.set_message(if epoch < config.contrastive_epochs {
                    format!("contrastive epoch {}", epoch + 1)
                } else {
                    "epoch 1".to_string()
                });
            }
        }
    };
    let epoch_bar = bar.clone();
    let mut on_epoch = |e: &EpochReport| {
        tracing::info!(
            epoch = e.epoch,
            train_loss = format!("{:.4}", e.train_loss),
            val_loss = e.val_loss.map(|l| format!("{l:.4}")),
            val_score = e.val_score.map(|l| format!("{l:.4}")),
            seconds = format!("{:.1}", e.seconds),
            "epoch"
        );
        if ui.progress {
            epoch_bar.suspend(|| {
                noteln!(
                    "epoch {}/{}: train loss {:.4}, validation loss {}, {} {}, {:.1} s",
                    e.epoch,
                    config.epochs,
                    e.train_loss,
                    e.val_loss.map_or("-".into(), |l| format!("{l:.4}")),
                    score_name(kind),
                    e.val_score.map_or("-".into(), |l| format!("{l:.4}")),
                    e.seconds
                );
            });
            epoch_bar.set_message(format!("epoch {}", e.epoch + 1));
        }
    };
    let tuned = encoder
        .finetune(
            (&train_ids, &train_t),
            (&val_ids, &val_t),
            labels,
            &config,
            &mut progress,
            &mut on_epoch,
        )
        .context("fine-tuning the encoder")?;
    bar.finish_and_clear();
    let steps: usize = tuned.epochs.iter().map(|e| e.steps).sum();
    // Folded from 0.0: an empty `sum` of floats is -0.0, which `--epochs 0` would write.
    let step_seconds = tuned.epochs.iter().fold(0.0, |s, e| s + e.step_seconds);
    let train_seconds = tuned.epochs.iter().fold(0.0, |s, e| s + e.seconds);

    // Validation figures and thresholds, from the kept encoder and head.
    let head_mlp = Mlp::linear(tuned.head_weight.clone(), tuned.head_bias.clone())?;
    let val_embeddings = tuned.encoder.embed(&val_ids)?;
    let (validation, thresholds) = if split.val.is_empty() {
        // Without validation, multi-label heads keep the default cut-off of 0.5.
        let thresholds = match kind {
            TaskKind::SingleLabel => vec![],
            TaskKind::MultiLabel => vec![0.5; labels],
        };
        (None, thresholds)
    } else {
        let probs = probabilities(&head_mlp, kind, &val_embeddings)?;
        let thresholds = match kind {
            TaskKind::SingleLabel => vec![],
            TaskKind::MultiLabel => {
                tune_thresholds(&probs, labels, &data.target_matrix(&split.val))
            }
        };
        let val_targets = val_t.to_mlp(labels);
        let best_loss = match tuned.best_epoch {
            0 => tuned.probe_val_loss,
            e => tuned.epochs[e - 1].val_loss,
        };
        let loss = best_loss.unwrap_or(f64::NAN);
        (Some(figures(kind, &probs, labels, &val_targets, &thresholds, loss)), thresholds)
    };
    // The texts whose embeddings go into the check file: validation texts, else training ones.
    let (check_rows, check_embeddings) = if split.val.is_empty() {
        let rows = &split.train[..split.train.len().min(CHECK_TEXTS)];
        (rows, tuned.encoder.embed(&ids_of(rows))?)
    } else {
        (&split.val[..split.val.len().min(CHECK_TEXTS)], val_embeddings)
    };

    // A learning rate too high sends the weights to infinity or NaN (without validation there
    // is no better epoch to fall back on): nothing usable could be written.
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if !finite(&tuned.head_weight) || !finite(&tuned.head_bias) || !finite(&check_embeddings) {
        return Err(crate::heads::HeadError::Diverged { lr: config.lr }.into());
    }

    // The folder: the encoder, the head, and embeddings to check a reload against, all staged
    // (see `StagedFolder`) and moved to `--output` once every file is written.
    let write_ctx = || format!("writing the fine-tuned model to `{}`", args.output.display());
    let staged = crate::output::StagedFolder::new(&args.output).with_context(write_ctx)?;
    tuned.encoder.export(&files, staged.path()).with_context(write_ctx)?;
    if max_seq_length != files.info.max_seq_length {
        record_max_seq_length(staged.path(), max_seq_length).with_context(write_ctx)?;
    }
    let own = ModelInfo {
        id: args.output.display().to_string(),
        revision: "local".into(),
        max_seq_length,
        ..files.info.clone()
    };
    let meta = HeadMeta {
        format_version: FORMAT_VERSION,
        name,
        base_model: BaseModel::from(&own),
        task: kind,
        labels: data.labels.clone(),
        thresholds,
        text_column: labelled.text_column.clone(),
        label_column: args.label_column.clone(),
        label_separator: args.multi_label.then(|| args.label_separator.clone()),
        training: TrainingSettings {
            mlp: MlpConfig {
                hidden: vec![],
                dropout: config.dropout,
                epochs: config.epochs,
                batch_size: config.batch_size,
                lr: config.lr,
                weight_decay: config.weight_decay,
                patience: config.patience,
                standardize: false,
                seed: config.seed,
            },
            val_fraction: args.val_fraction,
            class_weights: None,
            epochs_run: tuned.epochs.len(),
            best_epoch: tuned.best_epoch,
            refit: false,
            seconds: train_seconds,
        },
        validation: validation.clone(),
        data: super::train::data_seen(&labelled, total, &data),
        habitlens_version: env!("CARGO_PKG_VERSION").to_string(),
        fine_tune: Some(FineTuneRecord {
            from_model: BaseModel::from(&files.info),
            max_seq_length,
            settings: config.clone(),
            epochs: tuned.epochs.clone(),
            steps,
            seconds_per_step: step_seconds / steps.max(1) as f64,
            probe_val_loss: tuned.probe_val_loss,
            probe_val_score: tuned.probe_val_score,
            contrastive_losses: tuned.contrastive_losses.clone(),
            contrastive_seconds: tuned.contrastive_seconds,
        }),
    };
    let head = Head::new(meta, head_mlp)?;
    head.save(staged.path()).with_context(write_ctx)?;
    let dim = files.info.dimension;
    let shown = check_rows.len();
    let check = CheckFile {
        about: "embeddings of the first validation texts (training texts when there is no \
                validation) by the fine-tuned encoder, as the training run computed them; \
                embedding these texts with `--model` this folder should give the same vectors \
                (cosine above 0.9999)",
        texts: check_rows.iter().map(|&i| data.texts[i].as_str()).collect(),
        embeddings: (0..shown).map(|k| &check_embeddings[k * dim..(k + 1) * dim]).collect(),
    };
    crate::output::write_json(&staged.path().join(CHECK_FILE), &check).with_context(write_ctx)?;
    staged.commit().with_context(write_ctx)?;

    // Load the folder back as any command would, and compare.
    let reloaded = crate::embed::Embedder::load(&ModelSpec::Local(args.output.clone()))
        .with_context(|| {
            format!("loading the fine-tuned model back from `{}`", args.output.display())
        })?;
    let again = reloaded.embed(&check.texts).context("embedding the check texts again")?;
    let lowest = check
        .embeddings
        .iter()
        .enumerate()
        .map(|(k, e)| cosine(again.row(k), e))
        .fold(1.0f64, f64::min);
    if lowest < 0.9999 {
        tracing::warn!(
            "the folder loaded back embeds the check texts differently from the training run \
             (lowest cosine {lowest:.6}): please report this"
        );
    }

    // Report.
    sayln!(
        "fine-tuned `{}` with head `{}` ({}, {} labels) on `{}`: {} rows read, {} used, {} \
         skipped",
        files.info.id,
        head.meta.name,
        if kind == TaskKind::MultiLabel { "multi-label" } else { "single-label" },
        labels,
        labelled.file,
        total,
        data.len(),
        data.skipped.len()
    )?;
    sayln!(
        "split: {} training rows, {} validation rows (seed {})",
        split.train.len(),
        split.val.len(),
        args.seed
    )?;
    if !tuned.contrastive_losses.is_empty() {
        let losses: Vec<String> =
            tuned.contrastive_losses.iter().map(|l| format!("{l:.4}")).collect();
        sayln!(
            "contrastive stage: {} epoch(s) at temperature {}, {:.1} s, loss per epoch {}",
            losses.len(),
            config.contrastive_temperature,
            tuned.contrastive_seconds,
            losses.join(", ")
        )?;
    }
    let probe_from =
        if tuned.contrastive_losses.is_empty() { "model's" } else { "contrastive stage's" };
    if config.epochs == 0 {
        // `--contrastive --epochs 0`: the head is the probe, as in SetFit.
        sayln!(
            "joint training: none (`--epochs 0`): the head is a linear probe on the \
             {probe_from} embeddings; {truncated} text(s) cut at {max_seq_length} tokens"
        )?;
        match &validation {
            Some(v) => super::train::say_validation(kind, v, labels)?,
            None => sayln!("validation: none (`--val-fraction 0`)")?,
        }
    } else {
        sayln!(
            "joint training: {:.1} s, {} epoch(s), kept epoch {}; {} step(s) of {} texts, {:.2} s per step; \
             texts cut at {} tokens: {}",
            train_seconds,
            tuned.epochs.len(),
            match tuned.best_epoch {
                0 => "0 (no epoch of joint training beat the linear probe on validation: kept \
                      the encoder it started from)"
                    .to_string(),
                e => e.to_string(),
            },
            steps,
            config.batch_size,
            step_seconds / steps.max(1) as f64,
            max_seq_length,
            truncated
        )?;
        match (tuned.probe_val_loss, tuned.probe_val_score, &validation) {
            (Some(probe), Some(probe_score), Some(v)) => {
                let (figure, probe, best_joint) = match config.select_by {
                    Selection::Loss => (
                        "loss",
                        probe,
                        tuned
                            .epochs
                            .iter()
                            .filter_map(|e| e.val_loss)
                            .fold(f64::INFINITY, f64::min),
                    ),
                    Selection::Score => (
                        score_name(kind),
                        probe_score,
                        tuned.epochs.iter().filter_map(|e| e.val_score).fold(0.0, f64::max),
                    ),
                };
                sayln!(
                    "head started from a linear probe on the {probe_from} embeddings: validation \
                     {figure} {probe:.4}; best epoch of joint training {best_joint:.4}; kept the {}",
                    if tuned.best_epoch == 0 { "probe" } else { "fine-tuned encoder and head" }
                )?;
                super::train::say_validation(kind, v, labels)?;
            }
            _ => {
                sayln!("head started from a linear probe on the {probe_from} embeddings")?;
                sayln!(
                    "validation: none (`--val-fraction 0`): ran all {} epoch(s) and kept the last",
                    tuned.epochs.len()
                )?;
            }
        }
    }
    sayln!(
        "reload check: the folder gives the training run's embeddings of {shown} {} \
         text(s), lowest cosine {lowest:.6}",
        if split.val.is_empty() { "training" } else { "validation" }
    )?;
    sayln!(
        "model and head written to {} (use it as `--model` or `--head`); {:.1} s in all",
        args.output.display(),
        started.elapsed().as_secs_f64()
    )?;
    folder.keep();
    Ok(())
}
