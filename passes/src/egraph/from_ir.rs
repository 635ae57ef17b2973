//! A function's entry block as an e-graph.
//!
//! Arguments and the results of ops the e-graph does not model (see
//! [`model`]) become leaves; every modeled op becomes a node over its
//! operands' classes. Identical ops land in one class (hash-consing is
//! common-subexpression elimination for free).

use super::analysis::{DlAnalysis, Graph};
use super::lang::{Dl, model};
use dlc_ir::{Function, OpId, ValueDef, ValueId};
use egg::Id;

/// How the function's values map to the e-graph.
pub struct Mapping {
    /// The class of each value of the entry block, by value id.
    pub class_of: Vec<Option<Id>>,
    /// Leaf `i`'s value.
    pub leaves: Vec<ValueId>,
    /// The modeled ops, in order, with their nodes as first added.
    pub modeled: Vec<(OpId, Dl)>,
}

impl Mapping {
    /// The class of `v`, canonical.
    pub fn class(&self, g: &Graph, v: ValueId) -> Option<Id> {
        self.class_of.get(v.0 as usize).copied().flatten().map(|c| g.find(c))
    }

    /// The op that defines leaf `i`, when an op does (not an argument).
    pub fn leaf_op(&self, f: &Function, i: u32) -> Option<OpId> {
        match f.value(self.leaves[i as usize]).def {
            ValueDef::OpResult { op, .. } => Some(op),
            ValueDef::BlockArg { .. } => None,
        }
    }
}

/// The e-graph of `f`'s entry block.
pub fn build(f: &Function) -> (Graph, Mapping) {
    let mut g = Graph::new(DlAnalysis::default());
    let mut m = Mapping { class_of: vec![None; f.num_values()], leaves: Vec::new(), modeled: Vec::new() };
    let leaf = |g: &mut Graph, m: &mut Mapping, v: ValueId| {
        let i = m.leaves.len() as u32;
        m.leaves.push(v);
        g.analysis.leaf_types.push(f.ty(v).clone());
        m.class_of[v.0 as usize] = Some(g.add(Dl::Leaf(i)));
    };
    for &a in f.args() {
        leaf(&mut g, &mut m, a);
    }
    for &o in f.body_ops() {
        let op = f.op(o);
        let children: Option<Vec<Id>> = op.operands.iter().map(|&v| m.class_of[v.0 as usize]).collect();
        match (model(f, op), children) {
            (Some((kind, attrs)), Some(children)) => {
                let node = Dl::op(kind, attrs, children);
                m.class_of[op.results[0].0 as usize] = Some(g.add(node.clone()));
                m.modeled.push((o, node));
            }
            _ => {
                for &r in &op.results {
                    leaf(&mut g, &mut m, r);
                }
            }
        }
    }
    g.rebuild();
    (g, m)
}
