//! Reductions over a set of axes.

use super::shape::{axes, axis, float_tensor, one, tensor};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef};
use crate::types::{DType, Dim, TensorType, Type};

const REDUCE_ATTRS: &[AttrSpec] = &[
    AttrSpec { name: "axes", kind: AttrKind::Ints, default: Default::Required, doc: "the axes to fold (negative counts from the end)" },
    AttrSpec { name: "keepdims", kind: AttrKind::Bool, default: Default::Bool(false), doc: "keep folded axes as size 1" },
];

fn reduced(t: &TensorType, folded: &[usize], keepdims: bool) -> Vec<Dim> {
    let mut out = Vec::new();
    for (i, d) in t.shape.iter().enumerate() {
        if !folded.contains(&i) {
            out.push(*d);
        } else if keepdims {
            out.push(Dim::Static(1));
        }
    }
    out
}

fn reduce(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let t = tensor(ops, 0)?;
    if t.dtype == DType::I1 {
        return Err(format!("cannot reduce booleans, got {t}"));
    }
    let ax = axes(&a.ints("axes")?, t.rank())?;
    one(TensorType::new(reduced(t, &ax, a.bool("keepdims")?), t.dtype))
}

fn reduce_float(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    float_tensor(ops, 0)?;
    reduce(ops, a)
}

const fn def(name: &'static str, summary: &'static str, example: &'static str, infer: super::InferFn) -> OpDef {
    OpDef {
        name,
        summary,
        example,
        category: Category::Reduction,
        operands: Arity::Exact(1),
        attrs: REDUCE_ATTRS,
        infer,
        grad: Grad::Yes,
        commutative: false,
    }
}

/// `dl.reduce_sum`.
pub const REDUCE_SUM: OpDef = def("dl.reduce_sum", "Sum over axes.", r#"%s = "dl.reduce_sum"(%x) {axes = [0]} : (tensor<?x10xf32>) -> tensor<10xf32>"#, reduce);
/// `dl.reduce_mean`: a primitive because the divisor may be the run-time batch size.
pub const REDUCE_MEAN: OpDef = def(
    "dl.reduce_mean",
    "Mean over axes; a primitive because the divisor can be the run-time batch size.",
    r#"%m = "dl.reduce_mean"(%x) {axes = [0]} : (tensor<?xf32>) -> tensor<f32>"#,
    reduce_float,
);
/// `dl.reduce_max`.
pub const REDUCE_MAX: OpDef = def("dl.reduce_max", "Maximum over axes (NaN propagates).", r#"%m = "dl.reduce_max"(%x) {axes = [1], keepdims = true} : (tensor<?x10xf32>) -> tensor<?x1xf32>"#, reduce);

fn argmax(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let t = tensor(ops, 0)?;
    let ax = axis(a.int("axis")?, t.rank())?;
    one(TensorType::new(reduced(t, &[ax], a.bool("keepdims")?), DType::I64))
}

/// `dl.argmax`: index of the first maximum along one axis, as i64.
pub const ARGMAX: OpDef = OpDef {
    name: "dl.argmax",
    summary: "Index (i64) of the first maximum along one axis; for accuracy metrics.",
    example: r#"%c = "dl.argmax"(%logits) {axis = 1} : (tensor<?x10xf32>) -> tensor<?xi64>"#,
    category: Category::Reduction,
    operands: Arity::Exact(1),
    attrs: &[
        AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Required, doc: "the axis to search" },
        AttrSpec { name: "keepdims", kind: AttrKind::Bool, default: Default::Bool(false), doc: "keep the axis as size 1" },
    ],
    infer: argmax,
    grad: Grad::No,
    commutative: false,
};
