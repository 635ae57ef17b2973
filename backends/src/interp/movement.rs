//! Movement ops: they copy elements to new positions and never do arithmetic,
//! so they are written once for every dtype (`map_array!`). An index outside
//! its table (gather, one-hot) is an [`InterpError::IndexOutOfRange`].

use super::error::InterpError;
use crate::tensor::{Tensor, map_array};
use dlc_ir::DType;
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

/// The elements of `a` in row-major order.
fn row_major<T: Copy>(a: ArrayViewD<'_, T>) -> Vec<T> {
    a.iter().copied().collect()
}

fn shaped<T>(op: &str, shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, InterpError> {
    let n = data.len();
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|_| InterpError::malformed(op, format!("cannot arrange {n} elements as {shape:?}")))
}

/// `dl.reshape` to a resolved shape (the batch already substituted for `-1`).
pub fn reshape(op: &str, x: &Tensor, shape: &[usize]) -> Result<Tensor, InterpError> {
    Ok(map_array!(x, a => shaped(op, shape, row_major(a.view()))?))
}

/// `dl.transpose`: result dim `i` is input dim `perm[i]`.
pub fn transpose(op: &str, x: &Tensor, perm: &[i64]) -> Result<Tensor, InterpError> {
    let rank = x.rank();
    let mut seen = vec![false; rank];
    let valid = perm.len() == rank
        && perm.iter().all(|&p| usize::try_from(p).is_ok_and(|i| i < rank && !std::mem::replace(&mut seen[i], true)));
    if !valid {
        return Err(InterpError::malformed(op, format!("perm {perm:?} is not a permutation of 0..{rank}")));
    }
    let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
    Ok(map_array!(x, a => {
        let v = a.view().permuted_axes(perm.clone());
        let shape = v.shape().to_vec();
        shaped(op, &shape, row_major(v))?
    }))
}

/// `dl.broadcast_to` a resolved shape.
pub fn broadcast_to(op: &str, x: &Tensor, shape: &[usize]) -> Result<Tensor, InterpError> {
    Ok(map_array!(x, a => match a.broadcast(IxDyn(shape)) {
        Some(v) => shaped(op, shape, row_major(v))?,
        None => return Err(InterpError::malformed(op, format!("{:?} does not broadcast to {shape:?}", a.shape()))),
    }))
}

/// `dl.concat` along a resolved axis.
pub fn concat(op: &str, xs: &[&Tensor], axis: usize) -> Result<Tensor, InterpError> {
    fn join<T: Clone>(op: &str, parts: &[&ArrayD<T>], axis: usize) -> Result<ArrayD<T>, InterpError> {
        let views: Vec<ArrayViewD<'_, T>> = parts.iter().map(|a| a.view()).collect();
        ndarray::concatenate(Axis(axis), &views)
            .map_err(|e| InterpError::malformed(op, format!("operands do not concatenate along axis {axis}: {e}")))
    }
    let first = xs.first().ok_or_else(|| InterpError::malformed(op, "needs at least one operand"))?;
    if axis >= first.rank() {
        return Err(InterpError::malformed(op, format!("axis {axis} is out of range for rank {}", first.rank())));
    }
    // ndarray's concatenate panics (rather than failing) on a rank mismatch.
    let fits = |t: &&Tensor| {
        t.rank() == first.rank() && t.shape().iter().zip(first.shape()).enumerate().all(|(i, (a, b))| i == axis || a == b)
    };
    if let Some(bad) = xs.iter().find(|t| !fits(t)) {
        return Err(InterpError::malformed(
            op,
            format!("{} and {} differ outside axis {axis}", first.describe(), bad.describe()),
        ));
    }
    let mismatch = || {
        let all: Vec<String> = xs.iter().map(|t| t.describe()).collect();
        InterpError::unsupported(op, format!("operands must have one dtype, got {}", all.join(", ")))
    };
    macro_rules! gather_variant {
        ($v:ident) => {{
            let parts: Option<Vec<_>> = xs.iter().map(|t| if let Tensor::$v(a) = t { Some(a) } else { None }).collect();
            Tensor::$v(join(op, &parts.ok_or_else(mismatch)?, axis)?)
        }};
    }
    Ok(match first {
        Tensor::F32(_) => gather_variant!(F32),
        Tensor::F64(_) => gather_variant!(F64),
        Tensor::I32(_) => gather_variant!(I32),
        Tensor::I64(_) => gather_variant!(I64),
        Tensor::I1(_) => gather_variant!(I1),
    })
}

/// `dl.slice`: indices `start, start+step, … < end` along `axis`.
pub fn slice(op: &str, x: &Tensor, axis: usize, start: i64, end: i64, step: i64) -> Result<Tensor, InterpError> {
    let size = x.shape().get(axis).copied();
    let ok = size.is_some_and(|n| step >= 1 && 0 <= start && start <= end && end <= n as i64);
    if !ok {
        return Err(InterpError::malformed(
            op,
            format!("slice [{start}:{end}:{step}] does not fit axis {axis} of {}", x.describe()),
        ));
    }
    let s = Slice::new(start as isize, Some(end as isize), step as isize);
    Ok(map_array!(x, a => a.slice_axis(Axis(axis), s).to_owned()))
}

/// Checks integer indices against `[0, bound)` and returns them as `usize`.
fn indices(op: &str, idx: &Tensor, bound: usize) -> Result<Vec<usize>, InterpError> {
    let raw: Vec<i64> = match idx {
        Tensor::I32(a) => a.iter().map(|&i| i as i64).collect(),
        Tensor::I64(a) => a.iter().copied().collect(),
        other => {
            return Err(InterpError::unsupported(op, format!("indices must be i32 or i64, got {}", other.describe())));
        }
    };
    raw.into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .filter(|&u| u < bound)
                .ok_or_else(|| InterpError::IndexOutOfRange { op: op.to_string(), index: i, bound })
        })
        .collect()
}

/// `dl.gather`: `table[..., idx, ...]` along `axis`; the result's shape is
/// `table.shape[..axis] ++ idx.shape ++ table.shape[axis+1..]`.
pub fn gather(op: &str, table: &Tensor, idx: &Tensor, axis: usize) -> Result<Tensor, InterpError> {
    let tshape = table.shape();
    let Some(&bound) = tshape.get(axis) else {
        return Err(InterpError::malformed(op, format!("axis {axis} is out of range for {}", table.describe())));
    };
    let picks = indices(op, idx, bound)?;
    let mut shape = tshape[..axis].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&tshape[axis + 1..]);
    Ok(map_array!(table, a => {
        let picked = a.select(Axis(axis), &picks);
        shaped(op, &shape, row_major(picked.view()))?
    }))
}

/// `dl.one_hot`: a new last axis of size `num_classes`, 1 at each index.
pub fn one_hot(op: &str, idx: &Tensor, num_classes: i64, dtype: DType) -> Result<Tensor, InterpError> {
    let n = usize::try_from(num_classes)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| InterpError::malformed(op, format!("num_classes must be positive, got {num_classes}")))?;
    let picks = indices(op, idx, n)?;
    let mut hot = vec![0.0f64; picks.len() * n];
    for (row, &k) in picks.iter().enumerate() {
        hot[row * n + k] = 1.0;
    }
    let mut shape = idx.shape().to_vec();
    shape.push(n);
    let t = Tensor::F64(shaped(op, &shape, hot)?);
    Ok(super::elementwise::cast(&t, dtype))
}
