//! A local model folder trained again in place keeps its path and the revision `local`: the
//! embedding cache must not serve it the old folder's embeddings, and a head trained on the old
//! folder must refuse it.

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use habitlens::embed::Embedder;
use habitlens::heads::cache::{EmbeddingCache, embed_cached};
use habitlens::model::{ModelFiles, ModelSource, ModelSpec};

/// A copy of the default model in `dir/model`.
fn copied_model(dir: &Path) -> PathBuf {
    let base = ModelFiles::resolve(&common::default_source()).unwrap();
    let model = dir.join("model");
    common::copy_folder(base.weights.parent().unwrap(), &model);
    model
}

/// New weights in the folder, as a second training run into it writes them.
fn retrain_in_place(model: &Path) {
    let weights = model.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let name = "encoder.layer.0.attention.output.dense.weight";
    let scaled = (&tensors[name] * 1.5).unwrap();
    tensors.insert(name.to_string(), scaled);
    let fresh = model.with_extension("new.safetensors");
    candle_core::safetensors::save(&tensors, &fresh).unwrap();
    std::fs::rename(&fresh, &weights).unwrap();
}

fn load(dir: &Path) -> Embedder {
    let spec = ModelSpec::parse(dir.to_str().unwrap()).unwrap();
    Embedder::from_source(&ModelSource::new(spec).unwrap()).unwrap()
}

#[test]
fn a_local_folder_trained_again_in_place_is_embedded_again() {
    let dir = tempfile::tempdir().unwrap();
    let model = copied_model(dir.path());
    let cache = EmbeddingCache::new(dir.path().join("cache"));
    let texts = ["my card has not arrived yet", "how do I top up by bank transfer?"];

    let first = {
        let embedder = load(&model);
        assert_eq!(embedder.info().revision, "local");
        let first = embed_cached(&embedder, &texts, Some(&cache), &mut |_| {}).unwrap();
        assert!(!first.from_cache);
        let again = embed_cached(&embedder, &texts, Some(&cache), &mut |_| {}).unwrap();
        assert!(again.from_cache, "the unchanged folder is read from the cache");
        assert_eq!(again.data, first.data);
        first
    };

    retrain_in_place(&model);

    let embedder = load(&model);
    let second = embed_cached(&embedder, &texts, Some(&cache), &mut |_| {}).unwrap();
    assert!(!second.from_cache, "changed weights are not served the old embeddings");
    let uncached = embedder.embed(&texts).unwrap();
    assert_eq!(second.data, uncached.as_flat(), "what is returned comes from the new weights");
    let moved = first.data.iter().zip(&second.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 1e-3, "the change of weights moved the embeddings (by {moved})");
}

#[test]
fn a_head_trained_on_a_local_folder_refuses_it_once_retrained_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let model = copied_model(dir.path());
    let mut csv = String::from("text,label\n");
    for i in 0..6 {
        csv += &format!("my card {i} never arrived,card\nthe app crashes on screen {i},app\n");
    }
    let data = common::write(dir.path(), "train.csv", csv);
    let texts = common::write(dir.path(), "texts.txt", "where is my card\n");
    let head = dir.path().join("head");
    let labelled = dir.path().join("labelled.csv");
    let cache = dir.path().join("cache");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    common::habitlens()
        .args([
            "--quiet",
            "train",
            &path(&data),
            "--model",
            &path(&model),
            "--output",
            &path(&head),
        ])
        .args(["--cache-dir", &path(&cache), "--label-column", "label"])
        .assert()
        .success();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(head.join("head.json")).unwrap()).unwrap();
    let recorded = meta["base_model"]["content"].as_str().unwrap().to_string();
    assert_eq!(
        recorded,
        ModelFiles::resolve(&ModelSource::new(ModelSpec::parse(&path(&model)).unwrap()).unwrap())
            .unwrap()
            .content_digest()
            .unwrap()
    );
    let classify = || {
        let mut cmd = common::habitlens();
        cmd.args(["--quiet", "classify", &path(&texts), "--head", &path(&head)]).args([
            "--model",
            &path(&model),
            "--output",
            &path(&labelled),
        ]);
        cmd
    };
    classify().assert().success();
    std::fs::remove_file(&labelled).unwrap();

    retrain_in_place(&model);
    let out = classify().assert().code(2).get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("files digest") && stderr.contains("retrain the head"), "{stderr}");
    assert!(!labelled.exists(), "nothing is classified with the changed folder");
}
