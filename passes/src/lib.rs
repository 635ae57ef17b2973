//! Passes over dlc's IR.
//!
//! A pass is a named, independent unit that transforms one function and says
//! whether it changed anything. The pass manager, canonicalization, autodiff
//! and fusion build on this trait.
#![deny(missing_docs)]

pub mod autodiff;
pub mod canonicalize;
pub mod cse;
pub mod dce;
pub mod egraph;
pub mod fold;
pub mod kernel;
pub mod manager;
pub mod registry;
mod rewrite;
pub mod train_step;
pub mod train;

use dlc_ir::Function;

/// One transformation of a function.
pub trait Pass {
    /// The pass's command-line name (`dce`).
    fn name(&self) -> &'static str;
    /// One line on what it does.
    fn summary(&self) -> &'static str;
    /// Runs on `f`; returns true when the IR changed.
    fn run(&self, f: &mut Function) -> bool;
    /// Runs on `f`, or says why it cannot; the pass manager calls this. A
    /// pass that can fail overrides it; the others are [`Pass::run`].
    fn try_run(&self, f: &mut Function) -> Result<bool, String> {
        Ok(self.run(f))
    }
}

pub use autodiff::{AutodiffError, gradient};
pub use canonicalize::Canonicalize;
pub use cse::Cse;
pub use dce::Dce;
pub use egraph::Egraph;
pub use fold::Fold;
pub use kernel::{FuseKernels, LowerKernels, to_kernels};
pub use manager::{Options, PassManager, PipelineError};
pub use registry::{DEFAULT_PIPELINE, PASSES, PassInfo};
