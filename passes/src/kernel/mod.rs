//! The structured-kernel level: lowering `dl` ops to kernels, fusing them,
//! and the cost model both are judged by.
//!
//! ```text
//! dl ops ──lower-kernels──▶ one kernel.generic / kernel.matmul / kernel.conv2d per op
//!        ──fuse-kernels───▶ epilogues in contractions, producers inlined into consumers
//!                           (as the e-graph pass's fusion plan says, where it has one)
//!        ──dce────────────▶ the kernel-level function the CPU backend compiles
//! ```
//!
//! `dlc compile --emit kernel` prints the result; `dlc opt --lower-kernels
//! --fuse-kernels` runs the stages one by one.

pub mod cost;
pub mod fuse;
pub mod lower;
pub mod nest;

pub use fuse::{Fuse, FuseKernels, FusionTrace, KernelPlan, fuse_traced};
pub use lower::{LowerKernels, LoweringTrace, lower_traced};

use crate::Pass;
use dlc_ir::{Function, OpId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The kernel pipeline, as pass names: lowering, fusion, then DCE for the
/// constants and views that fusion left unused.
pub const KERNEL_PIPELINE: &[&str] = &["lower-kernels", "fuse-kernels", "dce"];

/// Runs the kernel pipeline on `f` (which should already be optimized at the
/// `dl` level).
pub fn to_kernels(f: &mut Function) -> Result<(), String> {
    to_kernels_with(f, true)
}

/// [`to_kernels`], with fusion or without (one kernel per op: what the
/// benchmarks compare fusion against).
pub fn to_kernels_with(f: &mut Function, fuse: bool) -> Result<(), String> {
    to_kernels_planned(f, fuse, None)
}

/// [`to_kernels_with`], fusion following the e-graph pass's plan for `f`
/// (`egraph::Report::plan`, made for this very function) where it has a
/// decision.
pub fn to_kernels_planned(f: &mut Function, fuse: bool, plan: Option<&crate::egraph::plan::FusionPlan>) -> Result<(), String> {
    let (_, _, results) = lower::lower_with_results(f)?;
    if fuse {
        let plan = plan.map(|p| kernel_plan(f, p, &results));
        fuse::fuse_traced_with(f, plan.as_ref())?;
    }
    crate::Dce.run(f);
    Ok(())
}

/// The plan's decisions keyed by the kernel that computes each planned
/// op's result in the lowered `f` (`results`: from the lowering).
fn kernel_plan(f: &Function, plan: &crate::egraph::plan::FusionPlan, results: &[(OpId, dlc_ir::ValueId)]) -> KernelPlan {
    let mut out = KernelPlan::new();
    for (o, v) in results {
        let Some(d) = plan.ops.get(o) else { continue };
        if let dlc_ir::ValueDef::OpResult { op, .. } = f.value(*v).def
            && f.op(op).kind == dlc_ir::OpKind::Generic
        {
            out.insert(op, *d);
        }
    }
    out
}

/// What fusion did to one function, for `dlc compile --explain-fusion`.
#[derive(Clone, Debug)]
pub struct FusionReport {
    /// The function's name.
    pub function: String,
    /// Cost of the lowered function, one kernel per `dl` op.
    pub before: cost::Cost,
    /// Cost after fusion.
    pub after: cost::Cost,
    /// The cost of each kernel of the lowered function (one kernel per op),
    /// in order: they sum to `before`, and [`KernelReport::replaces`] points
    /// into them.
    pub unfused: Vec<cost::Cost>,
    /// Each kernel of the fused function, in order.
    pub kernels: Vec<KernelReport>,
}

/// One kernel of the fused function.
#[derive(Clone, Debug)]
pub struct KernelReport {
    /// What it is: `generic`, `generic/reduce`, `generic/3 results` (a
    /// kernel with several results), `matmul`, `conv2d`, or the op a
    /// backend runs directly.
    pub what: String,
    /// The `dl` ops it computes.
    pub ops: Vec<String>,
    /// The kernels of the lowered function (one kernel per op) it replaces,
    /// as positions among that function's kernels. Every lowered kernel is
    /// replaced by at least one fused kernel; a producer inlined into
    /// several consumers, by each of them.
    pub replaces: Vec<usize>,
    /// The summed cost of the kernels it replaces. These sum to the
    /// function's `before` when no producer was inlined into several
    /// consumers, and to more otherwise (each counts it).
    pub before: cost::Cost,
    /// Its own cost.
    pub after: cost::Cost,
    /// The e-graph rules the `dl` ops it computes owe their form to
    /// (`egraph::Report::rules`), sorted.
    pub rules: Vec<String>,
}

impl std::fmt::Display for FusionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kb = |c: &cost::Cost| c.bytes / 1024.0;
        writeln!(f, "@{}: {} kernels -> {}, {:.1} KiB moved -> {:.1} KiB, {:.0} -> {:.0} kFLOP, est. {:.1} -> {:.1} us (a ? batch counts as {})",
            self.function, self.before.kernels, self.after.kernels, kb(&self.before), kb(&self.after),
            self.before.flops / 1e3, self.after.flops / 1e3, self.before.time_ns() / 1e3, self.after.time_ns() / 1e3, cost::NOMINAL_BATCH)?;
        for (i, k) in self.kernels.iter().enumerate() {
            let ops = if k.ops.is_empty() { String::new() } else { format!(" <- {}", k.ops.join(" ")) };
            let rules = if k.rules.is_empty() { String::new() } else { format!("; rules: {}", k.rules.join(", ")) };
            writeln!(
                f,
                "  #{i:<3} {:<18} {:>3} -> 1 {:>8.1} -> {:>8.1} KiB {:>7.0} -> {:>7.0} kFLOP{ops}{rules}",
                k.what,
                k.replaces.len(),
                kb(&k.before),
                kb(&k.after),
                k.before.flops / 1e3,
                k.after.flops / 1e3
            )?;
        }
        Ok(())
    }
}

/// `f` (a `dl`-level function) lowered to one kernel per op, and then
/// fused (following `plan`, made for `f`, where given): the two ends of
/// [`KERNEL_PIPELINE`], for reports that compare them.
pub fn lowered_and_fused(f: &Function, plan: Option<&crate::egraph::plan::FusionPlan>) -> Result<(Function, Function), String> {
    traced(f, plan).map(|t| (t.lowered, t.fused))
}

/// The two ends of [`KERNEL_PIPELINE`], and how the ops of each came from
/// the one before.
struct Traced {
    lowered: Function,
    fused: Function,
    lowering: lower::LoweringTrace,
    fusion: fuse::FusionTrace,
}

fn traced(f: &Function, plan: Option<&crate::egraph::plan::FusionPlan>) -> Result<Traced, String> {
    let mut lowered = f.clone();
    let (_, lowering, results) = lower::lower_with_results(&mut lowered)?;
    crate::Dce.run(&mut lowered);
    let plan = plan.map(|p| kernel_plan(&lowered, p, &results));
    let mut fused = lowered.clone();
    let (_, fusion) = fuse::fuse_traced_with(&mut fused, plan.as_ref())?;
    crate::Dce.run(&mut fused);
    Ok(Traced { lowered, fused, lowering, fusion })
}

/// [`explain_with`] without e-graph provenance.
pub fn explain(f: &Function) -> Result<FusionReport, String> {
    explain_with(f, &BTreeMap::new(), None)
}

/// Lowers `f` (a `dl`-level function) to kernels and reports what fusion did:
/// the cost before (one kernel per op) and after, and each fused kernel with
/// the `dl` ops it computes, the lowered kernels it replaces and their cost,
/// and the e-graph rules its ops owe their form to (`rules`: by op of `f`,
/// as `egraph::Report::rules` gives them for the function it rewrote), fusion
/// following `plan` (`egraph::Report::plan`) where given.
pub fn explain_with(f: &Function, rules: &BTreeMap<OpId, Vec<&'static str>>, plan: Option<&crate::egraph::plan::FusionPlan>) -> Result<FusionReport, String> {
    let Traced { lowered, fused: k, lowering, fusion } = traced(f, plan)?;
    let before = cost::function_cost(&lowered);
    let after = cost::function_cost(&k);
    // The `dl` op each lowered op came from, and what each fused op replaced.
    let dl_of: HashMap<OpId, OpId> = lowering.iter().flat_map(|(o, became)| became.iter().map(move |&b| (b, *o))).collect();
    let replaced: HashMap<OpId, Vec<OpId>> = fusion.into_iter().collect();
    let unfused_ops: Vec<OpId> = lowered.body_ops().iter().copied().filter(|&o| cost::op_cost(&lowered, o).kernels > 0).collect();
    let unfused: Vec<cost::Cost> = unfused_ops.iter().map(|&o| cost::op_cost(&lowered, o)).collect();
    let position: HashMap<OpId, usize> = unfused_ops.iter().enumerate().map(|(i, &o)| (o, i)).collect();
    let mut kernels = Vec::new();
    for &o in k.body_ops() {
        let op = k.op(o);
        let c = cost::op_cost(&k, o);
        if c.kernels == 0 {
            continue;
        }
        let short = |n: &str| n.split_once('.').map_or(n, |(_, s)| s).to_string();
        let (what, ops) = match op.kind {
            dlc_ir::OpKind::Generic => {
                let (g, _) = dlc_ir::kernel::Generic::read(&k, o)?;
                let what = match (g.reduces(), g.extra.len()) {
                    (true, _) => "generic/reduce".to_string(),
                    (false, 0) => "generic".to_string(),
                    (false, n) => format!("generic/{} results", n + 1),
                };
                (what, g.fused.iter().map(|s| short(s)).collect())
            }
            dlc_ir::OpKind::KernelMatmul | dlc_ir::OpKind::KernelConv2d => {
                let view = dlc_ir::AttrView::new(op.kind, &op.attrs);
                let mut ops = vec![short(op.kind.name()).replace("kernel.", "")];
                if op.operands.len() > 2 {
                    ops.push("add (bias)".into());
                }
                if view.bool("relu").unwrap_or(false) {
                    ops.push("relu".into());
                }
                (short(op.kind.name()), ops)
            }
            kind => (short(kind.name()), Vec::new()),
        };
        let parts = lowered_parts(o, &replaced);
        let mut replaces: Vec<usize> = parts.iter().filter_map(|p| position.get(p).copied()).collect();
        replaces.sort_unstable();
        let before = replaces.iter().map(|&i| unfused[i]).sum();
        let rules: BTreeSet<&str> = parts.iter().filter_map(|p| dl_of.get(p)).filter_map(|d| rules.get(d)).flatten().copied().collect();
        kernels.push(KernelReport { what, ops, replaces, before, after: c, rules: rules.into_iter().map(String::from).collect() });
    }
    Ok(FusionReport { function: f.name.clone(), before, after, unfused, kernels })
}

/// The ops of the lowered function that fused op `o` replaced (`o` itself
/// when fusion left it alone).
fn lowered_parts(o: OpId, replaced: &HashMap<OpId, Vec<OpId>>) -> BTreeSet<OpId> {
    let mut out = BTreeSet::new();
    let mut todo = vec![o];
    while let Some(p) = todo.pop() {
        match replaced.get(&p) {
            Some(parts) => todo.extend(parts.iter().copied()),
            None => {
                out.insert(p);
            }
        }
    }
    out
}
