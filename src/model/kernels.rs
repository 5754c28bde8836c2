//! Element-wise CPU kernels of the packed encoder: bias + GELU, residual + bias + layer norm,
//! and row softmax.
//!
//! Each kernel is written once as plain Rust and compiled twice: for the baseline x86-64 target
//! and with AVX2 and FMA enabled, picked at run time from what the processor supports. The binary
//! thus runs on any x86-64 machine (and any other architecture, through the plain version) while
//! using wide vectors where they exist.

use std::f32::consts::FRAC_1_SQRT_2;

/// Error function, within 5e-7 of the exact value (a few f32 rounding steps), built from multiplies and adds only so the
/// compiler can vectorise it. A rational approximation on [-4, 4] (erf is ±1 to f32 precision
/// beyond); the coefficients are the widely published single-precision fit also used by
/// Eigen and XLA.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

#[inline(always)]
fn bias_gelu_generic(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        for (x, b) in row.iter_mut().zip(bias) {
            let v = *x + b;
            *x = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
        }
    }
}

/// Sum of a slice with eight independent accumulators, so it vectorises.
#[inline(always)]
fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

#[inline(always)]
fn residual_layer_norm_generic(
    rows: &mut [f32],
    bias: &[f32],
    residual: &[f32],
    weight: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let n = bias.len();
    for (i, row) in rows.chunks_exact_mut(n).enumerate() {
        if residual.is_empty() {
            for (x, b) in row.iter_mut().zip(bias) {
                *x += b;
            }
        } else {
            for ((x, b), r) in row.iter_mut().zip(bias).zip(&residual[i * n..(i + 1) * n]) {
                *x += b + r;
            }
        }
        let mean = sum8(row) / n as f32;
        for x in row.iter_mut() {
            *x -= mean;
        }
        let mut sq = [0f32; 8];
        let chunks = row.chunks_exact(8);
        let rest: f32 = chunks.remainder().iter().map(|x| x * x).sum();
        for c in chunks {
            for i in 0..8 {
                sq[i] += c[i] * c[i];
            }
        }
        let var = (sq.iter().sum::<f32>() + rest) / n as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((x, w), b) in row.iter_mut().zip(weight).zip(beta) {
            *x = *x * inv * w + b;
        }
    }
}

#[inline(always)]
fn softmax_rows_generic(rows: &mut [f32], width: usize, scale: f32) {
    for row in rows.chunks_exact_mut(width) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut sum = 0f32;
        for x in row.iter_mut() {
            *x = ((*x - max) * scale).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn bias_gelu(rows: &mut [f32], bias: &[f32]) {
        super::bias_gelu_generic(rows, bias);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn residual_layer_norm(
        rows: &mut [f32],
        bias: &[f32],
        residual: &[f32],
        weight: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        super::residual_layer_norm_generic(rows, bias, residual, weight, beta, eps);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_rows(rows: &mut [f32], width: usize, scale: f32) {
        super::softmax_rows_generic(rows, width, scale);
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// `x = gelu(x + bias)` on every row of a row-major matrix whose width is `bias.len()`, with the
/// exact (erf) GELU.
pub fn bias_gelu(rows: &mut [f32], bias: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor supports AVX2 and FMA, checked just above.
        return unsafe { avx2::bias_gelu(rows, bias) };
    }
    bias_gelu_generic(rows, bias);
}

/// `x = layer_norm(x + bias + residual) * weight + beta` on every row; an empty `residual`
/// means none.
pub fn residual_layer_norm(
    rows: &mut [f32],
    bias: &[f32],
    residual: &[f32],
    weight: &[f32],
    beta: &[f32],
    eps: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor supports AVX2 and FMA, checked just above.
        return unsafe { avx2::residual_layer_norm(rows, bias, residual, weight, beta, eps) };
    }
    residual_layer_norm_generic(rows, bias, residual, weight, beta, eps);
}

/// Softmax of `scale * x` over each row of width `width`.
pub fn softmax_rows(rows: &mut [f32], width: usize, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor supports AVX2 and FMA, checked just above.
        return unsafe { avx2::softmax_rows(rows, width, scale) };
    }
    softmax_rows_generic(rows, width, scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_the_reference_within_f32_precision() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f32 * 0.001;
            let err = (f64::from(erf(x)) - libm::erf(f64::from(x))).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
    }

    #[test]
    fn gelu_adds_bias_then_applies_exact_gelu() {
        let mut rows = vec![0.0f32, 1.0, -1.0, 2.0];
        bias_gelu(&mut rows, &[1.0, 0.0]);
        let gelu = |v: f64| 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt()));
        let want = [gelu(1.0), gelu(1.0), gelu(0.0), gelu(2.0)];
        for (got, want) in rows.iter().zip(want) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn layer_norm_of_row_with_residual() {
        let mut rows = vec![1.0f32, 2.0, 3.0, 4.0];
        let residual = vec![1.0f32; 4];
        residual_layer_norm(&mut rows, &[0.0; 4], &residual, &[1.0; 4], &[0.5; 4], 0.0);
        // (2, 3, 4, 5): mean 3.5, variance 1.25.
        let want: Vec<f32> =
            [2.0f32, 3.0, 4.0, 5.0].iter().map(|x| (x - 3.5) / 1.25f32.sqrt() + 0.5).collect();
        for (g, w) in rows.iter().zip(want) {
            assert!((g - w).abs() < 1e-5);
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut rows = vec![1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
        softmax_rows(&mut rows, 3, 1.0);
        assert!((rows[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((rows[3] - 1.0 / 3.0).abs() < 1e-6);
        assert!(rows[2] > rows[1] && rows[1] > rows[0]);
    }
}
