//! Elementwise ops: unary maps and broadcasting binary maps.
//!
//! Transcendental activations (`tanh`, `sigmoid`) are primitives rather than
//! compositions of `exp` because each has a numerically stable direct form
//! (no overflow of `exp(-x)` for large negative x) and a cheap derivative in
//! terms of its own output.

use super::shape::{broadcast, float_tensor, one, same_dtype, tensor};
use super::{Arity, AttrSpec, AttrView, Category, Default, Grad, OpDef, AttrKind};
use crate::types::{DType, TensorType, Type};

fn unary_float(ops: &[Type], _: &AttrView) -> Result<Vec<Type>, String> {
    one(float_tensor(ops, 0)?.clone())
}

fn unary_numeric(ops: &[Type], _: &AttrView) -> Result<Vec<Type>, String> {
    let t = tensor(ops, 0)?;
    if t.dtype == DType::I1 {
        return Err(format!("operand must be numeric, got {t}"));
    }
    one(t.clone())
}

const fn unary(name: &'static str, summary: &'static str, example: &'static str, infer: super::InferFn) -> OpDef {
    OpDef {
        name,
        summary,
        example,
        category: Category::Unary,
        operands: Arity::Exact(1),
        attrs: &[],
        infer,
        grad: Grad::Yes,
        commutative: false,
    }
}

/// `dl.neg`: `-x`.
pub const NEG: OpDef = unary("dl.neg", "Negation, -x.", r#"%y = "dl.neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_numeric);
/// `dl.abs`: `|x|`.
pub const ABS: OpDef = unary("dl.abs", "Absolute value |x| (the L1 loss needs it).", r#"%y = "dl.abs"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_numeric);
/// `dl.exp`: `e^x`.
pub const EXP: OpDef = unary("dl.exp", "Natural exponential e^x.", r#"%y = "dl.exp"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float);
/// `dl.log`: natural logarithm.
pub const LOG: OpDef = unary("dl.log", "Natural logarithm ln x.", r#"%y = "dl.log"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float);
/// `dl.sqrt`.
pub const SQRT: OpDef = unary("dl.sqrt", "Square root.", r#"%y = "dl.sqrt"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float);
/// `dl.rsqrt`: `1/sqrt(x)`, a primitive because optimizers and norms use it in hot loops.
pub const RSQRT: OpDef = unary("dl.rsqrt", "Reciprocal square root 1/sqrt(x); one op for the optimizer and norm hot loops.", r#"%y = "dl.rsqrt"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float);
/// `dl.tanh`.
pub const TANH: OpDef = unary("dl.tanh", "Hyperbolic tangent; primitive for its stable form and its derivative 1 - y^2.", r#"%y = "dl.tanh"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float);
/// `dl.sigmoid`.
pub const SIGMOID: OpDef = unary("dl.sigmoid", "Logistic 1/(1+e^-x); primitive for its stable form and its derivative y(1-y).", r#"%y = "dl.sigmoid"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float);
/// `dl.relu`.
pub const RELU: OpDef = unary("dl.relu", "max(x, 0); primitive because it is the commonest activation and fuses into every epilogue.", r#"%y = "dl.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float);

/// `dl.leaky_relu`: `x` if `x > 0`, else `alpha·x`.
pub const LEAKY_RELU: OpDef = OpDef {
    attrs: &[AttrSpec { name: "alpha", kind: AttrKind::Float, default: Default::Float(0.01), doc: "slope for x < 0 (PyTorch's negative_slope)" }],
    ..unary(
        "dl.leaky_relu",
        "x if x > 0 else alpha*x.",
        r#"%y = "dl.leaky_relu"(%x) {alpha = 0.2} : (tensor<4xf32>) -> tensor<4xf32>"#,
        unary_float,
    )
};

fn cast(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let t = tensor(ops, 0)?;
    one(t.with_dtype(a.dtype("dtype")?))
}

/// `dl.cast`: converts the element type (floats to ints truncate toward zero; nonzero is true).
pub const CAST: OpDef = OpDef {
    attrs: &[AttrSpec { name: "dtype", kind: AttrKind::DType, default: Default::Required, doc: "the result element type" }],
    grad: Grad::Yes,
    ..unary(
        "dl.cast",
        "Element type conversion; float to int truncates toward zero, nonzero to i1 is true.",
        r#"%y = "dl.cast"(%labels) {dtype = f32} : (tensor<?xi64>) -> tensor<?xf32>"#,
        cast,
    )
};

fn binary_arith(ops: &[Type], _: &AttrView) -> Result<Vec<Type>, String> {
    let (a, b) = (tensor(ops, 0)?, tensor(ops, 1)?);
    let d = same_dtype(&[a, b])?;
    if d == DType::I1 {
        return Err(format!("arithmetic needs numeric operands, got {a}"));
    }
    one(TensorType::new(broadcast(&a.shape, &b.shape)?, d))
}

fn binary_float(ops: &[Type], av: &AttrView) -> Result<Vec<Type>, String> {
    float_tensor(ops, 0)?;
    binary_arith(ops, av)
}

const fn binary(name: &'static str, summary: &'static str, example: &'static str, commutative: bool) -> OpDef {
    OpDef {
        name,
        summary,
        example,
        category: Category::Binary,
        operands: Arity::Exact(2),
        attrs: &[],
        infer: binary_arith,
        grad: Grad::Yes,
        commutative,
    }
}

/// `dl.add`, broadcasting.
pub const ADD: OpDef = binary("dl.add", "a + b with NumPy broadcasting.", r#"%y = "dl.add"(%a, %b) : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>"#, true);
/// `dl.sub`, broadcasting.
pub const SUB: OpDef = binary("dl.sub", "a - b with NumPy broadcasting.", r#"%y = "dl.sub"(%a, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>"#, false);
/// `dl.mul`, broadcasting.
pub const MUL: OpDef = binary("dl.mul", "a * b with NumPy broadcasting.", r#"%y = "dl.mul"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, true);
/// `dl.div`, broadcasting (integer division truncates toward zero).
pub const DIV: OpDef = binary("dl.div", "a / b with NumPy broadcasting; integer division truncates toward zero.", r#"%y = "dl.div"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, false);
/// `dl.pow`, broadcasting, floats only.
pub const POW: OpDef = OpDef {
    infer: binary_float,
    ..binary("dl.pow", "a ^ b with NumPy broadcasting (floats).", r#"%y = "dl.pow"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, false)
};
/// `dl.maximum`, broadcasting.
pub const MAXIMUM: OpDef = binary("dl.maximum", "Elementwise max(a, b) with broadcasting (NaN propagates).", r#"%y = "dl.maximum"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, true);
/// `dl.minimum`, broadcasting.
pub const MINIMUM: OpDef = binary("dl.minimum", "Elementwise min(a, b) with broadcasting (NaN propagates).", r#"%y = "dl.minimum"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, true);

/// The comparison predicates of `dl.cmp`.
pub const PREDICATES: &[&str] = &["eq", "ne", "lt", "le", "gt", "ge"];

fn cmp(ops: &[Type], _: &AttrView) -> Result<Vec<Type>, String> {
    let (a, b) = (tensor(ops, 0)?, tensor(ops, 1)?);
    same_dtype(&[a, b])?;
    one(TensorType::new(broadcast(&a.shape, &b.shape)?, DType::I1))
}

/// `dl.cmp`: elementwise comparison to `i1`.
pub const CMP: OpDef = OpDef {
    name: "dl.cmp",
    summary: "Elementwise comparison a <predicate> b, giving i1; broadcasting.",
    example: r#"%m = "dl.cmp"(%a, %b) {predicate = "gt"} : (tensor<4xf32>, tensor<f32>) -> tensor<4xi1>"#,
    category: Category::Binary,
    operands: Arity::Exact(2),
    attrs: &[AttrSpec { name: "predicate", kind: AttrKind::Enum(PREDICATES), default: Default::Required, doc: "eq, ne, lt, le, gt or ge" }],
    infer: cmp,
    grad: Grad::No,
    commutative: false,
};

fn select(ops: &[Type], _: &AttrView) -> Result<Vec<Type>, String> {
    let (c, a, b) = (tensor(ops, 0)?, tensor(ops, 1)?, tensor(ops, 2)?);
    if c.dtype != DType::I1 {
        return Err(format!("condition must be i1, got {c}"));
    }
    let d = same_dtype(&[a, b])?;
    let s = broadcast(&broadcast(&c.shape, &a.shape)?, &b.shape)?;
    one(TensorType::new(s, d))
}

/// `dl.select`: `cond ? a : b`, broadcasting all three.
pub const SELECT: OpDef = OpDef {
    name: "dl.select",
    summary: "cond ? a : b elementwise, broadcasting all three; the gradient router for max and relu.",
    example: r#"%y = "dl.select"(%m, %a, %b) : (tensor<4xi1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>"#,
    category: Category::Binary,
    operands: Arity::Exact(3),
    attrs: &[],
    infer: select,
    grad: Grad::Yes,
    commutative: false,
};
