//! Reductions over a set of axes.

use super::shape::{axes, axis, float_tensor, one, tensor};
use super::vjp::{self, VjpArgs, VjpFn, binary as bin, cmp, expand, kept_dims, reshape, scalar_like, select, tensor_type};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef, OpKind};
use crate::builder::{BuildError, Builder};
use crate::module::ValueId;
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

const fn def(name: &'static str, summary: &'static str, example: &'static str, infer: super::InferFn, rule: VjpFn) -> OpDef {
    OpDef {
        name,
        summary,
        example,
        category: Category::Reduction,
        operands: Arity::Exact(1),
        attrs: REDUCE_ATTRS,
        infer,
        grad: Grad::Vjp(rule),
        commutative: false,
        region: None,
    }
}

/// A reduction's operand type, folded axes and `keepdims`, or `None` when the
/// operand is not a float (integer reductions pass no gradient).
fn reduction(b: &Builder<'_>, a: &VjpArgs<'_>, kind: OpKind) -> Result<Option<(TensorType, Vec<usize>, bool)>, BuildError> {
    if !vjp::is_float(b, a.x(0)) {
        return Ok(None);
    }
    let t = tensor_type(b, a.x(0))?;
    let view = a.view(kind);
    let err = |m| vjp::error(kind, m);
    let ax = axes(&view.ints("axes").map_err(err)?, t.rank()).map_err(err)?;
    Ok(Some((t, ax, view.bool("keepdims").map_err(err)?)))
}

/// Every summed element gets its sum's cotangent.
fn reduce_sum_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Result<Vec<Option<ValueId>>, BuildError> {
    let Some((t, ax, keep)) = reduction(b, a, OpKind::ReduceSum)? else { return Ok(vec![None]) };
    Ok(vec![Some(expand(b, a.grad, &t, &ax, keep)?)])
}

/// `dl.reduce_sum`.
pub const REDUCE_SUM: OpDef = def("dl.reduce_sum", "Sum over axes.", r#"%s = "dl.reduce_sum"(%x) {axes = [0]} : (tensor<?x10xf32>) -> tensor<10xf32>"#, reduce, reduce_sum_vjp);

/// The sum's cotangent divided by the count. When a folded axis is the
/// batch `?`, the count is only known at run time: it is computed as the sum
/// of a ones tensor over the same axes.
fn reduce_mean_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Result<Vec<Option<ValueId>>, BuildError> {
    let Some((t, ax, keep)) = reduction(b, a, OpKind::ReduceMean)? else { return Ok(vec![None]) };
    let g = expand(b, a.grad, &t, &ax, keep)?;
    let count = ax.iter().try_fold(1u64, |n, &i| t.shape[i].as_static().map(|d| n * d));
    let scaled = match count {
        Some(n) => {
            let k = scalar_like(b, 1.0 / n as f64, g)?;
            bin(b, OpKind::Mul, g, k)?
        }
        None => {
            let ones = vjp::full(b, &t, 1.0)?;
            let n = vjp::reduce_sum(b, ones, &ax, true)?;
            bin(b, OpKind::Div, g, n)?
        }
    };
    Ok(vec![Some(scaled)])
}

/// `dl.reduce_mean`: a primitive because the divisor may be the run-time batch size.
pub const REDUCE_MEAN: OpDef = def(
    "dl.reduce_mean",
    "Mean over axes; a primitive because the divisor can be the run-time batch size.",
    r#"%m = "dl.reduce_mean"(%x) {axes = [0]} : (tensor<?xf32>) -> tensor<f32>"#,
    reduce_float,
    reduce_mean_vjp,
);

/// The cotangent goes to the elements equal to the maximum, split evenly
/// among ties (PyTorch's `amax`/`max(dim)` backward for ties is this even split).
fn reduce_max_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Result<Vec<Option<ValueId>>, BuildError> {
    let Some((t, ax, keep)) = reduction(b, a, OpKind::ReduceMax)? else { return Ok(vec![None]) };
    let kept = kept_dims(&t.shape, &ax);
    let (y, g) = if keep { (a.y(), a.grad) } else { (reshape(b, a.y(), &kept)?, reshape(b, a.grad, &kept)?) };
    let hit = cmp(b, "eq", a.x(0), y)?;
    let (one, zero) = (scalar_like(b, 1.0, g)?, scalar_like(b, 0.0, g)?);
    let ones = select(b, hit, one, zero)?;
    let count = vjp::reduce_sum(b, ones, &ax, true)?;
    let share = bin(b, OpKind::Div, g, count)?;
    Ok(vec![Some(select(b, hit, share, zero)?)])
}

/// `dl.reduce_max`.
pub const REDUCE_MAX: OpDef = def(
    "dl.reduce_max",
    "Maximum over axes (NaN propagates).",
    r#"%m = "dl.reduce_max"(%x) {axes = [1], keepdims = true} : (tensor<?x10xf32>) -> tensor<?x1xf32>"#,
    reduce,
    reduce_max_vjp,
);

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
    region: None,
};
