//! Losses and normalizations: the stable fused forms. These agree with the
//! terms they replace within float rounding (not bit for bit), and where the
//! composed form over- or underflows the fused one stays finite:
//! `log(softmax(x))` is `-inf` once an element's probability underflows,
//! `log_softmax(x)` is not.
//!
//! The losses of `train/loss.rs` already build `dl.log_softmax` for
//! cross-entropy, and its gradient reads `exp(log_softmax(x))`: the e-graph
//! learns that this is `softmax(x)`, and the extractor keeps whichever is
//! cheaper where the log-probabilities are computed anyway.

use super::{Match, Rhs, Rule};
use dlc_ir::OpKind;
use egg::Id;

/// The loss rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // log(softmax(x, a)) → log_softmax(x, a)   (within rounding; stable)
    Rule { name: "log_softmax",         lhs: "(log (softmax{*} ?x))",              rhs: Rhs::Build(|m| same_axis(m, 1, OpKind::LogSoftmax)) },
    // exp(log_softmax(x, a)) → softmax(x, a)   (within rounding)
    Rule { name: "exp_log_softmax",     lhs: "(exp (log_softmax{*} ?x))",          rhs: Rhs::Build(|m| same_axis(m, 1, OpKind::Softmax)) },
    // softmax(log_softmax(x, a), a) → softmax(x, a)   (within rounding: log_softmax shifts each row by a constant)
    Rule { name: "softmax_log_softmax", lhs: "(softmax{*} (log_softmax{*} ?x))",   rhs: Rhs::Build(softmax_log_softmax) },
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
