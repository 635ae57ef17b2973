//! Losses and optimizer updates as IR, equal to PyTorch's.
//!
//! Training in dlc is one compiled program: the forward pass, the loss, its
//! gradient (the autodiff pass) and the optimizer update. This module writes
//! the two ends that are not a model's own code, as plain registry ops
//! appended with a [`dlc_ir::Builder`]:
//!
//! - [`build_loss`] appends `F.mse_loss`, `F.l1_loss`, `F.cross_entropy`,
//!   `F.binary_cross_entropy` or `F.binary_cross_entropy_with_logits`;
//! - [`BuildUpdate::build_update`] appends one step of `torch.optim.SGD`,
//!   `Adagrad`, `RMSprop`, `Adam` or `AdamW` for one parameter, with the
//!   optimizer's state as explicit values in and out (see
//!   [`Optimizer::state_slots`]), so the IR has no mutation and no control
//!   flow: "the first step" is a `dl.select` on the step count.
//!
//! Equal to PyTorch means PyTorch's formulas in PyTorch's operation order,
//! quirks included, so that results agree to rounding: the tests compare
//! against numbers saved by `tests/fixtures/train/gen_train_fixtures.py`.
//! Where PyTorch computes a coefficient in Python floats (`lr / (1 -
//! beta1**t)`), dlc computes it in f64, at build time when it depends only on
//! hyper-parameters, else as rank-0 f64 ops on the step count, and rounds it
//! to the parameter's dtype exactly where PyTorch hands the Python float to a
//! tensor op. Every tensor-sized op runs in the parameter's dtype.

mod emit;
pub mod loss;
pub mod optim;

pub use dlc_ir::train::{LossKind, LossSpec, Optimizer, Reduction};
pub use loss::build_loss;
pub use optim::BuildUpdate;
