//! `habitlens analyze`: zero-shot habits and needs over a dump of texts.

use std::path::Path;

use anyhow::Context;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::classify::{HeadOutput, csv_fields, csv_header, run_heads};
use super::{Ui, UsageError, load_embedder_for_heads, open_input, text_progress, warn_truncated};
use crate::cli::AnalyzeArgs;
use crate::heads::crossing::{CrossingBuilder, HeadSummary, RowLabel};
use crate::heads::{Head, load_all};
use crate::input::Record;
use crate::model::ModelInfo;
use crate::output::{AtomicFile, write_json};
use crate::stream::EmbeddedWindows;
use crate::summary::{Summary, SummaryBuilder};
use crate::taxonomy::Taxonomy;
use crate::zeroshot::{
    CALIBRATION_TEXTS, DEFAULT_FLOOR, LabelRef, Scorer, ThresholdRule, Thresholds,
};

#[derive(Serialize)]
struct Report<'a> {
    input: String,
    taxonomy: String,
    model: &'a ModelInfo,
    #[serde(flatten)]
    summary: &'a Summary,
    /// Per trained head: its labels over all texts and within every other label.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    heads: &'a [HeadSummary],
}

/// A row waiting for the taxonomy thresholds: the record, its taxonomy scores and, per head,
/// what the head said (`None` for an empty row).
type Pending = (Record, Option<Vec<f32>>, Option<Vec<HeadOutput>>);

/// Writes rows.csv: id, status, per group the top label and its score and every assigned label
/// with its score, and optionally every raw score.
struct RowWriter {
    csv: csv::Writer<AtomicFile>,
    labels: Vec<LabelRef>,
    groups: Vec<String>,
    all_scores: bool,
    heads: Vec<Head>,
}

impl RowWriter {
    fn create(
        path: &Path,
        labels: &[LabelRef],
        all_scores: bool,
        heads: &[Head],
    ) -> anyhow::Result<Self> {
        let mut groups: Vec<String> = Vec::new();
        for l in labels {
            if !groups.contains(&l.group) {
                groups.push(l.group.clone());
            }
        }
        let mut header = vec!["id".to_string(), "status".to_string()];
        for g in &groups {
            header.extend([format!("top_{g}"), format!("top_{g}_score"), g.clone()]);
        }
        if all_scores {
            header.extend(labels.iter().map(|l| format!("score:{}.{}", l.group, l.name)));
        }
        for head in heads {
            header.extend(csv_header(head, None));
        }
        let mut csv = csv::Writer::from_writer(AtomicFile::create(path)?);
        csv.write_record(&header).with_context(|| format!("writing `{}`", path.display()))?;
        Ok(Self { csv, labels: labels.to_vec(), groups, all_scores, heads: heads.to_vec() })
    }

    fn write(
        &mut self,
        record: &Record,
        scored: Option<(&[f32], &[bool])>,
        heads: Option<&[HeadOutput]>,
    ) -> csv::Result<()> {
        let mut fields = vec![record.id.clone()];
        match scored {
            None => {
                fields.push("empty".into());
                let blanks =
                    3 * self.groups.len() + if self.all_scores { self.labels.len() } else { 0 };
                fields.extend(std::iter::repeat_n(String::new(), blanks));
            }
            Some((scores, assigned)) => {
                fields.push("ok".into());
                for g in &self.groups {
                    let mut on: Vec<(usize, f32)> = (0..self.labels.len())
                        .filter(|&i| assigned[i] && &self.labels[i].group == g)
                        .map(|i| (i, scores[i]))
                        .collect();
                    on.sort_by(|a, b| b.1.total_cmp(&a.1));
                    match on.first() {
                        Some(&(i, s)) => {
                            fields.extend([self.labels[i].name.clone(), format!("{s:.4}")])
                        }
                        None => fields.extend([String::new(), String::new()]),
                    }
                    let list: Vec<String> = on
                        .iter()
                        .map(|&(i, s)| format!("{}:{s:.4}", self.labels[i].name))
                        .collect();
                    fields.push(list.join(";"));
                }
                if self.all_scores {
                    fields.extend(scores.iter().map(|s| format!("{s:.4}")));
                }
            }
        }
        for (h, head) in self.heads.iter().enumerate() {
            fields.extend(csv_fields(head, heads.map(|o| &o[h]), None));
        }
        self.csv.write_record(&fields)
    }

    fn finish(self) -> anyhow::Result<()> {
        let file = self.csv.into_inner().map_err(|e| e.into_error())?;
        Ok(file.commit()?)
    }
}

pub(super) fn run(args: &AnalyzeArgs, ui: Ui) -> anyhow::Result<()> {
    if let Some(t) = args.threshold.filter(|t| !(-1.0..=1.0).contains(t)) {
        return Err(
            UsageError(format!("`--threshold` is a cosine between -1 and 1, got {t}")).into()
        );
    }
    for name in ["rows.csv", "summary.json"] {
        super::check_output_file(
            &args.output_dir.join(name),
            "--output-dir",
            &[(&args.input.input, "the input file")],
        )?;
    }
    let reader = open_input(&args.input, vec![])?;
    let input_name = reader.file_name().to_string();
    let (taxonomy, taxonomy_name) = match &args.taxonomy {
        Some(path) => (Taxonomy::from_file(path)?, path.display().to_string()),
        None => (Taxonomy::builtin(), "builtin (models/taxonomy.toml)".to_string()),
    };
    let rows_path = args.output_dir.join("rows.csv");
    let summary_path = args.output_dir.join("summary.json");
    let folder = crate::output::OutputFolder::claim(&args.output_dir, "rows.csv")?;

    let (embedder, own_encoder) = load_embedder_for_heads(&args.model, &args.heads)?;
    let mut heads = Vec::new();
    if let (Some(own), false) = (&own_encoder, args.no_sentiment) {
        tracing::warn!(
            "head `{}` carries its own fine-tuned encoder, and the built-in sentiment head was \
             trained on another model's embeddings: it is left out, as with `--no-sentiment`; \
             the taxonomy is scored with the fine-tuned encoder",
            own.display()
        );
    } else if !args.no_sentiment {
        let sentiment = Head::builtin_sentiment()?;
        match sentiment.check_model(Path::new(crate::heads::BUILTIN_SENTIMENT), &embedder) {
            Ok(()) => heads.push(sentiment),
            // The default head belongs to the default model; another `--model` is a choice the
            // user made, not an error, so analyze goes on without sentiment.
            Err(_) => tracing::warn!(
                "the built-in sentiment head was trained on `{}` embeddings and cannot read those \
                 of `{}`; it is left out, as with `--no-sentiment`",
                crate::model::DEFAULT_MODEL,
                embedder.info().id
            ),
        }
    }
    for head in load_all(&args.heads, &embedder)? {
        if heads.iter().any(|h| h.name() == head.name()) {
            return Err(crate::heads::HeadError::DuplicateName { name: head.name().into() }.into());
        }
        heads.push(head);
    }
    // rows.csv names a group's columns after the group and a head's after the head.
    if let Some(clash) = heads
        .iter()
        .find(|h| !args.no_taxonomy && taxonomy.groups.iter().any(|g| g.name == h.name()))
    {
        return Err(UsageError(format!(
            "head `{}` has the name of a taxonomy group, so their columns in rows.csv would clash; \
             retrain it with another `--name`, or pass `--no-taxonomy`",
            clash.name()
        ))
        .into());
    }
    if args.no_taxonomy && heads.is_empty() {
        return Err(UsageError(
            "`--no-taxonomy` with `--no-sentiment` and no `--head` leaves nothing to do".into(),
        )
        .into());
    }
    let scorer = if args.no_taxonomy {
        None
    } else {
        Some(Scorer::new(&taxonomy, &embedder).context("embedding the taxonomy phrases")?)
    };
    let labels = scorer.as_ref().map(|s| s.labels().to_vec()).unwrap_or_default();
    tracing::debug!(labels = labels.len(), taxonomy = %taxonomy_name, "taxonomy embedded");
    let rule = match args.threshold {
        Some(threshold) => ThresholdRule::Fixed { threshold },
        None => ThresholdRule::Mixture { floor: DEFAULT_FLOOR },
    };

    let mut writer = RowWriter::create(&rows_path, &labels, args.all_scores, &heads)?;
    let mut summary = SummaryBuilder::new(&labels);
    let taxonomy_rows: Vec<RowLabel> =
        labels.iter().map(|l| RowLabel { group: l.group.clone(), label: l.name.clone() }).collect();
    let head_labels = heads.iter().map(|h| (h.name().to_string(), h.labels().to_vec())).collect();
    let mut crossing = CrossingBuilder::new(head_labels, taxonomy_rows);
    let write_err = || format!("writing `{}`", rows_path.display());

    // Rows wait here until the calibration sample is complete; then thresholds are fixed and
    // every later row is written as soon as it is scored.
    let mut pending: Vec<Pending> = Vec::new();
    let mut thresholds: Option<Thresholds> = None;
    let mut emit = |record: &Record,
                    scores: Option<&[f32]>,
                    outputs: Option<&[HeadOutput]>,
                    t: &Thresholds|
     -> anyhow::Result<()> {
        match scores {
            None => {
                summary.add_empty();
                writer.write(record, None, None).with_context(write_err)?;
            }
            Some(scores) => {
                let assigned = t.assign(scores);
                summary.add(&record.id, &record.text, scores, &assigned);
                if let Some(outputs) = outputs {
                    let per_head: Vec<Vec<usize>> =
                        outputs.iter().map(|o| o.assigned.clone()).collect();
                    crossing.add(&assigned, &per_head);
                }
                writer.write(record, Some((scores, &assigned)), outputs).with_context(write_err)?;
            }
        }
        Ok(())
    };
    let calibrate = |pending: &[Pending]| {
        let sample: Vec<Vec<f32>> = pending.iter().filter_map(|(_, s, _)| s.clone()).collect();
        let t = Thresholds::fit(rule, &sample, labels.len());
        if t.rule != rule && !labels.is_empty() {
            tracing::warn!(
                "only {} non-empty text(s): too few to calibrate per-label thresholds; using a \
                 fixed cosine threshold of {}",
                sample.len(),
                crate::zeroshot::FALLBACK_THRESHOLD
            );
        }
        t
    };

    let bar = text_progress(ui, "analyzing");
    let progress_bar = bar.clone();
    let windows =
        EmbeddedWindows::new(reader, &embedder, Box::new(move |n| progress_bar.inc(n as u64)));
    let mut truncated = 0;
    let dimension = embedder.info().dimension;
    for window in windows {
        let window = window?;
        truncated += window.truncated;
        let matrix: Vec<f32> =
            window.rows.iter().filter_map(|r| r.embedding.as_deref()).flatten().copied().collect();
        let mut outputs: Vec<std::vec::IntoIter<HeadOutput>> =
            run_heads(&heads, &matrix, None)?.into_iter().map(Vec::into_iter).collect();
        debug_assert_eq!(matrix.len() % dimension.max(1), 0);
        for row in window.rows {
            let scores = row.embedding.as_deref().map(|v| match &scorer {
                Some(scorer) => scorer.score(v),
                None => Vec::new(),
            });
            let row_outputs: Option<Vec<HeadOutput>> = row.embedding.as_ref().map(|_| {
                outputs.iter_mut().map(|o| o.next().expect("one output per embedding")).collect()
            });
            match &thresholds {
                Some(t) => emit(&row.record, scores.as_deref(), row_outputs.as_deref(), t)?,
                None => {
                    pending.push((row.record, scores, row_outputs));
                    let sampled = pending.iter().filter(|(_, s, _)| s.is_some()).count();
                    if sampled >= CALIBRATION_TEXTS {
                        let t = calibrate(&pending);
                        for (record, scores, outs) in pending.drain(..) {
                            emit(&record, scores.as_deref(), outs.as_deref(), &t)?;
                        }
                        thresholds = Some(t);
                    }
                }
            }
        }
    }
    let thresholds = match thresholds {
        Some(t) => t,
        None => {
            let t = calibrate(&pending);
            for (record, scores, outs) in pending.drain(..) {
                emit(&record, scores.as_deref(), outs.as_deref(), &t)?;
            }
            t
        }
    };
    bar.finish_and_clear();
    summary.add_truncated(truncated);
    let summary = summary.finish(thresholds);
    let head_summaries = crossing.finish();

    writer.finish()?;
    let report = Report {
        input: input_name,
        taxonomy: taxonomy_name,
        model: embedder.info(),
        summary: &summary,
        heads: &head_summaries,
    };
    write_json(&summary_path, &report)?;
    folder.keep();
    warn_truncated(truncated, embedder.info().max_seq_length);
    print_summary(&summary)?;
    print_heads(&head_summaries)?;
    Ok(())
}

/// Prints one table per group: label, count, share and quotes; then the unlabelled count.
fn print_summary(summary: &Summary) -> std::io::Result<()> {
    let non_empty = summary.rows - summary.empty;
    sayln!("{} rows: {} with text, {} empty", summary.rows, non_empty, summary.empty)?;
    for group in &summary.groups {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header([group.group.as_str(), "texts", "share", "representative quotes"]);
        let mut labels: Vec<_> = summary.labels.iter().filter(|l| l.group == group.group).collect();
        labels.sort_by_key(|l| std::cmp::Reverse(l.count));
        for label in labels {
            let quotes: Vec<String> = label
                .quotes
                .iter()
                .map(|q| format!("“{}”", crate::summary::clip(&q.text, 110)))
                .collect();
            table.add_row([
                label.label.clone(),
                label.count.to_string(),
                format!("{:.1}%", label.share * 100.0),
                quotes.join("\n"),
            ]);
        }
        sayln!("\n{table}")?;
        sayln!(
            "{}: {} text(s) with no label ({:.1}%)",
            group.group,
            group.unlabelled,
            group.unlabelled_share * 100.0
        )?;
    }
    Ok(())
}

/// Prints, per head, its label shares, then each other label with its share of the head's
/// labels (for example each need with its share of negative sentiment).
fn print_heads(heads: &[HeadSummary]) -> std::io::Result<()> {
    for head in heads {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header([head.name.as_str(), "texts", "share"]);
        for l in &head.labels {
            table.add_row([
                l.label.clone(),
                l.count.to_string(),
                format!("{:.1}%", l.share * 100.0),
            ]);
        }
        sayln!("\n{table}")?;
        let rows: Vec<_> = head.by_label.iter().filter(|r| r.texts > 0).collect();
        if rows.is_empty() {
            continue;
        }
        let mut cross = Table::new();
        let mut header = vec!["label".to_string(), "texts".to_string()];
        header.extend(head.labels.iter().map(|l| format!("{}: {}", head.name, l.label)));
        cross
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(header);
        for r in rows {
            let mut cells = vec![format!("{}.{}", r.group, r.label), r.texts.to_string()];
            cells.extend(head.labels.iter().map(|l| format!("{:.1}%", r.shares[&l.label] * 100.0)));
            cross.add_row(cells);
        }
        sayln!("\n{cross}")?;
    }
    Ok(())
}
