//! The IR's containers: a module of functions; each function owns arenas of
//! values, ops and blocks, addressed by small copyable ids.
//!
//! Arenas (rather than pointers) make the IR cheap to clone and trivially
//! `Send`, and let analyses keep side tables indexed by id. Removing an op only
//! unlinks it from its block; its arena slot stays, so ids never dangle.

use crate::attr::Attrs;
use crate::registry::OpKind;
use crate::types::Type;
use std::collections::HashSet;

/// A value defined by a block argument or an op result.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);
/// An op in a function's arena.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u32);
/// A block in a function's arena.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

/// Where a value comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The `index`-th argument of `block`.
    BlockArg {
        /// The block.
        block: BlockId,
        /// Argument position.
        index: u32,
    },
    /// The `index`-th result of `op`.
    OpResult {
        /// The defining op.
        op: OpId,
        /// Result position.
        index: u32,
    },
}

/// An SSA value: its type, an optional readable name, and its definition.
#[derive(Clone, Debug)]
pub struct ValueData {
    /// The value's type.
    pub ty: Type,
    /// The name printed as `%name`; unnamed values print as numbers.
    pub name: Option<String>,
    /// Where it is defined.
    pub def: ValueDef,
}

/// An operation: kind, operands, results, attributes and nested regions.
#[derive(Clone, Debug)]
pub struct OpData {
    /// Which registered op this is.
    pub kind: OpKind,
    /// Operand values, in order.
    pub operands: Vec<ValueId>,
    /// Result values, in order.
    pub results: Vec<ValueId>,
    /// Attributes (only the ones that differ from the registry's defaults need be present).
    pub attrs: Attrs,
    /// Nested regions (kernel bodies, loops).
    pub regions: Vec<Region>,
    /// The block the op was created in.
    pub parent: BlockId,
}

/// A straight-line list of ops with arguments.
#[derive(Clone, Debug, Default)]
pub struct BlockData {
    /// Block arguments (the function arguments, for the entry block).
    pub args: Vec<ValueId>,
    /// Ops in execution order.
    pub ops: Vec<OpId>,
}

/// A list of blocks; the first is the entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// Blocks, entry first.
    pub blocks: Vec<BlockId>,
}

/// A function: `func.func @name(args) -> results { body }`.
#[derive(Clone, Debug)]
pub struct Function {
    /// Symbol name, printed `@name`.
    pub name: String,
    /// Declared result types; the body's `return` must match them.
    pub result_types: Vec<Type>,
    /// One attribute dictionary per argument (`{dl.param = ...}`).
    pub arg_attrs: Vec<Attrs>,
    /// Function attributes (`attributes {dl.outputs = [...]}`).
    pub attrs: Attrs,
    /// The body; its entry block's arguments are the function arguments.
    pub body: Region,
    values: Vec<ValueData>,
    ops: Vec<OpData>,
    blocks: Vec<BlockData>,
}

/// A module: an ordered list of functions.
#[derive(Clone, Debug, Default)]
pub struct Module {
    /// Functions in print order.
    pub functions: Vec<Function>,
}

impl Module {
    /// An empty module.
    pub fn new() -> Self {
        Module::default()
    }

    /// The function named `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The function named `name`, mutably.
    pub fn function_mut(&mut self, name: &str) -> Option<&mut Function> {
        self.functions.iter_mut().find(|f| f.name == name)
    }
}

impl Function {
    /// A function with an empty entry block and no arguments.
    pub fn new(name: impl Into<String>) -> Self {
        let mut f = Function {
            name: name.into(),
            result_types: Vec::new(),
            arg_attrs: Vec::new(),
            attrs: Attrs::new(),
            body: Region::default(),
            values: Vec::new(),
            ops: Vec::new(),
            blocks: Vec::new(),
        };
        let entry = f.new_block();
        f.body.blocks.push(entry);
        f
    }

    /// The entry block.
    pub fn entry(&self) -> BlockId {
        self.body.blocks[0]
    }

    /// The function arguments (the entry block's arguments).
    pub fn args(&self) -> &[ValueId] {
        &self.blocks[self.entry().0 as usize].args
    }

    /// Adds a function argument with its attributes.
    pub fn add_arg(&mut self, ty: Type, name: Option<&str>, attrs: Attrs) -> ValueId {
        let entry = self.entry();
        self.arg_attrs.push(attrs);
        self.add_block_arg(entry, ty, name)
    }

    /// Creates an empty block that no region holds yet.
    pub fn new_block(&mut self) -> BlockId {
        self.blocks.push(BlockData::default());
        BlockId(self.blocks.len() as u32 - 1)
    }

    /// Appends an argument to `block`.
    pub fn add_block_arg(&mut self, block: BlockId, ty: Type, name: Option<&str>) -> ValueId {
        let index = self.blocks[block.0 as usize].args.len() as u32;
        let v = self.push_value(ty, ValueDef::BlockArg { block, index });
        self.blocks[block.0 as usize].args.push(v);
        if let Some(n) = name {
            self.set_name(v, n);
        }
        v
    }

    fn push_value(&mut self, ty: Type, def: ValueDef) -> ValueId {
        self.values.push(ValueData { ty, name: None, def });
        ValueId(self.values.len() as u32 - 1)
    }

    /// Appends an op to `block` with the given result types; returns its id.
    /// No checks: the [`crate::Builder`] infers types, the verifier checks.
    pub fn append_op(
        &mut self,
        block: BlockId,
        kind: OpKind,
        operands: Vec<ValueId>,
        attrs: Attrs,
        result_types: Vec<Type>,
        regions: Vec<Region>,
    ) -> OpId {
        let id = OpId(self.ops.len() as u32);
        let results = result_types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| self.push_value(ty, ValueDef::OpResult { op: id, index: i as u32 }))
            .collect();
        self.ops.push(OpData { kind, operands, results, attrs, regions, parent: block });
        self.blocks[block.0 as usize].ops.push(id);
        id
    }

    /// Replaces `block`'s op list (ops already created in this function, e.g.
    /// appended elsewhere and now put in their final order).
    pub fn set_block_ops(&mut self, block: BlockId, ops: Vec<OpId>) {
        for &o in &ops {
            self.ops[o.0 as usize].parent = block;
        }
        self.blocks[block.0 as usize].ops = ops;
    }

    /// Unlinks `op` from its block (its arena slot stays).
    pub fn remove_op(&mut self, op: OpId) {
        let parent = self.ops[op.0 as usize].parent;
        self.blocks[parent.0 as usize].ops.retain(|&o| o != op);
    }

    /// Gives `v` a printable name, made unique in this function and valid for
    /// MLIR (`[A-Za-z_.$-][A-Za-z0-9_.$-]*`): invalid characters become `_`, a
    /// leading digit gets a `v` prefix, a taken name gets a `_1`, `_2`… suffix.
    pub fn set_name(&mut self, v: ValueId, name: &str) {
        let base = sanitize_name(name);
        let taken: HashSet<&str> = self
            .values
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != v.0 as usize)
            .filter_map(|(_, d)| d.name.as_deref())
            .collect();
        let mut candidate = base.clone();
        let mut k = 1;
        while taken.contains(candidate.as_str()) {
            candidate = format!("{base}_{k}");
            k += 1;
        }
        self.values[v.0 as usize].name = Some(candidate);
    }

    /// Sets a name the caller has already checked to be valid and unused in
    /// this function. The parser uses it: [`Function::set_name`] scans every
    /// value for clashes, which is quadratic over a whole function.
    pub(crate) fn set_name_unchecked(&mut self, v: ValueId, name: String) {
        self.values[v.0 as usize].name = Some(name);
    }

    /// Removes a value's name (it prints as a number).
    pub fn clear_name(&mut self, v: ValueId) {
        self.values[v.0 as usize].name = None;
    }

    /// A value's data.
    pub fn value(&self, v: ValueId) -> &ValueData {
        &self.values[v.0 as usize]
    }

    /// A value's type.
    pub fn ty(&self, v: ValueId) -> &Type {
        &self.values[v.0 as usize].ty
    }

    /// Sets a value's type (for passes that refine types).
    pub fn set_ty(&mut self, v: ValueId, ty: Type) {
        self.values[v.0 as usize].ty = ty;
    }

    /// An op's data.
    pub fn op(&self, o: OpId) -> &OpData {
        &self.ops[o.0 as usize]
    }

    /// An op's data, mutably.
    pub fn op_mut(&mut self, o: OpId) -> &mut OpData {
        &mut self.ops[o.0 as usize]
    }

    /// A block's data.
    pub fn block(&self, b: BlockId) -> &BlockData {
        &self.blocks[b.0 as usize]
    }

    /// Number of value slots (ids are `0..num_values()`), for side tables.
    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// Number of op slots (ids are `0..num_ops()`), including unlinked ones.
    pub fn num_ops(&self) -> usize {
        self.ops.len()
    }

    /// Number of block slots.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The ops of the entry block, in order.
    pub fn body_ops(&self) -> &[OpId] {
        &self.blocks[self.entry().0 as usize].ops
    }

    /// Every linked op, depth-first in program order (nested regions after their op).
    pub fn walk(&self) -> Vec<OpId> {
        let mut out = Vec::new();
        self.walk_region(&self.body, &mut out);
        out
    }

    fn walk_region(&self, r: &Region, out: &mut Vec<OpId>) {
        for &b in &r.blocks {
            for &o in &self.blocks[b.0 as usize].ops {
                out.push(o);
                for sub in &self.ops[o.0 as usize].regions {
                    self.walk_region(sub, out);
                }
            }
        }
    }

    /// The entry block's terminator, if the body ends in `func.return`.
    pub fn return_op(&self) -> Option<OpId> {
        let last = *self.body_ops().last()?;
        (self.op(last).kind == OpKind::Return).then_some(last)
    }

    /// The values the function returns.
    pub fn returned_values(&self) -> Vec<ValueId> {
        self.return_op().map(|r| self.op(r).operands.clone()).unwrap_or_default()
    }

    /// The argument's attributes.
    pub fn arg_attrs(&self, index: usize) -> Option<&Attrs> {
        self.arg_attrs.get(index)
    }

    /// Replaces every use of `from` by `to` in linked ops.
    pub fn replace_all_uses(&mut self, from: ValueId, to: ValueId) {
        for o in self.walk() {
            for x in &mut self.ops[o.0 as usize].operands {
                if *x == from {
                    *x = to;
                }
            }
        }
    }
}

/// Makes `name` a valid, non-numeric MLIR SSA name.
pub fn sanitize_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.$-".contains(c) { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'v');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DType, TensorType};

    #[test]
    fn names_are_made_unique_and_valid() {
        let mut f = Function::new("f");
        let t: Type = TensorType::fixed(&[2], DType::F32).into();
        let a = f.add_arg(t.clone(), Some("fc1.weight"), Attrs::new());
        let b = f.add_arg(t.clone(), Some("fc1.weight"), Attrs::new());
        let c = f.add_arg(t, Some("3 x"), Attrs::new());
        assert_eq!(f.value(a).name.as_deref(), Some("fc1.weight"));
        assert_eq!(f.value(b).name.as_deref(), Some("fc1.weight_1"));
        assert_eq!(f.value(c).name.as_deref(), Some("v3_x"));
    }
}
