//! `habitlens evaluate`: measure trained heads on labelled texts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::train::{cache_from_args, read_labelled};
use super::{Ui, UsageError, load_embedder_for_heads, text_progress, warn_truncated};
use crate::cli::heads::EvaluateArgs;
use crate::heads::cache::embed_cached;
use crate::heads::labels::{TaskKind, list_rows, partition};
use crate::heads::train::argmax;
use crate::heads::{Head, HeadError, load_all};
use crate::metrics::classes::{ClassFigures, ConfusionMatrix, MultiLabelFigures, log_loss};
use crate::output::{AtomicFile, check_writable};

#[derive(Serialize)]
struct Report {
    head: String,
    data: String,
    task: TaskKind,
    rows: usize,
    rows_skipped: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    macro_f1: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    weighted_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    micro_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exact_match: Option<f64>,
    /// Labels in the data the head does not know (always counted as missed).
    unknown_labels: Vec<String>,
    per_label: BTreeMap<String, ClassFigures>,
}

/// `FILE` for one head, `FILE-<head>.EXT` when several heads share the flag.
fn per_head_path(path: &Path, head: &str, several: bool) -> PathBuf {
    if !several {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{head}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{head}"),
    };
    path.with_file_name(name)
}

/// A file the run will write: where, for which flag, and the index of its head.
struct Planned {
    path: PathBuf,
    flag: &'static str,
    head: usize,
}

/// The `--report` and `--confusion` files of every head, refused before any work when one would
/// replace the input or another output, lies inside a head folder or the `--model` folder, or
/// cannot be written.
fn plan_outputs(
    args: &EvaluateArgs,
    heads: &[Head],
) -> anyhow::Result<(Vec<Planned>, Vec<Planned>)> {
    let several = heads.len() > 1;
    let reads = [(args.input.input.as_path(), "the input file")];
    let mut folders: Vec<(PathBuf, String)> = args
        .heads
        .iter()
        .map(|dir| (dir.clone(), format!("head folder `{}`", dir.display())))
        .collect();
    if let Some(model) = args.model.model.as_deref().map(Path::new).filter(|m| m.is_dir()) {
        folders.push((model.to_path_buf(), format!("model folder `{}`", model.display())));
    }
    let folders: Vec<(PathBuf, String)> = folders
        .into_iter()
        .filter_map(|(dir, what)| Some((std::fs::canonicalize(dir).ok()?, what)))
        .collect();
    let plan =
        |flag: &'static str, path: &Option<PathBuf>, keep: &dyn Fn(&Head) -> bool| {
            path.iter()
                .flat_map(|path| {
                    heads.iter().enumerate().filter(|(_, h)| keep(h)).map(move |(i, head)| {
                        Planned { path: per_head_path(path, head.name(), several), flag, head: i }
                    })
                })
                .collect::<Vec<_>>()
        };
    let reports = plan("--report", &args.report, &|_| true);
    let single = |h: &Head| h.meta.task == TaskKind::SingleLabel;
    let confusions = plan("--confusion", &args.confusion, &single);
    let all: Vec<(&Planned, PathBuf)> =
        reports.iter().chain(&confusions).map(|out| (out, resolved(&out.path))).collect();
    for (i, (out, target)) in all.iter().enumerate() {
        super::check_output_file(&out.path, out.flag, &reads)?;
        if let Some((_, what)) = folders.iter().find(|(dir, _)| target.starts_with(dir)) {
            return Err(UsageError(format!(
                "`{}` `{}` lies inside {what}; writing there could replace the files it is \
                 loaded from, so name a file elsewhere",
                out.flag,
                out.path.display()
            ))
            .into());
        }
        if let Some((other, _)) = all[..i].iter().find(|(_, t)| t == target) {
            return Err(UsageError(format!(
                "`{}` and `{}` both name `{}`; give them different files",
                other.flag,
                out.flag,
                out.path.display()
            ))
            .into());
        }
    }
    for (out, _) in &all {
        check_writable(&out.path)?;
    }
    Ok((reports, confusions))
}

/// The file `path` names, also when it or its folders do not exist yet: the longest part of it
/// that exists with its links resolved, then the rest with `.` and `..` read as written.
fn resolved(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    for base in path.ancestors() {
        let Ok(mut out) = std::fs::canonicalize(base) else { continue };
        for part in path.strip_prefix(base).unwrap_or(Path::new("")).components() {
            match part {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                part => out.push(part),
            }
        }
        return out;
    }
    path
}

pub(super) fn run(args: &EvaluateArgs, ui: Ui) -> anyhow::Result<()> {
    let (embedder, _) = load_embedder_for_heads(&args.model, &args.heads)?;
    let heads = load_all(&args.heads, &embedder)?;
    let (report_files, confusion_files) = plan_outputs(args, &heads)?;
    for head in heads.iter().filter(|h| h.meta.task == TaskKind::MultiLabel) {
        if args.confusion.is_some() {
            tracing::warn!("head `{}` is multi-label: no confusion matrix written", head.name());
        }
    }
    let cache = cache_from_args(&args.cache);
    // Every head is measured before any file is written.
    let mut results = Vec::with_capacity(heads.len());
    for head in &heads {
        let meta = &head.meta;
        let mut input = args.input.clone();
        input.text_column.get_or_insert_with(|| meta.text_column.clone());
        let label_column = args.label_column.clone().unwrap_or_else(|| meta.label_column.clone());
        let separator = meta.label_separator.clone().unwrap_or_else(|| ";".into());

        let list = (meta.task == TaskKind::MultiLabel).then_some(separator.as_str());
        let labelled = read_labelled(&input, &label_column, list)?;
        let total = labelled.rows.len();
        if total == 0 {
            return Err(HeadError::NoRows { file: labelled.file }.into());
        }
        let (kept, skipped) = partition(labelled.rows, meta.task, &separator);
        for msg in skipped.messages(meta.task, &labelled.file, &labelled.text_column, &label_column)
        {
            tracing::warn!("{msg}");
        }
        if kept.is_empty() {
            return Err(HeadError::NoLabel {
                file: labelled.file,
                column: label_column,
                rows: total,
            }
            .into());
        }

        // Labels the head does not know get indices after its own.
        let mut labels = meta.labels.clone();
        let mut unknown_rows = Vec::new();
        let mut truth: Vec<Vec<usize>> = Vec::with_capacity(kept.len());
        for (row, _, row_labels) in &kept {
            let mut t = Vec::new();
            for l in row_labels {
                let i = match labels.iter().position(|x| x == l) {
                    Some(i) => i,
                    None => {
                        labels.push(l.clone());
                        labels.len() - 1
                    }
                };
                if i >= meta.labels.len() {
                    unknown_rows.push(*row);
                }
                t.push(i);
            }
            truth.push(t);
        }
        let unknown: Vec<String> = labels[meta.labels.len()..].to_vec();
        if !unknown.is_empty() {
            tracing::warn!(
                "`{}` has label(s) head `{}` does not know: {} ({}); they count as missed",
                labelled.file,
                meta.name,
                unknown.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", "),
                list_rows(&unknown_rows)
            );
        }

        let texts: Vec<&str> = kept.iter().map(|(_, t, _)| t.as_str()).collect();
        let bar = text_progress(ui, "embedding");
        let progress_bar = bar.clone();
        let embedded =
            embed_cached(&embedder, &texts, cache.as_ref(), &mut |n| progress_bar.inc(n as u64))
                .context("embedding the evaluation texts")?;
        bar.finish_and_clear();
        warn_truncated(embedded.truncated, embedder.info().max_seq_length);
        let probs = head.probabilities(&embedded.data)?;
        let known = meta.labels.len();
        let n = labels.len();

        let mut report = Report {
            head: meta.name.clone(),
            data: labelled.file.clone(),
            task: meta.task,
            rows: kept.len(),
            rows_skipped: skipped.len(),
            accuracy: None,
            macro_f1: 0.0,
            weighted_f1: None,
            log_loss: None,
            micro_f1: None,
            exact_match: None,
            unknown_labels: unknown.clone(),
            per_label: BTreeMap::new(),
        };
        let figures: Vec<ClassFigures>;
        let mut confusion: Option<ConfusionMatrix> = None;
        match meta.task {
            TaskKind::SingleLabel => {
                let t: Vec<u32> = truth.iter().map(|t| t[0] as u32).collect();
                let p: Vec<u32> = probs.chunks_exact(known).map(argmax).collect();
                let m = ConfusionMatrix::new(&t, &p, n);
                // Rows of unknown labels get probability 0 for their label: the log loss clips.
                let mut wide = vec![0f32; t.len() * n];
                for (r, row) in probs.chunks_exact(known).enumerate() {
                    wide[r * n..r * n + known].copy_from_slice(row);
                }
                report.accuracy = Some(m.accuracy());
                report.macro_f1 = m.macro_f1();
                report.weighted_f1 = Some(m.weighted_f1());
                report.log_loss = Some(log_loss(&wide, n, &t));
                figures = m.per_class();
                confusion = Some(m);
            }
            TaskKind::MultiLabel => {
                let mut t = vec![false; truth.len() * n];
                for (r, row) in truth.iter().enumerate() {
                    for &l in row {
                        t[r * n + l] = true;
                    }
                }
                let mut p = vec![false; truth.len() * n];
                for (r, row) in probs.chunks_exact(known).enumerate() {
                    for l in head.assign(row, None) {
                        p[r * n + l] = true;
                    }
                }
                let m = MultiLabelFigures::new(&t, &p, n);
                report.micro_f1 = Some(m.micro_f1);
                report.macro_f1 = m.macro_f1;
                report.exact_match = Some(m.exact_match);
                figures = m.per_label;
            }
        }
        report.per_label = labels.iter().cloned().zip(figures.iter().copied()).collect();

        print_report(&report, &labels, &figures)?;
        results.push((report, labels, confusion));
    }
    for out in &report_files {
        let (report, _, _) = &results[out.head];
        crate::output::write_json(&out.path, report)?;
    }
    for out in &confusion_files {
        if let (_, labels, Some(m)) = &results[out.head] {
            write_confusion(&out.path, labels, m)?;
        }
    }
    Ok(())
}

fn write_confusion(path: &Path, labels: &[String], m: &ConfusionMatrix) -> anyhow::Result<()> {
    let err = || format!("writing `{}`", path.display());
    let mut w = csv::Writer::from_writer(AtomicFile::create(path)?);
    let mut header = vec!["true\\predicted".to_string()];
    header.extend(labels.iter().cloned());
    w.write_record(&header).with_context(err)?;
    for (t, label) in labels.iter().enumerate() {
        let mut row = vec![label.clone()];
        row.extend((0..labels.len()).map(|p| m.count(t, p).to_string()));
        w.write_record(&row).with_context(err)?;
    }
    let mut file = w.into_inner().map_err(|e| e.into_error()).with_context(err)?;
    file.flush().with_context(err)?;
    Ok(file.commit()?)
}

fn print_report(r: &Report, labels: &[String], figures: &[ClassFigures]) -> std::io::Result<()> {
    sayln!("head `{}` on `{}`: {} rows ({} skipped)", r.head, r.data, r.rows, r.rows_skipped)?;
    let mut overall = Table::new();
    overall.load_preset(UTF8_FULL_CONDENSED).set_header(["metric", "value"]);
    let mut add = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            overall.add_row([name.to_string(), format!("{v:.4}")]);
        }
    };
    add("accuracy", r.accuracy);
    add("micro-F1", r.micro_f1);
    add("macro-F1", Some(r.macro_f1));
    add("weighted-F1", r.weighted_f1);
    add("exact match", r.exact_match);
    add("log loss", r.log_loss);
    sayln!("{overall}")?;
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["label", "precision", "recall", "F1", "support"]);
    for (label, f) in labels.iter().zip(figures) {
        table.add_row([
            label.clone(),
            format!("{:.4}", f.precision),
            format!("{:.4}", f.recall),
            format!("{:.4}", f.f1),
            f.support.to_string(),
        ]);
    }
    sayln!("{table}\n")?;
    Ok(())
}
