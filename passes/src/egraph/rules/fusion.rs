//! Fusion groupings: a contraction with its epilogue. `matmul` or `conv2d`
//! plus a per-channel bias, then a ReLU, is one `kernel.matmul` /
//! `kernel.conv2d` node, whose bias and ReLU run on each block of the
//! result while it is in cache; a max-pool of such a convolution is the
//! same node with `max_pool`, which pools each chunk of images while it is
//! in cache and never writes the unpooled activation. The extractor takes the fused node when the
//! cost model says the bytes it saves (the intermediate written and read
//! back by the separate `add` and `relu`) are worth it — not when the
//! intermediate is needed anyway (a train step reads the pre-activation in
//! ReLU's gradient), where computing the contraction twice would cost more.
//! `fuse-kernels` then finds these epilogues fused already. In a train
//! step, max-pooling's gradient takes the ReLU gradient's mask the same way
//! (`dl.max_pool2d_grad {relu}`), and a weight gradient through it, routed
//! by the pooled convolution's own output, can recompute that output
//! (`kernel.conv2d_grad_weight`), so nothing else reads the unpooled
//! activation and the forward pass pools before writing it. Where the
//! unpooled activation is stored anyway, both gradients through the
//! pooling's gradient take the pooled gradient and that activation
//! (`kernel.routed_conv2d_grad_input`/`_weight`), routing each window's
//! gradient to its argmax themselves instead of multiplying a full-size
//! gradient that is three quarters zeros.
//!
//! Exact: the kernel ops are defined as the composition (the contraction's
//! result rounded, plus the bias rounded, then ReLU), so the values are the
//! same bit for bit. The registry's shape rules decide what a bias is (one
//! value per output channel, any leading size-1 dims); a rule adds the
//! fused node only when it type-checks, so a residual `add` of a whole
//! tensor never fuses.

use super::{Match, Rhs, Rule};
use dlc_ir::{Attr, Attrs, OpKind};
use egg::Id;

/// The fusion rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // matmul(a, b) + c → kernel.matmul(a, b, c)   (c one value per output column)
    Rule { name: "matmul_bias",         lhs: "(add (matmul{*} ?a ?b) ?c)",                    rhs: Rhs::Build(|m| with_bias(m, OpKind::KernelMatmul, "?a", "?b")) },
    // conv2d(x, w) + c → kernel.conv2d(x, w, c)   (c one value per output channel)
    Rule { name: "conv2d_bias",         lhs: "(add (conv2d{*} ?a ?b) ?c)",                    rhs: Rhs::Build(|m| with_bias(m, OpKind::KernelConv2d, "?a", "?b")) },
    // relu(kernel.matmul(a, b, c)) → kernel.matmul(a, b, c) {relu}
    Rule { name: "matmul_bias_relu",    lhs: "(relu (kernel.matmul{*} ?a ?b ?c))",            rhs: Rhs::Build(|m| with_relu(m, OpKind::KernelMatmul, &["?a", "?b", "?c"])) },
    // relu(kernel.conv2d(x, w, c)) → kernel.conv2d(x, w, c) {relu}
    Rule { name: "conv2d_bias_relu",    lhs: "(relu (kernel.conv2d{*} ?a ?b ?c))",            rhs: Rhs::Build(|m| with_relu(m, OpKind::KernelConv2d, &["?a", "?b", "?c"])) },
    // relu(matmul(a, b)) → kernel.matmul(a, b) {relu}
    Rule { name: "matmul_relu",         lhs: "(relu (matmul{*} ?a ?b))",                      rhs: Rhs::Build(|m| with_relu(m, OpKind::KernelMatmul, &["?a", "?b"])) },
    // relu(conv2d(x, w)) → kernel.conv2d(x, w) {relu}
    Rule { name: "conv2d_relu",         lhs: "(relu (conv2d{*} ?a ?b))",                      rhs: Rhs::Build(|m| with_relu(m, OpKind::KernelConv2d, &["?a", "?b"])) },
    // max_pool2d(kernel.conv2d(x, w, c)) → kernel.conv2d(x, w, c) {max_pool}
    Rule { name: "conv2d_max_pool",     lhs: "(max_pool2d{*} (kernel.conv2d{*} ?a ?b ?c))",   rhs: Rhs::Build(|m| with_max_pool(m, &["?a", "?b", "?c"])) },
    // max_pool2d(kernel.conv2d(x, w)) → kernel.conv2d(x, w) {max_pool}
    Rule { name: "conv2d_max_pool_nobias", lhs: "(max_pool2d{*} (kernel.conv2d{*} ?a ?b))",   rhs: Rhs::Build(|m| with_max_pool(m, &["?a", "?b"])) },
    // max_pool2d(conv2d(x, w)) → kernel.conv2d(x, w) {max_pool}
    Rule { name: "conv2d_plain_max_pool", lhs: "(max_pool2d{*} (conv2d{*} ?a ?b))",           rhs: Rhs::Build(|m| with_max_pool(m, &["?a", "?b"])) },
    // conv2d_grad_weight(x, max_pool2d_grad(kernel.conv2d(x, w, c), g)) → kernel.conv2d_grad_weight(x, g, w, c) {max_pool}
    Rule { name: "conv2d_pool_grad_weight", lhs: "(conv2d_grad_weight{*} ?x (max_pool2d_grad{*} (kernel.conv2d{*} ?x ?w ?c) ?g))", rhs: Rhs::Build(|m| recomputing_grad_weight(m, &["?x", "?g", "?w", "?c"])) },
    // conv2d_grad_weight(x, max_pool2d_grad(kernel.conv2d(x, w), g)) → kernel.conv2d_grad_weight(x, g, w) {max_pool}
    Rule { name: "conv2d_pool_grad_weight_nobias", lhs: "(conv2d_grad_weight{*} ?x (max_pool2d_grad{*} (kernel.conv2d{*} ?x ?w) ?g))", rhs: Rhs::Build(|m| recomputing_grad_weight(m, &["?x", "?g", "?w"])) },
    // conv2d_grad_weight(x, max_pool2d_grad(conv2d(x, w), g)) → kernel.conv2d_grad_weight(x, g, w) {max_pool}
    Rule { name: "conv2d_plain_pool_grad_weight", lhs: "(conv2d_grad_weight{*} ?x (max_pool2d_grad{*} (conv2d{*} ?x ?w) ?g))", rhs: Rhs::Build(|m| recomputing_grad_weight(m, &["?x", "?g", "?w"])) },
    // conv2d_grad_input(max_pool2d_grad(y, g), w) → kernel.routed_conv2d_grad_input(y, g, w) {max_pool}
    Rule { name: "routed_grad_input",   lhs: "(conv2d_grad_input{*} (max_pool2d_grad{*} ?y ?g) ?w)", rhs: Rhs::Build(|m| routed(m, OpKind::KernelRoutedConv2dGradInput, 1, &["?y", "?g", "?w"])) },
    // conv2d_grad_weight(x, max_pool2d_grad(y, g)) → kernel.routed_conv2d_grad_weight(x, y, g) {max_pool}
    Rule { name: "routed_grad_weight",  lhs: "(conv2d_grad_weight{*} ?x (max_pool2d_grad{*} ?y ?g))", rhs: Rhs::Build(|m| routed(m, OpKind::KernelRoutedConv2dGradWeight, 1, &["?x", "?y", "?g"])) },
    // select(x > 0, max_pool2d_grad(x, g), 0) → max_pool2d_grad(x, g) {relu}
    Rule { name: "pool_grad_relu",      lhs: "(select (cmp{predicate=\"gt\"} ?x ?c) (max_pool2d_grad{*} ?x ?g) ?e)", rhs: Rhs::Build(pool_grad_relu) },
];

/// ReLU's gradient mask after max-pooling's gradient, routed by the same
/// `x` (as `relu_pool_grad` leaves autodiff's `pool(relu(x))`), as the
/// pooling gradient's `relu`: the CPU routine masks each plane while it is
/// in cache (its 2×2 AVX-512 path as it writes each window), so the
/// gradient is not written, read back and written again masked. Only a mask `x > 0` with a `+0` else-value is
/// the fused op's definition; a gradient masked already is left alone.
fn pool_grad_relu(m: &mut Match<'_>) -> Option<Id> {
    let zero = |v: Option<f64>| v.is_some_and(|v| v == 0.0 && v.is_sign_positive());
    if m.splat("?c") != Some(0.0) || !zero(m.splat("?e")) {
        return None;
    }
    let mut attrs: Attrs = m.attrs(2).clone();
    if attrs.get("relu") == Some(&Attr::Bool(true)) {
        return None;
    }
    attrs.insert("relu".into(), Attr::Bool(true));
    let (x, g) = (m.var("?x"), m.var("?g"));
    m.add(OpKind::MaxPool2dGrad, &attrs, &[x, g])
}

/// `kernel.conv2d(vars)` with the matched convolution's attributes and the
/// matched max-pool's window as `max_pool`; a convolution pooled already is
/// left alone.
fn with_max_pool(m: &mut Match<'_>, vars: &[&str]) -> Option<Id> {
    let mut attrs: Attrs = m.attrs(1).clone();
    if attrs.contains_key("max_pool") {
        return None;
    }
    let pool = m.attrs(0).clone();
    let value = dlc_ir::registry::kernel::max_pool_attr(&dlc_ir::AttrView::new(OpKind::MaxPool2d, &pool)).ok()?;
    attrs.insert("max_pool".into(), value);
    let children: Vec<Id> = vars.iter().map(|v| m.var(v)).collect();
    m.add(OpKind::KernelConv2d, &attrs, &children)
}

/// A weight gradient through a max-pool's gradient, routed by the pooled
/// convolution's own output, as `kernel.conv2d_grad_weight`, which
/// recomputes that output instead of reading it: then nothing but the
/// pooling's gradient reads the unpooled activation, and the forward pass
/// can pool its convolution before writing it (`conv2d_max_pool`). Worth
/// it where a convolution is cheap beside its output's bytes (a first
/// layer with few input channels); the cost model counts the recomputed
/// multiply-adds, so it decides. Only a convolution without ReLU or a
/// max-pool of its own, over the same window as the gradient's.
fn recomputing_grad_weight(m: &mut Match<'_>, vars: &[&str]) -> Option<Id> {
    let conv = m.attrs(2).clone();
    let view = m.view(2, OpKind::KernelConv2d);
    if view.bool("relu").ok()? || !view.ints("max_pool").ok()?.is_empty() {
        return None;
    }
    let grad = m.view(0, OpKind::Conv2dGradWeight);
    for name in ["stride", "padding", "dilation"] {
        if grad.ints(name).ok()? != view.ints(name).ok()? {
            return None;
        }
    }
    let pool = m.attrs(1).clone();
    let relu = m.view(1, OpKind::MaxPool2dGrad).bool("relu").ok()?;
    let mut attrs: Attrs = ["stride", "padding", "dilation"].iter().filter_map(|&k| conv.get(k).map(|v| (k.to_string(), v.clone()))).collect();
    attrs.insert("relu".into(), Attr::Bool(relu));
    attrs.insert("max_pool".into(), dlc_ir::registry::kernel::max_pool_attr(&dlc_ir::AttrView::new(OpKind::MaxPool2d, &pool)).ok()?);
    let children: Vec<Id> = vars.iter().map(|v| m.var(v)).collect();
    m.add(OpKind::KernelConv2dGradWeight, &attrs, &children)
}

/// A convolution gradient through a max-pool's gradient as the routed
/// kernel op `kind`, which multiplies only the windows' gradients, each at
/// its argmax, instead of the full-size gradient that is three quarters
/// zeros and never writes that: the gradient's attributes (node 0) plus
/// the pooling's window and ReLU mask (node `pool`). Only for the shapes
/// backends run routed (`registry::kernel::routed_grads_serve`): elsewhere
/// the CPU backend would write the full-size gradient after all.
fn routed(m: &mut Match<'_>, kind: OpKind, pool: usize, vars: &[&str]) -> Option<Id> {
    let mut attrs: Attrs = m.attrs(0).clone();
    let window = m.attrs(pool).clone();
    let relu = m.view(pool, OpKind::MaxPool2dGrad).bool("relu").ok()?;
    attrs.insert("relu".into(), Attr::Bool(relu));
    attrs.insert("max_pool".into(), dlc_ir::registry::kernel::max_pool_attr(&dlc_ir::AttrView::new(OpKind::MaxPool2d, &window)).ok()?);
    let children: Vec<Id> = vars.iter().map(|v| m.var(v)).collect();
    let types: Vec<dlc_ir::Type> = children.iter().map(|&c| m.egraph[c].data.ty.clone()).collect();
    if !dlc_ir::registry::kernel::routed_op_serves(kind, &types, &dlc_ir::AttrView::new(kind, &attrs)) {
        return None;
    }
    m.add(kind, &attrs, &children)
}

/// `kernel(a, b, c)` with the contraction's attributes (the match's node 1).
fn with_bias(m: &mut Match<'_>, kernel: OpKind, a: &str, b: &str) -> Option<Id> {
    let attrs = m.attrs(1).clone();
    let (a, b, c) = (m.var(a), m.var(b), m.var("?c"));
    m.add(kernel, &attrs, &[a, b, c])
}

/// `kernel(vars)` with the matched contraction's attributes and `relu`; a
/// contraction that has its ReLU already is left alone (relu is idempotent,
/// but the node would be the same class).
fn with_relu(m: &mut Match<'_>, kernel: OpKind, vars: &[&str]) -> Option<Id> {
    let mut attrs: Attrs = m.attrs(1).clone();
    if attrs.get("relu") == Some(&Attr::Bool(true)) {
        return None;
    }
    attrs.insert("relu".into(), Attr::Bool(true));
    let children: Vec<Id> = vars.iter().map(|v| m.var(v)).collect();
    m.add(kernel, &attrs, &children)
}
