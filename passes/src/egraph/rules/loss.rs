//! Losses and normalizations: the stable fused forms, and loss gradients in
//! the form the logits give them. These agree with the terms they replace
//! within float rounding (not bit for bit), and where the composed form
//! over- or underflows the fused one stays finite: `log(softmax(x))` is
//! `-inf` once an element's probability underflows, `log_softmax(x)` is not.
//!
//! Cross-entropy: the losses of `train/loss.rs` already build
//! `dl.log_softmax`, and its gradient reads `exp(log_softmax(x))`: the
//! e-graph learns that this is `softmax(x)`, and the extractor keeps
//! whichever is cheaper where the log-probabilities are computed anyway. The
//! pick `Σ_c one_hot(t)_c · log_softmax(x)_c` stays a one-hot product rather
//! than `x[n, t_n] - logsumexp(x[n])`: that needs one element per row, and
//! `dl.gather` is an embedding lookup (`[N, C]` gathered along axis 1 by
//! `[N]` indices is all `N × N` pairs `x[i, t_j]`, and a gather along the
//! `?` batch dim is refused), with no iota to build flat indices
//! `n·C + t_n`. Nor would it pay in a train step: the gradient reads all of
//! `softmax(x)` anyway.
//!
//! Binary cross-entropy of a sigmoid, `p = sigmoid(z)`: BCE's gradient, as
//! autodiff writes it, divides by `p` and (through `Emit::log1p`'s
//! derivative) by `1 - p`, then multiplies by sigmoid's `p·(1 - p)`.
//! `log1p_vjp` and `bce_sigmoid_grad` reduce it to the logits gradient
//! `g_b·(1 - p) - g_a·p` (`g·(p - t)` away from the clamps). It keeps the
//! masks BCE's guards put on it, so it is 0 where `p` rounds to 0 or 1, as
//! before; the plain `g·(p - t)` would not be (it is `g·(1 - t)` where `p`
//! rounds to 1). The -100 floor never binds on `log1p(-p)` (which is above
//! -37 for `p < 1`): `bce_floor` drops that clamp and `bce_floor_grad` its
//! gradient mask, so the gradient no longer recomputes `log1p(-p)`.
//!
//! The loss value keeps its probability form. The logits form
//! `-softplus(∓z)` of its logs differs beyond rounding: `p` rounds to 1 from
//! z ≈ 16.6 (f32), where BCE selects its -100 floor and `-softplus(z) ≈ -z`
//! does not (the floor alone would not keep the saturation), and below
//! that `log1p(-p)` carries the rounding of `p` times `1/(1 - p)`: it is
//! 0.16 off at z = 15, 0.56 at z = 16.5. That is what PyTorch's
//! `binary_cross_entropy` computes, which the losses match. `log(p)` is off
//! by up to 0.02 above the floor where `p` is subnormal (z in (-100, -87)).
//! And without a `log1p` primitive (`Emit::log1p` is 8 ops), the logits
//! form costs more than the probability form (the two logs of the per-element
//! loss: 1.87 µs against 1.55 under `cost`, sharing `log1p(exp(-|z|))`), so
//! the extractor would not pick it.

use super::{Match, Rhs, Rule};
use dlc_ir::{Attrs, OpKind, attrs};
use egg::{Id, Language};

/// The loss rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // log(softmax(x, a)) → log_softmax(x, a)   (within rounding; stable)
    Rule { name: "log_softmax",         lhs: "(log (softmax{*} ?x))",              rhs: Rhs::Build(|m| same_axis(m, 1, OpKind::LogSoftmax)) },
    // exp(log_softmax(x, a)) → softmax(x, a)   (within rounding)
    Rule { name: "exp_log_softmax",     lhs: "(exp (log_softmax{*} ?x))",          rhs: Rhs::Build(|m| same_axis(m, 1, OpKind::Softmax)) },
    // softmax(log_softmax(x, a), a) → softmax(x, a)   (within rounding: log_softmax shifts each row by a constant)
    Rule { name: "softmax_log_softmax", lhs: "(softmax{*} (log_softmax{*} ?x))",   rhs: Rhs::Build(softmax_log_softmax) },
    // the gradient of Emit::log1p(y) (Goldberg's y·log(u)/(u - 1), u = 1 + y) for cotangent g → g / u   (within rounding)
    Rule { name: "log1p_vjp",           lhs: "(add (add (select ?s ?g ?zero) ?dy) (add (div (mul ?d ?y) ?u) (select ?s ?zero (neg ?dq))))",
                                        rhs: Rhs::Build(log1p_vjp) },
    // maximum(select(b, log1p(y), f), f) → select(b, log1p(y), f) for BCE's y = select(b, -p, 0), b = p < 1, p a sigmoid, f < -37   (exact: the floor never binds)
    Rule { name: "bce_floor",           lhs: "(maximum (select ?b ?l ?f) ?f)",
                                        rhs: Rhs::TermIf("(select ?b ?l ?f)", floor_never_binds) },
    // select(b, select(select(b, log1p(y), f) > f, g, h), e) → select(b, g, e), with b, y, f as above   (exact: the gradient of that maximum)
    Rule { name: "bce_floor_grad",      lhs: "(select ?b (select (cmp{predicate=\"gt\"} (select ?b ?l ?f) ?f) ?g ?h) ?e)",
                                        rhs: Rhs::TermIf("(select ?b ?g ?e)", floor_never_binds) },
    // BCE's gradient through p = sigmoid(z): (g_b/p - g_a/(1 - p))·p·(1 - p) → g_b·(1 - p) - g_a·p   (within rounding; equal where p rounds to 0 or 1)
    Rule { name: "bce_sigmoid_grad",    lhs: "(mul (sub (select ?a (div ?gb (select ?a (sigmoid ?z) ?one)) ?zero) (select ?b (div ?ga (add ?one (select ?b (neg (sigmoid ?z)) ?zero))) ?zero)) (mul (sigmoid ?z) (sub ?one (sigmoid ?z))))",
                                        rhs: Rhs::Build(bce_sigmoid_grad) },
];

/// `kind(?x)` with the axis of the match's `i`-th op node.
fn same_axis(m: &mut Match<'_>, i: usize, kind: OpKind) -> Option<Id> {
    let attrs = m.attrs(i).clone();
    let x = m.var("?x");
    m.add(kind, &attrs, &[x])
}

fn softmax_log_softmax(m: &mut Match<'_>) -> Option<Id> {
    let x = m.var("?x");
    let rank = m.data("?x").tensor()?.rank() as i64;
    let axis = |i: usize, kind| m.view(i, kind).int("axis").ok().map(|a| if a < 0 { a + rank } else { a });
    if axis(0, OpKind::Softmax)? != axis(1, OpKind::LogSoftmax)? {
        return None;
    }
    let attrs = m.attrs(0).clone();
    m.add(OpKind::Softmax, &attrs, &[x])
}

/// The classes of `Emit::log1p(y)`'s ops: `u = 1 + y`, `s = (u == 1)`,
/// `safe = select(s, 1, u - 1)`, `q = y·log(u) / safe` (the result is
/// `select(s, y, q)`), when the e-graph holds them all.
struct Log1p {
    u: Id,
    s: Id,
    safe: Id,
    log_u: Id,
    q: Id,
}

fn log1p_of(m: &Match<'_>, y: Id) -> Option<Log1p> {
    let none = Attrs::new();
    let one = m.lookup_scalar(m.egraph[y].data.ty.dtype()?, 1.0)?;
    let u = m.lookup(OpKind::Add, &none, &[one, y])?;
    let s = m.lookup(OpKind::Cmp, &attrs! {"predicate" => "eq"}, &[u, one])?;
    let um1 = m.lookup(OpKind::Sub, &none, &[u, one])?;
    let safe = m.lookup(OpKind::Select, &none, &[s, one, um1])?;
    let log_u = m.lookup(OpKind::Log, &none, &[u])?;
    let num = m.lookup(OpKind::Mul, &none, &[y, log_u])?;
    let q = m.lookup(OpKind::Div, &none, &[num, safe])?;
    Some(Log1p { u, s, safe, log_u, q })
}

/// True when `?l` is BCE's `log1p(y)` for `y = select(?b, -p, 0)`,
/// `?b = p < 1`, `p` a sigmoid, and `?f` a constant below -37: then
/// `?l > ?f` wherever `?b` holds, and the floor never binds. `p` is in
/// [0, 1) there, so `u = 1 - p` is at least the spacing below 1 (2^-24 in
/// f32, 2^-53 in f64) and `log1p(y) ≥ log(2^-53) ≈ -36.7`; the composite
/// rounds that by a few ulps (`y/(u - 1)` is exactly 1 for `p ≥ 1/2`).
fn floor_never_binds(m: &Match<'_>) -> bool {
    if m.splat("?f").is_none_or(|f| f >= -37.0) {
        return false;
    }
    let (b, l) = (m.var("?b"), m.var("?l"));
    operands(m, l, OpKind::Select).iter().any(|c| log1p_of(m, c[1]).is_some_and(|lp| [c[0], c[2]] == [lp.s, lp.q]) && is_bce_log1p_input(m, c[1], b))
}

/// True when `y` is `select(b, -p, 0)` for `b = p < 1` and `p` a sigmoid.
fn is_bce_log1p_input(m: &Match<'_>, y: Id, b: Id) -> bool {
    let guards = |p: Id| {
        let one = m.egraph[p].data.ty.dtype().and_then(|d| m.lookup_scalar(d, 1.0));
        !operands(m, p, OpKind::Sigmoid).is_empty() && one.is_some_and(|one| m.lookup(OpKind::Cmp, &attrs! {"predicate" => "lt"}, &[p, one]) == Some(b))
    };
    operands(m, y, OpKind::Select).iter().any(|c| {
        c[0] == b && m.egraph[c[2]].data.splat_f64() == Some(0.0) && operands(m, c[1], OpKind::Neg).iter().any(|n| guards(n[0]))
    })
}

/// The operand classes of each `kind` node of `class`.
fn operands(m: &Match<'_>, class: Id, kind: OpKind) -> Vec<Vec<Id>> {
    let g = &*m.egraph;
    g[class].nodes.iter().filter(|n| n.kind() == Some(kind)).map(|n| n.children().iter().map(|&c| g.find(c)).collect()).collect()
}

/// `g / u` for the match of autodiff's gradient of `Emit::log1p(y)`:
/// `s = (u == 1)`, `safe = select(s, 1, u - 1)`, `q = y·log(u) / safe`,
/// result `select(s, y, q)`. What reaches `y` is `g` where `s` holds (then
/// `u` is 1: equal), else, with `d = g / (u - 1)`, `d·log(u) + d·y/u - d·q`,
/// which is `g/u + g·(1 - w)·(log(u)/(u - 1) - 1/u)` for Goldberg's factor
/// `w = y/(u - 1)`. `u - 1` is exact, so `1 - w = δ/(u - 1)` for the
/// rounding error `δ` of `1 + y`, and the second term is within three ulps
/// of `g/u` for `y` in (-1, 1], where the losses use log1p (`-p`,
/// `exp(-|x|)`): `δ` is 0 below `y = -1/2`, and `log(u)/(u - 1) - 1/u` is
/// at most `1.23·|u - 1|` on [1/2, 2]. (Above, it grows like `log(u)`
/// ulps.) The rest is the rounding of seven ops against one. Each piece is
/// checked against the composite's definition before the rule applies.
fn log1p_vjp(m: &mut Match<'_>) -> Option<Id> {
    let (g, y, zero) = (m.var("?g"), m.var("?y"), m.var("?zero"));
    if m.splat("?zero") != Some(0.0) {
        return None;
    }
    let none = Attrs::new();
    let Log1p { u, s, safe, log_u, q, .. } = log1p_of(m, y)?;
    let masked = m.lookup(OpKind::Select, &none, &[s, zero, g])?;
    let d = m.lookup(OpKind::Div, &none, &[masked, safe])?;
    let dy = m.lookup(OpKind::Mul, &none, &[d, log_u])?;
    let dq = m.lookup(OpKind::Mul, &none, &[d, q])?;
    if [m.var("?s"), m.var("?u"), m.var("?d"), m.var("?dy"), m.var("?dq")] != [s, u, d, dy, dq] {
        return None;
    }
    m.add(OpKind::Div, &none, &[g, u])
}

/// `g_b·(1 - p) - g_a·p` for the match of BCE's gradient through
/// `p = sigmoid(z)`, with `a = p > 0` and `b = p < 1` its guards: `g_b`
/// reaches `log(select(a, p, 1))`, `g_a` reaches `log1p(select(b, -p, 0))`
/// (after `log1p_vjp`), and the sum meets sigmoid's `p·(1 - p)`.
/// - `0 < p < 1`: the log1p's `u = 1 + (-p)` is the same float as
///   sigmoid's `1 - p`, so the two forms differ by the rounding of their
///   divisions and products. Both end in one subtraction of the same two
///   terms, so a cancellation (near `p = t`) costs both alike. Where
///   `g_b/p` overflows (f32: `p` below `|g_b|/3.4e38`, z in (-100, -91) for
///   `g_b = -1/32`) the input is `-inf`; the rewrite stays finite.
/// - `p = 1` (f32: z ≳ 16.6): the input is `g_b·0 = 0`; the rewrite is
///   `g_b·0 - g_a`, and `g_a` is 0 there when it is `select(b, ·, 0)` (the
///   gradient of BCE's `select(p < 1, ·, -100)`), else the term gets that
///   select. `p = 0`: the same with `a` and `g_b`. NaN stays NaN.
fn bce_sigmoid_grad(m: &mut Match<'_>) -> Option<Id> {
    if m.splat("?zero") != Some(0.0) || m.splat("?one") != Some(1.0) {
        return None;
    }
    let none = Attrs::new();
    let (z, zero, one) = (m.var("?z"), m.var("?zero"), m.var("?one"));
    let p = m.lookup(OpKind::Sigmoid, &none, &[z])?;
    let a = m.lookup(OpKind::Cmp, &attrs! {"predicate" => "gt"}, &[p, zero])?;
    let b = m.lookup(OpKind::Cmp, &attrs! {"predicate" => "lt"}, &[p, one])?;
    if m.var("?a") != a || m.var("?b") != b {
        return None;
    }
    let (gb, ga) = (m.var("?gb"), m.var("?ga"));
    let one_minus_p = m.add(OpKind::Sub, &none, &[one, p])?;
    let tb = m.add(OpKind::Mul, &none, &[gb, one_minus_p])?;
    let tb = masked_by(m, tb, gb, a, zero)?;
    let ta = m.add(OpKind::Mul, &none, &[ga, p])?;
    let ta = masked_by(m, ta, ga, b, zero)?;
    m.add(OpKind::Sub, &none, &[tb, ta])
}

/// `term`, or `select(mask, term, zero)` unless `g` is 0 wherever `mask`
/// is false already (its class holds `select(mask, ·, zero)`).
fn masked_by(m: &mut Match<'_>, term: Id, g: Id, mask: Id, zero: Id) -> Option<Id> {
    if operands(m, g, OpKind::Select).iter().any(|c| c[0] == mask && c[2] == zero) {
        return Some(term);
    }
    m.add(OpKind::Select, &Attrs::new(), &[mask, term, zero])
}
