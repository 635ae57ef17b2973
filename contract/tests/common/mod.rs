//! Shared test helpers: random data, naive reference loops (written here,
//! independently of the crate), the interpreter as a second oracle, and the
//! tolerance check.
#![allow(dead_code)]

use dlc_backends::{Tensor, eval_op};
use dlc_contract::Element;
use dlc_ir::{Attr, Attrs, OpKind};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A float dtype under test, with its tolerance and its interpreter tensor.
pub trait Float: Element + Into<f64> + Default {
    /// Relative tolerance per term of a dot product (see [`assert_close`]).
    const RTOL: f64;
    const NAME: &'static str;
    fn of(v: f64) -> Self;
    fn tensor(data: &[Self], shape: &[usize]) -> Tensor;
    fn values(t: &Tensor) -> Vec<Self>;
}

impl Float for f32 {
    const RTOL: f64 = 1e-5;
    const NAME: &'static str = "f32";
    fn of(v: f64) -> Self {
        v as f32
    }
    fn tensor(data: &[Self], shape: &[usize]) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
    }
    fn values(t: &Tensor) -> Vec<Self> {
        match t {
            Tensor::F32(a) => a.iter().copied().collect(),
            other => panic!("expected f32, got {other:?}"),
        }
    }
}

impl Float for f64 {
    const RTOL: f64 = 1e-12;
    const NAME: &'static str = "f64";
    fn of(v: f64) -> Self {
        v
    }
    fn tensor(data: &[Self], shape: &[usize]) -> Tensor {
        Tensor::F64(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
    }
    fn values(t: &Tensor) -> Vec<Self> {
        match t {
            Tensor::F64(a) => a.iter().copied().collect(),
            other => panic!("expected f64, got {other:?}"),
        }
    }
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `len` values uniform in [-1, 1).
pub fn random<T: Float>(rng: &mut ChaCha8Rng, len: usize) -> Vec<T> {
    (0..len).map(|_| T::of(rng.random_range(-1.0..1.0))).collect()
}

/// A reference value: the exact-ish result (f64 sums) and `Σ|terms|`, the
/// scale its rounding error is bounded by.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ref {
    pub value: f64,
    pub scale: f64,
}

impl Ref {
    pub fn add(&mut self, a: f64, b: f64) {
        self.value += a * b;
        self.scale += (a * b).abs();
    }
}

/// Checks `got` against the reference: `|got - ref| <= RTOL·(Σ|a·b| + |ref| + tiny)`.
///
/// The bound on a K-term dot product's rounding error is about
/// `K·eps·Σ|a·b|`; with f32's eps = 6e-8 and K ≤ 100 here, RTOL = 1e-5
/// covers it (and `Σ|a·b|` grows with K, so the tolerance scales with K),
/// while any indexing bug gives an error of the size of the values.
pub fn assert_close<T: Float>(what: &str, got: &[T], want: &[Ref]) {
    assert_close_rtol(what, got, want, T::RTOL);
}

/// [`assert_close`] with another relative tolerance (a path with a larger
/// rounding error, such as Winograd's).
pub fn assert_close_rtol<T: Float>(what: &str, got: &[T], want: &[Ref], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, r)) in got.iter().zip(want).enumerate() {
        let g: f64 = (*g).into();
        let tol = rtol * (r.scale + r.value.abs() + 1e-30);
        assert!((g - r.value).abs() <= tol, "{what} ({}): element {i}: got {g}, want {} (tol {tol:e})", T::NAME, r.value);
    }
}

/// Checks `got` against another result of the same computation with a
/// relative tolerance against `scale` (the references' magnitudes).
pub fn assert_close_to<T: Float>(what: &str, got: &[T], other: &[T], refs: &[Ref]) {
    assert_close_to_rtol(what, got, other, refs, T::RTOL);
}

/// [`assert_close_to`] with another relative tolerance.
pub fn assert_close_to_rtol<T: Float>(what: &str, got: &[T], other: &[T], refs: &[Ref], rtol: f64) {
    let as_refs: Vec<Ref> = other.iter().zip(refs).map(|(&o, r)| Ref { value: o.into(), scale: 2.0 * r.scale }).collect();
    assert_close_rtol(what, got, &as_refs, rtol);
}

pub fn assert_bits_eq<T: Float>(what: &str, a: &[T], b: &[T]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y): (f64, f64) = ((*x).into(), (*y).into());
        assert!(x.to_bits() == y.to_bits(), "{what}: element {i} differs: {x} vs {y}");
    }
}

/// Right-aligned NumPy broadcast of two batch shapes, written out plainly.
fn broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; r - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (a, b) = (pad(a), pad(b));
    a.iter().zip(&b).map(|(&x, &y)| if x == 1 { y } else { assert!(y == 1 || y == x); x }).collect()
}

/// Naive `dl.matmul` with broadcast and flags: returns the output shape
/// and one [`Ref`] per output element.
pub fn naive_matmul<T: Float>(a: &[T], sa: &[usize], b: &[T], sb: &[usize], ta: bool, tb: bool) -> (Vec<usize>, Vec<Ref>) {
    let (ra, rb) = (sa.len(), sb.len());
    let (m, k) = if ta { (sa[ra - 1], sa[ra - 2]) } else { (sa[ra - 2], sa[ra - 1]) };
    let n = if tb { sb[rb - 2] } else { sb[rb - 1] };
    let batch = broadcast(&sa[..ra - 2], &sb[..rb - 2]);
    let vol: usize = batch.iter().product();
    let mut out = vec![Ref::default(); vol * m * n];
    // The flat matrix index of batch element `idx` in an operand whose batch
    // shape is `s` (right-aligned against `batch`, size-1 dims repeat).
    let index_in = |idx: usize, s: &[usize]| {
        let mut digits = vec![0; batch.len()];
        let mut rest = idx;
        for d in (0..batch.len()).rev() {
            digits[d] = rest % batch[d];
            rest /= batch[d];
        }
        let off = batch.len() - s.len();
        let mut flat = 0;
        for (d, &size) in s.iter().enumerate() {
            flat = flat * size + if size == 1 { 0 } else { digits[off + d] };
        }
        flat
    };
    for bi in 0..vol {
        let (ia, ib) = (index_in(bi, &sa[..ra - 2]), index_in(bi, &sb[..rb - 2]));
        for i in 0..m {
            for j in 0..n {
                let r = &mut out[(bi * m + i) * n + j];
                for p in 0..k {
                    let av = if ta { a[ia * m * k + p * m + i] } else { a[ia * m * k + i * k + p] };
                    let bv = if tb { b[ib * k * n + j * k + p] } else { b[ib * k * n + p * n + j] };
                    r.add(av.into(), bv.into());
                }
            }
        }
    }
    let mut shape = batch;
    shape.extend([m, n]);
    (shape, out)
}

/// The interpreter's `dl.matmul`.
pub fn interp_matmul<T: Float>(a: &[T], sa: &[usize], b: &[T], sb: &[usize], ta: bool, tb: bool) -> (Vec<usize>, Vec<T>) {
    let mut attrs = Attrs::new();
    attrs.insert("transpose_a".into(), Attr::from(ta));
    attrs.insert("transpose_b".into(), Attr::from(tb));
    let r = eval_op(OpKind::Matmul, &attrs, &[&T::tensor(a, sa), &T::tensor(b, sb)], None).expect("interpreter matmul");
    (r.shape().to_vec(), T::values(&r))
}

/// Convolution geometry for the naive loops.
#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
}

impl ConvCase {
    pub fn out(&self) -> [usize; 4] {
        let o = |d: usize| (self.x[2 + d] + 2 * self.pad[d] - self.dil[d] * (self.w[2 + d] - 1) - 1) / self.stride[d] + 1;
        [self.x[0], self.w[0], o(0), o(1)]
    }

    pub fn conv(&self) -> dlc_contract::Conv2d {
        dlc_contract::Conv2d { winograd: true, stride: self.stride, padding: self.pad, dilation: self.dil }
    }

    /// Calls `f(n, c, ih, iw, o, kh, kw, oh, ow)` for every product term of the
    /// convolution (taps in the padding skipped): the one loop nest that all
    /// three naive references share.
    fn terms(&self, mut f: impl FnMut([usize; 4], [usize; 4], [usize; 4])) {
        let [n, c, h, w] = self.x;
        let [o, _, kh, kw] = self.w;
        let [_, _, oh, ow] = self.out();
        for ni in 0..n {
            for oi in 0..o {
                for y in 0..oh {
                    for x in 0..ow {
                        for ci in 0..c {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (y * self.stride[0] + i * self.dil[0]) as isize - self.pad[0] as isize;
                                    let ix = (x * self.stride[1] + j * self.dil[1]) as isize - self.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    f([ni, ci, iy as usize, ix as usize], [oi, ci, i, j], [ni, oi, y, x]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn flat(s: [usize; 4], i: [usize; 4]) -> usize {
    ((i[0] * s[1] + i[1]) * s[2] + i[2]) * s[3] + i[3]
}

pub fn naive_conv<T: Float>(cc: &ConvCase, x: &[T], w: &[T]) -> Vec<Ref> {
    let so = cc.out();
    let mut out = vec![Ref::default(); so.iter().product()];
    cc.terms(|xi, wi, yi| out[flat(so, yi)].add(x[flat(cc.x, xi)].into(), w[flat(cc.w, wi)].into()));
    out
}

pub fn naive_conv_grad_input<T: Float>(cc: &ConvCase, dy: &[T], w: &[T]) -> Vec<Ref> {
    let mut dx = vec![Ref::default(); cc.x.iter().product()];
    let so = cc.out();
    cc.terms(|xi, wi, yi| dx[flat(cc.x, xi)].add(dy[flat(so, yi)].into(), w[flat(cc.w, wi)].into()));
    dx
}

pub fn naive_conv_grad_weight<T: Float>(cc: &ConvCase, x: &[T], dy: &[T]) -> Vec<Ref> {
    let mut dw = vec![Ref::default(); cc.w.iter().product()];
    let so = cc.out();
    cc.terms(|xi, wi, yi| dw[flat(cc.w, wi)].add(dy[flat(so, yi)].into(), x[flat(cc.x, xi)].into()));
    dw
}

/// The interpreter's `dl.conv2d`.
pub fn interp_conv<T: Float>(x: &[T], sx: &[usize], w: &[T], sw: &[usize], stride: [usize; 2], pad: [usize; 2], dil: [usize; 2]) -> (Vec<usize>, Vec<T>) {
    let ints = |v: [usize; 2]| Attr::ints(&[v[0] as i64, v[1] as i64]);
    let mut attrs = Attrs::new();
    attrs.insert("stride".into(), ints(stride));
    attrs.insert("padding".into(), ints(pad));
    attrs.insert("dilation".into(), ints(dil));
    let r = eval_op(OpKind::Conv2d, &attrs, &[&T::tensor(x, sx), &T::tensor(w, sw)], None).expect("interpreter conv2d");
    (r.shape().to_vec(), T::values(&r))
}

/// Swaps the first two axes of a rank-4 row-major tensor.
pub fn swap01<T: Copy>(a: &[T], s: [usize; 4]) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len());
    for j in 0..s[1] {
        for i in 0..s[0] {
            let base = (i * s[1] + j) * s[2] * s[3];
            out.extend_from_slice(&a[base..base + s[2] * s[3]]);
        }
    }
    out
}

/// Max-pooling's input gradient for a 2×2/2 window, written from PyTorch's
/// rule independently of the crates: each window's taps in row-major
/// order, a tap replaces the maximum so far (from the first tap) when
/// greater or NaN; the window's `0 + g` lands there and the rest is +0;
/// with `relu`, only where the convolution's output there is `> 0`.
pub fn reference_pool_grad(y: &[f32], g: &[f32], [n, c, h, w]: [usize; 4], relu: bool) -> Vec<f32> {
    let (qh, qw) = (h / 2, w / 2);
    let mut dy = vec![0.0f32; y.len()];
    for p in 0..n * c {
        for i in 0..qh {
            for j in 0..qw {
                let taps = [(2 * i, 2 * j), (2 * i, 2 * j + 1), (2 * i + 1, 2 * j), (2 * i + 1, 2 * j + 1)];
                let at = |(r, s): (usize, usize)| p * h * w + r * w + s;
                let mut best = at(taps[0]);
                for &t in &taps[1..] {
                    if y[at(t)] > y[best] || y[at(t)].is_nan() {
                        best = at(t);
                    }
                }
                let share = 0.0 + g[(p * qh + i) * qw + j];
                dy[best] = if relu && y[best].partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) { 0.0 } else { share };
            }
        }
    }
    dy
}


/// Small integers (ties are common) in [-3, 3], with `special` values
/// (±inf, NaN, -0) every `every` elements.
pub fn values(n: usize, seed: usize, every: usize, special: &[f32]) -> Vec<f32> {
    (0..n)
        .map(|i| if every > 0 && (i * 13 + seed).is_multiple_of(every) { special[(i / every) % special.len()] } else { ((i * 7919 + seed * 104_729) % 7) as f32 - 3.0 })
        .collect()
}

/// Whether this machine has AVX-512 (the one-channel path and the routed
/// gradients' fast kernels need it).
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}
