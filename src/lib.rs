//! dlc: a deep-learning compiler for small and mid-sized models.
//!
//! A model written in the `.dl` language (or IR text) becomes a `dl`-dialect
//! [`ir::Module`]; the [`backends`] run it. This crate is the facade that ties
//! the pipeline crates together for host programs and the `dlc` command:
//!
//! ```
//! let src = "model Affine {
//!     input x: f32[batch, 3]
//!     fc = Linear(3, 2)
//!     output y = fc(x)
//! }";
//! let program = dlc::Program::from_source("affine.dl", src, dlc::SourceKind::Dl)?;
//! let sig = program.signature()?;
//! assert_eq!(sig.outputs[0].0, "y");
//! # Ok::<(), dlc::Error>(())
//! ```
#![deny(missing_docs)]

pub mod data;
pub mod error;
pub mod io;
pub mod model;
pub mod program;
pub mod train;

pub use dlc_backends as backends;
pub use dlc_cpu as cpu;
pub use dlc_frontend as frontend;
pub use dlc_ir as ir;
pub use dlc_passes as passes;

pub use backends::Tensor;
pub use error::Error;
pub use model::{Backend, Model, Options, StepResult, StepTrainer};
pub use program::{Program, SourceKind};
