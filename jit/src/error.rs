//! What can go wrong: building a kernel spec, compiling it, or calling it
//! with buffers that do not fit. Every check that stands between safe Rust
//! and machine code returns one of these instead of running the code.

use dlc_ir::DType;

/// An error from the JIT: the spec, the host, code generation, or a call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JitError {
    /// The op or dtype is outside what the JIT compiles.
    #[error("'{op}' is not supported by the JIT: {reason}")]
    Unsupported {
        /// The op (or `dtype`/`input` for non-op causes).
        op: String,
        /// Why not.
        reason: String,
    },
    /// The registry rejected an op's operands or attributes (its shape rule failed).
    #[error("'{op}' {message}")]
    Registry {
        /// The op's name.
        op: &'static str,
        /// The shape rule's message.
        message: String,
    },
    /// The spec is malformed (a node refers forward, a stride list has the wrong length, …).
    #[error("invalid kernel spec: {0}")]
    InvalidSpec(String),
    /// The host CPU is not one Cranelift can target.
    #[error("the host CPU is not supported by Cranelift: {0}")]
    Host(String),
    /// Cranelift rejected the generated code (a bug in the JIT, never the caller's input).
    #[error("code generation failed: {0}")]
    Codegen(String),
    /// A call passed the wrong number of input buffers.
    #[error("the kernel takes {expected} input buffer(s), got {found}")]
    InputCount {
        /// Inputs in the spec.
        expected: usize,
        /// Buffers given.
        found: usize,
    },
    /// An in-place call asked an input that is not read in full, row-major,
    /// to read the output.
    #[error("input {0} is broadcast along some dim, so it cannot share the output's buffer")]
    InPlace(usize),
    /// A call passed a shape of the wrong rank.
    #[error("the kernel's iteration space has rank {expected}, got shape {found:?}")]
    Rank {
        /// The spec's rank.
        expected: usize,
        /// The shape given.
        found: Vec<usize>,
    },
    /// A buffer's element type differs from the spec's.
    #[error("{what} must hold {expected}, got {found}")]
    DType {
        /// `input 2` or `output`.
        what: String,
        /// The spec's dtype.
        expected: DType,
        /// The buffer's dtype.
        found: DType,
    },
    /// A buffer's length does not match the shape.
    #[error("{what} must hold {expected} element(s) for shape {shape:?}, got {found}")]
    Len {
        /// `input 2` or `output`.
        what: String,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        found: usize,
        /// The iteration shape.
        shape: Vec<usize>,
    },
    /// A structured kernel's call whose shapes do not fit its maps: an
    /// operand of the wrong rank, an access outside an operand without
    /// padding, an output shape that is not the output map's image, a bad
    /// row range.
    #[error("{what}: {message}")]
    Shape {
        /// `input 2`, `output`, `sizes` or `range`.
        what: String,
        /// What does not fit.
        message: String,
    },
    /// The shape's element count (in bytes) does not fit the address space.
    #[error("shape {0:?} is too large")]
    TooLarge(Vec<usize>),
}

impl JitError {
    pub(crate) fn unsupported(op: impl Into<String>, reason: impl Into<String>) -> Self {
        JitError::Unsupported { op: op.into(), reason: reason.into() }
    }

    pub(crate) fn codegen(e: impl std::fmt::Display) -> Self {
        JitError::Codegen(e.to_string())
    }
}
