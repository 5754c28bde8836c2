//! The `habitlens` binary: parse arguments, set up logging and threads, run the command, and
//! turn the outcome into an exit code (0 success, 2 bad usage or input, 1 anything else).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use habitlens::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    if let Some(threads) = cli.global.threads {
        if let Err(err) = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build_global()
        {
            tracing::warn!("cannot set the thread count to {threads}: {err}");
        }
    }
    match habitlens::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
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
        .with_target(false)
        .without_time()
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
