//! Layers and functions: constructing instances (their parameters become
//! function arguments named like PyTorch's state dict), `Sequential`, and
//! inlining calls with their signatures checked.
//!
//! Naming: a binding `fc1 = Linear(…)` gives the instance the prefix `fc1`,
//! so its parameters are `fc1.weight`, `fc1.bias`; `Sequential` entries take
//! their index (`net.0`, `net.1`, … activations included, as in
//! `torch.nn.Sequential`), and sub-layers extend their parent's prefix.

use super::args::{ArgVal, bind};
use super::types::Mismatch;
use super::{Frame, Lowerer, R, Reported};
use crate::ast::{self, Arg, Expr, ExprKind, Span, StmtKind};
use crate::diag::{Diagnostic, codes};
use crate::dump;
use crate::init::{self, IArg, InitError};
use crate::suggest::did_you_mean;
use crate::value::{FileId, FnRef, Instance, LayerRef, Site, Value, show_type};
use dlc_ir::Init;
use dlc_ir::signature::param_attrs;
use std::rc::Rc;

/// How a call was written, in user-file spans, for diagnostics about it.
pub(crate) struct CallCtx<'a> {
    /// The whole call.
    pub call: Span,
    /// Extra labels (what produced the input, the enclosing call).
    pub extra: Vec<(Span, String)>,
    /// The layer instance called, if any.
    pub instance: Option<Rc<Instance<'a>>>,
    /// The name messages use (`Linear`, `block`).
    pub callee: String,
}

fn signature(name: &str, params: &[ast::Param]) -> String {
    format!("{name}({})", dump::params(params))
}

impl<'a> Lowerer<'a> {
    /// Constructs a layer from a call written in the running code.
    pub(crate) fn instantiate(&mut self, l: LayerRef<'a>, args: &'a [Arg], prefix: Option<String>, span: &Span) -> R<Rc<Instance<'a>>> {
        let vals = self.eval_args(args)?;
        let site = Site {
            file: self.frame().file,
            span: span.clone(),
            anchor: self.user_span(span),
        };
        self.instantiate_with(l, vals, prefix, site)
    }

    fn instantiate_with(&mut self, l: LayerRef<'a>, vals: Vec<ArgVal<'a>>, prefix: Option<String>, site: Site) -> R<Rc<Instance<'a>>> {
        let def = l.def;
        let name = def.name.name.clone();
        let sig = signature(&name, &def.params);
        let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let slots = bind(&names, vals.into_iter().map(|a| (a.name, a.value, a.span)).collect()).map_err(|e| self.bind_error(e, &name, &sig))?;
        let arg_spans: Vec<(String, Span)> = if site.file == FileId::User {
            names
                .iter()
                .zip(&slots)
                .filter_map(|(n, s)| s.as_ref().map(|(_, sp)| (n.to_string(), sp.clone())))
                .collect()
        } else {
            Vec::new()
        };
        if prefix.is_none() && def.body.iter().any(|s| matches!(s.kind, StmtKind::Param { .. })) {
            let d = Diagnostic::new(
                codes::UNNAMED_LAYER,
                format!("`{name}` has parameters, so it must be bound to a name"),
                site.anchor.clone(),
                "its parameters would have no name",
            )
            .with_note("parameter names follow PyTorch's state_dict (`fc.weight`), so a layer with parameters is declared as `fc = Layer(…)`")
            .with_help(format!("bind it in the model, e.g. `fc = {name}(…)`, and call `fc(x)`"));
            return Err(self.emit(d));
        }
        let frame = Frame {
            file: l.file,
            scopes: vec![Vec::new()],
            instance: None,
            sees_model: false,
            anchor: site.anchor.clone(),
            what: name.clone(),
        };
        let members = self.in_frame(frame, |this| {
            for (p, slot) in def.params.iter().zip(slots) {
                let (v, at) = match slot {
                    Some((v, s)) => (v, s),
                    None => match &p.default {
                        Some(d) => (this.eval(d)?, site.anchor.clone()),
                        None => return Err(this.missing_arg(&name, &p.name.name, &sig, &site.anchor)),
                    },
                };
                let v = match &p.ty {
                    Some(t) => match this.conform(v, t)? {
                        Ok(v) => v,
                        Err(m) => {
                            return Err(this.arg_mismatch(
                                m,
                                p,
                                &at,
                                &CallCtx {
                                    call: site.anchor.clone(),
                                    extra: Vec::new(),
                                    instance: None,
                                    callee: name.clone(),
                                },
                                &name,
                            ));
                        }
                    },
                    None => v,
                };
                this.bind(&p.name.name, v);
            }
            let mut failed = false;
            for s in &def.body {
                let (member, v) = match &s.kind {
                    StmtKind::Let { name, ty, value } => (name, this.let_value(name, ty.as_ref(), value)),
                    StmtKind::Param { name: n, ty, init, cond } => {
                        let full = prefix.as_ref().map(|p| format!("{p}.{}", n.name)).unwrap_or_else(|| n.name.clone());
                        (n, this.declare_param(&n.name, Some(full), ty, init, cond.as_ref()))
                    }
                    StmtKind::Bind { name: n, value } => {
                        let sub = prefix.as_ref().map(|p| format!("{p}.{}", n.name));
                        (n, this.layer_expr(value, sub).map(Value::Layer))
                    }
                    StmtKind::Fn(f) => (
                        &f.name,
                        Ok(Value::Func(FnRef {
                            file: l.file,
                            def: f,
                            owner: None,
                            in_model: false,
                        })),
                    ),
                    // The resolver reports statements that do not belong in a layer.
                    StmtKind::Input { .. } | StmtKind::Output { .. } | StmtKind::Train(_) => continue,
                };
                let v = v.unwrap_or_else(|Reported| {
                    failed = true;
                    Value::Poison
                });
                this.bind(&member.name, v);
            }
            if failed {
                return Err(Reported);
            }
            Ok(std::mem::take(
                this.frames.last_mut().and_then(|f| f.scopes.last_mut()).expect("a frame has a scope"),
            ))
        })?;
        Ok(Rc::new(Instance {
            layer_name: name,
            layer: Some(l),
            entries: Vec::new(),
            prefix,
            members,
            site,
            arg_spans,
        }))
    }

    /// `Sequential(a, b, …)`: entries are named by their index.
    pub(crate) fn sequential(&mut self, args: &'a [Arg], prefix: Option<String>, span: &Span) -> R<Rc<Instance<'a>>> {
        let mut entries = Vec::with_capacity(args.len());
        let mut failed = false;
        for (i, a) in args.iter().enumerate() {
            if let Some(n) = &a.name {
                let d = self.err(
                    codes::BAD_ARGUMENT,
                    "`Sequential` takes its layers in order, without keywords",
                    &n.span,
                    "keyword here",
                );
                self.emit(d);
                failed = true;
                continue;
            }
            match self.layer_expr(&a.value, prefix.as_ref().map(|p| format!("{p}.{i}"))) {
                Ok(e) => entries.push(e),
                Err(Reported) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        let site = Site {
            file: self.frame().file,
            span: span.clone(),
            anchor: self.user_span(span),
        };
        Ok(Rc::new(Instance {
            layer_name: "Sequential".into(),
            layer: None,
            entries,
            prefix,
            members: Vec::new(),
            site,
            arg_spans: Vec::new(),
        }))
    }

    /// The layer an expression in a binding (`name = …`) or a `Sequential` entry denotes.
    pub(crate) fn layer_expr(&mut self, e: &'a Expr, prefix: Option<String>) -> R<Rc<Instance<'a>>> {
        let v = match &e.kind {
            ExprKind::Call(callee, args) => match self.eval(callee)? {
                Value::LayerDef(l) => return self.instantiate(l, args, prefix, &e.span),
                Value::Sequential => return self.sequential(args, prefix, &e.span),
                other => self.call_value(other, callee, args, &e.span)?,
            },
            _ => match self.eval(e)? {
                Value::LayerDef(l) => {
                    let site = Site {
                        file: self.frame().file,
                        span: e.span.clone(),
                        anchor: self.user_span(&e.span),
                    };
                    return self.instantiate_with(l, Vec::new(), prefix, site);
                }
                Value::Sequential => return self.sequential(&[], prefix, &e.span),
                v => v,
            },
        };
        match v {
            Value::Layer(i) => Ok(i),
            Value::Poison => Err(Reported),
            other => {
                let d = self
                    .err(
                        codes::WRONG_KIND,
                        format!("expected a layer, found {}", other.describe(&self.func)),
                        &e.span,
                        "not a layer",
                    )
                    .with_help("`name = …` declares a layer, like `fc = Linear(784, 10)`; use `let name = …` to name a value");
                Err(self.emit(d))
            }
        }
    }

    /// Calls a layer instance: its `forward`, or each `Sequential` entry in turn.
    pub(crate) fn call_instance(&mut self, inst: &Rc<Instance<'a>>, mut args: Vec<ArgVal<'a>>, ctx: &CallCtx<'a>) -> R<Value<'a>> {
        if inst.layer.is_none() {
            if args.len() != 1 || args[0].name.is_some() {
                let d = Diagnostic::new(
                    codes::ARITY,
                    format!("a `Sequential` takes one input, but {} were given", args.len()),
                    ctx.call.clone(),
                    "called here",
                );
                return Err(self.emit(d));
            }
            let who = inst.prefix.clone().unwrap_or_else(|| "Sequential".into());
            let first = args.pop().expect("one argument");
            let (mut x, mut from) = (first.value, (first.span, "this is"));
            for e in &inst.entries {
                let ty = match &x {
                    Value::Tensor(t) => show_type(&self.tensor_type(*t)),
                    other => other.describe(&self.func),
                };
                let ectx = CallCtx {
                    call: e.site.anchor.clone(),
                    extra: vec![
                        (from.0.clone(), format!("{} {ty}", from.1)),
                        (ctx.call.clone(), format!("in this call of `{who}`")),
                    ],
                    instance: Some(e.clone()),
                    callee: e.layer_name.clone(),
                };
                x = self.call_instance(
                    e,
                    vec![ArgVal {
                        name: None,
                        value: x,
                        span: e.site.anchor.clone(),
                    }],
                    &ectx,
                )?;
                from = (e.site.anchor.clone(), "this produces");
            }
            return Ok(x);
        }
        match inst.member("forward") {
            Some(Value::Func(fr)) => {
                let fr = FnRef {
                    owner: Some(inst.clone()),
                    ..fr.clone()
                };
                self.call_fn(&fr, args, ctx)
            }
            _ => {
                let d = Diagnostic::new(
                    codes::WRONG_KIND,
                    format!("layer `{}` has no `forward` function", inst.layer_name),
                    ctx.call.clone(),
                    "cannot be called",
                )
                .with_help("a layer is called through its `fn forward(x) { … }`");
                Err(self.emit(d))
            }
        }
    }

    /// Inlines a function call.
    pub(crate) fn call_fn(&mut self, fr: &FnRef<'a>, args: Vec<ArgVal<'a>>, ctx: &CallCtx<'a>) -> R<Value<'a>> {
        let def = fr.def;
        let what = match &fr.owner {
            Some(o) => format!("{}.{}", o.layer_name, def.name.name),
            None => def.name.name.clone(),
        };
        let sig = signature(&what, &def.params);
        let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let slots = bind(&names, args.into_iter().map(|a| (a.name, a.value, a.span)).collect()).map_err(|e| self.bind_error(e, &ctx.callee, &sig))?;
        let frame = Frame {
            file: fr.file,
            scopes: vec![Vec::new()],
            instance: fr.owner.clone(),
            sees_model: fr.in_model,
            anchor: ctx.call.clone(),
            what: what.clone(),
        };
        self.in_frame(frame, |this| {
            for (p, slot) in def.params.iter().zip(slots) {
                let (v, at) = match slot {
                    Some((v, s)) => (v, s),
                    None => match &p.default {
                        Some(d) => (this.eval(d)?, ctx.call.clone()),
                        None => return Err(this.missing_arg(&ctx.callee, &p.name.name, &sig, &ctx.call)),
                    },
                };
                let v = match &p.ty {
                    Some(t) => match this.conform(v, t)? {
                        Ok(v) => v,
                        Err(m) => return Err(this.arg_mismatch(m, p, &at, ctx, &what)),
                    },
                    None => v,
                };
                this.bind(&p.name.name, v);
            }
            for s in &def.body.stmts {
                if let StmtKind::Let { name, ty, value } = &s.kind {
                    let v = this.let_value(name, ty.as_ref(), value)?;
                    this.bind(&name.name, v);
                }
            }
            let Some(result) = &def.body.result else { return Err(Reported) };
            let v = this.eval(result)?;
            match &def.ret {
                Some(t) => this.check_annotation(v, t, &result.span, &format!("the result of `{what}`")),
                None => Ok(v),
            }
        })
    }

    /// Reports an argument that does not fit its parameter's type.
    fn arg_mismatch(&mut self, m: Mismatch, p: &ast::Param, at: &Span, ctx: &CallCtx<'a>, what: &str) -> Reported {
        let callee = &ctx.callee;
        let param = format!("{}: {}", p.name.name, p.ty.as_ref().map(dump::ty).unwrap_or_default());
        let mut d = match m {
            Mismatch::Shape {
                expected,
                found,
                named,
                bindings,
            } => {
                let mut note = format!("`{what}` takes `{param}`");
                if !bindings.is_empty() {
                    let b: Vec<String> = bindings.iter().map(|(n, v)| format!("{n} = {v}")).collect();
                    note += &format!(", and here {}", b.join(", "));
                }
                let mut d = Diagnostic::new(
                    codes::SHAPE_MISMATCH,
                    format!("shape mismatch: `{callee}` expects {expected}, found {found}"),
                    at.clone(),
                    format!("expected {expected}, found {found}"),
                )
                .with_note(note);
                if let Some((name, actual)) = named {
                    d = d.with_help(
                        self.suggest_arg(ctx, &name, actual)
                            .unwrap_or_else(|| format!("`{name}` does not match the input, which has {actual} there")),
                    );
                }
                d
            }
            Mismatch::DType { expected, found, want } => {
                let dt = if want == dlc_ir::DType::I1 { "bool" } else { want.name() };
                Diagnostic::new(
                    codes::DTYPE_MISMATCH,
                    format!("dtype mismatch: `{callee}` expects {expected}, found {found}"),
                    at.clone(),
                    format!("expected {expected}, found {found}"),
                )
                .with_note(format!("`{what}` takes `{param}`"))
                .with_help(format!("convert it first: `cast(x, {dt})`"))
            }
            Mismatch::Kind { expected, found } => Diagnostic::new(
                codes::BAD_ARGUMENT,
                format!("`{callee}` expects `{}` to be {expected}, found {found}", p.name.name),
                at.clone(),
                format!("expected {expected}"),
            )
            .with_note(format!("`{what}` takes `{param}`")),
        };
        for (s, l) in &ctx.extra {
            if s != at && !d.secondary.iter().any(|(x, _)| x == s) {
                d = d.with_secondary(s.clone(), l.clone());
            }
        }
        if let Some(inst) = &ctx.instance
            && inst.site.file == FileId::User
            && inst.site.span != *at
            && !d.secondary.iter().any(|(x, _)| *x == inst.site.span)
        {
            let who = inst.prefix.clone().unwrap_or_else(|| inst.layer_name.clone());
            d = d.with_secondary(inst.site.span.clone(), format!("`{who}` is defined here"));
        }
        self.emit(d)
    }

    /// "write `Linear(576, 64)`": the constructor call with one argument replaced.
    fn suggest_arg(&self, ctx: &CallCtx<'a>, param: &str, actual: u64) -> Option<String> {
        let inst = ctx.instance.as_ref()?;
        let (_, arg) = inst.arg_spans.iter().find(|(n, _)| n == param)?;
        let site = &inst.site.span;
        let text = self.src.get(site.clone())?;
        let (a, b) = (arg.start.checked_sub(site.start)?, arg.end.checked_sub(site.start)?);
        let fixed = format!("{}{actual}{}", text.get(..a)?, text.get(b..)?);
        Some(format!("the input has {actual} there, so `{param}` should be {actual}: `{fixed}`"))
    }

    /// `param name: T = init [if cond]`: a new function argument, or absent.
    pub(crate) fn declare_param(&mut self, name: &str, full: Option<String>, ty: &'a ast::TypeExpr, init: &'a Expr, cond: Option<&'a Expr>) -> R<Value<'a>> {
        if let Some(c) = cond {
            match self.eval(c)? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(Value::Absent(name.into())),
                other => {
                    let d = self.err(
                        codes::BAD_ARGUMENT,
                        format!("the `if` of parameter `{name}` must be `true` or `false`, found {}", other.describe(&self.func)),
                        &c.span,
                        "not a bool",
                    );
                    return Err(self.emit(d));
                }
            }
        }
        let t = self.concrete_type(ty, &format!("parameter `{name}`"), false)?;
        let shape: Vec<u64> = t.shape.iter().filter_map(|d| d.as_static()).collect();
        let init = self.init_value(init, &shape)?;
        let full = full.unwrap_or_else(|| name.to_string());
        let v = self.func.add_arg(t.clone().into(), Some(&full), param_attrs(&init));
        self.params.push((full, t, init));
        Ok(Value::Tensor(v))
    }

    /// Reduces an initializer call to an [`Init`] for a parameter of `shape`.
    fn init_value(&mut self, e: &'a Expr, shape: &[u64]) -> R<Init> {
        let (name, name_span, args): (&str, &Span, &'a [Arg]) = match &e.kind {
            ExprKind::Call(f, args) => match &f.kind {
                ExprKind::Name(n) => (n, &f.span, args),
                _ => return Err(self.not_an_init(e)),
            },
            ExprKind::Name(n) => (n, &e.span, &[]),
            _ => return Err(self.not_an_init(e)),
        };
        let Some(def) = init::lookup(name) else {
            let mut d = self
                .err(codes::UNKNOWN_INIT, format!("unknown initializer `{name}`"), name_span, "not an initializer")
                .with_note(format!("initializers: {}", init::INITS.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")));
            if let Some(s) = did_you_mean(name, init::INITS.iter().map(|i| i.name)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            return Err(self.emit(d));
        };
        let vals = self.eval_args(args)?;
        let names: Vec<&str> = def.params.iter().map(|(n, _)| *n).collect();
        let slots =
            bind(&names, vals.into_iter().map(|a| (a.name, a.value, a.span)).collect()).map_err(|err| self.bind_error(err, def.name, &def.signature()))?;
        let mut iargs = Vec::with_capacity(slots.len());
        for slot in slots {
            iargs.push(match slot {
                None => None,
                Some((Value::Int(i), _)) => Some(IArg::Num(i as f64)),
                Some((Value::Float(f), _)) => Some(IArg::Num(f)),
                Some((Value::Str(s), _)) => Some(IArg::Str(s.to_string())),
                Some((other, s)) => {
                    let d = Diagnostic::new(
                        codes::BAD_INIT,
                        format!("`{}` takes numbers and strings, found {}", def.name, other.describe(&self.func)),
                        s,
                        "not a number or string",
                    )
                    .with_note(format!("`{}`", def.signature()));
                    return Err(self.emit(d));
                }
            });
        }
        def.reduce(&iargs, shape).map_err(|err| {
            let shape_note = format!("the parameter's shape is [{}]", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
            let d = match err {
                InitError::Bad(m) => self
                    .err(codes::BAD_INIT, format!("invalid initializer: {m}"), &e.span, "invalid arguments")
                    .with_note(format!("`{}`", def.signature())),
                InitError::Fan(m) => self
                    .err(
                        codes::INIT_FAN,
                        format!("`{}` cannot be used here: {m}", def.name),
                        &e.span,
                        "needs fan_in/fan_out",
                    )
                    .with_note(shape_note)
                    .with_help("use an initializer that needs no fan, such as `zeros()` or `uniform(-0.1, 0.1)`"),
            };
            self.emit(d)
        })
    }

    fn not_an_init(&mut self, e: &Expr) -> Reported {
        let d = self
            .err(codes::UNKNOWN_INIT, "expected an initializer call", &e.span, "not an initializer")
            .with_help("write an initializer such as `zeros()`, `normal(0, 0.02)` or `kaiming_uniform(a: sqrt(5))`");
        self.emit(d)
    }
}
