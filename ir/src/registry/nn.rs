//! Pooling windows and axis normalizations.
//!
//! `softmax` and `log_softmax` are primitives, not compositions of
//! `reduce_max`/`exp`/`reduce_sum`: the stable form (subtract the max) must be
//! written once, correctly, and the fused op is both what every backend wants to
//! emit as one kernel and what gives cross-entropy its simple gradient
//! `softmax(x) - onehot`. The composite form would leave every backend to
//! rediscover the pattern.

use super::shape::{axis, float_tensor, non_negative, one, positive, window_out};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef};
use crate::types::{TensorType, Type};

const POOL_ATTRS: &[AttrSpec] = &[
    AttrSpec { name: "kernel", kind: AttrKind::Ints, default: Default::Required, doc: "window size [kh, kw]" },
    AttrSpec { name: "stride", kind: AttrKind::Ints, default: Default::Required, doc: "[sh, sw] (PyTorch's default is the kernel size)" },
    AttrSpec { name: "padding", kind: AttrKind::Ints, default: Default::Ints(&[0, 0]), doc: "[ph, pw] on each side" },
];

fn pool(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
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

/// `dl.max_pool2d`.
pub const MAX_POOL2D: OpDef = OpDef {
    name: "dl.max_pool2d",
    summary: "Max over each kernel window of [N,C,H,W]; padding counts as -inf (PyTorch's MaxPool2d).",
    example: r#"%y = "dl.max_pool2d"(%x) {kernel = [2, 2], stride = [2, 2]} : (tensor<?x32x26x26xf32>) -> tensor<?x32x13x13xf32>"#,
    category: Category::Window,
    operands: Arity::Exact(1),
    attrs: POOL_ATTRS,
    infer: pool,
    grad: Grad::Yes,
    commutative: false,
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
    grad: Grad::Yes,
    commutative: false,
};

fn normalize(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = float_tensor(ops, 0)?;
    axis(a.int("axis")?, x.rank())?;
    one(x.clone())
}

const AXIS: &[AttrSpec] = &[AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Required, doc: "the axis to normalize over" }];

/// `dl.softmax`.
pub const SOFTMAX: OpDef = OpDef {
    name: "dl.softmax",
    summary: "exp(x - max) / sum(exp(x - max)) along an axis; a primitive for its stable form and one-kernel lowering.",
    example: r#"%p = "dl.softmax"(%logits) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>"#,
    category: Category::Normalization,
    operands: Arity::Exact(1),
    attrs: AXIS,
    infer: normalize,
    grad: Grad::Yes,
    commutative: false,
};

/// `dl.log_softmax`.
pub const LOG_SOFTMAX: OpDef = OpDef {
    name: "dl.log_softmax",
    summary: "x - max - log(sum(exp(x - max))) along an axis; the stable core of cross-entropy.",
    example: r#"%l = "dl.log_softmax"(%logits) {axis = 1} : (tensor<?x10xf32>) -> tensor<?x10xf32>"#,
    category: Category::Normalization,
    operands: Arity::Exact(1),
    attrs: AXIS,
    infer: normalize,
    grad: Grad::Yes,
    commutative: false,
};
