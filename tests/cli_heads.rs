//! `habitlens train`, `evaluate` and `classify` run as a user would run them: the real binary,
//! the real model, real labelled reviews (Hu & Liu customer reviews from `../shared/data`), files
//! in a temporary folder.

mod common;

use std::path::{Path, PathBuf};

use predicates::prelude::*;

/// `n` positive and `n` negative Hu & Liu sentences starting at line `skip` of each file, as
/// (text, label) pairs, alternating.
fn hu_liu(skip: usize, n: usize) -> Vec<(String, String)> {
    let dir = common::shared().join("data/hu_liu_customer_reviews_cr");
    let read = |name: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(name))
            .expect("the Hu & Liu reviews are in ../shared/data")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .skip(skip)
            .take(n)
            .map(|l| l.trim().to_string())
            .collect()
    };
    let (pos, neg) = (read("custrev.train80.pos"), read("custrev.train80.neg"));
    pos.into_iter()
        .zip(neg)
        .flat_map(|(p, n)| [(p, "positive".to_string()), (n, "negative".to_string())])
        .collect()
}

/// A CSV of id, text, sentiment and a multi-label `tags` column (sentiment, plus `long` for
/// texts over 80 characters).
fn write_reviews(dir: &Path, name: &str, rows: &[(String, String)]) -> PathBuf {
    let mut w = csv::Writer::from_path(dir.join(name)).unwrap();
    w.write_record(["id", "text", "sentiment", "tags"]).unwrap();
    for (i, (text, label)) in rows.iter().enumerate() {
        let tags = if text.len() > 80 { format!("{label};long") } else { label.clone() };
        w.write_record([&format!("r{i}"), text, label, &tags]).unwrap();
    }
    w.flush().unwrap();
    dir.join(name)
}

fn habitlens(cache: &Path) -> assert_cmd::Command {
    let mut cmd = common::habitlens();
    cmd.env("HABITLENS_CACHE", cache);
    cmd
}

/// Runs `habitlens train` and returns its stdout and stderr.
fn train(cache: &Path, data: &Path, out: &Path, extra: &[&str]) -> (String, String) {
    let output = habitlens(cache)
        .args(["train", data.to_str().unwrap(), "--text-column", "text", "--id-column", "id"])
        .args(["--output", out.to_str().unwrap()])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .clone();
    (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn train_evaluate_and_classify_with_two_heads_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = write_reviews(dir.path(), "train.csv", &hu_liu(0, 100));
    // One row without a sentiment: skipped, counted and named, not dropped silently.
    let mut csv = std::fs::read_to_string(&data).unwrap();
    csv.push_str("r200,the screen is fine i guess,,positive\n");
    std::fs::write(&data, csv).unwrap();
    let sentiment = dir.path().join("sentiment");
    let (stdout, stderr) =
        train(&cache, &data, &sentiment, &["--label-column", "sentiment", "--seed", "3"]);
    assert!(stdout.contains("201 rows read, 200 used, 1 skipped"), "{stdout}");
    assert!(stderr.contains("empty `sentiment`: row 201"), "{stderr}");
    assert!(stdout.contains("validation: accuracy"), "{stdout}");

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sentiment.join("head.json")).unwrap())
            .unwrap();
    assert_eq!(meta["format_version"], 1);
    assert_eq!(meta["task"], "single_label");
    assert_eq!(meta["labels"], serde_json::json!(["negative", "positive"]));
    assert_eq!(meta["base_model"]["id"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(meta["base_model"]["dimension"], 384);
    assert_eq!(
        (meta["data"]["rows"].as_u64(), meta["data"]["rows_skipped"].as_u64()),
        (Some(201), Some(1))
    );
    assert_eq!(meta["data"]["sha256"].as_str().unwrap().len(), 64);
    assert!(std::fs::metadata(sentiment.join("head.safetensors")).unwrap().len() < 10_000);

    // Same seed, same bytes; the second run reads the embedding cache.
    let again = dir.path().join("again");
    let (stdout, _) = train(&cache, &data, &again, &["--label-column", "sentiment", "--seed", "3"]);
    assert!(stdout.contains("from the cache"), "{stdout}");
    assert_eq!(
        std::fs::read(sentiment.join("head.safetensors")).unwrap(),
        std::fs::read(again.join("head.safetensors")).unwrap(),
        "the same seed gives the same head, bit for bit"
    );

    // A multi-label head on the same texts.
    let tags = dir.path().join("tags");
    train(&cache, &data, &tags, &["--label-column", "tags", "--multi-label"]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tags.join("head.json")).unwrap()).unwrap();
    assert_eq!(meta["task"], "multi_label");
    assert_eq!(meta["thresholds"].as_array().unwrap().len(), 3);

    // Evaluate on other sentences; the head's own columns are the default.
    let test = write_reviews(dir.path(), "test.csv", &hu_liu(300, 50));
    let report = dir.path().join("report.json");
    let confusion = dir.path().join("confusion.csv");
    habitlens(&cache)
        .args(["evaluate", test.to_str().unwrap(), "--head", sentiment.to_str().unwrap()])
        .args(["--report", report.to_str().unwrap(), "--confusion", confusion.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("accuracy").and(predicate::str::contains("negative")));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let accuracy = r["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.7, "accuracy {accuracy}");
    for key in ["macro_f1", "weighted_f1", "log_loss"] {
        assert!(r[key].as_f64().is_some(), "{key} in {r}");
    }
    assert_eq!(r["per_label"]["positive"]["support"], 50);
    let (header, rows) = common::read_csv(&confusion);
    assert_eq!(header, ["true\\predicted", "negative", "positive"]);
    let total: usize =
        rows.iter().flat_map(|r| r[1..].iter()).map(|c| c.parse::<usize>().unwrap()).sum();
    assert_eq!(total, 100);

    let multi = dir.path().join("multi.json");
    habitlens(&cache)
        .args(["evaluate", test.to_str().unwrap(), "--head", tags.to_str().unwrap()])
        .args(["--report", multi.to_str().unwrap()])
        .assert()
        .success();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&multi).unwrap()).unwrap();
    assert!(m["micro_f1"].as_f64().unwrap() > 0.5 && m["macro_f1"].as_f64().is_some(), "{m}");

    // Outputs that would overwrite each other, a head's own file or the input are refused
    // before any head is measured, and nothing is written.
    let clash = dir.path().join("clash.json");
    let head_json = sentiment.join("head.json");
    let before = std::fs::read(&head_json).unwrap();
    let (new, new_dot) = (dir.path().join("new/r.json"), dir.path().join("new/./r.json"));
    let (up, plain) = (dir.path().join("sub/../x.json"), dir.path().join("x.json"));
    let in_head = sentiment.join("sub/r.json");
    for (report, confusion, says) in [
        (clash.as_path(), Some(clash.as_path()), "both name"),
        (new.as_path(), Some(new_dot.as_path()), "both name"),
        (up.as_path(), Some(plain.as_path()), "both name"),
        (head_json.as_path(), None, "head folder"),
        (in_head.as_path(), None, "head folder"),
        (test.as_path(), None, "the input file"),
    ] {
        let mut cmd = habitlens(&cache);
        cmd.args(["evaluate", test.to_str().unwrap(), "--head", sentiment.to_str().unwrap()])
            .args(["--report", report.to_str().unwrap()]);
        if let Some(c) = confusion {
            cmd.args(["--confusion", c.to_str().unwrap()]);
        }
        cmd.assert().code(2).stderr(predicate::str::contains(says));
    }
    assert!(!clash.exists() && !new.exists() && !plain.exists());
    assert!(!sentiment.join("sub").exists());
    assert_eq!(std::fs::read(&head_json).unwrap(), before, "the head folder is untouched");

    // With stdout's reader gone (`| head` done), the tables stop but the files are written.
    let late = dir.path().join("late.json");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = common::habitlens_process()
        .env("HABITLENS_CACHE", &cache)
        .args(["evaluate", test.to_str().unwrap(), "--head", sentiment.to_str().unwrap()])
        .args(["--report", late.to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success() && late.is_file(), "{status:?}");

    // Classify with both heads; a blank text still gets its row.
    let mut input = std::fs::read_to_string(&test).unwrap();
    input.push_str("blank,,,\n");
    let input = common::write(dir.path(), "input.csv", input);
    let out = dir.path().join("labels.csv");
    habitlens(&cache)
        .args(["classify", input.to_str().unwrap(), "--id-column", "id", "--top-k", "2"])
        .args(["--head", sentiment.to_str().unwrap(), "--head", tags.to_str().unwrap()])
        .args(["--output", out.to_str().unwrap()])
        .assert()
        .success();
    let (header, rows) = common::read_csv(&out);
    assert_eq!(
        header,
        [
            "id",
            "status",
            "sentiment",
            "sentiment_probability",
            "sentiment_top",
            "tags",
            "tags_probability",
            "tags_top"
        ]
    );
    assert_eq!(rows.len(), 101, "every input row has an output row");
    assert_eq!(rows[0][0], "r0");
    let blank = rows.last().unwrap();
    assert_eq!((blank[0].as_str(), blank[1].as_str(), blank[2].as_str()), ("blank", "empty", ""));
    assert!(rows[..100].iter().all(|r| r[1] == "ok" && (r[2] == "positive" || r[2] == "negative")));
    let agree = rows[..100].iter().filter(|r| r[5].split(';').any(|t| t == r[2])).count();
    assert!(agree > 70, "the two heads agree on sentiment for {agree} of 100 rows");

    // JSONL output by extension.
    let out = dir.path().join("labels.jsonl");
    habitlens(&cache)
        .args(["classify", input.to_str().unwrap(), "--head", sentiment.to_str().unwrap()])
        .args(["--text-column", "text", "--output", out.to_str().unwrap()])
        .assert()
        .success();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 101);
    let keys: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "status", "sentiment"], "fields in the documented order");
    assert!(lines[0]["sentiment"]["labels"][0].is_string());
    assert!(lines[100]["sentiment"].is_null());

    // A head trained on another revision of the model is refused.
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sentiment.join("head.json")).unwrap())
            .unwrap();
    meta["base_model"]["revision"] = "0123456789abcdef".into();
    std::fs::write(again.join("head.json"), meta.to_string()).unwrap();
    habitlens(&cache)
        .args(["classify", input.to_str().unwrap(), "--head", again.to_str().unwrap()])
        .args(["--output", dir.path().join("x.csv").to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("revision 0123456789abcdef"));
    assert!(!dir.path().join("x.csv").exists());

    // A head trained with `--model FOLDER` is recorded with the revision `local`; the hint must
    // name the folder as `--model` takes it, not `FOLDER@local`, which `--model` refuses.
    let folder = dir.path().join("my-model");
    meta["base_model"]["id"] = folder.to_str().unwrap().into();
    meta["base_model"]["revision"] = "local".into();
    std::fs::write(again.join("head.json"), meta.to_string()).unwrap();
    habitlens(&cache)
        .args(["classify", input.to_str().unwrap(), "--head", again.to_str().unwrap()])
        .args(["--output", dir.path().join("x.csv").to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("run with `--model {}`", folder.display()))
                .and(predicate::str::contains("@local").not()),
        );

    // `evaluate` on a header without rows says so.
    let empty = common::write(dir.path(), "empty.csv", b"id,text,sentiment,tags\n");
    habitlens(&cache)
        .args(["evaluate", empty.to_str().unwrap(), "--head", sentiment.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no rows"));
}

#[test]
fn bad_labelled_data_exits_2_naming_rows_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("head");
    let run = |csv: &[u8], extra: &[&str]| {
        let data = common::write(dir.path(), "d.csv", csv);
        habitlens(&cache)
            .args(["train", data.to_str().unwrap(), "--label-column", "label"])
            .args(["--output", out.to_str().unwrap()])
            .args(extra)
            .assert()
    };
    run(b"text,label\ngood,pos\nfine,pos\n", &[]).code(2).stderr(
        predicate::str::contains("single label, `pos`").and(predicate::str::contains("hint:")),
    );
    run(b"text,label\n,pos\n ,neg\n", &[])
        .code(2)
        .stderr(predicate::str::contains("every one of the 2 row(s)"));
    run(b"text,label\ngood,\nbad,\n", &[])
        .code(2)
        .stderr(predicate::str::contains("column `label`"));
    run(b"text,label\ngood,pos\nbad,caf\xe9\n", &[])
        .code(2)
        .stderr(predicate::str::contains("row 2").and(predicate::str::contains("column `label`")));
    // A header and no rows: say so, rather than blaming `--label-column`.
    run(b"text,label\n", &[]).code(2).stderr(
        predicate::str::contains("no rows").and(predicate::str::contains("--label-column").not()),
    );
    // A head called `id` or `status` would overwrite those columns (and the id in JSONL).
    run(b"text,label\ngood,pos\nbad,neg\n", &["--name", "id"])
        .code(2)
        .stderr(predicate::str::contains("--name"));
    // An existing file as `--output` is bad usage, not an unexpected failure.
    let file = common::write(dir.path(), "f.csv", b"text,label\ngood,pos\nbad,neg\n");
    habitlens(&cache)
        .args(["train", file.to_str().unwrap(), "--label-column", "label"])
        .args(["--output", file.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a file"));
    run(b"text,stars\ngood,5\n", &[]).code(2).stderr(
        predicate::str::contains("no column `label`")
            .and(predicate::str::contains("pass `--label-column` one of the columns")),
    );
    run(b"text,label\ngood,pos\nbad,neg\n", &["--lr", "nan"])
        .code(2)
        .stderr(predicate::str::contains("`--lr` must be a finite number"));
    run(b"text,label\ngood,pos\nbad,neg\n", &["--val-fraction", "1.5"])
        .code(2)
        .stderr(predicate::str::contains("--val-fraction"));
    assert!(!out.exists(), "nothing written, not even the folder");
}

#[test]
fn validation_figures_say_when_a_label_has_no_validation_row() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut rows = hu_liu(0, 6);
    rows.push(("Arrived a day late, works as described.".into(), "mixed".into()));
    let data = write_reviews(dir.path(), "few.csv", &rows);
    let out = dir.path().join("head");
    let (stdout, _) = train(&cache, &data, &out, &["--label-column", "sentiment"]);
    // `mixed` has one row, which training keeps; the two others give validation one each.
    assert!(stdout.contains("(2 row(s), covering 2 of the 3 labels"), "{stdout}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("head.json")).unwrap()).unwrap();
    assert_eq!(meta["validation"]["labels_seen"], 2, "{}", meta["validation"]);
    // A frozen head's folder is no model; the error says what it is.
    habitlens(&cache)
        .args(["embed", data.to_str().unwrap(), "--text-column", "text"])
        .args([
            "--model",
            out.to_str().unwrap(),
            "--output",
            dir.path().join("e.npy").to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("it is a head folder")
                .and(predicate::str::contains("pass it as `--head`")),
        );
}

#[test]
fn analyze_runs_the_shipped_sentiment_head_and_crosses_it_with_the_taxonomy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let input = common::repo_root().join("examples/reviews.csv");
    let out = dir.path().join("out");
    habitlens(&cache)
        .args(["analyze", input.to_str().unwrap(), "--text-column", "review", "--id-column", "id"])
        .args(["--output-dir", out.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("sentiment: negative"));
    let (header, rows) = common::read_csv(&out.join("rows.csv"));
    assert_eq!(rows.len(), 40);
    let col = header.iter().position(|h| h == "sentiment").expect("a sentiment column");
    let label = |id: &str| rows.iter().find(|r| r[0] == id).unwrap()[col].clone();
    assert_eq!(label("r004"), "negative", "crushed package, no answer from support");
    assert_eq!(label("r014"), "", "an empty row has no sentiment");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let head = &summary["heads"][0];
    assert_eq!(head["name"], "sentiment");
    assert_eq!(head["texts"], 38);
    let by_label = head["by_label"].as_array().unwrap();
    let need =
        by_label.iter().find(|r| r["group"] == "needs" && r["texts"].as_u64() > Some(0)).unwrap();
    let shares =
        need["shares"]["negative"].as_f64().unwrap() + need["shares"]["positive"].as_f64().unwrap();
    assert!((shares - 1.0).abs() < 1e-9, "every text of a need has one sentiment: {need}");

    // Heads alone; the shipped head given twice is refused.
    let alone = dir.path().join("alone");
    let sentiment = common::repo_root().join("models/sentiment");
    habitlens(&cache)
        .args(["analyze", input.to_str().unwrap(), "--text-column", "review", "--no-taxonomy"])
        .args(["--no-sentiment", "--head", sentiment.to_str().unwrap()])
        .args(["--output-dir", alone.to_str().unwrap()])
        .assert()
        .success();
    let (header, rows) = common::read_csv(&alone.join("rows.csv"));
    assert_eq!(header, ["id", "status", "sentiment", "sentiment_probability"]);
    assert_eq!(rows.len(), 40);
    habitlens(&cache)
        .args(["analyze", input.to_str().unwrap(), "--text-column", "review"])
        .args(["--head", sentiment.to_str().unwrap(), "--output-dir", alone.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("two heads are called `sentiment`"));

    // The name is stored in `head.json` at training: renaming a copied folder changes nothing,
    // so the hint must not suggest it.
    let copy = dir.path().join("renamed");
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["head.json", "head.safetensors"] {
        std::fs::copy(sentiment.join(file), copy.join(file)).unwrap();
    }
    habitlens(&cache)
        .args(["classify", input.to_str().unwrap(), "--text-column", "review"])
        .args(["--head", sentiment.to_str().unwrap(), "--head", copy.to_str().unwrap()])
        .args(["--output", dir.path().join("x.csv").to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("two heads are called `sentiment`")
                .and(predicate::str::contains("rename one head folder").not())
                .and(predicate::str::contains("--name")),
        );
}

/// A head named like a taxonomy group (`needs`) gave rows.csv two `needs` columns; analyze now
/// refuses it (exit code 2) unless the taxonomy is off.
#[test]
fn analyze_refuses_a_head_named_like_a_taxonomy_group() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = write_reviews(dir.path(), "r.csv", &hu_liu(0, 20));
    let head = dir.path().join("needs-head");
    train(&cache, &data, &head, &["--label-column", "sentiment", "--name", "needs"]);
    let out = dir.path().join("out");
    habitlens(&cache)
        .args(["analyze", data.to_str().unwrap(), "--head", head.to_str().unwrap()])
        .args(["--output-dir", out.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("taxonomy group"));
    assert!(!out.join("rows.csv").exists());
}
