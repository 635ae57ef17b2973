//! Checks that a module is well formed, collecting every problem.
//!
//! The parser trusts the types written in the text and the builder trusts its
//! caller's attributes; this is where both meet the registry. Each op is
//! re-inferred through [`crate::OpKind::infer`] (operand count, attributes, shape
//! rule) and must produce exactly the result types it carries, so a pass that
//! rewrites IR, or a person editing a `.mlir` file, gets the shape rule's own
//! reason when a type is wrong. The verifier knows no op by name: the only op
//! it treats specially is the terminator, found by its category.
//!
//! Errors name the function and the op as the printed IR writes them
//! (`in @forward, op '%3 = "dl.matmul"': …`), so they can be found by search.

use crate::attr::{Attr, DenseData};
use crate::module::{BlockId, Function, Module, OpId, Region, ValueDef, ValueId};
use crate::print::{ValueNames, op_label};
use crate::registry::OpKind;
use crate::signature::Signature;
use crate::types::{DType, Type};
use std::collections::HashSet;
use std::fmt;

/// One problem found by the verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The function it is in.
    pub function: String,
    /// The op, as its printed line starts (`%3 = "dl.matmul"`), when it concerns one op.
    pub op: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Some(op) => write!(f, "in @{}, op '{op}': {}", self.function, self.message),
            None => write!(f, "in @{}: {}", self.function, self.message),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies every function, and that function names are unique.
pub fn verify_module(m: &Module) -> Result<(), Vec<VerifyError>> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for f in &m.functions {
        if !seen.insert(f.name.as_str()) {
            errors.push(VerifyError { function: f.name.clone(), op: None, message: format!("function @{} is defined more than once", f.name) });
        }
        if let Err(e) = verify_function(f) {
            errors.extend(e);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Verifies one function: structure, SSA dominance, every op against the
/// registry, the terminator, and the signature conventions.
pub fn verify_function(f: &Function) -> Result<(), Vec<VerifyError>> {
    let mut v = Verifier {
        f,
        names: ValueNames::new(f),
        errors: Vec::new(),
        anywhere: vec![false; f.num_values()],
        defined: vec![false; f.num_values()],
        visible: vec![false; f.num_values()],
        scope: Vec::new(),
        block_seen: vec![false; f.num_blocks()],
        op_seen: vec![false; f.num_ops()],
    };
    let Some(&entry) = f.body.blocks.first() else {
        v.error(None, "the function has no body block".into());
        return Err(v.errors);
    };
    if f.body.blocks.len() > 1 {
        v.error(None, format!("the function body has {} blocks; only a single block is supported", f.body.blocks.len()));
    }
    v.collect_defs(&f.body, &mut vec![false; f.num_blocks()]);
    v.region(&f.body, None);
    if (entry.0 as usize) < f.num_blocks() {
        v.terminator(entry);
        v.signature(entry);
    }
    if v.errors.is_empty() { Ok(()) } else { Err(v.errors) }
}

struct Verifier<'f> {
    f: &'f Function,
    names: ValueNames,
    errors: Vec<VerifyError>,
    /// Defined somewhere in the body (to tell "used too early" from "undefined").
    anywhere: Vec<bool>,
    /// Defined so far in the walk.
    defined: Vec<bool>,
    /// Defined in the current block or an enclosing one.
    visible: Vec<bool>,
    /// Visible values in definition order, popped when their block ends.
    scope: Vec<ValueId>,
    block_seen: Vec<bool>,
    op_seen: Vec<bool>,
}

impl Verifier<'_> {
    fn error(&mut self, op: Option<OpId>, message: String) {
        let op = op.map(|o| op_label(self.f, &self.names, o));
        self.errors.push(VerifyError { function: self.f.name.clone(), op, message });
    }

    fn valid(&self, v: ValueId) -> bool {
        (v.0 as usize) < self.f.num_values()
    }

    /// A value as the printed IR names it, or by id when the body never defines it.
    fn name(&self, v: ValueId) -> String {
        match self.names.get(v) {
            n if n != "%<unknown>" => n,
            _ if self.valid(v) && self.f.value(v).name.is_some() => format!("%{}", self.f.value(v).name.as_deref().unwrap_or("")),
            _ => format!("value #{}", v.0),
        }
    }

    fn collect_defs(&mut self, r: &Region, seen: &mut Vec<bool>) {
        for &b in &r.blocks {
            if seen.get(b.0 as usize).is_none_or(|&s| s) {
                continue;
            }
            seen[b.0 as usize] = true;
            let block = self.f.block(b);
            for &a in &block.args {
                if let Some(x) = self.anywhere.get_mut(a.0 as usize) {
                    *x = true;
                }
            }
            for &o in &block.ops {
                let op = self.f.op(o);
                for &x in &op.results {
                    if let Some(x) = self.anywhere.get_mut(x.0 as usize) {
                        *x = true;
                    }
                }
                for sub in &op.regions {
                    self.collect_defs(sub, seen);
                }
            }
        }
    }

    /// Walks a region; `parent` is the op owning it (`None` for the body).
    fn region(&mut self, r: &Region, parent: Option<OpId>) {
        for (j, &b) in r.blocks.iter().enumerate() {
            match self.block_seen.get(b.0 as usize) {
                None => {
                    self.error(parent, format!("a region lists block #{}, which does not exist", b.0));
                    continue;
                }
                Some(true) => {
                    self.error(parent, format!("block #{} is listed in more than one region", b.0));
                    continue;
                }
                Some(false) => self.block_seen[b.0 as usize] = true,
            }
            let mark = self.scope.len();
            let block = self.f.block(b);
            for (i, &a) in block.args.iter().enumerate() {
                self.define(a, ValueDef::BlockArg { block: b, index: i as u32 }, parent);
            }
            if parent.is_some() && block.ops.is_empty() {
                self.error(parent, format!("block ^bb{j} of a region is empty; MLIR requires at least one op in every block"));
            }
            for &o in &block.ops {
                self.op(o, b, parent.is_none());
            }
            for v in self.scope.drain(mark..) {
                self.visible[v.0 as usize] = false;
            }
        }
    }

    fn define(&mut self, v: ValueId, def: ValueDef, op: Option<OpId>) {
        if !self.valid(v) {
            self.error(op, format!("defines value #{}, which does not exist", v.0));
            return;
        }
        if self.defined[v.0 as usize] {
            self.error(op, format!("value {} is defined more than once", self.name(v)));
            return;
        }
        if self.f.value(v).def != def {
            self.error(op, format!("value {} records its definition as {:?}, but it is defined at {def:?}", self.name(v), self.f.value(v).def));
        }
        self.defined[v.0 as usize] = true;
        self.visible[v.0 as usize] = true;
        self.scope.push(v);
    }

    fn op(&mut self, o: OpId, block: BlockId, in_body: bool) {
        if std::mem::replace(&mut self.op_seen[o.0 as usize], true) {
            self.error(Some(o), "the op is listed more than once".into());
            return;
        }
        let op = self.f.op(o);
        if op.parent != block {
            self.error(Some(o), format!("the op records block #{} as its parent, but block #{} holds it", op.parent.0, block.0));
        }
        if op.kind == OpKind::Return && !in_body {
            self.error(Some(o), "'return' is only allowed at the end of the function body".into());
        }
        if op.kind == OpKind::Yield && in_body {
            self.error(Some(o), "'kernel.yield' is only allowed at the end of a kernel.generic body".into());
        }
        if op.kind == OpKind::ScalarConstant && in_body {
            self.error(Some(o), "'kernel.constant' is only allowed in a kernel.generic body (use dl.constant for tensors)".into());
        }
        let mut types_known = true;
        for (i, &v) in op.operands.iter().enumerate() {
            let problem = if !self.valid(v) {
                Some("does not exist")
            } else if self.visible[v.0 as usize] {
                None
            } else if self.defined[v.0 as usize] {
                Some("is not visible here: it is defined in another block or region")
            } else if self.anywhere[v.0 as usize] {
                Some("is used before its definition")
            } else {
                Some("is not defined in this function (was its op removed?)")
            };
            if let Some(p) = problem {
                self.error(Some(o), format!("operand #{i} ({}) {p}", self.name(v)));
            }
            types_known &= self.valid(v);
        }
        if types_known && op.results.iter().all(|&r| self.valid(r)) {
            self.check_types(o);
        }
        for (k, a) in &op.attrs {
            if let Some(m) = dense_range_error(a) {
                self.error(Some(o), format!("attribute '{k}': {m}"));
            }
        }
        match op.kind.def().region {
            Some(check) => {
                if let Err(m) = check(self.f, o) {
                    self.error(Some(o), m);
                }
            }
            None if !op.regions.is_empty() => self.error(Some(o), format!("'{}' takes no regions", op.kind.name())),
            None => {}
        }
        for r in &op.regions {
            self.region(r, Some(o));
        }
        for (i, &r) in op.results.iter().enumerate() {
            self.define(r, ValueDef::OpResult { op: o, index: i as u32 }, Some(o));
        }
    }

    /// Re-infers the op through the registry and compares with its result types.
    fn check_types(&mut self, o: OpId) {
        let op = self.f.op(o);
        let operands: Vec<Type> = op.operands.iter().map(|&v| self.f.ty(v).clone()).collect();
        let actual: Vec<Type> = op.results.iter().map(|&v| self.f.ty(v).clone()).collect();
        match op.kind.infer(&operands, &op.attrs) {
            Err(m) => self.error(Some(o), m),
            Ok(inferred) if inferred.len() != actual.len() => {
                self.error(Some(o), format!("has {} result(s), but the op produces {}", actual.len(), inferred.len()));
            }
            Ok(inferred) => {
                for (i, (a, want)) in actual.iter().zip(&inferred).enumerate() {
                    if a != want {
                        let which = if actual.len() == 1 { "result type".to_string() } else { format!("result #{i} type") };
                        self.error(Some(o), format!("{which} {a} does not match the inferred {want}"));
                    }
                }
            }
        }
    }

    /// The body must end with exactly one `return`, whose operands match the
    /// declared result types.
    fn terminator(&mut self, entry: BlockId) {
        let ops = &self.f.block(entry).ops;
        let Some(&last) = ops.last() else {
            self.error(None, "the function body is empty; it must end with 'return'".into());
            return;
        };
        for &o in &ops[..ops.len() - 1] {
            if self.f.op(o).kind == OpKind::Return {
                self.error(Some(o), "'return' must be the last op of the function body".into());
            }
        }
        if self.f.op(last).kind != OpKind::Return {
            self.error(Some(last), "the function body must end with 'return'".into());
            return;
        }
        let returned = &self.f.op(last).operands;
        let declared = &self.f.result_types;
        if returned.len() != declared.len() {
            let msg = format!("returns {} value(s), but the function declares {} result(s)", returned.len(), declared.len());
            self.error(Some(last), msg);
            return;
        }
        for (i, (&v, want)) in returned.iter().zip(declared).enumerate() {
            if self.valid(v) && self.f.ty(v) != want {
                let msg = format!("returned value #{i} ({}) has type {}, but the function declares {want}", self.name(v), self.f.ty(v));
                self.error(Some(last), msg);
            }
        }
    }

    /// One attribute dictionary per argument, and the `dl.*` conventions.
    fn signature(&mut self, entry: BlockId) {
        let args = &self.f.block(entry).args;
        if self.f.arg_attrs.len() != args.len() {
            self.error(None, format!("has {} argument attribute dictionaries for {} arguments", self.f.arg_attrs.len(), args.len()));
        }
        if args.iter().all(|&a| self.valid(a))
            && let Err(e) = Signature::of(self.f)
        {
            self.error(None, e);
        }
    }
}

/// Dense integers must fit their element type; the printer writes them as
/// stored and MLIR would silently wrap an i32 that does not fit.
fn dense_range_error(a: &Attr) -> Option<String> {
    match a {
        Attr::Dense(d) if d.ty.dtype == DType::I32 => match &d.data {
            DenseData::Int(v) => v.iter().find(|&&x| i32::try_from(x).is_err()).map(|x| format!("dense element {x} does not fit in i32")),
            _ => None,
        },
        Attr::Array(items) => items.iter().find_map(dense_range_error),
        Attr::Dict(d) => d.values().find_map(dense_range_error),
        _ => None,
    }
}
