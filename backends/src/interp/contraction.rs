//! Contractions: batched matmul and 2-D convolution.
//!
//! Both widen their operands to f64, multiply with `ndarray`'s `dot` (a
//! blocked GEMM, so training small models on the interpreter stays quick) and
//! round each result once: the dot products accumulate in f64, like every
//! other sum of the oracle. Convolution is lowered to one matrix product per
//! image (im2col), which keeps its index arithmetic in one readable loop
//! ([`Conv::taps_of`]); its two gradients walk the same loop, the input
//! gradient adding each column-matrix entry back where it was read from.

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

/// The checked geometry of a convolution of `[N, C, H, W]` by `[O, C, KH, KW]`
/// giving `[N, O, OH, OW]`.
#[derive(Copy, Clone, Debug)]
struct Conv {
    n: usize,
    c: usize,
    size: [usize; 2],
    o: usize,
    out: [usize; 2],
    win: Window2d,
}

impl Conv {
    /// `x [N, C, H, W]` by `w [O, C, KH, KW]` with `win`'s stride, padding and dilation.
    fn new(op: &str, x: &[usize], w: &[usize], win: Window2d) -> Result<Conv, InterpError> {
        let (&[n, c, h, wd], &[o, wc, kh, kw]) = (x, w) else {
            return Err(InterpError::malformed(op, format!("needs [N,C,H,W] and [O,C,KH,KW], got {x:?} and {w:?}")));
        };
        if wc != c {
            return Err(InterpError::malformed(op, format!("input has {c} channels, the weight expects {wc}")));
        }
        let win = Window2d { kernel: [kh, kw], ..win };
        // Window2d's arithmetic is unchecked: sizes from parsed text may hold anything.
        let fits = [(h, kh), (wd, kw)].iter().enumerate().all(|(d, &(size, k))| {
            let padded = win.padding[d].checked_mul(2).and_then(|p| p.checked_add(size));
            let span = win.dilation[d].checked_mul(k.saturating_sub(1)).and_then(|s| s.checked_add(1));
            padded.is_some() && span.is_some()
        });
        let (true, Some(oh), Some(ow)) = (fits, win.out_size(0, h), win.out_size(1, wd)) else {
            return Err(InterpError::malformed(op, format!("a {kh}x{kw} kernel does not fit the {h}x{wd} input")));
        };
        let elements = [n, c, h, wd, o, kh, kw, oh, ow].iter().try_fold(1usize, |a, &d| a.checked_mul(d.max(1)));
        if elements.is_none() {
            return Err(InterpError::unsupported(op, format!("a convolution of {x:?} by {w:?} is too large to interpret")));
        }
        Ok(Conv { n, c, size: [h, wd], o, out: [oh, ow], win })
    }

    /// Rows of the column matrix: one per (channel, tap).
    fn taps(&self) -> usize {
        self.c * self.win.kernel[0] * self.win.kernel[1]
    }

    /// Output positions per image.
    fn points(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// Every (row of the column matrix, output position, input element of
    /// image `img`'s `[C, H, W]` block) that a tap reads, skipping the padding.
    fn taps_of(&self, mut f: impl FnMut(usize, usize, usize)) {
        let ([kh, kw], [h, wd], [oh, ow]) = (self.win.kernel, self.size, self.out);
        for ch in 0..self.c {
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = (ch * kh + ki) * kw + kj;
                    for oi in 0..oh {
                        let Some(ii) = self.win.source(0, oi, ki, h) else { continue };
                        for oj in 0..ow {
                            if let Some(jj) = self.win.source(1, oj, kj, wd) {
                                f(row, oi * ow + oj, (ch * h + ii) * wd + jj);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Image `img` of `x` (row-major `[N, C, H, W]`) as its im2col matrix
    /// `[C·KH·KW, OH·OW]`, whose columns are the (zero-padded) input windows.
    fn im2col<T: Real>(&self, x: &[T], img: usize) -> Array2<f64> {
        let x = &x[img * self.c * self.size[0] * self.size[1]..];
        let mut cols = Array2::<f64>::zeros((self.taps(), self.points()));
        self.taps_of(|row, p, at| cols[[row, p]] = x[at].to_f64());
        cols
    }

    /// `m` (`[rows, cols]`, row-major elements of image `img`) widened to f64.
    fn matrix<T: Real>(data: &[T], img: usize, rows: usize, cols: usize) -> Array2<f64> {
        let block = &data[img * rows * cols..(img + 1) * rows * cols];
        Array2::from_shape_vec((rows, cols), block.iter().map(|v| v.to_f64()).collect()).expect("rows*cols elements")
    }
}

/// Row-major elements of `a`, reading in place when it is contiguous.
fn elements<T: Real>(a: &ArrayD<T>) -> std::borrow::Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

fn conv2d_real<T: Real>(op: &str, x: &ArrayD<T>, w: &ArrayD<T>, win: Window2d) -> Result<ArrayD<T>, InterpError> {
    let cv = Conv::new(op, x.shape(), w.shape(), win)?;
    let (xs, ws) = (elements(x), elements(w));
    // y_img [O, OH·OW] = W [O, C·KH·KW] · cols [C·KH·KW, OH·OW].
    let wmat = Conv::matrix(&ws, 0, cv.o, cv.taps());
    let mut out = Vec::with_capacity(cv.n * cv.o * cv.points());
    for img in 0..cv.n {
        out.extend(wmat.dot(&cv.im2col(&xs, img)).iter().map(|&v| T::of(v)));
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&[cv.n, cv.o, cv.out[0], cv.out[1]]), out).expect("N*O*OH*OW elements"))
}

/// Checks that `g` has the shape a convolution gives.
fn check_grad(op: &str, cv: &Conv, g: &[usize]) -> Result<(), InterpError> {
    if g != [cv.n, cv.o, cv.out[0], cv.out[1]] {
        return Err(InterpError::malformed(op, format!("the output gradient is {g:?}, the convolution gives {:?}", [cv.n, cv.o, cv.out[0], cv.out[1]])));
    }
    Ok(())
}

/// `dx[n,c,h,w] = Σ g[n,o,a,b]·w[o,c,i,j]` over `h = a·s + i·d − p` (and
/// `w` likewise): per image, `cols = Wᵀ · g` and each column-matrix entry
/// added (in f64) into the input element that tap read, rounded once.
fn conv2d_grad_input_real<T: Real>(op: &str, g: &ArrayD<T>, w: &ArrayD<T>, win: Window2d, size: [usize; 2]) -> Result<ArrayD<T>, InterpError> {
    let (gs, wsh) = (g.shape(), w.shape());
    if gs.len() != 4 || wsh.len() != 4 {
        return Err(InterpError::malformed(op, format!("needs [N,O,OH,OW] and [O,C,KH,KW], got {gs:?} and {wsh:?}")));
    }
    let cv = Conv::new(op, &[gs[0], wsh[1], size[0], size[1]], wsh, win)?;
    check_grad(op, &cv, gs)?;
    let (gd, wd) = (elements(g), elements(w));
    let wmat = Conv::matrix(&wd, 0, cv.o, cv.taps());
    let img_len = cv.c * size[0] * size[1];
    let mut out = Vec::with_capacity(cv.n * img_len);
    for img in 0..cv.n {
        let cols = wmat.t().dot(&Conv::matrix(&gd, img, cv.o, cv.points()));
        let mut dx = vec![0.0f64; img_len];
        cv.taps_of(|row, p, at| dx[at] += cols[[row, p]]);
        out.extend(dx.into_iter().map(T::of));
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&[cv.n, cv.c, size[0], size[1]]), out).expect("N*C*H*W elements"))
}

/// `dW[o,c,i,j] = Σ_{n,a,b} g[n,o,a,b]·x[n,c,a·s+i·d−p, b·s+j·d−p]`:
/// `Σ_images g · im2col(x)ᵀ`, summed in f64 and rounded once.
fn conv2d_grad_weight_real<T: Real>(op: &str, x: &ArrayD<T>, g: &ArrayD<T>, win: Window2d, kernel: [usize; 2]) -> Result<ArrayD<T>, InterpError> {
    let (xs, gs) = (x.shape(), g.shape());
    if xs.len() != 4 || gs.len() != 4 {
        return Err(InterpError::malformed(op, format!("needs [N,C,H,W] and [N,O,OH,OW], got {xs:?} and {gs:?}")));
    }
    let cv = Conv::new(op, xs, &[gs[1], xs[1], kernel[0], kernel[1]], win)?;
    check_grad(op, &cv, gs)?;
    let (xd, gd) = (elements(x), elements(g));
    let mut dw = Array2::<f64>::zeros((cv.o, cv.taps()));
    for img in 0..cv.n {
        dw += &Conv::matrix(&gd, img, cv.o, cv.points()).dot(&cv.im2col(&xd, img).t());
    }
    let out = dw.iter().map(|&v| T::of(v)).collect();
    Ok(ArrayD::from_shape_vec(IxDyn(&[cv.o, cv.c, kernel[0], kernel[1]]), out).expect("O*C*KH*KW elements"))
}

/// Two float tensors of one dtype, or the error saying what they are.
macro_rules! floats {
    ($op:expr, $a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {
        match ($a, $b) {
            (Tensor::F32($x), Tensor::F32($y)) => Ok(Tensor::F32($body?)),
            (Tensor::F64($x), Tensor::F64($y)) => Ok(Tensor::F64($body?)),
            (a, b) => Err(InterpError::unsupported($op, format!("needs two float tensors of one dtype, got {} and {}", a.describe(), b.describe()))),
        }
    };
}

/// `dl.conv2d`: cross-correlation of `x [N,C,H,W]` with `w [O,C,KH,KW]`,
/// zero padding, stride and dilation (the kernel size comes from `w`).
pub fn conv2d(op: &str, x: &Tensor, w: &Tensor, win: Window2d) -> Result<Tensor, InterpError> {
    floats!(op, x, w, |a, b| conv2d_real(op, a, b, win))
}

/// `dl.conv2d_grad_input`: the gradient `[N, C, H, W]` (`size` = `[H, W]`)
/// of a conv2d by `w` whose output gradient is `g`.
pub fn conv2d_grad_input(op: &str, g: &Tensor, w: &Tensor, win: Window2d, size: [usize; 2]) -> Result<Tensor, InterpError> {
    floats!(op, g, w, |a, b| conv2d_grad_input_real(op, a, b, win, size))
}

/// `dl.conv2d_grad_weight`: the gradient `[O, C, KH, KW]` (`kernel` =
/// `[KH, KW]`) of a conv2d of `x` whose output gradient is `g`.
pub fn conv2d_grad_weight(op: &str, x: &Tensor, g: &Tensor, win: Window2d, kernel: [usize; 2]) -> Result<Tensor, InterpError> {
    floats!(op, x, g, |a, b| conv2d_grad_weight_real(op, a, b, win, kernel))
}
