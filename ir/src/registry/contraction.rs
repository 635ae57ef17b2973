//! Contractions: matmul and convolution, the ops that do nearly all the FLOPs.
//!
//! Their gradients are contractions again: matmuls with the transpose flags
//! rearranged, and for conv2d two primitives of its own, the input gradient
//! (a transposed convolution) and the weight gradient (a correlation of input
//! with cotangent). Those three are closed under differentiation: each one's
//! VJP is built from the other two.

use super::shape::{broadcast, float_tensor, non_negative, one, positive, same_dtype, window_out};
use super::vjp::{self, VjpArgs, tensor_type, unbroadcast};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef, OpKind};
use crate::attr::{Attr, Attrs};
use crate::builder::{BuildError, Builder};
use crate::module::ValueId;
use crate::types::{Dim, TensorType, Type};

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
    let mut attrs = Attrs::new();
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

/// Stride, padding and dilation, checked: the window of conv2d and of both
/// of its gradients.
fn window(a: &AttrView) -> Result<[Vec<u64>; 3], String> {
    let stride = positive("stride", &a.ints("stride")?, 2)?;
    let pad = non_negative("padding", &a.ints("padding")?, 2)?;
    let dil = positive("dilation", &a.ints("dilation")?, 2)?;
    Ok([stride, pad, dil])
}

/// The output size `[OH, OW]` of a convolution of a `size` input by a `kernel`.
fn conv_out(size: [Dim; 2], kernel: [u64; 2], win: &[Vec<u64>; 3]) -> Result<[Dim; 2], String> {
    let [s, p, d] = win;
    Ok([window_out(size[0], kernel[0], s[0], p[0], d[0])?, window_out(size[1], kernel[1], s[1], p[1], d[1])?])
}

/// The spatial dims `[H, W]` of an NCHW (or OIHW) type.
fn spatial(t: &TensorType) -> [Dim; 2] {
    [t.shape[2], t.shape[3]]
}

pub(super) fn conv2d(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let (x, w) = (float_tensor(ops, 0)?, float_tensor(ops, 1)?);
    let d = same_dtype(&[x, w])?;
    if x.rank() != 4 || w.rank() != 4 {
        return Err(format!("conv2d takes input [N, C, H, W] and weight [O, C, KH, KW], got {x} and {w}"));
    }
    let win = window(a)?;
    let (Some(kh), Some(kw)) = (w.shape[2].as_static(), w.shape[3].as_static()) else {
        return Err(format!("conv2d weight must have a static kernel size, got {w}"));
    };
    if x.shape[1] != w.shape[1] {
        return Err(format!("input has {} channels but the weight expects {}", x.shape[1], w.shape[1]));
    }
    if matches!(w.shape[0], Dim::Dynamic) || matches!(x.shape[1], Dim::Dynamic) {
        return Err("conv2d channel counts must be static".into());
    }
    let [oh, ow] = conv_out(spatial(x), [kh, kw], &win)?;
    one(TensorType::new(vec![x.shape[0], w.shape[0], oh, ow], d))
}

/// Checks that `g` is exactly what a conv2d of a `size` input by a `kernel`
/// gives (a gradient of any other shape would be summed or cut silently).
fn check_cotangent(g: &TensorType, size: [Dim; 2], kernel: [u64; 2], win: &[Vec<u64>; 3]) -> Result<(), String> {
    let out = conv_out(size, kernel, win)?;
    if spatial(g) != out {
        return Err(format!(
            "the output gradient {g} has spatial size {}x{}, but a {}x{} kernel over a {}x{} input gives {}x{}",
            g.shape[2], g.shape[3], kernel[0], kernel[1], size[0], size[1], out[0], out[1]
        ));
    }
    Ok(())
}

pub(super) fn conv2d_grad_input(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let (g, w) = (float_tensor(ops, 0)?, float_tensor(ops, 1)?);
    let d = same_dtype(&[g, w])?;
    if g.rank() != 4 || w.rank() != 4 {
        return Err(format!("conv2d_grad_input takes the output gradient [N, O, OH, OW] and weight [O, C, KH, KW], got {g} and {w}"));
    }
    let win = window(a)?;
    let size = non_negative("input_size", &a.ints("input_size")?, 2)?;
    let size = [Dim::Static(size[0]), Dim::Static(size[1])];
    let (Some(kh), Some(kw), Some(_), Some(_)) = (w.shape[2].as_static(), w.shape[3].as_static(), w.shape[0].as_static(), w.shape[1].as_static()) else {
        return Err(format!("conv2d_grad_input needs a weight of static shape, got {w}"));
    };
    if g.shape[1] != w.shape[0] {
        return Err(format!("the output gradient has {} channels but the weight has {} outputs", g.shape[1], w.shape[0]));
    }
    check_cotangent(g, size, [kh, kw], &win)?;
    one(TensorType::new(vec![g.shape[0], w.shape[1], size[0], size[1]], d))
}

pub(super) fn conv2d_grad_weight(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let (x, g) = (float_tensor(ops, 0)?, float_tensor(ops, 1)?);
    let d = same_dtype(&[x, g])?;
    if x.rank() != 4 || g.rank() != 4 {
        return Err(format!("conv2d_grad_weight takes input [N, C, H, W] and output gradient [N, O, OH, OW], got {x} and {g}"));
    }
    let win = window(a)?;
    let k = positive("kernel", &a.ints("kernel")?, 2)?;
    if matches!(x.shape[1], Dim::Dynamic) || matches!(g.shape[1], Dim::Dynamic) {
        return Err("conv2d_grad_weight channel counts must be static".into());
    }
    if x.shape[0] != g.shape[0] {
        return Err(format!("the input has batch {} but the output gradient has batch {}", x.shape[0], g.shape[0]));
    }
    check_cotangent(g, spatial(x), [k[0], k[1]], &win)?;
    one(TensorType::new(vec![g.shape[1], x.shape[1], Dim::Static(k[0]), Dim::Static(k[1])], d))
}

/// The window attributes of `attrs` as written (defaults stay implicit),
/// plus `extra`, a static `[h, w]` of `kind`'s gradient (`input_size`, `kernel`).
fn window_attrs(kind: OpKind, attrs: &Attrs, extra: Option<(&str, [Dim; 2])>) -> Result<Attrs, BuildError> {
    let mut out: Attrs = attrs.iter().filter(|(k, _)| matches!(k.as_str(), "stride" | "padding" | "dilation")).map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some((name, dims)) = extra {
        let (Some(h), Some(w)) = (dims[0].as_static(), dims[1].as_static()) else {
            return Err(vjp::error(kind, format!("the gradient needs a static {name}, got {}x{}", dims[0], dims[1])));
        };
        out.insert(name.into(), Attr::ints(&[h as i64, w as i64]));
    }
    Ok(out)
}

/// `conv2d(x, w)` with the window of `attrs`.
fn conv(b: &mut Builder<'_>, kind: OpKind, x: ValueId, w: ValueId, attrs: &Attrs) -> Result<ValueId, BuildError> {
    b.op(OpKind::Conv2d, &[x, w], window_attrs(kind, attrs, None)?)
}

/// `conv2d_grad_input(g, w)` with the window of `attrs`, restoring the spatial size of `input`.
fn grad_input(b: &mut Builder<'_>, kind: OpKind, g: ValueId, w: ValueId, attrs: &Attrs, input: &TensorType) -> Result<ValueId, BuildError> {
    b.op(OpKind::Conv2dGradInput, &[g, w], window_attrs(kind, attrs, Some(("input_size", spatial(input))))?)
}

/// `conv2d_grad_weight(x, g)` with the window of `attrs`, for a weight of type `weight`.
fn grad_weight(b: &mut Builder<'_>, kind: OpKind, x: ValueId, g: ValueId, attrs: &Attrs, weight: &TensorType) -> Result<ValueId, BuildError> {
    b.op(OpKind::Conv2dGradWeight, &[x, g], window_attrs(kind, attrs, Some(("kernel", spatial(weight))))?)
}

/// `y = conv2d(x, w)`: `dx = conv2d_grad_input(g, w)`, `dw = conv2d_grad_weight(x, g)`.
fn conv2d_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let (x, w, g) = (a.x(0), a.x(1), a.grad);
    let (xt, wt) = (tensor_type(b, x)?, tensor_type(b, w)?);
    let dx = grad_input(b, OpKind::Conv2d, g, w, a.attrs, &xt)?;
    let dw = grad_weight(b, OpKind::Conv2d, x, g, a.attrs, &wt)?;
    Ok(vec![Some(dx), Some(dw)])
}

/// `dx = conv2d_grad_input(g, w)` is bilinear in `g` and `w`:
/// `dg = conv2d(d̄x, w)` and `dw = conv2d_grad_weight(d̄x, g)`.
fn conv2d_grad_input_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let kind = OpKind::Conv2dGradInput;
    let (g, w) = (a.x(0), a.x(1));
    let wt = tensor_type(b, w)?;
    let dg = conv(b, kind, a.grad, w, a.attrs)?;
    let dw = grad_weight(b, kind, a.grad, g, a.attrs, &wt)?;
    Ok(vec![Some(dg), Some(dw)])
}

/// `dW = conv2d_grad_weight(x, g)` is bilinear in `x` and `g`:
/// `dx = conv2d_grad_input(g, d̄W)` and `dg = conv2d(x, d̄W)`.
fn conv2d_grad_weight_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let kind = OpKind::Conv2dGradWeight;
    let (x, g) = (a.x(0), a.x(1));
    let xt = tensor_type(b, x)?;
    let dx = grad_input(b, kind, g, a.grad, a.attrs, &xt)?;
    let dg = conv(b, kind, x, a.grad, a.attrs)?;
    Ok(vec![Some(dx), Some(dg)])
}

const WINDOW_ATTRS: [AttrSpec; 3] = [
    AttrSpec { name: "stride", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[sh, sw]" },
    AttrSpec { name: "padding", kind: AttrKind::Ints, default: Default::Ints(&[0, 0]), doc: "zero padding [ph, pw] on each side" },
    AttrSpec { name: "dilation", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[dh, dw]" },
];

/// `dl.conv2d`: 2-D cross-correlation, NCHW input, OIHW weight, groups = 1.
pub const CONV2D: OpDef = OpDef {
    name: "dl.conv2d",
    summary: "2-D cross-correlation as PyTorch's conv2d: input [N,C,H,W], weight [O,C,KH,KW], no bias (add it), groups = 1.",
    example: r#"%y = "dl.conv2d"(%x, %w) {padding = [1, 1]} : (tensor<?x1x28x28xf32>, tensor<32x1x3x3xf32>) -> tensor<?x32x28x28xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(2),
    attrs: &WINDOW_ATTRS,
    infer: conv2d,
    grad: Grad::Vjp(conv2d_vjp),
    commutative: false,
    region: None,
};

/// `dl.conv2d_grad_input`: conv2d's gradient with respect to its input.
pub const CONV2D_GRAD_INPUT: OpDef = OpDef {
    name: "dl.conv2d_grad_input",
    summary: "conv2d's input gradient (a transposed convolution): dx[n,c,h,w] = Σ g[n,o,a,b]·w[o,c,i,j] over h = a·s + i·d − p, w = b·s + j·d − p; a primitive because composed (zero-spread, pad, flipped weight, conv) it moves several times the bytes, while one op is col2im(Wᵀ·g) on gemm.",
    example: r#"%dx = "dl.conv2d_grad_input"(%g, %w) {input_size = [28, 28], padding = [1, 1]} : (tensor<?x32x28x28xf32>, tensor<32x1x3x3xf32>) -> tensor<?x1x28x28xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(2),
    attrs: &[
        WINDOW_ATTRS[0],
        WINDOW_ATTRS[1],
        WINDOW_ATTRS[2],
        AttrSpec { name: "input_size", kind: AttrKind::Ints, default: Default::Required, doc: "the forward input's [H, W] (a stride loses it)" },
    ],
    infer: conv2d_grad_input,
    grad: Grad::Vjp(conv2d_grad_input_vjp),
    commutative: false,
    region: None,
};

/// `dl.conv2d_grad_weight`: conv2d's gradient with respect to its weight.
pub const CONV2D_GRAD_WEIGHT: OpDef = OpDef {
    name: "dl.conv2d_grad_weight",
    summary: "conv2d's weight gradient: dW[o,c,i,j] = Σ_{n,a,b} g[n,o,a,b]·x[n,c,a·s+i·d−p, b·s+j·d−p] (zero outside), summed over a ? batch too; a primitive because composed (K·K strided slices, concat, per-sample matmul, batch sum) it moves several times the bytes, while one op is Σ g·im2col(x)ᵀ on gemm.",
    example: r#"%dw = "dl.conv2d_grad_weight"(%x, %g) {kernel = [3, 3], padding = [1, 1]} : (tensor<?x1x28x28xf32>, tensor<?x32x28x28xf32>) -> tensor<32x1x3x3xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(2),
    attrs: &[
        WINDOW_ATTRS[0],
        WINDOW_ATTRS[1],
        WINDOW_ATTRS[2],
        AttrSpec { name: "kernel", kind: AttrKind::Ints, default: Default::Required, doc: "the weight's [KH, KW]" },
    ],
    infer: conv2d_grad_weight,
    grad: Grad::Vjp(conv2d_grad_weight_vjp),
    commutative: false,
    region: None,
};
