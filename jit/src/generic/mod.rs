//! Structured kernels, in the spirit of MLIR's `linalg.generic`: loops over
//! an iteration space with parallel and reduction dims, operands read
//! through affine maps, one scalar body. Reductions, transposes, slices,
//! broadcasts, pooling windows over padding and softmax's pieces all take
//! this form, and one loop-nest generator compiles them all.
//!
//! ```text
//! GenericBuilder ──▶ GenericSpec ──schedule──▶ strides' shapes, checks, accumulator, inner loop ──codegen──▶ loop nest + body ──launch/abi──▶ CompiledGeneric::run
//!                                          └──wide (flat f32 maps, AVX)──▶ one loop on 8-lane vectors ──┘
//! ```

pub(crate) mod codegen;
pub(crate) mod kernel;
pub(crate) mod launch;
pub(crate) mod schedule;
pub(crate) mod spec;
pub(crate) mod wide;

pub use kernel::{CompiledGeneric, Source};
pub use spec::{GenericBuilder, GenericInput, GenericOutput, GenericSpec, IterKind};
