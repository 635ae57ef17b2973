//! Lowering: evaluates the model at compile time and builds `@forward`.
//!
//! The lowering is an interpreter over the syntax tree whose values are
//! numbers, layer instances and tensors (see [`crate::value`]). Layer
//! constructors run when a layer is bound (creating its parameters as function
//! arguments, named by PyTorch's state-dict rules), and every call of a layer
//! or function inlines its body, so the IR holds registry ops only. Shapes are
//! checked where types are written (function parameters and results, `let x:
//! T`) and by the registry's shape rule of every op built.
//!
//! Errors never stop the walk of the model: a failed definition binds
//! [`Value::Poison`], whose uses fail silently, so independent mistakes are
//! all reported and none cascades.

mod args;
mod calls;
mod expr;
mod layers;
mod types;

pub(crate) use args::{BindError, bind, bind_diagnostic};

use crate::ast::{self, File, Model, Span, StmtKind};
use crate::diag::{Diagnostic, codes, line_of};
use crate::parser;
use crate::value::{FileId, FnRef, Instance, LayerRef, Value};
use crate::{builtins, suggest};
use dlc_ir::signature::{input_attrs, set_output_names};
use dlc_ir::{Builder, DType, Function, Init, TensorType, Type, ValueId};
use std::collections::HashMap;
use std::rc::Rc;

/// The deepest nesting of inlined calls (recursion has no base case at compile time).
const MAX_CALLS: usize = 48;

/// How many calls one model may inline in all, and how many ops it may build:
/// nested calls that each call twice would otherwise expand exponentially.
const MAX_TOTAL_CALLS: usize = 200_000;
const MAX_OPS: usize = 1_000_000;

/// A diagnostic has been recorded; the caller gives up on this value.
pub(crate) struct Reported;

pub(crate) type R<T> = Result<T, Reported>;

/// What lowering produces for a model.
pub(crate) struct Lowered {
    /// `@forward`.
    pub func: Function,
    /// Inputs in declaration order.
    pub inputs: Vec<(String, TensorType)>,
    /// Parameters in definition order.
    pub params: Vec<(String, TensorType, Init)>,
    /// Outputs in declaration order.
    pub outputs: Vec<(String, TensorType)>,
}

/// A value with the name it is bound to.
type Named = (String, ValueId);

/// One activation of model, layer-constructor or function code.
pub(crate) struct Frame<'a> {
    /// The file the running code is in.
    pub file: FileId,
    /// Local bindings, innermost scope last.
    pub scopes: Vec<Vec<(String, Value<'a>)>>,
    /// The layer instance whose members the code sees.
    pub instance: Option<Rc<Instance<'a>>>,
    /// The code also sees the model's bindings (functions defined in the model).
    pub sees_model: bool,
    /// The user-file span diagnostics use when the code is in the prelude.
    pub anchor: Span,
    /// What is running, for notes (`Linear.forward`).
    pub what: String,
}

/// The lowering state.
pub(crate) struct Lowerer<'a> {
    pub func: Function,
    pub src: &'a str,
    prelude_src: &'a str,
    user_globals: HashMap<&'a str, Value<'a>>,
    prelude_globals: HashMap<&'a str, Value<'a>>,
    pub frames: Vec<Frame<'a>>,
    pub diags: Vec<Diagnostic>,
    consts: HashMap<(u64, DType), ValueId>,
    pub params: Vec<(String, TensorType, Init)>,
    /// Calls inlined so far.
    calls: usize,
    /// The budget was exceeded (reported once).
    over_budget: bool,
}

fn globals<'a>(file: &'a File, id: FileId, fallback: &HashMap<&'a str, Value<'a>>) -> HashMap<&'a str, Value<'a>> {
    let mut g = HashMap::new();
    for item in &file.items {
        match item {
            ast::Item::Layer(l) => {
                g.insert(l.name.name.as_str(), Value::LayerDef(LayerRef { file: id, def: l }));
            }
            ast::Item::Fn(f) => {
                g.insert(
                    f.name.name.as_str(),
                    Value::Func(FnRef {
                        file: id,
                        def: f,
                        owner: None,
                        in_model: false,
                    }),
                );
            }
            ast::Item::Model(_) | ast::Item::Alias(_) => {}
        }
    }
    // Aliases may name aliases defined further down: repeat until nothing changes.
    let aliases: Vec<&ast::Alias> = file
        .items
        .iter()
        .filter_map(|i| if let ast::Item::Alias(a) = i { Some(a) } else { None })
        .collect();
    for _ in 0..aliases.len() {
        let mut changed = false;
        for a in &aliases {
            if g.contains_key(a.name.name.as_str()) {
                continue;
            }
            if let Some(t) = g.get(a.target.name.as_str()).or_else(|| fallback.get(a.target.name.as_str())).cloned() {
                g.insert(a.name.name.as_str(), t);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    g
}

/// Lowers `model` (an item of `user`) to `@forward`.
pub(crate) fn lower_model<'a>(user: &'a File, model: &'a Model, prelude: &'a File, src: &'a str, prelude_src: &'a str) -> Result<Lowered, Vec<Diagnostic>> {
    let prelude_globals = globals(prelude, FileId::Prelude, &HashMap::new());
    let user_globals = globals(user, FileId::User, &prelude_globals);
    let mut l = Lowerer {
        func: Function::new("forward"),
        src,
        prelude_src,
        user_globals,
        prelude_globals,
        frames: vec![Frame {
            file: FileId::User,
            scopes: vec![Vec::new()],
            instance: None,
            sees_model: false,
            anchor: model.name.span.clone(),
            what: model.name.name.clone(),
        }],
        diags: Vec::new(),
        consts: HashMap::new(),
        params: Vec::new(),
        calls: 0,
        over_budget: false,
    };
    let (inputs, outputs) = l.model_body(model);
    if !l.diags.is_empty() {
        return Err(l.diags);
    }
    let values: Vec<ValueId> = outputs.iter().map(|(_, v)| *v).collect();
    Builder::at_entry(&mut l.func).ret(&values);
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    set_output_names(&mut l.func, &names);
    let outputs = outputs.iter().map(|(n, v)| (n.clone(), l.tensor_type(*v))).collect();
    Ok(Lowered {
        func: l.func,
        inputs,
        params: l.params,
        outputs,
    })
}

impl<'a> Lowerer<'a> {
    /// Lowers the model's statements; returns its inputs and its outputs' values.
    fn model_body(&mut self, model: &'a Model) -> (Vec<(String, TensorType)>, Vec<Named>) {
        let mut inputs = Vec::new();
        for s in &model.body {
            if let StmtKind::Input { name, ty } = &s.kind {
                let v = match self.concrete_type(ty, &format!("input `{}`", name.name), true) {
                    Ok(t) => {
                        inputs.push((name.name.clone(), t.clone()));
                        Value::Tensor(self.func.add_arg(t.into(), Some(&name.name), input_attrs()))
                    }
                    Err(Reported) => Value::Poison,
                };
                self.bind(&name.name, v);
            }
        }
        let mut outputs = Vec::new();
        for s in &model.body {
            let (name, v) = match &s.kind {
                StmtKind::Input { .. } | StmtKind::Train(_) => continue,
                StmtKind::Param { name, ty, init, cond } => (name, self.declare_param(&name.name, None, ty, init, cond.as_ref())),
                StmtKind::Bind { name, value } => (name, self.layer_expr(value, Some(name.name.clone())).map(Value::Layer)),
                StmtKind::Let { name, ty, value } => (name, self.let_value(name, ty.as_ref(), value)),
                StmtKind::Output { name, ty, value } => {
                    let v = self.let_value(name, ty.as_ref(), value).and_then(|v| match v {
                        Value::Tensor(t) => {
                            outputs.push((name.name.clone(), t));
                            Ok(Value::Tensor(t))
                        }
                        other => {
                            let d = self
                                .err(
                                    codes::WRONG_KIND,
                                    format!("output `{}` must be a tensor", name.name),
                                    &value.span,
                                    format!("this is {}", other.describe(&self.func)),
                                )
                                .with_help("an output is a value computed from the inputs, such as `fc(x)`");
                            Err(self.emit(d))
                        }
                    });
                    (name, v)
                }
                StmtKind::Fn(f) => (
                    &f.name,
                    Ok(Value::Func(FnRef {
                        file: FileId::User,
                        def: f,
                        owner: None,
                        in_model: true,
                    })),
                ),
            };
            let v = v.unwrap_or(Value::Poison);
            self.bind(&name.name, v);
        }
        if outputs.is_empty() && self.diags.is_empty() && !model.body.iter().any(|s| matches!(s.kind, StmtKind::Output { .. })) {
            let d = Diagnostic::new(
                codes::MODEL_INCOMPLETE,
                format!("model `{}` has no output", model.name.name),
                model.name.span.clone(),
                "declares no `output`",
            )
            .with_help("add `output name = expression`, e.g. `output logits = fc(x)`");
            self.emit(d);
        }
        (inputs, outputs)
    }

    /// `let name[: ty] = value` (also `output`): evaluates, checks, names the value.
    pub(crate) fn let_value(&mut self, name: &ast::Ident, ty: Option<&'a ast::TypeExpr>, value: &'a ast::Expr) -> R<Value<'a>> {
        let v = self.eval(value)?;
        let v = match ty {
            Some(t) => self.check_annotation(v, t, &value.span, &format!("`{}`", name.name))?,
            None => v,
        };
        if let Value::Tensor(t) = v {
            self.name_value(t, &name.name);
        }
        Ok(v)
    }

    /// Names an unnamed op result after a user binding (prelude names stay out of the IR).
    fn name_value(&mut self, v: ValueId, name: &str) {
        if self.frame().file == FileId::User && self.func.value(v).name.is_none() && matches!(self.func.value(v).def, dlc_ir::ValueDef::OpResult { .. }) {
            Builder::at_entry(&mut self.func).name(v, name);
        }
    }

    // ---- frames and names -------------------------------------------------

    pub(crate) fn frame(&self) -> &Frame<'a> {
        self.frames.last().expect("the model frame is never popped")
    }

    /// Binds `name` in the innermost scope.
    pub(crate) fn bind(&mut self, name: &str, v: Value<'a>) {
        let f = self.frames.last_mut().expect("the model frame is never popped");
        f.scopes.last_mut().expect("a frame has a scope").push((name.to_string(), v));
    }

    /// Runs `body` in a new frame (popped on every path).
    pub(crate) fn in_frame<T>(&mut self, frame: Frame<'a>, body: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        if self.frames.len() > MAX_CALLS {
            let d = self
                .err(
                    codes::TOO_DEEP,
                    format!("calls nest more than {MAX_CALLS} deep while expanding `{}`", frame.what),
                    &frame.anchor.clone(),
                    "expanding this",
                )
                .with_note("layers and functions are inlined at compile time, so a recursive definition never ends");
            return Err(self.emit(d));
        }
        self.calls += 1;
        if self.calls > MAX_TOTAL_CALLS {
            return Err(self.over_budget(&frame.anchor, format!("more than {MAX_TOTAL_CALLS} inlined calls")));
        }
        self.frames.push(frame);
        let r = body(self);
        self.frames.pop();
        r
    }

    /// Reports (once) that the model expands past the budget.
    pub(crate) fn over_budget(&mut self, anchor: &Span, what: String) -> Reported {
        if !self.over_budget {
            self.over_budget = true;
            // Blame the outermost call that led here: that is the expansion the user wrote.
            let at = self.frames.get(1).map(|f| f.anchor.clone()).unwrap_or_else(|| anchor.clone());
            let d = Diagnostic::new(codes::TOO_LARGE, format!("this model expands to {what}"), at, "expanding this")
                .with_note("layers and functions are inlined at compile time; calls that each call several others multiply");
            self.diags.push(d);
        }
        Reported
    }

    /// Fails once the function has more ops than the budget allows.
    pub(crate) fn check_op_budget(&mut self, span: &Span) -> R<()> {
        if self.func.num_ops() < MAX_OPS {
            return Ok(());
        }
        let at = self.user_span(span);
        Err(self.over_budget(&at, format!("more than {MAX_OPS} ops")))
    }

    /// The value `name` has in the running code.
    pub(crate) fn lookup(&self, name: &str) -> Option<Value<'a>> {
        let f = self.frame();
        for s in f.scopes.iter().rev() {
            if let Some((_, v)) = s.iter().rev().find(|(n, _)| n == name) {
                return Some(v.clone());
            }
        }
        if let Some(inst) = &f.instance
            && let Some(v) = inst.member(name)
        {
            return Some(match v {
                Value::Func(fr) if fr.owner.is_none() => Value::Func(FnRef {
                    owner: Some(inst.clone()),
                    ..fr.clone()
                }),
                v => v.clone(),
            });
        }
        if f.sees_model {
            for s in self.frames[0].scopes.iter().rev() {
                if let Some((_, v)) = s.iter().rev().find(|(n, _)| n == name) {
                    return Some(v.clone());
                }
            }
        }
        if f.file == FileId::User
            && let Some(v) = self.user_globals.get(name)
        {
            return Some(v.clone());
        }
        if let Some(v) = self.prelude_globals.get(name) {
            return Some(v.clone());
        }
        if let Some(b) = builtins::lookup(name) {
            return Some(Value::Builtin(b));
        }
        if name == "Sequential" {
            return Some(Value::Sequential);
        }
        parser::dtype_named(name).map(Value::DType)
    }

    /// Every name the running code can see, for suggestions.
    pub(crate) fn visible_names(&self) -> Vec<String> {
        let f = self.frame();
        let mut out: Vec<String> = f.scopes.iter().flatten().map(|(n, _)| n.clone()).collect();
        if let Some(i) = &f.instance {
            out.extend(i.members.iter().map(|(n, _)| n.clone()));
        }
        if f.sees_model {
            out.extend(self.frames[0].scopes.iter().flatten().map(|(n, _)| n.clone()));
        }
        if f.file == FileId::User {
            out.extend(self.user_globals.keys().map(|k| k.to_string()));
        }
        out.extend(self.prelude_globals.keys().map(|k| k.to_string()));
        out.extend(builtins::BUILTINS.iter().map(|b| b.name.to_string()));
        out.push("Sequential".into());
        out.sort();
        out
    }

    // ---- diagnostics ------------------------------------------------------

    /// The user-file span that stands for `span` of the running code.
    pub(crate) fn user_span(&self, span: &Span) -> Span {
        let f = self.frame();
        if f.file == FileId::User { span.clone() } else { f.anchor.clone() }
    }

    /// A diagnostic at `span` of the running code; in the prelude it points
    /// at the user code that led there and quotes the prelude line in a note.
    pub(crate) fn err(&self, code: &'static str, message: impl Into<String>, span: &Span, label: impl Into<String>) -> Diagnostic {
        let mut d = Diagnostic::new(code, message, self.user_span(span), label);
        let f = self.frame();
        if f.file == FileId::Prelude {
            let text = self.prelude_src.get(span.clone()).unwrap_or("").split('\n').next().unwrap_or("");
            let text: String = text.chars().take(72).collect();
            d = d.with_note(format!(
                "in `{}` (prelude.dl, line {}): `{text}`",
                f.what,
                line_of(self.prelude_src, span.start)
            ));
        }
        d
    }

    /// Records a diagnostic.
    pub(crate) fn emit(&mut self, d: Diagnostic) -> Reported {
        self.diags.push(d);
        Reported
    }

    /// An unknown name, with a suggestion.
    pub(crate) fn unknown_name(&mut self, name: &str, span: &Span) -> Reported {
        let names = self.visible_names();
        let mut d = self.err(codes::UNKNOWN_NAME, format!("cannot find `{name}` in this scope"), span, "not found");
        if let Some(s) = suggest::did_you_mean(name, names.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.emit(d)
    }

    // ---- small helpers ----------------------------------------------------

    /// The tensor type of `v`.
    pub(crate) fn tensor_type(&self, v: ValueId) -> TensorType {
        match self.func.ty(v) {
            Type::Tensor(t) => t.clone(),
            other => TensorType::fixed(&[], other.dtype().unwrap_or(DType::F32)),
        }
    }

    /// A rank-0 constant, shared by every use of the same number and dtype.
    pub(crate) fn scalar(&mut self, v: f64, dtype: DType) -> ValueId {
        let key = (v.to_bits(), dtype);
        if let Some(&c) = self.consts.get(&key) {
            return c;
        }
        let c = Builder::at_entry(&mut self.func).scalar(v, dtype);
        self.consts.insert(key, c);
        c
    }
}
