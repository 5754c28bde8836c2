//! Turning texts into sentence embeddings.
//!
//! The pipeline, in order: tokenize every text (truncating at the model's `max_seq_length`),
//! sort by token count so each batch holds texts of similar length, pad each batch to its
//! longest text, run the encoder, pool, normalise when the model says so, and put every vector
//! back at its text's position.
//!
//! ```no_run
//! use habitlens::embed::Embedder;
//! use habitlens::model::ModelSpec;
//!
//! let embedder = Embedder::load(&ModelSpec::parse("sentence-transformers/all-MiniLM-L6-v2")?)?;
//! let out = embedder.embed(&["Arrived fast, fits well", "Runs small, order a size up"])?;
//! assert_eq!(out.dimension(), 384);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{Tokenizer, TruncationParams};

use crate::model::{
    Activation, BertModel, ModelError, ModelFiles, ModelInfo, ModelSource, ModelSpec, PackedBert,
    l2_normalize,
};

/// Texts per forward pass unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// What went wrong while embedding.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The tokenizer rejected a text.
    #[error("cannot tokenize the input")]
    Tokenize(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A tensor operation failed.
    #[error("the encoder failed")]
    Compute(#[from] candle_core::Error),
}

/// Embeddings of a list of texts, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    data: Vec<f32>,
    dimension: usize,
    /// Token count of each text after truncation, special tokens included.
    pub token_counts: Vec<usize>,
    /// How many texts were longer than the model's limit and were cut.
    pub truncated: usize,
}

impl Embeddings {
    /// Number of texts.
    pub fn len(&self) -> usize {
        self.token_counts.len()
    }

    /// Whether there are no texts.
    pub fn is_empty(&self) -> bool {
        self.token_counts.is_empty()
    }

    /// Length of each vector.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The vector of text `i`.
    ///
    /// # Panics
    /// When `i` is out of range.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dimension..(i + 1) * self.dimension]
    }

    /// Iterates over the vectors in input order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        self.data.chunks_exact(self.dimension.max(1)).take(self.len())
    }

    /// All vectors as one row-major matrix.
    pub fn as_flat(&self) -> &[f32] {
        &self.data
    }
}

/// Which forward pass runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The packed CPU pass ([`PackedBert`]): no padding, fused element-wise kernels. The default
    /// on the CPU for models with the exact GELU.
    Packed,
    /// candle's tensor pass ([`BertModel`]): any device, any supported activation.
    Candle,
}

/// Runs `pass` over texts in batches of `batch_size` texts of similar length, longest first (so
/// the first batch shows the peak memory early), and puts each of the `dimension`-wide rows it
/// returns (one per text of the batch, in the batch's order) back at its text's place: texts ×
/// dimension, row-major. `progress` hears each batch's size once it is done.
///
/// # Errors
/// The first error of `pass`.
pub fn in_length_order<E>(
    lengths: &[usize],
    batch_size: usize,
    dimension: usize,
    progress: &mut dyn FnMut(usize),
    mut pass: impl FnMut(&[usize]) -> Result<Vec<f32>, E>,
) -> Result<Vec<f32>, E> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut data = vec![0f32; lengths.len() * dimension];
    for batch in order.chunks(batch_size.max(1)) {
        let rows = pass(batch)?;
        for (row, &i) in batch.iter().enumerate() {
            data[i * dimension..(i + 1) * dimension]
                .copy_from_slice(&rows[row * dimension..(row + 1) * dimension]);
        }
        progress(batch.len());
    }
    Ok(data)
}

enum Encoder {
    Packed(PackedBert),
    Candle(BertModel),
}

/// A sentence-transformers model ready to embed text.
pub struct Embedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    files: ModelFiles,
    /// [`ModelFiles::content_digest`], once computed.
    digest: std::sync::OnceLock<String>,
    device: Device,
    batch_size: usize,
}

impl Embedder {
    /// Resolves and loads a model on the CPU.
    ///
    /// # Errors
    /// See [`ModelFiles::resolve`] and [`Embedder::from_files`].
    pub fn load(spec: &ModelSpec) -> Result<Self, ModelError> {
        Self::from_source(&ModelSource::new(spec.clone())?)
    }

    /// Resolves and loads the model of `source` on the CPU.
    ///
    /// # Errors
    /// See [`ModelFiles::resolve`] and [`Embedder::from_files`].
    pub fn from_source(source: &ModelSource) -> Result<Self, ModelError> {
        Self::from_files(&ModelFiles::resolve(source)?, &Device::Cpu)
    }

    /// Loads the tokenizer and the weights named by `files` onto `device`.
    ///
    /// # Errors
    /// Fails when the tokenizer or the weights cannot be loaded.
    pub fn from_files(files: &ModelFiles, device: &Device) -> Result<Self, ModelError> {
        let packed_fits = device.is_cpu()
            && Activation::from_config(&files.config.hidden_act) == Some(Activation::GeluErf);
        let engine = if packed_fits { Engine::Packed } else { Engine::Candle };
        Self::from_files_with(files, device, engine)
    }

    /// Like [`Embedder::from_files`] with an explicit engine.
    ///
    /// # Errors
    /// Fails when the tokenizer or the weights cannot be loaded, or when [`Engine::Packed`] is
    /// asked for on a device other than the CPU or for a model it does not implement.
    pub fn from_files_with(
        files: &ModelFiles,
        device: &Device,
        engine: Engine,
    ) -> Result<Self, ModelError> {
        let mut tokenizer = Tokenizer::from_file(&files.tokenizer)
            .map_err(|source| ModelError::Tokenizer { path: files.tokenizer.clone(), source })?;
        // Some tokenizer.json files (all-MiniLM-L6-v2's among them) carry fixed padding to 128
        // and truncation at 128; we pad per batch ourselves and truncate at max_seq_length.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: files.info.max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|source| ModelError::Tokenizer { path: files.tokenizer.clone(), source })?;

        let weights_err = |source| ModelError::Weights { path: files.weights.clone(), source };
        // SAFETY: the weights file is memory-mapped read-only; habitlens never writes to it, and
        // a model file changed by another process while we run is outside what we support.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, device)
                .map_err(weights_err)?
        };
        let encoder = match engine {
            Engine::Packed if !device.is_cpu() => {
                return Err(ModelError::Unsupported {
                    what: "the packed engine on a device other than the CPU".to_string(),
                });
            }
            Engine::Packed => {
                Encoder::Packed(PackedBert::load(vb, &files.config).map_err(weights_err)?)
            }
            Engine::Candle => {
                Encoder::Candle(BertModel::load(vb, &files.config).map_err(weights_err)?)
            }
        };
        tracing::debug!(device = ?device, dtype = "f32", ?engine, "encoder loaded");
        Ok(Self {
            encoder,
            tokenizer,
            files: files.clone(),
            digest: std::sync::OnceLock::new(),
            device: device.clone(),
            batch_size: DEFAULT_BATCH_SIZE,
        })
    }

    /// Sets how many texts go through the encoder at once (at least 1).
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// What the model says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.files.info
    }

    /// The files the model was loaded from.
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// [`ModelFiles::content_digest`] of the model's files, read once per embedder.
    ///
    /// # Errors
    /// Fails when one of the files cannot be read.
    pub fn content_digest(&self) -> std::io::Result<&str> {
        if let Some(digest) = self.digest.get() {
            return Ok(digest);
        }
        let digest = self.files.content_digest()?;
        Ok(self.digest.get_or_init(|| digest))
    }

    /// For a local folder (revision `local`), the digest of its files; `None` for a Hub model,
    /// whose commit names its files, or when they cannot be read.
    pub fn local_digest(&self) -> Option<&str> {
        (self.files.info.revision == "local").then(|| self.content_digest().ok()).flatten()
    }

    /// The device the encoder runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds `texts`, returning vectors in input order.
    ///
    /// # Errors
    /// Fails when tokenization or the forward pass fails.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Embeddings, EmbedError> {
        self.embed_with_progress(texts, &mut |_| {})
    }

    /// Like [`Embedder::embed`], calling `progress` with the number of texts done after each
    /// batch.
    ///
    /// # Errors
    /// Fails when tokenization or the forward pass fails.
    pub fn embed_with_progress<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Embeddings, EmbedError> {
        let dimension = self.files.info.dimension;
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(EmbedError::Tokenize)?;
        let token_counts: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        let truncated = encodings.iter().filter(|e| !e.get_overflowing().is_empty()).count();

        let data = in_length_order(&token_counts, self.batch_size, dimension, progress, |batch| {
            let ids: Vec<&[u32]> = batch.iter().map(|&i| encodings[i].get_ids()).collect();
            Ok::<_, EmbedError>(match &self.encoder {
                Encoder::Packed(model) => self.pool_packed(&model.forward(&ids), &ids),
                Encoder::Candle(model) => self.pool_padded(model, &ids)?,
            })
        })?;
        Ok(Embeddings { data, dimension, token_counts, truncated })
    }

    /// Pools packed hidden states (one row per token, texts one after another) into one
    /// vector per text, normalised when the model says so.
    fn pool_packed(&self, hidden: &[f32], ids: &[&[u32]]) -> Vec<f32> {
        let dim = self.files.info.dimension;
        let mut out = Vec::with_capacity(ids.len() * dim);
        let mut start = 0;
        for text in ids {
            let rows = &hidden[start * dim..(start + text.len()) * dim];
            let mut v = self.files.info.pooling.pool_rows(rows, dim);
            if self.files.info.normalize {
                crate::model::l2_normalize_in_place(&mut v);
            }
            out.extend(v);
            start += text.len();
        }
        out
    }

    /// Pads a batch, runs candle's encoder and pools.
    fn pool_padded(&self, model: &BertModel, ids: &[&[u32]]) -> Result<Vec<f32>, EmbedError> {
        let (flat, mask, seq_len) = crate::model::pad_batch(ids);
        let flat = Tensor::from_vec(flat, (ids.len(), seq_len), &self.device)?;
        let mask = Tensor::from_vec(mask, (ids.len(), seq_len), &self.device)?;
        let hidden = model.forward(&flat, &mask)?;
        let mut pooled = self.files.info.pooling.apply(&hidden, &mask)?;
        if self.files.info.normalize {
            pooled = l2_normalize(&pooled)?;
        }
        Ok(pooled.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_in_text_order_and_batches_run_longest_first() {
        let lengths = [3, 9, 1, 9, 5];
        let mut seen = Vec::new();
        let mut done = 0;
        let data = in_length_order(&lengths, 2, 2, &mut |n| done += n, |batch| {
            seen.push(batch.to_vec());
            Ok::<_, ()>(batch.iter().flat_map(|&i| [i as f32, lengths[i] as f32]).collect())
        })
        .unwrap();
        assert_eq!(seen, [vec![1, 3], vec![4, 0], vec![2]]);
        assert_eq!(data, [0.0, 3.0, 1.0, 9.0, 2.0, 1.0, 3.0, 9.0, 4.0, 5.0]);
        assert_eq!(done, 5);
        let failed = in_length_order(&lengths, 2, 2, &mut |_| {}, |_| Err::<Vec<f32>, _>("no"));
        assert_eq!(failed, Err("no"));
    }
}
