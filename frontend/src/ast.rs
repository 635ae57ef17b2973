//! The syntax tree of a `.dl` file. Every node keeps its byte range (`span`)
//! so any later stage can point a diagnostic at the exact source text.
//!
//! The tree is deliberately loose where the grammar is uniform: every block
//! (model, layer, fn body) holds the same [`Stmt`] kinds, and the checker, not
//! the parser, says that `input` belongs in a model. That keeps the parser
//! small and gives a precise message ("`input` declares a model input; it
//! cannot appear in a layer") instead of a generic "unexpected token".

use dlc_ir::DType;

/// A byte range in the source text.
pub type Span = std::ops::Range<usize>;

/// A parsed file: its items in source order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    /// Top-level items.
    pub items: Vec<Item>,
}

/// A name with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `model Name { … }`
    Model(Model),
    /// `layer Name(params) { … }`
    Layer(Layer),
    /// `fn name(params) -> type { … }`
    Fn(FnDef),
    /// `layer Dense = Linear`
    Alias(Alias),
}

/// A model: its inputs, parameters, layers, outputs and training setup.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The model's name.
    pub name: Ident,
    /// Its statements in source order.
    pub body: Vec<Stmt>,
    /// From `model` to the closing `}`.
    pub span: Span,
}

/// A layer: constructor parameters, then parameters, sub-layers and a `forward`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The layer's name.
    pub name: Ident,
    /// Constructor parameters (`in: int, bias: bool = true`).
    pub params: Vec<Param>,
    /// Its statements in source order.
    pub body: Vec<Stmt>,
    /// From `layer` to the closing `}`.
    pub span: Span,
}

/// `layer Dense = Linear`: a second name for a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Alias {
    /// The new name.
    pub name: Ident,
    /// The layer it names.
    pub target: Ident,
    /// The whole item.
    pub span: Span,
}

/// A function, inlined at every call.
#[derive(Clone, Debug, PartialEq)]
pub struct FnDef {
    /// Its name (`forward` for a layer's call).
    pub name: Ident,
    /// Its parameters.
    pub params: Vec<Param>,
    /// The declared result type, checked at every call.
    pub ret: Option<TypeExpr>,
    /// The body.
    pub body: Block,
    /// From `fn` to the closing `}`.
    pub span: Span,
}

/// A parameter of a function or a layer constructor: `x: f32[..., in]`, `bias: bool = true`.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Its name.
    pub name: Ident,
    /// Its declared type, checked against every argument.
    pub ty: Option<TypeExpr>,
    /// Its default, evaluated when the argument is left out (it may use earlier parameters).
    pub default: Option<Expr>,
    /// The whole parameter.
    pub span: Span,
}

/// `{ let …  result }`: statements, then the value of the block.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Statements before the result.
    pub stmts: Vec<Stmt>,
    /// The result expression (missing only after a syntax error).
    pub result: Option<Expr>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A statement with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What it says.
    pub kind: StmtKind,
    /// The whole statement.
    pub span: Span,
}

/// The statements of model, layer and function bodies.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `input x: f32[batch, 784]`: a model input (a function argument).
    Input {
        /// The input's name.
        name: Ident,
        /// Its type.
        ty: TypeExpr,
    },
    /// `output logits = net(x)`: a model result.
    Output {
        /// The output's name.
        name: Ident,
        /// An optional declared type, checked.
        ty: Option<TypeExpr>,
        /// Its value.
        value: Expr,
    },
    /// `let h = relu(x)`: names a value.
    Let {
        /// The name.
        name: Ident,
        /// An optional declared type, checked.
        ty: Option<TypeExpr>,
        /// The value.
        value: Expr,
    },
    /// `param weight: f32[out, in] = kaiming_uniform(a: sqrt(5)) if cond`.
    Param {
        /// The parameter's name (its state-dict suffix).
        name: Ident,
        /// Its tensor type.
        ty: TypeExpr,
        /// Its initializer call.
        init: Expr,
        /// When present and false, the parameter is absent.
        cond: Option<Expr>,
    },
    /// `fc1 = Linear(784, 256)`: a sub-layer, named like a PyTorch attribute.
    Bind {
        /// The binding's name (its state-dict prefix).
        name: Ident,
        /// The layer expression.
        value: Expr,
    },
    /// A nested function.
    Fn(FnDef),
    /// `train { key: value … }`.
    Train(TrainBlock),
}

/// `train { data: …, loss: …, optimizer: …, epochs: 5 }`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainBlock {
    /// Entries in source order.
    pub entries: Vec<TrainEntry>,
    /// The `train` keyword (for diagnostics about the block as a whole).
    pub keyword: Span,
    /// The whole block.
    pub span: Span,
}

/// One `key: value` entry of a train block.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainEntry {
    /// The key.
    pub key: Ident,
    /// The value.
    pub value: Expr,
    /// The whole entry.
    pub span: Span,
}

/// A written type.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeExpr {
    /// `int`, `float`, `bool`, `str`: a compile-time value.
    Scalar(ScalarType, Span),
    /// `f32[batch, 784]`.
    Tensor(TensorTypeExpr),
}

impl TypeExpr {
    /// Where the type is written.
    pub fn span(&self) -> Span {
        match self {
            TypeExpr::Scalar(_, s) => s.clone(),
            TypeExpr::Tensor(t) => t.span.clone(),
        }
    }
}

/// The compile-time value types.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScalarType {
    /// `int`
    Int,
    /// `float` (an int is accepted and converted)
    Float,
    /// `bool`
    Bool,
    /// `str`
    Str,
}

impl ScalarType {
    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            ScalarType::Int => "int",
            ScalarType::Float => "float",
            ScalarType::Bool => "bool",
            ScalarType::Str => "str",
        }
    }
}

/// `f32[batch, 1, 28, 28]`, `f32[..., in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorTypeExpr {
    /// The element type (`bool` is `i1`).
    pub dtype: DType,
    /// The dims.
    pub dims: Vec<DimExpr>,
    /// The whole type.
    pub span: Span,
}

/// One dim of a tensor type.
#[derive(Clone, Debug, PartialEq)]
pub enum DimExpr {
    /// `...`: any number of leading (or inner) dims.
    Ellipsis(Span),
    /// `_`: any one dim.
    Wildcard(Span),
    /// `batch`: the symbolic batch size (`?` in the IR).
    Batch(Span),
    /// A compile-time integer expression (`784`, `out`, `in * 2`).
    Expr(Expr),
}

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it computes.
    pub kind: ExprKind,
    /// Its text.
    pub span: Span,
}

/// Expression forms.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `784`
    Int(i64),
    /// `1e-3`
    Float(f64),
    /// `true`
    Bool(bool),
    /// `"label"` (unescaped)
    Str(String),
    /// A name: `x`, `relu`, `Linear`.
    Name(String),
    /// `[a, b]` or `(a, b)`.
    List(Vec<Expr>),
    /// `-x`
    Unary(UnOp, Box<Expr>),
    /// `a + b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(a, k: b)`
    Call(Box<Expr>, Vec<Arg>),
    /// `fc1.weight`, `w.T`
    Field(Box<Expr>, Ident),
    /// Stands in for an expression that failed to parse.
    Error,
}

/// An argument: positional, or `name: value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// The keyword, if any.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
    /// The whole argument.
    pub span: Span,
}

/// Prefix operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-`
    Neg,
}

/// Infix operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `@`
    MatMul,
    /// `**`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "**",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }

    /// The builtin function the operator means (one table describes both).
    pub fn builtin(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::Div => "div",
            BinOp::MatMul => "matmul",
            BinOp::Pow => "pow",
            BinOp::Eq => "equal",
            BinOp::Ne => "not_equal",
            BinOp::Lt => "less",
            BinOp::Le => "less_equal",
            BinOp::Gt => "greater",
            BinOp::Ge => "greater_equal",
        }
    }
}

impl Item {
    /// The item's name.
    pub fn name(&self) -> &Ident {
        match self {
            Item::Model(m) => &m.name,
            Item::Layer(l) => &l.name,
            Item::Fn(f) => &f.name,
            Item::Alias(a) => &a.name,
        }
    }

    /// The whole item.
    pub fn span(&self) -> Span {
        match self {
            Item::Model(m) => m.span.clone(),
            Item::Layer(l) => l.span.clone(),
            Item::Fn(f) => f.span.clone(),
            Item::Alias(a) => a.span.clone(),
        }
    }
}

impl StmtKind {
    /// The name the statement defines, if any.
    pub fn defines(&self) -> Option<&Ident> {
        match self {
            StmtKind::Input { name, .. }
            | StmtKind::Output { name, .. }
            | StmtKind::Let { name, .. }
            | StmtKind::Param { name, .. }
            | StmtKind::Bind { name, .. } => Some(name),
            StmtKind::Fn(f) => Some(&f.name),
            StmtKind::Train(_) => None,
        }
    }

    /// The keyword that introduces the statement, for messages.
    pub fn keyword(&self) -> &'static str {
        match self {
            StmtKind::Input { .. } => "input",
            StmtKind::Output { .. } => "output",
            StmtKind::Let { .. } => "let",
            StmtKind::Param { .. } => "param",
            StmtKind::Bind { .. } => "layer binding",
            StmtKind::Fn(_) => "fn",
            StmtKind::Train(_) => "train",
        }
    }
}
