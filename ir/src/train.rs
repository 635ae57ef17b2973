//! The vocabulary of training, shared by the frontend that reads a model's
//! `train { … }` block and the passes that turn it into IR: which loss, how it
//! is reduced, which optimizer with which hyper-parameters. Plain data with
//! PyTorch's names and defaults; the IR builders live in `dlc_passes::train`.

use crate::Init;

/// Which loss.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Mean squared error, `F.mse_loss`.
    Mse,
    /// Mean absolute error, `F.l1_loss`.
    L1,
    /// Cross-entropy of logits `[N, C]` against class indices `[N]`, `F.cross_entropy`.
    CrossEntropy,
    /// Binary cross-entropy of probabilities, `F.binary_cross_entropy`.
    Bce,
    /// Binary cross-entropy of logits, `F.binary_cross_entropy_with_logits`.
    BceWithLogits,
}

impl LossKind {
    /// Every loss, in declaration order.
    pub const ALL: [LossKind; 5] = [LossKind::Mse, LossKind::L1, LossKind::CrossEntropy, LossKind::Bce, LossKind::BceWithLogits];

    /// The name in the model language (`mse`, `l1`, `cross_entropy`, `bce`, `bce_with_logits`).
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::L1 => "l1",
            LossKind::CrossEntropy => "cross_entropy",
            LossKind::Bce => "bce",
            LossKind::BceWithLogits => "bce_with_logits",
        }
    }

    /// Looks a loss up by its name in the model language.
    pub fn from_name(name: &str) -> Option<LossKind> {
        LossKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// PyTorch's function name (`mse_loss`), used in error messages.
    pub fn torch_name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse_loss",
            LossKind::L1 => "l1_loss",
            LossKind::CrossEntropy => "cross_entropy",
            LossKind::Bce => "binary_cross_entropy",
            LossKind::BceWithLogits => "binary_cross_entropy_with_logits",
        }
    }
}

/// How per-element (or per-sample) losses become one number: PyTorch's
/// `reduction` argument (`"none"` is not offered: training needs a scalar).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// The mean (PyTorch's default); for cross-entropy, over the batch.
    Mean,
    /// The sum.
    Sum,
}

/// A loss and its reduction.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LossSpec {
    /// Which loss.
    pub kind: LossKind,
    /// How to reduce it.
    pub reduction: Reduction,
}

/// An optimizer and its hyper-parameters, with PyTorch's names and meaning.
/// The constructors ([`Optimizer::sgd`], …) give PyTorch's defaults.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor (0 disables the buffer).
        momentum: f64,
        /// Dampening of the gradient's share in the momentum buffer.
        dampening: f64,
        /// Nesterov momentum: step along `g + momentum·buf` instead of `buf`.
        nesterov: bool,
        /// L2 penalty added to the gradient (`g + wd·p`).
        weight_decay: f64,
    },
    /// `torch.optim.Adagrad`.
    Adagrad {
        /// Learning rate.
        lr: f64,
        /// Learning-rate decay: step t uses `lr / (1 + (t - 1)·lr_decay)`.
        lr_decay: f64,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
        /// Initial value of the sum of squared gradients.
        initial_accumulator_value: f64,
        /// Added to the square root of the sum, for stability.
        eps: f64,
    },
    /// `torch.optim.RMSprop`.
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Smoothing constant of the squared-gradient average.
        alpha: f64,
        /// Added to the root mean square, for stability.
        eps: f64,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
        /// Momentum factor (0 disables the buffer).
        momentum: f64,
        /// Normalize by the variance estimate `E[g²] - E[g]²` instead of `E[g²]`.
        centered: bool,
    },
    /// `torch.optim.Adam`.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay of the gradient average (PyTorch's `betas[0]`).
        beta1: f64,
        /// Decay of the squared-gradient average (`betas[1]`).
        beta2: f64,
        /// Added to the denominator, for stability.
        eps: f64,
        /// L2 penalty added to the gradient (coupled, unlike AdamW).
        weight_decay: f64,
        /// AMSGrad: normalize by the running maximum of the squared-gradient average.
        amsgrad: bool,
    },
    /// `torch.optim.AdamW`: Adam with decoupled weight decay.
    AdamW {
        /// Learning rate.
        lr: f64,
        /// Decay of the gradient average (`betas[0]`).
        beta1: f64,
        /// Decay of the squared-gradient average (`betas[1]`).
        beta2: f64,
        /// Added to the denominator, for stability.
        eps: f64,
        /// Decoupled decay: the parameter is first scaled by `1 - lr·wd`.
        weight_decay: f64,
        /// AMSGrad, as in Adam.
        amsgrad: bool,
    },
}

impl Optimizer {
    /// SGD with PyTorch's defaults: no momentum, dampening or weight decay.
    pub fn sgd(lr: f64) -> Self {
        Optimizer::Sgd { lr, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }

    /// Adagrad with PyTorch's defaults: `eps = 1e-10`, the rest 0.
    pub fn adagrad(lr: f64) -> Self {
        Optimizer::Adagrad { lr, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }

    /// RMSprop with PyTorch's defaults: `alpha = 0.99`, `eps = 1e-8`, not centered.
    pub fn rmsprop(lr: f64) -> Self {
        Optimizer::RmsProp { lr, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false }
    }

    /// Adam with PyTorch's defaults: betas `(0.9, 0.999)`, `eps = 1e-8`, no weight decay.
    pub fn adam(lr: f64) -> Self {
        Optimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, amsgrad: false }
    }

    /// AdamW with PyTorch's defaults: as Adam, but `weight_decay = 0.01`.
    pub fn adamw(lr: f64) -> Self {
        Optimizer::AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2, amsgrad: false }
    }

    /// The lower-case name (`sgd`, `adagrad`, `rmsprop`, `adam`, `adamw`).
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adagrad { .. } => "adagrad",
            Optimizer::RmsProp { .. } => "rmsprop",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adagrad { lr, .. }
            | Optimizer::RmsProp { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::AdamW { lr, .. } => lr,
        }
    }

    /// Names and initial values of the per-parameter state slots, in the
    /// order the update builder (`dlc_passes::train::BuildUpdate`) takes and returns them; each slot has
    /// the parameter's type. These are PyTorch's `optimizer.state[p]` keys
    /// (without `step`, which is shared and passed separately):
    /// SGD `momentum_buffer` (when momentum ≠ 0); Adagrad `sum`, starting at
    /// `initial_accumulator_value`; RMSprop `square_avg`, then
    /// `momentum_buffer` (momentum > 0) and `grad_avg` (centered); Adam and
    /// AdamW `exp_avg`, `exp_avg_sq`, then `max_exp_avg_sq` (amsgrad).
    pub fn state_slots(&self) -> Vec<(&'static str, Init)> {
        let mut s = Vec::new();
        match *self {
            Optimizer::Sgd { momentum, .. } => {
                if momentum != 0.0 {
                    s.push(("momentum_buffer", Init::Zeros));
                }
            }
            Optimizer::Adagrad { initial_accumulator_value, .. } => s.push(("sum", Init::Constant(initial_accumulator_value))),
            Optimizer::RmsProp { momentum, centered, .. } => {
                s.push(("square_avg", Init::Zeros));
                if momentum > 0.0 {
                    s.push(("momentum_buffer", Init::Zeros));
                }
                if centered {
                    s.push(("grad_avg", Init::Zeros));
                }
            }
            Optimizer::Adam { amsgrad, .. } | Optimizer::AdamW { amsgrad, .. } => {
                s.push(("exp_avg", Init::Zeros));
                s.push(("exp_avg_sq", Init::Zeros));
                if amsgrad {
                    s.push(("max_exp_avg_sq", Init::Zeros));
                }
            }
        }
        s
    }

    /// The hyper-parameter checks of PyTorch's constructors (`Invalid
    /// learning rate`, Nesterov's requirements, …); NaN fails every check.
    pub fn validate(&self) -> Result<(), String> {
        let non_neg = |name: &str, v: f64| if v >= 0.0 { Ok(()) } else { Err(format!("invalid {name}: {v} (must be >= 0)")) };
        let beta = |name: &str, v: f64| if (0.0..1.0).contains(&v) { Ok(()) } else { Err(format!("invalid {name}: {v} (must be in [0, 1))")) };
        non_neg("learning rate", self.lr())?;
        match *self {
            Optimizer::Sgd { momentum, dampening, nesterov, weight_decay, .. } => {
                non_neg("momentum", momentum)?;
                non_neg("weight_decay", weight_decay)?;
                if !dampening.is_finite() {
                    return Err(format!("invalid dampening: {dampening}"));
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err("Nesterov momentum requires a momentum and zero dampening".into());
                }
            }
            Optimizer::Adagrad { lr_decay, weight_decay, initial_accumulator_value, eps, .. } => {
                non_neg("lr_decay", lr_decay)?;
                non_neg("weight_decay", weight_decay)?;
                non_neg("initial_accumulator_value", initial_accumulator_value)?;
                non_neg("epsilon", eps)?;
            }
            Optimizer::RmsProp { alpha, eps, weight_decay, momentum, .. } => {
                non_neg("alpha", alpha)?;
                non_neg("epsilon", eps)?;
                non_neg("weight_decay", weight_decay)?;
                non_neg("momentum", momentum)?;
            }
            Optimizer::Adam { beta1, beta2, eps, weight_decay, .. } | Optimizer::AdamW { beta1, beta2, eps, weight_decay, .. } => {
                beta("beta1", beta1)?;
                beta("beta2", beta2)?;
                non_neg("epsilon", eps)?;
                non_neg("weight_decay", weight_decay)?;
            }
        }
        Ok(())
    }

    /// The same optimizer with another learning rate.
    pub fn with_lr(&self, new: f64) -> Optimizer {
        let mut o = self.clone();
        match &mut o {
            Optimizer::Sgd { lr, .. } | Optimizer::Adagrad { lr, .. } | Optimizer::RmsProp { lr, .. } | Optimizer::Adam { lr, .. } | Optimizer::AdamW { lr, .. } => *lr = new,
        }
        o
    }
}
