//! `habitlens analyze` and `habitlens embed` run as a user would run them: the real binary, the
//! real model, files in a temporary folder.

mod common;

use predicates::prelude::*;

#[test]
fn analyze_writes_one_row_per_input_row_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = common::repo_root().join("examples/reviews.csv");
    common::habitlens()
        .args(["analyze", input.to_str().unwrap(), "--text-column", "review", "--id-column", "id"])
        .args(["--output-dir", out.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("habits").and(predicate::str::contains("needs")))
        .stdout(predicate::str::contains("with no label"));

    let (header, rows) = common::read_csv(&out.join("rows.csv"));
    let (_, input_rows) = common::read_csv(&input);
    assert_eq!(rows.len(), input_rows.len());
    assert_eq!(&header[..2], ["id", "status"]);
    assert!(
        header.contains(&"top_habits".to_string()) && header.contains(&"top_needs".to_string())
    );
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let input_ids: Vec<&str> = input_rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, input_ids, "rows come out in input order with their ids");
    let status = |id: &str| rows.iter().find(|r| r[0] == id).unwrap()[1].clone();
    assert_eq!(status("r014"), "empty");
    assert_eq!(status("r038"), "empty", "a blank text is empty too");
    assert_eq!(status("r001"), "ok");

    // Clear-cut reviews get the label they are about.
    let needs_col = header.iter().position(|h| h == "needs").unwrap();
    let needs = |id: &str| rows.iter().find(|r| r[0] == id).unwrap()[needs_col].clone();
    assert!(needs("r015").contains("fast_delivery"), "r015: {}", needs("r015"));
    assert!(needs("r006").contains("fit_and_size"), "r006: {}", needs("r006"));

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rows"], 40);
    assert_eq!(summary["empty"], 2);
    assert_eq!(summary["model"]["id"], "sentence-transformers/all-MiniLM-L6-v2");
    let labels = summary["labels"].as_array().unwrap();
    assert!(labels.len() >= 18);
    let delivery = labels.iter().find(|l| l["label"] == "fast_delivery").unwrap();
    assert!(delivery["count"].as_u64().unwrap() >= 1);
    assert!(!delivery["quotes"].as_array().unwrap().is_empty());
}

#[test]
fn missing_column_exits_2_and_lists_columns_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = common::repo_root().join("examples/reviews.csv");
    common::habitlens()
        .args(["analyze", input.to_str().unwrap(), "--text-column", "body"])
        .args(["--output-dir", out.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no column `body`"))
        .stderr(predicate::str::contains("`review`"));
    assert!(!out.join("rows.csv").exists());
}

#[test]
fn bad_row_late_in_the_file_stops_the_run_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("text\n");
    for i in 0..30 {
        csv.push_str(&format!("review number {i} says it fits well\n"));
    }
    let mut bytes = csv.into_bytes();
    bytes.extend_from_slice(b"caf\xe9 was cold\n");
    let input = common::write(dir.path(), "r.csv", bytes);
    let out = dir.path().join("out");
    common::habitlens()
        .args(["analyze", input.to_str().unwrap(), "--output-dir", out.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("row 31").and(predicate::str::contains("column `text`")))
        .stderr(predicate::str::contains("--encoding latin1"));
    let leftovers: Vec<_> = std::fs::read_dir(&out).map(|d| d.collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing is left in the output folder: {leftovers:?}");

    common::habitlens()
        .args(["analyze", input.to_str().unwrap(), "--encoding", "latin1", "--quiet"])
        .args(["--output-dir", out.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(common::read_csv(&out.join("rows.csv")).1.len(), 31);
}

#[test]
fn embed_writes_jsonl_and_npy_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write(dir.path(), "t.txt", "runs small\n\nlove the colour\n");
    let jsonl = dir.path().join("e.jsonl");
    common::habitlens()
        .args(["embed", input.to_str().unwrap(), "-o", jsonl.to_str().unwrap()])
        .assert()
        .success();
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["status"], "empty");
    assert!(rows[1]["embedding"].is_null());
    assert_eq!(rows[2]["id"], "3");
    assert_eq!(rows[0]["embedding"].as_array().unwrap().len(), 384);

    let npy = dir.path().join("e.npy");
    common::habitlens()
        .args(["embed", input.to_str().unwrap(), "-o", npy.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("zero rows"));
    let matrix = candle_core::Tensor::read_npy(&npy).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(matrix.len(), 3);
    assert!(matrix[1].iter().all(|&x| x == 0.0));
    let first: Vec<f32> = rows[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert!(common::cosine(&matrix[0], &first) > 0.99999);
}

#[test]
fn stdin_input_and_unknown_model_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e.jsonl");
    common::habitlens()
        .args(["embed", "-", "--format", "text", "-o", out.to_str().unwrap()])
        .write_stdin("one\ntwo\n")
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);

    common::habitlens()
        .args([
            "embed",
            "-",
            "--format",
            "text",
            "-o",
            out.to_str().unwrap(),
            "--model",
            "nobody/no-such-model",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .write_stdin("one\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`config.json` of model `nobody/no-such-model`"))
        .stderr(predicate::str::contains("HF_HOME"))
        // The hint comes after every cause, not between them.
        .stderr(predicate::function(|err: &str| {
            let lines: Vec<&str> = err.lines().collect();
            let hint = lines.iter().position(|l| l.starts_with("hint: "));
            let last_cause = lines.iter().rposition(|l| l.starts_with("  caused by: "));
            matches!((hint, last_cause), (Some(h), Some(c)) if h > c)
        }));
}

/// `habitlens analyze ... | head -1`: a reader that goes away must not turn a finished run into a
/// failure; the files are written and the exit code is 0 (it was a panic, exit 101).
#[test]
fn closed_stdout_still_writes_the_files_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = common::repo_root().join("examples/reviews.csv");
    let mut child = common::habitlens_process()
        .args(["--quiet", "analyze", input.to_str().unwrap(), "--text-column", "review"])
        .args(["--output-dir", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the program prints anything.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.join("rows.csv").is_file() && out.join("summary.json").is_file());
}

/// `embed in.jsonl --output in.jsonl` replaced the input with its embeddings; output paths that
/// are the input, or lie below a file, are refused before any work (exit code 2).
#[test]
fn outputs_that_would_replace_the_input_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write(dir.path(), "in.jsonl", "{\"text\": \"fits well\"}\n");
    common::habitlens()
        .args(["embed", input.to_str().unwrap(), "--output", input.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the input file"));
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "{\"text\": \"fits well\"}\n");

    let below_a_file = input.join("out");
    common::habitlens()
        .args(["analyze", input.to_str().unwrap(), "--output-dir", below_a_file.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a file, not a folder"));
}

/// `habitlens ... 2>&1 >/dev/null | (exit 0)`: a warning written to a stderr whose reader has
/// gone is lost, not the run (the logger reported its failed write with a panic, exit 101).
#[test]
fn closed_stderr_loses_the_warnings_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write(dir.path(), "one.csv", "text\nthe zipper broke after a week\n");
    let out = dir.path().join("out");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = common::habitlens_process()
        .args(["-v", "analyze", input.to_str().unwrap(), "--output-dir", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(out.join("rows.csv").is_file() && out.join("summary.json").is_file());
}

/// A tab-separated file named `.csv` read as one column gets a warning naming `--delimiter tab`,
/// and `--delimiter tab` (or `\t`) reads its columns.
#[test]
fn a_file_split_by_another_delimiter_is_pointed_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write(dir.path(), "tabs.csv", "id\ttext\nr1\tfits well\n");
    let out = dir.path().join("out.jsonl");
    common::habitlens()
        .args(["embed", input.to_str().unwrap(), "--output", out.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("--delimiter tab"));
    for delimiter in ["tab", "\\t"] {
        common::habitlens()
            .args(["embed", input.to_str().unwrap(), "--delimiter", delimiter])
            .args(["--id-column", "id", "--output", out.to_str().unwrap()])
            .assert()
            .success()
            .stderr(predicate::str::contains("--delimiter").not());
        let row: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&out).unwrap().lines().next().unwrap())
                .unwrap();
        assert_eq!(row["id"], "r1");
    }
}

/// Warnings written to a file or a pipe carry no terminal colour codes.
#[test]
fn warnings_off_a_terminal_are_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write(dir.path(), "one.csv", "text\nthe zipper broke after a week\n");
    let out = dir.path().join("out");
    let assert = common::habitlens()
        .args(["analyze", input.to_str().unwrap(), "--output-dir", out.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("too few to calibrate"));
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(!stderr.contains('\u{1b}'), "colour codes in {stderr:?}");
}

/// A model other than the default one (here the same files named as a local folder, which
/// habitlens cannot tell apart from another model) runs without the built-in sentiment head,
/// with a warning; it used to stop the run with a model-mismatch error.
#[test]
fn another_model_runs_without_the_builtin_sentiment_head() {
    let snapshots =
        common::hf_home().join("hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots");
    let folder = std::fs::read_dir(&snapshots).unwrap().next().unwrap().unwrap().path();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = common::repo_root().join("examples/reviews.csv");
    common::habitlens()
        .args(["analyze", input.to_str().unwrap(), "--text-column", "review"])
        .args(["--model", folder.to_str().unwrap(), "--output-dir", out.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("built-in sentiment head"));
    let (header, _) = common::read_csv(&out.join("rows.csv"));
    assert!(!header.iter().any(|h| h.starts_with("sentiment")), "{header:?}");
    assert!(header.contains(&"top_needs".to_string()));
}
