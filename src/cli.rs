//! Command-line arguments: clap types only; the commands live in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod heads;
pub mod purchase;

use crate::input::{Format, TextEncoding};
use crate::model::DEFAULT_MODEL;

/// Environment variable that sets `--model`.
pub const ENV_MODEL: &str = "HABITLENS_MODEL";
/// Environment variable that sets `--threads`.
pub const ENV_THREADS: &str = "HABITLENS_THREADS";

/// Reads what consumers write and tells what they habitually do and need.
#[derive(Debug, Parser)]
#[command(name = "habitlens", version, propagate_version = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Show debug logs (-v) or trace logs (-vv) on stderr; `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Hide progress bars and the per-epoch lines of fine-tuning.
    ///
    /// Progress bars are also hidden when stderr is not a terminal and in verbose mode (which
    /// logs each epoch instead). Warnings and errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Number of CPU threads for the encoder; all cores by default.
    #[arg(long, global = true, env = ENV_THREADS, value_name = "N")]
    pub threads: Option<usize>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed every text and write the vectors (JSONL or .npy).
    Embed(EmbedArgs),
    /// Find habits and needs in a dump of reviews, tickets or survey answers.
    Analyze(AnalyzeArgs),
    /// Train a classifier head on labelled texts.
    Train(heads::TrainArgs),
    /// Label texts with one or more trained heads.
    Classify(heads::ClassifyArgs),
    /// Measure trained heads on labelled texts.
    Evaluate(heads::EvaluateArgs),
    /// Predict purchases (yes/no) or amounts from tabular data: train, predict, evaluate.
    Purchase(purchase::PurchaseArgs),
}

/// Where the texts come from and how to read them.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Input")]
pub struct InputArgs {
    /// Input file (CSV, TSV, JSONL or plain text), or `-` for stdin.
    pub input: PathBuf,
    /// Input format; guessed from the extension (.csv, .tsv, .jsonl, .txt) when not given.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// CSV field delimiter: one ASCII character, or `tab` (also `\t`); `,` by default, tab for
    /// .tsv.
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// CSV column or JSONL field holding the text.
    ///
    /// Defaults to the only column of a one-column CSV, else a column named `text`.
    #[arg(long, value_name = "NAME")]
    pub text_column: Option<String>,
    /// CSV column or JSONL field holding the row id; the 1-based row number by default.
    #[arg(long, value_name = "NAME")]
    pub id_column: Option<String>,
    /// Text encoding of the input.
    #[arg(long, value_enum, default_value_t = TextEncoding::Utf8)]
    pub encoding: TextEncoding,
}

/// A `--delimiter`: one ASCII character, or `tab` / `\t` for a tab, which is awkward to type.
fn parse_delimiter(value: &str) -> Result<u8, String> {
    match value {
        "tab" | "\\t" => Ok(b'\t'),
        _ => match value.as_bytes() {
            [byte] if byte.is_ascii() => Ok(*byte),
            _ => Err(format!("expected one ASCII character or `tab`, got `{value}`")),
        },
    }
}

/// Which model embeds the texts.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    /// Hub id (`org/name`, optionally `@revision`) or a local folder [default:
    /// sentence-transformers/all-MiniLM-L6-v2].
    ///
    /// Hub ids are looked up in the Hugging Face cache (`HF_HOME`, default
    /// `~/.cache/huggingface`) and downloaded there when missing. Given beside a head folder that
    /// carries its own fine-tuned encoder, that encoder is used and a warning says so.
    #[arg(long, env = ENV_MODEL, value_name = "ID|DIR")]
    pub model: Option<String>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = crate::embed::DEFAULT_BATCH_SIZE, value_name = "N")]
    pub batch_size: usize,
    /// Forward pass: `packed` (CPU, no padding, fused kernels) or `candle` (candle's tensor
    /// pass, padded batches); by default `packed` where the model allows it.
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<EngineArg>,
}

impl ModelArgs {
    /// `--model`, or the default model when it is not given.
    pub fn id(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }
}

/// Values of `--engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// The packed CPU pass.
    Packed,
    /// candle's tensor pass.
    Candle,
}

/// Arguments of `habitlens embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Input options.
    #[command(flatten)]
    pub input: InputArgs,
    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output file: `.jsonl` (id, status, embedding) or `.npy` (float32 matrix, one row per
    /// input row in input order; blank texts get a zero row).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Arguments of `habitlens analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Input options.
    #[command(flatten)]
    pub input: InputArgs,
    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Taxonomy of labels to look for (TOML); the shipped habits and needs by default.
    #[arg(long, value_name = "FILE", help_heading = "Labels")]
    pub taxonomy: Option<PathBuf>,
    /// Use one fixed cosine threshold for every label instead of per-label calibration.
    ///
    /// By default each label's threshold is read from the first 2,000 non-empty texts: where
    /// its scores split into texts about it and texts not about it.
    #[arg(long, value_name = "COSINE", allow_negative_numbers = true, help_heading = "Labels")]
    pub threshold: Option<f32>,
    /// Trained heads to run beside the taxonomy (repeatable); their labels are crossed with
    /// the taxonomy labels in summary.json.
    #[arg(long = "head", value_name = "DIR", help_heading = "Labels")]
    pub heads: Vec<PathBuf>,
    /// Run only the heads, not the zero-shot taxonomy.
    #[arg(long, help_heading = "Labels")]
    pub no_taxonomy: bool,
    /// Skip the shipped sentiment head (`models/sentiment`), which runs by default.
    #[arg(long, help_heading = "Labels")]
    pub no_sentiment: bool,
    /// Add a score column for every label to rows.csv, assigned or not.
    #[arg(long, help_heading = "Output")]
    pub all_scores: bool,
    /// Folder for rows.csv and summary.json.
    #[arg(
        long,
        short,
        default_value = "habitlens-out",
        value_name = "DIR",
        help_heading = "Output"
    )]
    pub output_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn analyze_defaults() {
        let cli = Cli::try_parse_from(["habitlens", "analyze", "r.csv"]).unwrap();
        let Command::Analyze(args) = cli.command else { panic!("expected analyze") };
        assert_eq!(args.output_dir, PathBuf::from("habitlens-out"));
        assert_eq!(args.model.id(), DEFAULT_MODEL);
        assert!(args.model.model.is_none(), "the default is not taken as given");
        assert!(args.threshold.is_none());
    }

    #[test]
    fn a_negative_cosine_threshold_and_a_tab_delimiter_parse() {
        let cli =
            Cli::try_parse_from(["habitlens", "analyze", "r.csv", "--threshold", "-0.1"]).unwrap();
        let Command::Analyze(args) = cli.command else { panic!("expected analyze") };
        assert_eq!(args.threshold, Some(-0.1));
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter("\\t"), Ok(b'\t'));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert!(parse_delimiter("ab").is_err() && parse_delimiter("é").is_err());
    }

    #[test]
    fn embed_requires_output() {
        assert!(Cli::try_parse_from(["habitlens", "embed", "r.csv"]).is_err());
    }
}
