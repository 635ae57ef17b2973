//! What can go wrong while interpreting: bad arguments, bad data (an index out
//! of range, an integer division by zero) or an IR the interpreter cannot
//! trust. Every message names the argument or op and what was expected; none
//! of these is ever a panic.

/// An error from [`crate::interp::run`] or [`crate::interp::eval_op`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    /// The caller passed the wrong number of arguments.
    #[error("@{func} takes {expected} argument(s), got {found}")]
    ArgCount {
        /// The function's name.
        func: String,
        /// How many it declares.
        expected: usize,
        /// How many were passed.
        found: usize,
    },
    /// An argument's dtype, rank or a static dim differs from its declared type.
    #[error("argument %{name}: expected {expected}, found {found}")]
    ArgType {
        /// The argument's name.
        name: String,
        /// The declared type, `tensor<?x784xf32>`.
        expected: String,
        /// What was passed, `f64[32, 784]`.
        found: String,
    },
    /// Two `?` dims were given different sizes; all of them are the one batch size.
    #[error("argument %{name}: dim {dim} is the batch dim ? and has size {found}, but %{bound_by} set the batch size to {batch}")]
    BatchMismatch {
        /// The argument with the disagreeing dim.
        name: String,
        /// Which of its dims.
        dim: usize,
        /// Its size.
        found: usize,
        /// The batch size bound earlier.
        batch: usize,
        /// The argument that bound it.
        bound_by: String,
    },
    /// An op needs the batch size (a `-1` in its shape attribute) but no
    /// argument has a `?` dim to bind it.
    #[error("'{op}' needs the batch size, but no argument has a ? dim to bind it")]
    BatchUnbound {
        /// The op's name.
        op: String,
    },
    /// A gather or one-hot index lies outside `[0, bound)`.
    #[error("'{op}': index {index} is out of range [0, {bound})")]
    IndexOutOfRange {
        /// The op's name.
        op: String,
        /// The offending index.
        index: i64,
        /// The exclusive upper bound.
        bound: usize,
    },
    /// An integer division had a zero divisor (float division gives inf or NaN instead).
    #[error("'{op}': integer division by zero")]
    DivisionByZero {
        /// The op's name.
        op: String,
    },
    /// A max or argmax over an axis of size 0, which has no answer (PyTorch
    /// raises too).
    #[error("'{op}': cannot take {what} over an empty axis")]
    EmptyReduction {
        /// The op's name.
        op: String,
        /// What was asked for (`the maximum`, `argmax`).
        what: &'static str,
    },
    /// The op does not accept these operands (a dtype its registry entry rejects).
    #[error("'{op}': {message}")]
    Unsupported {
        /// The op's name.
        op: String,
        /// What it cannot do.
        message: String,
    },
    /// The IR is inconsistent: a bad attribute, an operand used before its
    /// definition, a result that does not match its declared type. The verifier
    /// rejects such IR; the interpreter checks anyway so that an oracle never
    /// silently computes something else.
    #[error("'{op}': malformed IR: {message}")]
    Malformed {
        /// The op's name.
        op: String,
        /// What is wrong.
        message: String,
    },
}

impl InterpError {
    /// An [`InterpError::Unsupported`] for `op`.
    pub(crate) fn unsupported(op: &str, message: impl Into<String>) -> Self {
        InterpError::Unsupported { op: op.to_string(), message: message.into() }
    }

    /// An [`InterpError::Malformed`] for `op`.
    pub(crate) fn malformed(op: &str, message: impl Into<String>) -> Self {
        InterpError::Malformed { op: op.to_string(), message: message.into() }
    }
}
