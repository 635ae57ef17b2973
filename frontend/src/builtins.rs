//! The builtin functions, in ONE table: each name maps to a registry op and
//! says how its positional and keyword arguments become operands and
//! attributes. Operators are sugar for entries here (`a + b` is `add(a, b)`,
//! see [`crate::ast::BinOp::builtin`]), so adding a builtin is one line and no
//! other file names an op.
//!
//! The table knows argument plumbing only; shapes are the registry's business
//! (the op's shape rule runs when the lowering builds it).

use crate::ast::BinOp;
use dlc_ir::registry::shape::{axis as norm_axis, dims_str};
use dlc_ir::{Attr, DType, Dim, OpKind, TensorType};

/// One builtin function.
pub struct Builtin {
    /// Its name in the language.
    pub name: &'static str,
    /// The registry op it builds.
    pub op: OpKind,
    /// Its parameters, in positional order.
    pub params: &'static [BParam],
    /// String attributes fixed by the name (`less` is `dl.cmp` with `predicate = "lt"`).
    pub fixed: &'static [(&'static str, &'static str)],
    /// How it evaluates when every operand is a compile-time number.
    pub fold: Fold,
    /// What it computes, for docs and signatures.
    pub doc: &'static str,
}

/// One parameter of a builtin.
pub struct BParam {
    /// Its name (the keyword).
    pub name: &'static str,
    /// Where its value goes.
    pub slot: Slot,
    /// What it is when left out.
    pub default: Dflt,
}

/// Where an argument goes.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Slot {
    /// Operand number `i`.
    Operand(usize),
    /// All operands, from a list (`concat([a, b])`).
    Operands,
    /// An attribute, converted.
    Attr(&'static str, Conv),
}

/// How an argument value becomes an attribute.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Conv {
    /// An integer.
    Int,
    /// A float (an integer is accepted).
    Float,
    /// A bool.
    Bool,
    /// An int `n` (meaning `[n, n]`) or a list of two ints.
    Pair,
    /// An int or a list of ints (reduction axes).
    Axes,
    /// A reshape target: a list of ints with at most one `-1`, which is inferred.
    Shape,
    /// A start axis: every dim from it on is flattened into one.
    FlattenFrom,
    /// A permutation of the axes.
    Perm,
    /// An element type (`f32`).
    DType,
}

/// The value of a parameter that is left out.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Dflt {
    /// It must be given.
    Required,
    /// The attribute is omitted: the registry's default applies.
    Registry,
    /// This integer.
    Int(i64),
    /// The value of another parameter (`stride` defaults to `kernel`).
    SameAs(&'static str),
    /// Every axis of the first operand.
    AllAxes,
    /// Swap the last two axes of the first operand.
    SwapLastTwo,
}

/// Compile-time evaluation on numbers.
#[derive(Copy, Clone)]
pub enum Fold {
    /// None: the builtin needs tensors.
    No,
    /// A float function of one number.
    Unary(fn(f64) -> f64),
    /// A float function of two numbers.
    Binary(fn(f64, f64) -> f64),
    /// The operator's own arithmetic (ints stay ints, as in Python).
    Arith(BinOp),
    /// Negation.
    Neg,
}

const fn operand(name: &'static str, i: usize) -> BParam {
    BParam {
        name,
        slot: Slot::Operand(i),
        default: Dflt::Required,
    }
}

const fn attr(name: &'static str, attr: &'static str, conv: Conv, default: Dflt) -> BParam {
    BParam {
        name,
        slot: Slot::Attr(attr, conv),
        default,
    }
}

const X: &[BParam] = &[operand("x", 0)];
const AB: &[BParam] = &[operand("a", 0), operand("b", 1)];
const REDUCE: &[BParam] = &[
    operand("x", 0),
    attr("axis", "axes", Conv::Axes, Dflt::AllAxes),
    attr("keepdims", "keepdims", Conv::Bool, Dflt::Registry),
];
const POOL: &[BParam] = &[
    operand("x", 0),
    attr("kernel", "kernel", Conv::Pair, Dflt::Required),
    attr("stride", "stride", Conv::Pair, Dflt::SameAs("kernel")),
    attr("padding", "padding", Conv::Pair, Dflt::Registry),
];
const NORM: &[BParam] = &[operand("x", 0), attr("axis", "axis", Conv::Int, Dflt::Int(-1))];

const fn b(name: &'static str, op: OpKind, params: &'static [BParam], fold: Fold, doc: &'static str) -> Builtin {
    Builtin {
        name,
        op,
        params,
        fixed: &[],
        fold,
        doc,
    }
}

const fn cmp(name: &'static str, pred: &'static [(&'static str, &'static str)], op: BinOp, doc: &'static str) -> Builtin {
    Builtin {
        name,
        op: OpKind::Cmp,
        params: AB,
        fixed: pred,
        fold: Fold::Arith(op),
        doc,
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Every builtin function.
pub static BUILTINS: &[Builtin] = &[
    // elementwise, one operand
    b("neg", OpKind::Neg, X, Fold::Neg, "-x"),
    b("abs", OpKind::Abs, X, Fold::Unary(f64::abs), "|x|"),
    b("exp", OpKind::Exp, X, Fold::Unary(f64::exp), "e^x"),
    b("log", OpKind::Log, X, Fold::Unary(f64::ln), "natural logarithm"),
    b("sqrt", OpKind::Sqrt, X, Fold::Unary(f64::sqrt), "square root"),
    b("rsqrt", OpKind::Rsqrt, X, Fold::Unary(|x| 1.0 / x.sqrt()), "1 / sqrt(x)"),
    b("tanh", OpKind::Tanh, X, Fold::Unary(f64::tanh), "hyperbolic tangent"),
    b("sigmoid", OpKind::Sigmoid, X, Fold::Unary(sigmoid), "1 / (1 + e^-x)"),
    b("relu", OpKind::Relu, X, Fold::Unary(|x| x.max(0.0)), "max(x, 0)"),
    b(
        "leaky_relu",
        OpKind::LeakyRelu,
        &[operand("x", 0), attr("negative_slope", "alpha", Conv::Float, Dflt::Registry)],
        Fold::No,
        "x if x > 0 else negative_slope * x (default 0.01)",
    ),
    b(
        "cast",
        OpKind::Cast,
        &[operand("x", 0), attr("dtype", "dtype", Conv::DType, Dflt::Required)],
        Fold::No,
        "converts the element type: cast(x, i64)",
    ),
    // elementwise, broadcasting
    b("add", OpKind::Add, AB, Fold::Arith(BinOp::Add), "a + b"),
    b("sub", OpKind::Sub, AB, Fold::Arith(BinOp::Sub), "a - b"),
    b("mul", OpKind::Mul, AB, Fold::Arith(BinOp::Mul), "a * b"),
    b("div", OpKind::Div, AB, Fold::Arith(BinOp::Div), "a / b"),
    b("pow", OpKind::Pow, AB, Fold::Arith(BinOp::Pow), "a ** b"),
    b("maximum", OpKind::Maximum, AB, Fold::Binary(f64::max), "elementwise max(a, b)"),
    b("minimum", OpKind::Minimum, AB, Fold::Binary(f64::min), "elementwise min(a, b)"),
    cmp("equal", &[("predicate", "eq")], BinOp::Eq, "a == b"),
    cmp("not_equal", &[("predicate", "ne")], BinOp::Ne, "a != b"),
    cmp("less", &[("predicate", "lt")], BinOp::Lt, "a < b"),
    cmp("less_equal", &[("predicate", "le")], BinOp::Le, "a <= b"),
    cmp("greater", &[("predicate", "gt")], BinOp::Gt, "a > b"),
    cmp("greater_equal", &[("predicate", "ge")], BinOp::Ge, "a >= b"),
    b(
        "where",
        OpKind::Select,
        &[operand("cond", 0), operand("a", 1), operand("b", 2)],
        Fold::No,
        "a where cond else b",
    ),
    // reductions
    b(
        "sum",
        OpKind::ReduceSum,
        REDUCE,
        Fold::No,
        "sum over `axis` (an int or a list; all axes if left out)",
    ),
    b(
        "mean",
        OpKind::ReduceMean,
        REDUCE,
        Fold::No,
        "mean over `axis` (an int or a list; all axes if left out)",
    ),
    b(
        "max",
        OpKind::ReduceMax,
        REDUCE,
        Fold::No,
        "maximum over `axis` (an int or a list; all axes if left out)",
    ),
    b(
        "argmax",
        OpKind::Argmax,
        &[
            operand("x", 0),
            attr("axis", "axis", Conv::Int, Dflt::Required),
            attr("keepdims", "keepdims", Conv::Bool, Dflt::Registry),
        ],
        Fold::No,
        "index (i64) of the maximum along `axis`",
    ),
    // contractions
    b(
        "matmul",
        OpKind::Matmul,
        AB,
        Fold::No,
        "a @ b; `b.T` sets the op's transpose flag instead of moving data",
    ),
    b(
        "conv2d",
        OpKind::Conv2d,
        &[
            operand("x", 0),
            operand("weight", 1),
            attr("stride", "stride", Conv::Pair, Dflt::Registry),
            attr("padding", "padding", Conv::Pair, Dflt::Registry),
            attr("dilation", "dilation", Conv::Pair, Dflt::Registry),
        ],
        Fold::No,
        "2-D cross-correlation, x [N, C, H, W], weight [O, C, KH, KW] (PyTorch's F.conv2d without bias)",
    ),
    // windows and normalizations
    b(
        "max_pool2d",
        OpKind::MaxPool2d,
        POOL,
        Fold::No,
        "max over kernel windows; stride defaults to the kernel",
    ),
    b(
        "avg_pool2d",
        OpKind::AvgPool2d,
        POOL,
        Fold::No,
        "mean over kernel windows; stride defaults to the kernel",
    ),
    b("softmax", OpKind::Softmax, NORM, Fold::No, "softmax along `axis` (default -1)"),
    b(
        "log_softmax",
        OpKind::LogSoftmax,
        NORM,
        Fold::No,
        "log of softmax along `axis` (default -1), computed stably",
    ),
    // movement
    b(
        "reshape",
        OpKind::Reshape,
        &[operand("x", 0), attr("shape", "shape", Conv::Shape, Dflt::Required)],
        Fold::No,
        "same elements, new shape; one -1 is inferred",
    ),
    b(
        "flatten",
        OpKind::Reshape,
        &[operand("x", 0), attr("start", "shape", Conv::FlattenFrom, Dflt::Int(1))],
        Fold::No,
        "merges the dims from `start` (default 1) on into one",
    ),
    b(
        "transpose",
        OpKind::Transpose,
        &[operand("x", 0), attr("perm", "perm", Conv::Perm, Dflt::SwapLastTwo)],
        Fold::No,
        "permutes axes; swaps the last two if `perm` is left out (like x.T)",
    ),
    b(
        "concat",
        OpKind::Concat,
        &[
            BParam {
                name: "xs",
                slot: Slot::Operands,
                default: Dflt::Required,
            },
            attr("axis", "axis", Conv::Int, Dflt::Int(0)),
        ],
        Fold::No,
        "joins a list of tensors along `axis`",
    ),
    b(
        "slice",
        OpKind::Slice,
        &[
            operand("x", 0),
            attr("axis", "axis", Conv::Int, Dflt::Required),
            attr("start", "start", Conv::Int, Dflt::Int(0)),
            attr("end", "end", Conv::Int, Dflt::Required),
            attr("step", "step", Conv::Int, Dflt::Registry),
        ],
        Fold::No,
        "elements start, start+step, … < end along `axis`",
    ),
    b(
        "gather",
        OpKind::Gather,
        &[operand("table", 0), operand("indices", 1), attr("axis", "axis", Conv::Int, Dflt::Registry)],
        Fold::No,
        "table[indices] along `axis` (default 0)",
    ),
    b(
        "embedding",
        OpKind::Gather,
        &[operand("indices", 1), operand("weight", 0)],
        Fold::No,
        "rows of `weight` picked by `indices` (PyTorch's F.embedding)",
    ),
    b(
        "one_hot",
        OpKind::OneHot,
        &[
            operand("x", 0),
            attr("num_classes", "num_classes", Conv::Int, Dflt::Required),
            attr("dtype", "dtype", Conv::DType, Dflt::Registry),
        ],
        Fold::No,
        "class indices to one-hot rows",
    ),
];

/// The builtin named `name`.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

impl Builtin {
    /// `name(x, axis = -1, …)`, for notes about arity.
    pub fn signature(&self) -> String {
        let ps: Vec<String> = self
            .params
            .iter()
            .map(|p| match p.default {
                Dflt::Required => p.name.to_string(),
                Dflt::Int(v) => format!("{}: {v}", p.name),
                Dflt::SameAs(o) => format!("{}: {o}", p.name),
                Dflt::Registry | Dflt::AllAxes | Dflt::SwapLastTwo => format!("{}: …", p.name),
            })
            .collect();
        format!("{}({})", self.name, ps.join(", "))
    }
}

/// The largest magnitude of an integer attribute (2^32).
const MAX_ATTR_INT: u64 = 1 << 32;

/// A compile-time argument value, as the conversions see it.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// An element type.
    DType(DType),
    /// A list.
    List(Vec<ArgValue>),
    /// Anything else (described for the error message).
    Other(String),
}

impl ArgValue {
    fn describe(&self) -> String {
        match self {
            ArgValue::Int(v) => format!("the integer {v}"),
            ArgValue::Float(v) => format!("the number {v}"),
            ArgValue::Bool(v) => format!("`{v}`"),
            ArgValue::DType(d) => format!("the element type {d}"),
            ArgValue::List(_) => "a list".into(),
            ArgValue::Other(s) => s.clone(),
        }
    }

    fn int(&self, what: &str) -> Result<i64, String> {
        match self {
            // Sizes, strides and axes this large are mistakes, and would
            // overflow the shape arithmetic downstream.
            ArgValue::Int(v) if v.unsigned_abs() > MAX_ATTR_INT => Err(format!("{what} is out of range: {v}")),
            ArgValue::Int(v) => Ok(*v),
            o => Err(format!("{what} must be an integer, found {}", o.describe())),
        }
    }

    fn ints(&self, what: &str) -> Result<Vec<i64>, String> {
        match self {
            ArgValue::List(items) => items.iter().map(|i| i.int(what)).collect(),
            o => Err(format!("{what} must be a list of integers such as [2, 3], found {}", o.describe())),
        }
    }
}

/// Converts an argument (or a computed default) to an attribute; `first` is
/// the type of the first operand, which shape-dependent conversions read.
pub fn convert(conv: Conv, name: &str, v: &ArgValue, first: Option<&TensorType>) -> Result<Attr, String> {
    let what = format!("`{name}`");
    Ok(match conv {
        Conv::Int => Attr::Int(v.int(&what)?),
        Conv::Float => match v {
            ArgValue::Int(i) => Attr::Float(*i as f64),
            ArgValue::Float(f) => Attr::Float(*f),
            o => return Err(format!("{what} must be a number, found {}", o.describe())),
        },
        Conv::Bool => match v {
            ArgValue::Bool(b) => Attr::Bool(*b),
            o => return Err(format!("{what} must be `true` or `false`, found {}", o.describe())),
        },
        Conv::Pair => match v {
            ArgValue::Int(_) => {
                let n = v.int(&what)?;
                Attr::ints(&[n, n])
            }
            ArgValue::List(_) => {
                let l = v.ints(&what)?;
                if l.len() != 2 {
                    return Err(format!("{what} must be one integer or two, found {} values", l.len()));
                }
                Attr::ints(&l)
            }
            o => return Err(format!("{what} must be an integer or a pair [h, w], found {}", o.describe())),
        },
        Conv::Axes => match v {
            ArgValue::Int(_) => Attr::ints(&[v.int(&what)?]),
            _ => Attr::ints(&v.ints(&what)?),
        },
        Conv::Shape => Attr::ints(&infer_shape(&v.ints(&what)?, first.ok_or("reshape needs a tensor")?)?),
        Conv::FlattenFrom => {
            let t = first.ok_or("flatten needs a tensor")?;
            let start = norm_axis(v.int(&what)?, t.rank())?;
            let mut shape: Vec<i64> = t.shape[..start].iter().map(|d| d.to_attr_int()).collect();
            let rest = &t.shape[start..];
            let n = checked_product(rest.iter().filter_map(|d| d.as_static()).map(|d| i64::try_from(d).unwrap_or(i64::MAX)))
                .ok_or_else(|| format!("flattening [{}] gives more than 2^63 elements", dims_str(&t.shape)))?;
            shape.push(if rest.contains(&Dim::Dynamic) { -1 } else { n });
            Attr::ints(&shape)
        }
        Conv::Perm => Attr::ints(&v.ints(&what)?),
        Conv::DType => match v {
            ArgValue::DType(d) => Attr::from(*d),
            o => return Err(format!("{what} must be an element type such as f32 or i64, found {}", o.describe())),
        },
    })
}

/// A computed default, if the default depends on the first operand.
pub fn computed_default(d: Dflt, first: Option<&TensorType>) -> Result<Option<ArgValue>, String> {
    let rank = first.map(|t| t.rank()).unwrap_or(0) as i64;
    Ok(match d {
        Dflt::AllAxes => Some(ArgValue::List((0..rank).map(ArgValue::Int).collect())),
        Dflt::SwapLastTwo => {
            if rank < 2 {
                return Err(format!(
                    "transposing needs at least 2 dims, found {}",
                    first.map(|t| format!("[{}]", dims_str(&t.shape))).unwrap_or_default()
                ));
            }
            let mut p: Vec<ArgValue> = (0..rank).map(ArgValue::Int).collect();
            p.swap(rank as usize - 2, rank as usize - 1);
            Some(ArgValue::List(p))
        }
        Dflt::Int(v) => Some(ArgValue::Int(v)),
        Dflt::Required | Dflt::Registry | Dflt::SameAs(_) => None,
    })
}

/// The product, or `None` if it overflows.
fn checked_product(it: impl Iterator<Item = i64>) -> Option<i64> {
    it.into_iter().try_fold(1i64, |a, d| a.checked_mul(d))
}

/// Resolves a reshape target: `-1` is the batch dim when the input has one,
/// else the one size that keeps the element count (PyTorch's `-1`).
fn infer_shape(target: &[i64], x: &TensorType) -> Result<Vec<i64>, String> {
    if target.iter().filter(|&&d| d == -1).count() > 1 {
        return Err(format!("only one dim of {target:?} can be -1"));
    }
    if let Some(bad) = target.iter().find(|&&d| d < -1) {
        return Err(format!("invalid dim {bad} in {target:?}"));
    }
    let too_big = || format!("cannot reshape [{}]: it has more than 2^63 elements", dims_str(&x.shape));
    if checked_product(target.iter().copied().filter(|&d| d != -1)).is_none() {
        return Err(too_big());
    }
    if x.shape.contains(&Dim::Dynamic) || !target.contains(&-1) {
        return Ok(target.to_vec());
    }
    let total = checked_product(x.shape.iter().filter_map(|d| d.as_static()).map(|d| i64::try_from(d).unwrap_or(i64::MAX))).ok_or_else(too_big)?;
    let known = checked_product(target.iter().copied().filter(|&d| d != -1)).ok_or_else(too_big)?;
    if known == 0 || total % known != 0 {
        return Err(format!("cannot reshape [{}] into {target:?}", dims_str(&x.shape)));
    }
    Ok(target.iter().map(|&d| if d == -1 { total / known } else { d }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_attributes_exist_in_the_registry() {
        let mut seen = std::collections::HashSet::new();
        for b in BUILTINS {
            assert!(seen.insert(b.name), "duplicate builtin {}", b.name);
            let def = b.op.def();
            for p in b.params {
                if let Slot::Attr(a, _) = p.slot {
                    assert!(def.attrs.iter().any(|s| s.name == a), "{}: {} has no attribute {a}", b.name, def.name);
                }
                if let Dflt::SameAs(o) = p.default {
                    assert!(b.params.iter().any(|q| q.name == o), "{}: {o}", b.name);
                }
            }
            for (a, _) in b.fixed {
                assert!(def.attrs.iter().any(|s| s.name == *a), "{}: fixed {a}", b.name);
            }
            let operands = b.params.iter().filter(|p| matches!(p.slot, Slot::Operand(_))).count();
            assert!(
                matches!(b.params.first().map(|p| p.slot), Some(Slot::Operand(_) | Slot::Operands)),
                "{}",
                b.name
            );
            assert!(
                def.operands.accepts(operands) || b.params.iter().any(|p| p.slot == Slot::Operands),
                "{}",
                b.name
            );
        }
    }

    #[test]
    fn every_operator_has_a_builtin() {
        use BinOp::*;
        for op in [Add, Sub, Mul, Div, MatMul, Pow, Eq, Ne, Lt, Le, Gt, Ge] {
            assert!(lookup(op.builtin()).is_some(), "{op:?}");
        }
    }

    #[test]
    fn shape_conversions() {
        let t = TensorType::new(vec![Dim::Dynamic, Dim::Static(64), Dim::Static(3), Dim::Static(3)], DType::F32);
        assert_eq!(
            convert(Conv::FlattenFrom, "start", &ArgValue::Int(1), Some(&t)).unwrap(),
            Attr::ints(&[-1, 576])
        );
        assert_eq!(convert(Conv::Pair, "k", &ArgValue::Int(2), None).unwrap(), Attr::ints(&[2, 2]));
        let s = TensorType::fixed(&[4, 6], DType::F32);
        let list = ArgValue::List(vec![ArgValue::Int(-1), ArgValue::Int(3)]);
        assert_eq!(convert(Conv::Shape, "shape", &list, Some(&s)).unwrap(), Attr::ints(&[8, 3]));
        assert_eq!(
            computed_default(Dflt::SwapLastTwo, Some(&t)).unwrap(),
            Some(ArgValue::List([0, 1, 3, 2].map(ArgValue::Int).to_vec()))
        );
        assert!(convert(Conv::Pair, "k", &ArgValue::Float(2.0), None).is_err());
    }
}
