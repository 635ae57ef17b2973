//! Movement ops: they rearrange, copy or index elements; no arithmetic.
//!
//! Their gradients move the cotangent back: the inverse reshape or
//! permutation, a sum over broadcast dims, slices for concat, zero padding
//! for slice, and a scatter-add for gather (one-hot rows times the cotangent).

use super::shape::{axis, broadcast, dims_from_attr, dims_str, int_tensor, one, same_dtype, tensor};
use super::vjp::{self, VjpArgs, binary as bin, tensor_type, unary_rule, unbroadcast};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef, OpKind};
use crate::builder::{BuildError, Builder};
use crate::module::ValueId;
use crate::types::{DType, Dim, TensorType, Type};

/// The result of a VJP rule.
type Grads = Result<Vec<Option<ValueId>>, BuildError>;

fn reshape_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let t = tensor_type(b, a.x(0))?;
        vjp::reshape(b, a.grad, &t.shape)
    })
}

/// The number of `?` dims and the product of the static ones (`None` when it
/// overflows: shapes come from parsed text and must not panic the verifier).
fn split_static(d: &[Dim]) -> (usize, Option<u64>) {
    let dynamic = d.iter().filter(|x| matches!(x, Dim::Dynamic)).count();
    let product = d.iter().filter_map(|x| x.as_static()).try_fold(1u64, u64::checked_mul);
    (dynamic, product)
}

fn reshape(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = tensor(ops, 0)?;
    let shape = dims_from_attr(&a.ints("shape")?)?;
    let (din, pin) = split_static(&x.shape);
    let (dout, pout) = split_static(&shape);
    if din != dout || pin != pout || pin.is_none() {
        return Err(format!("cannot reshape [{}] into [{}]: element counts differ", dims_str(&x.shape), dims_str(&shape)));
    }
    one(TensorType::new(shape, x.dtype))
}

/// `dl.reshape`.
pub const RESHAPE: OpDef = OpDef {
    name: "dl.reshape",
    summary: "Same elements in row-major order, new shape; -1 in `shape` is the batch dim ?, which must stay a factor.",
    example: r#"%y = "dl.reshape"(%x) {shape = [-1, 576]} : (tensor<?x64x3x3xf32>) -> tensor<?x576xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(1),
    attrs: &[AttrSpec { name: "shape", kind: AttrKind::Ints, default: Default::Required, doc: "the new dims; -1 is ?" }],
    infer: reshape,
    grad: Grad::Vjp(reshape_vjp),
    commutative: false,
    region: None,
};

fn transpose(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = tensor(ops, 0)?;
    let perm = a.ints("perm")?;
    let mut seen = vec![false; x.rank()];
    if perm.len() != x.rank() {
        return Err(format!("perm {perm:?} must list each of the {} axes once", x.rank()));
    }
    let mut shape = Vec::new();
    for &p in &perm {
        let i = usize::try_from(p).ok().filter(|&i| i < x.rank() && !seen[i]);
        let Some(i) = i else {
            return Err(format!("perm {perm:?} must list each of the {} axes once", x.rank()));
        };
        seen[i] = true;
        shape.push(x.shape[i]);
    }
    one(TensorType::new(shape, x.dtype))
}

/// Transposes back by the inverse permutation.
fn transpose_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let perm = a.view(OpKind::Transpose).ints("perm").map_err(|m| vjp::error(OpKind::Transpose, m))?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p as usize] = i;
        }
        vjp::transpose(b, a.grad, &inverse)
    })
}

/// `dl.transpose`.
pub const TRANSPOSE: OpDef = OpDef {
    name: "dl.transpose",
    summary: "Permutes axes: result dim i is input dim perm[i].",
    example: r#"%y = "dl.transpose"(%w) {perm = [1, 0]} : (tensor<256x784xf32>) -> tensor<784x256xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(1),
    attrs: &[AttrSpec { name: "perm", kind: AttrKind::Ints, default: Default::Required, doc: "a permutation of 0..rank" }],
    infer: transpose,
    grad: Grad::Vjp(transpose_vjp),
    commutative: false,
    region: None,
};

fn broadcast_to(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = tensor(ops, 0)?;
    let shape = dims_from_attr(&a.ints("shape")?)?;
    let b = broadcast(&x.shape, &shape)?;
    if b != shape {
        return Err(format!("[{}] does not broadcast to [{}]", dims_str(&x.shape), dims_str(&shape)));
    }
    one(TensorType::new(shape, x.dtype))
}

fn broadcast_to_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let t = tensor_type(b, a.x(0))?;
        unbroadcast(b, a.grad, &t)
    })
}

/// `dl.broadcast_to`.
pub const BROADCAST_TO: OpDef = OpDef {
    name: "dl.broadcast_to",
    summary: "Expands size-1 and missing leading dims to `shape` (NumPy rules); -1 is the batch dim ?.",
    example: r#"%y = "dl.broadcast_to"(%b) {shape = [-1, 10]} : (tensor<10xf32>) -> tensor<?x10xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(1),
    attrs: &[AttrSpec { name: "shape", kind: AttrKind::Ints, default: Default::Required, doc: "the target dims; -1 is ?" }],
    infer: broadcast_to,
    grad: Grad::Vjp(broadcast_to_vjp),
    commutative: false,
    region: None,
};

fn concat(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let ts: Vec<&TensorType> = (0..ops.len()).map(|i| tensor(ops, i)).collect::<Result<_, _>>()?;
    let d = same_dtype(&ts)?;
    let first = ts[0];
    let ax = axis(a.int("axis")?, first.rank())?;
    let mut total = 0u64;
    for t in &ts {
        if t.rank() != first.rank() {
            return Err(format!("operands must have the same rank, got {first} and {t}"));
        }
        for i in 0..t.rank() {
            if i != ax && t.shape[i] != first.shape[i] {
                return Err(format!("operands differ outside axis {ax}: {first} and {t}"));
            }
        }
        let size = t.shape[ax].as_static().ok_or("cannot concatenate along the batch dim ?")?;
        total = total.checked_add(size).ok_or("the concatenated size overflows 64 bits")?;
    }
    let mut shape = first.shape.clone();
    shape[ax] = Dim::Static(total);
    one(TensorType::new(shape, d))
}

/// Each operand gets its own stretch of the cotangent along the axis.
fn concat_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    if !vjp::is_float(b, a.y()) {
        return Ok(vec![None; a.operands.len()]);
    }
    let rank = tensor_type(b, a.y())?.rank();
    let ax = a.view(OpKind::Concat).int("axis").and_then(|x| axis(x, rank)).map_err(|m| vjp::error(OpKind::Concat, m))?;
    let mut start = 0;
    let mut out = Vec::with_capacity(a.operands.len());
    for &x in a.operands {
        let n = vjp::static_dim(b, x, ax)?;
        out.push(Some(if a.operands.len() == 1 { a.grad } else { vjp::slice(b, a.grad, ax, start, start + n, 1)? }));
        start += n;
    }
    Ok(out)
}

/// `dl.concat`.
pub const CONCAT: OpDef = OpDef {
    name: "dl.concat",
    summary: "Joins tensors along a static axis.",
    example: r#"%y = "dl.concat"(%a, %b) {axis = 1} : (tensor<?x3xf32>, tensor<?x5xf32>) -> tensor<?x8xf32>"#,
    category: Category::Movement,
    operands: Arity::AtLeast(1),
    attrs: &[AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Required, doc: "the axis to join along" }],
    infer: concat,
    grad: Grad::Vjp(concat_vjp),
    commutative: false,
    region: None,
};

fn slice(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let x = tensor(ops, 0)?;
    let ax = axis(a.int("axis")?, x.rank())?;
    let size = x.shape[ax].as_static().ok_or("cannot slice along the batch dim ?")? as i64;
    let (start, end, step) = (a.int("start")?, a.int("end")?, a.int("step")?);
    if step < 1 || start < 0 || end < start || end > size {
        return Err(format!("slice [{start}:{end}:{step}] is out of range for axis {ax} of size {size}"));
    }
    let mut shape = x.shape.clone();
    shape[ax] = Dim::Static(((end - start) as u64).div_ceil(step as u64));
    one(TensorType::new(shape, x.dtype))
}

/// Puts the cotangent back at `start, start+step, …`, zeros elsewhere: spread
/// by the step, then padded to the operand's size.
fn slice_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let view = a.view(OpKind::Slice);
        let t = tensor_type(b, a.x(0))?;
        let get = |name: &str| view.int(name).map_err(|m| vjp::error(OpKind::Slice, m));
        let ax = axis(get("axis")?, t.rank()).map_err(|m| vjp::error(OpKind::Slice, m))?;
        let (start, step) = (get("start")?, get("step")?);
        let size = vjp::static_dim(b, a.x(0), ax)? as i64;
        let n = vjp::static_dim(b, a.grad, ax)? as i64;
        let spread = vjp::dilate_axis(b, a.grad, ax, step as u64)?;
        vjp::pad_axis(b, spread, ax, start, size - start - n * step, 0.0)
    })
}

/// `dl.slice`.
pub const SLICE: OpDef = OpDef {
    name: "dl.slice",
    summary: "Elements start, start+step, … < end along one static axis (LSTM gates, sequence steps).",
    example: r#"%g = "dl.slice"(%z) {axis = 1, end = 64, start = 0} : (tensor<?x256xf32>) -> tensor<?x64xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(1),
    attrs: &[
        AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Required, doc: "the axis to slice" },
        AttrSpec { name: "start", kind: AttrKind::Int, default: Default::Required, doc: "first index, 0 <= start <= end" },
        AttrSpec { name: "end", kind: AttrKind::Int, default: Default::Required, doc: "one past the last index, <= size" },
        AttrSpec { name: "step", kind: AttrKind::Int, default: Default::Int(1), doc: "stride, >= 1" },
    ],
    infer: slice,
    grad: Grad::Vjp(slice_vjp),
    commutative: false,
    region: None,
};

fn gather(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let table = tensor(ops, 0)?;
    let idx = int_tensor(ops, 1)?;
    let ax = axis(a.int("axis")?, table.rank())?;
    if matches!(table.shape[ax], Dim::Dynamic) {
        return Err("cannot gather along the batch dim ?".into());
    }
    let mut shape = table.shape[..ax].to_vec();
    shape.extend(&idx.shape);
    shape.extend(&table.shape[ax + 1..]);
    one(TensorType::new(shape, table.dtype))
}

/// Scatter-add of the cotangent into the table: row `v` of the gradient is
/// the sum of the cotangent rows whose index is `v`, i.e. `one_hot(idx)ᵀ · g`.
///
/// For the embedding case (axis 0, static row shape) that is one matmul over
/// the flattened indices — batched over `?` and then summed when the indices
/// carry the batch dim, since `?` cannot be merged into a static dim. Other
/// axes use the broadcast form: one-hot `[.., I, V, ..]` times the cotangent,
/// summed over the index dims, which handles any placement of `?`.
fn gather_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    let (table, idx) = (a.x(0), a.x(1));
    if !vjp::is_float(b, table) {
        return Ok(vec![None, None]);
    }
    let (tt, it) = (tensor_type(b, table)?, tensor_type(b, idx)?);
    let ax = a.view(OpKind::Gather).int("axis").and_then(|x| axis(x, tt.rank())).map_err(|m| vjp::error(OpKind::Gather, m))?;
    let v = vjp::static_dim(b, table, ax)?;
    let hot = b.op(OpKind::OneHot, &[idx], crate::attrs! {"num_classes" => v as i64, "dtype" => tt.dtype})?;
    let rest = &tt.shape[ax + 1..];
    let row = rest.iter().try_fold(1u64, |n, d| d.as_static().map(|d| n * d));
    let dynamic = it.shape.iter().filter(|d| **d == Dim::Dynamic).count();
    let m = Dim::Static(it.shape.iter().filter_map(|d| d.as_static()).product());
    let grad = match row {
        Some(r) if ax == 0 && dynamic <= 1 => {
            let r = Dim::Static(r);
            let lead: &[Dim] = if dynamic == 1 { &[Dim::Dynamic] } else { &[] };
            let hot = vjp::reshape(b, hot, &[lead, &[m, Dim::Static(v)]].concat())?;
            let g = vjp::reshape(b, a.grad, &[lead, &[m, r]].concat())?;
            let mut attrs = crate::Attrs::new();
            attrs.insert("transpose_a".into(), crate::Attr::Bool(true));
            let per = b.op(OpKind::Matmul, &[hot, g], attrs)?;
            vjp::reduce_sum(b, per, &(0..lead.len()).collect::<Vec<_>>(), false)?
        }
        _ => {
            let k = it.rank();
            let ones = |n: usize| vec![Dim::Static(1); n];
            let hot = vjp::reshape(b, hot, &[ones(ax), it.shape.clone(), vec![Dim::Static(v)], ones(rest.len())].concat())?;
            let gt = tensor_type(b, a.grad)?;
            let g = vjp::reshape(b, a.grad, &[&gt.shape[..ax + k], &[Dim::Static(1)], &gt.shape[ax + k..]].concat())?;
            let prod = bin(b, OpKind::Mul, hot, g)?;
            vjp::reduce_sum(b, prod, &(ax..ax + k).collect::<Vec<_>>(), false)?
        }
    };
    Ok(vec![Some(vjp::reshape(b, grad, &tt.shape)?), None])
}

/// `dl.gather`.
pub const GATHER: OpDef = OpDef {
    name: "dl.gather",
    summary: "table[..., indices, ...] along one axis (embedding lookup); an out-of-range index is a run-time error.",
    example: r#"%e = "dl.gather"(%emb.weight, %tokens) : (tensor<10000x64xf32>, tensor<?x100xi64>) -> tensor<?x100x64xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(2),
    attrs: &[AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Int(0), doc: "the table axis the indices select along" }],
    infer: gather,
    grad: Grad::Vjp(gather_vjp),
    commutative: false,
    region: None,
};

fn one_hot(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let idx = int_tensor(ops, 0)?;
    let n = a.int("num_classes")?;
    if n < 1 {
        return Err(format!("num_classes must be positive, got {n}"));
    }
    let dtype = a.dtype("dtype")?;
    if dtype == DType::I1 {
        return Err("one_hot dtype must be numeric".into());
    }
    let mut shape = idx.shape.clone();
    shape.push(Dim::Static(n as u64));
    one(TensorType::new(shape, dtype))
}

/// `dl.one_hot`.
pub const ONE_HOT: OpDef = OpDef {
    name: "dl.one_hot",
    summary: "Class indices to one-hot rows (a new last axis); an index outside [0, num_classes) is a run-time error.",
    example: r#"%t = "dl.one_hot"(%labels) {num_classes = 10} : (tensor<?xi64>) -> tensor<?x10xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(1),
    attrs: &[
        AttrSpec { name: "num_classes", kind: AttrKind::Int, default: Default::Required, doc: "the size of the new axis" },
        AttrSpec { name: "dtype", kind: AttrKind::DType, default: Default::DType(DType::F32), doc: "the result element type" },
    ],
    infer: one_hot,
    grad: Grad::No,
    commutative: false,
    region: None,
};
