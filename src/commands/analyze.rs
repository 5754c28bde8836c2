//! `habitlens analyze`: zero-shot habits and needs over a dump of texts.

use std::path::Path;

use anyhow::Context;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::{Ui, UsageError, load_embedder, open_input, text_progress, warn_truncated};
use crate::cli::AnalyzeArgs;
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
}

/// Writes rows.csv: id, status, per group the top label and its score and every assigned label
/// with its score, and optionally every raw score.
struct RowWriter {
    csv: csv::Writer<AtomicFile>,
    labels: Vec<LabelRef>,
    groups: Vec<String>,
    all_scores: bool,
}

impl RowWriter {
    fn create(path: &Path, labels: &[LabelRef], all_scores: bool) -> anyhow::Result<Self> {
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
        let mut csv = csv::Writer::from_writer(AtomicFile::create(path)?);
        csv.write_record(&header).with_context(|| format!("writing `{}`", path.display()))?;
        Ok(Self { csv, labels: labels.to_vec(), groups, all_scores })
    }

    fn write(&mut self, record: &Record, scored: Option<(&[f32], &[bool])>) -> csv::Result<()> {
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
    let reader = open_input(&args.input, vec![])?;
    let input_name = reader.file_name().to_string();
    let (taxonomy, taxonomy_name) = match &args.taxonomy {
        Some(path) => (Taxonomy::from_file(path)?, path.display().to_string()),
        None => (Taxonomy::builtin(), "builtin (models/taxonomy.toml)".to_string()),
    };
    let rows_path = args.output_dir.join("rows.csv");
    let summary_path = args.output_dir.join("summary.json");
    crate::output::check_writable(&rows_path)?;

    let embedder = load_embedder(&args.model)?;
    let scorer = Scorer::new(&taxonomy, &embedder).context("embedding the taxonomy phrases")?;
    let labels = scorer.labels().to_vec();
    tracing::debug!(labels = labels.len(), taxonomy = %taxonomy_name, "taxonomy embedded");
    let rule = match args.threshold {
        Some(threshold) => ThresholdRule::Fixed { threshold },
        None => ThresholdRule::Mixture { floor: DEFAULT_FLOOR },
    };

    let mut writer = RowWriter::create(&rows_path, &labels, args.all_scores)?;
    let mut summary = SummaryBuilder::new(&labels);
    let write_err = || format!("writing `{}`", rows_path.display());

    // Rows wait here until the calibration sample is complete; then thresholds are fixed and
    // every later row is written as soon as it is scored.
    let mut pending: Vec<(Record, Option<Vec<f32>>)> = Vec::new();
    let mut thresholds: Option<Thresholds> = None;
    let mut emit =
        |record: &Record, scores: Option<&[f32]>, t: &Thresholds| -> anyhow::Result<()> {
            match scores {
                None => {
                    summary.add_empty();
                    writer.write(record, None).with_context(write_err)?;
                }
                Some(scores) => {
                    let assigned = t.assign(scores);
                    summary.add(&record.id, &record.text, scores, &assigned);
                    writer.write(record, Some((scores, &assigned))).with_context(write_err)?;
                }
            }
            Ok(())
        };
    let calibrate = |pending: &[(Record, Option<Vec<f32>>)]| {
        let sample: Vec<Vec<f32>> = pending.iter().filter_map(|(_, s)| s.clone()).collect();
        let t = Thresholds::fit(rule, &sample, labels.len());
        if t.rule != rule {
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
    for window in windows {
        let window = window?;
        truncated += window.truncated;
        for row in window.rows {
            let scores = row.embedding.as_deref().map(|v| scorer.score(v));
            match &thresholds {
                Some(t) => emit(&row.record, scores.as_deref(), t)?,
                None => {
                    pending.push((row.record, scores));
                    let sampled = pending.iter().filter(|(_, s)| s.is_some()).count();
                    if sampled >= CALIBRATION_TEXTS {
                        let t = calibrate(&pending);
                        for (record, scores) in pending.drain(..) {
                            emit(&record, scores.as_deref(), &t)?;
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
            for (record, scores) in pending.drain(..) {
                emit(&record, scores.as_deref(), &t)?;
            }
            t
        }
    };
    bar.finish_and_clear();
    summary.add_truncated(truncated);
    let summary = summary.finish(thresholds);

    writer.finish()?;
    let report = Report {
        input: input_name,
        taxonomy: taxonomy_name,
        model: embedder.info(),
        summary: &summary,
    };
    write_json(&summary_path, &report)?;
    warn_truncated(truncated, embedder.info().max_seq_length);
    print_summary(&summary);
    Ok(())
}

/// Prints one table per group: label, count, share and quotes; then the unlabelled count.
fn print_summary(summary: &Summary) {
    let non_empty = summary.rows - summary.empty;
    println!("{} rows: {} with text, {} empty", summary.rows, non_empty, summary.empty);
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
        println!("\n{table}");
        println!(
            "{}: {} text(s) with no label ({:.1}%)",
            group.group,
            group.unlabelled,
            group.unlabelled_share * 100.0
        );
    }
}
