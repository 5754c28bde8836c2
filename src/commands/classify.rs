//! `habitlens classify`: label every input row with one or more trained heads, sharing one
//! embedding pass and streaming, so memory does not grow with the input.

use std::io::Write;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::{Ui, UsageError, load_embedder_for_heads, open_input, text_progress, warn_truncated};
use crate::cli::heads::ClassifyArgs;
use crate::heads::{Head, load_all};
use crate::output::AtomicFile;
use crate::stream::EmbeddedWindows;

/// What one head says about one row.
pub(super) struct HeadOutput {
    /// Assigned label indices, most probable first.
    pub assigned: Vec<usize>,
    /// Probabilities of every label.
    pub probabilities: Vec<f32>,
}

/// Runs every head on the non-empty rows of a window: `embeddings` holds one row per
/// non-empty text. Returns, per head, one output per embedding row.
pub(super) fn run_heads(
    heads: &[Head],
    embeddings: &[f32],
    threshold: Option<f32>,
) -> anyhow::Result<Vec<Vec<HeadOutput>>> {
    heads
        .iter()
        .map(|head| {
            if embeddings.is_empty() {
                return Ok(vec![]);
            }
            let probs = head.probabilities(embeddings)?;
            Ok(probs
                .chunks_exact(head.labels().len())
                .map(|p| HeadOutput {
                    assigned: head.assign(p, threshold),
                    probabilities: p.to_vec(),
                })
                .collect())
        })
        .collect()
}

fn top_k(probabilities: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// The CSV columns of a head: labels, their probabilities, and the top-k list when asked.
pub(super) fn csv_header(head: &Head, top_k: Option<usize>) -> Vec<String> {
    let n = head.name();
    let mut h = vec![n.to_string(), format!("{n}_probability")];
    if top_k.is_some() {
        h.push(format!("{n}_top"));
    }
    h
}

/// The CSV fields of a head for one row (`None`: an empty row).
pub(super) fn csv_fields(head: &Head, out: Option<&HeadOutput>, top: Option<usize>) -> Vec<String> {
    let width = 2 + usize::from(top.is_some());
    let Some(out) = out else { return vec![String::new(); width] };
    let labels = head.labels();
    let names: Vec<&str> = out.assigned.iter().map(|&l| labels[l].as_str()).collect();
    let probs: Vec<String> =
        out.assigned.iter().map(|&l| format!("{:.4}", out.probabilities[l])).collect();
    let mut f = vec![names.join(";"), probs.join(";")];
    if let Some(k) = top {
        let list: Vec<String> = top_k(&out.probabilities, k)
            .into_iter()
            .map(|l| format!("{}:{:.4}", labels[l], out.probabilities[l]))
            .collect();
        f.push(list.join(";"));
    }
    f
}

fn json_value(head: &Head, out: &HeadOutput, top: Option<usize>) -> Value {
    let labels = head.labels();
    let mut v = Map::new();
    v.insert("labels".into(), json!(out.assigned.iter().map(|&l| &labels[l]).collect::<Vec<_>>()));
    v.insert(
        "probabilities".into(),
        json!(out.assigned.iter().map(|&l| round4(out.probabilities[l])).collect::<Vec<_>>()),
    );
    if let Some(k) = top {
        let list: Vec<Value> = top_k(&out.probabilities, k)
            .into_iter()
            .map(|l| json!({"label": labels[l], "probability": round4(out.probabilities[l])}))
            .collect();
        v.insert("top".into(), Value::Array(list));
    }
    Value::Object(v)
}

fn round4(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

enum Sink {
    Csv(Box<csv::Writer<AtomicFile>>),
    Jsonl(AtomicFile),
}

pub(super) fn run(args: &ClassifyArgs, ui: Ui) -> anyhow::Result<()> {
    let ext = args.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let jsonl = match ext.as_deref() {
        Some("csv") => false,
        Some("jsonl" | "ndjson") => true,
        _ => {
            return Err(UsageError(format!(
                "cannot tell the output format of `{}`: name it `.csv` or `.jsonl`",
                args.output.display()
            ))
            .into());
        }
    };
    if let Some(t) = args.threshold.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(
            UsageError(format!("`--threshold` is a probability between 0 and 1, got {t}")).into()
        );
    }
    if args.top_k == Some(0) {
        return Err(UsageError("`--top-k` must be at least 1".into()).into());
    }
    super::check_output_file(&args.output, "--output", &[(&args.input.input, "the input file")])?;
    let reader = open_input(&args.input, vec![])?;
    let (embedder, _) = load_embedder_for_heads(&args.model, &args.heads)?;
    let heads = load_all(&args.heads, &embedder)?;
    let dimension = embedder.info().dimension;
    let file = AtomicFile::create(&args.output)?;
    let write_err = || format!("writing `{}`", args.output.display());
    let mut sink = if jsonl {
        Sink::Jsonl(file)
    } else {
        let mut w = csv::Writer::from_writer(file);
        let mut header = vec!["id".to_string(), "status".to_string()];
        for h in &heads {
            header.extend(csv_header(h, args.top_k));
        }
        w.write_record(&header).with_context(write_err)?;
        Sink::Csv(Box::new(w))
    };

    let bar = text_progress(ui, "classifying");
    let progress_bar = bar.clone();
    let windows =
        EmbeddedWindows::new(reader, &embedder, Box::new(move |n| progress_bar.inc(n as u64)));
    let (mut rows, mut empty, mut truncated) = (0usize, 0usize, 0usize);
    for window in windows {
        let window = window?;
        truncated += window.truncated;
        let mut matrix = Vec::with_capacity(window.rows.len() * dimension);
        for row in &window.rows {
            if let Some(e) = &row.embedding {
                matrix.extend_from_slice(e);
            }
        }
        let outputs = run_heads(&heads, &matrix, args.threshold)?;
        let mut next = 0;
        for row in &window.rows {
            rows += 1;
            let k = row.embedding.as_ref().map(|_| {
                next += 1;
                next - 1
            });
            empty += usize::from(k.is_none());
            let status = if k.is_some() { "ok" } else { "empty" };
            match &mut sink {
                Sink::Csv(w) => {
                    let mut fields = vec![row.record.id.clone(), status.to_string()];
                    for (h, head) in heads.iter().enumerate() {
                        fields.extend(csv_fields(head, k.map(|k| &outputs[h][k]), args.top_k));
                    }
                    w.write_record(&fields).with_context(write_err)?;
                }
                Sink::Jsonl(f) => {
                    let mut obj = Map::new();
                    obj.insert("id".into(), json!(row.record.id));
                    obj.insert("status".into(), json!(status));
                    for (h, head) in heads.iter().enumerate() {
                        let v =
                            k.map_or(Value::Null, |k| json_value(head, &outputs[h][k], args.top_k));
                        obj.insert(head.name().to_string(), v);
                    }
                    serde_json::to_writer(&mut *f, &Value::Object(obj)).with_context(write_err)?;
                    f.write_all(b"\n").with_context(write_err)?;
                }
            }
        }
    }
    let file = match sink {
        Sink::Csv(w) => (*w).into_inner().map_err(|e| e.into_error()).with_context(write_err)?,
        Sink::Jsonl(f) => f,
    };
    file.commit()?;
    bar.finish_and_clear();
    warn_truncated(truncated, embedder.info().max_seq_length);
    tracing::info!(rows, empty, heads = heads.len(), "classified");
    if ui.progress {
        noteln!(
            "classified {} of {rows} rows ({empty} empty) with {} head(s) into {}",
            rows - empty,
            heads.len(),
            args.output.display()
        );
    }
    Ok(())
}
