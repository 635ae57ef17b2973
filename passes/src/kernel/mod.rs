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
    LowerKernels.try_run(f)?;
    FuseKernels.try_run(f)?;
    crate::Dce.run(f);
    Ok(())
}
