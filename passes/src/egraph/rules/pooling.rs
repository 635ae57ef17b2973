//! Sums of max-pooling's gradient taken over the pooled grid.
//!
//! A convolution's bias gradient in a train step is the sum of its output
//! gradient over the batch and both spatial axes, and under a max-pool
//! that gradient is `max_pool2d_grad(x, g)` masked by ReLU's `x > 0`: the
//! full-size tensor, mostly zeros (3 of 4 elements for a 2×2 window). Its
//! sum over the spatial axes is a sum over the windows: each window's `g`
//! lands on one element of its own (its argmax), which the mask keeps when
//! that element is positive. That element is the window's maximum, and
//! with ReLU before the pool, `max_pool2d(relu(x)) > 0` exactly when the
//! window's maximum of `x` is (NaN fails both: the pool propagates it and
//! the argmax picks it). So the sum reads the pooled tensor the forward
//! pass computed and `g`, a quarter of the bytes each, instead of the
//! full-size gradient (the Keras CNN's first layer: 1.4 + 1.4 MB instead
//! of 5.5 MB at batch 64).
//!
//! Exactness: the two sums add the same nonzero values (each `g` once, at
//! one element; windows must not overlap, so no element adds two `g`s
//! first) and zeros, whose signs do not matter to a sum that starts from
//! `+0`; only the order of the additions differs. Equal within float
//! rounding, then, like the `scalar` topic's reassociations: the
//! interpreter's compensated f64 sum gives the same f32 in all but
//! pathological cases, and the JIT's f64 sums of f32 terms differ from it
//! by far less than an f32 ulp.

use super::{Match, Rhs, Rule};
use dlc_ir::{Attr, Attrs, OpKind};
use egg::Id;

/// The pooling rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // reduce_sum(select(x > 0, max_pool2d_grad(x, g), 0)) → reduce_sum(select(max_pool2d(relu(x)) > 0, g, 0))
    //   (windows that do not overlap, no padding, summed over each spatial axis they span; rank-0 zeros)
    Rule { name: "pool_grad_sum_relu", lhs: "(reduce_sum{*} (select (cmp{predicate=\"gt\"} ?x ?c) (max_pool2d_grad{*} ?x ?g) ?e))", rhs: Rhs::Build(masked_sum) },
    // reduce_sum(max_pool2d_grad(x, g)) → reduce_sum(g)   (same conditions)
    Rule { name: "pool_grad_sum",      lhs: "(reduce_sum{*} (max_pool2d_grad{*} ?x ?g))",                                        rhs: Rhs::Build(plain_sum) },
];

/// The window attributes (`kernel`, `stride`, `padding`) of the pooling
/// gradient, node `i` of the match, when its windows do not overlap and
/// have no padding, and the sum (node 0) covers each spatial axis the
/// window spans (one it keeps must be 1 wide with stride 1, where the
/// identity holds row by row or column by column; the types alone would
/// not say so for a dynamic spatial size); `None` otherwise, and for a
/// gradient masked already (`relu`).
fn window(m: &Match<'_>, i: usize) -> Option<Attrs> {
    let grad = m.view(i, OpKind::MaxPool2dGrad);
    let (k, s, p) = (grad.ints("kernel").ok()?, grad.ints("stride").ok()?, grad.ints("padding").ok()?);
    if grad.bool("relu").ok()? || p.iter().any(|&v| v != 0) || s.iter().zip(&k).any(|(s, k)| s < k) {
        return None;
    }
    let axes = m.view(0, OpKind::ReduceSum).ints("axes").ok()?;
    for d in 0..2 {
        let covered = axes.iter().any(|&a| a == d as i64 + 2 || a == d as i64 - 2);
        if !covered && (k[d] != 1 || s[d] != 1) {
            return None;
        }
    }
    let mut attrs: Attrs = m.attrs(i).clone();
    attrs.remove("relu");
    Some(attrs)
}

fn masked_sum(m: &mut Match<'_>) -> Option<Id> {
    // Rank-0 zeros: a larger splat would broadcast the pooled mask or
    // result back up to its own shape.
    let zero = |m: &Match<'_>, v: &str| m.splat(v) == Some(0.0) && m.data(v).tensor().is_some_and(|t| t.rank() == 0);
    if !zero(m, "?c") || !zero(m, "?e") {
        return None;
    }
    let pool = window(m, 3)?;
    let sum = m.attrs(0).clone();
    let (x, g, c, e) = (m.var("?x"), m.var("?g"), m.var("?c"), m.var("?e"));
    let relu = m.add(OpKind::Relu, &Attrs::new(), &[x])?;
    let pooled = m.add(OpKind::MaxPool2d, &pool, &[relu])?;
    let mask = m.add(OpKind::Cmp, &Attrs::from([("predicate".to_string(), Attr::Str("gt".into()))]), &[pooled, c])?;
    let kept = m.add(OpKind::Select, &Attrs::new(), &[mask, g, e])?;
    m.add(OpKind::ReduceSum, &sum, &[kept])
}

fn plain_sum(m: &mut Match<'_>) -> Option<Id> {
    window(m, 1)?;
    let sum = m.attrs(0).clone();
    let g = m.var("?g");
    m.add(OpKind::ReduceSum, &sum, &[g])
}
