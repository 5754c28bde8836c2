//! Finding a model's files: a local folder, or a Hub id resolved through `hf-hub` and its cache.
//!
//! A Hub id is looked up in the standard Hugging Face cache first (`HF_HOME`, default
//! `~/.cache/huggingface`), so a cached model needs no network; missing files are downloaded
//! into that cache.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use super::ModelError;

/// The model used when none is given.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Where a model comes from, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A Hugging Face Hub repository and a revision (branch, tag or commit).
    Hub {
        /// Repository id, `org/name`.
        id: String,
        /// Branch, tag or commit; `main` when not given.
        revision: String,
    },
    /// A folder holding the model files.
    Local(PathBuf),
}

impl ModelSpec {
    /// Parses `org/name`, `org/name@revision` or a path to an existing folder.
    ///
    /// # Errors
    /// Fails when the text is neither an existing folder nor shaped like a Hub id.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let path = Path::new(text);
        if path.is_dir() {
            return Ok(Self::Local(path.to_path_buf()));
        }
        let (id, revision) = match text.split_once('@') {
            Some((id, rev)) => (id, rev),
            None => (text, "main"),
        };
        let looks_like_id = id.split('/').count() == 2
            && id.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
            && !revision.is_empty()
            && !text.starts_with('.')
            && !text.starts_with('/');
        if looks_like_id {
            Ok(Self::Hub { id: id.to_string(), revision: revision.to_string() })
        } else {
            Err(ModelError::BadSpec { spec: text.to_string() })
        }
    }

    /// A short name for logs and reports: the Hub id or the folder path.
    pub fn name(&self) -> String {
        match self {
            Self::Hub { id, .. } => id.clone(),
            Self::Local(path) => path.display().to_string(),
        }
    }
}

/// Resolves the files of one model, from a folder or from the Hub cache.
pub struct ModelSource {
    spec: ModelSpec,
    hub: Option<(Cache, ApiRepo, Repo)>,
}

impl ModelSource {
    /// Prepares to resolve files of `spec`; touches no network.
    ///
    /// # Errors
    /// Fails when the Hub client cannot be built (for example an unreadable token file).
    pub fn new(spec: ModelSpec) -> Result<Self, ModelError> {
        Self::build(spec, ApiBuilder::from_env(), Cache::from_env())
    }

    /// Like [`ModelSource::new`], with the cache under `hf_home` instead of `HF_HOME`.
    ///
    /// # Errors
    /// Fails when the Hub client cannot be built.
    pub fn with_hf_home(spec: ModelSpec, hf_home: &Path) -> Result<Self, ModelError> {
        let cache = Cache::new(hf_home.join("hub"));
        Self::build(spec, ApiBuilder::from_cache(cache.clone()), cache)
    }

    fn build(spec: ModelSpec, builder: ApiBuilder, cache: Cache) -> Result<Self, ModelError> {
        let hub = match &spec {
            ModelSpec::Local(_) => None,
            ModelSpec::Hub { id, revision } => {
                let repo = Repo::with_revision(id.clone(), RepoType::Model, revision.clone());
                let api = builder
                    .with_progress(false)
                    .build()
                    .map_err(|source| ModelError::Hub { model: id.clone(), source })?;
                Some((cache, api.repo(repo.clone()), repo))
            }
        };
        Ok(Self { spec, hub })
    }

    /// The model as it was asked for.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Returns the path of a file the model must have.
    ///
    /// # Errors
    /// Fails when the file is absent from the folder, or cannot be found in the cache nor
    /// downloaded; the error names the file, the model and what to do.
    pub fn required(&self, file: &str) -> Result<PathBuf, ModelError> {
        self.optional(file)?.ok_or_else(|| match &self.spec {
            ModelSpec::Local(dir) => {
                let hint = if dir.join(crate::heads::META_FILE).is_file() {
                    "\nhint: it is a head folder, trained on frozen embeddings: pass it as \
                     `--head` (to `classify`, `evaluate` or `analyze`), and `--model` the model \
                     it was trained on"
                        .to_string()
                } else {
                    String::new()
                };
                ModelError::MissingFile { file: file.to_string(), dir: dir.clone(), hint }
            }
            ModelSpec::Hub { id, revision } => ModelError::NotOnHub {
                file: file.to_string(),
                model: id.clone(),
                revision: revision.clone(),
            },
        })
    }

    /// Returns the path of a file the model may have, or `None` when it does not have it.
    ///
    /// # Errors
    /// Fails when the Hub cannot be reached and the file is not cached: absence cannot be told
    /// apart from a network failure then.
    pub fn optional(&self, file: &str) -> Result<Option<PathBuf>, ModelError> {
        match (&self.spec, &self.hub) {
            (ModelSpec::Local(dir), _) => {
                let path = dir.join(file);
                Ok(path.is_file().then_some(path))
            }
            (ModelSpec::Hub { id, revision }, Some((cache, api, repo))) => {
                if let Some(path) = cache_lookup(cache, repo, file) {
                    return Ok(Some(path));
                }
                tracing::debug!(file, model = %id, "not in the cache; downloading");
                let started = std::time::Instant::now();
                match api.get(file) {
                    Ok(path) => {
                        tracing::debug!(file, elapsed = ?started.elapsed(), "downloaded");
                        Ok(Some(path))
                    }
                    Err(err) if is_not_found(&err) => Ok(None),
                    Err(source) => Err(ModelError::Fetch {
                        file: file.to_string(),
                        model: id.clone(),
                        revision: revision.clone(),
                        source,
                    }),
                }
            }
            (ModelSpec::Hub { .. }, None) => unreachable!("a Hub spec always has a Hub client"),
        }
    }

    /// The revision the files came from: the commit of the cached snapshot for a Hub model,
    /// `local` for a folder.
    pub fn resolved_revision(&self, any_file: &Path) -> String {
        match &self.spec {
            ModelSpec::Local(_) => "local".to_string(),
            ModelSpec::Hub { revision, .. } => any_file
                .ancestors()
                .find(|p| p.parent().and_then(Path::file_name).is_some_and(|n| n == "snapshots"))
                .and_then(Path::file_name)
                .map_or_else(|| revision.clone(), |n| n.to_string_lossy().into_owned()),
        }
    }
}

/// Looks a file up in the cache through `hf-hub`, then tolerates two layouts `hf-hub` misses: a
/// `refs` file ending in a new line (written by some tools), and a revision that is a commit.
fn cache_lookup(cache: &Cache, repo: &Repo, file: &str) -> Option<PathBuf> {
    if let Some(path) = cache.repo(repo.clone()).get(file) {
        return Some(path);
    }
    let repo_dir = cache.path().join(repo.folder_name());
    let revision = repo.revision();
    let commit = std::fs::read_to_string(repo_dir.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let path = repo_dir.join("snapshots").join(commit).join(file);
    path.is_file().then_some(path)
}

fn is_not_found(err: &ApiError) -> bool {
    matches!(err, ApiError::RequestError(e) if matches!(**e, ureq::Error::Status(404, _)))
}
