//! The structured-kernel level: lowering `dl` ops to kernels, fusing them,
//! and the cost model both are judged by.
//!
//! ```text
//! dl ops ──lower-kernels──▶ one kernel.generic / kernel.matmul / kernel.conv2d per op
//!        ──fuse-kernels───▶ epilogues in contractions, producers inlined into consumers
//!        ──dce────────────▶ the kernel-level function the CPU backend compiles
//! ```
//!
//! `dlc compile --emit kernel` prints the result; `dlc opt --lower-kernels
//! --fuse-kernels` runs the stages one by one.

pub mod cost;
pub mod fuse;
pub mod lower;

pub use fuse::FuseKernels;
pub use lower::LowerKernels;

use crate::Pass;
use dlc_ir::Function;

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
    LowerKernels.try_run(f)?;
    if fuse {
        FuseKernels.try_run(f)?;
    }
    crate::Dce.run(f);
    Ok(())
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
    /// Per kernel of the fused function: its description, the `dl` ops it
    /// computes, and its cost.
    pub kernels: Vec<(String, Vec<String>, cost::Cost)>,
}

impl std::fmt::Display for FusionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kb = |c: &cost::Cost| c.bytes / 1024.0;
        writeln!(f, "@{}: {} kernels -> {}, {:.1} KiB moved -> {:.1} KiB, {:.0} -> {:.0} kFLOP, est. {:.1} -> {:.1} us (a ? batch counts as {})",
            self.function, self.before.kernels, self.after.kernels, kb(&self.before), kb(&self.after),
            self.before.flops / 1e3, self.after.flops / 1e3, self.before.time_ns() / 1e3, self.after.time_ns() / 1e3, cost::NOMINAL_BATCH)?;
        for (i, (what, ops, c)) in self.kernels.iter().enumerate() {
            let ops = if ops.is_empty() { String::new() } else { format!(" <- {}", ops.join(" ")) };
            writeln!(f, "  #{i:<3} {what:<16} {:>9.1} KiB {:>9.0} kFLOP{ops}", kb(c), c.flops / 1e3)?;
        }
        Ok(())
    }
}

/// `f` (a `dl`-level function) lowered to one kernel per op, and then
/// fused: the two ends of [`KERNEL_PIPELINE`], for reports that compare them.
pub fn lowered_and_fused(f: &Function) -> Result<(Function, Function), String> {
    let mut lowered = f.clone();
    to_kernels_with(&mut lowered, false)?;
    let mut k = lowered.clone();
    FuseKernels.try_run(&mut k)?;
    crate::Dce.run(&mut k);
    Ok((lowered, k))
}

/// Lowers `f` (a `dl`-level function) to kernels and reports what fusion did:
/// the cost before (one kernel per op) and after, and each fused kernel.
pub fn explain(f: &Function) -> Result<FusionReport, String> {
    let (lowered, k) = lowered_and_fused(f)?;
    let before = cost::function_cost(&lowered);
    let after = cost::function_cost(&k);
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
                let what = if g.reduces() { "generic/reduce" } else { "generic" };
                (what.to_string(), g.fused.iter().map(|s| short(s)).collect())
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
        kernels.push((what, ops, c));
    }
    Ok(FusionReport { function: f.name.clone(), before, after, kernels })
}
