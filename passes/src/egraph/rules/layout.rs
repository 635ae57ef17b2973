//! Movement and layout: transposes folded into matmul flags, chains of
//! transposes, reshapes and broadcasts collapsed, no-op conversions dropped.
//! All exact: they move or repeat elements, or (for the matmul flags) read
//! the same elements in the same summation order.

use super::{Match, Rhs, Rule};
use dlc_ir::{Attr, Attrs, OpKind};
use egg::Id;

/// The layout rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // transpose(transpose(x, p), q) → transpose(x, i ↦ p[q[i]])
    Rule { name: "transpose_transpose", lhs: "(transpose{*} (transpose{*} ?x))", rhs: Rhs::Build(transpose_transpose) },
    // transpose(x, [0, 1, …, n-1]) → x
    Rule { name: "transpose_identity",  lhs: "(transpose{*} ?x)",                rhs: Rhs::TermIf("?x", |m| perm(m, 0).is_some_and(|p| p.iter().enumerate().all(|(i, &d)| d == i as i64))) },
    // matmul(transpose(a, swap last two), b) → matmul(a, b) with transpose_a flipped
    Rule { name: "matmul_transpose_a",  lhs: "(matmul{*} (transpose{*} ?a) ?b)", rhs: Rhs::Build(matmul_transpose_a) },
    // matmul(a, transpose(b, swap last two)) → matmul(a, b) with transpose_b flipped
    Rule { name: "matmul_transpose_b",  lhs: "(matmul{*} ?a (transpose{*} ?b))", rhs: Rhs::Build(matmul_transpose_b) },
    // transpose(matmul(a, b), swap last two) → matmul(b, a) with the flags swapped and flipped  ((AB)ᵀ = BᵀAᵀ)
    Rule { name: "transpose_matmul",    lhs: "(transpose{*} (matmul{*} ?a ?b))", rhs: Rhs::Build(transpose_matmul) },
    // reshape(reshape(x, s1), s2) → reshape(x, s2)   (both keep row-major order)
    Rule { name: "reshape_reshape",     lhs: "(reshape{*} (reshape{*} ?x))",     rhs: Rhs::Build(|m| outer_of_chain(m, OpKind::Reshape)) },
    // broadcast_to(broadcast_to(x, s1), s2) → broadcast_to(x, s2)   (broadcasts compose)
    Rule { name: "broadcast_broadcast", lhs: "(broadcast_to{*} (broadcast_to{*} ?x))", rhs: Rhs::Build(|m| outer_of_chain(m, OpKind::BroadcastTo)) },
    // reshape(x : T) : T → x
    Rule { name: "reshape_noop",        lhs: "(reshape{*} ?x)",                  rhs: Rhs::Term("?x") },
    // broadcast_to(x : T) : T → x
    Rule { name: "broadcast_noop",      lhs: "(broadcast_to{*} ?x)",             rhs: Rhs::Term("?x") },
    // cast(x : T) : T → x
    Rule { name: "cast_noop",           lhs: "(cast{*} ?x)",                     rhs: Rhs::Term("?x") },
];

/// The `perm` of the `i`-th op node of the match (a transpose).
fn perm(m: &Match<'_>, i: usize) -> Option<Vec<i64>> {
    m.view(i, OpKind::Transpose).ints("perm").ok()
}

/// True when `p` swaps the last two dims and keeps the others.
fn swaps_last_two(p: &[i64]) -> bool {
    let r = p.len();
    r >= 2 && p[..r - 2].iter().enumerate().all(|(i, &d)| d == i as i64) && p[r - 2] == r as i64 - 1 && p[r - 1] == r as i64 - 2
}

fn transpose_transpose(m: &mut Match<'_>) -> Option<Id> {
    let (q, p) = (perm(m, 0)?, perm(m, 1)?);
    let composed = q.iter().map(|&i| usize::try_from(i).ok().and_then(|i| p.get(i).copied())).collect::<Option<Vec<i64>>>()?;
    let x = m.var("?x");
    m.add(OpKind::Transpose, &Attrs::from([("perm".to_string(), Attr::ints(&composed))]), &[x])
}

/// The flags of the `i`-th op node (a matmul).
fn flags(m: &Match<'_>, i: usize) -> Option<(bool, bool)> {
    let v = m.view(i, OpKind::Matmul);
    Some((v.bool("transpose_a").ok()?, v.bool("transpose_b").ok()?))
}

fn matmul(m: &mut Match<'_>, a: Id, b: Id, (ta, tb): (bool, bool)) -> Option<Id> {
    let attrs = Attrs::from([("transpose_a".to_string(), Attr::Bool(ta)), ("transpose_b".to_string(), Attr::Bool(tb))]);
    m.add(OpKind::Matmul, &attrs, &[a, b])
}

fn matmul_transpose_a(m: &mut Match<'_>) -> Option<Id> {
    let (ta, tb) = flags(m, 0)?;
    if !swaps_last_two(&perm(m, 1)?) {
        return None;
    }
    let (a, b) = (m.var("?a"), m.var("?b"));
    matmul(m, a, b, (!ta, tb))
}

fn matmul_transpose_b(m: &mut Match<'_>) -> Option<Id> {
    let (ta, tb) = flags(m, 0)?;
    if !swaps_last_two(&perm(m, 1)?) {
        return None;
    }
    let (a, b) = (m.var("?a"), m.var("?b"));
    matmul(m, a, b, (ta, !tb))
}

fn transpose_matmul(m: &mut Match<'_>) -> Option<Id> {
    if !swaps_last_two(&perm(m, 0)?) {
        return None;
    }
    let (ta, tb) = flags(m, 1)?;
    let (a, b) = (m.var("?a"), m.var("?b"));
    matmul(m, b, a, (!tb, !ta))
}

/// `outer(inner(x))` → `outer(x)` for an op whose result depends only on
/// its attributes and its operand's elements in order.
fn outer_of_chain(m: &mut Match<'_>, kind: OpKind) -> Option<Id> {
    let attrs = m.attrs(0).clone();
    let x = m.var("?x");
    m.add(kind, &attrs, &[x])
}
