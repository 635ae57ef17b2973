//! `dl.concat` as block copies: for each index of the dims before the axis,
//! each operand's contiguous block is copied in turn, so the result is
//! row-major however the operands were made (the pooling and convolution
//! gradients interleave zeros this way, and a column-major result would
//! make every later reshape a strided copy).

use crate::CpuError;
use crate::exec::Contig;
use dlc_backends::Tensor;
use dlc_jit::BufferMut;
use ndarray::{ArrayD, IxDyn};

/// The output shape of `shapes` joined along `axis`; `None` when they do
/// not fit (so the interpreter reports why).
fn joined_shape(shapes: &[&[usize]], axis: usize) -> Option<Vec<usize>> {
    let first = shapes.first()?;
    let rank = first.len();
    if axis >= rank || shapes.iter().any(|s| s.len() != rank || (0..rank).any(|d| d != axis && s[d] != first[d])) {
        return None;
    }
    let mut shape = first.to_vec();
    shape[axis] = shapes.iter().map(|s| s[axis]).sum();
    Some(shape)
}

/// Copies `blocks` (row-major, joined along a dim with `outer` indices
/// before it) into `out`.
fn join<T: Clone>(blocks: &[&[T]], outer: usize, out: &mut [T]) {
    let sizes: Vec<usize> = blocks.iter().map(|b| b.len() / outer.max(1)).collect();
    let row: usize = sizes.iter().sum();
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
}

/// Concatenates `xs` (one dtype, equal dims but `axis`) along `axis` into a
/// new tensor; `None` when they do not fit.
pub(crate) fn concat(xs: &[&Tensor], axis: usize) -> Option<Result<Tensor, CpuError>> {
    let first = xs.first()?;
    let shapes: Vec<&[usize]> = xs.iter().map(|t| t.shape()).collect();
    let shape = joined_shape(&shapes, axis)?;
    if xs.iter().any(|t| t.dtype() != first.dtype()) {
        return None;
    }
    let outer: usize = shape[..axis].iter().product();
    fn go<T: Clone + Default>(parts: &[&ArrayD<T>], outer: usize, shape: &[usize]) -> Result<ArrayD<T>, CpuError> {
        let blocks: Vec<std::borrow::Cow<'_, [T]>> = parts.iter().map(|a| crate::exec::contiguous(a)).collect();
        let views: Vec<&[T]> = blocks.iter().map(|b| &**b).collect();
        let mut out = vec![T::default(); shape.iter().product()];
        join(&views, outer, &mut out);
        ArrayD::from_shape_vec(IxDyn(shape), out).map_err(|e| CpuError::Malformed(e.to_string()))
    }
    macro_rules! variant {
        ($v:ident) => {{
            let parts: Option<Vec<&ArrayD<_>>> = xs.iter().map(|t| match t {
                Tensor::$v(a) => Some(a),
                _ => None,
            }).collect();
            Some(go(&parts?, outer, &shape).map(Tensor::$v))
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

/// Concatenates `xs` (contiguous elements and shapes) along `axis` into
/// `out`; false when they do not fit it (dtypes, dims or length).
pub(crate) fn concat_into(xs: &[(&Contig<'_>, &[usize])], axis: usize, out: BufferMut<'_>) -> bool {
    let shapes: Vec<&[usize]> = xs.iter().map(|x| x.1).collect();
    let Some(shape) = joined_shape(&shapes, axis) else { return false };
    if shape.iter().product::<usize>() != out.len() || xs.iter().any(|(c, s)| c.len() != s.iter().product::<usize>()) {
        return false;
    }
    let outer: usize = shape[..axis].iter().product();
    macro_rules! variant {
        ($v:ident, $o:expr) => {{
            let blocks: Option<Vec<_>> = xs.iter().map(|x| match x.0 {
                Contig::$v(b) => Some(&**b),
                _ => None,
            }).collect();
            match blocks {
                Some(b) => {
                    join(&b, outer, $o);
                    true
                }
                None => false,
            }
        }};
    }
    match out {
        BufferMut::F32(o) => variant!(F32, o),
        BufferMut::F64(o) => variant!(F64, o),
        BufferMut::I1(o) => variant!(I1, o),
    }
}
