//! The commands behind the CLI: each turns parsed arguments into calls of the library and
//! writes results. Shared set-up (reading input, loading the model, progress) lives here.

/// `println!` for what a command reports on stdout, through [`say`]: a closed stdout stops the
/// printing, not the command.
macro_rules! sayln {
    ($($arg:tt)*) => {
        $crate::commands::say(format_args!($($arg)*))
    };
}

/// Writes a line of news on stderr; a closed stderr loses the line, not the run.
macro_rules! noteln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod analyze;
mod classify;
mod embed;
mod evaluate;
mod finetune;
mod purchase;
mod train;

use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{Cli, Command, EngineArg, InputArgs, ModelArgs};
use crate::embed::{Embedder, Engine};
use crate::input::{ReadOptions, Reader, Source};
use crate::model::{ModelFiles, ModelSource, ModelSpec};

/// A mistake in how the command was called, reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// How the run should look on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Whether progress bars may be drawn.
    pub progress: bool,
}

/// Runs the command `cli` names.
///
/// # Errors
/// Whatever the command fails with, with context naming what it was doing.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ui = Ui { progress: !cli.global.quiet && cli.global.verbose == 0 };
    match cli.command {
        Command::Embed(args) => embed::run(&args, ui),
        Command::Analyze(args) => analyze::run(&args, ui),
        Command::Train(args) => train::run(&args, ui),
        Command::Classify(args) => classify::run(&args, ui),
        Command::Evaluate(args) => evaluate::run(&args, ui),
        Command::Purchase(args) => purchase::run(&args, ui),
    }
}

/// Opens the input named by `args`, checking format and columns before any heavy work.
fn open_input(args: &InputArgs, extra_columns: Vec<(String, String)>) -> anyhow::Result<Reader> {
    open_input_with(args, extra_columns, None)
}

/// As [`open_input`], with lists in the extra JSONL fields joined by `list_separator`.
fn open_input_with(
    args: &InputArgs,
    extra_columns: Vec<(String, String)>,
    list_separator: Option<&str>,
) -> anyhow::Result<Reader> {
    let options = ReadOptions {
        format: args.format,
        delimiter: args.delimiter,
        encoding: args.encoding,
        text_column: args.text_column.clone(),
        id_column: args.id_column.clone(),
        extra_columns,
        list_separator: list_separator.map(str::to_string),
    };
    Ok(Reader::open(&Source::from_arg(&args.input), options)?)
}

/// Resolves and loads the model named by `args`.
fn load_embedder(args: &ModelArgs) -> anyhow::Result<Embedder> {
    let spec = ModelSpec::parse(args.id())?;
    let started = std::time::Instant::now();
    let files = ModelFiles::resolve(&ModelSource::new(spec)?)?;
    let device = candle_core::Device::Cpu;
    let embedder = match args.engine {
        None => Embedder::from_files(&files, &device),
        Some(EngineArg::Packed) => Embedder::from_files_with(&files, &device, Engine::Packed),
        Some(EngineArg::Candle) => Embedder::from_files_with(&files, &device, Engine::Candle),
    }
    .with_context(|| format!("loading model `{}`", args.id()))?
    .with_batch_size(args.batch_size);
    tracing::debug!(elapsed = ?started.elapsed(), batch_size = args.batch_size, "model ready");
    Ok(embedder)
}

/// The encoder for the heads in `dirs`, and the head folder it comes from when it is not
/// `--model`'s.
///
/// A head written by `train --fine-tune` carries its own encoder, and its labels only make sense
/// on that encoder's embeddings, so when one of `dirs` is such a folder its encoder embeds for
/// every head of the run and `--model` is not used. One run embeds with one encoder: two
/// fine-tuned folders, or a fine-tuned folder with a head trained on another model's
/// embeddings, are refused with an error naming both heads.
fn load_embedder_for_heads(
    args: &ModelArgs,
    dirs: &[std::path::PathBuf],
) -> anyhow::Result<(Embedder, Option<std::path::PathBuf>)> {
    use crate::heads::{HeadMeta, META_FILE, has_own_encoder, same_path};
    let Some(own) = dirs.iter().find(|d| has_own_encoder(d)) else {
        return Ok((load_embedder(args)?, None));
    };
    for dir in dirs {
        if has_own_encoder(dir) {
            if !same_path(dir, own) {
                return Err(UsageError(format!(
                    "heads `{}` and `{}` each carry their own fine-tuned encoder, and one run \
                     embeds with one encoder\nhint: run them in separate commands",
                    own.display(),
                    dir.display()
                ))
                .into());
            }
        } else if let Ok(meta) = HeadMeta::read(&dir.join(META_FILE))
            && !same_path(Path::new(&meta.base_model.id), own)
        {
            return Err(UsageError(format!(
                "head `{}` was trained on embeddings of `{}`, but head `{}` carries its own \
                 fine-tuned encoder, and one run embeds with one encoder\nhint: run them in \
                 separate commands, or retrain `{}` with `--model {}`",
                dir.display(),
                meta.base_model.id,
                own.display(),
                dir.display(),
                own.display()
            ))
            .into());
        }
    }
    if let Some(given) = &args.model
        && !same_path(Path::new(given), own)
    {
        tracing::warn!(
            "head `{}` carries its own fine-tuned encoder, which embeds the texts; `--model {}` \
             is not used",
            own.display(),
            given
        );
    }
    tracing::info!(encoder = %own.display(), "using the fine-tuned encoder of a head folder");
    let own_args = ModelArgs { model: Some(own.display().to_string()), ..args.clone() };
    Ok((load_embedder(&own_args)?, Some(own.clone())))
}

/// A counter of texts done on stderr, hidden when progress is off or stderr is not a terminal.
fn text_progress(ui: Ui, what: &str) -> ProgressBar {
    if !ui.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {human_pos} rows, {per_sec}, {elapsed}")
            .expect("the progress template is valid"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// A bar of epochs done on stderr, hidden when progress is off or stderr is not a terminal.
pub(super) fn epoch_progress(ui: Ui, epochs: usize) -> ProgressBar {
    if !ui.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("training {bar:30} epoch {pos}/{len} {msg} {elapsed}")
            .expect("the progress template is valid"),
    );
    bar
}

/// Warns once when some texts were cut at the model's limit.
fn warn_truncated(truncated: usize, max_seq_length: usize) {
    if truncated > 0 {
        tracing::warn!(
            "{truncated} text(s) were longer than {max_seq_length} tokens; only their first \
             {max_seq_length} tokens were embedded"
        );
    }
}

/// Set once stdout turns out to be closed (`habitlens purchase ... | head`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a line of a report on stdout. The tables are a by-product: the files a command writes
/// (model folders, `--report` files, rows) are the results, so a closed stdout stops the
/// printing, not the run, which still writes them and exits 0. Other write errors still fail
/// the run.
pub(crate) fn say(args: std::fmt::Arguments) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// Refuses an output file that is a folder, or one of the files the run reads (`reads`: each
/// path with what it is), which the run would replace with its results; before any work is done.
pub(super) fn check_output_file(
    output: &Path,
    flag: &str,
    reads: &[(&Path, &str)],
) -> Result<(), UsageError> {
    check_parent_folders(output, flag)?;
    if output.is_dir() {
        return Err(UsageError(format!(
            "`{flag}` `{}` is a folder; name a file inside it",
            output.display()
        )));
    }
    let Ok(output_real) = std::fs::canonicalize(output) else {
        return Ok(()); // not there yet, so nothing is overwritten
    };
    for (read, what) in reads {
        if std::fs::canonicalize(read).is_ok_and(|r| r == output_real) {
            return Err(UsageError(format!(
                "`{flag}` `{}` is {what}; writing there would replace it with the results",
                output.display()
            )));
        }
    }
    Ok(())
}

/// Refuses a path below a file (`data.csv/out.csv`), which cannot be created: the nearest part
/// of the path that exists must be a folder.
pub(super) fn check_parent_folders(output: &Path, flag: &str) -> Result<(), UsageError> {
    let existing = output.ancestors().skip(1).find(|a| !a.as_os_str().is_empty() && a.exists());
    match existing {
        Some(a) if !a.is_dir() => Err(UsageError(format!(
            "`{flag}` `{}` cannot be created: `{}` is a file, not a folder",
            output.display(),
            a.display()
        ))),
        _ => Ok(()),
    }
}
