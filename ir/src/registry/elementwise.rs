//! Elementwise ops: unary maps and broadcasting binary maps.
//!
//! Transcendental activations (`tanh`, `sigmoid`) are primitives rather than
//! compositions of `exp` because each has a numerically stable direct form
//! (no overflow of `exp(-x)` for large negative x) and a cheap derivative in
//! terms of its own output.
//!
//! Each op's VJP rule sits above its definition. Where a derivative has a
//! kink (`abs`, `relu`, `maximum`), the rules pick PyTorch's subgradient.

use super::shape::{broadcast, float_tensor, one, same_dtype, tensor};
use super::vjp::{self, VjpArgs, VjpFn, binary as bin, scalar_like, tensor_type, unary_rule, unbroadcast};
use super::{Arity, AttrSpec, AttrView, Category, Default, Grad, OpDef, AttrKind, OpKind};
use crate::builder::{BuildError, Builder};
use crate::module::ValueId;
use crate::types::{DType, TensorType, Type};

/// The result of a VJP rule.
type Grads = Result<Vec<Option<ValueId>>, BuildError>;

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

const fn unary(name: &'static str, summary: &'static str, example: &'static str, infer: super::InferFn, rule: VjpFn) -> OpDef {
    OpDef {
        name,
        summary,
        example,
        category: Category::Unary,
        operands: Arity::Exact(1),
        attrs: &[],
        infer,
        grad: Grad::Vjp(rule),
        commutative: false,
        region: None,
    }
}

fn neg_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| vjp::unary(b, OpKind::Neg, a.grad))
}

/// `dl.neg`: `-x`.
pub const NEG: OpDef = unary("dl.neg", "Negation, -x.", r#"%y = "dl.neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_numeric, neg_vjp);

/// `g · sign(x)`, with sign(0) = 0 as PyTorch's.
fn abs_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let zero = scalar_like(b, 0.0, a.x(0))?;
        let (pos, neg) = (vjp::cmp(b, "gt", a.x(0), zero)?, vjp::cmp(b, "lt", a.x(0), zero)?);
        let minus = vjp::unary(b, OpKind::Neg, a.grad)?;
        let tail = vjp::select(b, neg, minus, zero)?;
        vjp::select(b, pos, a.grad, tail)
    })
}

/// `dl.abs`: `|x|`.
pub const ABS: OpDef = unary("dl.abs", "Absolute value |x| (the L1 loss needs it).", r#"%y = "dl.abs"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_numeric, abs_vjp);

fn exp_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| bin(b, OpKind::Mul, a.grad, a.y()))
}

/// `dl.exp`: `e^x`.
pub const EXP: OpDef = unary("dl.exp", "Natural exponential e^x.", r#"%y = "dl.exp"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float, exp_vjp);

fn log_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| bin(b, OpKind::Div, a.grad, a.x(0)))
}

/// `dl.log`: natural logarithm.
pub const LOG: OpDef = unary("dl.log", "Natural logarithm ln x.", r#"%y = "dl.log"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float, log_vjp);

/// `g / (2·sqrt(x))`, reusing the forward result.
fn sqrt_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let half = scalar_like(b, 0.5, a.grad)?;
        let g = bin(b, OpKind::Mul, a.grad, half)?;
        bin(b, OpKind::Div, g, a.y())
    })
}

/// `dl.sqrt`.
pub const SQRT: OpDef = unary("dl.sqrt", "Square root.", r#"%y = "dl.sqrt"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float, sqrt_vjp);

/// d/dx x^(-1/2) = -x^(-3/2)/2 = -y³/2, from the forward result alone.
fn rsqrt_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let y2 = bin(b, OpKind::Mul, a.y(), a.y())?;
        let y3 = bin(b, OpKind::Mul, y2, a.y())?;
        let k = scalar_like(b, -0.5, a.grad)?;
        let d = bin(b, OpKind::Mul, y3, k)?;
        bin(b, OpKind::Mul, a.grad, d)
    })
}

/// `dl.rsqrt`: `1/sqrt(x)`, a primitive because optimizers and norms use it in hot loops.
pub const RSQRT: OpDef = unary("dl.rsqrt", "Reciprocal square root 1/sqrt(x); one op for the optimizer and norm hot loops.", r#"%y = "dl.rsqrt"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float, rsqrt_vjp);

/// `g · (1 - y²)`.
fn tanh_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let one = scalar_like(b, 1.0, a.grad)?;
        let y2 = bin(b, OpKind::Mul, a.y(), a.y())?;
        let d = bin(b, OpKind::Sub, one, y2)?;
        bin(b, OpKind::Mul, a.grad, d)
    })
}

/// `dl.tanh`.
pub const TANH: OpDef = unary("dl.tanh", "Hyperbolic tangent; primitive for its stable form and its derivative 1 - y^2.", r#"%y = "dl.tanh"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float, tanh_vjp);

/// `g · y · (1 - y)`.
fn sigmoid_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let one = scalar_like(b, 1.0, a.grad)?;
        let rest = bin(b, OpKind::Sub, one, a.y())?;
        let d = bin(b, OpKind::Mul, a.y(), rest)?;
        bin(b, OpKind::Mul, a.grad, d)
    })
}

/// `dl.sigmoid`.
pub const SIGMOID: OpDef = unary("dl.sigmoid", "Logistic 1/(1+e^-x); primitive for its stable form and its derivative y(1-y).", r#"%y = "dl.sigmoid"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float, sigmoid_vjp);

/// `x > 0 ? g : 0` (PyTorch's: the gradient at 0 is 0).
fn relu_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let zero = scalar_like(b, 0.0, a.x(0))?;
        let pos = vjp::cmp(b, "gt", a.x(0), zero)?;
        vjp::select(b, pos, a.grad, zero)
    })
}

/// `dl.relu`.
pub const RELU: OpDef = unary("dl.relu", "max(x, 0); primitive because it is the commonest activation and fuses into every epilogue.", r#"%y = "dl.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#, unary_float, relu_vjp);

/// `x > 0 ? g : alpha·g`.
fn leaky_relu_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    unary_rule(b, a, |b, a| {
        let alpha = a.view(OpKind::LeakyRelu).float("alpha").map_err(|m| vjp::error(OpKind::LeakyRelu, m))?;
        let zero = scalar_like(b, 0.0, a.x(0))?;
        let k = scalar_like(b, alpha, a.grad)?;
        let pos = vjp::cmp(b, "gt", a.x(0), zero)?;
        let scaled = bin(b, OpKind::Mul, a.grad, k)?;
        vjp::select(b, pos, a.grad, scaled)
    })
}

/// `dl.leaky_relu`: `x` if `x > 0`, else `alpha·x`.
pub const LEAKY_RELU: OpDef = OpDef {
    attrs: &[AttrSpec { name: "alpha", kind: AttrKind::Float, default: Default::Float(0.01), doc: "slope for x < 0 (PyTorch's negative_slope)" }],
    ..unary(
        "dl.leaky_relu",
        "x if x > 0 else alpha*x.",
        r#"%y = "dl.leaky_relu"(%x) {alpha = 0.2} : (tensor<4xf32>) -> tensor<4xf32>"#,
        unary_float,
        leaky_relu_vjp,
    )
};

fn cast(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let t = tensor(ops, 0)?;
    one(t.with_dtype(a.dtype("dtype")?))
}

/// Casts the cotangent back to the operand's dtype; a cast from or to an
/// integer or boolean type is piecewise constant, so it passes no gradient.
fn cast_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    if !vjp::is_float(b, a.y()) {
        return Ok(vec![None]);
    }
    unary_rule(b, a, |b, a| {
        let d = tensor_type(b, a.x(0))?.dtype;
        if tensor_type(b, a.grad)?.dtype == d {
            return Ok(a.grad);
        }
        b.op(OpKind::Cast, &[a.grad], crate::attrs! {"dtype" => d})
    })
}

/// `dl.cast`: converts the element type (floats to ints truncate toward zero; nonzero is true).
pub const CAST: OpDef = OpDef {
    attrs: &[AttrSpec { name: "dtype", kind: AttrKind::DType, default: Default::Required, doc: "the result element type" }],
    ..unary(
        "dl.cast",
        "Element type conversion; float to int truncates toward zero, nonzero to i1 is true.",
        r#"%y = "dl.cast"(%labels) {dtype = f32} : (tensor<?xi64>) -> tensor<?xf32>"#,
        cast,
        cast_vjp,
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

const fn binary(name: &'static str, summary: &'static str, example: &'static str, commutative: bool, rule: VjpFn) -> OpDef {
    OpDef {
        name,
        summary,
        example,
        category: Category::Binary,
        operands: Arity::Exact(2),
        attrs: &[],
        infer: binary_arith,
        grad: Grad::Vjp(rule),
        commutative,
        region: None,
    }
}

/// The rule of a broadcasting binary op: `rule` gives the cotangents of both
/// operands at the result's shape, which are then summed down to each
/// operand's type. Integer operands get none.
fn binary_rule(
    b: &mut Builder<'_>,
    a: &VjpArgs<'_>,
    rule: impl FnOnce(&mut Builder<'_>, &VjpArgs<'_>) -> Result<[ValueId; 2], BuildError>,
) -> Grads {
    if !vjp::is_float(b, a.x(0)) {
        return Ok(vec![None, None]);
    }
    let [ga, gb] = rule(b, a)?;
    let (ta, tb) = (tensor_type(b, a.x(0))?, tensor_type(b, a.x(1))?);
    Ok(vec![Some(unbroadcast(b, ga, &ta)?), Some(unbroadcast(b, gb, &tb)?)])
}

fn add_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    binary_rule(b, a, |_, a| Ok([a.grad, a.grad]))
}

/// `dl.add`, broadcasting.
pub const ADD: OpDef = binary("dl.add", "a + b with NumPy broadcasting.", r#"%y = "dl.add"(%a, %b) : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>"#, true, add_vjp);

fn sub_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    binary_rule(b, a, |b, a| Ok([a.grad, vjp::unary(b, OpKind::Neg, a.grad)?]))
}

/// `dl.sub`, broadcasting.
pub const SUB: OpDef = binary("dl.sub", "a - b with NumPy broadcasting.", r#"%y = "dl.sub"(%a, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>"#, false, sub_vjp);

fn mul_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    binary_rule(b, a, |b, a| Ok([bin(b, OpKind::Mul, a.grad, a.x(1))?, bin(b, OpKind::Mul, a.grad, a.x(0))?]))
}

/// `dl.mul`, broadcasting.
pub const MUL: OpDef = binary("dl.mul", "a * b with NumPy broadcasting.", r#"%y = "dl.mul"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, true, mul_vjp);

/// `g/b` and `-g·a/b² = -(g/b)·y`, sharing the division.
fn div_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    binary_rule(b, a, |b, a| {
        let ga = bin(b, OpKind::Div, a.grad, a.x(1))?;
        let t = bin(b, OpKind::Mul, ga, a.y())?;
        Ok([ga, vjp::unary(b, OpKind::Neg, t)?])
    })
}

/// `dl.div`, broadcasting (integer division truncates toward zero).
pub const DIV: OpDef = binary("dl.div", "a / b with NumPy broadcasting; integer division truncates toward zero.", r#"%y = "dl.div"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, false, div_vjp);

/// `g·b·a^(b-1)` and `g·y·ln a`; the exponent's gradient takes ln a as 0
/// where `a <= 0` (where `a^b` is 0 or not real-differentiable in b), so a
/// zero base never turns the gradient into NaN.
fn pow_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    binary_rule(b, a, |b, a| {
        let (x, e) = (a.x(0), a.x(1));
        let one = scalar_like(b, 1.0, x)?;
        let zero = scalar_like(b, 0.0, x)?;
        let em1 = bin(b, OpKind::Sub, e, one)?;
        let p = bin(b, OpKind::Pow, x, em1)?;
        let d = bin(b, OpKind::Mul, e, p)?;
        let ga = bin(b, OpKind::Mul, a.grad, d)?;
        let pos = vjp::cmp(b, "gt", x, zero)?;
        let safe = vjp::select(b, pos, x, one)?;
        let ln = vjp::unary(b, OpKind::Log, safe)?;
        let gy = bin(b, OpKind::Mul, a.grad, a.y())?;
        Ok([ga, bin(b, OpKind::Mul, gy, ln)?])
    })
}

/// `dl.pow`, broadcasting, floats only.
pub const POW: OpDef = OpDef {
    infer: binary_float,
    ..binary("dl.pow", "a ^ b with NumPy broadcasting (floats).", r#"%y = "dl.pow"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, false, pow_vjp)
};

/// The cotangent goes to the operand that wins (`wins` is "gt" for maximum,
/// "lt" for minimum); on a tie each gets half, as PyTorch's maximum/minimum.
fn extremum_rule(b: &mut Builder<'_>, a: &VjpArgs<'_>, wins: &str, loses: &str) -> Grads {
    binary_rule(b, a, |b, a| {
        let (x, y) = (a.x(0), a.x(1));
        let zero = scalar_like(b, 0.0, a.grad)?;
        let half = scalar_like(b, 0.5, a.grad)?;
        let tie = vjp::cmp(b, "eq", x, y)?;
        let halved = bin(b, OpKind::Mul, a.grad, half)?;
        let shared = vjp::select(b, tie, halved, zero)?;
        let (xw, yw) = (vjp::cmp(b, wins, x, y)?, vjp::cmp(b, loses, x, y)?);
        Ok([vjp::select(b, xw, a.grad, shared)?, vjp::select(b, yw, a.grad, shared)?])
    })
}

fn maximum_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    extremum_rule(b, a, "gt", "lt")
}

fn minimum_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    extremum_rule(b, a, "lt", "gt")
}

/// `dl.maximum`, broadcasting.
pub const MAXIMUM: OpDef = binary("dl.maximum", "Elementwise max(a, b) with broadcasting (NaN propagates).", r#"%y = "dl.maximum"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, true, maximum_vjp);
/// `dl.minimum`, broadcasting.
pub const MINIMUM: OpDef = binary("dl.minimum", "Elementwise min(a, b) with broadcasting (NaN propagates).", r#"%y = "dl.minimum"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>"#, true, minimum_vjp);

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
    region: None,
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

/// The cotangent is routed to the branch each element took; the condition
/// gets none.
fn select_vjp(b: &mut Builder<'_>, a: &VjpArgs<'_>) -> Grads {
    if !vjp::is_float(b, a.x(1)) {
        return Ok(vec![None, None, None]);
    }
    let c = a.x(0);
    let zero = scalar_like(b, 0.0, a.grad)?;
    let (ga, gb) = (vjp::select(b, c, a.grad, zero)?, vjp::select(b, c, zero, a.grad)?);
    let (ta, tb) = (tensor_type(b, a.x(1))?, tensor_type(b, a.x(2))?);
    Ok(vec![None, Some(unbroadcast(b, ga, &ta)?), Some(unbroadcast(b, gb, &tb)?)])
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
    grad: Grad::Vjp(select_vjp),
    commutative: false,
    region: None,
};
