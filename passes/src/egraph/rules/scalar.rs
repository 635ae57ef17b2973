//! Scalar factors moved through contractions and reductions, so that the
//! extractor can apply a scale where the tensor is smallest (the cost model
//! decides). A scalar is a rank-0 value or a splat constant, of a float type.
//!
//! Scales move in both directions, but a scale moves into an operand only
//! when that operand is not scaled already, and two scales merge only on an
//! unscaled value: otherwise every factorization of a product of scales
//! would get its own class (`x·2·3/2` breeds `x·6`, `x·1.5`, `x·3`, … and
//! every matmul of them), and the e-graph would only stop at its node limit.
//!
//! Exactness, rule by rule: moving a negation through a matmul is exact up
//! to the sign of a zero result (rounding is symmetric); moving a scale
//! through a matmul or a sum, and merging two constant scales, reassociate
//! products: equal within float rounding, not bit for bit.

use super::{Match, Rhs, Rule, is_float, is_scalar};
use dlc_ir::{Attrs, OpKind};
use egg::{Id, Language};

/// The scalar rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // matmul(a * c, b) → matmul(a, b) * c   (reassociates)
    Rule { name: "matmul_scale_a",    lhs: "(matmul{*} (mul ?a ?c) ?b)",   rhs: Rhs::Build(|m| scale_out(m, OpKind::Matmul, |a, b| [a, b])) },
    // matmul(a, b * c) → matmul(a, b) * c   (reassociates)
    Rule { name: "matmul_scale_b",    lhs: "(matmul{*} ?a (mul ?b ?c))",   rhs: Rhs::Build(|m| scale_out(m, OpKind::Matmul, |a, b| [a, b])) },
    // matmul(a, b) * c → matmul(a * c, b)   (a not scaled already; reassociates)
    Rule { name: "scale_matmul_a",    lhs: "(mul (matmul{*} ?a ?b) ?c)",   rhs: Rhs::Build(|m| scale_in(m, true)) },
    // matmul(a, b) * c → matmul(a, b * c)   (b not scaled already; reassociates)
    Rule { name: "scale_matmul_b",    lhs: "(mul (matmul{*} ?a ?b) ?c)",   rhs: Rhs::Build(|m| scale_in(m, false)) },
    // matmul(neg(a), b) → neg(matmul(a, b))   (exact up to the sign of zero)
    Rule { name: "matmul_neg_a",      lhs: "(matmul{*} (neg ?a) ?b)",      rhs: Rhs::Build(|m| neg_out(m, "?a", "?b")) },
    // matmul(a, neg(b)) → neg(matmul(a, b))   (exact up to the sign of zero)
    Rule { name: "matmul_neg_b",      lhs: "(matmul{*} ?a (neg ?b))",      rhs: Rhs::Build(|m| neg_out(m, "?a", "?b")) },
    // reduce_sum(x * c) → reduce_sum(x) * c   (distributes; reassociates)
    Rule { name: "reduce_sum_scale",  lhs: "(reduce_sum{*} (mul ?x ?c))",  rhs: Rhs::Build(|m| scale_out(m, OpKind::ReduceSum, |x, _| [x, x])) },
    // reduce_mean(x * c) → reduce_mean(x) * c   (distributes; reassociates)
    Rule { name: "reduce_mean_scale", lhs: "(reduce_mean{*} (mul ?x ?c))", rhs: Rhs::Build(|m| scale_out(m, OpKind::ReduceMean, |x, _| [x, x])) },
    // (x * c1) * c2 → x * (c1 * c2), the product folded   (constants c1, c2; x neither a constant nor scaled; reassociates)
    Rule { name: "scale_scale",       lhs: "(mul (mul ?x ?c) ?d)",         rhs: Rhs::Build(scale_scale) },
];

/// True when `?c` is a float scalar.
fn scalar_c(m: &Match<'_>) -> bool {
    is_scalar(m, "?c") && is_float(m, "?c")
}

/// True when the class of `var` holds a product with a float scalar.
fn scaled(m: &Match<'_>, var: &str) -> bool {
    let g = &*m.egraph;
    g[m.var(var)].nodes.iter().any(|n| {
        n.kind() == Some(OpKind::Mul)
            && n.children().iter().any(|&c| {
                let d = &g[c].data;
                d.ty.dtype().is_some_and(|t| t.is_float()) && (d.splat.is_some() || d.tensor().is_some_and(|t| t.rank() == 0))
            })
    })
}

/// `op(…) * ?c` for a match `op(…(mul · ?c)…)` rooted at op node 0 of
/// `kind`; `operands` picks op's operands from (?a or ?x, ?b).
fn scale_out(m: &mut Match<'_>, kind: OpKind, operands: fn(Id, Id) -> [Id; 2]) -> Option<Id> {
    if !scalar_c(m) {
        return None;
    }
    let attrs = m.attrs(0).clone();
    let ops = if kind == OpKind::Matmul { operands(m.var("?a"), m.var("?b")).to_vec() } else { vec![m.var("?x")] };
    let inner = m.add(kind, &attrs, &ops)?;
    let c = m.var("?c");
    m.add(OpKind::Mul, &Attrs::new(), &[inner, c])
}

/// `matmul(a * c, b)` or `matmul(a, b * c)` for a match `matmul(a, b) * c`.
fn scale_in(m: &mut Match<'_>, into_a: bool) -> Option<Id> {
    if !scalar_c(m) || scaled(m, if into_a { "?a" } else { "?b" }) {
        return None;
    }
    let attrs = m.attrs(1).clone();
    let (a, b, c) = (m.var("?a"), m.var("?b"), m.var("?c"));
    let scaled = m.add(OpKind::Mul, &Attrs::new(), &[if into_a { a } else { b }, c])?;
    let ops = if into_a { [scaled, b] } else { [a, scaled] };
    m.add(OpKind::Matmul, &attrs, &ops)
}

fn neg_out(m: &mut Match<'_>, a: &str, b: &str) -> Option<Id> {
    let attrs = m.attrs(0).clone();
    let (a, b) = (m.var(a), m.var(b));
    let mm = m.add(OpKind::Matmul, &attrs, &[a, b])?;
    m.add(OpKind::Neg, &Attrs::new(), &[mm])
}

fn scale_scale(m: &mut Match<'_>) -> Option<Id> {
    let constant = |m: &Match<'_>, v: &str| m.data(v).splat.is_some() && is_float(m, v);
    if !constant(m, "?c") || !constant(m, "?d") || m.data("?x").splat.is_some() || scaled(m, "?x") {
        return None;
    }
    let (x, c, d) = (m.var("?x"), m.var("?c"), m.var("?d"));
    let cd = m.add(OpKind::Mul, &Attrs::new(), &[c, d])?;
    m.add(OpKind::Mul, &Attrs::new(), &[x, cd])
}
