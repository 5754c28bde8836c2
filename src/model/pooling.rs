//! Turning token states into one vector per text.

use candle_core::{D, Result, Tensor};
use serde::{Deserialize, Serialize};

/// How token embeddings are pooled into a sentence embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average of the token states, padding excluded.
    Mean,
    /// The state of the first (`[CLS]`) token.
    Cls,
    /// Element-wise maximum over the token states, padding excluded.
    Max,
}

impl Pooling {
    /// Reads a sentence-transformers `1_Pooling/config.json`.
    ///
    /// # Errors
    /// Returns a description of the problem when no mode or more than one mode is enabled, or
    /// when the enabled mode is not supported.
    pub fn from_config(cfg: &serde_json::Value) -> std::result::Result<Self, String> {
        let on = |key: &str| cfg.get(key).and_then(serde_json::Value::as_bool).unwrap_or(false);
        let modes: Vec<&str> = [
            "pooling_mode_cls_token",
            "pooling_mode_mean_tokens",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens",
            "pooling_mode_lasttoken",
        ]
        .into_iter()
        .filter(|k| on(k))
        .collect();
        match modes.as_slice() {
            ["pooling_mode_mean_tokens"] => Ok(Self::Mean),
            ["pooling_mode_cls_token"] => Ok(Self::Cls),
            ["pooling_mode_max_tokens"] => Ok(Self::Max),
            [] => Err("no pooling mode enabled".to_string()),
            [one] => Err(format!("pooling mode `{one}`")),
            many => Err(format!("combined pooling modes {}", many.join(", "))),
        }
    }

    /// Pools `hidden` f32 (batch, seq, dim) with `mask` f32 (batch, seq) into (batch, dim).
    pub fn apply(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self {
            Self::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
            Self::Mean => {
                let mask = mask.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9f64, f64::MAX)?;
                summed.broadcast_div(&counts)
            }
            Self::Max => {
                // Padding gets a very low value so it never wins the maximum.
                let mask = mask.unsqueeze(2)?;
                let penalty = ((mask.ones_like()? - &mask)? * -1e9f64)?;
                hidden.broadcast_add(&penalty)?.max(1)
            }
        }
    }
}

impl Pooling {
    /// Pools the token rows of one text (row-major, `dim` floats per token, no padding).
    pub fn pool_rows(self, rows: &[f32], dim: usize) -> Vec<f32> {
        let tokens = rows.len() / dim;
        match self {
            Self::Cls => rows[..dim].to_vec(),
            Self::Mean => {
                let mut sum = vec![0f32; dim];
                for row in rows.chunks_exact(dim) {
                    sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                }
                let n = tokens.max(1) as f32;
                sum.iter_mut().for_each(|s| *s /= n);
                sum
            }
            Self::Max => {
                let mut max = vec![f32::NEG_INFINITY; dim];
                for row in rows.chunks_exact(dim) {
                    max.iter_mut().zip(row).for_each(|(m, x)| *m = m.max(*x));
                }
                max
            }
        }
    }
}

/// Scales a vector to unit L2 norm; a zero vector stays zero.
pub fn l2_normalize_in_place(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Scales each row of (batch, dim) to unit L2 norm; zero rows stay zero.
pub fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    let norms = xs.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f64, f64::MAX)?;
    xs.broadcast_div(&norms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mean_pooling_ignores_padding() {
        let hidden = Tensor::new(&[[[1f32, 2.], [3., 4.], [100., 100.]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 0.]], &Device::Cpu).unwrap();
        let pooled = Pooling::Mean.apply(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(pooled, vec![vec![2.0, 3.0]]);
    }

    #[test]
    fn max_pooling_ignores_padding() {
        let hidden = Tensor::new(&[[[1f32, 5.], [3., 4.], [100., 100.]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 0.]], &Device::Cpu).unwrap();
        let pooled = Pooling::Max.apply(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(pooled, vec![vec![3.0, 5.0]]);
    }

    #[test]
    fn cls_pooling_takes_first_token() {
        let hidden = Tensor::new(&[[[1f32, 5.], [3., 4.]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1f32, 1.]], &Device::Cpu).unwrap();
        let pooled = Pooling::Cls.apply(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(pooled, vec![vec![1.0, 5.0]]);
    }

    #[test]
    fn reads_sentence_transformers_pooling_config() {
        let cfg =
            serde_json::json!({"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false});
        assert_eq!(Pooling::from_config(&cfg), Ok(Pooling::Mean));
        let both =
            serde_json::json!({"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true});
        assert!(Pooling::from_config(&both).is_err());
    }

    #[test]
    fn row_pooling_matches_tensor_pooling() {
        let rows = [1f32, 5., 3., 4.];
        assert_eq!(Pooling::Mean.pool_rows(&rows, 2), vec![2.0, 4.5]);
        assert_eq!(Pooling::Max.pool_rows(&rows, 2), vec![3.0, 5.0]);
        assert_eq!(Pooling::Cls.pool_rows(&rows, 2), vec![1.0, 5.0]);
        let mut v = vec![3f32, 4.];
        l2_normalize_in_place(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }

    #[test]
    fn normalised_rows_have_unit_norm() {
        let xs = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu).unwrap();
        let n = l2_normalize(&xs).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(n, vec![vec![0.6, 0.8], vec![0.0, 0.0]]);
    }
}
