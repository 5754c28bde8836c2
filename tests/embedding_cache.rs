//! The embedding cache on a local model folder: a folder whose weights change in place keeps
//! its path and the revision `local`, and must not be served the old folder's embeddings.

mod common;

use std::path::Path;

use candle_core::Device;
use habitlens::embed::Embedder;
use habitlens::heads::cache::{EmbeddingCache, embed_cached};
use habitlens::model::{ModelFiles, ModelSource, ModelSpec};

/// Copies a model snapshot (following the Hub cache's links) into `to`.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_folder(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn load(dir: &Path) -> Embedder {
    let spec = ModelSpec::parse(dir.to_str().unwrap()).unwrap();
    Embedder::from_source(&ModelSource::new(spec).unwrap()).unwrap()
}

#[test]
fn a_local_folder_trained_again_in_place_is_embedded_again() {
    let base = ModelFiles::resolve(&common::default_source()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_folder(base.weights.parent().unwrap(), &model);
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

    // New weights in the same folder, as a second training run into it writes them.
    let weights = model.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let name = "encoder.layer.0.attention.output.dense.weight";
    let scaled = (&tensors[name] * 1.5).unwrap();
    tensors.insert(name.to_string(), scaled);
    let fresh = dir.path().join("new.safetensors");
    candle_core::safetensors::save(&tensors, &fresh).unwrap();
    std::fs::rename(&fresh, &weights).unwrap();

    let embedder = load(&model);
    let second = embed_cached(&embedder, &texts, Some(&cache), &mut |_| {}).unwrap();
    assert!(!second.from_cache, "changed weights are not served the old embeddings");
    let uncached = embedder.embed(&texts).unwrap();
    assert_eq!(second.data, uncached.as_flat(), "what is returned comes from the new weights");
    let moved = first.data.iter().zip(&second.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 1e-3, "the change of weights moved the embeddings (by {moved})");
}
