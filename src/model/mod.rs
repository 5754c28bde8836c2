//! Loading a sentence-transformers model: where its files are, what it says about itself, and
//! the BERT encoder that runs it.
//!
//! A sentence-transformers folder describes its pipeline in `modules.json` (transformer, pooling,
//! optional normalisation), its pooling in `1_Pooling/config.json` and its sequence limit in
//! `sentence_bert_config.json`. [`ModelFiles::resolve`] reads all of it into a [`ModelInfo`].

mod bert;
mod kernels;
mod packed;
mod pooling;
mod source;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use bert::{Activation, BertConfig, BertModel, Dropout, Pass};
pub use packed::PackedBert;
pub use pooling::{Pooling, l2_normalize, l2_normalize_in_place};
pub use source::{DEFAULT_MODEL, ModelSource, ModelSpec};

/// What went wrong while finding or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `--model` is neither a folder nor a Hub id.
    #[error(
        "`{spec}` is neither an existing folder nor a Hub id like `org/name` or `org/name@revision`"
    )]
    BadSpec {
        /// The text given.
        spec: String,
    },
    /// The Hub client could not be set up.
    #[error("cannot set up the Hugging Face Hub client for `{model}`")]
    Hub {
        /// Model id.
        model: String,
        /// Cause.
        #[source]
        source: hf_hub::api::sync::ApiError,
    },
    /// A file could not be downloaded and is not in the cache.
    #[error(
        "cannot fetch `{file}` of model `{model}` (revision `{revision}`): it is not in the \
         Hugging Face cache and the download failed\n\
         hint: point `HF_HOME` at a Hugging Face cache that holds this model, or pass `--model` \
         a local folder with the model files"
    )]
    Fetch {
        /// File name inside the repository.
        file: String,
        /// Model id.
        model: String,
        /// Revision asked for.
        revision: String,
        /// Cause.
        #[source]
        source: hf_hub::api::sync::ApiError,
    },
    /// The Hub says the repository has no such file.
    #[error("model `{model}` (revision `{revision}`) has no file `{file}`")]
    NotOnHub {
        /// File name.
        file: String,
        /// Model id.
        model: String,
        /// Revision asked for.
        revision: String,
    },
    /// A local model folder lacks a file.
    #[error("model folder `{dir}` has no `{file}`{hint}")]
    MissingFile {
        /// File name.
        file: String,
        /// The folder.
        dir: PathBuf,
        /// What to do instead, when the folder is recognisably something else (a head), or
        /// empty.
        hint: String,
    },
    /// A configuration file cannot be read or parsed.
    #[error("cannot read `{path}`")]
    Config {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The architecture or a module of the pipeline is not one we can run.
    #[error(
        "unsupported model: {what}\nhint: habitlens runs BERT-family sentence-transformers models such as `{DEFAULT_MODEL}`"
    )]
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// The tokenizer file cannot be loaded.
    #[error("cannot load tokenizer `{path}`")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The weights cannot be loaded into the encoder.
    #[error("cannot load weights `{path}`")]
    Weights {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: candle_core::Error,
    },
}

/// What a model says about itself, as recorded in reports and trained heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Hub id or folder path.
    pub id: String,
    /// Resolved commit for Hub models, `local` for folders.
    pub revision: String,
    /// Embedding dimension.
    pub dimension: usize,
    /// Pooling strategy.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// Longest input in tokens, special tokens included; longer texts are truncated.
    pub max_seq_length: usize,
}

/// Paths of every file needed to run a model, and what they say.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Parsed `config.json`.
    pub config: BertConfig,
    /// `config.json`.
    pub config_path: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// Description of the model.
    pub info: ModelInfo,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ModelError::Config { path: path.to_path_buf(), source: Box::new(e) })?;
    serde_json::from_str(&text)
        .map_err(|e| ModelError::Config { path: path.to_path_buf(), source: Box::new(e) })
}

impl ModelFiles {
    /// Finds and reads every file of a sentence-transformers model.
    ///
    /// Without `modules.json` the model is treated as a bare transformer with mean pooling and no
    /// normalisation, as sentence-transformers does.
    ///
    /// # Errors
    /// Fails when a required file cannot be found, a configuration cannot be parsed, or the
    /// architecture or a pipeline module is not supported.
    pub fn resolve(source: &ModelSource) -> Result<Self, ModelError> {
        let config_path = source.required("config.json")?;
        let raw: serde_json::Value = read_json(&config_path)?;
        let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("unknown");
        if model_type != "bert" {
            return Err(ModelError::Unsupported {
                what: format!("architecture `{model_type}` (from `config.json`)"),
            });
        }
        let config: BertConfig = serde_json::from_value(raw)
            .map_err(|e| ModelError::Config { path: config_path.clone(), source: Box::new(e) })?;
        if let Some(kind) = config.position_embedding_type.as_deref().filter(|k| *k != "absolute") {
            return Err(ModelError::Unsupported {
                what: format!("position embedding type `{kind}`"),
            });
        }
        if Activation::from_config(&config.hidden_act).is_none() {
            return Err(ModelError::Unsupported {
                what: format!("activation `{}`", config.hidden_act),
            });
        }

        let mut pooling = Pooling::Mean;
        let mut normalize = false;
        if let Some(modules_path) = source.optional("modules.json")? {
            let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
            for module in modules {
                match module.kind.rsplit('.').next().unwrap_or_default() {
                    "Transformer" => {}
                    "Pooling" => {
                        let file = format!("{}/config.json", module.path.trim_end_matches('/'));
                        let cfg_path = source.required(file.trim_start_matches('/'))?;
                        let cfg: serde_json::Value = read_json(&cfg_path)?;
                        pooling =
                            Pooling::from_config(&cfg).map_err(|what| ModelError::Unsupported {
                                what: format!("{what} in `{}`", cfg_path.display()),
                            })?;
                    }
                    "Normalize" => normalize = true,
                    _ => {
                        return Err(ModelError::Unsupported {
                            what: format!("pipeline module `{}` in `modules.json`", module.kind),
                        });
                    }
                }
            }
        }

        let max_seq_length = match source.optional("sentence_bert_config.json")? {
            Some(path) => read_json::<SentenceBertConfig>(&path)?.max_seq_length,
            None => None,
        }
        .unwrap_or(config.max_position_embeddings)
        .min(config.max_position_embeddings);

        let tokenizer = source.required("tokenizer.json")?;
        let weights = source.required("model.safetensors")?;
        let info = ModelInfo {
            id: source.spec().name(),
            revision: source.resolved_revision(&weights),
            dimension: config.hidden_size,
            pooling,
            normalize,
            max_seq_length,
        };
        tracing::debug!(
            model = %info.id,
            revision = %info.revision,
            dimension = info.dimension,
            pooling = ?info.pooling,
            normalize,
            max_seq_length,
            "model resolved"
        );
        Ok(Self { config, config_path, tokenizer, weights, info })
    }

    /// A SHA-256 digest (lower-case hex) of the configuration, tokenizer and weights files,
    /// which tells two versions of a local folder apart where its path and the revision
    /// `local` cannot. Reads every byte of the weights (about 0.3 s for all-MiniLM-L6-v2).
    ///
    /// # Errors
    /// Fails when one of the files cannot be read.
    pub fn content_digest(&self) -> std::io::Result<String> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for path in [&self.config_path, &self.tokenizer, &self.weights] {
            let mut file = std::fs::File::open(path)?;
            hasher.update(file.metadata()?.len().to_le_bytes());
            std::io::copy(&mut file, &mut hasher)?;
        }
        Ok(crate::heads::cache::hex(&hasher.finalize()))
    }
}

/// A batch of token-id sequences padded with id 0 to its longest: the ids and the attention
/// mask (1 for a token, 0 for padding), both batch × length row-major, and that length.
pub fn pad_batch(ids: &[&[u32]]) -> (Vec<u32>, Vec<f32>, usize) {
    let seq_len = ids.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut flat = vec![0u32; ids.len() * seq_len];
    let mut mask = vec![0f32; ids.len() * seq_len];
    for (row, text) in ids.iter().enumerate() {
        flat[row * seq_len..row * seq_len + text.len()].copy_from_slice(text);
        mask[row * seq_len..row * seq_len + text.len()].fill(1.0);
    }
    (flat, mask, seq_len)
}
