//! `dlc compile --explain-fusion`'s per-kernel provenance: the e-graph rules
//! a kernel's `dl` ops owe their form to land on that kernel and no other,
//! and each kernel's cost before fusion is the sum of the one-kernel-per-op
//! kernels it replaces, which together account for the whole function.

mod egraph_common;

use egraph_common::bce_of_sigmoid_with_gradient;
use dlc_ir::{Function, OpId, ValueDef, parse_module, print_function};
use dlc_passes::egraph::{optimize, optimize_explained};
use dlc_passes::kernel::{FusionReport, cost, explain_with, lowered_and_fused};
use std::collections::BTreeSet;

/// The e-graph pass on `f`, then the fusion report with its provenance, and
/// the fused function's kernels in report order.
fn explained(mut f: Function) -> (FusionReport, Function, Vec<OpId>) {
    let egraph = optimize_explained(&mut f).unwrap();
    let report = explain_with(&f, &egraph.rules, Some(&egraph.plan)).unwrap();
    for k in &report.kernels {
        for r in &k.rules {
            assert!(egraph.fired.contains_key(r), "{r} is reported but did not fire:\n{egraph}{report}");
        }
    }
    let (_, k) = lowered_and_fused(&f, Some(&egraph.plan)).unwrap();
    let kernels: Vec<OpId> = k.body_ops().iter().copied().filter(|&o| cost::op_cost(&k, o).kernels > 0).collect();
    assert_eq!(kernels.len(), report.kernels.len());
    check_costs(&report);
    (report, k, kernels)
}

fn parsed(src: &str) -> Function {
    parse_module(src).unwrap().functions.remove(0)
}

/// The identity that holds by construction: every kernel of the lowered
/// function is replaced by at least one fused kernel, so the distinct
/// kernels replaced sum to the report's `before`; a fused kernel's `before`
/// is the sum of those it replaces, so the per-kernel `before`s sum to at
/// least the total, to exactly it when no producer was inlined into several
/// consumers. Returns whether one was.
fn check_costs(r: &FusionReport) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    let total: cost::Cost = r.unfused.iter().copied().sum();
    assert!(close(total.bytes, r.before.bytes) && close(total.flops, r.before.flops) && total.kernels == r.before.kernels, "{r}");
    let mut seen = BTreeSet::new();
    let mut shared = false;
    for k in &r.kernels {
        assert!(!k.replaces.is_empty() && k.before.bytes >= 0.0 && k.before.flops >= 0.0 && k.before.kernels == k.replaces.len(), "{r}");
        let sum: cost::Cost = k.replaces.iter().map(|&i| r.unfused[i]).sum();
        assert!(close(sum.bytes, k.before.bytes) && close(sum.flops, k.before.flops), "{r}");
        for &i in &k.replaces {
            shared |= !seen.insert(i);
        }
    }
    assert_eq!(seen, (0..r.unfused.len()).collect(), "a lowered kernel is replaced by no fused kernel:\n{r}");
    let per_kernel: f64 = r.kernels.iter().map(|k| k.before.bytes).sum();
    if shared {
        assert!(per_kernel > r.before.bytes, "{r}");
    } else {
        assert!(close(per_kernel, r.before.bytes), "{r}");
    }
    shared
}

/// The kernel (position in report order) that computes `f`'s `i`-th result.
fn kernel_of_result(k: &Function, kernels: &[OpId], i: usize) -> usize {
    let ValueDef::OpResult { op, .. } = k.value(k.returned_values()[i]).def else { panic!("an argument is returned") };
    kernels.iter().position(|&o| o == op).expect("a kernel computes it")
}

/// The kernels (positions) whose results `f`'s `i`-th result is computed from.
fn kernels_feeding(k: &Function, kernels: &[OpId], i: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut todo = vec![k.returned_values()[i]];
    let mut seen = BTreeSet::new();
    while let Some(v) = todo.pop() {
        if !seen.insert(v) {
            continue;
        }
        if let ValueDef::OpResult { op, .. } = k.value(v).def {
            if let Some(p) = kernels.iter().position(|&o| o == op) {
                out.insert(p);
            }
            todo.extend(k.op(op).operands.iter().copied());
        }
    }
    out
}

/// `neg(neg(x))` feeding a ReLU: `neg_neg` reroutes the ReLU to read `x`,
/// and is reported on the ReLU's kernel; the exp of `x` beside it owes
/// nothing to a rule.
#[test]
fn a_rerouting_rule_is_reported_on_the_kernel_that_reads_its_class() {
    let f = parsed(
        r#"func.func @f(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %a = "dl.neg"(%x) : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %b = "dl.neg"(%a) : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %r = "dl.relu"(%b) : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %e = "dl.exp"(%x) : (tensor<?x4xf32>) -> tensor<?x4xf32>
  return %r, %e : tensor<?x4xf32>, tensor<?x4xf32>
}"#,
    );
    let (r, k, kernels) = explained(f);
    assert_eq!(r.kernels.len(), 2, "{r}");
    let (relu, exp) = (kernel_of_result(&k, &kernels, 0), kernel_of_result(&k, &kernels, 1));
    assert_eq!(r.kernels[relu].ops, ["relu"], "{r}");
    assert_eq!(r.kernels[relu].rules, ["neg_neg"], "{r}");
    assert!(r.kernels[exp].rules.is_empty(), "{r}");
}

/// A layer whose ReLU fuses: the `kernel.matmul` with bias and ReLU owes its
/// form to both fusion rules (`matmul_bias_relu` matched the node
/// `matmul_bias` added); a kernel beside it, none.
#[test]
fn a_derived_node_reports_every_rule_of_its_derivation() {
    let f = parsed(
        r#"func.func @f(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>, %b: tensor<3xf32>) -> (tensor<?x3xf32>, tensor<?x4xf32>) {
  %y = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
  %z = "dl.add"(%y, %b) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
  %r = "dl.relu"(%z) : (tensor<?x3xf32>) -> tensor<?x3xf32>
  %e = "dl.exp"(%x) : (tensor<?x4xf32>) -> tensor<?x4xf32>
  return %r, %e : tensor<?x3xf32>, tensor<?x4xf32>
}"#,
    );
    let (r, k, kernels) = explained(f);
    let (layer, exp) = (kernel_of_result(&k, &kernels, 0), kernel_of_result(&k, &kernels, 1));
    assert_eq!(r.kernels[layer].ops, ["matmul", "add (bias)", "relu"], "{r}");
    assert_eq!(r.kernels[layer].rules, ["matmul_bias", "matmul_bias_relu"], "{r}");
    assert!(r.kernels[exp].rules.is_empty(), "{r}");
}

/// BCE through a sigmoid: the gradient rules (`bce_sigmoid_grad`, and
/// `log1p_vjp` whose node it matched) are on the kernel computing the
/// gradient, and on no kernel that only the loss reads.
#[test]
fn the_bce_gradient_rules_are_on_the_gradient_kernel_only() {
    let (r, k, kernels) = explained(bce_of_sigmoid_with_gradient());
    let grad = kernel_of_result(&k, &kernels, 1);
    for rule in ["bce_sigmoid_grad", "log1p_vjp"] {
        assert!(r.kernels[grad].rules.iter().any(|x| x == rule), "{rule} is not on the gradient's kernel #{grad}:\n{r}");
    }
    let only_loss: BTreeSet<usize> = kernels_feeding(&k, &kernels, 0).difference(&kernels_feeding(&k, &kernels, 1)).copied().collect();
    assert!(!only_loss.is_empty(), "{r}");
    for i in only_loss {
        assert!(!r.kernels[i].rules.iter().any(|x| x == "bce_sigmoid_grad" || x == "log1p_vjp" || x == "bce_floor_grad"), "kernel #{i} computes the loss only:\n{r}");
    }
}

/// A broadcast read by two elementwise kernels is inlined into both: each
/// counts it in its cost before fusion, so the per-kernel `before`s sum to
/// more than the function's, and the distinct kernels replaced to exactly it.
#[test]
fn a_producer_inlined_twice_counts_in_both_consumers() {
    let f = parsed(
        r#"func.func @f(%x: tensor<1x4xf32>, %y: tensor<3x4xf32>) -> (tensor<3x4xf32>, tensor<3x4xf32>) {
  %b = "dl.broadcast_to"(%x) {shape = [3, 4]} : (tensor<1x4xf32>) -> tensor<3x4xf32>
  %n = "dl.abs"(%b) : (tensor<3x4xf32>) -> tensor<3x4xf32>
  %s = "dl.add"(%n, %y) : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
  %p = "dl.mul"(%n, %y) : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
  return %s, %p : tensor<3x4xf32>, tensor<3x4xf32>
}"#,
    );
    let (r, _, _) = explained(f);
    assert_eq!((r.unfused.len(), r.kernels.len()), (4, 2), "{r}");
    assert!(check_costs(&r), "no lowered kernel is shared:\n{r}");
    assert!(r.kernels.iter().all(|k| k.replaces.len() == 3), "{r}");
}

/// The same input gives the same report, provenance included, byte for byte.
#[test]
fn the_report_is_deterministic() {
    let text = || {
        let mut f = bce_of_sigmoid_with_gradient();
        let egraph = optimize_explained(&mut f).unwrap();
        format!("{:?}\n{}", egraph.rules, explain_with(&f, &egraph.rules, Some(&egraph.plan)).unwrap())
    };
    assert_eq!(text(), text());
}

/// Plain compiles skip the rule log: the rewritten function is the same
/// byte for byte with and without it, and only the explained run names rules.
#[test]
fn the_rule_log_changes_nothing_but_the_report() {
    let f = bce_of_sigmoid_with_gradient();
    let (mut plain, mut explained) = (f.clone(), f);
    let (p, e) = (optimize(&mut plain).unwrap(), optimize_explained(&mut explained).unwrap());
    assert!(p.changed && e.changed);
    assert_eq!(print_function(&plain), print_function(&explained));
    assert_eq!(p.fired, e.fired);
    assert!(p.rules.is_empty());
    assert!(e.rules.values().flatten().any(|r| *r == "bce_sigmoid_grad"), "{:?}", e.rules);
}
