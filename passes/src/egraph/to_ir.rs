//! The extracted terms back into the function, in place.
//!
//! The entry block is rebuilt in the input's order: each op the e-graph
//! does not model is kept where it was (its operands remapped), and a
//! modeled op's class is emitted where the op stood — by the op itself
//! when the extraction chose its node (so it keeps its id and name), else
//! by a new op that takes over the name. A class is emitted after the
//! classes it reads, once, and only when something needs it: a value
//! nothing reads any more is dropped. `func.return` reads the classes of
//! what it returned.

use super::analysis::Graph;
use super::cost::{Choice, op_cost};
use super::from_ir::Mapping;
use super::lang::{AttrKey, Dl};
use dlc_ir::{Function, OpId, OpKind, Type, ValueId};
use egg::{Id, Language};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the rebuild did.
pub struct Rebuilt {
    /// The new entry-block op list.
    pub ops: Vec<OpId>,
    /// The estimated time of the modeled ops it holds, in picoseconds.
    pub cost: u128,
    /// True when it differs from the input.
    pub changed: bool,
    /// The op computing each class it emitted (an input op kept, or a new
    /// one), in order: what [`super::provenance::resolve`] attributes rules to.
    pub emitted: Vec<(OpId, Id)>,
}

struct Emitter<'a> {
    f: &'a mut Function,
    g: &'a Graph,
    m: &'a Mapping,
    choice: &'a Choice,
    /// The value computing each emitted class.
    value: HashMap<Id, ValueId>,
    /// Modeled input ops by class, in order.
    ops_of_class: BTreeMap<Id, Vec<OpId>>,
    /// Input ops already placed.
    placed: HashSet<OpId>,
    /// Input ops being placed (a cycle guard).
    placing: Vec<OpId>,
    order: Vec<OpId>,
    cost: u128,
    /// Classes emitted by a new op, to be named after the input's value.
    renamed: Vec<(Id, ValueId)>,
    emitted: Vec<(OpId, Id)>,
}

/// Rebuilds `f`'s entry block from the choice; `Err` when the choice reads
/// a value before the op that defines it could run (never for extracted
/// terms over the input's own values, but checked, not assumed).
pub fn rebuild(f: &mut Function, g: &Graph, m: &Mapping, choice: &Choice) -> Result<Rebuilt, String> {
    let before: Vec<OpId> = f.body_ops().to_vec();
    let before_operands: Vec<Vec<ValueId>> = before.iter().map(|&o| f.op(o).operands.clone()).collect();
    let mut ops_of_class: BTreeMap<Id, Vec<OpId>> = BTreeMap::new();
    for (o, _) in &m.modeled {
        let c = m.class(g, f.op(*o).results[0]).expect("a modeled op has a class");
        ops_of_class.entry(c).or_default().push(*o);
    }
    let mut e = Emitter { f, g, m, choice, value: HashMap::new(), ops_of_class, placed: HashSet::new(), placing: Vec::new(), order: Vec::new(), cost: 0, renamed: Vec::new(), emitted: Vec::new() };
    for &a in e.f.args().to_vec().iter() {
        let c = m.class(g, a).expect("an argument is a leaf");
        if matches!(choice.node(g, c), Dl::Leaf(i) if m.leaves[*i as usize] == a) {
            e.value.insert(c, a);
        }
    }
    let modeled: HashMap<OpId, Id> = m.modeled.iter().map(|(o, _)| (*o, m.class(g, e.f.op(*o).results[0]).expect("a class"))).collect();
    let needed = needed(g, m, e.f, choice, &before);
    for &o in &before {
        match modeled.get(&o) {
            Some(&c) => {
                if needed.contains(&c) {
                    e.class(c)?;
                }
            }
            None => e.place(o)?,
        }
    }
    let Emitter { f, order, cost, renamed, emitted, .. } = e;
    // A new op takes the name of its class's first named input value whose
    // op is gone.
    let kept: HashSet<OpId> = order.iter().copied().collect();
    let mut dropped_name: HashMap<Id, ValueId> = HashMap::new();
    for (o, _) in &m.modeled {
        let r = f.op(*o).results[0];
        if !kept.contains(o) && f.value(r).name.is_some() {
            dropped_name.entry(m.class(g, r).expect("a class")).or_insert(r);
        }
    }
    for (c, v) in renamed {
        if let Some(old) = dropped_name.remove(&c) {
            let n = f.value(old).name.clone().expect("named");
            f.clear_name(old);
            f.set_name(v, &n);
        }
    }
    let changed = order != before || order.iter().zip(&before_operands).any(|(&o, ops)| f.op(o).operands != *ops);
    Ok(Rebuilt { ops: order, cost, changed, emitted })
}

/// The classes the kept ops and the return read, through the choice.
fn needed(g: &Graph, m: &Mapping, f: &Function, choice: &Choice, ops: &[OpId]) -> HashSet<Id> {
    let modeled: HashSet<OpId> = m.modeled.iter().map(|(o, _)| *o).collect();
    let mut todo: Vec<Id> = ops
        .iter()
        .filter(|o| !modeled.contains(o))
        .flat_map(|&o| reads(f, o))
        .filter_map(|v| m.class(g, v))
        .collect();
    let mut seen = HashSet::new();
    while let Some(c) = todo.pop() {
        if seen.insert(c) {
            todo.extend(choice.node(g, c).children().iter().map(|&ch| g.find(ch)));
        }
    }
    seen
}

/// The values op `o` reads: its operands, and the values its regions'
/// ops read (those defined outside are the entry block's).
pub(crate) fn reads(f: &Function, o: OpId) -> Vec<ValueId> {
    let mut out = f.op(o).operands.clone();
    let mut todo: Vec<OpId> = f.op(o).regions.iter().flat_map(|r| r.blocks.iter().flat_map(|&b| f.block(b).ops.clone())).collect();
    while let Some(n) = todo.pop() {
        out.extend(f.op(n).operands.iter().copied());
        todo.extend(f.op(n).regions.iter().flat_map(|r| r.blocks.iter().flat_map(|&b| f.block(b).ops.clone())));
    }
    out
}

impl Emitter<'_> {
    /// The value of class `c`, emitting it (and what it reads) if needed.
    fn class(&mut self, c: Id) -> Result<ValueId, String> {
        let c = self.g.find(c);
        if let Some(&v) = self.value.get(&c) {
            return Ok(v);
        }
        let v = match self.choice.node(self.g, c).clone() {
            Dl::Leaf(i) => {
                let v = self.m.leaves[i as usize];
                if let Some(o) = self.m.leaf_op(self.f, i) {
                    self.place(o)?;
                }
                v
            }
            Dl::Op { kind, attrs, children } => {
                let operands = children.iter().map(|&ch| self.class(ch)).collect::<Result<Vec<_>, _>>()?;
                let child_classes: Vec<Id> = children.iter().map(|&ch| self.g.find(ch)).collect();
                let types: Vec<&Type> = child_classes.iter().map(|&d| &self.g[d].data.ty).collect();
                self.cost += u128::from(op_cost(kind, attrs.attrs(), &types, &super::cost::first_uses(&child_classes), &self.g[c].data.ty));
                self.emit_op(c, kind, &attrs, &child_classes, operands)
            }
        };
        self.value.insert(c, v);
        Ok(v)
    }

    /// Reuses an input op of class `c` that is this node, or appends one.
    fn emit_op(&mut self, c: Id, kind: OpKind, attrs: &AttrKey, child_classes: &[Id], operands: Vec<ValueId>) -> ValueId {
        let reuse = self.ops_of_class.get(&c).and_then(|ops| {
            ops.iter().copied().find(|&o| {
                let op = self.f.op(o);
                op.kind == kind
                    && AttrKey::new(kind, &op.attrs).as_ref() == Some(attrs)
                    && op.operands.iter().map(|&v| self.m.class(self.g, v)).eq(child_classes.iter().map(|&x| Some(x)))
            })
        });
        if let Some(o) = reuse {
            self.f.op_mut(o).operands = operands;
            self.order.push(o);
            self.emitted.push((o, c));
            return self.f.op(o).results[0];
        }
        let entry = self.f.entry();
        let ty = self.g[c].data.ty.clone();
        let o = self.f.append_op(entry, kind, operands, attrs.attrs().clone(), vec![ty], Vec::new());
        self.order.push(o);
        self.emitted.push((o, c));
        let v = self.f.op(o).results[0];
        self.renamed.push((c, v));
        v
    }

    /// Places an op the e-graph does not model, after what it reads.
    fn place(&mut self, o: OpId) -> Result<(), String> {
        if self.placed.contains(&o) {
            return Ok(());
        }
        if self.placing.contains(&o) {
            return Err(format!("the extracted terms read a result of {} before it can run", self.f.op(o).kind.name()));
        }
        self.placing.push(o);
        // Every value it reads, its regions' captures included, is emitted
        // first and read under its new name.
        let mut map = HashMap::new();
        for v in reads(self.f, o) {
            if let Some(c) = self.m.class(self.g, v) {
                map.insert(v, self.class(c)?);
            }
        }
        let remap = |ops: &mut Vec<ValueId>| ops.iter_mut().for_each(|v| *v = map.get(v).copied().unwrap_or(*v));
        remap(&mut self.f.op_mut(o).operands);
        let mut todo: Vec<OpId> = self.f.op(o).regions.iter().flat_map(|r| r.blocks.iter().flat_map(|&b| self.f.block(b).ops.clone())).collect();
        while let Some(n) = todo.pop() {
            remap(&mut self.f.op_mut(n).operands);
            todo.extend(self.f.op(n).regions.iter().flat_map(|r| r.blocks.iter().flat_map(|&b| self.f.block(b).ops.clone())));
        }
        self.placing.pop();
        self.placed.insert(o);
        self.order.push(o);
        Ok(())
    }
}
