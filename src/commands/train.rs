//! `habitlens train`: fit a classifier head on labelled texts and write its folder.

use std::io::Read;
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::{Ui, UsageError, load_embedder, text_progress, warn_truncated};
use crate::cli::InputArgs;
use crate::cli::heads::{CacheArgs, ClassWeights, TrainArgs};
use crate::finetune::contrastive;
use crate::heads::cache::{EmbeddingCache, embed_cached, hex};
use crate::heads::format::{BaseModel, DataSeen, HeadMeta, TrainingSettings};
use crate::heads::labels::{LabelledData, RawRow, TaskKind};
use crate::heads::train::{EpochReport, TrainOptions, fit};
use crate::heads::{FORMAT_VERSION, Head, META_FILE};
use crate::input::Source;
use crate::mlp::MlpConfig;

/// Rows of a labelled file, with its display name, the text column used and a content hash.
pub(super) struct LabelledFile {
    pub file: String,
    pub text_column: String,
    pub rows: Vec<RawRow>,
    pub sha256: String,
}

/// Reads every row of `input` with its label cell from `label_column`; for multi-label heads
/// (`list_separator`), a JSONL list of labels is joined with the separator.
pub(super) fn read_labelled(
    input: &InputArgs,
    label_column: &str,
    list_separator: Option<&str>,
) -> anyhow::Result<LabelledFile> {
    let label = vec![(label_column.to_string(), "--label-column".into())];
    let reader = super::open_input_with(input, label, list_separator)?;
    let file = reader.file_name().to_string();
    let text_column = match (&input.text_column, reader.headers()) {
        (Some(c), _) => c.clone(),
        (None, [only]) => only.clone(),
        (None, headers) => headers
            .iter()
            .find(|h| h.eq_ignore_ascii_case("text"))
            .cloned()
            .unwrap_or("text".into()),
    };
    let source = Source::from_arg(&input.input);
    let mut hasher = Sha256::new();
    let mut rows = Vec::new();
    for record in reader {
        let record = record?;
        if source == Source::Stdin {
            hasher.update(record.text.as_bytes());
            hasher.update(b"\x1f");
            hasher.update(record.extra[0].as_bytes());
            hasher.update(b"\x1e");
        }
        rows.push(RawRow { row: record.row, text: record.text, cell: record.extra[0].clone() });
    }
    if let Source::File(path) = &source {
        let mut f = std::fs::File::open(path).with_context(|| format!("reading `{file}`"))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).with_context(|| format!("reading `{file}`"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(LabelledFile { file, text_column, rows, sha256: hex(&hasher.finalize()) })
}

/// Reads the labelled file of `args` and checks its rows for `kind`, warning about rows skipped
/// and labels too rare to learn; returns the file (its rows moved into the data), the data and
/// the number of rows read.
pub(super) fn read_checked(
    args: &TrainArgs,
    kind: TaskKind,
) -> anyhow::Result<(LabelledFile, LabelledData, usize)> {
    let separator = (kind == TaskKind::MultiLabel).then_some(args.label_separator.as_str());
    let mut labelled = read_labelled(&args.input, &args.label_column, separator)?;
    let rows = std::mem::take(&mut labelled.rows);
    let total = rows.len();
    let data =
        LabelledData::check(rows, kind, &args.label_separator, &labelled.file, &args.label_column)?;
    for msg in data.skip_messages(&labelled.file, &labelled.text_column, &args.label_column) {
        tracing::warn!("{msg}");
    }
    for msg in &data.warnings {
        tracing::warn!("{msg}");
    }
    Ok((labelled, data, total))
}

/// Prints the validation figures of a head on stdout, as `train` reports them.
pub(super) fn say_validation(
    kind: TaskKind,
    v: &crate::heads::format::ValidationFigures,
    labels: usize,
) -> std::io::Result<()> {
    // Figures on a few labels can read as figures on all: say when some have no row.
    let coverage = match v.labels_seen {
        Some(seen) if seen < labels => format!(
            " ({} row(s), covering {seen} of the {labels} labels: the others have no validation \
             row)",
            v.rows
        ),
        _ => String::new(),
    };
    match kind {
        TaskKind::SingleLabel => sayln!(
            "validation: accuracy {:.4}, macro-F1 {:.4}, weighted-F1 {:.4}, loss {:.4}{coverage}",
            v.accuracy,
            v.macro_f1,
            v.weighted_f1.unwrap_or(f64::NAN),
            v.loss
        ),
        TaskKind::MultiLabel => sayln!(
            "validation: micro-F1 {:.4}, macro-F1 {:.4}, exact match {:.4}, loss {:.4}{coverage}",
            v.micro_f1.unwrap_or(f64::NAN),
            v.macro_f1,
            v.accuracy,
            v.loss
        ),
    }
}

/// What a head records of the data it was trained on.
pub(super) fn data_seen(labelled: &LabelledFile, total: usize, data: &LabelledData) -> DataSeen {
    DataSeen {
        file: labelled.file.clone(),
        rows: total,
        rows_used: data.len(),
        rows_skipped: data.skipped.len(),
        sha256: labelled.sha256.clone(),
    }
}

/// The embedding cache the flags ask for, if any.
pub(super) fn cache_from_args(args: &CacheArgs) -> Option<EmbeddingCache> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(EmbeddingCache::default_dir);
    if dir.is_none() {
        tracing::warn!(
            "no cache folder is known (no HOME); pass `--cache-dir` to cache embeddings"
        );
    }
    dir.map(EmbeddingCache::new)
}

pub(super) fn check_flags(args: &TrainArgs) -> Result<(), UsageError> {
    let fail = |msg: String| Err(UsageError(msg));
    if !(0.0..0.9).contains(&args.val_fraction) {
        return fail(format!(
            "`--val-fraction` must be at least 0 and below 0.9, got {}",
            args.val_fraction
        ));
    }
    let name = head_name(args);
    if name.trim().is_empty() || ["id", "status"].contains(&name.as_str()) {
        return fail(format!(
            "`--name` `{name}` cannot name a head: its columns would clash with `id` and \
             `status` or be unnamed"
        ));
    }
    super::check_parent_folders(&args.output, "--output")?;
    if args.output.exists() && !args.output.is_dir() {
        return fail(format!(
            "`--output` `{}` is a file; it must be a folder for the head",
            args.output.display()
        ));
    }
    if !(0.0..1.0).contains(&args.dropout) {
        return fail(format!("`--dropout` must be at least 0 and below 1, got {}", args.dropout));
    }
    // With `--contrastive`, `--epochs 0` leaves out joint training: the contrastive encoder
    // with a linear probe on its embeddings, as SetFit does.
    if args.epochs() == 0 && !args.contrastive {
        return fail(
            "`--epochs` must be at least 1 (`--epochs 0` is for `--fine-tune --contrastive` \
             alone: the contrastive stage with a linear probe)"
                .into(),
        );
    }
    for (flag, zero) in
        [("--batch-size", args.batch_size() == 0), ("--hidden", args.hidden == Some(0))]
    {
        if zero {
            return fail(format!("`{flag}` must be at least 1"));
        }
    }
    let numbers = [
        ("--lr", args.lr()),
        ("--weight-decay", args.weight_decay()),
        ("--max-grad-norm", args.max_grad_norm),
    ];
    if let Some((flag, value)) = numbers.iter().find(|(_, v)| !v.is_finite()) {
        return fail(format!("`{flag}` must be a finite number, got {value}"));
    }
    if args.lr() <= 0.0 || args.weight_decay() < 0.0 {
        return fail(format!(
            "`--lr` must be above 0 and `--weight-decay` at least 0, got {} and {}",
            args.lr(),
            args.weight_decay()
        ));
    }
    if args.multi_label && args.label_separator.is_empty() {
        return fail("`--label-separator` cannot be empty".into());
    }
    if args.fine_tune {
        if !(0.0..1.0).contains(&args.warmup_fraction) || args.max_grad_norm <= 0.0 {
            return fail(format!(
                "`--warmup-fraction` must be at least 0 and below 1 and `--max-grad-norm` above \
                 0, got {} and {}",
                args.warmup_fraction, args.max_grad_norm
            ));
        }
        if args.max_seq_length.is_some_and(|n| n < 3) {
            return fail("`--max-seq-length` must be at least 3 tokens".into());
        }
        if args.contrastive && args.contrastive_epochs == 0 {
            return fail("`--contrastive-epochs` must be at least 1".into());
        }
        let temperature = args.contrastive_temperature;
        if !(temperature >= contrastive::MIN_TEMPERATURE && temperature.is_finite()) {
            return fail(format!(
                "`--contrastive-temperature` must be a finite number of at least {}, got \
                 {temperature}",
                contrastive::MIN_TEMPERATURE
            ));
        }
    }
    Ok(())
}

/// `--name`, else the output folder's name, else `head`.
pub(super) fn head_name(args: &TrainArgs) -> String {
    match &args.name {
        Some(n) => n.clone(),
        // `.`, `..` and `a/..` name their folder only once resolved.
        None => (args.output.file_name().map(std::path::PathBuf::from))
            .or_else(|| args.output.canonicalize().ok())
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .unwrap_or_else(|| "head".into()),
    }
}

pub(super) fn run(args: &TrainArgs, ui: Ui) -> anyhow::Result<()> {
    check_flags(args)?;
    if args.fine_tune {
        return super::finetune::run(args, ui);
    }
    let name = head_name(args);
    let folder = crate::output::OutputFolder::claim(&args.output, META_FILE)?;
    let real = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    let model_is_output =
        real(std::path::Path::new(&args.model)).is_some_and(|m| Some(m) == real(&args.output));
    // A head trained on the folder's own model (`--model DIR --output DIR`) does use it.
    if args.output.join("model.safetensors").is_file() && !model_is_output {
        tracing::warn!(
            "`{}` holds a model from an earlier run (`model.safetensors`): the new head is \
             trained on `{}` and does not use it, and it stays in the folder; write the head to \
             a folder of its own to avoid confusion",
            args.output.display(),
            args.model
        );
    }
    let kind = if args.multi_label { TaskKind::MultiLabel } else { TaskKind::SingleLabel };

    // Read and check the data before loading the model.
    let (labelled, data, total) = read_checked(args, kind)?;
    tracing::info!(
        rows = total,
        used = data.len(),
        skipped = data.skipped.len(),
        labels = data.labels.len(),
        "labelled data read"
    );

    // Embed (or read the cache).
    let embedder = load_embedder(&args.model_args())?;
    let cache = cache_from_args(&args.cache);
    let embed_started = Instant::now();
    let bar = text_progress(ui, "embedding");
    let progress_bar = bar.clone();
    let embedded =
        embed_cached(&embedder, &data.texts, cache.as_ref(), &mut |n| progress_bar.inc(n as u64))
            .context("embedding the training texts")?;
    bar.finish_and_clear();
    warn_truncated(embedded.truncated, embedder.info().max_seq_length);
    let embed_seconds = embed_started.elapsed().as_secs_f64();

    // Train.
    let mlp = MlpConfig {
        hidden: args.hidden.into_iter().collect(),
        dropout: if args.hidden.is_some() { args.dropout } else { 0.0 },
        epochs: args.epochs(),
        batch_size: args.batch_size(),
        lr: args.lr(),
        weight_decay: args.weight_decay(),
        patience: args.patience(),
        standardize: !args.no_standardize,
        seed: args.seed,
    };
    let options = TrainOptions {
        mlp: mlp.clone(),
        val_fraction: args.val_fraction,
        balanced: args.class_weights == Some(ClassWeights::Balanced),
        refit: !args.no_refit,
    };
    let bar = super::epoch_progress(ui, args.epochs());
    let mut on_epoch = |e: &EpochReport| {
        let s = &e.stats;
        tracing::info!(
            epoch = s.epoch,
            train_loss = format!("{:.4}", s.train_loss),
            val_loss = s.val_loss.map(|v| format!("{v:.4}")),
            val_macro_f1 = e.val_macro_f1.map(|v| format!("{v:.4}")),
            seconds = format!("{:.3}", s.seconds),
            "epoch"
        );
        bar.set_position(s.epoch as u64);
        if let (Some(l), Some(f)) = (s.val_loss, e.val_macro_f1) {
            bar.set_message(format!("val loss {l:.4}, macro-F1 {f:.3}"));
        }
    };
    let dimension = embedder.info().dimension;
    let fitted = fit(&embedded.data, dimension, &data, &options, &mut on_epoch)?;
    bar.finish_and_clear();

    let meta = HeadMeta {
        format_version: FORMAT_VERSION,
        name,
        base_model: BaseModel::of(&embedder),
        task: kind,
        labels: data.labels.clone(),
        thresholds: fitted.thresholds.clone(),
        text_column: labelled.text_column.clone(),
        label_column: args.label_column.clone(),
        label_separator: args.multi_label.then(|| args.label_separator.clone()),
        training: TrainingSettings {
            mlp,
            val_fraction: args.val_fraction,
            class_weights: options.balanced.then(|| "balanced".to_string()),
            epochs_run: fitted.epochs_run,
            best_epoch: fitted.best_epoch,
            refit: fitted.refitted,
            seconds: fitted.seconds,
        },
        validation: fitted.validation.clone(),
        data: data_seen(&labelled, total, &data),
        habitlens_version: env!("CARGO_PKG_VERSION").to_string(),
        fine_tune: None,
    };
    let head = Head::new(meta, fitted.mlp.clone())?;
    // Both files staged and moved in together, so a failed write never pairs new weights with
    // an old `head.json`.
    let write_ctx = || format!("writing the head to `{}`", args.output.display());
    let staged = crate::output::StagedFolder::new(&args.output).with_context(write_ctx)?;
    head.save(staged.path()).with_context(write_ctx)?;
    staged.commit().with_context(write_ctx)?;

    // Report.
    let m = &head.meta;
    sayln!(
        "trained head `{}` ({}, {} labels) on `{}`: {} rows read, {} used, {} skipped",
        m.name,
        if kind == TaskKind::MultiLabel { "multi-label" } else { "single-label" },
        m.labels.len(),
        labelled.file,
        total,
        data.len(),
        data.skipped.len()
    )?;
    sayln!(
        "split: {} training rows, {} validation rows (seed {})",
        fitted.split.train.len(),
        fitted.split.val.len(),
        args.seed
    )?;
    sayln!(
        "embedding: {:.1} s{}; training: {:.2} s, {} epochs, kept epoch {}{}",
        embed_seconds,
        if embedded.from_cache { " (from the cache)" } else { "" },
        fitted.seconds,
        fitted.epochs_run,
        fitted.best_epoch,
        if fitted.refitted { ", then refitted on every row" } else { "" }
    )?;
    match &m.validation {
        Some(v) => say_validation(kind, v, m.labels.len())?,
        None if args.val_fraction > 0.0 => sayln!(
            "validation: none (at `--val-fraction {}` no label has enough rows to give one to \
             validation): trained for all {} epochs on every row",
            args.val_fraction,
            fitted.epochs_run
        )?,
        None => sayln!("validation: none (`--val-fraction 0`)")?,
    }
    sayln!("head written to {}", args.output.display())?;
    folder.keep();
    Ok(())
}
