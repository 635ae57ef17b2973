//! Reductions over a set of axes: sum, mean, max, argmax.
//!
//! Float sums and means accumulate in f64 with compensation
//! ([`super::scalar::sum_f64`]) and round once, so the oracle is at least as
//! accurate as any backend it judges (whose f32 sums depend on their order).
//! Integer sums wrap in their own dtype, as PyTorch's would after a cast back.

use super::error::InterpError;
use super::scalar::{Elem, Num, Real, sum_f64};
use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};

/// Resolves a list of axes against `rank` (negatives count from the end).
pub fn resolve_axes(op: &str, list: &[i64], rank: usize) -> Result<Vec<usize>, InterpError> {
    dlc_ir::registry::shape::axes(list, rank).map_err(|m| InterpError::malformed(op, m))
}

/// Calls `f` on the elements of every output position's reduced axes (in
/// row-major order) and shapes the answers as the reduction's result.
fn reduce_rows<T: Copy, U>(
    a: &ArrayD<T>,
    axes: &[usize],
    keepdims: bool,
    mut f: impl FnMut(&[T]) -> Result<U, InterpError>,
) -> Result<ArrayD<U>, InterpError> {
    let shape = a.shape();
    let kept: Vec<usize> = (0..a.ndim()).filter(|i| !axes.contains(i)).collect();
    let inner: usize = axes.iter().map(|&i| shape[i]).product();
    let outer: usize = kept.iter().map(|&i| shape[i]).product();
    // Moving the reduced axes last makes every output's inputs one contiguous row.
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let data: Vec<T> = a.view().permuted_axes(perm).iter().copied().collect();
    let mut out = Vec::with_capacity(outer);
    for r in 0..outer {
        out.push(f(&data[r * inner..(r + 1) * inner])?);
    }
    let out_shape: Vec<usize> = (0..a.ndim())
        .filter_map(|i| if axes.contains(&i) { keepdims.then_some(1) } else { Some(shape[i]) })
        .collect();
    Ok(ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("one answer per output element"))
}

fn sum_real<T: Real>(a: &ArrayD<T>, axes: &[usize], keepdims: bool) -> Result<ArrayD<T>, InterpError> {
    reduce_rows(a, axes, keepdims, |row| Ok(T::of(sum_f64(row.iter().map(|x| x.to_f64())))))
}

fn sum_int<T: Num>(a: &ArrayD<T>, axes: &[usize], keepdims: bool) -> Result<ArrayD<T>, InterpError> {
    reduce_rows(a, axes, keepdims, |row| Ok(row.iter().fold(T::ZERO, |s, &x| s.add(x))))
}

/// `dl.reduce_sum`.
pub fn reduce_sum(op: &str, x: &Tensor, axes: &[usize], keepdims: bool) -> Result<Tensor, InterpError> {
    Ok(match x {
        Tensor::F32(a) => Tensor::F32(sum_real(a, axes, keepdims)?),
        Tensor::F64(a) => Tensor::F64(sum_real(a, axes, keepdims)?),
        Tensor::I32(a) => Tensor::I32(sum_int(a, axes, keepdims)?),
        Tensor::I64(a) => Tensor::I64(sum_int(a, axes, keepdims)?),
        Tensor::I1(_) => return Err(InterpError::unsupported(op, "cannot sum booleans (cast them first)")),
    })
}

fn mean_real<T: Real>(a: &ArrayD<T>, axes: &[usize], keepdims: bool) -> Result<ArrayD<T>, InterpError> {
    // An empty row gives 0/0 = NaN, as torch.mean does.
    reduce_rows(a, axes, keepdims, |row| Ok(T::of(sum_f64(row.iter().map(|x| x.to_f64())) / row.len() as f64)))
}

/// `dl.reduce_mean` (floats).
pub fn reduce_mean(op: &str, x: &Tensor, axes: &[usize], keepdims: bool) -> Result<Tensor, InterpError> {
    match x {
        Tensor::F32(a) => Ok(Tensor::F32(mean_real(a, axes, keepdims)?)),
        Tensor::F64(a) => Ok(Tensor::F64(mean_real(a, axes, keepdims)?)),
        _ => Err(InterpError::unsupported(op, format!("needs a float tensor, got {}", x.describe()))),
    }
}

fn max_of<T: Num>(op: &str, a: &ArrayD<T>, axes: &[usize], keepdims: bool) -> Result<ArrayD<T>, InterpError> {
    reduce_rows(a, axes, keepdims, |row| {
        let (&first, rest) = row
            .split_first()
            .ok_or_else(|| InterpError::EmptyReduction { op: op.to_string(), what: "the maximum" })?;
        Ok(rest.iter().fold(first, |m, &x| m.nan_max(x)))
    })
}

/// `dl.reduce_max`: NaN anywhere in a row makes that row's maximum NaN.
pub fn reduce_max(op: &str, x: &Tensor, axes: &[usize], keepdims: bool) -> Result<Tensor, InterpError> {
    Ok(match x {
        Tensor::F32(a) => Tensor::F32(max_of(op, a, axes, keepdims)?),
        Tensor::F64(a) => Tensor::F64(max_of(op, a, axes, keepdims)?),
        Tensor::I32(a) => Tensor::I32(max_of(op, a, axes, keepdims)?),
        Tensor::I64(a) => Tensor::I64(max_of(op, a, axes, keepdims)?),
        Tensor::I1(_) => return Err(InterpError::unsupported(op, "cannot reduce booleans (cast them first)")),
    })
}

fn argmax_of<T: Elem>(op: &str, a: &ArrayD<T>, axis: usize, keepdims: bool) -> Result<ArrayD<i64>, InterpError> {
    reduce_rows(a, &[axis], keepdims, |row| {
        if row.is_empty() {
            return Err(InterpError::EmptyReduction { op: op.to_string(), what: "argmax" });
        }
        // The first maximum wins; a NaN counts as larger than everything, so
        // the first NaN wins over all (torch.argmax does the same).
        let mut best = 0;
        for (i, &x) in row.iter().enumerate().skip(1) {
            if row[best].is_nan() {
                break;
            }
            if x.is_nan() || x > row[best] {
                best = i;
            }
        }
        Ok(best as i64)
    })
}

/// `dl.argmax`: the index (i64) of the first maximum along `axis`.
pub fn argmax(op: &str, x: &Tensor, axis: usize, keepdims: bool) -> Result<Tensor, InterpError> {
    Ok(Tensor::I64(crate::tensor::with_array!(x, a => argmax_of(op, a, axis, keepdims)?)))
}
