//! dlc's CPU JIT: fused kernels compiled to machine code with Cranelift.
//!
//! Two kernel forms share one scalar body (a DAG of registry ops, `dag.rs`),
//! its plan (`plan.rs`: liveness, fma) and its emission (`body.rs`,
//! `math.rs`, `lanes.rs`), and differ in their loop nests:
//!
//! - **Elementwise** ([`KernelSpec`]): N broadcast inputs, one output of the
//!   iteration shape. [`lower_function`] builds one from a `dl` function of
//!   elementwise ops; [`Jit::compile`] gives a [`CompiledKernel`].
//! - **Structured** ([`GenericSpec`], in the spirit of MLIR's
//!   `linalg.generic`): parallel and reduction iterators, each input read
//!   through an affine map (optionally padded outside its bounds), an
//!   accumulator, an output written through a projection. Reductions,
//!   transposes, slices, broadcasts and pooling windows all take this form;
//!   [`Jit::compile_generic`] gives a [`CompiledGeneric`], whose
//!   [`run_range`](CompiledGeneric::run_range) splits dim 0 over threads.
//!
//! Both `run`s check every buffer, shape and index range before the machine
//! code sees them (all `unsafe` is in `abi.rs`); a bad call is an error,
//! never a wild access. The interpreter in `dlc-backends` is the oracle the
//! tests hold them to.
//!
//! ```text
//! dl ops ──lower──▶ KernelSpec ──plan──▶ live nodes, fma, vector width ──codegen──▶ loop nest + body (Cranelift) ──abi──▶ CompiledKernel::run
//! GenericBuilder ──▶ GenericSpec ──schedule──▶ strides, checks, accumulator, inner loop ──generic/codegen──▶ loop nest + body ──launch, abi──▶ CompiledGeneric::run
//! ```
//!
//! `relu(x·w + b)` with `b` a row broadcast over the rows of a 2×3 output:
//!
//! ```
//! use dlc_ir::{Attrs, DType, OpKind};
//! use dlc_jit::{Access, Jit, KernelBuilder};
//! # fn main() -> Result<(), dlc_jit::JitError> {
//! let mut k = KernelBuilder::new(2)?;
//! let x = k.input(DType::F32, &[Access::Full, Access::Full])?;
//! let w = k.input(DType::F32, &[Access::Full, Access::Full])?;
//! let b = k.input(DType::F32, &[Access::Broadcast, Access::Full])?;
//! let xw = k.op(OpKind::Mul, &[x, w], Attrs::new())?;
//! let y = k.op(OpKind::Add, &[xw, b], Attrs::new())?; // one fma with JitOptions { fma: true }
//! let y = k.op(OpKind::Relu, &[y], Attrs::new())?;
//! let kernel = Jit::new()?.compile(&k.finish(y)?)?;
//!
//! let mut out = [0.0f32; 6];
//! kernel.run(&[&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1.0; 6], &[-2.0, 0.0, 1.0]], &mut out, &[2, 3])?;
//! assert_eq!(out, [0.0, 2.0, 4.0, 2.0, 5.0, 7.0]);
//! // A buffer that does not fit the shape is an error, not a wild read.
//! assert!(kernel.run(&[&[1.0; 5], &[1.0; 6], &[0.0; 3]], &mut out, &[2, 3]).is_err());
//! # Ok(()) }
//! ```
//!
//! The sum of each row of a 2×3 matrix as a structured kernel: `d0` is
//! parallel, `d1` a reduction, and the body adds each element to the
//! accumulator (on `f32x4` partial sums, here over a row too short for one):
//!
//! ```
//! use dlc_ir::{AffineMap, Attrs, DType, OpKind};
//! use dlc_jit::{Buffer, BufferMut, GenericBuilder, IterKind, Jit};
//! # fn main() -> Result<(), dlc_jit::JitError> {
//! let mut g = GenericBuilder::new(&[IterKind::Parallel, IterKind::Reduction], DType::F32)?;
//! let x = g.input(DType::F32, AffineMap::identity(2), None)?;
//! let acc = g.acc()?;
//! let s = g.op(OpKind::Add, &[acc, x], Attrs::new())?;
//! let kernel = Jit::new()?.compile_generic(&g.finish(s, AffineMap::projection(2, &[0]), Some(0.0))?)?;
//!
//! let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let mut out = [0.0f32; 2];
//! kernel.run(&[(Buffer::F32(&x), &[2, 3])], (BufferMut::F32(&mut out), &[2]), &[2, 3])?;
//! assert_eq!(out, [6.0, 15.0]);
//! // Reading 4 columns of a 3-column matrix is an error, not a wild read.
//! assert!(kernel.run(&[(Buffer::F32(&x), &[2, 3])], (BufferMut::F32(&mut out), &[2]), &[2, 4]).is_err());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod abi;
mod body;
mod codegen;
mod dag;
mod error;
mod generic;
mod kernel;
mod lanes;
mod loops;
mod lower;
mod math;
mod plan;
mod spec;

pub use codegen::{Jit, JitOptions};
pub use error::JitError;
pub use generic::{CompiledGeneric, Source, GenericBuilder, GenericInput, GenericOutput, GenericSpec, IterKind};
pub use kernel::{Buffer, BufferMut, CompiledKernel};
pub use lower::{Lowered, lower_function};
pub use spec::{Access, InputSpec, KernelBuilder, KernelSpec, Node, NodeId};
