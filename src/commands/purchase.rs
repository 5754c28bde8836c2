//! `habitlens purchase train|predict|evaluate`: purchase prediction on tabular data.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use comfy_table::{ContentArrangement, Table as Grid, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::{
    Ui, UsageError, check_output_file, check_parent_folders, load_embedder, text_progress,
    warn_truncated,
};
use crate::cli::ModelArgs;
use crate::cli::purchase::{
    EmbeddingArgs, PurchaseArgs, PurchaseCommand, PurchaseEvaluateArgs, PurchasePredictArgs,
    PurchaseTrainArgs,
};
use crate::mlp::MlpConfig;
use crate::output::{AtomicFile, OutputFolder, check_writable, write_json};
use crate::purchase::encode::TextVectors;
use crate::purchase::importance::{Truth, permutation_importance};
use crate::purchase::schema::{BinaryLabels, ColumnKind, ColumnSpec, Roles, Task, infer_columns};
use crate::purchase::table::{Table, is_missing};
use crate::purchase::train::{PosWeight, TrainOptions, drop_missing_targets, train};
use crate::purchase::{BinaryMetrics, PurchaseModel, RegressionMetrics, SCHEMA_FILE, WEIGHTS_FILE};

/// Runs a purchase command.
pub(super) fn run(args: &PurchaseArgs, ui: Ui) -> anyhow::Result<()> {
    match &args.command {
        PurchaseCommand::Train(a) => run_train(a, ui),
        PurchaseCommand::Predict(a) => run_predict(a, ui),
        PurchaseCommand::Evaluate(a) => run_evaluate(a, ui),
    }
}

fn run_train(args: &PurchaseTrainArgs, ui: Ui) -> anyhow::Result<()> {
    let pos_weight = match &args.pos_weight {
        None => PosWeight::None,
        Some(s) => PosWeight::parse(s).map_err(|e| UsageError(format!("`--pos-weight`: {e}")))?,
    };
    if args.task == Task::Regress && args.pos_weight.is_some() {
        return Err(UsageError("`--pos-weight` applies to `--task classify` only".into()).into());
    }
    for (flag, value) in [("--batch-size", args.batch_size), ("--epochs", args.epochs)] {
        if value == 0 {
            return Err(UsageError(format!("`{flag}` must be at least 1")).into());
        }
    }
    check_parent_folders(&args.output, "--output")?;
    if args.output.exists() && !args.output.is_dir() {
        return Err(UsageError(format!(
            "`--output` `{}` is a file; `purchase train` writes a model folder there",
            args.output.display()
        ))
        .into());
    }
    let folder = OutputFolder::claim(&args.output, SCHEMA_FILE)?;
    train_into(args, pos_weight, ui)?;
    folder.keep();
    Ok(())
}

/// Reads, trains and saves, once the output folder is known to be writable.
fn train_into(args: &PurchaseTrainArgs, pos_weight: PosWeight, ui: Ui) -> anyhow::Result<()> {
    // Read, leave out rows without a target when asked, and decide column kinds.
    let table = Table::read(&args.data, None)?;
    let target = table.require(&args.target, "--target")?;
    let (table, skipped) = if args.skip_missing_target {
        let (table, skipped) = drop_missing_targets(table, target);
        if skipped > 0 {
            tracing::warn!(
                "left out {skipped} row(s) of `{}` whose target `{}` is empty \
                 (`--skip-missing-target`); {} row(s) remain",
                table.file,
                args.target,
                table.len()
            );
        }
        (table, skipped)
    } else {
        (table, 0)
    };
    let roles = Roles {
        target: args.target.clone(),
        id: args.id_column.clone(),
        numeric: args.numeric.clone(),
        categorical: args.categorical.clone(),
        text: args.text_column.clone(),
        ignore: args.ignore.clone(),
    };
    let columns = infer_columns(&table, &roles)?;
    // A bad target fails before the schema is printed or anything is embedded.
    let labels = match args.task {
        Task::Classify => Some(BinaryLabels::infer(&table, target, args.positive.as_deref())?),
        Task::Regress => {
            crate::purchase::read_amounts(&table, target)?;
            None
        }
    };
    print_schema(&table, &columns, &roles, labels.as_ref())?;

    let text_model = args.text_column.as_ref().map(|_| args.embedding.model_or(None));
    let text = match &args.text_column {
        Some(column) => Some(embed_column(&table, column, &args.embedding, None, ui)?),
        None => None,
    };

    let options = TrainOptions {
        task: args.task,
        roles,
        positive: args.positive.clone(),
        text_model,
        mlp: MlpConfig {
            hidden: args.hidden.0.clone(),
            dropout: args.dropout,
            epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            weight_decay: args.weight_decay,
            patience: args.patience,
            standardize: false,
            seed: args.seed,
        },
        val_fraction: args.val_fraction,
        pos_weight,
    };
    let bar = super::epoch_progress(ui, args.epochs);
    let started = std::time::Instant::now();
    let model = train(&table, &columns, text.as_ref(), &options, skipped, &mut |e| {
        bar.set_position(e.epoch as u64);
        bar.set_message(format!(
            "loss {:.4}, validation {}",
            e.train_loss,
            e.val_loss.map_or("-".to_string(), |v| format!("{v:.4}"))
        ));
        tracing::debug!(epoch = e.epoch, train_loss = e.train_loss, val_loss = e.val_loss, "epoch");
    })?;
    bar.finish_and_clear();
    // Schema and weights staged and moved in together, so a failed write never pairs one
    // model's weights with another's schema.
    let write_ctx = || format!("saving `{}`", args.output.display());
    let staged = crate::output::StagedFolder::new(&args.output).with_context(write_ctx)?;
    model.save(staged.path()).with_context(write_ctx)?;
    staged.commit().with_context(write_ctx)?;

    let t = &model.schema.training;
    super::say(format_args!(
        "trained on {} rows, validated on {} ({} epochs, best {}, {:.1}s); {} features",
        t.train_rows,
        t.validation_rows,
        t.epochs_run,
        t.best_epoch,
        started.elapsed().as_secs_f64(),
        model.schema.features.len()
    ))?;
    match &model.schema.validation {
        crate::purchase::Validation::Binary(m) => {
            print_binary("validation", m)?;
        }
        crate::purchase::Validation::Regression(m) => print_regression("validation", m)?,
    }
    super::say(format_args!(
        "model written to {} ({WEIGHTS_FILE}, {SCHEMA_FILE})",
        args.output.display()
    ))?;
    Ok(())
}

fn run_predict(args: &PurchasePredictArgs, ui: Ui) -> anyhow::Result<()> {
    let jsonl = match output_format(&args.output)? {
        OutputFormat::Csv => false,
        OutputFormat::Jsonl => true,
    };
    check_output_file(&args.output, "--output", &[(&args.data, "the input file")])?;
    let model = PurchaseModel::load(&args.model)?;
    check_threshold(&model, args.threshold)?;
    let table = Table::read(&args.data, None)?;
    model.check_columns(&table)?;
    let text = model_text(&model, &table, &args.embedding, ui)?;
    let predicted = model.predict(&table, text.as_ref())?;
    let ids = row_ids(&model, &table);

    let mut file = AtomicFile::create(&args.output)?;
    let write_err = || format!("writing `{}`", args.output.display());
    let threshold = args.threshold.or(model.schema.threshold);
    let mut positives = 0usize;
    if jsonl {
        for (id, &value) in ids.iter().zip(&predicted) {
            let line = match (&model.schema.labels, threshold) {
                (Some(labels), Some(t)) => {
                    let yes = value as f32 >= t;
                    positives += usize::from(yes);
                    let decision = if yes { &labels.positive } else { &labels.negative };
                    serde_json::json!({ "id": id, "probability": value, "decision": decision })
                }
                _ => serde_json::json!({ "id": id, "amount": value }),
            };
            serde_json::to_writer(&mut file, &line).with_context(write_err)?;
            file.write_all(b"\n").with_context(write_err)?;
        }
    } else {
        let mut csv = csv::Writer::from_writer(&mut file);
        let header: &[&str] = if model.schema.labels.is_some() {
            &["id", "probability", "decision"]
        } else {
            &["id", "amount"]
        };
        csv.write_record(header).with_context(write_err)?;
        for (id, &value) in ids.iter().zip(&predicted) {
            match (&model.schema.labels, threshold) {
                (Some(labels), Some(t)) => {
                    let yes = value as f32 >= t;
                    positives += usize::from(yes);
                    let decision = if yes { &labels.positive } else { &labels.negative };
                    csv.write_record([id.as_str(), &format!("{value:.6}"), decision])
                }
                _ => csv.write_record([id.as_str(), &format!("{value}")]),
            }
            .with_context(write_err)?;
        }
        csv.flush().with_context(write_err)?;
    }
    file.commit()?;
    if !ui.progress {
        // Quiet, or stderr is not a terminal: the file is the news.
    } else if model.schema.labels.is_some() {
        noteln!(
            "wrote {} predictions to {} ({positives} predicted `{}`)",
            predicted.len(),
            args.output.display(),
            model.schema.labels.as_ref().map_or("", |l| l.positive.as_str())
        );
    } else {
        noteln!("wrote {} predictions to {}", predicted.len(), args.output.display());
    }
    Ok(())
}

#[derive(Serialize)]
struct Report<'a, M: Serialize> {
    data: String,
    model: String,
    #[serde(flatten)]
    metrics: &'a M,
    #[serde(skip_serializing_if = "Option::is_none")]
    importance: Option<ImportanceReport<'a>>,
}

/// Writes `--report`, when asked for: the figures with what they were measured on.
fn write_report<M: Serialize>(
    path: Option<&Path>,
    data: String,
    model: String,
    metrics: &M,
    importance: Option<ImportanceReport<'_>>,
) -> anyhow::Result<()> {
    if let Some(path) = path {
        write_json(path, &Report { data, model, metrics, importance })?;
    }
    Ok(())
}

#[derive(Serialize)]
struct ImportanceReport<'a> {
    metric: &'static str,
    baseline: f64,
    repeats: usize,
    seed: u64,
    columns: &'a [crate::purchase::importance::ColumnImportance],
}

fn run_evaluate(args: &PurchaseEvaluateArgs, ui: Ui) -> anyhow::Result<()> {
    if let Some(report) = &args.report {
        let (schema, weights) = (args.model.join(SCHEMA_FILE), args.model.join(WEIGHTS_FILE));
        check_output_file(
            report,
            "--report",
            &[
                (&args.data, "the input file"),
                (&schema, "the model's schema"),
                (&weights, "the model's weights"),
            ],
        )?;
        check_writable(report)?;
    }
    let model = PurchaseModel::load(&args.model)?;
    check_threshold(&model, args.threshold)?;
    let table = Table::read(&args.data, None)?;
    model.check_columns(&table)?;
    table.require(&model.schema.target, "the model's target")?;
    let text = model_text(&model, &table, &args.embedding, ui)?;
    let features = model.features(&table, text.as_ref())?;
    let predicted = model.predict_features(&features)?;

    let (truth, metric) = match model.schema.task {
        Task::Classify => (Truth::Binary(model.binary_targets(&table)?), "roc_auc"),
        Task::Regress => (Truth::Amounts(model.amount_targets(&table)?), "r2"),
    };
    let importance = if args.importance {
        let (baseline, columns) = permutation_importance(
            &model,
            &features,
            &truth,
            args.repeats,
            args.seed,
            &table.file,
        )?;
        Some((baseline, columns))
    } else {
        None
    };
    let importance_report = importance.as_ref().map(|(baseline, columns)| ImportanceReport {
        metric,
        baseline: *baseline,
        repeats: args.repeats.max(1),
        seed: args.seed,
        columns,
    });
    let data = args.data.display().to_string();
    let model_dir = args.model.display().to_string();
    match &truth {
        Truth::Binary(positives) => {
            let threshold = args.threshold.or(model.schema.threshold).unwrap_or(0.5);
            let probs: Vec<f32> = predicted.iter().map(|&p| p as f32).collect();
            let metrics = BinaryMetrics::compute(&probs, positives, threshold);
            print_binary(&data, &metrics)?;
            write_report(args.report.as_deref(), data, model_dir, &metrics, importance_report)?;
        }
        Truth::Amounts(actual) => {
            let metrics = RegressionMetrics::compute(&predicted, actual);
            print_regression(&data, &metrics)?;
            write_report(args.report.as_deref(), data, model_dir, &metrics, importance_report)?;
        }
    }
    if let Some((baseline, columns)) = &importance {
        let mut grid = grid(["column", &format!("{metric} drop"), "± std"]);
        for c in columns {
            grid.add_row([c.column.clone(), format!("{:.4}", c.drop), format!("{:.4}", c.std)]);
        }
        super::say(format_args!(
            "permutation importance ({metric} {baseline:.4} before shuffling, {} shuffle(s) per \
             column):\n{grid}",
            args.repeats.max(1)
        ))?;
    }
    Ok(())
}

/// `--threshold` applies to yes/no models only, and must be a probability.
fn check_threshold(model: &PurchaseModel, threshold: Option<f32>) -> Result<(), UsageError> {
    match threshold {
        Some(_) if model.schema.task == Task::Regress => Err(UsageError(
            "`--threshold` applies to yes/no models; this model predicts amounts".into(),
        )),
        Some(t) if !(0.0..=1.0).contains(&t) => {
            Err(UsageError(format!("`--threshold` must be a probability in [0, 1], got {t}")))
        }
        _ => Ok(()),
    }
}

enum OutputFormat {
    Csv,
    Jsonl,
}

fn output_format(path: &Path) -> Result<OutputFormat, UsageError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok(OutputFormat::Csv),
        Some("jsonl" | "ndjson") => Ok(OutputFormat::Jsonl),
        _ => Err(UsageError(format!(
            "cannot tell the output format of `{}`: name it `.csv` or `.jsonl`",
            path.display()
        ))),
    }
}

/// The id of each row: the id column, else the 1-based row number.
fn row_ids(model: &PurchaseModel, table: &Table) -> Vec<String> {
    match model.schema.id_column.as_deref().and_then(|c| table.column(c)) {
        Some(index) => table.values(index).map(str::to_string).collect(),
        None => (1..=table.len()).map(|r| r.to_string()).collect(),
    }
}

/// Embeds the model's text column of `table`, if it has one.
fn model_text(
    model: &PurchaseModel,
    table: &Table,
    args: &EmbeddingArgs,
    ui: Ui,
) -> anyhow::Result<Option<TextVectors>> {
    match model.text_column() {
        Some(column) => {
            Ok(Some(embed_column(table, column, args, model.schema.text_model.as_deref(), ui)?))
        }
        None => Ok(None),
    }
}

/// Embeds every non-blank text of `column`; blank ones get zero vectors.
fn embed_column(
    table: &Table,
    column: &str,
    args: &EmbeddingArgs,
    trained_with: Option<&str>,
    ui: Ui,
) -> anyhow::Result<TextVectors> {
    let index = table.require(column, "--text-column")?;
    let model = args.model_or(trained_with);
    let embedder = load_embedder(&ModelArgs {
        model: Some(model.clone()),
        batch_size: args.embed_batch_size.max(1),
        engine: args.engine,
    })?;
    let blank: Vec<bool> = table.values(index).map(is_missing).collect();
    let texts: Vec<&str> =
        table.values(index).zip(&blank).filter(|(_, b)| !**b).map(|(t, _)| t).collect();
    let bar = text_progress(ui, "embedding");
    let embeddings =
        embedder.embed_with_progress(&texts, &mut |n| bar.inc(n as u64)).with_context(|| {
            format!("embedding column `{column}` of `{}` with `{model}`", table.file)
        })?;
    bar.finish_and_clear();
    warn_truncated(embeddings.truncated, embedder.info().max_seq_length);
    let dimension = embeddings.dimension();
    let mut values = vec![0f32; table.len() * dimension];
    let mut next = embeddings.rows();
    for (row, _) in blank.iter().enumerate().filter(|(_, b)| !**b) {
        let v = next.next().expect("one embedding per non-blank text");
        values[row * dimension..(row + 1) * dimension].copy_from_slice(v);
    }
    let blanks = blank.iter().filter(|&&b| b).count();
    if blanks > 0 {
        tracing::warn!(
            "{blanks} row(s) of `{}` have an empty `{column}`; they get a zero embedding and \
             the missing-text feature",
            table.file
        );
    }
    Ok(TextVectors { dimension, values, blank })
}

fn grid<const N: usize>(header: [&str; N]) -> Grid {
    let mut grid = Grid::new();
    grid.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    grid
}

fn print_schema(
    table: &Table,
    columns: &[ColumnSpec],
    roles: &Roles,
    labels: Option<&BinaryLabels>,
) -> anyhow::Result<()> {
    let mut grid = grid(["column", "role", "kind", "missing", "distinct"]);
    for (index, name) in table.headers.iter().enumerate() {
        let spec = columns.iter().find(|c| c.name == *name);
        let role = if *name == roles.target {
            labels.map_or("target".to_string(), |l| format!("target (yes = `{}`)", l.positive))
        } else if roles.id.as_deref() == Some(name) {
            "id".to_string()
        } else if roles.ignore.contains(name) {
            "ignored".to_string()
        } else {
            "feature".to_string()
        };
        let kind = spec.map_or("-".to_string(), |s| {
            format!("{}{}", s.kind.as_str(), if s.forced { " (forced)" } else { "" })
        });
        let missing = table.values(index).filter(|c| is_missing(c)).count();
        let mut distinct: Vec<&str> = table.values(index).map(str::trim).collect();
        distinct.sort_unstable();
        distinct.dedup();
        grid.add_row([name.clone(), role, kind, missing.to_string(), distinct.len().to_string()]);
        if spec
            .is_some_and(|s| s.kind == ColumnKind::Categorical && distinct.len() > table.len() / 2)
        {
            tracing::warn!(
                "column `{name}` is categorical with {} distinct values in {} rows; most fall in \
                 its unknown bucket. Pass `--text-column {name}` for free text or `--ignore \
                 {name}` for an identifier",
                distinct.len(),
                table.len()
            );
        }
    }
    super::say(format_args!("schema of {} ({} rows):\n{grid}", table.file, table.len()))?;
    Ok(())
}

fn print_binary(what: &str, m: &BinaryMetrics) -> anyhow::Result<()> {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut grid = grid(["metric", "value"]);
    for (name, value) in [
        ("rows", m.rows.to_string()),
        ("positives", m.positives.to_string()),
        ("accuracy", format!("{:.4}", m.accuracy)),
        ("precision", format!("{:.4}", m.precision)),
        ("recall", format!("{:.4}", m.recall)),
        ("f1", format!("{:.4}", m.f1)),
        ("roc_auc", fmt(m.roc_auc)),
        ("pr_auc", fmt(m.pr_auc)),
        ("brier", format!("{:.4}", m.brier)),
        ("threshold", format!("{:.4}", m.threshold)),
    ] {
        grid.add_row([name.to_string(), value]);
    }
    super::say(format_args!("{what}:\n{grid}"))?;
    Ok(())
}

fn print_regression(what: &str, m: &RegressionMetrics) -> anyhow::Result<()> {
    let mut grid = grid(["metric", "value"]);
    for (name, value) in [
        ("rows", m.rows.to_string()),
        ("mse", format!("{:.4}", m.mse)),
        ("rmse", format!("{:.4}", m.rmse)),
        ("mae", format!("{:.4}", m.mae)),
        ("r2", m.r2.map_or("-".to_string(), |v| format!("{v:.4}"))),
    ] {
        grid.add_row([name.to_string(), value]);
    }
    super::say(format_args!("{what}:\n{grid}"))?;
    Ok(())
}
