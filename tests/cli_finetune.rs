//! `habitlens train --fine-tune` run as a user would run it, on 24 real Hu & Liu review
//! sentences: the folder it writes works as a head in `classify` and `evaluate` and as a model
//! in `embed`, reproduces the embeddings the training run recorded, and holds new weights.

mod common;

use std::path::{Path, PathBuf};

/// `n` positive and `n` negative Hu & Liu sentences, alternating, as (text, label).
fn hu_liu(n: usize) -> Vec<(String, String)> {
    let dir = common::shared().join("data/hu_liu_customer_reviews_cr");
    let read = |name: &str| -> Vec<String> {
        let bytes = std::fs::read(dir.join(name)).expect("the Hu & Liu reviews are in ../shared");
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
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

fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> PathBuf {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(header).unwrap();
    for row in rows {
        w.write_record(row).unwrap();
    }
    w.flush().unwrap();
    path.to_path_buf()
}

fn run(cache: &Path, args: &[&str]) -> (String, String) {
    let output = common::habitlens()
        .env("HABITLENS_CACHE", cache)
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn fine_tuned_folder_is_a_head_and_a_model_that_reproduces_its_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let reviews = hu_liu(12);
    let rows: Vec<Vec<String>> = reviews
        .iter()
        .enumerate()
        .map(|(i, (t, l))| vec![format!("r{i}"), t.clone(), l.clone()])
        .collect();
    let data = write_csv(&dir.path().join("train.csv"), &["id", "text", "sentiment"], &rows);
    let out = dir.path().join("ft");
    let p = |path: &Path| path.to_str().unwrap().to_string();

    // Train, without validation, so that the kept weights are surely the trained ones (with
    // validation, the probe on the unchanged encoder may win: see the next test).
    let started = std::time::Instant::now();
    let (stdout, stderr) = run(
        &cache,
        &[
            "train",
            &p(&data),
            "--text-column",
            "text",
            "--id-column",
            "id",
            "--label-column",
            "sentiment",
            "--output",
            &p(&out),
            "--fine-tune",
            "--epochs",
            "1",
            "--max-seq-length",
            "32",
            "--seed",
            "7",
            "--val-fraction",
            "0",
        ],
    );
    eprintln!("train --fine-tune took {:.1} s:\n{stdout}", started.elapsed().as_secs_f64());
    assert!(stdout.contains("24 rows read, 24 used, 0 skipped"), "{stdout}");
    assert!(stdout.contains("s per step"), "{stdout}");
    assert!(
        stdout.contains("reload check: the folder gives the training run's embeddings"),
        "{stdout}"
    );
    assert!(stderr.contains("epoch 1/1: train loss"), "per-epoch losses on stderr: {stderr}");
    assert!(stderr.contains("validation loss -"), "{stderr}");
    assert!(stdout.contains("split: 24 training rows, 0 validation rows"), "{stdout}");
    assert!(
        stdout.contains("validation: none (`--val-fraction 0`): ran all 1 epoch(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("embeddings of 4 training text(s), lowest cosine 1.0"), "{stdout}");
    for file in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "head.json",
        "head.safetensors",
        "fine_tune_check.json",
    ] {
        assert!(out.join(file).is_file(), "the folder lacks {file}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("head.json")).unwrap()).unwrap();
    assert_eq!(meta["base_model"]["id"], p(&out), "the head's model is the folder itself");
    assert_eq!(meta["fine_tune"]["from_model"]["id"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(meta["fine_tune"]["max_seq_length"], 32);
    assert_eq!(meta["training"]["best_epoch"], 1, "the last epoch is kept");
    assert!(meta["validation"].is_null(), "{}", meta["validation"]);
    assert!(meta["fine_tune"]["epochs"][0]["val_loss"].is_null());
    assert!(meta["fine_tune"]["probe_val_loss"].is_null());
    let st: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("sentence_bert_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(st["max_seq_length"], 32, "the folder embeds as it trained");
    #[cfg(unix)]
    {
        // Readable like any new file (not the owner-only mode of a temporary file, nor the
        // read-only mode of the Hugging Face cache the configuration files come from).
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "x").unwrap();
        for file in ["model.safetensors", "config.json", "tokenizer.json", "modules.json"] {
            assert_eq!(mode(&out.join(file)), mode(&plain), "mode of {file}");
        }
    }

    // The weights are new: every tensor of the encoder moved. The pooler (unused by mean
    // pooling) and the position-id buffer are the base checkpoint's, copied so that loaders
    // find a full checkpoint.
    let base_files =
        habitlens::model::ModelFiles::resolve(&common::default_source()).expect("base model");
    let cpu = candle_core::Device::Cpu;
    let base = candle_core::safetensors::load(&base_files.weights, &cpu).unwrap();
    let tuned = candle_core::safetensors::load(out.join("model.safetensors"), &cpu).unwrap();
    assert!(tuned.len() >= 100, "{} tensors", tuned.len());
    for (name, t) in &tuned {
        if name.starts_with("pooler.") || name == "embeddings.position_ids" {
            continue;
        }
        let b = base.get(name).or_else(|| base.get(&format!("bert.{name}"))).unwrap_or_else(|| {
            panic!("the base model has no `{name}`");
        });
        let b = b.to_dtype(candle_core::DType::F32).unwrap();
        let diff = (t - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff > 0.0, "`{name}` is the base model's");
    }

    // Classify: every row, the empty one included, comes back once, in order.
    let mut to_classify = rows.clone();
    to_classify.push(vec!["blank".into(), "  ".into(), String::new()]);
    let input = write_csv(&dir.path().join("in.csv"), &["id", "text", "sentiment"], &to_classify);
    let labels_csv = dir.path().join("labels.csv");
    run(
        &cache,
        &[
            "classify",
            &p(&input),
            "--text-column",
            "text",
            "--id-column",
            "id",
            "--head",
            &p(&out),
            "--output",
            &p(&labels_csv),
        ],
    );
    let (header, got) = common::read_csv(&labels_csv);
    assert_eq!(header, ["id", "status", "ft", "ft_probability"]);
    assert_eq!(got.len(), 25);
    for (row, want) in got.iter().zip(&to_classify) {
        assert_eq!(row[0], want[0]);
        if want[0] == "blank" {
            assert_eq!((row[1].as_str(), row[2].as_str()), ("empty", ""));
        } else {
            assert_eq!(row[1], "ok");
            assert!(row[2] == "positive" || row[2] == "negative", "{row:?}");
        }
    }

    // Named by another path (relative, from its parent folder), the folder is still its own
    // head's encoder; `analyze` leaves the built-in sentiment head out, with a warning.
    let output = common::habitlens()
        .current_dir(dir.path())
        .args(["analyze", "in.csv", "--text-column", "text", "--id-column", "id"])
        .args(["--head", "ft", "--output-dir", "analyzed"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("built-in sentiment head"), "{stderr}");
    let (header, got) = common::read_csv(&dir.path().join("analyzed/rows.csv"));
    assert_eq!(got.len(), 25);
    assert!(header.contains(&"ft".to_string()) && !header.contains(&"sentiment".to_string()));

    // One run embeds with one encoder: beside a head of the base model it is refused.
    let sentiment = common::repo_root().join("models/sentiment");
    common::habitlens()
        .args(["classify", &p(&input), "--text-column", "text", "--head", &p(&out)])
        .args(["--head", &p(&sentiment), "--output", &p(&dir.path().join("mixed.csv"))])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("carries its own fine-tuned encoder"))
        .stderr(predicates::str::contains("models/sentiment"));

    // A frozen head trained on the folder's embeddings records it by absolute path, so it runs
    // beside the folder's own head however the folder is spelled, from another directory.
    common::habitlens()
        .env("HABITLENS_CACHE", &cache)
        .current_dir(dir.path())
        .args(["--quiet", "train", "train.csv", "--text-column", "text"])
        .args(["--label-column", "sentiment", "--model", "ft", "--output", "frozen"])
        .assert()
        .success();
    let (header, got) = {
        let classified = dir.path().join("both.csv");
        common::habitlens()
            .current_dir(dir.path().parent().unwrap())
            .args(["--quiet", "classify", &p(&input), "--text-column", "text"])
            .args(["--head", &p(&out), "--head", &p(&dir.path().join("./frozen"))])
            .args(["--output", &p(&classified)])
            .assert()
            .success();
        common::read_csv(&classified)
    };
    assert!(header.contains(&"frozen".to_string()) && header.contains(&"ft".to_string()));
    assert_eq!(got.len(), 25);

    // A frozen head trained into a copy of the folder does not use the model files left there
    // (it is told so): it runs beside a head of the base model, as any frozen head does.
    let stale = dir.path().join("stale");
    std::fs::create_dir(&stale).unwrap();
    for entry in std::fs::read_dir(&out).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), stale.join(entry.file_name())).unwrap();
        }
    }
    let (_, stderr) = run(
        &cache,
        &["train", &p(&data), "--text-column", "text", "--label-column", "sentiment"]
            .into_iter()
            .chain(["--output", &p(&stale)])
            .collect::<Vec<_>>(),
    );
    assert!(stderr.contains("holds a model from an earlier run"), "{stderr}");
    run(
        &cache,
        &["classify", &p(&input), "--text-column", "text", "--head", &p(&stale), "--head"]
            .into_iter()
            .chain([sentiment.to_str().unwrap(), "--output", &p(&dir.path().join("s.csv"))])
            .collect::<Vec<_>>(),
    );
    // Trained on that very model (`--model DIR --output DIR`), the head does use it: no warning.
    let own = dir.path().join("own");
    common::copy_folder(&out, &own);
    let (_, stderr) = run(
        &cache,
        &["train", &p(&data), "--text-column", "text", "--label-column", "sentiment"]
            .into_iter()
            .chain(["--model", &p(&own), "--output", &p(&own)])
            .collect::<Vec<_>>(),
    );
    assert!(!stderr.contains("earlier run"), "{stderr}");

    // Evaluate: the 24 labelled rows are all counted. `--model` given, even as the default
    // model, is not used beside the folder's own encoder, and a warning says so.
    let report = dir.path().join("report.json");
    let (_, stderr) = run(
        &cache,
        &["evaluate", &p(&data), "--head", &p(&out), "--report", &p(&report)]
            .into_iter()
            .chain(["--model", habitlens::model::DEFAULT_MODEL])
            .collect::<Vec<_>>(),
    );
    assert!(stderr.contains("is not used"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["rows"], 24, "{report}");
    assert_eq!(report["rows_skipped"], 0, "{report}");

    // The folder loads as `--model` in `embed` and gives back the training run's embeddings.
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fine_tune_check.json")).unwrap())
            .unwrap();
    let texts: Vec<String> = check["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(!texts.is_empty());
    let rows: Vec<Vec<String>> =
        texts.iter().enumerate().map(|(i, t)| vec![format!("c{i}"), t.clone()]).collect();
    let check_csv = write_csv(&dir.path().join("check.csv"), &["id", "text"], &rows);
    let embedded = dir.path().join("check.jsonl");
    run(
        &cache,
        &[
            "embed",
            &p(&check_csv),
            "--text-column",
            "text",
            "--id-column",
            "id",
            "--model",
            &p(&out),
            "--output",
            &p(&embedded),
        ],
    );
    let lines = std::fs::read_to_string(&embedded).unwrap();
    let base_vectors = common::embedder().embed(&texts).unwrap();
    for (i, line) in lines.lines().enumerate() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let vector = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
        };
        let again = vector(&row["embedding"]);
        let recorded = vector(&check["embeddings"][i]);
        let cos = common::cosine(&again, &recorded);
        assert!(cos > 0.9999, "text {i}: cosine {cos} between the reload and the training run");
        assert!(
            common::cosine(&again, base_vectors.row(i)) < 0.999_999,
            "text {i} embeds as with the base model"
        );
    }
    assert_eq!(lines.lines().count(), texts.len());
}

#[test]
fn contrastive_without_a_label_pair_and_an_output_below_a_file_are_usage_errors() {
    let p = |path: &Path| path.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    // Two rows per label: one goes to validation, so no label keeps a training pair.
    let rows: Vec<Vec<String>> = hu_liu(1)
        .into_iter()
        .chain(hu_liu(2).into_iter().skip(2))
        .map(|(t, l)| vec![t, l])
        .collect();
    let data = write_csv(&dir.path().join("pairs.csv"), &["text", "label"], &rows);
    let out = dir.path().join("out");
    common::habitlens()
        .args(["train", &p(&data), "--label-column", "label", "--output", &p(&out)])
        .args(["--fine-tune", "--epochs", "1", "--contrastive"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`--contrastive` needs a label with two"));
    assert!(!out.exists(), "the failed run left the output folder it made");
    // A learning rate that sends the weights to infinity stops the run before anything is
    // written, here with no validation epoch to fall back on.
    let deep = dir.path().join("made/for/it");
    common::habitlens()
        .args(["train", &p(&data), "--label-column", "label", "--output", &p(&deep)])
        .args(["--fine-tune", "--epochs", "1", "--val-fraction", "0", "--lr", "1e6"])
        .args(["--max-seq-length", "16"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("training diverged"))
        .stderr(predicates::str::contains("lower `--lr`"));
    assert!(!dir.path().join("made").exists(), "the failed run left folders it made");

    // With a pair per label the stage runs, and says so per epoch on stderr.
    let rows: Vec<Vec<String>> = hu_liu(4).into_iter().map(|(t, l)| vec![t, l]).collect();
    let data = write_csv(&dir.path().join("four.csv"), &["text", "label"], &rows);
    let (stdout, stderr) = run(
        &dir.path().join("cache"),
        &["train", &p(&data), "--label-column", "label", "--output", &p(&out), "--fine-tune"]
            .into_iter()
            .chain(["--contrastive", "--contrastive-epochs", "2", "--epochs", "1"])
            .chain(["--contrastive-temperature", "0.1"])
            .chain(["--val-fraction", "0", "--max-seq-length", "16"])
            .collect::<Vec<_>>(),
    );
    assert!(stderr.contains("contrastive epoch 2/2: done"), "{stderr}");
    assert!(stdout.contains("contrastive stage: 2 epoch(s) at temperature 0.1"), "{stdout}");
    let head: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("head.json")).unwrap()).unwrap();
    assert_eq!(head["fine_tune"]["settings"]["contrastive_temperature"], 0.1, "{head}");
    for bad in ["0", "-1", "1e-5", "nan", "inf"] {
        common::habitlens()
            .args(["train", &p(&data), "--label-column", "label", "--output", &p(&out)])
            .args(["--fine-tune", "--contrastive", "--contrastive-temperature", bad])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(
                "`--contrastive-temperature` must be a finite number of at least 0.001",
            ));
    }
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    common::habitlens()
        .args(["train", &p(&data), "--label-column", "label"])
        .args(["--output", &p(&file.join("head"))])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("is a file, not a folder"));
}

#[test]
fn with_validation_the_kept_epoch_is_the_one_that_validated_best() {
    let p = |path: &Path| path.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rows: Vec<Vec<String>> = hu_liu(8).into_iter().map(|(t, l)| vec![t, l]).collect();
    let data = write_csv(&dir.path().join("few.csv"), &["text", "label"], &rows);
    for select in ["loss", "score"] {
        let out = dir.path().join(format!("ft-{select}"));
        let (stdout, stderr) = run(
            &cache,
            &[
                "train",
                &p(&data),
                "--label-column",
                "label",
                "--output",
                &p(&out),
                "--fine-tune",
                "--epochs",
                "2",
                "--patience",
                "2",
                "--max-seq-length",
                "24",
                "--select-by",
                select,
            ],
        );
        assert!(stdout.contains("split: 14 training rows, 2 validation rows"), "{stdout}");
        assert!(stdout.contains("embeddings of 2 validation text(s), lowest cosine 1.0"));
        assert!(stdout.contains("validation: accuracy"), "{stdout}");
        let figure = if select == "loss" { "loss" } else { "accuracy" };
        assert!(stdout.contains(&format!("probe on the model's embeddings: validation {figure}")));
        assert!(!stderr.contains("validation loss -"), "{stderr}");
        assert!(!stderr.contains("accuracy -"), "{stderr}");
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("head.json")).unwrap()).unwrap();
        let ft = &meta["fine_tune"];
        assert_eq!(ft["settings"]["select_by"], select);
        // Epoch 0 is the probe; each entry is (loss, score).
        let figures = |e: &serde_json::Value, prefix: &str| -> (f64, f64) {
            let get = |k: &str| e[format!("{prefix}{k}")].as_f64().expect("validated");
            (get("val_loss"), get("val_score"))
        };
        let mut all = vec![figures(ft, "probe_")];
        all.extend(ft["epochs"].as_array().unwrap().iter().map(|e| figures(e, "")));
        assert_eq!(all.len(), 3, "patience 2 runs both epochs");
        assert!(all.iter().all(|f| (0.0..=1.0).contains(&f.1)), "{all:?}");
        let best = if select == "loss" {
            (0..all.len()).min_by(|&a, &b| all[a].0.total_cmp(&all[b].0))
        } else {
            (0..all.len())
                .max_by(|&a, &b| all[a].1.total_cmp(&all[b].1).then(all[b].0.total_cmp(&all[a].0)))
        }
        .unwrap();
        assert_eq!(meta["training"]["best_epoch"], best, "{select}: {all:?}");
        let kept = meta["validation"]["loss"].as_f64().expect("validation figures");
        assert!((kept - all[best].0).abs() < 1e-9, "{kept} vs {all:?}");
        let accuracy = meta["validation"]["accuracy"].as_f64().expect("validation accuracy");
        assert!((accuracy - all[best].1).abs() < 1e-9, "{accuracy} vs {all:?}");
    }
}

#[test]
fn contrastive_with_no_joint_epochs_keeps_the_contrastive_encoder_and_a_probe_head() {
    let p = |path: &Path| path.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Vec<String>> = hu_liu(8).into_iter().map(|(t, l)| vec![t, l]).collect();
    let data = write_csv(&dir.path().join("few.csv"), &["text", "label"], &rows);
    let out = dir.path().join("setfit");
    let train = ["train", &p(&data), "--label-column", "label", "--output", &p(&out)];
    // `--epochs 0` means something only after a contrastive stage.
    common::habitlens()
        .args(train)
        .args(["--fine-tune", "--epochs", "0"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`--epochs 0` is for `--fine-tune --contrastive` alone"));
    let (stdout, _) = run(
        &dir.path().join("cache"),
        &train
            .into_iter()
            .chain(["--fine-tune", "--contrastive", "--contrastive-epochs", "2", "--epochs", "0"])
            .chain(["--max-seq-length", "24"])
            .collect::<Vec<_>>(),
    );
    assert!(stdout.contains("joint training: none (`--epochs 0`)"), "{stdout}");
    assert!(stdout.contains("validation: accuracy"), "{stdout}");
    assert!(stdout.contains("text(s) cut at"), "{stdout}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("head.json")).unwrap()).unwrap();
    assert_eq!(meta["fine_tune"]["epochs"].as_array().map(Vec::len), Some(0));
    assert_eq!(meta["fine_tune"]["contrastive_losses"].as_array().map(Vec::len), Some(2));
    assert_eq!(meta["training"]["best_epoch"], 0);
    let written = std::fs::read_to_string(out.join("head.json")).unwrap();
    assert!(!written.contains("-0.0"), "no joint training takes 0 seconds, not -0: {written}");
    // The encoder is the contrastive stage's, not the base model, and the head classifies.
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fine_tune_check.json")).unwrap())
            .unwrap();
    let text = check["texts"][0].as_str().unwrap().to_string();
    let recorded: Vec<f32> = check["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let base = common::embedder().embed(&[text]).unwrap();
    assert!(common::cosine(&recorded, base.row(0)) < 0.999_999, "the encoder did not move");
    let labelled = dir.path().join("labelled.csv");
    run(
        &dir.path().join("cache"),
        &["classify", &p(&data), "--head", &p(&out), "--output", &p(&labelled)],
    );
    let lines = std::fs::read_to_string(&labelled).unwrap();
    assert_eq!(lines.lines().count(), rows.len() + 1, "{lines}");
}
