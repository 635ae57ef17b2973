//! Canonicalization: algebraic identities that shrink the IR without changing
//! a single bit of any result.
//!
//! Each rule is one row of [`RULES`]: its name, its identity, the ops it is
//! rooted at, and a matcher that either forwards an existing value (the op
//! goes away) or rewrites the op in place with other operands or attributes.
//! Rules never create ops, so a rewrite can only make the function smaller.
//! The driver applies a rule only when the op's result keeps exactly its type
//! (a forwarded value must have the result's type; a rewritten op is
//! re-inferred through the registry), so the rewritten IR still verifies.
//!
//! The identities are exact in IEEE arithmetic, not "fast math":
//! - `x * 0 → 0` is **not** a rule for floats: `NaN * 0` and `inf * 0` are
//!   NaN and `-3 * 0` is `-0`. (For integers it would be exact, but would need
//!   a new zero constant of the result's shape; not worth a rule yet.)
//! - `x + 0 → x` holds for integers, but for floats only with `-0.0`:
//!   `-0.0 + +0.0` is `+0.0`, so adding `+0.0` is not the identity on `-0.0`.
//!   Symmetrically, `x - 0 → x` holds for floats only with `+0.0`.
//! - `x * 1`, `x / 1`, `neg(neg x)` and the movement rules are exact for every
//!   value, NaN and infinities included.
//!
//! No rule commutes or reassociates blindly: the commutative forms (`1 * x`)
//! come from asking the registry whether the op `is_commutative()`.

use crate::Pass;
use crate::rewrite::{Elem, Subst, all_elements, constant_of};
use dlc_ir::{Attr, Attrs, AttrView, DenseAttr, Function, OpData, OpId, OpKind, Region, Type, ValueDef, ValueId};

/// The canonicalization pass: applies [`RULES`] to every op until none fires.
pub struct Canonicalize;

/// One rewrite rule.
pub struct Rule {
    /// Its name, as tests and comments refer to it.
    pub name: &'static str,
    /// The identity it applies.
    pub identity: &'static str,
    /// The ops it can rewrite.
    pub roots: &'static [OpKind],
    apply: fn(&Function, &OpData) -> Option<Rewrite>,
}

/// What a rule does to its op.
enum Rewrite {
    /// Uses of the op's result become uses of this value; the op goes away.
    Forward(ValueId),
    /// The op stays, with these operands and attributes.
    Update { operands: Vec<ValueId>, attrs: Attrs },
}

use OpKind as K;

/// Every rule, grouped by topic. A rule is tried only on its `roots`.
pub const RULES: &[Rule] = &[
    // --- arithmetic identities (exact in IEEE arithmetic; see the module docs)
    Rule { name: "add_zero", identity: "x + 0 → x  (ints; floats only for -0.0)", roots: &[K::Add], apply: add_zero },
    Rule { name: "sub_zero", identity: "x - 0 → x  (ints; floats only for +0.0)", roots: &[K::Sub], apply: sub_zero },
    Rule { name: "mul_one", identity: "x * 1 → x", roots: &[K::Mul], apply: one_is_identity },
    Rule { name: "div_one", identity: "x / 1 → x", roots: &[K::Div], apply: one_is_identity },
    Rule { name: "neg_neg", identity: "neg(neg(x)) → x", roots: &[K::Neg], apply: involution },
    // --- selects
    Rule { name: "select_constant", identity: "select(true, a, b) → a;  select(false, a, b) → b", roots: &[K::Select], apply: select_constant },
    Rule { name: "select_same", identity: "select(c, a, a) → a", roots: &[K::Select], apply: select_same },
    // --- movement and conversion
    Rule { name: "reshape_reshape", identity: "reshape(reshape(x, s1), s2) → reshape(x, s2)", roots: &[K::Reshape], apply: reshape_reshape },
    Rule { name: "reshape_noop", identity: "reshape(x : T) : T → x", roots: &[K::Reshape], apply: same_type },
    Rule { name: "broadcast_noop", identity: "broadcast_to(x : T) : T → x", roots: &[K::BroadcastTo], apply: same_type },
    Rule { name: "cast_noop", identity: "cast(x : T) : T → x", roots: &[K::Cast], apply: same_type },
    Rule { name: "transpose_identity", identity: "transpose(x, [0, 1, …, n-1]) → x", roots: &[K::Transpose], apply: transpose_identity },
    Rule { name: "transpose_transpose", identity: "transpose(transpose(x, p), q) → transpose(x, i ↦ p[q[i]])", roots: &[K::Transpose], apply: transpose_transpose },
];

/// A rewrite of one op chains at most this many rules (a transpose of a
/// transpose becomes one transpose, then maybe the identity).
const MAX_REWRITES_PER_OP: usize = 8;

impl Pass for Canonicalize {
    fn name(&self) -> &'static str {
        "canonicalize"
    }

    fn summary(&self) -> &'static str {
        "apply exact algebraic identities (x*1 → x, neg(neg x) → x, reshape/transpose chains, no-op casts)"
    }

    fn run(&self, f: &mut Function) -> bool {
        let mut subst = Subst::new(f);
        let body = f.body.clone();
        let mut changed = false;
        region(f, &body, &mut subst, &mut changed);
        changed
    }
}

fn region(f: &mut Function, r: &Region, subst: &mut Subst, changed: &mut bool) {
    for &b in &r.blocks {
        for o in f.block(b).ops.clone() {
            subst.apply(f, o);
            for sub in f.op(o).regions.clone() {
                region(f, &sub, subst, changed);
            }
            for _ in 0..MAX_REWRITES_PER_OP {
                let Some(rewrite) = first_match(f, o) else { break };
                *changed = true;
                match rewrite {
                    Rewrite::Forward(v) => {
                        subst.set(f.op(o).results[0], v);
                        f.remove_op(o);
                        break;
                    }
                    Rewrite::Update { operands, attrs } => {
                        let op = f.op_mut(o);
                        op.operands = operands;
                        op.attrs = attrs;
                    }
                }
            }
        }
    }
}

/// The first rule that fires on `o` and keeps its result type.
fn first_match(f: &Function, o: OpId) -> Option<Rewrite> {
    let op = f.op(o);
    if op.results.len() != 1 || !op.regions.is_empty() {
        return None;
    }
    let result_ty = f.ty(op.results[0]);
    RULES.iter().filter(|r| r.roots.contains(&op.kind)).find_map(|r| {
        let rw = (r.apply)(f, op)?;
        let keeps_type = match &rw {
            Rewrite::Forward(v) => f.ty(*v) == result_ty,
            Rewrite::Update { operands, attrs } => {
                let types: Vec<Type> = operands.iter().map(|&v| f.ty(v).clone()).collect();
                op.kind.infer(&types, attrs).is_ok_and(|t| t == [result_ty.clone()])
            }
        };
        keeps_type.then_some(rw)
    })
}

// --- matchers -----------------------------------------------------------

/// The op defining `v`, when an op does.
fn def(f: &Function, v: ValueId) -> Option<&OpData> {
    match f.value(v).def {
        ValueDef::OpResult { op, .. } => Some(f.op(op)),
        ValueDef::BlockArg { .. } => None,
    }
}

/// `x` when the op is `x ∘ e` with `e` a constant satisfying `is_identity`,
/// or `e ∘ x` and the registry says the op is commutative.
fn identity_operand(f: &Function, op: &OpData, is_identity: impl Fn(&DenseAttr) -> bool) -> Option<ValueId> {
    let [x, y] = op.operands[..] else { return None };
    if constant_of(f, y).is_some_and(|c| is_identity(&c)) {
        return Some(x);
    }
    (op.kind.is_commutative() && constant_of(f, x).is_some_and(|c| is_identity(&c))).then_some(y)
}

fn add_zero(f: &Function, op: &OpData) -> Option<Rewrite> {
    let zero = |c: &DenseAttr| all_elements(c, |e| matches!(e, Elem::Int(0)) || matches!(e, Elem::Float(x) if x == 0.0 && x.is_sign_negative()));
    identity_operand(f, op, zero).map(Rewrite::Forward)
}

fn sub_zero(f: &Function, op: &OpData) -> Option<Rewrite> {
    let zero = |c: &DenseAttr| all_elements(c, |e| matches!(e, Elem::Int(0)) || matches!(e, Elem::Float(x) if x == 0.0 && x.is_sign_positive()));
    identity_operand(f, op, zero).map(Rewrite::Forward)
}

fn one_is_identity(f: &Function, op: &OpData) -> Option<Rewrite> {
    let one = |c: &DenseAttr| all_elements(c, |e| matches!(e, Elem::Int(1)) || matches!(e, Elem::Float(x) if x == 1.0));
    identity_operand(f, op, one).map(Rewrite::Forward)
}

/// `f(f(x)) = x` for an op that is its own inverse.
fn involution(f: &Function, op: &OpData) -> Option<Rewrite> {
    let inner = def(f, op.operands[0])?;
    (inner.kind == op.kind).then(|| Rewrite::Forward(inner.operands[0]))
}

fn select_constant(f: &Function, op: &OpData) -> Option<Rewrite> {
    let c = constant_of(f, op.operands[0])?;
    if all_elements(&c, |e| matches!(e, Elem::Bool(true))) {
        Some(Rewrite::Forward(op.operands[1]))
    } else if all_elements(&c, |e| matches!(e, Elem::Bool(false))) {
        Some(Rewrite::Forward(op.operands[2]))
    } else {
        None
    }
}

fn select_same(_: &Function, op: &OpData) -> Option<Rewrite> {
    (op.operands[1] == op.operands[2]).then(|| Rewrite::Forward(op.operands[1]))
}

/// Reshapes compose: both keep the row-major order, so only the last shape matters.
fn reshape_reshape(f: &Function, op: &OpData) -> Option<Rewrite> {
    let inner = def(f, op.operands[0])?;
    (inner.kind == op.kind).then(|| Rewrite::Update { operands: vec![inner.operands[0]], attrs: op.attrs.clone() })
}

/// The op's result type alone determines what it does (a reshape, broadcast
/// or cast); when that is the operand's own type, it does nothing. (Not true
/// of a transpose: one of a 3x3 has the same type and is not the identity.)
fn same_type(f: &Function, op: &OpData) -> Option<Rewrite> {
    let x = op.operands[0];
    (f.ty(x) == f.ty(op.results[0])).then_some(Rewrite::Forward(x))
}

fn perm(op: &OpData) -> Option<Vec<i64>> {
    AttrView::new(op.kind, &op.attrs).ints("perm").ok()
}

fn transpose_identity(_: &Function, op: &OpData) -> Option<Rewrite> {
    let p = perm(op)?;
    p.iter().enumerate().all(|(i, &a)| a == i as i64).then(|| Rewrite::Forward(op.operands[0]))
}

/// Result dim `i` of the outer transpose is inner dim `q[i]`, which is dim
/// `p[q[i]]` of `x`.
fn transpose_transpose(f: &Function, op: &OpData) -> Option<Rewrite> {
    let inner = def(f, op.operands[0])?;
    if inner.kind != op.kind {
        return None;
    }
    let (p, q) = (perm(inner)?, perm(op)?);
    let composed = q.iter().map(|&i| usize::try_from(i).ok().and_then(|i| p.get(i).copied())).collect::<Option<Vec<i64>>>()?;
    let mut attrs = op.attrs.clone();
    attrs.insert("perm".into(), Attr::ints(&composed));
    Some(Rewrite::Update { operands: vec![inner.operands[0]], attrs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Builder, DType, Dim, TensorType, attrs};

    fn arg(f: &mut Function, shape: &[u64], dtype: DType) -> ValueId {
        f.add_arg(TensorType::fixed(shape, dtype).into(), None, Attrs::new())
    }

    fn kinds(f: &Function) -> Vec<OpKind> {
        f.walk().iter().map(|&o| f.op(o).kind).collect()
    }

    /// Canonicalizes, verifies, and returns what the function returns.
    fn canonicalize(f: &mut Function) -> Vec<ValueId> {
        Canonicalize.run(f);
        dlc_ir::verify_function(f).unwrap();
        f.returned_values()
    }

    #[test]
    fn rule_names_are_unique_and_roots_nonempty() {
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.name), "rule {} twice", r.name);
            assert!(!r.roots.is_empty() && !r.identity.is_empty(), "{}", r.name);
        }
    }

    #[test]
    fn multiplying_by_one_on_either_side_forwards_x() {
        let mut f = Function::new("f");
        let x = arg(&mut f, &[3], DType::F32);
        let mut b = Builder::at_entry(&mut f);
        let one = b.scalar(1.0, DType::F32);
        let a = b.op(OpKind::Mul, &[x, one], Attrs::new()).unwrap();
        let c = b.op(OpKind::Mul, &[one, a], Attrs::new()).unwrap();
        let d = b.op(OpKind::Div, &[c, one], Attrs::new()).unwrap();
        b.ret(&[d]);
        assert_eq!(canonicalize(&mut f), [x]);
        assert!(!Canonicalize.run(&mut f), "a second run finds nothing");
    }

    #[test]
    fn float_zero_rules_respect_signed_zero_and_nan() {
        let mut f = Function::new("f");
        let x = arg(&mut f, &[3], DType::F32);
        let mut b = Builder::at_entry(&mut f);
        let (pz, nz) = (b.scalar(0.0, DType::F32), b.scalar(-0.0, DType::F32));
        let add_pz = b.op(OpKind::Add, &[x, pz], Attrs::new()).unwrap(); // -0 + 0 = +0: kept
        let add_nz = b.op(OpKind::Add, &[nz, x], Attrs::new()).unwrap(); // forwarded
        let sub_pz = b.op(OpKind::Sub, &[x, pz], Attrs::new()).unwrap(); // forwarded
        let sub_nz = b.op(OpKind::Sub, &[x, nz], Attrs::new()).unwrap(); // -0 - -0 = +0: kept
        let zero_minus = b.op(OpKind::Sub, &[pz, x], Attrs::new()).unwrap(); // 0 - x is not x: kept
        let mul_zero = b.op(OpKind::Mul, &[x, pz], Attrs::new()).unwrap(); // NaN * 0 = NaN: kept
        b.ret(&[add_pz, add_nz, sub_pz, sub_nz, zero_minus, mul_zero]);
        assert_eq!(canonicalize(&mut f), [add_pz, x, x, sub_nz, zero_minus, mul_zero]);
    }

    #[test]
    fn integer_zero_is_the_identity_of_add_and_sub() {
        let mut f = Function::new("f");
        let x = arg(&mut f, &[3], DType::I64);
        let mut b = Builder::at_entry(&mut f);
        let zero = b.constant(DenseAttr { ty: TensorType::fixed(&[3], DType::I64), data: dlc_ir::DenseData::Int(vec![0, 0, 0]) }).unwrap();
        let a = b.op(OpKind::Add, &[zero, x], Attrs::new()).unwrap();
        let s = b.op(OpKind::Sub, &[a, zero], Attrs::new()).unwrap();
        b.ret(&[s]);
        assert_eq!(canonicalize(&mut f), [x]);
    }

    #[test]
    fn a_rule_never_changes_the_result_type() {
        // x : tensor<f32> + ones : tensor<3xf32> broadcasts to tensor<3xf32>: x alone would not do.
        let mut f = Function::new("f");
        let x = arg(&mut f, &[], DType::F32);
        let mut b = Builder::at_entry(&mut f);
        let ones = b.constant(DenseAttr::splat_f(TensorType::fixed(&[3], DType::F32), 1.0)).unwrap();
        let m = b.op(OpKind::Mul, &[x, ones], Attrs::new()).unwrap();
        b.ret(&[m]);
        assert!(!Canonicalize.run(&mut f));
        assert_eq!(kinds(&f), [OpKind::Constant, OpKind::Mul, OpKind::Return]);
    }

    #[test]
    fn double_negation_cancels() {
        let mut f = Function::new("f");
        let x = arg(&mut f, &[2], DType::F32);
        let mut b = Builder::at_entry(&mut f);
        let n1 = b.op(OpKind::Neg, &[x], Attrs::new()).unwrap();
        let n2 = b.op(OpKind::Neg, &[n1], Attrs::new()).unwrap();
        let n3 = b.op(OpKind::Neg, &[n2], Attrs::new()).unwrap();
        b.ret(&[n2, n3]);
        // neg(neg x) is x, so the third neg now reads x (a duplicate of n1 that CSE merges).
        let ret = canonicalize(&mut f);
        assert_eq!(ret, [x, n3]);
        assert_eq!(f.op(def_op(&f, n3)).operands, [x]);
    }

    #[test]
    fn movement_chains_collapse() {
        let mut f = Function::new("f");
        let x = f.add_arg(TensorType::new(vec![Dim::Dynamic, Dim::Static(6)], DType::F32).into(), None, Attrs::new());
        let w = arg(&mut f, &[2, 3, 4], DType::F32);
        let mut b = Builder::at_entry(&mut f);
        let r1 = b.op(OpKind::Reshape, &[x], attrs! {"shape" => Attr::ints(&[-1, 2, 3])}).unwrap();
        let r2 = b.op(OpKind::Reshape, &[r1], attrs! {"shape" => Attr::ints(&[-1, 6])}).unwrap(); // back to x's type
        let r3 = b.op(OpKind::Reshape, &[r1], attrs! {"shape" => Attr::ints(&[-1, 3, 2])}).unwrap();
        let t1 = b.op(OpKind::Transpose, &[w], attrs! {"perm" => Attr::ints(&[1, 2, 0])}).unwrap();
        let t2 = b.op(OpKind::Transpose, &[t1], attrs! {"perm" => Attr::ints(&[2, 0, 1])}).unwrap(); // inverse
        let t3 = b.op(OpKind::Transpose, &[t1], attrs! {"perm" => Attr::ints(&[0, 2, 1])}).unwrap();
        let same = b.op(OpKind::BroadcastTo, &[w], attrs! {"shape" => Attr::ints(&[2, 3, 4])}).unwrap();
        let cast = b.op(OpKind::Cast, &[same], attrs! {"dtype" => DType::F32}).unwrap();
        b.ret(&[r2, r3, t2, t3, cast]);
        let ret = canonicalize(&mut f);
        assert_eq!([ret[0], ret[2], ret[4]], [x, w, w]);
        let (r3, t3) = (f.op(def_op(&f, ret[1])), f.op(def_op(&f, ret[3])));
        assert_eq!((r3.operands[0], r3.attrs["shape"].as_ints().unwrap()), (x, vec![-1, 3, 2]));
        // t3 = transpose(transpose(w, [1,2,0]), [0,2,1]): dims p[q[i]] = [1, 0, 2].
        assert_eq!((t3.operands[0], t3.attrs["perm"].as_ints().unwrap()), (w, vec![1, 0, 2]));
    }

    fn def_op(f: &Function, v: ValueId) -> OpId {
        match f.value(v).def {
            ValueDef::OpResult { op, .. } => op,
            ValueDef::BlockArg { .. } => panic!("an argument"),
        }
    }

    #[test]
    fn a_same_type_transpose_that_permutes_is_kept() {
        let mut f = Function::new("f");
        let w = arg(&mut f, &[3, 3], DType::F32);
        let mut b = Builder::at_entry(&mut f);
        let t = b.op(OpKind::Transpose, &[w], attrs! {"perm" => Attr::ints(&[1, 0])}).unwrap();
        b.ret(&[t]);
        assert!(!Canonicalize.run(&mut f));
    }

    #[test]
    fn selects_on_constant_conditions_pick_a_branch() {
        let mut f = Function::new("f");
        let a = arg(&mut f, &[2], DType::F32);
        let c = arg(&mut f, &[2], DType::I1);
        let mut b = Builder::at_entry(&mut f);
        let t = b.constant(DenseAttr { ty: TensorType::fixed(&[], DType::I1), data: dlc_ir::DenseData::Bool(vec![true]) }).unwrap();
        let fl = b.constant(DenseAttr { ty: TensorType::fixed(&[2], DType::I1), data: dlc_ir::DenseData::Bool(vec![false, false]) }).unwrap();
        let mixed = b.constant(DenseAttr { ty: TensorType::fixed(&[2], DType::I1), data: dlc_ir::DenseData::Bool(vec![true, false]) }).unwrap();
        let z = b.scalar(0.0, DType::F32);
        let s1 = b.op(OpKind::Select, &[t, a, z], Attrs::new()).unwrap();
        let s2 = b.op(OpKind::Select, &[fl, z, a], Attrs::new()).unwrap();
        let s3 = b.op(OpKind::Select, &[mixed, a, z], Attrs::new()).unwrap();
        let s4 = b.op(OpKind::Select, &[c, a, a], Attrs::new()).unwrap();
        let s5 = b.op(OpKind::Select, &[fl, a, z], Attrs::new()).unwrap(); // z is tensor<f32>, the result tensor<2xf32>
        b.ret(&[s1, s2, s3, s4, s5]);
        assert_eq!(canonicalize(&mut f), [a, a, s3, a, s5]);
    }
}
