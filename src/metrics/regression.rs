//! Metrics of predicted amounts against true amounts.
//!
//! Every function takes the predictions first and the true values second, and panics when
//! their lengths differ. Empty inputs give 0 (or `None` for R²).

/// Mean squared error.
///
/// # Panics
/// When the lengths differ.
pub fn mse(predicted: &[f64], actual: &[f64]) -> f64 {
    mean_of(predicted, actual, |e| e * e)
}

/// Root mean squared error, in the unit of the amounts.
///
/// # Panics
/// When the lengths differ.
pub fn rmse(predicted: &[f64], actual: &[f64]) -> f64 {
    mse(predicted, actual).sqrt()
}

/// Mean absolute error.
///
/// # Panics
/// When the lengths differ.
pub fn mae(predicted: &[f64], actual: &[f64]) -> f64 {
    mean_of(predicted, actual, f64::abs)
}

/// Coefficient of determination: 1 − SS_res / SS_tot (1 perfect, 0 as good as predicting the
/// mean, negative when worse). `None` when there are no rows or the true amounts are constant.
///
/// # Panics
/// When the lengths differ.
pub fn r2(predicted: &[f64], actual: &[f64]) -> Option<f64> {
    assert_eq!(predicted.len(), actual.len(), "one prediction per value");
    if actual.is_empty() {
        return None;
    }
    let mean = actual.iter().sum::<f64>() / actual.len() as f64;
    let ss_tot: f64 = actual.iter().map(|y| (y - mean).powi(2)).sum();
    if ss_tot == 0.0 {
        return None;
    }
    let ss_res: f64 = predicted.iter().zip(actual).map(|(p, y)| (y - p).powi(2)).sum();
    Some(1.0 - ss_res / ss_tot)
}

fn mean_of(predicted: &[f64], actual: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    assert_eq!(predicted.len(), actual.len(), "one prediction per value");
    if actual.is_empty() {
        return 0.0;
    }
    predicted.iter().zip(actual).map(|(p, y)| f(p - y)).sum::<f64>() / actual.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_by_hand() {
        // Errors 1, -2, 0, 1: squares 1, 4, 0, 1 -> MSE 1.5; |e| 1, 2, 0, 1 -> MAE 1.
        let (p, y) = ([3.0, 0.0, 5.0, 8.0], [2.0, 2.0, 5.0, 7.0]);
        assert_eq!(mse(&p, &y), 1.5);
        assert!((rmse(&p, &y) - 1.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(mae(&p, &y), 1.0);
    }

    #[test]
    fn r2_by_hand() {
        // y = 2, 2, 5, 7 has mean 4: SS_tot = 4 + 4 + 1 + 9 = 18; SS_res = 1 + 4 + 0 + 1 = 6.
        let (p, y) = ([3.0, 0.0, 5.0, 8.0], [2.0, 2.0, 5.0, 7.0]);
        let r2 = r2(&p, &y).unwrap();
        assert!((r2 - (1.0 - 6.0 / 18.0)).abs() < 1e-12, "{r2}");
        assert_eq!(super::r2(&y, &y), Some(1.0));
        assert_eq!(super::r2(&[1.0, 2.0], &[3.0, 3.0]), None);
        assert_eq!(mse(&[], &[]), 0.0);
    }
}
