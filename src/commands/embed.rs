//! `habitlens embed`: write one vector per input row.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

use super::{Ui, UsageError, load_embedder, open_input, text_progress, warn_truncated};
use crate::cli::EmbedArgs;
use crate::output::{AtomicFile, NpyWriter};
use crate::stream::EmbeddedWindows;

#[derive(Serialize)]
struct JsonRow<'a> {
    id: &'a str,
    status: &'static str,
    embedding: Option<&'a [f32]>,
}

enum Sink<'a> {
    Jsonl(&'a mut AtomicFile),
    Npy(NpyWriter<&'a mut AtomicFile>),
}

pub(super) fn run(args: &EmbedArgs, ui: Ui) -> anyhow::Result<()> {
    let ext = args.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let npy = match ext.as_deref() {
        Some("npy") => true,
        Some("jsonl" | "ndjson") => false,
        _ => {
            return Err(UsageError(format!(
                "cannot tell the output format of `{}`: name it `.jsonl` or `.npy`",
                args.output.display()
            ))
            .into());
        }
    };
    super::check_output_file(&args.output, "--output", &[(&args.input.input, "the input file")])?;
    let reader = open_input(&args.input, vec![])?;
    let embedder = load_embedder(&args.model)?;
    let dimension = embedder.info().dimension;
    let mut file = AtomicFile::create(&args.output)?;
    let write_err = || format!("writing `{}`", args.output.display());

    let bar = text_progress(ui, "embedding");
    let progress_bar = bar.clone();
    let windows =
        EmbeddedWindows::new(reader, &embedder, Box::new(move |n| progress_bar.inc(n as u64)));
    let mut sink = if npy {
        Sink::Npy(NpyWriter::new(&mut file, dimension).with_context(write_err)?)
    } else {
        Sink::Jsonl(&mut file)
    };
    let zeros = vec![0f32; dimension];
    let (mut rows, mut empty, mut truncated) = (0usize, 0usize, 0usize);
    for window in windows {
        let window = window?;
        truncated += window.truncated;
        for row in &window.rows {
            rows += 1;
            empty += usize::from(row.embedding.is_none());
            match &mut sink {
                Sink::Jsonl(out) => {
                    let json = JsonRow {
                        id: &row.record.id,
                        status: if row.embedding.is_some() { "ok" } else { "empty" },
                        embedding: row.embedding.as_deref(),
                    };
                    serde_json::to_writer(&mut **out, &json).with_context(write_err)?;
                    out.write_all(b"\n").with_context(write_err)?;
                }
                Sink::Npy(npy) => npy
                    .write_row(row.embedding.as_deref().unwrap_or(&zeros))
                    .with_context(write_err)?,
            }
        }
    }
    if let Sink::Npy(npy) = sink {
        npy.finish().with_context(write_err)?;
    }
    file.commit()?;
    bar.finish_and_clear();

    warn_truncated(truncated, embedder.info().max_seq_length);
    if npy && empty > 0 {
        tracing::warn!(
            "{empty} blank text(s) were written as zero rows in `{}`",
            args.output.display()
        );
    }
    tracing::info!(rows, empty, "embeddings written");
    eprintln_summary(ui, rows, empty, &args.output);
    Ok(())
}

fn eprintln_summary(ui: Ui, rows: usize, empty: usize, path: &std::path::Path) {
    if ui.progress {
        noteln!("embedded {} of {rows} rows ({empty} empty) into {}", rows - empty, path.display());
    }
}
