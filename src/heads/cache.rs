//! An on-disk cache of the embeddings of a list of texts, so training a head again with other
//! settings does not embed the data again.
//!
//! One file per (model, revision, texts): `<dir>/embeddings/<key>.f32`, where the key is the
//! SHA-256 of the model id, revision, dimension, pooling, normalisation and sequence limit, of
//! the digest of the model's files when it is a local folder (whose revision is always `local`,
//! so a folder trained again in place gets new keys), and of every text in order
//! (length-prefixed). The file is an 8-byte magic `HLEMB001`, the row count
//! and the dimension as little-endian u64, then the float32 matrix. Files are written atomically;
//! one that is unreadable or of the wrong size is ignored (with a warning) and rewritten. The
//! folder is `--cache-dir`, else `HABITLENS_CACHE`, else `$XDG_CACHE_HOME/habitlens`, else
//! `~/.cache/habitlens`; deleting it is always safe.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::embed::{EmbedError, Embedder};
use crate::model::ModelInfo;
use crate::output::AtomicFile;

/// Environment variable naming the cache folder.
pub const ENV_CACHE: &str = "HABITLENS_CACHE";

const MAGIC: &[u8; 8] = b"HLEMB001";
const HEADER_LEN: usize = 24;

/// The embedding cache folder.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
}

/// Embeddings of a list of texts and where they came from.
#[derive(Debug, Clone)]
pub struct CachedEmbeddings {
    /// Rows × dimension, row-major, in text order.
    pub data: Vec<f32>,
    /// Whether they were read from the cache.
    pub from_cache: bool,
    /// Texts truncated at the model's limit (0 when read from the cache).
    pub truncated: usize,
}

impl EmbeddingCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default folder: `HABITLENS_CACHE`, else `$XDG_CACHE_HOME/habitlens`, else
    /// `~/.cache/habitlens`; `None` when no home folder is known.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        var(ENV_CACHE)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("habitlens")))
            .or_else(|| var("HOME").map(|d| d.join(".cache/habitlens")))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `texts` embedded by the model `info` describes; `content` is the digest of
    /// the model's files ([`crate::model::ModelFiles::content_digest`]), needed for a local
    /// folder.
    pub fn key<S: AsRef<str>>(info: &ModelInfo, content: Option<&str>, texts: &[S]) -> String {
        let mut h = Sha256::new();
        let model = format!(
            "{}\n{}\n{}\n{:?}\n{}\n{}\n{}\n",
            info.id,
            info.revision,
            info.dimension,
            info.pooling,
            info.normalize,
            info.max_seq_length,
            content.unwrap_or("")
        );
        h.update(model.as_bytes());
        for t in texts {
            let t = t.as_ref().as_bytes();
            h.update((t.len() as u64).to_le_bytes());
            h.update(t);
        }
        hex(&h.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join("embeddings").join(format!("{key}.f32"))
    }

    /// The cached matrix of `rows` × `dimension` under `key`, if present and whole.
    pub fn load(&self, key: &str, rows: usize, dimension: usize) -> Option<Vec<f32>> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        let expected = HEADER_LEN + rows * dimension * 4;
        let header_ok = bytes.len() == expected
            && &bytes[..8] == MAGIC
            && bytes[8..16] == (rows as u64).to_le_bytes()
            && bytes[16..24] == (dimension as u64).to_le_bytes();
        if !header_ok {
            tracing::warn!("ignoring the damaged embedding cache file `{}`", path.display());
            return None;
        }
        Some(
            bytes[HEADER_LEN..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    /// Stores a matrix under `key`, atomically.
    ///
    /// # Errors
    /// Fails when the file cannot be written.
    pub fn store(&self, key: &str, data: &[f32], dimension: usize) -> std::io::Result<()> {
        let path = self.path(key);
        let mut file = AtomicFile::create(&path).map_err(std::io::Error::other)?;
        file.write_all(MAGIC)?;
        file.write_all(&((data.len() / dimension.max(1)) as u64).to_le_bytes())?;
        file.write_all(&(dimension as u64).to_le_bytes())?;
        for x in data {
            file.write_all(&x.to_le_bytes())?;
        }
        file.commit().map_err(std::io::Error::other)
    }
}

/// Embeds `texts`, reading and filling `cache` when given; `progress` hears the number of texts
/// done (all at once on a cache hit).
///
/// A cache that cannot be written costs a warning, not the run.
///
/// # Errors
/// Fails when embedding fails.
pub fn embed_cached<S: AsRef<str> + Sync>(
    embedder: &Embedder,
    texts: &[S],
    cache: Option<&EmbeddingCache>,
    progress: &mut dyn FnMut(usize),
) -> Result<CachedEmbeddings, EmbedError> {
    let info = embedder.info();
    let key = cache.and_then(|cache| {
        // A local folder keeps its path and the revision `local` when its files change.
        let content = if info.revision == "local" {
            match embedder.content_digest() {
                Ok(digest) => Some(digest),
                Err(err) => {
                    tracing::warn!(
                        "cannot read the model files to key the embedding cache in `{}`: {err}; \
                         embedding without the cache",
                        cache.dir().display()
                    );
                    return None;
                }
            }
        } else {
            None
        };
        Some(EmbeddingCache::key(info, content, texts))
    });
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Some(data) = cache.load(key, texts.len(), info.dimension)
    {
        tracing::info!(rows = texts.len(), dir = %cache.dir().display(), "embeddings read from the cache");
        progress(texts.len());
        return Ok(CachedEmbeddings { data, from_cache: true, truncated: 0 });
    }
    let embedded = embedder.embed_with_progress(texts, progress)?;
    let data = embedded.as_flat().to_vec();
    if let (Some(cache), Some(key)) = (cache, &key) {
        match cache.store(key, &data, info.dimension) {
            Ok(()) => tracing::debug!(dir = %cache.dir().display(), "embeddings cached"),
            Err(err) => tracing::warn!(
                "cannot write the embedding cache in `{}`: {err}; the next run will embed again",
                cache.dir().display()
            ),
        }
    }
    Ok(CachedEmbeddings { data, from_cache: false, truncated: embedded.truncated })
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pooling;

    fn info(revision: &str) -> ModelInfo {
        ModelInfo {
            id: "org/m".into(),
            revision: revision.into(),
            dimension: 2,
            pooling: Pooling::Mean,
            normalize: true,
            max_seq_length: 8,
        }
    }

    #[test]
    fn key_depends_on_model_revision_and_every_text() {
        let a = EmbeddingCache::key(&info("r1"), None, &["ab", "c"]);
        assert_eq!(a, EmbeddingCache::key(&info("r1"), None, &["ab", "c"]));
        assert_ne!(a, EmbeddingCache::key(&info("r2"), None, &["ab", "c"]));
        assert_ne!(a, EmbeddingCache::key(&info("r1"), Some("d"), &["ab", "c"]), "file digest");
        assert_ne!(
            a,
            EmbeddingCache::key(&info("r1"), None, &["a", "bc"]),
            "texts are length-prefixed"
        );
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn stored_matrix_round_trips_and_a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::new(dir.path());
        let data = [1.0, -2.5, 3.0, 0.25];
        cache.store("k", &data, 2).unwrap();
        assert_eq!(cache.load("k", 2, 2).unwrap(), data);
        assert!(cache.load("k", 3, 2).is_none(), "wrong row count");
        assert!(cache.load("missing", 2, 2).is_none());
        std::fs::write(cache.path("k"), b"HLEMB001short").unwrap();
        assert!(cache.load("k", 2, 2).is_none());
    }
}
