//! Common-subexpression elimination: a pure op that computes what an earlier,
//! dominating op already computed is dropped, and its uses read the earlier
//! result.
//!
//! Two ops compute the same thing when they have the same kind, the same
//! operands (in either order when the registry says the op
//! `is_commutative()`), the same attributes once the registry's defaults are
//! filled in (`{keepdims = false}` is `{}`), and the same result types. Every
//! `dl` op is pure; the terminator and ops with regions are never merged.
//! Autodiff output needs this most: it repeats constants such as
//! `dense<1.0> : tensor<f32>` once per use.
//!
//! The walk follows dominance: an op is looked up among the ops before it in
//! its block and in the blocks that enclose it, never among ops nested in a
//! sibling's region (those do not dominate it).

use crate::Pass;
use crate::rewrite::Subst;
use dlc_ir::{AttrView, Category, Function, OpData, OpKind, Region, Type, ValueId, print_attr};
use std::collections::HashMap;

/// The common-subexpression elimination pass.
pub struct Cse;

/// What makes two ops equal: kind, operands, attributes (printed, defaults
/// filled in, so that floats compare by their bits), result types.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: OpKind,
    operands: Vec<ValueId>,
    attrs: Vec<(String, String)>,
    types: Vec<Type>,
}

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn summary(&self) -> &'static str {
        "merge pure ops with the same kind, operands and attributes (common-subexpression elimination)"
    }

    fn run(&self, f: &mut Function) -> bool {
        let mut subst = Subst::new(f);
        let mut scopes = Vec::new();
        let body = f.body.clone();
        let mut changed = false;
        region(f, &body, &mut subst, &mut scopes, &mut changed);
        changed
    }
}

/// Walks `r` with one scope per block on top of the enclosing ones.
fn region(f: &mut Function, r: &Region, subst: &mut Subst, scopes: &mut Vec<HashMap<Key, Vec<ValueId>>>, changed: &mut bool) {
    for &b in &r.blocks {
        scopes.push(HashMap::new());
        for o in f.block(b).ops.clone() {
            subst.apply(f, o);
            for sub in f.op(o).regions.clone() {
                region(f, &sub, subst, scopes, changed);
            }
            let Some(key) = key(f, f.op(o)) else { continue };
            let earlier = scopes.iter().rev().find_map(|s| s.get(&key));
            match earlier {
                Some(results) => {
                    for (&from, &to) in f.op(o).results.iter().zip(results) {
                        subst.set(from, to);
                    }
                    f.remove_op(o);
                    *changed = true;
                }
                None => {
                    let results = f.op(o).results.clone();
                    scopes.last_mut().expect("a scope per block").insert(key, results);
                }
            }
        }
        scopes.pop();
    }
}

/// The op's key, or `None` for an op that must not be merged.
fn key(f: &Function, op: &OpData) -> Option<Key> {
    if op.kind.category() == Category::Terminator || !op.regions.is_empty() {
        return None;
    }
    let mut operands = op.operands.clone();
    if op.kind.is_commutative() {
        operands.sort();
    }
    let view = AttrView::new(op.kind, &op.attrs);
    let mut attrs: Vec<(String, String)> =
        op.kind.def().attrs.iter().filter_map(|s| view.get(s.name).map(|a| (s.name.to_string(), print_attr(&a)))).collect();
    // An attribute the registry does not declare fails verification; keep it in the key all the same.
    attrs.extend(op.attrs.iter().filter(|(k, _)| !op.kind.def().attrs.iter().any(|s| s.name == *k)).map(|(k, a)| (k.clone(), print_attr(a))));
    let types = op.results.iter().map(|&v| f.ty(v).clone()).collect();
    Some(Key { kind: op.kind, operands, attrs, types })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Attr, Attrs, Builder, DType, DenseAttr, TensorType, attrs};

    fn kinds(f: &Function) -> Vec<OpKind> {
        f.walk().iter().map(|&o| f.op(o).kind).collect()
    }

    #[test]
    fn repeated_constants_and_their_users_merge() {
        let mut f = Function::new("f");
        let x = f.add_arg(TensorType::fixed(&[3], DType::F32).into(), None, Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let (c1, c2) = (b.scalar(1.0, DType::F32), b.scalar(1.0, DType::F32));
        let a1 = b.op(OpKind::Add, &[x, c1], Attrs::new()).unwrap();
        let a2 = b.op(OpKind::Add, &[c2, x], Attrs::new()).unwrap(); // commutative: same as a1
        let s1 = b.op(OpKind::Sub, &[x, c1], Attrs::new()).unwrap();
        let s2 = b.op(OpKind::Sub, &[c2, x], Attrs::new()).unwrap(); // not commutative: kept
        b.ret(&[a1, a2, s1, s2]);
        assert!(Cse.run(&mut f));
        dlc_ir::verify_function(&f).unwrap();
        assert_eq!(f.returned_values(), [a1, a1, s1, s2]);
        assert_eq!(kinds(&f), [OpKind::Constant, OpKind::Add, OpKind::Sub, OpKind::Sub, OpKind::Return]);
        assert!(!Cse.run(&mut f), "a second run finds nothing");
    }

    #[test]
    fn defaults_count_as_written_and_different_values_stay_apart() {
        let mut f = Function::new("f");
        let x = f.add_arg(TensorType::fixed(&[2, 3], DType::F32).into(), None, Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let r1 = b.op(OpKind::ReduceSum, &[x], attrs! {"axes" => Attr::ints(&[1])}).unwrap();
        let r2 = b.op(OpKind::ReduceSum, &[x], attrs! {"axes" => Attr::ints(&[1]), "keepdims" => false}).unwrap();
        let r3 = b.op(OpKind::ReduceSum, &[x], attrs! {"axes" => Attr::ints(&[0])}).unwrap();
        let (p, n) = (b.scalar(0.0, DType::F32), b.scalar(-0.0, DType::F32)); // different bits
        let t = TensorType::fixed(&[], DType::F64);
        let d = b.constant(DenseAttr::splat_f(t, 0.0)).unwrap(); // same value, another type
        b.ret(&[r1, r2, r3, p, n, d]);
        assert!(Cse.run(&mut f));
        let ret = f.returned_values();
        assert_eq!(ret, [r1, r1, r3, p, n, d]);
    }
}
