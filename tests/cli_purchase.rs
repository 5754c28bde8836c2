//! `habitlens purchase train|predict|evaluate` run as a user would: the real binary on small CSV
//! files written into a temporary folder.

mod common;

use std::path::{Path, PathBuf};

use predicates::prelude::*;

/// Sessions whose purchase depends on pages viewed and on being a returning visitor, from a
/// fixed-seed generator so every run sees the same file.
fn sessions(rows: usize) -> String {
    let mut state = 12345u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let months = ["Feb", "Mar", "May", "Nov"];
    let mut csv = String::from("session,pages,duration,month,returning,region,bought,spent\n");
    for i in 0..rows {
        let pages = (next() * next() * 60.0).floor();
        let duration = pages * 30.0 * next();
        let month = months[(next() * 4.0) as usize];
        let returning = next() < 0.6;
        let region = 1 + (next() * 5.0) as usize;
        let score = pages / 15.0
            + if returning { 1.0 } else { -0.5 }
            + if month == "Nov" { 1.0 } else { 0.0 };
        let bought = next() < 1.0 / (1.0 + (-(score - 2.0) * 2.0).exp());
        let spent = if bought { 10.0 + pages * 2.0 } else { 0.0 };
        let returning = if returning { "TRUE" } else { "FALSE" };
        let bought = if bought { "TRUE" } else { "FALSE" };
        csv.push_str(&format!(
            "s{i},{pages},{duration:.1},{month},{returning},{region},{bought},{spent:.1}\n"
        ));
    }
    csv
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Trains the yes/no model on `data` into `dir/model` for `epochs` epochs.
fn train(dir: &Path, data: &Path, epochs: &str) -> PathBuf {
    let model = dir.join("model");
    common::habitlens()
        .args(["-q", "purchase", "train", path(data), "--target", "bought"])
        .args(["--id-column", "session", "--categorical", "region", "--ignore", "spent"])
        .args(["--epochs", epochs, "--output", path(&model)])
        .assert()
        .success()
        .stdout(predicate::str::contains("categorical (forced)"))
        .stdout(predicate::str::contains("boolean"));
    model
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn train_predict_evaluate_round_trip_accounts_for_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(600));
    let model = train(dir.path(), &data, "40");
    let schema = json(&model.join("schema.json"));
    assert_eq!(schema["target"], "bought");
    assert_eq!(schema["labels"]["positive"], "TRUE");
    assert!(schema["threshold"].as_f64().is_some());
    assert!(schema["features"].as_array().unwrap().iter().any(|f| f == "month=<unknown>"));
    assert!(model.join("model.safetensors").is_file());

    // Predict on new rows without the target column: one row out per row in, in order.
    let (header, rows) = {
        let full = sessions(650);
        let unseen: String =
            full.lines().take(1).chain(full.lines().skip(601)).map(|l| format!("{l}\n")).collect();
        let no_target: String = unseen
            .lines()
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                format!("{},{}\n", cells[..6].join(","), cells[7])
            })
            .collect();
        let input = common::write(dir.path(), "new.csv", no_target);
        let out = dir.path().join("predictions.csv");
        common::habitlens()
            .args(["purchase", "predict", path(&input), "--model", path(&model)])
            .args(["--output", path(&out)])
            .assert()
            .success();
        common::read_csv(&out)
    };
    assert_eq!(header, ["id", "probability", "decision"]);
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[0][0], "s600");
    assert_eq!(rows[49][0], "s649");
    for row in &rows {
        let p: f64 = row[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{row:?}");
        assert!(row[2] == "TRUE" || row[2] == "FALSE", "{row:?}");
    }

    // JSONL output, with the target present (it is allowed and ignored).
    let out = dir.path().join("predictions.jsonl");
    common::habitlens()
        .args(["purchase", "predict", path(&data), "--model", path(&model)])
        .args(["--output", path(&out)])
        .assert()
        .success();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 600);
    assert_eq!(lines[0]["id"], "s0");

    // Evaluate with a report and permutation importance.
    let report = dir.path().join("report.json");
    common::habitlens()
        .args(["purchase", "evaluate", path(&data), "--model", path(&model), "--importance"])
        .args(["--report", path(&report), "--repeats", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("roc_auc"))
        .stdout(predicate::str::contains("permutation importance"));
    let report = json(&report);
    for key in ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "threshold"]
    {
        assert!(report[key].as_f64().is_some(), "{key} in {report}");
    }
    assert!(report["roc_auc"].as_f64().unwrap() > 0.75, "{report}");
    let importance = report["importance"]["columns"].as_array().unwrap();
    assert_eq!(importance.len(), 5, "one entry per input column");
    assert_eq!(importance[0]["column"], "pages", "{importance:?}");
}

#[test]
fn predict_refuses_other_columns_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(200));
    let model = train(dir.path(), &data, "3");
    let other = common::write(
        dir.path(),
        "other.csv",
        "session,pages,duration,returning,region,browser\ns1,3,20,TRUE,2,7\n",
    );
    common::habitlens()
        .args(["purchase", "predict", path(&other), "--model", path(&model)])
        .args(["--output", path(&dir.path().join("p.csv"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing `month`"))
        .stderr(predicate::str::contains("unexpected `browser`"));
    assert!(!dir.path().join("p.csv").exists());
}

#[test]
fn bad_cells_and_targets_name_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, contents: &str, extra: &[&str]| {
        let data = common::write(dir.path(), name, contents);
        let mut cmd = common::habitlens();
        cmd.args(["-q", "purchase", "train", path(&data), "--target", "y"])
            .args(["--epochs", "2", "--output", path(&dir.path().join("m"))])
            .args(extra);
        cmd.assert()
    };
    let mut rows = String::from("x,c,y\n");
    for i in 0..30 {
        rows.push_str(&format!("{i},a,{}\n", i % 2));
    }
    let bad = rows.replacen("7,a,1", "seven,a,1", 1);
    run("bad.csv", &bad, &[])
        .code(2)
        .stderr(predicate::str::contains("bad.csv`, row 8, column `x`: `seven` is not a number"));
    run("short.csv", &rows.replacen("7,a,1", "7,a", 1), &[])
        .code(2)
        .stderr(predicate::str::contains("row 8").and(predicate::str::contains("found 2")));
    run("one.csv", &rows.replace(",0\n", ",1\n"), &[])
        .code(2)
        .stderr(predicate::str::contains("has one value only (`1`)"));
    let missing = rows.replacen("7,a,1", "7,a,", 1);
    run("missing.csv", &missing, &[])
        .code(2)
        .stderr(predicate::str::contains("row 8, column `y`: the target is missing"));
    run("missing.csv", &missing, &["--skip-missing-target"])
        .success()
        .stderr(predicate::str::contains("left out 1 row(s)"));
    // Rows after a skipped one keep their row number in messages.
    let both = missing.replacen("11,a,1", "eleven,a,1", 1);
    run("both.csv", &both, &["--skip-missing-target"])
        .code(2)
        .stderr(predicate::str::contains("row 12, column `x`: `eleven`"));
    run("empty.csv", "", &[]).code(2).stderr(predicate::str::contains("is empty"));
    run("header.csv", "x,y\n", &[]).code(2).stderr(predicate::str::contains("no rows"));
}

#[test]
fn same_seed_gives_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(300));
    let weights = |seed: &str, name: &str| {
        let out = dir.path().join(name);
        common::habitlens()
            .args(["-q", "purchase", "train", path(&data), "--target", "bought"])
            .args(["--epochs", "5", "--seed", seed, "--output", path(&out)])
            .assert()
            .success();
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    let a = weights("7", "a");
    assert_eq!(a, weights("7", "b"), "same seed, same bytes");
    assert_ne!(a, weights("8", "c"), "another seed, other weights");
}

#[test]
fn regression_predicts_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(400));
    let model = dir.path().join("m");
    common::habitlens()
        .args(["-q", "purchase", "train", path(&data), "--target", "spent", "--task", "regress"])
        .args(["--ignore", "bought", "--id-column", "session", "--epochs", "60"])
        .args(["--output", path(&model)])
        .assert()
        .success();
    let report = dir.path().join("r.json");
    common::habitlens()
        .args(["purchase", "evaluate", path(&data), "--model", path(&model)])
        .args(["--report", path(&report)])
        .assert()
        .success()
        .stdout(predicate::str::contains("rmse"));
    let report = json(&report);
    for key in ["mse", "rmse", "mae", "r2"] {
        assert!(report[key].as_f64().is_some(), "{key} in {report}");
    }
    assert!(report["r2"].as_f64().unwrap() > 0.2, "{report}");
    let out = dir.path().join("p.csv");
    common::habitlens()
        .args(["purchase", "predict", path(&data), "--model", path(&model)])
        .args(["--output", path(&out)])
        .assert()
        .success();
    let (header, rows) = common::read_csv(&out);
    assert_eq!((header.len(), rows.len()), (2, 400));
    assert_eq!(header, ["id", "amount"]);
}

#[test]
fn text_column_is_embedded_and_joined() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("age,review,recommended\n");
    let good = ["love it, fits perfectly", "great quality, would buy again", "beautiful and soft"];
    let bad =
        ["fell apart after one wash", "runs tiny, returning it", "cheap fabric, disappointed"];
    for i in 0..48 {
        let (text, y) = if i % 2 == 0 { (good[i % 3], 1) } else { (bad[i % 3], 0) };
        let text = if i == 5 { "" } else { text };
        csv.push_str(&format!("{},\"{text}\",{y}\n", 20 + i));
    }
    let data = common::write(dir.path(), "reviews.csv", csv);
    let model = dir.path().join("m");
    common::habitlens()
        .args(["-q", "purchase", "train", path(&data), "--target", "recommended"])
        .args(["--text-column", "review", "--epochs", "30", "--lr", "0.01"])
        .args(["--output", path(&model)])
        .assert()
        .success()
        .stdout(predicate::str::contains("text (forced)"))
        .stderr(
            predicate::str::contains("1 row(s)").and(predicate::str::contains("empty `review`")),
        );
    let schema = json(&model.join("schema.json"));
    assert_eq!(schema["features"].as_array().unwrap().len(), 1 + 384 + 1);
    let report = dir.path().join("r.json");
    common::habitlens()
        .args(["purchase", "evaluate", path(&data), "--model", path(&model)])
        .args(["--report", path(&report)])
        .assert()
        .success();
    assert!(json(&report)["roc_auc"].as_f64().unwrap() > 0.9);
}

/// Runs habitlens with `args` and a stdout whose reading end is already closed, as in
/// `habitlens ... | head -1` once `head` has gone; returns the exit status.
fn run_with_stdout_closed(args: &[&str]) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    common::habitlens_process()
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn closed_stdout_stops_the_tables_not_the_run() {
    // Once stdout was closed, `train` ended with exit 0 before training (the schema table
    // failed to print) and wrote no model; `evaluate` wrote no report; and a `println!`
    // panicked with exit 101. The tables are a by-product: the files must still be written.
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(300));
    let model = dir.path().join("model");
    let status = run_with_stdout_closed(&[
        "-q",
        "purchase",
        "train",
        path(&data),
        "--target",
        "bought",
        "--ignore",
        "spent",
        "--epochs",
        "5",
        "--output",
        path(&model),
    ]);
    assert_eq!(status.code(), Some(0));
    assert!(model.join("schema.json").is_file() && model.join("model.safetensors").is_file());

    let report = dir.path().join("report.json");
    let status = run_with_stdout_closed(&[
        "purchase",
        "evaluate",
        path(&data),
        "--model",
        path(&model),
        "--importance",
        "--repeats",
        "1",
        "--report",
        path(&report),
    ]);
    assert_eq!(status.code(), Some(0));
    assert!(json(&report)["roc_auc"].as_f64().is_some());
}

#[test]
fn output_paths_that_would_lose_data_or_fail_late_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(300));
    let model = train(dir.path(), &data, "5");
    let before = std::fs::read(&data).unwrap();

    // `--output` the input file: the predictions replaced the data they came from.
    common::habitlens()
        .args(["purchase", "predict", path(&data), "--model", path(&model)])
        .args(["--output", path(&data)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is the input file"));
    // `--report` the input file, spelled another way.
    let same = dir.path().join(".").join("sessions.csv");
    common::habitlens()
        .args(["purchase", "evaluate", path(&data), "--model", path(&model)])
        .args(["--report", path(&same)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is the input file"));
    assert_eq!(std::fs::read(&data).unwrap(), before, "the input is untouched");
    // `--report` the model's own schema.json: the report replaced the model.
    let schema = std::fs::read(model.join("schema.json")).unwrap();
    common::habitlens()
        .args(["purchase", "evaluate", path(&data), "--model", path(&model)])
        .args(["--report", path(&model.join("schema.json"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is the model's schema"));
    assert_eq!(std::fs::read(model.join("schema.json")).unwrap(), schema);

    // A folder as the output file was exit 1 ("Is a directory"), and `evaluate` only found out
    // after all its work.
    let folder = dir.path().join("out.csv");
    std::fs::create_dir(&folder).unwrap();
    common::habitlens()
        .args(["purchase", "predict", path(&data), "--model", path(&model)])
        .args(["--output", path(&folder)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a folder"));
    common::habitlens()
        .args(["purchase", "evaluate", path(&data), "--model", path(&model)])
        .args(["--report", path(&folder)])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("is a folder"));
    // A path below a file was exit 1 ("Not a directory").
    let below = data.join("out.csv");
    common::habitlens()
        .args(["purchase", "predict", path(&data), "--model", path(&model)])
        .args(["--output", path(&below)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a file, not a folder"));
    common::habitlens()
        .args(["-q", "purchase", "train", path(&data), "--target", "bought"])
        .args(["--epochs", "2", "--output", path(&data.join("sub").join("model"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a file, not a folder"));
    // A file as the model folder was exit 1 ("File exists").
    common::habitlens()
        .args(["-q", "purchase", "train", path(&data), "--target", "bought"])
        .args(["--epochs", "2", "--output", path(&data)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a file"));
    assert_eq!(std::fs::read(&data).unwrap(), before, "the input is untouched");
}

#[cfg(unix)]
#[test]
fn outputs_get_the_mode_a_plain_file_gets_not_owner_only() {
    // Outputs are written to a temporary file and renamed; they kept its owner-only mode (0600),
    // so a model or predictions file could not be read by anyone else the umask allows.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(300));
    let model = train(dir.path(), &data, "5");
    let out = dir.path().join("predictions.csv");
    common::habitlens()
        .args(["purchase", "predict", path(&data), "--model", path(&model)])
        .args(["--output", path(&out)])
        .assert()
        .success();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // `data` was made by `std::fs::write`: what the umask gives a new file.
    assert_eq!(mode(&out), mode(&data), "predictions");
    assert_eq!(mode(&model.join("schema.json")), mode(&data), "schema.json");
    assert_eq!(mode(&model.join("model.safetensors")), mode(&data), "model.safetensors");
}

#[test]
fn evaluate_and_predict_hints_name_no_flag_they_refuse() {
    // `evaluate` on a row without a target told the user to pass `--skip-missing-target`, and
    // `predict` on a bad cell to pass `--categorical`: flags only `train` takes.
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(300));
    let model = train(dir.path(), &data, "5");
    let text = sessions(300);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_string).collect();
    cells[6] = String::new();
    lines[3] = cells.join(",");
    let no_target = common::write(dir.path(), "no-target.csv", lines.join("\n") + "\n");
    common::habitlens()
        .args(["purchase", "evaluate", path(&no_target), "--model", path(&model)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("row 3, column `bought`: the target is missing"))
        .stderr(predicate::str::contains("`purchase train --skip-missing-target`"));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[5].split(',').map(str::to_string).collect();
    cells[4] = "maybe".into();
    lines[5] = cells.join(",");
    let bad = common::write(dir.path(), "bad.csv", lines.join("\n") + "\n");
    common::habitlens()
        .args(["purchase", "predict", path(&bad), "--model", path(&model)])
        .args(["--output", path(&dir.path().join("p.csv"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("row 5, column `returning`"))
        .stderr(predicate::str::contains("train with `--categorical returning`"));
}

#[test]
fn a_non_numeric_amount_target_is_refused_before_the_schema_naming_the_task() {
    // `--task regress` on a yes/no target printed the whole schema table, then said "`TRUE` is
    // not a number, hint: train with `--categorical bought`", which cannot help for a target.
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(50));
    common::habitlens()
        .args(["purchase", "train", path(&data), "--target", "bought", "--task", "regress"])
        .args(["--output", path(&dir.path().join("m"))])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("row 1, column `bought`: the target `"))
        .stderr(predicate::str::contains("is not an amount"))
        .stderr(predicate::str::contains("`--task classify`"))
        .stderr(predicate::str::contains("--categorical").not());
}

#[test]
fn a_failed_train_leaves_no_empty_model_folder() {
    // The model folder was created (to check it is writable) before the data was read, and
    // stayed behind, empty, when the data was bad; `predict --model` on it then failed with
    // "cannot read schema.json" instead of the folder simply not being there.
    let dir = tempfile::tempdir().unwrap();
    let text = sessions(50).replacen("\ns3,", "\ns3,\n", 1);
    let data = common::write(dir.path(), "bad.csv", text);
    let model = dir.path().join("new-model");
    common::habitlens()
        .args(["purchase", "train", path(&data), "--target", "bought"])
        .args(["--output", path(&model)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected 8 fields"));
    assert!(!model.exists(), "nothing is left under the model's name");

    // A folder that was already there is left alone.
    std::fs::create_dir(&model).unwrap();
    common::habitlens()
        .args(["purchase", "train", path(&data), "--target", "bought"])
        .args(["--output", path(&model)])
        .assert()
        .code(2);
    assert!(model.is_dir());
}

#[test]
fn the_no_validation_warning_gives_the_real_fraction() {
    // Two rows at the default `--val-fraction 0.2` leave no validation row; the warning said
    // "(`--val-fraction` 0)", a setting the user never gave.
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "two.csv", "x,y\n1,TRUE\n2,FALSE\n");
    common::habitlens()
        .args(["-q", "purchase", "train", path(&data), "--target", "y", "--epochs", "2"])
        .args(["--output", path(&dir.path().join("m"))])
        .assert()
        .success()
        .stderr(predicate::str::contains("no validation rows (`--val-fraction` 0.2 of 2 row(s))"));
}

#[test]
fn a_target_with_more_than_two_values_gets_a_hint_that_fits_them() {
    // Any target with three or more values got "hint: pass `--task regress` to predict an
    // amount", also for `TRUE`/`true`/`FALSE` or for words, where regression cannot run; and
    // the list of values ended in "..." even when it was complete.
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, values: [&str; 4]| {
        let mut csv = String::from("x,y\n");
        for (i, v) in values.iter().cycle().take(20).enumerate() {
            csv.push_str(&format!("{i},{v}\n"));
        }
        let data = common::write(dir.path(), name, csv);
        common::habitlens()
            .args(["purchase", "train", path(&data), "--target", "y"])
            .args(["--output", path(&dir.path().join("m"))])
            .assert()
            .code(2)
    };
    run("spelling.csv", ["TRUE", "true", "FALSE", "FALSE"])
        .stderr(predicate::str::contains("has 3 values (`FALSE`, `TRUE`, `true`), a yes/no"))
        .stderr(predicate::str::contains("spelled more than one way"))
        .stderr(predicate::str::contains("--task regress").not());
    run("words.csv", ["red", "green", "blue", "red"])
        .stderr(predicate::str::contains("exactly two values"));
    run("numbers.csv", ["1", "2", "3", "4"])
        .stderr(predicate::str::contains("pass `--task regress` to predict an amount"));
}

#[test]
fn learning_rate_and_weight_decay_must_be_usable_numbers() {
    // `--lr NaN` was accepted and training then ran without end (minutes of CPU on 1,000
    // rows that train in a second); `--lr 0` trained nothing and said nothing.
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(50));
    for (flag, value) in
        [("--lr", "NaN"), ("--lr", "0"), ("--lr", "inf"), ("--weight-decay", "NaN")]
    {
        common::habitlens()
            .args(["purchase", "train", path(&data), "--target", "bought", flag, value])
            .args(["--output", path(&dir.path().join("m"))])
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!("invalid value '{value}' for '{flag}")));
    }
}

#[test]
fn a_diverging_training_run_stops_with_an_error_instead_of_spinning() {
    // `--lr 1e8` is a valid setting, but the weights go to NaN within an epoch, and tuning the
    // threshold on NaN probabilities then never finished.
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(200));
    let model = dir.path().join("m");
    common::habitlens()
        .args(["-q", "purchase", "train", path(&data), "--target", "bought", "--lr", "1e8"])
        .args(["--epochs", "3", "--ignore", "spent", "--output", path(&model)])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("training diverged"))
        .stderr(predicate::str::contains("lower `--lr`"));
    assert!(!model.exists(), "no model is written");
}

#[test]
fn importance_on_rows_with_one_outcome_is_an_error_not_a_table_of_zeros() {
    // With no buyer among the rows ROC-AUC is undefined ("-" in the table, null in the report),
    // yet `--importance` printed "roc_auc 0.0000 before shuffling" and a drop of 0 for every
    // column, as if no column mattered.
    let dir = tempfile::tempdir().unwrap();
    let data = common::write(dir.path(), "sessions.csv", sessions(300));
    let model = train(dir.path(), &data, "5");
    let no_buyers: String = sessions(300)
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.contains(",FALSE,0.0"))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let no_buyers = common::write(dir.path(), "no-buyers.csv", no_buyers);
    let report = dir.path().join("report.json");
    common::habitlens()
        .args(["purchase", "evaluate", path(&no_buyers), "--model", path(&model)])
        .args(["--importance", "--report", path(&report)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`--importance` measures the drop in ROC-AUC"))
        .stderr(predicate::str::contains("it needs both outcomes"));
    assert!(!report.exists());
    // Without `--importance` the same rows still evaluate.
    common::habitlens()
        .args(["purchase", "evaluate", path(&no_buyers), "--model", path(&model)])
        .assert()
        .success();
}

#[test]
fn invalid_utf8_names_the_column() {
    // A Latin-1 cell gave "`f.csv`, row 2 (line 3): invalid UTF-8": no column, though bad input
    // errors name the file, row and column, and no word on what to do.
    let dir = tempfile::tempdir().unwrap();
    let data =
        common::write(dir.path(), "latin1.csv", b"x,city,y\n1,Rome,TRUE\n2,Sa\xefda,FALSE\n");
    common::habitlens()
        .args(["purchase", "train", path(&data), "--target", "y"])
        .args(["--output", path(&dir.path().join("m"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "row 2 (line 3): column `city`: invalid UTF-8 at byte 2 of the field",
        ))
        .stderr(predicate::str::contains("reads UTF-8 only"));
}
