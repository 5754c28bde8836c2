//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies folder `from` to `to`, subfolders included (following links, as in the Hub cache's
/// snapshots).
pub fn copy_folder(from: &Path, to: &Path) {
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

/// The shared data folder beside the checkout (`../shared`).
pub fn shared() -> PathBuf {
    repo_root().join("../shared")
}

/// The Hugging Face cache the tests use: `HF_HOME` when set, else `../shared/hf-home` when it
/// exists, else the standard `~/.cache/huggingface` (where hf-hub downloads the model).
pub fn hf_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home);
    }
    let shared_cache = shared().join("hf-home");
    if shared_cache.is_dir() {
        return shared_cache;
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/huggingface")
}

/// A `habitlens` command with `HF_HOME` set as the tests expect and no progress bars.
/// The binary as a plain process, set up as [`habitlens`] is, for tests that hand it pipes.
pub fn habitlens_process() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("habitlens"));
    cmd.env("HF_HOME", hf_home()).env_remove("HABITLENS_MODEL").env_remove("RUST_LOG");
    cmd
}

pub fn habitlens() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("habitlens").expect("the binary is built");
    cmd.env("HF_HOME", hf_home()).env_remove("HABITLENS_MODEL").env_remove("RUST_LOG");
    cmd
}

/// Writes `contents` to `name` inside `dir` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("the temporary folder is writable");
    path
}

/// Reads a CSV file into its header and rows.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).expect("the CSV output exists");
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
    (header, rows)
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The default model from the test cache, without touching the environment.
pub fn default_source() -> habitlens::model::ModelSource {
    let spec = habitlens::model::ModelSpec::parse(habitlens::model::DEFAULT_MODEL).unwrap();
    habitlens::model::ModelSource::with_hf_home(spec, &hf_home()).unwrap()
}

/// The default embedder, loaded once per test binary.
pub fn embedder() -> &'static habitlens::embed::Embedder {
    static EMBEDDER: std::sync::OnceLock<habitlens::embed::Embedder> = std::sync::OnceLock::new();
    EMBEDDER.get_or_init(|| {
        habitlens::embed::Embedder::from_source(&default_source())
            .expect("all-MiniLM-L6-v2 is in the Hugging Face cache (HF_HOME or ../shared/hf-home)")
    })
}
