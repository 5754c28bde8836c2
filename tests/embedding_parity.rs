//! The encoder matches sentence-transformers on the golden file in `../shared/golden`
//! (all-MiniLM-L6-v2 on PyTorch: mean pooling, L2 normalisation, max_seq_length 256; see that
//! folder's README for how it was produced).

mod common;

use habitlens::embed::Embedder;
use habitlens::model::{ModelFiles, ModelSpec, Pooling};

#[derive(serde::Deserialize)]
struct Golden {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

fn load_default() -> Embedder {
    Embedder::from_source(&common::default_source())
        .expect("all-MiniLM-L6-v2 is in the Hugging Face cache (HF_HOME or ../shared/hf-home)")
}

#[test]
fn every_golden_row_matches_sentence_transformers() {
    let golden_path = common::shared().join("golden/minilm-embeddings.jsonl");
    let golden: Vec<Golden> = std::fs::read_to_string(&golden_path)
        .expect("../shared/golden/minilm-embeddings.jsonl is readable")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(golden.len() >= 30, "the golden file has {} rows", golden.len());

    let embedder = load_default();
    let info = embedder.info();
    assert_eq!(
        (info.dimension, info.pooling, info.normalize, info.max_seq_length),
        (384, Pooling::Mean, true, 256)
    );
    // Small batches mix short and long texts differently from one big batch: results must not
    // depend on padding.
    let embedder = embedder.with_batch_size(4);
    let texts: Vec<&str> = golden.iter().map(|g| g.text.as_str()).collect();
    let out = embedder.embed(&texts).unwrap();

    let mut worst = 1.0f64;
    for (i, g) in golden.iter().enumerate() {
        assert_eq!(out.token_counts[i], g.tokens, "token count of row {i} ({:?})", g.text);
        let cos = common::cosine(out.row(i), &g.embedding);
        assert!(cos >= 0.9999, "row {i} ({:?}): cosine {cos}", g.text);
        worst = worst.min(cos);
    }
    let long = golden.iter().filter(|g| g.tokens == 256).count();
    assert_eq!(out.truncated, long, "texts over 256 tokens are counted as truncated");
    eprintln!("worst cosine over {} rows: {worst:.7}", golden.len());
}

#[test]
fn model_resolves_from_the_cache_with_its_revision() {
    let source = common::default_source();
    let files = ModelFiles::resolve(&source).unwrap();
    assert_eq!(files.info.id, "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(
        files.info.revision.len(),
        40,
        "revision is the snapshot commit: {}",
        files.info.revision
    );
}

#[test]
fn a_local_folder_works_like_the_hub_id() {
    let source = common::default_source();
    let files = ModelFiles::resolve(&source).unwrap();
    let dir = files.weights.parent().unwrap();
    let local = ModelSpec::parse(dir.to_str().unwrap()).unwrap();
    assert!(matches!(local, ModelSpec::Local(_)));
    let a = Embedder::load(&local).unwrap().embed(&["a sturdy bag"]).unwrap();
    let b = load_default().embed(&["a sturdy bag"]).unwrap();
    assert!(common::cosine(a.row(0), b.row(0)) > 0.99999);
}

#[test]
fn candle_engine_matches_the_packed_engine() {
    use habitlens::embed::Engine;
    let files = ModelFiles::resolve(&common::default_source()).unwrap();
    let device = candle_core::Device::Cpu;
    let candle = Embedder::from_files_with(&files, &device, Engine::Candle).unwrap();
    let texts = [
        "",
        "Arrived fast and fits well",
        "The zipper broke after a week and support never answered my emails about it.",
        "Très bon produit 👍",
    ];
    let a = candle.with_batch_size(3).embed(&texts).unwrap();
    let b = common::embedder().embed(&texts).unwrap();
    for i in 0..texts.len() {
        let cos = common::cosine(a.row(i), b.row(i));
        assert!(cos >= 0.99999, "text {i}: cosine {cos}");
    }
}
