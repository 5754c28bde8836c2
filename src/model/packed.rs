//! A CPU-only BERT forward pass over packed sequences, for fast inference.
//!
//! candle's general tensor path pads every batch to its longest text, runs attention as one small
//! matrix product per head and batch item (each spread over all threads), and adds biases and
//! applies GELU as separate passes over memory. Here the texts of a batch are packed one after
//! another with no padding at all: the dense layers see a single (tokens × hidden) matrix, so no
//! work is spent on padding; attention runs per text and head, the pairs spread over threads;
//! biases, GELU, residuals and layer norms are fused into one pass each (see [`super::kernels`]).
//! The matrix products use the `gemm` crate (the one candle uses), which picks SIMD kernels at
//! run time.
//!
//! The maths is the same as [`super::BertModel`] (exact GELU, post-norm residual blocks); the
//! parity test checks both against sentence-transformers. Weights are copied out of the
//! checkpoint once at load time. This path has no backward pass: training uses `BertModel`.

use candle_core::{DType, Result};
use candle_nn::VarBuilder;
use gemm::Parallelism;
use rayon::prelude::*;

use super::kernels::{bias_gelu, residual_layer_norm, softmax_rows};
use super::{Activation, BertConfig};

/// Rows handled per parallel task in the element-wise passes.
const ROWS_PER_TASK: usize = 16;

struct Layer {
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    ln1: (Vec<f32>, Vec<f32>),
    up_w: Vec<f32>,
    up_b: Vec<f32>,
    down_w: Vec<f32>,
    down_b: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
}

/// Buffers reused by every layer of one forward pass.
struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    up: Vec<f32>,
}

/// BERT weights laid out for the packed CPU forward pass.
pub struct PackedBert {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embeddings_ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    max_positions: usize,
    eps: f32,
}

fn tensor(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Vec<f32>> {
    vb.get(shape, name)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

fn layer_norm(vb: &VarBuilder, size: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    if vb.contains_tensor("weight") {
        Ok((tensor(vb, &[size], "weight")?, tensor(vb, &[size], "bias")?))
    } else {
        Ok((tensor(vb, &[size], "gamma")?, tensor(vb, &[size], "beta")?))
    }
}

/// A raw pointer that parallel tasks may share because each writes a disjoint region.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only to let attention tasks write disjoint (text, head) blocks of one buffer.
unsafe impl Send for SharedMut {}
// SAFETY: as above; no two tasks touch the same element.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer; a method so closures capture the whole (Send + Sync) wrapper.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `dst (m × n) = lhs (m × k, row-major) · wᵀ` where `w` is a PyTorch (n × k) weight.
fn linear(dst: &mut [f32], lhs: &[f32], w: &[f32], m: usize, n: usize, k: usize) {
    assert!(dst.len() == m * n && lhs.len() == m * k && w.len() == n * k, "linear shapes");
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && m * n * k > 1 << 16 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above bound every index gemm computes from these sizes and strides:
    // dst[i][j] = dst[i*n + j], lhs[i][l] = lhs[i*k + l], rhs[l][j] = w[j*k + l].
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Runs `f` over blocks of [`ROWS_PER_TASK`] rows of width `width` in parallel.
fn for_row_blocks(rows: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    rows.par_chunks_mut(width * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(block, chunk)| f(block * ROWS_PER_TASK, chunk));
}

impl PackedBert {
    /// Copies the weights out of `vb` (with or without a `bert.` prefix).
    ///
    /// # Errors
    /// Fails when a weight is missing or misshapen, or when the activation is not the exact
    /// GELU (the only one this path implements; other models use [`super::BertModel`]).
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Self> {
        if Activation::from_config(&cfg.hidden_act) != Some(Activation::GeluErf) {
            candle_core::bail!(
                "the packed encoder implements only `gelu`, not `{}`",
                cfg.hidden_act
            );
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let emb = vb.pp("embeddings");
        let token_types = tensor(&emb, &[cfg.type_vocab_size, h], "token_type_embeddings.weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for n in 0..cfg.num_hidden_layers {
            let lv = vb.pp(format!("encoder.layer.{n}"));
            let att = lv.pp("attention");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_w.extend(tensor(&att.pp("self").pp(part), &[h, h], "weight")?);
                qkv_b.extend(tensor(&att.pp("self").pp(part), &[h], "bias")?);
            }
            layers.push(Layer {
                qkv_w,
                qkv_b,
                out_w: tensor(&att.pp("output.dense"), &[h, h], "weight")?,
                out_b: tensor(&att.pp("output.dense"), &[h], "bias")?,
                ln1: layer_norm(&att.pp("output.LayerNorm"), h)?,
                up_w: tensor(&lv.pp("intermediate.dense"), &[i, h], "weight")?,
                up_b: tensor(&lv.pp("intermediate.dense"), &[i], "bias")?,
                down_w: tensor(&lv.pp("output.dense"), &[h, i], "weight")?,
                down_b: tensor(&lv.pp("output.dense"), &[h], "bias")?,
                ln2: layer_norm(&lv.pp("output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word: tensor(&emb, &[cfg.vocab_size, h], "word_embeddings.weight")?,
            position: tensor(
                &emb,
                &[cfg.max_position_embeddings, h],
                "position_embeddings.weight",
            )?,
            token_type: token_types[..h].to_vec(),
            embeddings_ln: layer_norm(&emb.pp("LayerNorm"), h)?,
            layers,
            hidden: h,
            heads: cfg.num_attention_heads,
            intermediate: i,
            max_positions: cfg.max_position_embeddings,
            eps: cfg.layer_norm_eps as f32,
        })
    }

    /// Encodes the texts given as token ids and returns their final hidden states packed one
    /// after another: row `offset(t) + p` is token `p` of text `t`, `hidden` floats per row.
    ///
    /// # Panics
    /// When a token id is outside the vocabulary or a text is longer than the model's positions;
    /// the tokenizer and truncation guarantee neither happens.
    pub fn forward(&self, texts: &[&[u32]]) -> Vec<f32> {
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0usize);
        for t in texts {
            assert!(t.len() <= self.max_positions, "text longer than the position table");
            offsets.push(offsets.last().unwrap() + t.len());
        }
        let tokens = *offsets.last().unwrap();

        // Embeddings: word + position + token type 0, then layer norm.
        let mut x = vec![0f32; tokens * h];
        for (t, ids) in texts.iter().enumerate() {
            for (p, &id) in ids.iter().enumerate() {
                let row = &mut x[(offsets[t] + p) * h..(offsets[t] + p + 1) * h];
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let pos = &self.position[p * h..(p + 1) * h];
                for ((v, w), q) in row.iter_mut().zip(word).zip(pos) {
                    *v = w + q;
                }
            }
        }
        let (w, b) = &self.embeddings_ln;
        for_row_blocks(&mut x, h, |_, rows| {
            residual_layer_norm(rows, &self.token_type, &[], w, b, self.eps);
        });

        let mut scratch = Scratch {
            qkv: vec![0f32; tokens * 3 * h],
            context: vec![0f32; tokens * h],
            attended: vec![0f32; tokens * h],
            up: vec![0f32; tokens * self.intermediate],
        };
        for layer in &self.layers {
            self.layer_forward(layer, &mut x, &offsets, &mut scratch);
        }
        x
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &mut [f32],
        offsets: &[usize],
        scratch: &mut Scratch,
    ) {
        let h = self.hidden;
        let Scratch { qkv, context, attended, up } = scratch;
        let tokens = *offsets.last().unwrap();

        // Self-attention: one product for Q, K and V together, then per text and head.
        linear(qkv, x, &layer.qkv_w, tokens, 3 * h, h);
        for_row_blocks(qkv, 3 * h, |_, rows| {
            for row in rows.chunks_exact_mut(3 * h) {
                for (v, b) in row.iter_mut().zip(&layer.qkv_b) {
                    *v += b;
                }
            }
        });
        self.attention(qkv, context, offsets);

        // Output projection, residual, layer norm.
        linear(attended, context, &layer.out_w, tokens, h, h);
        let residual: &[f32] = x;
        for_row_blocks(attended, h, |first, rows| {
            let n = rows.len() / h;
            let res = &residual[first * h..(first + n) * h];
            residual_layer_norm(rows, &layer.out_b, res, &layer.ln1.0, &layer.ln1.1, self.eps);
        });

        // Feed-forward: up, GELU, down, residual, layer norm.
        let i = self.intermediate;
        linear(up, attended, &layer.up_w, tokens, i, h);
        for_row_blocks(up, i, |_, rows| bias_gelu(rows, &layer.up_b));
        linear(x, up, &layer.down_w, tokens, h, i);
        let residual: &[f32] = attended;
        for_row_blocks(x, h, |first, rows| {
            let n = rows.len() / h;
            let res = &residual[first * h..(first + n) * h];
            residual_layer_norm(rows, &layer.down_b, res, &layer.ln2.0, &layer.ln2.1, self.eps);
        });
    }

    /// Scaled dot-product attention of every text and head; writes (tokens × hidden) context.
    fn attention(&self, qkv: &[f32], context: &mut [f32], offsets: &[usize]) {
        let h = self.hidden;
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let stride = 3 * h;
        let out = SharedMut(context.as_mut_ptr());
        let texts = offsets.len() - 1;
        (0..texts * self.heads).into_par_iter().for_each_init(Vec::new, |scores, task| {
            let (t, head) = (task / self.heads, task % self.heads);
            let (start, len) = (offsets[t], offsets[t + 1] - offsets[t]);
            let q = &qkv[start * stride + head * head_dim..];
            let k = &qkv[start * stride + h + head * head_dim..];
            let v = &qkv[start * stride + 2 * h + head * head_dim..];
            scores.clear();
            scores.resize(len * len, 0f32);
            // SAFETY: q, k and v rows r < len lie at r*stride + c with c < head_dim inside qkv
            // (row start + r < tokens); scores is len × len; the context block written is rows
            // start..start+len, columns head*head_dim.., which no other task writes.
            unsafe {
                gemm::gemm(
                    len,
                    len,
                    head_dim,
                    scores.as_mut_ptr(),
                    1,
                    len as isize,
                    false,
                    q.as_ptr(),
                    1,
                    stride as isize,
                    k.as_ptr(),
                    stride as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            softmax_rows(scores, len, scale);
            let base = out.ptr();
            // SAFETY: see above.
            unsafe {
                gemm::gemm(
                    len,
                    head_dim,
                    len,
                    base.add(start * h + head * head_dim),
                    1,
                    h as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    len as isize,
                    v.as_ptr(),
                    1,
                    stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        });
    }
}
