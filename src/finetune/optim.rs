//! The optimiser of a fine-tuning step: AdamW on the dense weights, and a row-wise AdamW on the
//! word-embedding table that touches only the rows a batch used.
//!
//! The word table of all-MiniLM-L6-v2 holds 11.7M of its 22.7M weights, yet a batch of short
//! texts uses a few hundred of its 30,522 rows. Backpropagating into the whole table builds a
//! dense gradient of zeros, and a dense AdamW step then walks all of it several times: on two
//! cores that was about a fifth of each step and 700 MB of memory. Instead, each step copies the
//! rows it uses into a small variable ([`WordRows`]), and [`SparseAdamW`] updates those rows
//! with moment estimates kept for the whole table, updated lazily as PyTorch's `SparseAdam`
//! does. This is not exactly dense AdamW: there, a row that got a gradient once keeps moving on
//! later steps without one (its momentum decays over them) and is shrunk by weight decay on
//! every step; here a row moves only on steps that use it, its moments wait meanwhile, and one
//! decay factor is applied per use. When every row is used every step the two are identical (a
//! unit test checks this).

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// The rows of the word table one batch uses, copied into a variable that collects their
/// gradient.
pub struct WordRows {
    /// Token ids of the rows, ascending and distinct.
    pub ids: Vec<u32>,
    /// Their vectors, (ids, hidden).
    pub var: Var,
}

/// AdamW over rows of one table: moment estimates for every row, updated only for the rows a
/// step's gradient covers.
pub struct SparseAdamW {
    params: ParamsAdamW,
    width: usize,
    m: Vec<f32>,
    v: Vec<f32>,
    step: i32,
}

impl SparseAdamW {
    /// State for a table of `rows` × `width` weights.
    pub fn new(rows: usize, width: usize, params: ParamsAdamW) -> Self {
        Self { params, width, m: vec![0.0; rows * width], v: vec![0.0; rows * width], step: 0 }
    }

    /// Applies one step to the rows `used` of `table`, whose gradient (scaled by `scale`) is
    /// `grad`, (used, width).
    ///
    /// # Errors
    /// Fails when a tensor operation fails.
    pub fn step(
        &mut self,
        table: &Var,
        used: &WordRows,
        grad: &Tensor,
        scale: f64,
        lr: f64,
    ) -> candle_core::Result<()> {
        self.step += 1;
        let p = &self.params;
        let (b1, b2) = (p.beta1 as f32, p.beta2 as f32);
        let correct1 = 1.0 / (1.0 - p.beta1.powi(self.step)) as f32;
        let correct2 = 1.0 / (1.0 - p.beta2.powi(self.step)) as f32;
        let (lr, decay, eps, scale) =
            (lr as f32, (lr * p.weight_decay) as f32, p.eps as f32, scale);
        let grad: Vec<f32> = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut rows: Vec<f32> = used.var.as_tensor().flatten_all()?.to_vec1()?;
        let w = self.width;
        for (k, &id) in used.ids.iter().enumerate() {
            let base = id as usize * w;
            for j in 0..w {
                let g = grad[k * w + j] * scale as f32;
                let (m, v) = (&mut self.m[base + j], &mut self.v[base + j]);
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                let x = &mut rows[k * w + j];
                *x *= 1.0 - decay;
                *x -= lr * (*m * correct1) / ((*v * correct2).sqrt() + eps);
            }
        }
        let device = table.device();
        let updated = Tensor::from_vec(rows, (used.ids.len(), w), device)?;
        let index: Vec<u32> = used.ids.iter().flat_map(|&id| std::iter::repeat_n(id, w)).collect();
        let index = Tensor::from_vec(index, (used.ids.len(), w), device)?;
        table.as_tensor().scatter_set(&index, &updated, 0)
    }
}

/// AdamW for a fine-tuning run: dense over the encoder's other weights and the head, row-wise
/// ([`SparseAdamW`]) over the word table, with the gradients clipped to a global norm first.
pub struct Optimiser {
    dense: AdamW,
    dense_vars: Vec<Var>,
    table: Var,
    words: SparseAdamW,
    max_grad_norm: f64,
}

impl Optimiser {
    /// An optimiser for `dense` (every trained weight but the word table) and `table`.
    ///
    /// # Errors
    /// Fails when the optimiser cannot be set up.
    pub fn new(
        dense: Vec<Var>,
        table: Var,
        weight_decay: f64,
        max_grad_norm: f64,
    ) -> candle_core::Result<Self> {
        let params = ParamsAdamW { lr: 0.0, weight_decay, ..Default::default() };
        let (rows, width) = table.as_tensor().dims2()?;
        Ok(Self {
            dense: AdamW::new(dense.clone(), params.clone())?,
            dense_vars: dense,
            table,
            words: SparseAdamW::new(rows, width, params),
            max_grad_norm,
        })
    }

    /// Backpropagates `loss` and applies one step at learning rate `lr`; `rows` are the word
    /// rows the loss was computed from.
    ///
    /// # Errors
    /// Fails when a tensor operation fails.
    pub fn step(&mut self, loss: &Tensor, rows: &WordRows, lr: f64) -> candle_core::Result<()> {
        let mut grads = loss.backward()?;
        let word_grad = grads.remove(rows.var.as_tensor());
        let mut sum = squared_norm(&grads, &self.dense_vars)?;
        if let Some(g) = &word_grad {
            sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let norm = sum.sqrt();
        if !norm.is_finite() {
            // One bad batch must not poison the weights and both optimisers' moments.
            tracing::warn!("a fine-tuning step had a non-finite gradient and was skipped");
            return Ok(());
        }
        let scale =
            if norm > self.max_grad_norm && norm > 0.0 { self.max_grad_norm / norm } else { 1.0 };
        if scale < 1.0 {
            for var in &self.dense_vars {
                if let Some(g) = grads.remove(var.as_tensor()) {
                    grads.insert(var.as_tensor(), (g * scale)?);
                }
            }
        }
        self.dense.set_learning_rate(lr);
        self.dense.step(&grads)?;
        if let Some(g) = word_grad {
            self.words.step(&self.table, rows, &g, scale, lr)?;
        }
        Ok(())
    }
}

fn squared_norm(grads: &GradStore, vars: &[Var]) -> candle_core::Result<f64> {
    let mut sum = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A row-wise step on the rows used equals a dense AdamW step on the whole table when every
    /// row is used, and leaves the other rows alone otherwise.
    #[test]
    fn sparse_step_matches_dense_adamw_on_the_rows_used() {
        let device = Device::Cpu;
        let init: Vec<f32> = (0..12).map(|i| i as f32 * 0.1 - 0.5).collect();
        let params = ParamsAdamW { lr: 0.01, weight_decay: 0.1, ..Default::default() };

        // Dense reference: all four rows, loss = sum(rows * c).
        let coef =
            Tensor::from_vec((0..12).map(|i| (i % 5) as f32 - 2.0).collect(), (4, 3), &device)
                .unwrap();
        let dense =
            Var::from_tensor(&Tensor::from_vec(init.clone(), (4, 3), &device).unwrap()).unwrap();
        let mut adamw = AdamW::new(vec![dense.clone()], params.clone()).unwrap();
        let table =
            Var::from_tensor(&Tensor::from_vec(init.clone(), (4, 3), &device).unwrap()).unwrap();
        let mut sparse = SparseAdamW::new(4, 3, params);
        for _ in 0..3 {
            adamw.backward_step(&(dense.as_tensor() * &coef).unwrap().sum_all().unwrap()).unwrap();
            let ids = vec![0u32, 1, 2, 3];
            let rows = WordRows {
                var: Var::from_tensor(&table.as_tensor().copy().unwrap()).unwrap(),
                ids,
            };
            let loss = (rows.var.as_tensor() * &coef).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap().remove(rows.var.as_tensor()).unwrap();
            sparse.step(&table, &rows, &g, 1.0, 0.01).unwrap();
        }
        let a: Vec<f32> = dense.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = table.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }

        // Only rows 1 and 3 used: rows 0 and 2 stay as they were.
        let before = b.clone();
        let ids = vec![1u32, 3];
        let picked = table
            .as_tensor()
            .index_select(&Tensor::new(ids.as_slice(), &device).unwrap(), 0)
            .unwrap();
        let rows = WordRows { var: Var::from_tensor(&picked).unwrap(), ids };
        let g = Tensor::ones((2, 3), DType::F32, &device).unwrap();
        sparse.step(&table, &rows, &g, 1.0, 0.01).unwrap();
        let after: Vec<f32> = table.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for row in 0..4 {
            let same = (0..3).all(|j| after[row * 3 + j] == before[row * 3 + j]);
            assert_eq!(same, row == 0 || row == 2, "row {row}: {before:?} -> {after:?}");
        }
    }
}
