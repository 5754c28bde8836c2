//! The `habitlens` binary: parse arguments, set up logging and threads, run the command, and
//! turn the outcome into an exit code (0 success, 2 bad usage or input, 1 anything else).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use habitlens::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    // Interrupted, a run removes its temporary files and the folders it made or was staging
    // (its destructors do not run) and exits with 130, as the shell reports a Ctrl-C.
    if let Err(err) = ctrlc::set_handler(|| {
        habitlens::cleanup::remove_unfinished();
        std::process::exit(130);
    }) {
        tracing::debug!("no interrupt handler: {err}");
    }
    if let Some(threads) = cli.global.threads.map(|n| n.max(1)) {
        // candle sizes its matmul parallelism from RAYON_NUM_THREADS, rayon's pool from the
        // builder; set both so `--threads` bounds all of the encoder's work.
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
        if let Err(err) = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global() {
            tracing::warn!("cannot set the thread count to {threads}: {err}");
        }
        tracing::debug!(threads, "thread count set");
    }
    match habitlens::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Hints come last, after the whole chain of causes, whichever cause gave them. A
            // closed stderr (`... 2>&1 | head -1`) loses the message, not the exit code.
            let mut stderr = std::io::stderr().lock();
            let mut hints = Vec::new();
            for (i, cause) in err.chain().enumerate() {
                let text = cause.to_string();
                let (what, hint) = match text.split_once("\nhint: ") {
                    Some((what, hint)) => (what.to_string(), Some(hint.to_string())),
                    None => (text, None),
                };
                let lead = if i == 0 { "error:" } else { "  caused by:" };
                let _ = writeln!(stderr, "{lead} {what}");
                hints.extend(hint);
            }
            for hint in hints {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            ExitCode::from(habitlens::exit_code(&err))
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,habitlens=debug",
        _ => "warn,habitlens=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them, not in redirected logs.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        // A log line that cannot be written (stderr closed) is dropped; reporting that with
        // `eprintln!` would panic.
        .log_internal_errors(false)
        .init();
}

/// A closed pipe on stdout (`habitlens ... | head`) ends the program quietly.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
