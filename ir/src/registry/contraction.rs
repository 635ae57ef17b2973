//! Contractions: matmul and convolution, the ops that do nearly all the FLOPs.
//!
//! Their gradients are contractions again: matmuls with the transpose flags
//! rearranged, and for conv2d a transposed convolution (input) and a
//! correlation of input with cotangent (weight), all built from registry ops.

use super::shape::{broadcast, float_tensor, non_negative, one, positive, same_dtype, window_out};
use super::vjp::{self, VjpArgs, WindowAxis, reshape, tensor_type, transpose, unbroadcast};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef, OpKind};
use crate::attr::{Attr, DenseAttr, DenseData};
use crate::builder::{BuildError, Builder};
use crate::module::ValueId;
use crate::types::{DType, Dim, TensorType, Type};

/// The result of a VJP rule.
type Grads = Result<Vec<Option<ValueId>>, BuildError>;

pub(super) fn matmul(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let (x, y) = (float_tensor(ops, 0)?, float_tensor(ops, 1)?);
    let d = same_dtype(&[x, y])?;
    if x.rank() < 2 || y.rank() < 2 {
        return Err(format!("matmul operands need rank >= 2, got {x} and {y}"));
    }
    let (xr, yr) = (x.rank(), y.rank());
    let (mut m, mut k1) = (x.shape[xr - 2], x.shape[xr - 1]);
    if a.bool("transpose_a")? {
        std::mem::swap(&mut m, &mut k1);
    }
    let (mut k2, mut n) = (y.shape[yr - 2], y.shape[yr - 1]);
    if a.bool("transpose_b")? {
        std::mem::swap(&mut k2, &mut n);
    }
    if k1 != k2 {
        return Err(format!("contracted dims differ: {x} has {k1}, {y} has {k2}"));
    }
    let mut shape = broadcast(&x.shape[..xr - 2], &y.shape[..yr - 2])
        .map_err(|e| format!("batch dims: {e}"))?;
    shape.extend([m, n]);
    one(TensorType::new(shape, d))
}

fn matmul_op(b: &mut Builder<'_>, x: ValueId, y: ValueId, ta: bool, tb: bool) -> Result<ValueId, BuildError> {
    let mut attrs = crate::Attrs::new();
    if ta {
        attrs.insert("transpose_a".into(), Attr::Bool(true));
    }
    if tb {
        attrs.insert("transpose_b".into(), Attr::Bool(true));
    }
    b.op(OpKind::Matmul, &[x, y], attrs)
}

/// With `C = op(A) · op(B)`: `dA = g · op(B)ᵀ` and `dB = op(A)ᵀ · g`, each
/// written as one matmul whose flags absorb every transpose (for a
/// transposed operand the product is formed transposed, e.g. `dA = B · gᵀ`
/// when `transpose_a`). The products have the broadcast batch dims, which
/// [`unbroadcast`] sums away for an operand that was broadcast.
fn matmul_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let view = a.view(OpKind::Matmul);
    let err = |m| vjp::error(OpKind::Matmul, m);
    let (ta, tb) = (view.bool("transpose_a").map_err(err)?, view.bool("transpose_b").map_err(err)?);
    let (x, y, g) = (a.x(0), a.x(1), a.grad);
    let (dx, dy) = match (ta, tb) {
        (false, false) => (matmul_op(b, g, y, false, true)?, matmul_op(b, x, g, true, false)?),
        (false, true) => (matmul_op(b, g, y, false, false)?, matmul_op(b, g, x, true, false)?),
        (true, false) => (matmul_op(b, y, g, false, true)?, matmul_op(b, x, g, false, false)?),
        (true, true) => (matmul_op(b, y, g, true, true)?, matmul_op(b, g, x, true, true)?),
    };
    let (tx, ty) = (tensor_type(b, x)?, tensor_type(b, y)?);
    Ok(vec![Some(unbroadcast(b, dx, &tx)?), Some(unbroadcast(b, dy, &ty)?)])
}

/// `dl.matmul`: batched matrix product with optional transposes of the last two dims.
pub const MATMUL: OpDef = OpDef {
    name: "dl.matmul",
    summary: "Batched matrix product a[..., m, k] @ b[..., k, n]; transpose flags swap the last two dims; leading dims broadcast.",
    example: r#"%y = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x784xf32>, tensor<256x784xf32>) -> tensor<?x256xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(2),
    attrs: &[
        AttrSpec { name: "transpose_a", kind: AttrKind::Bool, default: Default::Bool(false), doc: "use a's last two dims swapped" },
        AttrSpec { name: "transpose_b", kind: AttrKind::Bool, default: Default::Bool(false), doc: "use b's last two dims swapped" },
    ],
    infer: matmul,
    grad: Grad::Vjp(matmul_vjp),
    commutative: false,
    region: None,
};

pub(super) fn conv2d(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let (x, w) = (float_tensor(ops, 0)?, float_tensor(ops, 1)?);
    let d = same_dtype(&[x, w])?;
    if x.rank() != 4 || w.rank() != 4 {
        return Err(format!("conv2d takes input [N, C, H, W] and weight [O, C, KH, KW], got {x} and {w}"));
    }
    let stride = positive("stride", &a.ints("stride")?, 2)?;
    let pad = non_negative("padding", &a.ints("padding")?, 2)?;
    let dil = positive("dilation", &a.ints("dilation")?, 2)?;
    let (Some(kh), Some(kw)) = (w.shape[2].as_static(), w.shape[3].as_static()) else {
        return Err(format!("conv2d weight must have a static kernel size, got {w}"));
    };
    if x.shape[1] != w.shape[1] {
        return Err(format!("input has {} channels but the weight expects {}", x.shape[1], w.shape[1]));
    }
    if matches!(w.shape[0], Dim::Dynamic) || matches!(x.shape[1], Dim::Dynamic) {
        return Err("conv2d channel counts must be static".into());
    }
    let oh = window_out(x.shape[2], kh, stride[0], pad[0], dil[0])?;
    let ow = window_out(x.shape[3], kw, stride[1], pad[1], dil[1])?;
    one(TensorType::new(vec![x.shape[0], w.shape[0], oh, ow], d))
}

fn conv_op(b: &mut Builder<'_>, x: ValueId, w: ValueId, stride: [u64; 2], pad: [u64; 2], dilation: [u64; 2]) -> Result<ValueId, BuildError> {
    let ints = |v: [u64; 2]| Attr::ints(&[v[0] as i64, v[1] as i64]);
    b.op(OpKind::Conv2d, &[x, w], crate::attrs! {"stride" => ints(stride), "padding" => ints(pad), "dilation" => ints(dilation)})
}

/// Reverses `axis` of `x` (a gather with constant indices n-1, …, 0).
fn flip(b: &mut Builder<'_>, x: ValueId, axis: usize) -> Result<ValueId, BuildError> {
    let n = vjp::static_dim(b, x, axis)?;
    if n == 1 {
        return Ok(x);
    }
    let idx = DenseAttr { ty: TensorType::fixed(&[n], DType::I64), data: DenseData::Int((0..n as i64).rev().collect()) };
    let idx = b.constant(idx)?;
    b.op(OpKind::Gather, &[x, idx], crate::attrs! {"axis" => axis as i64})
}

/// `dx` is the transposed convolution of `g`: `g` spread by the stride (zeros
/// between rows and columns), padded by `dilation·(k-1) - pad` in front and
/// to the input size behind (negative amounts crop), then correlated with the
/// spatially flipped weight, its channel axes swapped, at the same dilation.
fn conv2d_input_grad(b: &mut Builder<'_>, g: ValueId, w: ValueId, axes: &[WindowAxis; 2]) -> Result<ValueId, BuildError> {
    let mut spread = g;
    for (k, ax) in axes.iter().enumerate() {
        spread = vjp::dilate_axis(b, spread, 2 + k, ax.stride)?;
        let before = (ax.dilation * (ax.kernel - 1)) as i64 - ax.pad as i64;
        let after = ax.size as i64 + ax.pad as i64 - (ax.out * ax.stride) as i64;
        spread = vjp::pad_axis(b, spread, 2 + k, before, after, 0.0)?;
    }
    let flipped = flip(b, w, 2)?;
    let flipped = flip(b, flipped, 3)?;
    let wt = transpose(b, flipped, &[1, 0, 2, 3])?;
    conv_op(b, spread, wt, [1, 1], [0, 0], [axes[0].dilation, axes[1].dilation])
}

/// `dW[o,c,i,j] = Σ_{n,a,b} g[n,o,a,b] · xpad[n, c, a·s + i·d, b·s + j·d]`.
///
/// With a static batch this is one conv2d with batch and channel axes
/// swapped (input `xᵀ` [C,N,H,W], weight `gᵀ` [O,N,OH,OW], stride and
/// dilation exchanged), cropped to the kernel. With the batch `?` that form
/// would contract over `?`, which conv2d's static channel rule forbids, so
/// the weight gradient is taken as im2col instead: the K·K strided taps of the
/// padded input become columns [N, C·K·K, OH·OW], a batched matmul with `g`
/// gives one [O, C·K·K] per sample, and a sum over the batch finishes it.
fn conv2d_weight_grad(b: &mut Builder<'_>, x: ValueId, g: ValueId, w: &TensorType, axes: &[WindowAxis; 2]) -> Result<ValueId, BuildError> {
    let xt = tensor_type(b, x)?;
    let [kh, kw] = [axes[0].kernel, axes[1].kernel];
    if xt.shape[0].as_static().is_some() {
        let xs = transpose(b, x, &[1, 0, 2, 3])?;
        let gs = transpose(b, g, &[1, 0, 2, 3])?;
        let [h, v] = axes;
        let mut r = conv_op(b, xs, gs, [h.dilation, v.dilation], [h.pad, v.pad], [h.stride, v.stride])?;
        for (k, ax) in axes.iter().enumerate() {
            if vjp::static_dim(b, r, 2 + k)? > ax.kernel {
                r = vjp::slice(b, r, 2 + k, 0, ax.kernel, 1)?;
            }
        }
        return transpose(b, r, &[1, 0, 2, 3]);
    }
    let (n, c, o) = (xt.shape[0], xt.shape[1], w.shape[0]);
    let p = Dim::Static(axes[0].out * axes[1].out);
    let xp = vjp::pad_spatial(b, x, axes, 0.0)?;
    let mut taps = Vec::with_capacity((kh * kw) as usize);
    for i in 0..kh {
        for j in 0..kw {
            let t = vjp::window_taps(b, xp, axes, i, j)?;
            taps.push(reshape(b, t, &[n, c, Dim::Static(1), p])?);
        }
    }
    let cols = vjp::concat(b, &taps, 2)?;
    let ckk = c.as_static().map(|c| Dim::Static(c * kh * kw)).ok_or_else(|| vjp::error(OpKind::Conv2d, "channels must be static"))?;
    let cols = reshape(b, cols, &[n, ckk, p])?;
    let g2 = reshape(b, g, &[n, o, p])?;
    let per_sample = matmul_op(b, g2, cols, false, true)?;
    let dw = vjp::reduce_sum(b, per_sample, &[0], false)?;
    reshape(b, dw, &w.shape)
}

fn conv2d_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let (x, w) = (a.x(0), a.x(1));
    let (xt, wt) = (tensor_type(b, x)?, tensor_type(b, w)?);
    let axes = WindowAxis::both(OpKind::Conv2d, &a.view(OpKind::Conv2d), &xt, [wt.shape[2], wt.shape[3]])?;
    let dx = conv2d_input_grad(b, a.grad, w, &axes)?;
    let dw = conv2d_weight_grad(b, x, a.grad, &wt, &axes)?;
    Ok(vec![Some(dx), Some(dw)])
}

/// `dl.conv2d`: 2-D cross-correlation, NCHW input, OIHW weight, groups = 1.
pub const CONV2D: OpDef = OpDef {
    name: "dl.conv2d",
    summary: "2-D cross-correlation as PyTorch's conv2d: input [N,C,H,W], weight [O,C,KH,KW], no bias (add it), groups = 1.",
    example: r#"%y = "dl.conv2d"(%x, %w) {padding = [1, 1]} : (tensor<?x1x28x28xf32>, tensor<32x1x3x3xf32>) -> tensor<?x32x28x28xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(2),
    attrs: &[
        AttrSpec { name: "stride", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[sh, sw]" },
        AttrSpec { name: "padding", kind: AttrKind::Ints, default: Default::Ints(&[0, 0]), doc: "zero padding [ph, pw] on each side" },
        AttrSpec { name: "dilation", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[dh, dw]" },
    ],
    infer: conv2d,
    grad: Grad::Vjp(conv2d_vjp),
    commutative: false,
    region: None,
};
