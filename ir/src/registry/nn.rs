//! Pooling windows and axis normalizations.
//!
//! `softmax` and `log_softmax` are primitives, not compositions of
//! `reduce_max`/`exp`/`reduce_sum`: the stable form (subtract the max) must be
//! written once, correctly, and the fused op is both what every backend wants to
//! emit as one kernel and what gives cross-entropy its simple gradient
//! `softmax(x) - onehot`. The composite form would leave every backend to
//! rediscover the pattern.
//!
//! Average-pooling's gradient is written with registry ops as a sum over the
//! kernel taps: each tap's share of the cotangent is put back where the tap
//! read ([`place_tap`]: spread by the stride, shifted by the tap offset).
//! Taps are placed along W first, then the K_h row sums along H, so a k×k
//! window costs 2k placements rather than k². Max-pooling's is its own op,
//! `dl.max_pool2d_grad`: the argmax rule is a running scan per window.

use super::shape::{axis, float_tensor, non_negative, one, positive, window_out};
use super::vjp::{self, VjpArgs, WindowAxis, accumulate, binary as bin, place_tap, scalar_like, tensor_type};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef, OpKind};
use crate::builder::{BuildError, Builder};
use crate::module::ValueId;
use crate::types::{Dim, TensorType, Type};

/// The result of a VJP rule.
type Grads = Result<Vec<Option<ValueId>>, BuildError>;

/// The window geometry of a pooling op.
fn pool_axes(b: &Builder<'_>, a: &VjpArgs<'_>, kind: OpKind) -> Result<[WindowAxis; 2], BuildError> {
    let view = a.view(kind);
    let k = view.ints("kernel").map_err(|m| vjp::error(kind, m))?;
    let t = tensor_type(b, a.x(0))?;
    let [kh, kw] = [0, 1].map(|i| Dim::from_attr_int(k[i]).unwrap_or(Dim::Static(1)));
    WindowAxis::both(kind, &view, &t, [kh, kw])
}

const POOL_ATTRS: &[AttrSpec] = &[
    AttrSpec { name: "kernel", kind: AttrKind::Ints, default: Default::Required, doc: "window size [kh, kw]" },
    AttrSpec { name: "stride", kind: AttrKind::Ints, default: Default::Required, doc: "[sh, sw] (PyTorch's default is the kernel size)" },
    AttrSpec { name: "padding", kind: AttrKind::Ints, default: Default::Ints(&[0, 0]), doc: "[ph, pw] on each side" },
];

/// The pooling window, and `relu`: max-pooling's gradient fused with the
/// ReLU gradient before it (`dl.max_pool2d_grad`'s summary).
const POOL_GRAD_ATTRS: &[AttrSpec] = &[
    POOL_ATTRS[0],
    POOL_ATTRS[1],
    POOL_ATTRS[2],
    AttrSpec { name: "relu", kind: AttrKind::Bool, default: Default::Bool(false), doc: "zero the result where x is not positive (the gradient of max_pool2d(relu(x)))" },
];

pub(crate) fn pool(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = float_tensor(ops, 0)?;
    if x.rank() != 4 {
        return Err(format!("pooling takes [N, C, H, W], got {x}"));
    }
    let k = positive("kernel", &a.ints("kernel")?, 2)?;
    let s = positive("stride", &a.ints("stride")?, 2)?;
    let p = non_negative("padding", &a.ints("padding")?, 2)?;
    if p[0].saturating_mul(2) > k[0] || p[1].saturating_mul(2) > k[1] {
        return Err(format!("padding {p:?} must be at most half the kernel {k:?}"));
    }
    let oh = window_out(x.shape[2], k[0], s[0], p[0], 1)?;
    let ow = window_out(x.shape[3], k[1], s[1], p[1], 1)?;
    one(TensorType::new(vec![x.shape[0], x.shape[1], oh, ow], x.dtype))
}

/// The cotangent of each window goes to the element PyTorch's max_pool2d
/// saves as its argmax: one `dl.max_pool2d_grad` (see its entry for the
/// rule), which backends run as one scan per window, where a composition of
/// registry ops needs a compare and select per tap and a scatter.
fn max_pool2d_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    Ok(vec![Some(b.op(OpKind::MaxPool2dGrad, &[a.x(0), a.grad], a.attrs.clone())?)])
}

/// Every tap gets `g / (kh·kw)` (padding counts in the divisor, as the
/// forward's count_include_pad); the W-placed row is the same for every `i`.
fn avg_pool2d_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let axes = pool_axes(b, a, OpKind::AvgPool2d)?;
    let [kh, kw] = [axes[0].kernel, axes[1].kernel];
    let k = scalar_like(b, 1.0 / (kh * kw) as f64, a.grad)?;
    let share = bin(b, OpKind::Mul, a.grad, k)?;
    let mut row = None;
    for j in 0..kw {
        let placed = place_tap(b, share, 3, axes[1], j)?;
        row = Some(accumulate(b, row, placed)?);
    }
    let row = row.expect("kernel width >= 1");
    let mut dx = None;
    for i in 0..kh {
        let placed = place_tap(b, row, 2, axes[0], i)?;
        dx = Some(accumulate(b, dx, placed)?);
    }
    Ok(vec![dx])
}

/// `dl.max_pool2d`.
pub const MAX_POOL2D: OpDef = OpDef {
    name: "dl.max_pool2d",
    summary: "Max over each kernel window of [N,C,H,W]; padding counts as -inf (PyTorch's MaxPool2d).",
    example: r#"%y = "dl.max_pool2d"(%x) {kernel = [2, 2], stride = [2, 2]} : (tensor<?x32x26x26xf32>) -> tensor<?x32x13x13xf32>"#,
    category: Category::Window,
    operands: Arity::Exact(1),
    attrs: POOL_ATTRS,
    infer: pool,
    grad: Grad::Vjp(max_pool2d_vjp),
    commutative: false,
    region: None,
};

/// `g` must have the pooled shape of `x`; the result has `x`'s.
fn pool_grad(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = float_tensor(ops, 0)?;
    let g = float_tensor(ops, 1)?;
    let pooled = pool(&ops[..1], a)?;
    if pooled.first() != Some(&Type::Tensor(g.clone())) {
        return Err(format!("g must have the pooled type {}, got {g}", pooled[0]));
    }
    one(x.clone())
}

/// `dl.max_pool2d_grad`.
pub const MAX_POOL2D_GRAD: OpDef = OpDef {
    name: "dl.max_pool2d_grad",
    summary: "The gradient of dl.max_pool2d(x) given its output gradient g: each window's g is added at the input element PyTorch saves as the window's argmax. Taps are visited in row-major window order, padding skipped; starting from the first tap with -inf, a tap that is greater than the maximum so far, or NaN, becomes the argmax (ties go to the first maximum, a NaN window to its last NaN). With relu, the result is 0 wherever x > 0 does not hold (select(x > 0, dx, 0), as ReLU's gradient masks it): the gradient of max_pool2d(relu(x)), which routes by x itself because relu keeps the order of positive values. Not differentiable.",
    example: r#"%dx = "dl.max_pool2d_grad"(%x, %g) {kernel = [2, 2], stride = [2, 2]} : (tensor<?x32x26x26xf32>, tensor<?x32x13x13xf32>) -> tensor<?x32x26x26xf32>"#,
    category: Category::Window,
    operands: Arity::Exact(2),
    attrs: POOL_GRAD_ATTRS,
    infer: pool_grad,
    grad: Grad::No,
    commutative: false,
    region: None,
};

/// `dl.avg_pool2d`.
pub const AVG_POOL2D: OpDef = OpDef {
    name: "dl.avg_pool2d",
    summary: "Mean over each kernel window of [N,C,H,W]; padding counts as zeros in the mean (PyTorch's count_include_pad=True).",
    example: r#"%y = "dl.avg_pool2d"(%x) {kernel = [2, 2], stride = [2, 2]} : (tensor<?x32x26x26xf32>) -> tensor<?x32x13x13xf32>"#,
    category: Category::Window,
    operands: Arity::Exact(1),
    attrs: POOL_ATTRS,
    infer: pool,
    grad: Grad::Vjp(avg_pool2d_vjp),
    commutative: false,
    region: None,
};

fn normalize(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = float_tensor(ops, 0)?;
    axis(a.int("axis")?, x.rank())?;
    one(x.clone())
}

const AXIS: &[AttrSpec] = &[AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Required, doc: "the axis to normalize over" }];

/// The normalized axis of a softmax or log_softmax.
fn norm_axis(b: &Builder<'_>, a: &VjpArgs<'_>, kind: OpKind) -> Result<usize, BuildError> {
    let rank = tensor_type(b, a.x(0))?.rank();
    let ax = a.view(kind).int("axis").map_err(|m| vjp::error(kind, m))?;
    axis(ax, rank).map_err(|m| vjp::error(kind, m))
}

/// `y · (g - Σ g·y)`, the sum along the axis.
fn softmax_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let ax = norm_axis(b, a, OpKind::Softmax)?;
    let gy = bin(b, OpKind::Mul, a.grad, a.y())?;
    let s = vjp::reduce_sum(b, gy, &[ax], true)?;
    let d = bin(b, OpKind::Sub, a.grad, s)?;
    Ok(vec![Some(bin(b, OpKind::Mul, a.y(), d)?)])
}

/// `dl.softmax`.
pub const SOFTMAX: OpDef = OpDef {
    name: "dl.softmax",
    summary: "exp(x - max) / sum(exp(x - max)) along an axis; a primitive for its stable form and one-kernel lowering.",
    example: r#"%p = "dl.softmax"(%logits) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>"#,
    category: Category::Normalization,
    operands: Arity::Exact(1),
    attrs: AXIS,
    infer: normalize,
    grad: Grad::Vjp(softmax_vjp),
    commutative: false,
    region: None,
};

/// `g - softmax(x) · Σ g`, with softmax(x) = exp(y) from the forward result.
fn log_softmax_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let ax = norm_axis(b, a, OpKind::LogSoftmax)?;
    let p = vjp::unary(b, OpKind::Exp, a.y())?;
    let s = vjp::reduce_sum(b, a.grad, &[ax], true)?;
    let ps = bin(b, OpKind::Mul, p, s)?;
    Ok(vec![Some(bin(b, OpKind::Sub, a.grad, ps)?)])
}

/// `dl.log_softmax`.
pub const LOG_SOFTMAX: OpDef = OpDef {
    name: "dl.log_softmax",
    summary: "x - max - log(sum(exp(x - max))) along an axis; the stable core of cross-entropy.",
    example: r#"%l = "dl.log_softmax"(%logits) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>"#,
    category: Category::Normalization,
    operands: Arity::Exact(1),
    attrs: AXIS,
    infer: normalize,
    grad: Grad::Vjp(log_softmax_vjp),
    commutative: false,
    region: None,
};
