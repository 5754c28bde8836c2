//! A BERT encoder on candle, written for sentence embeddings and for fine-tuning.
//!
//! The layout follows Hugging Face `transformers`' `modeling_bert.py`
//! (<https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py>):
//! embeddings (word + position + token type, then layer norm), then `num_hidden_layers` blocks of
//! self-attention and a feed-forward network, each closed by a residual add and a layer norm.
//! Weight names match the checkpoint (`embeddings.word_embeddings.weight`,
//! `encoder.layer.0.attention.self.query.weight`, ...), with or without a leading `bert.`.
//!
//! We keep our own copy rather than candle-transformers' so that training can switch every layer
//! norm to a variant with a backward pass: candle's fused layer norm has none, which would leave
//! the encoder weights silently untouched by backpropagation.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::Deserialize;

/// The subset of a Hugging Face `config.json` that a BERT forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Size of the word-piece vocabulary.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of attention heads per block.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer inside each block.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer (`gelu`, `gelu_new`, `gelu_pytorch_tanh`, `relu`).
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Number of learned positions.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    /// Epsilon of every layer norm.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Architecture family as declared by the checkpoint.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_hidden_act() -> String {
    "gelu".to_string()
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// Feed-forward activation functions found in BERT checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// The exact GELU, `x * Φ(x)` with the error function.
    GeluErf,
    /// The tanh approximation of GELU.
    GeluTanh,
    /// Rectified linear unit.
    Relu,
}

impl Activation {
    /// Maps a `hidden_act` string of `config.json` to an activation, if we support it.
    pub fn from_config(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::GeluErf => xs.gelu_erf(),
            Self::GeluTanh => xs.gelu(),
            Self::Relu => xs.relu(),
        }
    }
}

/// A layer norm that uses candle's fused kernel for inference and a composed, differentiable
/// version when gradients are needed.
#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        // Old checkpoints name the parameters gamma and beta. A variable map being filled for
        // training holds neither yet and gets the current names.
        let (weight, bias) = if vb.contains_tensor("gamma") {
            (vb.get(size, "gamma")?, vb.get(size, "beta")?)
        } else {
            (vb.get(size, "weight")?, vb.get(size, "bias")?)
        };
        Ok(Self { weight, bias, eps: eps as f32 })
    }

    fn forward(&self, xs: &Tensor, differentiable: bool) -> Result<Tensor> {
        if differentiable {
            candle_nn::ops::layer_norm_slow(xs, &self.weight, &self.bias, self.eps)
        } else {
            candle_nn::ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
        }
    }
}

/// Inverted dropout for training, drawn from a seeded generator so a run repeats exactly:
/// each value is zeroed with probability `p` and the others are scaled by 1 / (1 − p).
pub struct Dropout {
    p: f32,
    rng: std::cell::RefCell<crate::rng::SplitMix>,
}

impl Dropout {
    /// Dropout with probability `p` (0 disables it), seeded with `seed`.
    pub fn new(p: f32, seed: u64) -> Self {
        Self { p, rng: std::cell::RefCell::new(crate::rng::SplitMix::new(seed)) }
    }

    fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(xs.clone());
        }
        let keep = 1.0 / (1.0 - self.p);
        let mut rng = self.rng.borrow_mut();
        let mask: Vec<f32> =
            (0..xs.elem_count()).map(|_| if rng.uniform() < self.p { 0.0 } else { keep }).collect();
        xs * Tensor::from_vec(mask, xs.shape(), xs.device())?
    }
}

/// How a forward pass runs: inference (fused kernels), or training (kernels with a backward
/// pass, and dropout when given).
#[derive(Clone, Copy)]
pub enum Pass<'a> {
    /// No gradients needed.
    Inference,
    /// Gradients needed; dropout on the hidden states and attention weights, if any.
    Training(Option<&'a Dropout>),
}

impl Pass<'_> {
    fn differentiable(self) -> bool {
        matches!(self, Self::Training(_))
    }

    fn dropout(self, xs: Tensor) -> Result<Tensor> {
        match self {
            Self::Training(Some(d)) => d.apply(&xs),
            _ => Ok(xs),
        }
    }
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            word: candle_nn::embedding(cfg.vocab_size, h, vb.pp("word_embeddings"))?,
            position: candle_nn::embedding(
                cfg.max_position_embeddings,
                h,
                vb.pp("position_embeddings"),
            )?,
            token_type: candle_nn::embedding(
                cfg.type_vocab_size,
                h,
                vb.pp("token_type_embeddings"),
            )?,
            norm: LayerNorm::load(vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
        })
    }

    /// `words`: the word vectors of each token, (batch, seq, hidden).
    fn forward(&self, words: &Tensor, pass: Pass) -> Result<Tensor> {
        let (_batch, seq_len, _hidden) = words.dims3()?;
        let positions = Tensor::arange(0u32, seq_len as u32, words.device())?;
        // Every text is a single segment, so the token type is always 0.
        let token_type = Tensor::zeros(1, DType::U32, words.device())?;
        let xs = words.broadcast_add(&self.position.forward(&positions)?)?;
        let xs = xs.broadcast_add(&self.token_type.forward(&token_type)?)?;
        pass.dropout(self.norm.forward(&xs, pass.differentiable())?)
    }
}

struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    norm: LayerNorm,
    num_heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let vs = vb.pp("self");
        Ok(Self {
            query: candle_nn::linear(h, h, vs.pp("query"))?,
            key: candle_nn::linear(h, h, vs.pp("key"))?,
            value: candle_nn::linear(h, h, vs.pp("value"))?,
            output: candle_nn::linear(h, h, vb.pp("output").pp("dense"))?,
            norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            num_heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    /// `xs`: (batch, seq, hidden); `mask_bias`: (batch, 1, 1, seq), 0 for tokens and a large
    /// negative number for padding.
    fn forward(&self, xs: &Tensor, mask_bias: &Tensor, pass: Pass) -> Result<Tensor> {
        let (batch, seq_len, hidden) = xs.dims3()?;
        let split_heads = |t: Tensor| -> Result<Tensor> {
            t.reshape((batch, seq_len, self.num_heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split_heads(self.query.forward(xs)?)?;
        let k = split_heads(self.key.forward(xs)?)?;
        let v = split_heads(self.value.forward(xs)?)?;

        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask_bias)?;
        let probs = if pass.differentiable() {
            pass.dropout(candle_nn::ops::softmax(&scores, D::Minus1)?)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, seq_len, hidden))?;

        let out = pass.dropout(self.output.forward(&context)?)?;
        self.norm.forward(&(out + xs)?, pass.differentiable())
    }
}

struct Layer {
    attention: SelfAttention,
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
    activation: Activation,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &BertConfig, activation: Activation) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            attention: SelfAttention::load(vb.pp("attention"), cfg)?,
            intermediate: candle_nn::linear(h, i, vb.pp("intermediate").pp("dense"))?,
            output: candle_nn::linear(i, h, vb.pp("output").pp("dense"))?,
            norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            activation,
        })
    }

    fn forward(&self, xs: &Tensor, mask_bias: &Tensor, pass: Pass) -> Result<Tensor> {
        let xs = self.attention.forward(xs, mask_bias, pass)?;
        let hidden = self.activation.apply(&self.intermediate.forward(&xs)?)?;
        let out = pass.dropout(self.output.forward(&hidden)?)?;
        self.norm.forward(&(out + xs)?, pass.differentiable())
    }
}

/// A BERT encoder without the pooler: token ids in, last hidden states out.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    differentiable: bool,
}

impl BertModel {
    /// Loads the encoder from a weight builder; accepts weights stored with or without a `bert.`
    /// prefix.
    ///
    /// # Errors
    /// Fails when a weight is missing or has the wrong shape, or when `hidden_act` is unknown.
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let activation = Activation::from_config(&cfg.hidden_act).ok_or_else(|| {
            candle_core::Error::Msg(format!("unsupported activation `{}`", cfg.hidden_act))
        })?;
        let embeddings = Embeddings::load(vb.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg, activation))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings, layers, differentiable: false })
    }

    /// Switches every layer norm and softmax to versions with a backward pass (slower), as needed
    /// when gradients must reach the encoder weights.
    #[must_use]
    pub fn with_differentiable(mut self, differentiable: bool) -> Self {
        self.differentiable = differentiable;
        self
    }

    /// Runs the encoder.
    ///
    /// `input_ids`: u32 (batch, seq); `attention_mask`: f32 (batch, seq), 1 for real tokens and
    /// 0 for padding. Returns f32 (batch, seq, hidden).
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let words = self.embeddings.word.forward(input_ids)?;
        let pass = if self.differentiable { Pass::Training(None) } else { Pass::Inference };
        self.forward_words(&words, attention_mask, pass)
    }

    /// The word-embedding table, (vocabulary, hidden).
    pub fn word_embeddings(&self) -> &Tensor {
        self.embeddings.word.embeddings()
    }

    /// Runs the encoder from word vectors already looked up, (batch, seq, hidden), so that a
    /// caller can take them from a smaller table (training updates only the rows a batch uses).
    /// `pass` picks the layer norm and softmax as [`BertModel::with_differentiable`] does, for
    /// this call only, and the dropout of a training pass: after the embeddings, on the
    /// attention weights, and on the output of each block's two projections before their
    /// residual add, where Hugging Face's BERT applies it.
    pub fn forward_words(
        &self,
        words: &Tensor,
        attention_mask: &Tensor,
        pass: Pass,
    ) -> Result<Tensor> {
        let (batch, seq_len) = attention_mask.dims2()?;
        // Padding gets a large negative score so softmax gives it no weight.
        let mask_bias = ((attention_mask.ones_like()? - attention_mask)? * -1e9f64)?
            .reshape((batch, 1, 1, seq_len))?;
        let mut xs = self.embeddings.forward(words, pass)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask_bias, pass)?;
        }
        Ok(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn dropout_zeroes_about_p_scales_the_rest_and_repeats_with_its_seed() {
        let xs = Tensor::ones((100, 100), DType::F32, &Device::Cpu).unwrap();
        let values = |d: &Dropout| d.apply(&xs).unwrap().flatten_all().unwrap().to_vec1::<f32>();
        let a = values(&Dropout::new(0.1, 7)).unwrap();
        let zeros = a.iter().filter(|&&x| x == 0.0).count();
        assert!((800..1200).contains(&zeros), "{zeros} of 10,000 zeroed at p = 0.1");
        assert!(a.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.9).abs() < 1e-6), "kept values scale");
        assert_eq!(a, values(&Dropout::new(0.1, 7)).unwrap(), "same seed, same mask");
        assert_ne!(a, values(&Dropout::new(0.1, 8)).unwrap(), "another seed, another mask");
        assert!(values(&Dropout::new(0.0, 7)).unwrap().iter().all(|&x| x == 1.0), "p = 0 is off");
    }
}
