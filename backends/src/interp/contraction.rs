//! Contractions: batched matmul and 2-D convolution.
//!
//! Both widen their operands to f64, multiply with `ndarray`'s `dot` (a
//! blocked GEMM, so training small models on the interpreter stays quick) and
//! round each result once: the dot products accumulate in f64, like every
//! other sum of the oracle. Convolution is lowered to one matrix product per
//! image (im2col), which keeps its index arithmetic in one readable loop.

use super::elementwise::{broadcast_shapes, stretch};
use super::error::InterpError;
use super::scalar::Real;
use crate::tensor::Tensor;
use ndarray::{Array2, ArrayD, Axis, Ix3, IxDyn};

/// Copies `a` widened to f64, in row-major order, as `[batch, rows, cols]`.
fn batched_f64<T: Real>(op: &str, a: &ArrayD<T>, batch: &[usize]) -> Result<ndarray::Array3<f64>, InterpError> {
    let r = a.ndim();
    let mut full = batch.to_vec();
    full.extend_from_slice(&a.shape()[r - 2..]);
    let data: Vec<f64> = stretch(op, a, &full)?.iter().map(|x| x.to_f64()).collect();
    let n = batch.iter().product();
    Ok(ArrayD::from_shape_vec(IxDyn(&[n, a.shape()[r - 2], a.shape()[r - 1]]), data)
        .expect("element count matches")
        .into_dimensionality::<Ix3>()
        .expect("rank 3"))
}

fn matmul_real<T: Real>(op: &str, a: &ArrayD<T>, b: &ArrayD<T>, ta: bool, tb: bool) -> Result<ArrayD<T>, InterpError> {
    if a.ndim() < 2 || b.ndim() < 2 {
        return Err(InterpError::malformed(op, format!("operands need rank >= 2, got {:?} and {:?}", a.shape(), b.shape())));
    }
    let batch = broadcast_shapes(op, &[&a.shape()[..a.ndim() - 2], &b.shape()[..b.ndim() - 2]])?;
    let (xa, xb) = (batched_f64(op, a, &batch)?, batched_f64(op, b, &batch)?);
    let mut out = Vec::new();
    let (mut m, mut n) = (0, 0);
    for i in 0..xa.len_of(Axis(0)) {
        let mut x = xa.index_axis(Axis(0), i);
        let mut y = xb.index_axis(Axis(0), i);
        if ta {
            x = x.reversed_axes();
        }
        if tb {
            y = y.reversed_axes();
        }
        if x.ncols() != y.nrows() {
            return Err(InterpError::malformed(op, format!("contracted dims differ: {} and {}", x.ncols(), y.nrows())));
        }
        let z = x.dot(&y);
        (m, n) = z.dim();
        out.extend(z.iter().map(|&v| T::of(v)));
    }
    if xa.len_of(Axis(0)) == 0 {
        // No batch element to measure: take m and n from the operand shapes.
        let (ra, rb) = (a.ndim(), b.ndim());
        m = if ta { a.shape()[ra - 1] } else { a.shape()[ra - 2] };
        n = if tb { b.shape()[rb - 2] } else { b.shape()[rb - 1] };
    }
    let mut shape = batch;
    shape.extend([m, n]);
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("one value per output element"))
}

/// `dl.matmul`: `a[..., m, k] @ b[..., k, n]` with optional transposes of the
/// last two dims and broadcasting leading dims.
pub fn matmul(op: &str, a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor, InterpError> {
    match (a, b) {
        (Tensor::F32(x), Tensor::F32(y)) => Ok(Tensor::F32(matmul_real(op, x, y, transpose_a, transpose_b)?)),
        (Tensor::F64(x), Tensor::F64(y)) => Ok(Tensor::F64(matmul_real(op, x, y, transpose_a, transpose_b)?)),
        _ => Err(InterpError::unsupported(
            op,
            format!("needs two float tensors of one dtype, got {} and {}", a.describe(), b.describe()),
        )),
    }
}

/// Stride, padding and dilation of a 2-D window, `[h, w]` each.
#[derive(Copy, Clone, Debug)]
pub struct Window2d {
    /// Window size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Padding on each side.
    pub padding: [usize; 2],
    /// Spacing of kernel taps.
    pub dilation: [usize; 2],
}

impl Window2d {
    /// Output size along dim `d` (0 = height, 1 = width) for an input of `size`,
    /// or `None` when the dilated window does not fit the padded input.
    pub fn out_size(&self, d: usize, size: usize) -> Option<usize> {
        let span = self.dilation[d] * (self.kernel[d].checked_sub(1)?) + 1;
        let padded = size + 2 * self.padding[d];
        (padded >= span && self.stride[d] > 0).then(|| (padded - span) / self.stride[d] + 1)
    }

    /// The input coordinate of kernel tap `k` of output position `o`, or `None`
    /// when it falls in the padding.
    pub fn source(&self, d: usize, o: usize, k: usize, size: usize) -> Option<usize> {
        let pos = (o * self.stride[d] + k * self.dilation[d]).checked_sub(self.padding[d])?;
        (pos < size).then_some(pos)
    }
}

fn conv2d_real<T: Real>(op: &str, x: &ArrayD<T>, w: &ArrayD<T>, win: Window2d) -> Result<ArrayD<T>, InterpError> {
    let (Ok(x), Ok(w)) = (x.view().into_dimensionality::<ndarray::Ix4>(), w.view().into_dimensionality::<ndarray::Ix4>())
    else {
        return Err(InterpError::malformed(op, format!("needs [N,C,H,W] and [O,C,KH,KW], got {:?} and {:?}", x.shape(), w.shape())));
    };
    let (n, c, h, wd) = x.dim();
    let (o, wc, kh, kw) = w.dim();
    if wc != c {
        return Err(InterpError::malformed(op, format!("input has {c} channels, the weight expects {wc}")));
    }
    let win = Window2d { kernel: [kh, kw], ..win };
    let (Some(oh), Some(ow)) = (win.out_size(0, h), win.out_size(1, wd)) else {
        return Err(InterpError::malformed(op, format!("a {kh}x{kw} kernel does not fit the {h}x{wd} input")));
    };
    // The weight as a [O, C*KH*KW] matrix; each image as its im2col matrix
    // [C*KH*KW, OH*OW], whose columns are the (zero-padded) input windows.
    let taps = c * kh * kw;
    let wmat = Array2::from_shape_vec((o, taps), w.iter().map(|v| v.to_f64()).collect()).expect("O*C*KH*KW elements");
    let mut out = Vec::with_capacity(n * o * oh * ow);
    for img in 0..n {
        let mut cols = Array2::<f64>::zeros((taps, oh * ow));
        for ch in 0..c {
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = (ch * kh + ki) * kw + kj;
                    for oi in 0..oh {
                        let Some(ii) = win.source(0, oi, ki, h) else { continue };
                        for oj in 0..ow {
                            if let Some(jj) = win.source(1, oj, kj, wd) {
                                cols[[row, oi * ow + oj]] = x[[img, ch, ii, jj]].to_f64();
                            }
                        }
                    }
                }
            }
        }
        out.extend(wmat.dot(&cols).iter().map(|&v| T::of(v)));
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&[n, o, oh, ow]), out).expect("N*O*OH*OW elements"))
}

/// `dl.conv2d`: cross-correlation of `x [N,C,H,W]` with `w [O,C,KH,KW]`,
/// zero padding, stride and dilation (the kernel size comes from `w`).
pub fn conv2d(op: &str, x: &Tensor, w: &Tensor, win: Window2d) -> Result<Tensor, InterpError> {
    match (x, w) {
        (Tensor::F32(a), Tensor::F32(b)) => Ok(Tensor::F32(conv2d_real(op, a, b, win)?)),
        (Tensor::F64(a), Tensor::F64(b)) => Ok(Tensor::F64(conv2d_real(op, a, b, win)?)),
        _ => Err(InterpError::unsupported(
            op,
            format!("needs two float tensors of one dtype, got {} and {}", x.describe(), w.describe()),
        )),
    }
}
