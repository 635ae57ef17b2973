//! dlc's CPU JIT: fused elementwise kernels compiled to machine code with
//! Cranelift.
//!
//! A [`KernelSpec`] says what a kernel computes: a DAG of registry ops over
//! N broadcast input buffers, one output. [`lower_function`] builds one from
//! a `dl` function of elementwise ops; [`Jit::compile`] turns it into a
//! [`CompiledKernel`], whose safe `run` checks every buffer before the
//! machine code sees it. The interpreter in `dlc-backends` is the oracle the
//! tests hold it to.
//!
//! ```text
//! dl ops ──lower──▶ KernelSpec ──plan──▶ live nodes, fma, vector width ──codegen──▶ loop nest + body (Cranelift) ──abi──▶ CompiledKernel::run
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
//! let y = k.op(OpKind::Add, &[xw, b], Attrs::new())?; // one fma
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
#![deny(missing_docs)]

mod abi;
mod body;
mod codegen;
mod error;
mod kernel;
mod lanes;
mod lower;
mod math;
mod plan;
mod spec;

pub use codegen::{Jit, JitOptions};
pub use error::JitError;
pub use kernel::{Buffer, BufferMut, CompiledKernel};
pub use lower::{Lowered, lower_function};
pub use spec::{Access, InputSpec, KernelBuilder, KernelSpec, Node, NodeId};
