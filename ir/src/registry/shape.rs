//! Shape helpers shared by the shape rules: broadcasting, axis normalization,
//! operand checks. Pure functions of types.

use crate::types::{DType, Dim, TensorType, Type};

/// Operand `i` as a tensor type, or an error naming it.
pub fn tensor(operands: &[Type], i: usize) -> Result<&TensorType, String> {
    operands[i].as_tensor().ok_or_else(|| format!("operand #{i} must be a tensor, got {}", operands[i]))
}

/// Operand `i` as a tensor of a float dtype.
pub fn float_tensor(operands: &[Type], i: usize) -> Result<&TensorType, String> {
    let t = tensor(operands, i)?;
    if !t.dtype.is_float() {
        return Err(format!("operand #{i} must have a float element type, got {t}"));
    }
    Ok(t)
}

/// Operand `i` as a tensor of an integer dtype (i32 or i64).
pub fn int_tensor(operands: &[Type], i: usize) -> Result<&TensorType, String> {
    let t = tensor(operands, i)?;
    if !t.dtype.is_int() {
        return Err(format!("operand #{i} must have an integer element type (i32 or i64), got {t}"));
    }
    Ok(t)
}

/// Checks that all listed tensors share one dtype, and returns it.
pub fn same_dtype(ts: &[&TensorType]) -> Result<DType, String> {
    let d = ts[0].dtype;
    if let Some(t) = ts.iter().find(|t| t.dtype != d) {
        return Err(format!("operands must have the same element type, got {} and {}", ts[0], t));
    }
    Ok(d)
}

/// NumPy broadcasting of two shapes, aligned at the right. A `?` broadcasts
/// with `?` or `1`; against any other static size it is an error, because the
/// batch size is not known until run time.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { Dim::Static(1) };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { Dim::Static(1) };
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (Dim::Static(1), y) => y,
            (x, Dim::Static(1)) => x,
            _ => {
                return Err(format!(
                    "shapes [{}] and [{}] do not broadcast (dim {} vs {})",
                    dims_str(a),
                    dims_str(b),
                    da,
                    db
                ));
            }
        });
    }
    Ok(out)
}

/// Writes dims as `?, 784`.
pub fn dims_str(d: &[Dim]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// Resolves a possibly negative axis against `rank`.
pub fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// Resolves a list of axes; they must be distinct.
pub fn axes(list: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(list.len());
    for &a in list {
        let x = axis(a, rank)?;
        if out.contains(&x) {
            return Err(format!("axis {a} is listed twice"));
        }
        out.push(x);
    }
    out.sort_unstable();
    Ok(out)
}

/// Decodes a shape attribute (`-1` is `?`).
pub fn dims_from_attr(v: &[i64]) -> Result<Vec<Dim>, String> {
    v.iter()
        .map(|&n| Dim::from_attr_int(n).ok_or_else(|| format!("invalid dimension {n} (use -1 for ?)")))
        .collect()
}

/// `n` positive integers from an attribute.
pub fn positive(name: &str, v: &[i64], n: usize) -> Result<Vec<u64>, String> {
    if v.len() != n || v.iter().any(|&x| x < 1) {
        return Err(format!("attribute '{name}' must be {n} positive integers, got {v:?}"));
    }
    Ok(v.iter().map(|&x| x as u64).collect())
}

/// `n` non-negative integers from an attribute.
pub fn non_negative(name: &str, v: &[i64], n: usize) -> Result<Vec<u64>, String> {
    if v.len() != n || v.iter().any(|&x| x < 0) {
        return Err(format!("attribute '{name}' must be {n} non-negative integers, got {v:?}"));
    }
    Ok(v.iter().map(|&x| x as u64).collect())
}

/// Output size of a sliding window: `(size + 2·pad − dilation·(k−1) − 1) / stride + 1`.
/// A `?` input gives a `?` output; a window larger than the padded input is an error.
/// The arithmetic is checked: sizes come from parsed text, which may hold anything.
pub fn window_out(size: Dim, k: u64, stride: u64, pad: u64, dilation: u64) -> Result<Dim, String> {
    if k == 0 || stride == 0 {
        return Err(format!("window size {k} and stride {stride} must be positive"));
    }
    match size {
        Dim::Dynamic => Ok(Dim::Dynamic),
        Dim::Static(n) => {
            let span = dilation.checked_mul(k - 1).and_then(|s| s.checked_add(1));
            let padded = pad.checked_mul(2).and_then(|p| p.checked_add(n));
            let (Some(span), Some(padded)) = (span, padded) else {
                return Err(format!("window {k} with dilation {dilation} and padding {pad} overflows 64 bits"));
            };
            if padded < span {
                return Err(format!("window of {span} does not fit input size {n} with padding {pad}"));
            }
            Ok(Dim::Static((padded - span) / stride + 1))
        }
    }
}

/// A single tensor result.
pub fn one(t: TensorType) -> Result<Vec<Type>, String> {
    Ok(vec![Type::Tensor(t)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dim::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast(&[Dynamic, Static(256)], &[Static(256)]).unwrap(), vec![Dynamic, Static(256)]);
        assert_eq!(broadcast(&[Static(3), Static(1)], &[Static(4)]).unwrap(), vec![Static(3), Static(4)]);
        assert_eq!(broadcast(&[Dynamic, Static(1)], &[Static(1), Static(5)]).unwrap(), vec![Dynamic, Static(5)]);
        assert!(broadcast(&[Static(3)], &[Static(4)]).is_err());
        assert!(broadcast(&[Dynamic], &[Static(4)]).is_err());
    }

    #[test]
    fn window_sizes() {
        assert_eq!(window_out(Static(28), 3, 1, 0, 1).unwrap(), Static(26));
        assert_eq!(window_out(Static(26), 2, 2, 0, 1).unwrap(), Static(13));
        assert_eq!(window_out(Static(5), 3, 2, 1, 1).unwrap(), Static(3));
        assert_eq!(window_out(Static(7), 3, 1, 0, 2).unwrap(), Static(3));
        assert!(window_out(Static(2), 3, 1, 0, 1).is_err());
    }
}
