//! Why a gradient could not be built.

use dlc_ir::{BuildError, Type, VerifyError};
use std::fmt;

/// A gradient request that cannot be met, or a rule that misbehaved.
#[derive(Clone, Debug, PartialEq)]
pub enum AutodiffError {
    /// The function does not verify, so its ops cannot be trusted.
    Invalid(Vec<VerifyError>),
    /// The loss index is not one of the function's results.
    ResultOutOfRange {
        /// The requested result.
        index: usize,
        /// How many results the function has.
        count: usize,
    },
    /// The loss is not a rank-0 float tensor.
    NotScalarLoss {
        /// The result's index.
        index: usize,
        /// Its type.
        ty: Type,
    },
    /// An argument index is not one of the function's arguments.
    ArgOutOfRange {
        /// The requested argument.
        index: usize,
        /// How many arguments the function has.
        count: usize,
    },
    /// A gradient was asked for an argument that is not a float tensor.
    NotFloatArg {
        /// The argument's name.
        name: String,
        /// Its type.
        ty: Type,
    },
    /// The loss depends on an op that has no VJP rule.
    NoVjp {
        /// The op, as its printed line starts (`%3 = "dl.argmax"`).
        op: String,
    },
    /// An op's VJP rule could not build its gradient.
    Rule {
        /// The op being differentiated.
        op: String,
        /// What went wrong.
        error: BuildError,
    },
    /// The gradient function does not verify: a VJP rule is wrong.
    Internal(Vec<VerifyError>),
}

impl fmt::Display for AutodiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, errs: &[VerifyError]| {
            errs.iter().try_for_each(|e| write!(f, "\n  {e}"))
        };
        match self {
            AutodiffError::Invalid(errs) => {
                f.write_str("cannot differentiate a function that does not verify:")?;
                list(f, errs)
            }
            AutodiffError::ResultOutOfRange { index, count } => {
                write!(f, "loss result #{index} does not exist: the function has {count} result(s)")
            }
            AutodiffError::NotScalarLoss { index, ty } => {
                write!(f, "loss result #{index} must be a rank-0 float tensor, got {ty}")
            }
            AutodiffError::ArgOutOfRange { index, count } => {
                write!(f, "argument #{index} does not exist: the function has {count} argument(s)")
            }
            AutodiffError::NotFloatArg { name, ty } => {
                write!(f, "cannot differentiate with respect to %{name}: it has type {ty}, not a float tensor")
            }
            AutodiffError::NoVjp { op } => write!(f, "the loss depends on op '{op}', which has no VJP rule"),
            AutodiffError::Rule { op, error } => write!(f, "the VJP rule of op '{op}' failed: {error}"),
            AutodiffError::Internal(errs) => {
                f.write_str("internal error: the gradient function does not verify:")?;
                list(f, errs)
            }
        }
    }
}

impl std::error::Error for AutodiffError {}
