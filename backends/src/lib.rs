//! dlc's backends. For now, the reference interpreter: the oracle that every
//! compiled backend (Cranelift JIT, C, CUDA) and every pass is tested against,
//! plus the run-time [`Tensor`] they all exchange and parameter initialization.
#![deny(missing_docs)]

pub mod init;
pub mod interp;
pub mod tensor;

pub use init::{init_params, init_state, init_tensor};
pub use interp::{InterpError, check_args, eval_op, run};
pub use tensor::{Tensor, TensorError};
