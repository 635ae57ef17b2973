//! Pooling windows over `[N, C, H, W]`, as PyTorch's `max_pool2d` and
//! `avg_pool2d` with `ceil_mode = False`, and max-pooling's gradient.
//!
//! Max-pooling pads with -inf (padding never wins) and propagates NaN, as
//! PyTorch's CPU kernel does. Average-pooling counts the padding zeros
//! (`count_include_pad = True`): every window, padded or not, divides by
//! `kh * kw`. With `ceil_mode = False` a window never reaches past the padded
//! input, so PyTorch's divisor is that same constant.

use super::contraction::Window2d;
use super::error::InterpError;
use super::scalar::{Real, sum_f64};
use crate::tensor::Tensor;
use ndarray::{ArrayD, Ix4, IxDyn};

/// Which pooling.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Maximum of the window.
    Max,
    /// Mean of the window, padding counted as zeros.
    Avg,
}

fn pool_real<T: Real>(op: &str, x: &ArrayD<T>, pool: Pool, win: Window2d) -> Result<ArrayD<T>, InterpError> {
    let Ok(x) = x.view().into_dimensionality::<Ix4>() else {
        return Err(InterpError::malformed(op, format!("needs [N, C, H, W], got {:?}", x.shape())));
    };
    let (n, c, h, w) = x.dim();
    let [kh, kw] = win.kernel;
    let (Some(oh), Some(ow)) = (win.out_size(0, h), win.out_size(1, w)) else {
        return Err(InterpError::malformed(op, format!("a {kh}x{kw} window does not fit the {h}x{w} input")));
    };
    let mut out = Vec::with_capacity(n * c * oh * ow);
    let mut window = Vec::with_capacity(kh * kw);
    for img in 0..n {
        for ch in 0..c {
            for oi in 0..oh {
                for oj in 0..ow {
                    window.clear();
                    for ki in 0..kh {
                        for kj in 0..kw {
                            let (ii, jj) = (win.source(0, oi, ki, h), win.source(1, oj, kj, w));
                            window.push(match (ii, jj) {
                                (Some(i), Some(j)) => Some(x[[img, ch, i, j]]),
                                _ => None,
                            });
                        }
                    }
                    out.push(match pool {
                        Pool::Max => window.iter().fold(T::NEG_INFINITY, |m, v| m.nan_max(v.unwrap_or(T::NEG_INFINITY))),
                        Pool::Avg => {
                            let sum = sum_f64(window.iter().map(|v| v.map_or(0.0, |t| t.to_f64())));
                            T::of(sum / (kh * kw) as f64)
                        }
                    });
                }
            }
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&[n, c, oh, ow]), out).expect("N*C*OH*OW elements"))
}

/// `dl.max_pool2d` and `dl.avg_pool2d` (the window's dilation is 1).
pub fn pool2d(op: &str, x: &Tensor, pool: Pool, win: Window2d) -> Result<Tensor, InterpError> {
    match x {
        Tensor::F32(a) => Ok(Tensor::F32(pool_real(op, a, pool, win)?)),
        Tensor::F64(a) => Ok(Tensor::F64(pool_real(op, a, pool, win)?)),
        _ => Err(InterpError::unsupported(op, format!("needs a float tensor, got {}", x.describe()))),
    }
}

fn max_pool2d_grad_real<T: Real>(op: &str, x: &ArrayD<T>, g: &ArrayD<T>, win: Window2d, relu: bool) -> Result<ArrayD<T>, InterpError> {
    let (Ok(x), Ok(g)) = (x.view().into_dimensionality::<Ix4>(), g.view().into_dimensionality::<Ix4>()) else {
        return Err(InterpError::malformed(op, format!("needs x [N, C, H, W] and g [N, C, OH, OW], got {:?} and {:?}", x.shape(), g.shape())));
    };
    let (n, c, h, w) = x.dim();
    let [kh, kw] = win.kernel;
    let (Some(oh), Some(ow)) = (win.out_size(0, h), win.out_size(1, w)) else {
        return Err(InterpError::malformed(op, format!("a {kh}x{kw} window does not fit the {h}x{w} input")));
    };
    if g.dim() != (n, c, oh, ow) {
        return Err(InterpError::malformed(op, format!("g must be the pooled shape {:?}, got {:?}", [n, c, oh, ow], g.shape())));
    }
    let mut dx = ndarray::Array4::<T>::from_elem((n, c, h, w), T::ZERO);
    for img in 0..n {
        for ch in 0..c {
            for oi in 0..oh {
                for oj in 0..ow {
                    // PyTorch's argmax: the first tap inside the input,
                    // replaced by a greater value or by any NaN.
                    let mut best = None;
                    let mut max = T::NEG_INFINITY;
                    for ki in 0..kh {
                        for kj in 0..kw {
                            let (Some(i), Some(j)) = (win.source(0, oi, ki, h), win.source(1, oj, kj, w)) else { continue };
                            let v = x[[img, ch, i, j]];
                            if best.is_none() || v > max || v.is_nan() {
                                best = Some((i, j));
                            }
                            if v > max || v.is_nan() {
                                max = v;
                            }
                        }
                    }
                    if let Some((i, j)) = best {
                        dx[[img, ch, i, j]] = dx[[img, ch, i, j]] + g[[img, ch, oi, oj]];
                    }
                }
            }
        }
    }
    if relu {
        // ReLU's gradient after the pooling's, as `select(x > 0, dx, 0)`.
        ndarray::Zip::from(&mut dx).and(&x).for_each(|d, &v| {
            if v.partial_cmp(&T::ZERO) != Some(std::cmp::Ordering::Greater) {
                *d = T::ZERO;
            }
        });
    }
    Ok(dx.into_dyn())
}

/// `dl.max_pool2d_grad`: each window's `g` added at the input element
/// PyTorch's max_pool2d takes as the window's argmax (see the op's registry
/// entry), in window order; with `relu`, zero where `x > 0` does not hold.
pub fn max_pool2d_grad(op: &str, x: &Tensor, g: &Tensor, win: Window2d, relu: bool) -> Result<Tensor, InterpError> {
    match (x, g) {
        (Tensor::F32(a), Tensor::F32(b)) => Ok(Tensor::F32(max_pool2d_grad_real(op, a, b, win, relu)?)),
        (Tensor::F64(a), Tensor::F64(b)) => Ok(Tensor::F64(max_pool2d_grad_real(op, a, b, win, relu)?)),
        _ => Err(InterpError::unsupported(op, format!("needs two float tensors of one dtype, got {} and {}", x.describe(), g.describe()))),
    }
}
