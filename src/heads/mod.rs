//! Classifier heads: small models trained on frozen sentence embeddings to predict the labels
//! users attach to their own texts (sentiment, intents, needs...).
//!
//! The parts, in the order a head goes through them:
//! 1. [`labels`] reads label cells and checks the labelled rows, listing every row it skips;
//! 2. [`cache`] embeds the texts once per model and data, so training again is quick;
//! 3. [`split`] cuts a seeded, stratified validation split;
//! 4. [`train`] fits a [`crate::mlp::Mlp`] (softmax or sigmoid), tunes per-label thresholds of
//!    a multi-label head on the validation rows and measures it;
//! 5. [`Head`] saves and loads the head folder (`head.safetensors` + `head.json`, described by
//!    [`format::HeadMeta`]) and turns embeddings into probabilities and labels;
//! 6. [`crossing`] counts, for `analyze`, how head labels fall within other labels.

pub mod cache;
pub mod crossing;
pub mod format;
pub mod labels;
pub mod split;
pub mod train;

use std::path::{Path, PathBuf};

use crate::embed::Embedder;
use crate::mlp::{Mlp, MlpError, sigmoid, softmax_in_place};
pub use format::{FORMAT_VERSION, HeadMeta};
pub use labels::TaskKind;

/// File name of a head's weights inside its folder.
pub const WEIGHTS_FILE: &str = "head.safetensors";
/// File name of a head's description inside its folder.
pub const META_FILE: &str = "head.json";

/// Whether the head folder `dir` carries its own encoder: a head written by
/// `train --fine-tune` (its `head.json` has a `fine_tune` record), whose folder is also a
/// sentence-transformers model (`config.json` and `model.safetensors` beside `head.json`).
/// A frozen head later written into such a folder does not use the model files left there.
pub fn has_own_encoder(dir: &Path) -> bool {
    let fine_tuned = || {
        std::fs::read_to_string(dir.join(META_FILE))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|meta| meta.get("fine_tune").is_some_and(|r| !r.is_null()))
    };
    dir.join("model.safetensors").is_file() && dir.join("config.json").is_file() && fine_tuned()
}

/// Whether two paths name the same existing file or folder.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What went wrong with labelled data or a head.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Every text is empty.
    #[error(
        "every one of the {rows} row(s) of `{file}` has an empty text\nhint: check \
         `--text-column` names the column that holds the texts"
    )]
    NoText {
        /// Input file.
        file: String,
        /// Rows read.
        rows: usize,
    },
    /// The file has a header but not a single row.
    #[error(
        "`{file}` has no rows below its header: there is nothing to learn from or to score\n\
         hint: check that you passed the labelled file"
    )]
    NoRows {
        /// Input file.
        file: String,
    },
    /// No row has a label.
    #[error(
        "none of the {rows} row(s) of `{file}` with a text has a label in column `{column}`\n\
         hint: check `--label-column`"
    )]
    NoLabel {
        /// Input file.
        file: String,
        /// Label column.
        column: String,
        /// Rows read.
        rows: usize,
    },
    /// Only one label occurs: nothing to tell apart.
    #[error(
        "column `{column}` of `{file}` holds a single label, `{label}`: a classifier needs at \
         least two\nhint: add texts of another label, or pass `--multi-label` to learn whether \
         each text carries `{label}`"
    )]
    OneClass {
        /// Input file.
        file: String,
        /// Label column.
        column: String,
        /// The only label.
        label: String,
    },
    /// A head folder lacks a file.
    #[error(
        "`{dir}` is not a head folder: it has no `{file}`\nhint: pass `--head` a folder \
         written by `habitlens train`"
    )]
    NotAHead {
        /// The folder.
        dir: PathBuf,
        /// The missing file.
        file: String,
    },
    /// `head.json` cannot be read or parsed.
    #[error("cannot read `{path}`")]
    Meta {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The head was written by a newer or unknown format.
    #[error(
        "`{path}` has head format version {found}; this habitlens reads version {supported}\n\
         hint: retrain the head with this version of habitlens"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// The weights do not match the description.
    #[error("head `{dir}` is inconsistent: {problem}")]
    Inconsistent {
        /// The folder.
        dir: PathBuf,
        /// What does not match.
        problem: String,
    },
    /// The head was trained on another model's embeddings.
    #[error(
        "head `{}` was trained on embeddings of `{}` ({} {}), but the model in use has {} {}\n\
         hint: {}",
        .0.dir.display(), .0.head_model, .0.field, .0.head_value, .0.field, .0.model_value, .0.hint
    )]
    ModelMismatch(Box<ModelMismatch>),
    /// Heads given together name the same output columns.
    #[error(
        "two heads are called `{name}`\nhint: set another `name` in one head's `head.json`, or \
         train it again with `--name`; renaming the folder does not rename the head"
    )]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// Training diverged: the trained weights give numbers no longer.
    #[error(
        "training diverged: the trained weights give outputs that are not numbers\nhint: lower \
         `--lr` (it was {lr})"
    )]
    Diverged {
        /// The learning rate of the run.
        lr: f64,
    },
    /// Loading, running or saving the model failed.
    #[error(transparent)]
    Mlp(#[from] MlpError),
    /// Writing a file of the head failed.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

impl HeadError {
    /// Whether the error is the user's to fix (bad data, wrong folder, wrong model): exit code 2.
    pub fn is_user_fault(&self) -> bool {
        match self {
            Self::Mlp(MlpError::Read { .. }) => true,
            Self::Mlp(_) | Self::Output(_) => false,
            _ => true,
        }
    }
}

/// What differs between a head's model and the model in use.
#[derive(Debug)]
pub struct ModelMismatch {
    /// The head folder.
    pub dir: PathBuf,
    /// Model the head was trained on.
    pub head_model: String,
    /// What differs (`model`, `revision`, `files`, `dimension`, `pooling`, `normalization`).
    pub field: String,
    /// The head's value.
    pub head_value: String,
    /// The model's value.
    pub model_value: String,
    /// What to do.
    pub hint: String,
}

/// A trained head: its description and its weights.
#[derive(Debug, Clone)]
pub struct Head {
    /// What `head.json` says.
    pub meta: HeadMeta,
    mlp: Mlp,
}

impl Head {
    /// A head from a trained model and its description.
    ///
    /// # Errors
    /// Fails when the model's input or output width disagrees with the description.
    pub fn new(meta: HeadMeta, mlp: Mlp) -> Result<Self, HeadError> {
        let head = Self { meta, mlp };
        head.check_consistent(Path::new("<new head>"))?;
        Ok(head)
    }

    /// Loads a head folder written by [`Head::save`].
    ///
    /// # Errors
    /// Fails when a file is missing or unreadable, the format version is unknown, or the
    /// weights do not match the description.
    pub fn load(dir: &Path) -> Result<Self, HeadError> {
        for file in [META_FILE, WEIGHTS_FILE] {
            if !dir.join(file).is_file() {
                return Err(HeadError::NotAHead { dir: dir.to_path_buf(), file: file.into() });
            }
        }
        let meta = HeadMeta::read(&dir.join(META_FILE))?;
        let mlp = Mlp::load(&dir.join(WEIGHTS_FILE))?;
        let head = Self { meta, mlp };
        head.check_consistent(dir)?;
        Ok(head)
    }

    fn check_consistent(&self, dir: &Path) -> Result<(), HeadError> {
        let bad = |problem: String| HeadError::Inconsistent { dir: dir.to_path_buf(), problem };
        let m = &self.meta;
        if self.mlp.inputs() != m.base_model.dimension {
            return Err(bad(format!(
                "the weights take {} inputs, `{META_FILE}` says dimension {}",
                self.mlp.inputs(),
                m.base_model.dimension
            )));
        }
        if m.name.trim().is_empty() || ["id", "status"].contains(&m.name.as_str()) {
            return Err(bad(format!(
                "its name `{}` clashes with the `id` or `status` column",
                m.name
            )));
        }
        if let Some(l) = m.labels.iter().enumerate().find(|(i, l)| m.labels[..*i].contains(l)) {
            return Err(bad(format!("label `{}` is listed twice", l.1)));
        }
        if self.mlp.outputs() != m.labels.len() {
            return Err(bad(format!(
                "the weights give {} outputs for {} labels",
                self.mlp.outputs(),
                m.labels.len()
            )));
        }
        if m.task == TaskKind::MultiLabel && m.thresholds.len() != m.labels.len() {
            return Err(bad(format!(
                "{} thresholds for {} labels",
                m.thresholds.len(),
                m.labels.len()
            )));
        }
        Ok(())
    }

    /// Writes `head.safetensors` and `head.json` into `dir` (created if needed).
    ///
    /// # Errors
    /// Fails when a file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), HeadError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| crate::output::OutputError::Io { path: dir.to_path_buf(), source })?;
        self.mlp.save(&dir.join(WEIGHTS_FILE))?;
        crate::output::write_json(&dir.join(META_FILE), &self.meta)?;
        Ok(())
    }

    /// The head's name: the prefix of its output columns.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Label names in output order.
    pub fn labels(&self) -> &[String] {
        &self.meta.labels
    }

    /// The underlying model.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Refuses a model whose embeddings differ from those the head was trained on: another
    /// model, revision, dimension, pooling or normalisation, or a local folder whose files
    /// changed since (when the head recorded their digest).
    ///
    /// # Errors
    /// [`HeadError::ModelMismatch`] naming the first thing that differs.
    pub fn check_model(&self, dir: &Path, embedder: &Embedder) -> Result<(), HeadError> {
        let model = embedder.info();
        let base = &self.meta.base_model;
        // A local folder is recorded with the revision `local`, which `--model` does not take.
        let spec = if base.revision == "local" {
            base.id.clone()
        } else {
            format!("{}@{}", base.id, base.revision)
        };
        let mismatch = |field: &str, head: String, used: String, hint: String| {
            Err(HeadError::ModelMismatch(Box::new(ModelMismatch {
                dir: dir.to_path_buf(),
                head_model: base.id.clone(),
                field: field.to_string(),
                head_value: head,
                model_value: used,
                hint,
            })))
        };
        let rerun = format!("run with `--model {spec}`, or retrain the head on this model");
        // A fine-tuned head run with its own folder's encoder: the folder may be named by
        // another path than the one it was written to.
        let own_encoder = model.revision == "local"
            && has_own_encoder(dir)
            && same_path(dir, Path::new(&model.id));
        // A local folder named by another spelling of the same path.
        let same_local = base.revision == "local"
            && model.revision == "local"
            && same_path(Path::new(&base.id), Path::new(&model.id));
        let own_encoder = own_encoder || same_local;
        if !own_encoder && base.id != model.id {
            return mismatch("model", format!("`{}`", base.id), format!("`{}`", model.id), rerun);
        }
        if !own_encoder && base.revision != model.revision {
            return mismatch("revision", base.revision.clone(), model.revision.clone(), rerun);
        }
        // A local folder trained again in place keeps its path and revision; its files tell.
        if let Some(recorded) = &base.content
            && model.revision == "local"
            && let Some(now) = embedder.local_digest()
            && now != recorded
        {
            let short = |d: &str| format!("digest {}…", &d[..d.len().min(12)]);
            let hint = "the folder's weights, tokenizer or configuration changed since the head \
                        was trained: retrain the head on it"
                .to_string();
            return mismatch("files", short(recorded), short(now), hint);
        }
        if base.dimension != model.dimension {
            let (h, m) = (base.dimension.to_string(), model.dimension.to_string());
            return mismatch("dimension", h, m, rerun);
        }
        if base.pooling != model.pooling {
            let (h, m) = (format!("{:?}", base.pooling), format!("{:?}", model.pooling));
            return mismatch("pooling", h, m, rerun);
        }
        if base.normalize != model.normalize {
            let (h, m) = (base.normalize.to_string(), model.normalize.to_string());
            return mismatch("normalization", h, m, rerun);
        }
        Ok(())
    }

    /// Probabilities of every label for rows of embeddings (rows × dimension, row-major):
    /// rows × labels, each row summing to 1 for a single-label head.
    ///
    /// # Errors
    /// Fails when `embeddings` is not a whole number of rows of the head's dimension.
    pub fn probabilities(&self, embeddings: &[f32]) -> Result<Vec<f32>, HeadError> {
        let mut out = self.mlp.forward(embeddings)?;
        match self.meta.task {
            TaskKind::SingleLabel => softmax_in_place(&mut out, self.meta.labels.len()),
            TaskKind::MultiLabel => out.iter_mut().for_each(|x| *x = sigmoid(*x)),
        }
        Ok(out)
    }

    /// The labels assigned given one row of probabilities, most probable first.
    ///
    /// Single-label: the most probable label, or none when `threshold` is given and that
    /// label's probability is below it. Multi-label: every label at or above its tuned
    /// threshold (or `threshold` when given).
    pub fn assign(&self, probabilities: &[f32], threshold: Option<f32>) -> Vec<usize> {
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
        match self.meta.task {
            TaskKind::SingleLabel => {
                let best = order[0];
                if threshold.is_some_and(|t| probabilities[best] < t) { vec![] } else { vec![best] }
            }
            TaskKind::MultiLabel => order
                .into_iter()
                .filter(|&l| probabilities[l] >= threshold.unwrap_or(self.meta.thresholds[l]))
                .collect(),
        }
    }
}

/// Loads every head in `dirs`, checks each against the model `embedder` runs, and refuses two heads with the same
/// name.
///
/// # Errors
/// See [`Head::load`] and [`Head::check_model`]; [`HeadError::DuplicateName`].
pub fn load_all(dirs: &[PathBuf], embedder: &Embedder) -> Result<Vec<Head>, HeadError> {
    let mut heads: Vec<Head> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let head = Head::load(dir)?;
        head.check_model(dir, embedder)?;
        if heads.iter().any(|h| h.name() == head.name()) {
            return Err(HeadError::DuplicateName { name: head.name().to_string() });
        }
        heads.push(head);
    }
    Ok(heads)
}

/// Where the shipped sentiment head lives in the repository (it is built into the binary).
pub const BUILTIN_SENTIMENT: &str = "models/sentiment";

impl Head {
    /// The sentiment head shipped in `models/sentiment` (positive / negative), built into the
    /// binary.
    ///
    /// # Errors
    /// Fails only when the built-in files are damaged, or a temporary folder cannot be written.
    pub fn builtin_sentiment() -> Result<Self, HeadError> {
        const WEIGHTS: &[u8] = include_bytes!("../../models/sentiment/head.safetensors");
        const META: &[u8] = include_bytes!("../../models/sentiment/head.json");
        let io = |source| crate::output::OutputError::Io { path: std::env::temp_dir(), source };
        let dir = tempfile::tempdir().map_err(io)?;
        std::fs::write(dir.path().join(WEIGHTS_FILE), WEIGHTS).map_err(io)?;
        std::fs::write(dir.path().join(META_FILE), META).map_err(io)?;
        Self::load(dir.path()).map_err(|e| HeadError::Inconsistent {
            dir: BUILTIN_SENTIMENT.into(),
            problem: format!("the built-in sentiment head cannot be loaded: {e}"),
        })
    }
}
