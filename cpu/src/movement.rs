//! `dl.concat` as block copies: for each index of the dims before the axis,
//! each operand's contiguous block is copied in turn, so the result is
//! row-major however the operands were made (the pooling and convolution
//! gradients interleave zeros this way, and a column-major result would
//! make every later reshape a strided copy).

use crate::CpuError;
use dlc_backends::Tensor;
use ndarray::{ArrayD, IxDyn};

/// Concatenates `xs` (one dtype, equal dims but `axis`) along `axis`;
/// `None` when they do not fit, so the interpreter reports why.
pub(crate) fn concat(xs: &[&Tensor], axis: usize) -> Option<Result<Tensor, CpuError>> {
    let first = xs.first()?;
    let rank = first.rank();
    if axis >= rank || xs.iter().any(|t| t.rank() != rank || t.dtype() != first.dtype() || (0..rank).any(|d| d != axis && t.shape()[d] != first.shape()[d])) {
        return None;
    }
    let outer: usize = first.shape()[..axis].iter().product();
    let mut shape = first.shape().to_vec();
    shape[axis] = xs.iter().map(|t| t.shape()[axis]).sum();
    fn join<T: Clone + Default>(parts: &[&ArrayD<T>], outer: usize, shape: &[usize]) -> Result<ArrayD<T>, CpuError> {
        let blocks: Vec<std::borrow::Cow<'_, [T]>> = parts.iter().map(|a| crate::contiguous(a)).collect();
        let sizes: Vec<usize> = blocks.iter().map(|b| b.len() / outer.max(1)).collect();
        let row: usize = sizes.iter().sum();
        let mut out = vec![T::default(); row * outer];
        // Output rows in order (sequential writes); within a row, each piece's
        // block — single elements when stacking taps along a new last axis.
        for (o, dst) in out.chunks_exact_mut(row.max(1)).enumerate().take(outer) {
            let mut offset = 0;
            for (b, &n) in blocks.iter().zip(&sizes) {
                if n == 1 {
                    dst[offset] = b[o].clone();
                } else {
                    dst[offset..offset + n].clone_from_slice(&b[o * n..(o + 1) * n]);
                }
                offset += n;
            }
        }
        ArrayD::from_shape_vec(IxDyn(shape), out).map_err(|e| CpuError::Malformed(e.to_string()))
    }
    macro_rules! variant {
        ($v:ident) => {{
            let parts: Option<Vec<&ArrayD<_>>> = xs.iter().map(|t| match t {
                Tensor::$v(a) => Some(a),
                _ => None,
            }).collect();
            Some(join(&parts?, outer, &shape).map(Tensor::$v))
        }};
    }
    match first {
        Tensor::F32(_) => variant!(F32),
        Tensor::F64(_) => variant!(F64),
        Tensor::I32(_) => variant!(I32),
        Tensor::I64(_) => variant!(I64),
        Tensor::I1(_) => variant!(I1),
    }
}
