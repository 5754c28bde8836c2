//! Fine-tuning reaches every encoder weight, lowers the loss on real reviews, and exports a
//! folder that loads back as a model giving the same embeddings.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use habitlens::embed::Embedder;
use habitlens::finetune::lengths::length_groups;
use habitlens::finetune::optim::Optimiser;
use habitlens::finetune::{PASS_OVERHEAD_TOKENS, TrainableEncoder};
use habitlens::model::{ModelFiles, ModelSource, ModelSpec};

/// Eight positive and eight negative sentences from the Hu & Liu customer reviews.
fn sample() -> (Vec<String>, Vec<u32>) {
    let dir = common::shared().join("data/hu_liu_customer_reviews_cr");
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for (file, label) in [("custrev.train80.pos", 1u32), ("custrev.train80.neg", 0)] {
        let content =
            std::fs::read(dir.join(file)).expect("the Hu & Liu reviews are in ../shared/data");
        let content = String::from_utf8_lossy(&content);
        for line in content.lines().filter(|l| !l.trim().is_empty()).take(8) {
            texts.push(line.to_string());
            labels.push(label);
        }
    }
    (texts, labels)
}

fn token_ids(texts: &[String]) -> Vec<Vec<u32>> {
    let files = ModelFiles::resolve(&common::default_source()).unwrap();
    let mut tokenizer = tokenizers::Tokenizer::from_file(&files.tokenizer).unwrap();
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).unwrap();
    texts
        .iter()
        .map(|t| tokenizer.encode(t.as_str(), true).unwrap().get_ids()[..].to_vec())
        .collect()
}

struct Setup {
    encoder: TrainableEncoder,
    head: Var,
    ids: Vec<Vec<u32>>,
    labels: Tensor,
}

fn setup() -> Setup {
    let files = ModelFiles::resolve(&common::default_source()).unwrap();
    let encoder = TrainableEncoder::load(&files, &Device::Cpu).unwrap();
    let (texts, labels) = sample();
    // A fixed, small head so the test does not depend on random numbers.
    let head: Vec<f32> =
        (0..2 * 384).map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.1).collect();
    let head = Var::from_tensor(&Tensor::from_vec(head, (384, 2), &Device::Cpu).unwrap()).unwrap();
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    Setup { encoder, head, ids: token_ids(&texts), labels }
}

fn loss(s: &Setup) -> Tensor {
    let ids: Vec<&[u32]> = s.ids.iter().map(Vec::as_slice).collect();
    let pooled = s.encoder.forward(&ids).unwrap();
    let logits = (pooled.matmul(s.head.as_tensor()).unwrap() * 20.0).unwrap();
    candle_nn::loss::cross_entropy(&logits, &s.labels).unwrap()
}

#[test]
fn one_step_changes_every_encoder_weight_and_the_loss_falls() {
    let s = setup();
    let named = s.encoder.named_vars();
    assert!(
        named.len() >= 100,
        "all-MiniLM-L6-v2 has over 100 weight tensors, got {}",
        named.len()
    );

    // Every weight gets a non-zero gradient.
    let grads = loss(&s).backward().unwrap();
    for (name, var) in &named {
        let g =
            grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient reaches `{name}`"));
        let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(norm > 0.0, "gradient of `{name}` is zero");
    }

    // The training path looks up only the rows a batch uses, and gives the same embeddings.
    let ids: Vec<&[u32]> = s.ids.iter().map(Vec::as_slice).collect();
    let dense = s.encoder.forward(&ids).unwrap().to_vec2::<f32>().unwrap();
    let (sparse, rows) = s.encoder.forward_rows(&ids, None).unwrap();
    for (a, b) in dense.iter().zip(sparse.to_vec2::<f32>().unwrap()) {
        assert!(common::cosine(a, &b) > 0.99999);
    }
    // The reviews vary in length, so that batch ran as several passes, put back in order.
    let lengths: Vec<usize> = s.ids.iter().map(Vec::len).collect();
    assert!(length_groups(&lengths, PASS_OVERHEAD_TOKENS).len() > 1, "{lengths:?}");
    let distinct: std::collections::BTreeSet<u32> = s.ids.iter().flatten().copied().collect();
    assert_eq!(rows.ids.len(), distinct.len(), "the batch's distinct tokens, padding left out");

    // One step of the optimiser fine-tuning uses, without weight decay, moves every tensor.
    let before: Vec<Tensor> = named.iter().map(|(_, v)| v.as_tensor().copy().unwrap()).collect();
    let mut vars = s.encoder.dense_vars();
    assert_eq!(vars.len() + 1, named.len(), "all but the word table are dense");
    vars.push(s.head.clone());
    let mut opt = Optimiser::new(vars, s.encoder.word_table().clone(), 0.0, 1.0).unwrap();
    let step = |opt: &mut Optimiser| -> f32 {
        let (pooled, rows) = s.encoder.forward_rows(&ids, None).unwrap();
        let loss = sparse_loss(&s, &pooled);
        opt.step(&loss, &rows, 2e-5).unwrap();
        loss.to_scalar::<f32>().unwrap()
    };
    let first_value = step(&mut opt);
    for ((name, var), old) in named.iter().zip(&before) {
        let moved = (var.as_tensor() - old).unwrap().abs().unwrap().max_all().unwrap();
        assert!(moved.to_scalar::<f32>().unwrap() > 0.0, "`{name}` did not change after a step");
    }
    // Word rows no text uses stay as they were.
    let table = s.encoder.word_table().as_tensor();
    let word = named.iter().position(|(n, _)| n.ends_with("word_embeddings.weight")).unwrap();
    let unused = (0..30522u32).find(|id| !distinct.contains(id) && *id != 0).unwrap();
    let row = |t: &Tensor| t.get(unused as usize).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(row(table), row(&before[word]), "row {unused} is in no text");

    for _ in 0..4 {
        step(&mut opt);
    }
    let last = loss(&s).to_scalar::<f32>().unwrap();
    assert!(last < first_value * 0.9, "loss went from {first_value} to {last}");
}

fn sparse_loss(s: &Setup, pooled: &Tensor) -> Tensor {
    let logits = (pooled.matmul(s.head.as_tensor()).unwrap() * 20.0).unwrap();
    candle_nn::loss::cross_entropy(&logits, &s.labels).unwrap()
}

#[test]
fn exported_folder_loads_back_with_the_same_embeddings() {
    let s = setup();
    let ids: Vec<&[u32]> = s.ids.iter().map(Vec::as_slice).collect();
    let mut opt =
        AdamW::new(s.encoder.vars(), ParamsAdamW { lr: 1e-4, ..Default::default() }).unwrap();
    opt.backward_step(&loss(&s)).unwrap();
    let trained =
        s.encoder.forward(&ids).unwrap().to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let files = ModelFiles::resolve(&common::default_source()).unwrap();
    s.encoder.export(&files, dir.path()).unwrap();
    for file in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(dir.path().join(file).is_file(), "export lacks {file}");
    }
    // Every tensor of the base checkpoint is there (the unused pooler too), so no loader
    // initialises anything at random.
    let names = |path: &std::path::Path| -> std::collections::BTreeSet<String> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
        tensors.into_keys().map(|n| n.trim_start_matches("bert.").to_string()).collect()
    };
    let exported = names(&dir.path().join("model.safetensors"));
    assert!(exported.contains("pooler.dense.weight"), "{exported:?}");
    assert_eq!(exported, names(&files.weights));
    let spec = ModelSpec::parse(dir.path().to_str().unwrap()).unwrap();
    let reloaded = Embedder::from_source(&ModelSource::new(spec).unwrap()).unwrap();
    let (texts, _) = sample();
    let again = reloaded.embed(&texts).unwrap();
    let base = common::embedder().embed(&texts).unwrap();
    for (i, row) in trained.iter().enumerate() {
        assert!(common::cosine(again.row(i), row) > 0.9999, "text {i} differs after reload");
    }
    let moved =
        (0..texts.len()).map(|i| common::cosine(again.row(i), base.row(i))).fold(1.0, f64::min);
    assert!(moved < 0.99999, "the exported model is the fine-tuned one, not the base ({moved})");
}

/// Fine-tunes the model on six texts of each class of the sample and validates on the other
/// two of each; returns the run with the validation token ids and labels.
fn finetune_six_two(
    config: &habitlens::finetune::FinetuneConfig,
) -> (habitlens::finetune::Finetuned, Vec<Vec<u32>>, Vec<u32>) {
    use habitlens::finetune::Targets;
    let (texts, labels) = sample();
    let ids = token_ids(&texts);
    let pick = |keep: &dyn Fn(usize) -> bool| -> (Vec<Vec<u32>>, Vec<u32>) {
        (0..texts.len()).filter(|&i| keep(i % 8)).map(|i| (ids[i].clone(), labels[i])).unzip()
    };
    let (train_ids, train_y) = pick(&|k| k < 6);
    let (val_ids, val_y) = pick(&|k| k >= 6);
    let files = ModelFiles::resolve(&common::default_source()).unwrap();
    let tuned = TrainableEncoder::load(&files, &Device::Cpu)
        .unwrap()
        .finetune(
            (&train_ids, &Targets::Single(train_y)),
            (&val_ids, &Targets::Single(val_y.clone())),
            2,
            config,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
    (tuned, val_ids, val_y)
}

#[test]
fn finetune_loop_lowers_validation_loss_and_is_reproducible() {
    use habitlens::finetune::FinetuneConfig;
    let config =
        FinetuneConfig { epochs: 3, lr: 1e-4, batch_size: 4, patience: 3, ..Default::default() };
    let run = || finetune_six_two(&config).0;
    let a = run();
    assert_eq!(a.epochs.len(), 3);
    assert!(a.epochs[2].train_loss < a.epochs[0].train_loss, "{:?}", a.epochs);
    // The kept epoch validates best; epoch 0 is the probe on the unchanged encoder.
    let probe = a.probe_val_loss.expect("a probe with validation has a validation loss");
    let val = |e: &habitlens::finetune::EpochReport| e.val_loss.expect("validated");
    let best = a.epochs.iter().map(val).fold(probe, f64::min);
    let kept = if a.best_epoch == 0 { probe } else { val(&a.epochs[a.best_epoch - 1]) };
    assert_eq!(kept, best, "kept epoch {} of {:?}", a.best_epoch, a.epochs);
    assert!(probe.is_finite() && probe > 0.0, "{probe}");
    assert!(a.epochs.iter().all(|e| e.steps == 3), "12 texts in batches of 4: {:?}", a.epochs);
    let b = run();
    assert_eq!(a.head_weight, b.head_weight, "the same seed gives the same head");
    let losses = |r: &habitlens::finetune::Finetuned| -> Vec<(f64, Option<f64>)> {
        r.epochs.iter().map(|e| (e.train_loss, e.val_loss)).collect()
    };
    assert_eq!(losses(&a), losses(&b), "and the same losses");
}

#[test]
fn selecting_by_score_keeps_the_most_accurate_epoch_and_scores_it_truly() {
    use habitlens::finetune::{FinetuneConfig, Selection};
    let config = FinetuneConfig {
        epochs: 3,
        lr: 1e-4,
        batch_size: 4,
        patience: 3,
        select_by: Selection::Score,
        ..Default::default()
    };
    let (tuned, val_ids, val_y) = finetune_six_two(&config);
    // (score, loss) of the probe (epoch 0) and of each epoch.
    let mut figures = vec![(tuned.probe_val_score.unwrap(), tuned.probe_val_loss.unwrap())];
    figures.extend(tuned.epochs.iter().map(|e| (e.val_score.unwrap(), e.val_loss.unwrap())));
    assert!(figures.iter().all(|&(s, _)| (0.0..=1.0).contains(&s)), "{figures:?}");
    // The highest score wins; among equal scores, the lowest loss.
    let best = (0..figures.len())
        .max_by(|&a, &b| {
            let (fa, fb) = (figures[a], figures[b]);
            fa.0.total_cmp(&fb.0).then(fb.1.total_cmp(&fa.1))
        })
        .unwrap();
    assert_eq!(tuned.best_epoch, best, "{figures:?}");
    // On this sample the lowest loss is elsewhere, so selecting by loss would fail the above.
    let lowest_loss =
        (0..figures.len()).min_by(|&a, &b| figures[a].1.total_cmp(&figures[b].1)).unwrap();
    assert_ne!(lowest_loss, best, "the sample no longer tells the two selections apart");
    // The kept epoch's score is the accuracy of the kept encoder and head on the validation
    // texts.
    let x = tuned.encoder.embed(&val_ids).unwrap();
    let correct = (0..val_ids.len())
        .filter(|&i| {
            let row = &x[i * 384..(i + 1) * 384];
            let logit = |c: usize| -> f32 {
                let w = &tuned.head_weight[c * 384..(c + 1) * 384];
                row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + tuned.head_bias[c]
            };
            u32::from(logit(1) > logit(0)) == val_y[i]
        })
        .count();
    let accuracy = correct as f64 / val_ids.len() as f64;
    assert!((figures[best].0 - accuracy).abs() < 1e-12, "{} vs {accuracy}", figures[best].0);
}

#[test]
fn contrastive_stage_lowers_its_loss_and_refuses_multi_label() {
    use habitlens::finetune::{FinetuneConfig, Targets};
    let (texts, labels) = sample();
    let ids = token_ids(&texts);
    let files = ModelFiles::resolve(&common::default_source()).unwrap();
    let config = FinetuneConfig {
        epochs: 1,
        lr: 1e-4,
        batch_size: 8,
        contrastive_epochs: 3,
        warmup_fraction: 0.0,
        ..Default::default()
    };
    let (train, val) = (&ids[..], &ids[..4]);
    let tuned = TrainableEncoder::load(&files, &Device::Cpu)
        .unwrap()
        .finetune(
            (train, &Targets::Single(labels.clone())),
            (val, &Targets::Single(labels[..4].to_vec())),
            2,
            &config,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
    let losses = &tuned.contrastive_losses;
    assert_eq!(losses.len(), 3);
    assert!(losses[2] < losses[0], "contrastive loss per epoch: {losses:?}");

    let multi = |n: usize| {
        Targets::Multi(labels[..n].iter().flat_map(|&l| [l as f32, 1.0 - l as f32]).collect())
    };
    let refused = TrainableEncoder::load(&files, &Device::Cpu).unwrap().finetune(
        (train, &multi(16)),
        (val, &multi(4)),
        2,
        &config,
        &mut |_| {},
        &mut |_| {},
    );
    let message = format!("{:?}", refused.err().expect("multi-label targets are refused"));
    assert!(message.contains("single-label"), "{message}");
}

#[test]
fn a_run_that_only_gets_worse_keeps_the_probe_and_the_encoder_it_started_from() {
    use habitlens::finetune::{FinetuneConfig, Targets};
    let (texts, labels) = sample();
    let ids = token_ids(&texts);
    let files = ModelFiles::resolve(&common::default_source()).unwrap();
    let encoder = TrainableEncoder::load(&files, &Device::Cpu).unwrap();
    let before = encoder.embed(&ids[..4]).unwrap();
    // A learning rate this large wrecks the encoder in one epoch (validated on texts it does
    // not train on: it could learn those by heart).
    let config = FinetuneConfig {
        epochs: 1,
        lr: 0.5,
        batch_size: 8,
        warmup_fraction: 0.0,
        ..Default::default()
    };
    let tuned = encoder
        .finetune(
            (&ids[4..], &Targets::Single(labels[4..].to_vec())),
            (&ids[..4], &Targets::Single(labels[..4].to_vec())),
            2,
            &config,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
    let wrecked = tuned.epochs[0].val_loss.expect("validated");
    let probe = tuned.probe_val_loss.expect("validated");
    // Worse than the probe, or not a number at all.
    assert!(wrecked >= probe || wrecked.is_nan(), "{wrecked} vs {probe}");
    assert_eq!(tuned.best_epoch, 0, "epoch 0, the probe, is kept");
    assert_eq!(tuned.encoder.embed(&ids[..4]).unwrap(), before, "the encoder is put back");
}
