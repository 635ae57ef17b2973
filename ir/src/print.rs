//! Writes the IR as MLIR's generic op syntax.
//!
//! Generic syntax (`"dl.add"(%a, %b) : (T, T) -> T`) rather than a custom
//! assembly format, so that upstream `mlir-opt --allow-unregistered-dialect`
//! reads everything dlc prints and MLIR's tools can be pointed at our IR. The
//! output is deterministic and [`crate::parse::parse_module`] reads it back to
//! the same module; printing that again gives the same bytes. Two rules make
//! that hold for numbers: floats are written in Rust's shortest round-trip
//! form (with the `.0` MLIR insists on), and non-finite floats as their bit
//! pattern in hex, since MLIR has no `inf`/`nan` literals.

use crate::attr::{Attr, Attrs, DenseAttr, DenseData};
use crate::module::{BlockId, Function, Module, OpId, Region, ValueId};
use crate::registry::OpKind;
use crate::types::{DType, Type};
use std::fmt::{self, Write};

/// The whole module, `module { … }`, functions separated by a blank line.
pub fn print_module(m: &Module) -> String {
    let mut out = String::from("module {\n");
    for (i, f) in m.functions.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        Printer::new(f, &mut out).function(1);
    }
    out.push_str("}\n");
    out
}

/// One `func.func`, unindented ([`crate::parse::parse_module`] reads bare functions too).
pub fn print_function(f: &Function) -> String {
    let mut out = String::new();
    Printer::new(f, &mut out).function(0);
    out
}

/// An attribute value as it appears in a dictionary: `3`, `1.0e-8`, `"s"`, `dense<…> : tensor<…>`.
pub fn print_attr(a: &Attr) -> String {
    let mut out = String::new();
    write_attr(&mut out, a);
    out
}

/// An attribute dictionary, `{a = 1, b = "x"}`, in key order.
pub fn print_attr_dict(attrs: &Attrs) -> String {
    let mut out = String::new();
    write_dict(&mut out, attrs);
    out
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_module(self))
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_function(self))
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_attr(self))
    }
}

/// How each value of a function is written: `%x` when named, else `%N`
/// numbered in definition order (arguments, then op results and nested block
/// arguments in program order), and `%r#1` for a result of a multi-result op
/// printed as one group `%r:2`. Diagnostics use it so that they name values
/// exactly as the printed IR does.
pub struct ValueNames {
    /// Per value id: the base name and, inside a `%base:N` group, the index.
    names: Vec<Option<(String, Option<usize>)>>,
}

impl ValueNames {
    /// Names every value reachable from the function body.
    pub fn new(f: &Function) -> Self {
        let mut n = Namer { f, names: vec![None; f.num_values()], next: 0, seen: vec![false; f.num_blocks()] };
        n.region(&f.body);
        ValueNames { names: n.names }
    }

    /// `%x`, `%3` or `%r#1`; `%<unknown>` for a value the body does not define.
    pub fn get(&self, v: ValueId) -> String {
        match self.names.get(v.0 as usize) {
            Some(Some((base, None))) => format!("%{base}"),
            Some(Some((base, Some(i)))) => format!("%{base}#{i}"),
            _ => "%<unknown>".into(),
        }
    }

    /// The left-hand side of an op: `%r:2`, or `%a, %b`, or `%y`.
    pub fn results(&self, results: &[ValueId]) -> String {
        let group = results.iter().map(|v| self.names.get(v.0 as usize).cloned().flatten()).collect::<Vec<_>>();
        if let Some(Some((base, Some(0)))) = group.first()
            && results.len() > 1
            && group.iter().enumerate().all(|(i, g)| matches!(g, Some((b, Some(j))) if b == base && *j == i))
        {
            return format!("%{base}:{}", results.len());
        }
        results.iter().map(|&v| self.get(v)).collect::<Vec<_>>().join(", ")
    }
}

struct Namer<'f> {
    f: &'f Function,
    names: Vec<Option<(String, Option<usize>)>>,
    next: usize,
    /// Guards against a block listed twice in malformed IR.
    seen: Vec<bool>,
}

impl<'f> Namer<'f> {
    fn region(&mut self, r: &Region) {
        for &b in &r.blocks {
            if self.seen.get(b.0 as usize).is_none_or(|&s| s) {
                continue;
            }
            self.seen[b.0 as usize] = true;
            for &a in &self.f.block(b).args {
                self.single(a);
            }
            for &o in &self.f.block(b).ops {
                let op = self.f.op(o);
                self.op_results(&op.results);
                for r in &op.regions {
                    self.region(r);
                }
            }
        }
    }

    /// `None` for an id outside the arena, else the value's own name.
    fn given(&self, v: ValueId) -> Option<Option<&'f str>> {
        let f = self.f;
        ((v.0 as usize) < f.num_values()).then(|| f.value(v).name.as_deref())
    }

    fn base(&mut self, name: Option<&str>) -> String {
        name.map(str::to_string).unwrap_or_else(|| {
            self.next += 1;
            (self.next - 1).to_string()
        })
    }

    fn single(&mut self, v: ValueId) {
        if let Some(name) = self.given(v) {
            let base = self.base(name);
            self.names[v.0 as usize] = Some((base, None));
        }
    }

    /// Several results print as one group `%r:N` when only the first may carry
    /// a name (the group's), so the parser recreates exactly those names;
    /// otherwise each result prints on its own (`%a, %b = …`).
    fn op_results(&mut self, results: &[ValueId]) {
        let grouped = results.len() > 1 && results[1..].iter().all(|&v| self.given(v) == Some(None));
        match (grouped, results.first().and_then(|&v| self.given(v))) {
            (true, Some(first)) => {
                let base = self.base(first);
                for (i, &v) in results.iter().enumerate() {
                    self.names[v.0 as usize] = Some((base.clone(), Some(i)));
                }
            }
            _ => results.iter().for_each(|&v| self.single(v)),
        }
    }
}

/// Writes one function's text.
struct Printer<'f, 'o> {
    f: &'f Function,
    names: ValueNames,
    out: &'o mut String,
    seen: Vec<bool>,
}

impl<'f, 'o> Printer<'f, 'o> {
    fn new(f: &'f Function, out: &'o mut String) -> Self {
        Printer { f, names: ValueNames::new(f), out, seen: vec![false; f.num_blocks()] }
    }

    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push_str("  ");
        }
    }

    fn ty(&self, v: ValueId) -> String {
        if (v.0 as usize) < self.f.num_values() { self.f.ty(v).to_string() } else { "<<unknown>>".into() }
    }

    fn function(&mut self, level: usize) {
        let f = self.f;
        self.indent(level);
        self.out.push_str("func.func @");
        write_symbol(self.out, &f.name);
        self.out.push('(');
        let args = f.body.blocks.first().map(|&b| f.block(b).args.as_slice()).unwrap_or_default();
        for (i, &a) in args.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            let _ = write!(self.out, "{}: {}", self.names.get(a), self.ty(a));
            if let Some(attrs) = f.arg_attrs.get(i).filter(|a| !a.is_empty()) {
                self.out.push(' ');
                write_dict(self.out, attrs);
            }
        }
        self.out.push(')');
        match f.result_types.as_slice() {
            [] => {}
            [t] => {
                let _ = write!(self.out, " -> {t}");
            }
            ts => {
                let _ = write!(self.out, " -> ({})", join(ts));
            }
        }
        if !f.attrs.is_empty() {
            self.out.push_str(" attributes ");
            write_dict(self.out, &f.attrs);
        }
        self.out.push_str(" {\n");
        for (i, &b) in f.body.blocks.iter().enumerate() {
            self.block(b, i, i > 0, level);
        }
        self.indent(level);
        self.out.push_str("}\n");
    }

    /// A block's header (`^bbN(…):` at the parent's level, unless `header`
    /// is false for the function's entry block) and its ops one level deeper.
    fn block(&mut self, b: BlockId, index: usize, header: bool, level: usize) {
        if self.seen.get(b.0 as usize).is_none_or(|&s| s) {
            self.indent(level + 1);
            self.out.push_str("// error: this block is listed more than once\n");
            return;
        }
        self.seen[b.0 as usize] = true;
        let data = self.f.block(b);
        if header {
            self.indent(level);
            let _ = write!(self.out, "^bb{index}");
            if !data.args.is_empty() {
                let args: Vec<String> = data.args.iter().map(|&a| format!("{}: {}", self.names.get(a), self.ty(a))).collect();
                let _ = write!(self.out, "({})", args.join(", "));
            }
            self.out.push_str(":\n");
        }
        for &o in &data.ops {
            self.op(o, level + 1);
        }
    }

    fn op(&mut self, o: OpId, level: usize) {
        let op = self.f.op(o);
        self.indent(level);
        if !op.results.is_empty() {
            let _ = write!(self.out, "{} = ", self.names.results(&op.results));
        }
        let operands: Vec<String> = op.operands.iter().map(|&v| self.names.get(v)).collect();
        let operand_types: Vec<String> = op.operands.iter().map(|&v| self.ty(v)).collect();
        let plain = op.results.is_empty() && op.attrs.is_empty() && op.regions.is_empty();
        if op.kind == OpKind::Return && plain {
            self.out.push_str("return");
            if !operands.is_empty() {
                let _ = write!(self.out, " {} : {}", operands.join(", "), operand_types.join(", "));
            }
            self.out.push('\n');
            return;
        }
        let _ = write!(self.out, "\"{}\"({})", op.kind.name(), operands.join(", "));
        if !op.regions.is_empty() {
            self.out.push_str(" (");
            for (i, r) in op.regions.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                self.out.push_str("{\n");
                for (j, &b) in r.blocks.iter().enumerate() {
                    self.block(b, j, true, level);
                }
                self.indent(level);
                self.out.push('}');
            }
            self.out.push(')');
        }
        if !op.attrs.is_empty() {
            self.out.push(' ');
            write_dict(self.out, &op.attrs);
        }
        let results: Vec<String> = op.results.iter().map(|&v| self.ty(v)).collect();
        let results = if results.len() == 1 { results[0].clone() } else { format!("({})", results.join(", ")) };
        let _ = writeln!(self.out, " : ({}) -> {results}", operand_types.join(", "));
    }
}

/// The label of an op in diagnostics, as its line starts in the printed IR:
/// `%3 = "dl.matmul"` or `return`.
pub(crate) fn op_label(f: &Function, names: &ValueNames, o: OpId) -> String {
    let op = f.op(o);
    let name = if op.kind == OpKind::Return { "return".to_string() } else { format!("\"{}\"", op.kind.name()) };
    if op.results.is_empty() { name } else { format!("{} = {name}", names.results(&op.results)) }
}

fn join(ts: &[Type]) -> String {
    ts.iter().map(Type::to_string).collect::<Vec<_>>().join(", ")
}

/// MLIR's bare identifiers: `[A-Za-z_][A-Za-z0-9_$.]*`.
fn is_bare_id(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && cs.all(|c| c.is_ascii_alphanumeric() || "_$.".contains(c))
}

fn write_symbol(out: &mut String, name: &str) {
    if is_bare_id(name) { out.push_str(name) } else { write_str(out, name) }
}

/// A string literal with MLIR's escapes; non-ASCII text stays as is.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_dict(out: &mut String, attrs: &Attrs) {
    out.push('{');
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_bare_id(k) { out.push_str(k) } else { write_str(out, k) }
        out.push_str(" = ");
        write_attr(out, v);
    }
    out.push('}');
}

fn write_attr(out: &mut String, a: &Attr) {
    match a {
        Attr::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Attr::Float(v) if v.is_finite() => out.push_str(&float_repr(format!("{v:?}"))),
        Attr::Float(v) => {
            let _ = write!(out, "0x{:016X} : f64", v.to_bits());
        }
        Attr::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Attr::Str(s) => write_str(out, s),
        Attr::Type(t) => {
            let _ = write!(out, "{t}");
        }
        Attr::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_attr(out, x);
            }
            out.push(']');
        }
        Attr::Dict(d) => write_dict(out, d),
        Attr::Dense(d) => write_dense(out, d),
        Attr::Map(m) => {
            let _ = write!(out, "affine_map<{m}>");
        }
    }
}

/// Rust's shortest round-trip form, with the `.0` MLIR requires before any
/// exponent (`1e-8` becomes `1.0e-8`).
fn float_repr(mut s: String) -> String {
    if !s.contains('.') {
        match s.find(['e', 'E']) {
            Some(i) => s.insert_str(i, ".0"),
            None => s.push_str(".0"),
        }
    }
    s
}

/// `dense<1.0> : tensor<…>` for a splat, nested lists by shape otherwise, and
/// `dense<>` for no elements (the only empty form MLIR accepts for every shape).
fn write_dense(out: &mut String, d: &DenseAttr) {
    out.push_str("dense<");
    let n = d.data.len();
    if n == 1 {
        write_elem(out, &d.data, 0, d.ty.dtype);
    } else if n > 1 {
        let dims: Vec<u64> = d.ty.shape.iter().filter_map(|x| x.as_static()).collect();
        let mut next = 0;
        if d.ty.num_elements() == Some(n as u64) {
            write_nested(out, d, &dims, &mut next);
        } else {
            write_nested(out, d, &[n as u64], &mut next);
        }
    }
    let _ = write!(out, "> : {}", d.ty);
}

fn write_nested(out: &mut String, d: &DenseAttr, dims: &[u64], next: &mut usize) {
    let Some((&size, inner)) = dims.split_first() else {
        write_elem(out, &d.data, *next, d.ty.dtype);
        *next += 1;
        return;
    };
    out.push('[');
    for i in 0..size {
        if i > 0 {
            out.push_str(", ");
        }
        write_nested(out, d, inner, next);
    }
    out.push(']');
}

/// Floats of an f32 tensor print as the f32 they hold, so the text is short
/// and reads back to the same bits.
fn write_elem(out: &mut String, data: &DenseData, i: usize, dtype: DType) {
    match data {
        DenseData::Float(v) => {
            let Some(&x) = v.get(i) else { return };
            if dtype == DType::F32 {
                let f = x as f32;
                if f.is_finite() {
                    out.push_str(&float_repr(format!("{f:?}")));
                } else {
                    let _ = write!(out, "0x{:08X}", f.to_bits());
                }
            } else if x.is_finite() {
                out.push_str(&float_repr(format!("{x:?}")));
            } else {
                let _ = write!(out, "0x{:016X}", x.to_bits());
            }
        }
        DenseData::Int(v) => {
            if let Some(x) = v.get(i) {
                let _ = write!(out, "{x}");
            }
        }
        DenseData::Bool(v) => {
            if let Some(x) = v.get(i) {
                let _ = write!(out, "{x}");
            }
        }
    }
}
