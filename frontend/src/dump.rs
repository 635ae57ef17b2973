//! `dlc compile --emit ast`: an indented, stable dump of the syntax tree.
//!
//! One line per item and statement, each ending with its byte span (what a
//! parser bug report needs); expressions print fully parenthesized on one
//! line, so precedence is visible at a glance, and break over several lines
//! only when they would be longer than [`WIDTH`].

use crate::ast::*;
use std::fmt::Write;

const WIDTH: usize = 88;

/// Dumps `file` as indented text.
pub fn dump_ast(file: &File) -> String {
    let mut out = String::new();
    for item in &file.items {
        item_lines(&mut out, item);
    }
    out
}

fn line(out: &mut String, indent: usize, text: &str, span: &Span) {
    let _ = writeln!(out, "{:indent$}{text}  @{}..{}", "", span.start, span.end, indent = indent * 2);
}

fn item_lines(out: &mut String, item: &Item) {
    match item {
        Item::Model(m) => {
            line(out, 0, &format!("model {}", m.name.name), &m.span);
            stmts(out, 1, &m.body);
        }
        Item::Layer(l) => {
            line(out, 0, &format!("layer {}({})", l.name.name, params(&l.params)), &l.span);
            stmts(out, 1, &l.body);
        }
        Item::Fn(f) => fn_lines(out, 0, f),
        Item::Alias(a) => line(out, 0, &format!("layer {} = {}", a.name.name, a.target.name), &a.span),
    }
}

fn fn_lines(out: &mut String, indent: usize, f: &FnDef) {
    let ret = f.ret.as_ref().map(|t| format!(" -> {}", ty(t))).unwrap_or_default();
    line(out, indent, &format!("fn {}({}){ret}", f.name.name, params(&f.params)), &f.span);
    stmts(out, indent + 1, &f.body.stmts);
    if let Some(r) = &f.body.result {
        expr_line(out, indent + 1, "result ", r, "", &r.span);
    }
}

pub(crate) fn params(ps: &[Param]) -> String {
    ps.iter()
        .map(|p| {
            let mut s = p.name.name.clone();
            if let Some(t) = &p.ty {
                s += &format!(": {}", ty(t));
            }
            if let Some(d) = &p.default {
                s += &format!(" = {}", inline(d));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn stmts(out: &mut String, indent: usize, body: &[Stmt]) {
    for s in body {
        let annot = |t: &Option<TypeExpr>| t.as_ref().map(|t| format!(": {}", ty(t))).unwrap_or_default();
        match &s.kind {
            StmtKind::Input { name, ty: t } => line(out, indent, &format!("input {}: {}", name.name, ty(t)), &s.span),
            StmtKind::Output { name, ty: t, value } => expr_line(out, indent, &format!("output {}{} = ", name.name, annot(t)), value, "", &s.span),
            StmtKind::Let { name, ty: t, value } => expr_line(out, indent, &format!("let {}{} = ", name.name, annot(t)), value, "", &s.span),
            StmtKind::Param { name, ty: t, init, cond } => {
                let tail = cond.as_ref().map(|c| format!(" if {}", inline(c))).unwrap_or_default();
                expr_line(out, indent, &format!("param {}: {} = ", name.name, ty(t)), init, &tail, &s.span)
            }
            StmtKind::Bind { name, value } => expr_line(out, indent, &format!("bind {} = ", name.name), value, "", &s.span),
            StmtKind::Fn(f) => fn_lines(out, indent, f),
            StmtKind::Train(t) => {
                line(out, indent, "train", &s.span);
                for e in &t.entries {
                    expr_line(out, indent + 1, &format!("{}: ", e.key.name), &e.value, "", &e.span);
                }
            }
        }
    }
}

/// `head expr tail  @span`, breaking `expr` over lines if it is too long.
fn expr_line(out: &mut String, indent: usize, head: &str, e: &Expr, tail: &str, span: &Span) {
    let flat = inline(e);
    if indent * 2 + head.len() + flat.len() + tail.len() <= WIDTH {
        line(out, indent, &format!("{head}{flat}{tail}"), span);
        return;
    }
    let mut text = String::new();
    broken(&mut text, indent, e);
    let pad = indent * 2;
    let _ = writeln!(out, "{:pad$}{head}{}{tail}  @{}..{}", "", text.trim_start(), span.start, span.end);
}

/// An expression over several lines: a long call or list puts one argument per line.
fn broken(out: &mut String, indent: usize, e: &Expr) {
    let pad = indent * 2;
    let flat = inline(e);
    type Items<'e> = Vec<(Option<&'e Ident>, &'e Expr)>;
    let (open, close, callee, args): (&str, &str, String, Items) = match &e.kind {
        ExprKind::Call(f, args) if pad + flat.len() > WIDTH => ("(", ")", inline(f), args.iter().map(|a| (a.name.as_ref(), &a.value)).collect()),
        ExprKind::List(items) if pad + flat.len() > WIDTH => ("[", "]", String::new(), items.iter().map(|i| (None, i)).collect()),
        _ => {
            let _ = write!(out, "{:pad$}{flat}", "");
            return;
        }
    };
    let _ = writeln!(out, "{:pad$}{callee}{open}", "");
    for (name, v) in args {
        if let Some(n) = name {
            let _ = write!(out, "{:w$}{}: ", "", n.name, w = pad + 2);
            let mut sub = String::new();
            broken(&mut sub, indent + 1, v);
            out.push_str(sub.trim_start());
        } else {
            broken(out, indent + 1, v);
        }
        out.push_str(",\n");
    }
    let _ = write!(out, "{:pad$}{close}", "");
}

/// An expression on one line, every operator application in parentheses.
pub(crate) fn inline(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Name(n) => n.clone(),
        ExprKind::List(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
        ExprKind::Unary(UnOp::Neg, x) => format!("(-{})", inline(x)),
        ExprKind::Binary(op, a, b) => format!("({} {} {})", inline(a), op.symbol(), inline(b)),
        ExprKind::Call(f, args) => {
            let args: Vec<String> = args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{}: {}", n.name, inline(&a.value)),
                    None => inline(&a.value),
                })
                .collect();
            format!("{}({})", inline(f), args.join(", "))
        }
        ExprKind::Field(b, f) => format!("{}.{}", inline(b), f.name),
        ExprKind::Error => "<error>".into(),
    }
}

/// A type as written.
pub(crate) fn ty(t: &TypeExpr) -> String {
    match t {
        TypeExpr::Scalar(s, _) => s.name().into(),
        TypeExpr::Tensor(t) => {
            let dims: Vec<String> = t
                .dims
                .iter()
                .map(|d| match d {
                    DimExpr::Ellipsis(_) => "...".into(),
                    DimExpr::Wildcard(_) => "_".into(),
                    DimExpr::Batch(_) => "batch".into(),
                    DimExpr::Expr(e) => inline(e),
                })
                .collect();
            let dt = if t.dtype == dlc_ir::DType::I1 { "bool" } else { t.dtype.name() };
            format!("{dt}[{}]", dims.join(", "))
        }
    }
}
