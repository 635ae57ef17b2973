//! The contraction fast path of dlc's CPU JIT: `dl.matmul` and `dl.conv2d`
//! (and conv2d's two gradients) on the `gemm` crate's micro-kernels.
//!
//! Why a library and not Cranelift: Cranelift's x86-64 SIMD is 128-bit only,
//! and a matmul kernel written in its IR reached 27–39 GFLOP/s on these
//! machines, while `gemm` with its `x86-v4` (AVX-512) kernels reaches 106–112
//! (peak 115 per core). So the JIT compiles everything *around* contractions
//! and calls this crate for the contractions themselves (see DESIGN.md,
//! "Decisions measured on these machines").
//!
//! What this crate adds on top of a bare `gemm` call:
//! - the semantics of `dl.matmul` (rank ≥ 2, broadcast batch dims, transpose
//!   flags) and of `dl.conv2d` (NCHW/OIHW, stride, padding, dilation), checked
//!   against the interpreter in the tests;
//! - a fused [`Epilogue`] (bias add and ReLU) applied to each block of the
//!   output right after the kernel wrote it, while it is still in cache;
//! - [`PackedB`]: constant weights copied once into the layout the kernel is
//!   fastest with;
//! - direct AVX-512 kernels and Winograd F(4×4, 3×3) where they beat
//!   im2col + `gemm` (measured; see `direct.rs` and `winograd.rs`);
//! - im2col buffers from a caller-provided scratch slice, so the hot path
//!   allocates nothing of its own (the [`conv2d_scratch_len`] family says how
//!   much).
//!
//! Threads: every entry point takes `threads`, the number of workers it may
//! use. With more than one, work runs on the *current* rayon pool (the global
//! one, or the pool a caller entered with `ThreadPool::install`), split into at
//! most `threads` static jobs; below about 0.5 M multiply-adds one thread is
//! used, as a second costs more than it saves. [`matmul`], [`matmul_packed`],
//! [`conv2d`] and [`conv2d_grad_input`] give bit-identical results at any
//! thread count (no split changes the order of a sum's terms);
//! [`conv2d_grad_weight`] adds per-job partial sums, so its rounding depends
//! on the thread count. Everything is bit-identical run to run at a fixed
//! thread count.
//!
//! Measured figures (GFLOP/s per shape, 1 and 2 threads) come from
//! `cargo bench -p dlc-contract --bench contract`; the doc comments quote
//! them where they decided something.
#![deny(missing_docs)]

mod conv;
mod direct;
mod epilogue;
mod error;
mod im2col;
mod kernel;
mod matmul;
mod pack;
mod mono;
mod pooled;
mod routed;
mod winograd;

pub use conv::{
    Conv2d, conv2d, conv2d_grad_input, conv2d_grad_input_scratch_len, conv2d_grad_weight,
    conv2d_grad_weight_scratch_len, conv2d_scratch_len,
};
pub use epilogue::Epilogue;
pub use error::ContractError;
pub use matmul::{Transpose, View, matmul, matmul_shape};
pub use pack::{PackedB, matmul_packed};
pub use pooled::{
    MaxPool2d, conv2d_max_pool, conv2d_max_pool_grad_weight, conv2d_max_pool_grad_weight_applies,
    conv2d_max_pool_grad_weight_scratch_len, conv2d_max_pool_scratch_len, conv2d_max_pool_shape,
};
pub use routed::{
    conv2d_grad_input_routed, conv2d_grad_input_routed_scratch_len, conv2d_grad_weight_routed,
    conv2d_grad_weight_routed_scratch_len, conv2d_routed_grads_apply,
};
#[doc(hidden)]
pub use pooled::{conv2d_max_pool_is_mono, conv2d_max_pool_is_winograd};

// Tuning knobs, public for the benchmark's sweeps only.
#[doc(hidden)]
pub use conv::MIN_GROUP_COLS;
#[doc(hidden)]
pub use direct::{DIRECT, MIN_DIRECT_TAPS};
#[doc(hidden)]
pub use mono::MONO;
#[doc(hidden)]
pub use routed::{ROUTED, ROUTED_AVX512};
#[doc(hidden)]
pub use conv::{conv2d_grad_input_is_winograd, conv2d_is_direct, conv2d_is_mono, conv2d_is_winograd};
#[doc(hidden)]
pub use winograd::{MIN_WINO_CHANNELS, WINO_BLOCK_BYTES, WINO_TILE, WINOGRAD};
#[doc(hidden)]
pub use matmul::{ROW_BLOCK_BYTES, SPLIT_ROWS, TRANSPOSE_B};

/// The element types the fast path serves: `f32` and `f64`, the float dtypes
/// of `dl.matmul` and `dl.conv2d` (both have `gemm` kernels). Sealed: other
/// types have no kernel.
pub trait Element:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Negative infinity (max-pooling's padding).
    const NEG_INFINITY: Self;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
