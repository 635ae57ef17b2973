//! Passes over dlc's IR.
//!
//! A pass is a named, independent unit that transforms one function and says
//! whether it changed anything. The pass manager, canonicalization, autodiff
//! and fusion build on this trait.
#![deny(missing_docs)]

pub mod autodiff;
pub mod dce;
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
}

pub use autodiff::{AutodiffError, gradient};
pub use dce::Dce;
