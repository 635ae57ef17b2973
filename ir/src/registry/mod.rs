//! The op registry: the one place that knows what each op is.
//!
//! Every op is one [`OpDef`] constant (name, summary with an IR example,
//! category, operand count, attributes with defaults, shape/dtype rule,
//! differentiability), grouped by topic in the files of this module. The
//! [`ops!`] table below turns them into the [`OpKind`] enum, so every `match`
//! on `OpKind` elsewhere (interpreter, lowerings) is exhaustive: a new op does
//! not compile until every backend handles it. See `docs/ADDING_AN_OP.md`.

mod contraction;
mod elementwise;
mod func;
pub mod kernel;
mod movement;
mod nn;
mod reduce;
pub mod shape;
pub mod vjp;

use crate::attr::{Attr, Attrs, DenseAttr};
use crate::types::{DType, Type};

/// What kind of computation an op is; passes ask this, not op names.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Category {
    /// One input element to one output element (`neg`, `exp`, `relu`, `cast`).
    Unary,
    /// Elementwise over broadcast operands (`add`, `cmp`, `select`).
    Binary,
    /// Folds axes away (`reduce_sum`, `argmax`).
    Reduction,
    /// Sums of products over a contracted dim (`matmul`, `conv2d`).
    Contraction,
    /// Windows over spatial dims (`max_pool2d`, `avg_pool2d`).
    Window,
    /// Moves or copies elements without arithmetic (`reshape`, `gather`).
    Movement,
    /// Normalizes along an axis (`softmax`, `log_softmax`).
    Normalization,
    /// Produces a value from attributes only (`constant`).
    Source,
    /// A structured kernel: loops over an iteration space with a scalar body
    /// region (`kernel.generic`).
    Structured,
    /// Ends a block (`func.return`).
    Terminator,
}

/// How many operands an op takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Exact(usize),
    /// This many or more.
    AtLeast(usize),
}

impl Arity {
    /// True when `n` operands are allowed.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exact(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

/// The kind of value an attribute must hold.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttrKind {
    /// An integer.
    Int,
    /// A float.
    Float,
    /// A bool.
    Bool,
    /// A string from a fixed set of choices.
    Enum(&'static [&'static str]),
    /// An array of integers.
    Ints,
    /// A scalar element type (`f32`).
    DType,
    /// A dense tensor constant.
    Dense,
    /// An array of strings.
    Strings,
    /// An array of affine maps.
    Maps,
    /// An array of scalar element types (`[f32, f64]`).
    DTypes,
}

impl AttrKind {
    /// True when `a` is a value of this kind.
    pub fn accepts(self, a: &Attr) -> bool {
        match self {
            AttrKind::Int => a.as_int().is_some(),
            AttrKind::Float => a.as_float().is_some(),
            AttrKind::Bool => a.as_bool().is_some(),
            AttrKind::Enum(choices) => a.as_str().is_some_and(|s| choices.contains(&s)),
            AttrKind::Ints => a.as_ints().is_some(),
            AttrKind::DType => a.as_dtype().is_some(),
            AttrKind::Dense => a.as_dense().is_some(),
            AttrKind::Strings => matches!(a, Attr::Array(v) if v.iter().all(|s| s.as_str().is_some())),
            AttrKind::Maps => matches!(a, Attr::Array(v) if v.iter().all(|m| m.as_map().is_some())),
            AttrKind::DTypes => matches!(a, Attr::Array(v) if v.iter().all(|d| d.as_dtype().is_some())),
        }
    }

    /// Describes the kind for error messages.
    pub fn describe(self) -> String {
        match self {
            AttrKind::Int => "an integer".into(),
            AttrKind::Float => "a float".into(),
            AttrKind::Bool => "a bool".into(),
            AttrKind::Enum(c) => format!("one of {}", c.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")),
            AttrKind::Ints => "an array of integers".into(),
            AttrKind::DType => "an element type such as f32".into(),
            AttrKind::Dense => "a dense constant".into(),
            AttrKind::Strings => "an array of strings".into(),
            AttrKind::Maps => "an array of affine maps".into(),
            AttrKind::DTypes => "an array of element types such as [f32, f32]".into(),
        }
    }
}

/// A default attribute value, storable in a `const`.
#[derive(Copy, Clone, Debug)]
pub enum Default {
    /// The attribute must be given.
    Required,
    /// Integer default.
    Int(i64),
    /// Float default.
    Float(f64),
    /// Bool default.
    Bool(bool),
    /// Integer array default.
    Ints(&'static [i64]),
    /// Element type default.
    DType(DType),
}

impl Default {
    fn to_attr(self) -> Option<Attr> {
        match self {
            Default::Required => None,
            Default::Int(v) => Some(Attr::Int(v)),
            Default::Float(v) => Some(Attr::Float(v)),
            Default::Bool(v) => Some(Attr::Bool(v)),
            Default::Ints(v) => Some(Attr::ints(v)),
            Default::DType(d) => Some(Attr::from(d)),
        }
    }
}

/// One attribute an op accepts.
#[derive(Copy, Clone, Debug)]
pub struct AttrSpec {
    /// Its name in the attribute dictionary.
    pub name: &'static str,
    /// What it must hold.
    pub kind: AttrKind,
    /// Its default, or [`Default::Required`].
    pub default: Default,
    /// What it means.
    pub doc: &'static str,
}

/// Whether reverse-mode autodiff can pass through an op, and how: the op's
/// VJP rule, kept beside its shape rule (see [`vjp`]).
#[derive(Copy, Clone, Debug)]
pub enum Grad {
    /// Differentiable in its float operands, by this rule.
    Vjp(vjp::VjpFn),
    /// Not differentiable (integer or boolean results, or a terminator).
    No,
}

/// A shape and dtype rule: operand types and attributes in, result types out,
/// or a message saying what is wrong.
pub type InferFn = fn(&[Type], &AttrView) -> Result<Vec<Type>, String>;

/// Everything the compiler knows about one op.
pub struct OpDef {
    /// Full name, `dialect.op`.
    pub name: &'static str,
    /// One line on what it computes and why it is a primitive.
    pub summary: &'static str,
    /// An example of the op in IR text.
    pub example: &'static str,
    /// Its category.
    pub category: Category,
    /// Its operand count.
    pub operands: Arity,
    /// Its attributes.
    pub attrs: &'static [AttrSpec],
    /// Its shape and dtype rule.
    pub infer: InferFn,
    /// Its differentiability and VJP rule.
    pub grad: Grad,
    /// `f(a, b) == f(b, a)`.
    pub commutative: bool,
    /// For ops that own regions (`kernel.generic`): the check of their body
    /// against their operands and attributes. Ops without one take no regions.
    pub region: Option<RegionFn>,
}

/// Checks the regions of op `op` of `f` (block arguments, terminator, the
/// ops allowed inside); the message says what is wrong.
pub type RegionFn = fn(&crate::module::Function, crate::module::OpId) -> Result<(), String>;

/// Attributes of one op, read through its registry defaults.
pub struct AttrView<'a> {
    def: &'static OpDef,
    attrs: &'a Attrs,
}

impl<'a> AttrView<'a> {
    /// A view of `attrs` as the attributes of `kind`.
    pub fn new(kind: OpKind, attrs: &'a Attrs) -> Self {
        AttrView { def: kind.def(), attrs }
    }

    /// The attribute `name`, or its default.
    pub fn get(&self, name: &str) -> Option<Attr> {
        if let Some(a) = self.attrs.get(name) {
            return Some(a.clone());
        }
        self.def.attrs.iter().find(|s| s.name == name).and_then(|s| s.default.to_attr())
    }

    fn need<T>(&self, name: &str, what: &str, f: impl Fn(&Attr) -> Option<T>) -> Result<T, String> {
        let a = self.get(name).ok_or_else(|| format!("missing attribute '{name}'"))?;
        f(&a).ok_or_else(|| format!("attribute '{name}' must be {what}, got {}", a.kind_name()))
    }

    /// An integer attribute.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        self.need(name, "an integer", Attr::as_int)
    }

    /// A float attribute.
    pub fn float(&self, name: &str) -> Result<f64, String> {
        self.need(name, "a float", Attr::as_float)
    }

    /// A bool attribute.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        self.need(name, "a bool", Attr::as_bool)
    }

    /// A string attribute.
    pub fn str(&self, name: &str) -> Result<String, String> {
        self.need(name, "a string", |a| a.as_str().map(str::to_string))
    }

    /// An integer-array attribute.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        self.need(name, "an array of integers", Attr::as_ints)
    }

    /// An element-type attribute.
    pub fn dtype(&self, name: &str) -> Result<DType, String> {
        self.need(name, "an element type", Attr::as_dtype)
    }

    /// An element-type-array attribute.
    pub fn dtypes(&self, name: &str) -> Result<Vec<DType>, String> {
        self.need(name, "an array of element types", |a| match a {
            Attr::Array(v) => v.iter().map(Attr::as_dtype).collect(),
            _ => None,
        })
    }

    /// A string-array attribute.
    pub fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        self.need(name, "an array of strings", |a| match a {
            Attr::Array(v) => v.iter().map(|s| s.as_str().map(str::to_string)).collect(),
            _ => None,
        })
    }

    /// An affine-map-array attribute.
    pub fn maps(&self, name: &str) -> Result<Vec<crate::affine::AffineMap>, String> {
        self.need(name, "an array of affine maps", |a| match a {
            Attr::Array(v) => v.iter().map(|m| m.as_map().cloned()).collect(),
            _ => None,
        })
    }

    /// True when the attribute is written (not defaulted).
    pub fn has(&self, name: &str) -> bool {
        self.attrs.contains_key(name)
    }

    /// A dense-constant attribute.
    pub fn dense(&self, name: &str) -> Result<DenseAttr, String> {
        self.need(name, "a dense constant", |a| a.as_dense().cloned())
    }
}

/// Declares the op table: one line per op, `Variant => DEFINITION`.
macro_rules! ops {
    ($($variant:ident => $def:path),* $(,)?) => {
        /// Every op dlc knows. Generated from the table in `registry/mod.rs`.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpKind { $(
            #[doc = concat!("See [`", stringify!($def), "`].")]
            $variant
        ),* }

        impl OpKind {
            /// Every op, in table order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$variant),*];

            /// The op's registry entry.
            pub fn def(self) -> &'static OpDef {
                match self { $(OpKind::$variant => &$def),* }
            }
        }
    };
}

ops! {
    // elementwise unary
    Neg => elementwise::NEG,
    Abs => elementwise::ABS,
    Exp => elementwise::EXP,
    Log => elementwise::LOG,
    Sqrt => elementwise::SQRT,
    Rsqrt => elementwise::RSQRT,
    Tanh => elementwise::TANH,
    Sigmoid => elementwise::SIGMOID,
    Relu => elementwise::RELU,
    LeakyRelu => elementwise::LEAKY_RELU,
    Cast => elementwise::CAST,
    // elementwise binary, broadcasting
    Add => elementwise::ADD,
    Sub => elementwise::SUB,
    Mul => elementwise::MUL,
    Div => elementwise::DIV,
    Pow => elementwise::POW,
    Maximum => elementwise::MAXIMUM,
    Minimum => elementwise::MINIMUM,
    Cmp => elementwise::CMP,
    Select => elementwise::SELECT,
    // reductions
    ReduceSum => reduce::REDUCE_SUM,
    ReduceMean => reduce::REDUCE_MEAN,
    ReduceMax => reduce::REDUCE_MAX,
    Argmax => reduce::ARGMAX,
    // contractions
    Matmul => contraction::MATMUL,
    Conv2d => contraction::CONV2D,
    Conv2dGradInput => contraction::CONV2D_GRAD_INPUT,
    Conv2dGradWeight => contraction::CONV2D_GRAD_WEIGHT,
    // windows and normalizations
    MaxPool2d => nn::MAX_POOL2D,
    MaxPool2dGrad => nn::MAX_POOL2D_GRAD,
    AvgPool2d => nn::AVG_POOL2D,
    Softmax => nn::SOFTMAX,
    LogSoftmax => nn::LOG_SOFTMAX,
    // movement
    Reshape => movement::RESHAPE,
    Transpose => movement::TRANSPOSE,
    BroadcastTo => movement::BROADCAST_TO,
    Concat => movement::CONCAT,
    Slice => movement::SLICE,
    Gather => movement::GATHER,
    OneHot => movement::ONE_HOT,
    // sources and terminators
    Constant => func::CONSTANT,
    Return => func::RETURN,
    // the structured-kernel level (`dlc compile --emit kernel`)
    Generic => kernel::GENERIC,
    Yield => kernel::YIELD,
    ScalarConstant => kernel::CONSTANT,
    KernelMatmul => kernel::MATMUL,
    KernelConv2d => kernel::CONV2D,
    KernelConv2dGradWeight => kernel::CONV2D_GRAD_WEIGHT,
    KernelRoutedConv2dGradInput => kernel::ROUTED_CONV2D_GRAD_INPUT,
    KernelRoutedConv2dGradWeight => kernel::ROUTED_CONV2D_GRAD_WEIGHT,
}

impl OpKind {
    /// The op's full name (`dl.add`).
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Looks an op up by its full name.
    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The op's category.
    pub fn category(self) -> Category {
        self.def().category
    }

    /// True for unary and binary elementwise ops.
    pub fn is_elementwise(self) -> bool {
        matches!(self.category(), Category::Unary | Category::Binary)
    }

    /// True when the operands may be swapped.
    pub fn is_commutative(self) -> bool {
        self.def().commutative
    }

    /// True when autodiff can pass through the op.
    pub fn is_differentiable(self) -> bool {
        matches!(self.def().grad, Grad::Vjp(_))
    }

    /// Checks operand count and attributes (unknown names, kinds, missing
    /// required ones), then runs the shape rule.
    pub fn infer(self, operands: &[Type], attrs: &Attrs) -> Result<Vec<Type>, String> {
        let def = self.def();
        if !def.operands.accepts(operands.len()) {
            let want = match def.operands {
                Arity::Exact(n) => format!("{n}"),
                Arity::AtLeast(n) => format!("at least {n}"),
            };
            return Err(format!("expects {want} operand(s), got {}", operands.len()));
        }
        for (name, a) in attrs {
            let spec = def.attrs.iter().find(|s| s.name == name).ok_or_else(|| {
                let known: Vec<_> = def.attrs.iter().map(|s| s.name).collect();
                if known.is_empty() {
                    format!("takes no attributes, got '{name}'")
                } else {
                    format!("has no attribute '{name}' (it takes: {})", known.join(", "))
                }
            })?;
            if !spec.kind.accepts(a) {
                return Err(format!("attribute '{name}' must be {}", spec.kind.describe()));
            }
        }
        for spec in def.attrs {
            if matches!(spec.default, Default::Required) && !attrs.contains_key(spec.name) {
                return Err(format!("missing required attribute '{}' ({})", spec.name, spec.doc));
            }
        }
        // Inside a kernel body, elementwise ops work on scalars: typed as the
        // rank-0 tensors their shape rules know, the results made scalars again.
        if self.is_elementwise() && !operands.is_empty() && operands.iter().all(|t| matches!(t, Type::Scalar(_))) {
            let as_tensors: Vec<Type> = operands
                .iter()
                .map(|t| Type::Tensor(crate::types::TensorType::new(Vec::new(), t.dtype().expect("a scalar has a dtype"))))
                .collect();
            let out = (def.infer)(&as_tensors, &AttrView::new(self, attrs))?;
            return Ok(out.into_iter().map(|t| t.dtype().map_or(t.clone(), Type::Scalar)).collect());
        }
        (def.infer)(operands, &AttrView::new(self, attrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_dialect_qualified() {
        let mut seen = std::collections::HashSet::new();
        for k in OpKind::ALL {
            assert!(seen.insert(k.name()), "duplicate op name {}", k.name());
            assert!(["dl.", "func.", "kernel."].iter().any(|d| k.name().starts_with(d)), "{}", k.name());
            assert_eq!(OpKind::from_name(k.name()), Some(*k));
            assert!(!k.def().summary.is_empty() && k.def().example.contains(k.name()));
        }
    }

    #[test]
    fn defaults_have_the_declared_kind() {
        for k in OpKind::ALL {
            for s in k.def().attrs {
                if let Some(a) = s.default.to_attr() {
                    assert!(s.kind.accepts(&a), "{}: default of '{}' has the wrong kind", k.name(), s.name);
                }
            }
        }
    }
}
