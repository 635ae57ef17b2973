//! Softmax and log-softmax along one axis, in the max-subtracted form.
//!
//! Each lane is computed entirely in f64 and rounded once: `m = max(x)`,
//! `s = Σ exp(x - m)`, then `exp(x - m) / s` or `x - m - ln s`. Subtracting the
//! max keeps `exp` from overflowing for large logits. A NaN anywhere in a lane
//! makes the whole lane NaN, and a lane of all -inf (or one holding +inf)
//! gives NaN, exactly as `torch.softmax` does.

use super::error::InterpError;
use super::scalar::{Num, Real, sum_f64};
use crate::tensor::Tensor;
use ndarray::{ArrayD, Axis, Zip};

/// Which normalization.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Norm {
    /// `exp(x - m) / Σ exp(x - m)`.
    Softmax,
    /// `x - m - ln Σ exp(x - m)`.
    LogSoftmax,
}

fn normalize_real<T: Real>(a: &ArrayD<T>, axis: usize, norm: Norm) -> ArrayD<T> {
    let mut out = ArrayD::from_elem(a.raw_dim(), T::ZERO);
    Zip::from(out.lanes_mut(Axis(axis))).and(a.lanes(Axis(axis))).for_each(|mut o, x| {
        let x: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
        let m: f64 = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.nan_max(v));
        let s: f64 = sum_f64(x.iter().map(|&v| f64::exp(v - m)));
        for (o, &v) in o.iter_mut().zip(&x) {
            *o = T::of(match norm {
                Norm::Softmax => f64::exp(v - m) / s,
                Norm::LogSoftmax => v - m - f64::ln(s),
            });
        }
    });
    out
}

/// `dl.softmax` and `dl.log_softmax` along `axis` (already resolved).
pub fn normalize(op: &str, x: &Tensor, axis: usize, norm: Norm) -> Result<Tensor, InterpError> {
    match x {
        Tensor::F32(a) => Ok(Tensor::F32(normalize_real(a, axis, norm))),
        Tensor::F64(a) => Ok(Tensor::F64(normalize_real(a, axis, norm))),
        _ => Err(InterpError::unsupported(op, format!("needs a float tensor, got {}", x.describe()))),
    }
}
