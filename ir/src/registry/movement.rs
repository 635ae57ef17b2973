//! Movement ops: they rearrange, copy or index elements; no arithmetic.

use super::shape::{axis, broadcast, dims_from_attr, dims_str, int_tensor, one, same_dtype, tensor};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef};
use crate::types::{DType, Dim, TensorType, Type};

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
    grad: Grad::Yes,
    commutative: false,
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

/// `dl.transpose`.
pub const TRANSPOSE: OpDef = OpDef {
    name: "dl.transpose",
    summary: "Permutes axes: result dim i is input dim perm[i].",
    example: r#"%y = "dl.transpose"(%w) {perm = [1, 0]} : (tensor<256x784xf32>) -> tensor<784x256xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(1),
    attrs: &[AttrSpec { name: "perm", kind: AttrKind::Ints, default: Default::Required, doc: "a permutation of 0..rank" }],
    infer: transpose,
    grad: Grad::Yes,
    commutative: false,
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

/// `dl.broadcast_to`.
pub const BROADCAST_TO: OpDef = OpDef {
    name: "dl.broadcast_to",
    summary: "Expands size-1 and missing leading dims to `shape` (NumPy rules); -1 is the batch dim ?.",
    example: r#"%y = "dl.broadcast_to"(%b) {shape = [-1, 10]} : (tensor<10xf32>) -> tensor<?x10xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(1),
    attrs: &[AttrSpec { name: "shape", kind: AttrKind::Ints, default: Default::Required, doc: "the target dims; -1 is ?" }],
    infer: broadcast_to,
    grad: Grad::Yes,
    commutative: false,
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

/// `dl.concat`.
pub const CONCAT: OpDef = OpDef {
    name: "dl.concat",
    summary: "Joins tensors along a static axis.",
    example: r#"%y = "dl.concat"(%a, %b) {axis = 1} : (tensor<?x3xf32>, tensor<?x5xf32>) -> tensor<?x8xf32>"#,
    category: Category::Movement,
    operands: Arity::AtLeast(1),
    attrs: &[AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Required, doc: "the axis to join along" }],
    infer: concat,
    grad: Grad::Yes,
    commutative: false,
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
    grad: Grad::Yes,
    commutative: false,
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

/// `dl.gather`.
pub const GATHER: OpDef = OpDef {
    name: "dl.gather",
    summary: "table[..., indices, ...] along one axis (embedding lookup); an out-of-range index is a run-time error.",
    example: r#"%e = "dl.gather"(%emb.weight, %tokens) : (tensor<10000x64xf32>, tensor<?x100xi64>) -> tensor<?x100x64xf32>"#,
    category: Category::Movement,
    operands: Arity::Exact(2),
    attrs: &[AttrSpec { name: "axis", kind: AttrKind::Int, default: Default::Int(0), doc: "the table axis the indices select along" }],
    infer: gather,
    grad: Grad::Yes,
    commutative: false,
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
};
