//! Compile-time values: what an expression evaluates to while the model is
//! lowered. Numbers, strings and layer instances exist only at compile time;
//! a tensor is an SSA value of the function being built.
//!
//! Layers are expanded at compile time, so a layer instance is just its
//! members (constructor arguments, parameters, sub-layers, functions) and a
//! name prefix that gives its parameters PyTorch's state-dict names.

use crate::ast::{self, Span};
use crate::builtins::Builtin;
use dlc_ir::{DType, Function, TensorType, ValueId};
use std::rc::Rc;

/// Which source a piece of syntax comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileId {
    /// The file being compiled.
    User,
    /// `prelude.dl`, shipped with the compiler.
    Prelude,
}

/// A compile-time value.
#[derive(Clone)]
pub enum Value<'a> {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// A string.
    Str(Rc<str>),
    /// An element type (`f32`), as `cast` takes it.
    DType(DType),
    /// A list (`[2, 2]`, `(0.9, 0.999)`).
    List(Rc<Vec<Value<'a>>>),
    /// A tensor: an SSA value of the function being built.
    Tensor(ValueId),
    /// An optional parameter whose `if` was false (named for messages):
    /// adding it changes nothing, a builtin applied to it stays absent.
    Absent(Rc<str>),
    /// A layer instance.
    Layer(Rc<Instance<'a>>),
    /// A layer definition, not yet instantiated.
    LayerDef(LayerRef<'a>),
    /// A function.
    Func(FnRef<'a>),
    /// A builtin function.
    Builtin(&'static Builtin),
    /// The `Sequential` combinator.
    Sequential,
    /// A definition that failed; using it reports nothing more.
    Poison,
}

/// A layer definition and the file it is in.
#[derive(Copy, Clone)]
pub struct LayerRef<'a> {
    /// Its file.
    pub file: FileId,
    /// Its syntax.
    pub def: &'a ast::Layer,
}

/// A function with the context its body sees.
#[derive(Clone)]
pub struct FnRef<'a> {
    /// Its file.
    pub file: FileId,
    /// Its syntax.
    pub def: &'a ast::FnDef,
    /// The layer instance whose members the body sees.
    pub owner: Option<Rc<Instance<'a>>>,
    /// Defined in the model: its body sees the model's names.
    pub in_model: bool,
}

/// Where something was written, and the span in the user's file that stands
/// for it when it is in the prelude.
#[derive(Clone, Debug)]
pub struct Site {
    /// Its file.
    pub file: FileId,
    /// Its span in that file.
    pub span: Span,
    /// A span in the user's file: `span` itself, or the user code that led here.
    pub anchor: Span,
}

/// An expanded layer.
pub struct Instance<'a> {
    /// The layer's name (`Linear`, `Sequential`).
    pub layer_name: String,
    /// The definition (none for `Sequential`).
    pub layer: Option<LayerRef<'a>>,
    /// `Sequential` entries.
    pub entries: Vec<Rc<Instance<'a>>>,
    /// The state-dict prefix of its parameters (`net.0`), if bound to a name.
    pub prefix: Option<String>,
    /// Constructor arguments, parameters, sub-layers, lets and functions, in order.
    pub members: Vec<(String, Value<'a>)>,
    /// Where it was constructed.
    pub site: Site,
    /// For each constructor argument given in the user's file: the parameter
    /// it binds and the argument's span (to suggest a corrected call).
    pub arg_spans: Vec<(String, Span)>,
}

impl<'a> Instance<'a> {
    /// The member named `name` (later definitions shadow earlier ones).
    pub fn member(&self, name: &str) -> Option<&Value<'a>> {
        self.members.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A tensor type in the language's syntax: `f32[?, 576]`.
pub fn show_type(t: &TensorType) -> String {
    let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    let dt = if t.dtype == DType::I1 { "bool" } else { t.dtype.name() };
    format!("{dt}[{}]", dims.join(", "))
}

impl Value<'_> {
    /// A phrase for error messages: "a tensor f32[?, 10]", "the integer 3".
    pub fn describe(&self, f: &Function) -> String {
        match self {
            Value::Int(v) => format!("the integer {v}"),
            Value::Float(v) => format!("the number {v}"),
            Value::Bool(b) => format!("`{b}`"),
            Value::Str(s) => format!("the string {:?}", &**s),
            Value::DType(d) => format!("the element type {d}"),
            Value::List(l) => format!("a list of {} item{}", l.len(), if l.len() == 1 { "" } else { "s" }),
            Value::Tensor(v) => match f.ty(*v).as_tensor() {
                Some(t) => format!("a tensor {}", show_type(t)),
                None => "a value".into(),
            },
            Value::Absent(n) => format!("the absent parameter `{n}` (its `if` condition is false)"),
            Value::Layer(i) => format!("an instance of layer `{}`", i.layer_name),
            Value::LayerDef(l) => format!("the layer `{}`", l.def.name.name),
            Value::Func(fr) => format!("the function `{}`", fr.def.name.name),
            Value::Builtin(b) => format!("the builtin function `{}`", b.name),
            Value::Sequential => "`Sequential`".into(),
            Value::Poison => "an invalid value".into(),
        }
    }

    /// The number as f64, for ints and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }
}
