//! Errors: shapes and buffer sizes are checked up front, so a bad call is an
//! error value and never an out-of-bounds write inside the unsafe kernel.

use std::fmt;

/// A contraction was called with operands that do not fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContractError {
    /// Operand shapes violate the op's rules (rank, contracted dims, batch
    /// broadcast, channels, window size).
    Shape(String),
    /// A buffer's length does not match what its shape (or the op) needs.
    Len {
        /// Which buffer.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// The scratch slice is shorter than the `*_scratch_len` query asks for.
    Scratch {
        /// Elements needed.
        needed: usize,
        /// Elements given.
        found: usize,
    },
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContractError::Shape(m) => write!(f, "shape error: {m}"),
            ContractError::Len { what, expected, found } => {
                write!(f, "{what} holds {found} elements, expected {expected}")
            }
            ContractError::Scratch { needed, found } => {
                write!(f, "scratch holds {found} elements, needs {needed}")
            }
        }
    }
}

impl std::error::Error for ContractError {}

/// Checks that `what` has exactly `expected` elements.
pub(crate) fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), ContractError> {
    if expected == found { Ok(()) } else { Err(ContractError::Len { what, expected, found }) }
}
