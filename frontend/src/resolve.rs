//! Name resolution over the user's file, before anything is evaluated: every
//! name used must be defined (in scope, at the top level, in the prelude or
//! among the builtins), nothing is defined twice, every statement is where it
//! may be, and each model-level name is defined before it is used.
//!
//! Running this statically (rather than only while lowering) reports mistakes
//! in code the model never calls, and reports them all at once.

use crate::ast::*;
use crate::diag::{Diagnostic, codes};
use crate::suggest::did_you_mean;
use crate::{builtins, init, parser};
use std::collections::HashMap;

/// Checks names in `user`, with `prelude`'s items visible.
pub(crate) fn resolve(user: &File, prelude: &File) -> Vec<Diagnostic> {
    let mut r = Resolver {
        globals: HashMap::new(),
        layers: Vec::new(),
        scopes: Vec::new(),
        later: Vec::new(),
        diags: Vec::new(),
    };
    for item in &prelude.items {
        if matches!(item, Item::Layer(_) | Item::Alias(_)) {
            r.layers.push(item.name().name.clone());
        }
        if !matches!(item, Item::Model(_)) {
            r.globals.entry(item.name().name.clone()).or_insert(None);
        }
    }
    let mut models: Vec<&Model> = Vec::new();
    let mut defined: HashMap<&str, Span> = HashMap::new();
    for item in &user.items {
        if let Item::Model(m) = item {
            models.push(m);
            continue;
        }
        let n = item.name();
        if let Some(first) = defined.get(n.name.as_str()) {
            r.duplicate(n, first.clone());
        } else {
            defined.insert(&n.name, n.span.clone());
        }
        if matches!(item, Item::Layer(_) | Item::Alias(_)) {
            r.layers.push(n.name.clone());
        }
        r.globals.insert(n.name.clone(), Some(n.span.clone()));
    }
    match models.as_slice() {
        [] => {
            let end = user.items.last().map(|i| i.span()).unwrap_or(0..0);
            r.diags.push(
                Diagnostic::new(
                    codes::MODEL_COUNT,
                    "this file defines no model",
                    end.start..end.start,
                    "expected a `model` in this file",
                )
                .with_help("add `model Name { input x: f32[batch, 4]  … output y = … }`"),
            );
        }
        [_] => {}
        [first, rest @ ..] => {
            for m in rest {
                r.diags.push(
                    Diagnostic::new(codes::MODEL_COUNT, "a file defines one model", m.name.span.clone(), "second model")
                        .with_secondary(first.name.span.clone(), "first model")
                        .with_help("move the other model to its own file"),
                );
            }
        }
    }
    for item in &user.items {
        match item {
            Item::Alias(a) => {
                if !r.layers.contains(&a.target.name) || a.target.name == a.name.name {
                    let mut d = Diagnostic::new(
                        codes::UNKNOWN_NAME,
                        format!("cannot find layer `{}`", a.target.name),
                        a.target.span.clone(),
                        "not a layer",
                    );
                    if let Some(s) = did_you_mean(&a.target.name, r.layers.iter().map(String::as_str)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    r.diags.push(d);
                }
            }
            Item::Fn(f) => r.function(f),
            Item::Layer(l) => r.layer(l),
            Item::Model(m) => r.model(m),
        }
    }
    r.diags
}

struct Resolver {
    /// Top-level names (`Some(span)` for the user's, `None` for the prelude's).
    globals: HashMap<String, Option<Span>>,
    layers: Vec<String>,
    /// Lexical scopes: name, definition span, defined by `let`.
    scopes: Vec<Vec<(String, Span, bool)>>,
    /// Model names defined further down, for "used before its definition".
    later: Vec<(String, Span)>,
    diags: Vec<Diagnostic>,
}

impl Resolver {
    fn duplicate(&mut self, again: &Ident, first: Span) {
        self.diags.push(
            Diagnostic::new(
                codes::DUPLICATE,
                format!("`{}` is defined more than once", again.name),
                again.span.clone(),
                "defined again here",
            )
            .with_secondary(first, "first defined here")
            .with_help("rename one of them"),
        );
    }

    /// Defines `name` in the innermost scope; `let` may shadow an earlier `let`.
    fn define(&mut self, name: &Ident, is_let: bool) {
        let scope = self.scopes.last_mut().expect("a scope is open");
        if let Some((_, first, was_let)) = scope.iter().find(|(n, ..)| *n == name.name)
            && !(is_let && *was_let)
        {
            let first = first.clone();
            self.duplicate(name, first);
            return;
        }
        scope.push((name.name.clone(), name.span.clone(), is_let));
    }

    fn visible(&self, name: &str) -> bool {
        self.scopes.iter().flatten().any(|(n, ..)| n == name)
            || self.globals.contains_key(name)
            || builtins::lookup(name).is_some()
            || name == "Sequential"
            || parser::dtype_named(name).is_some()
    }

    fn use_name(&mut self, name: &str, span: &Span) {
        if self.visible(name) {
            return;
        }
        if let Some((_, def)) = self.later.iter().find(|(n, _)| n == name) {
            let def = def.clone();
            self.diags.push(
                Diagnostic::new(
                    codes::UNKNOWN_NAME,
                    format!("`{name}` is used before its definition"),
                    span.clone(),
                    "used here",
                )
                .with_secondary(def, "defined here, later")
                .with_help("move the definition above its first use"),
            );
            return;
        }
        let mut names: Vec<&str> = self.scopes.iter().flatten().map(|(n, ..)| n.as_str()).collect();
        names.extend(self.globals.keys().map(String::as_str));
        names.extend(builtins::BUILTINS.iter().map(|b| b.name));
        names.push("Sequential");
        let mut d = Diagnostic::new(codes::UNKNOWN_NAME, format!("cannot find `{name}` in this scope"), span.clone(), "not found");
        if let Some(s) = did_you_mean(name, names) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.diags.push(d);
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Name(n) => self.use_name(n, &e.span),
            ExprKind::Field(base, _) => {
                if let ExprKind::Name(m) = &base.kind
                    && matches!(m.as_str(), "nn" | "torch" | "F" | "tf" | "keras" | "layers")
                    && !self.visible(m)
                {
                    self.diags.push(
                        Diagnostic::new(
                            codes::UNKNOWN_NAME,
                            format!("cannot find `{m}` in this scope"),
                            base.span.clone(),
                            "no modules here",
                        )
                        .with_help("layers and functions need no module prefix: write `Linear(…)`, `relu(x)`"),
                    );
                    return;
                }
                self.expr(base)
            }
            ExprKind::Call(f, args) => {
                self.expr(f);
                for a in args {
                    self.expr(&a.value);
                }
            }
            ExprKind::List(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Unary(_, x) => self.expr(x),
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Error => {}
        }
    }

    fn ty(&mut self, t: &TypeExpr) {
        if let TypeExpr::Tensor(t) = t {
            for d in &t.dims {
                if let DimExpr::Expr(e) = d {
                    self.expr(e);
                }
            }
        }
    }

    fn init(&mut self, e: &Expr) {
        let (name, span, args): (&str, &Span, &[Arg]) = match &e.kind {
            ExprKind::Call(f, args) => match &f.kind {
                ExprKind::Name(n) => (n, &f.span, args),
                _ => return self.expr(e),
            },
            ExprKind::Name(n) => (n, &e.span, &[]),
            _ => return self.expr(e),
        };
        if init::lookup(name).is_none() {
            let mut d = Diagnostic::new(codes::UNKNOWN_INIT, format!("unknown initializer `{name}`"), span.clone(), "not an initializer")
                .with_note(format!("initializers: {}", init::INITS.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")));
            if let Some(s) = did_you_mean(name, init::INITS.iter().map(|i| i.name)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
        }
        for a in args {
            self.expr(&a.value);
        }
    }

    fn params(&mut self, ps: &[Param]) {
        for p in ps {
            if let Some(t) = &p.ty {
                self.ty(t);
            }
            if let Some(d) = &p.default {
                self.expr(d);
            }
            self.define(&p.name, false);
        }
    }

    fn misplaced(&mut self, s: &Stmt, place: &str) {
        let (what, help) = match &s.kind {
            StmtKind::Input { .. } => ("`input` declares a model input", "pass values to the layer's `forward` instead"),
            StmtKind::Output { .. } => ("`output` declares a model output", "a function returns its last expression"),
            StmtKind::Train(_) => ("a `train` block configures a model's training", "move it into the model"),
            StmtKind::Param { .. } => ("`param` declares a trainable parameter", "declare it in a layer or the model"),
            StmtKind::Bind { .. } => ("`name = …` declares a sub-layer", "declare it in a layer or the model; use `let` for values"),
            StmtKind::Fn(_) => ("a `fn`", "define it at the top level, in a layer or in the model"),
            StmtKind::Let { .. } => ("`let`", "move it"),
        };
        let span = s.kind.defines().map(|n| n.span.clone()).unwrap_or(s.span.clone());
        self.diags.push(
            Diagnostic::new(
                codes::MISPLACED,
                format!("{what}; it cannot appear in {place}"),
                span,
                format!("not allowed in {place}"),
            )
            .with_help(help),
        );
    }

    fn function(&mut self, f: &FnDef) {
        self.scopes.push(Vec::new());
        self.params(&f.params);
        if let Some(t) = &f.ret {
            self.ty(t);
        }
        for s in &f.body.stmts {
            match &s.kind {
                StmtKind::Let { name, ty, value } => {
                    if let Some(t) = ty {
                        self.ty(t);
                    }
                    self.expr(value);
                    self.define(name, true);
                }
                _ => self.misplaced(s, "a function"),
            }
        }
        if let Some(r) = &f.body.result {
            self.expr(r);
        }
        self.scopes.pop();
    }

    fn layer(&mut self, l: &Layer) {
        self.scopes.push(Vec::new());
        self.params(&l.params);
        // Members may shadow constructor parameters (`param bias … if bias`).
        self.scopes.push(Vec::new());
        let mut fns = Vec::new();
        for s in &l.body {
            match &s.kind {
                StmtKind::Param { name, ty, init, cond } => {
                    self.ty(ty);
                    if let Some(c) = cond {
                        self.expr(c);
                    }
                    self.init(init);
                    self.define(name, false);
                }
                StmtKind::Bind { name, value } => {
                    self.expr(value);
                    self.define(name, false);
                }
                StmtKind::Let { name, ty, value } => {
                    if let Some(t) = ty {
                        self.ty(t);
                    }
                    self.expr(value);
                    self.define(name, true);
                }
                StmtKind::Fn(f) => {
                    self.define(&f.name, false);
                    fns.push(f);
                }
                StmtKind::Input { .. } | StmtKind::Output { .. } | StmtKind::Train(_) => self.misplaced(s, "a layer"),
            }
        }
        for f in fns {
            self.function(f);
        }
        self.scopes.pop();
        self.scopes.pop();
    }

    fn model(&mut self, m: &Model) {
        self.scopes.push(Vec::new());
        for s in &m.body {
            if let StmtKind::Input { name, ty } = &s.kind {
                self.ty(ty);
                self.define(name, false);
            }
        }
        self.later = m
            .body
            .iter()
            .filter(|s| !matches!(s.kind, StmtKind::Input { .. }))
            .filter_map(|s| s.kind.defines())
            .map(|n| (n.name.clone(), n.span.clone()))
            .collect();
        let mut fns = Vec::new();
        let mut train: Option<&TrainBlock> = None;
        for s in &m.body {
            if let Some(n) = s.kind.defines()
                && let Some(i) = self.later.iter().position(|(l, sp)| *l == n.name && *sp == n.span)
            {
                self.later.remove(i);
            }
            match &s.kind {
                StmtKind::Input { .. } => {}
                StmtKind::Param { name, ty, init, cond } => {
                    self.ty(ty);
                    if let Some(c) = cond {
                        self.expr(c);
                    }
                    self.init(init);
                    self.define(name, false);
                }
                StmtKind::Bind { name, value } => {
                    self.expr(value);
                    self.define(name, false);
                }
                StmtKind::Let { name, ty, value } | StmtKind::Output { name, ty, value } => {
                    if let Some(t) = ty {
                        self.ty(t);
                    }
                    self.expr(value);
                    self.define(name, matches!(s.kind, StmtKind::Let { .. }));
                }
                StmtKind::Fn(f) => {
                    self.define(&f.name, false);
                    fns.push(f);
                }
                StmtKind::Train(t) => {
                    if let Some(first) = train {
                        self.diags.push(
                            Diagnostic::new(codes::DUPLICATE, "a model has one `train` block", t.keyword.clone(), "second `train` block")
                                .with_secondary(first.keyword.clone(), "first `train` block"),
                        );
                    }
                    train = Some(t);
                }
            }
        }
        self.later.clear();
        for f in fns {
            self.function(f);
        }
        self.scopes.pop();
    }
}
