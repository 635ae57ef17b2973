//! From a model's checked `train { … }` block to a [`TrainConfig`]: the
//! frontend's names and defaults mapped onto the trainer's, one place.

use super::{Split, TrainConfig};
use crate::data::{DataSpec, Format};
use crate::error::Error;
use dlc_frontend::train as fe;
use dlc_passes::train::{LossKind, LossSpec, Optimizer, Reduction};

fn loss(l: &fe::LossSpec) -> LossSpec {
    let kind = match l.kind {
        fe::LossKind::Mse => LossKind::Mse,
        fe::LossKind::L1 => LossKind::L1,
        fe::LossKind::CrossEntropy => LossKind::CrossEntropy,
        fe::LossKind::Bce => LossKind::Bce,
        fe::LossKind::BceWithLogits => LossKind::BceWithLogits,
    };
    let reduction = match l.reduction {
        fe::Reduction::Mean => Reduction::Mean,
        fe::Reduction::Sum => Reduction::Sum,
    };
    LossSpec { kind, reduction }
}

fn optimizer(o: &fe::Optimizer) -> Optimizer {
    match *o {
        fe::Optimizer::Sgd { lr, momentum, dampening, nesterov, weight_decay } => Optimizer::Sgd { lr, momentum, dampening, nesterov, weight_decay },
        fe::Optimizer::Adagrad { lr, lr_decay, weight_decay, initial_accumulator_value, eps } => {
            Optimizer::Adagrad { lr, lr_decay, weight_decay, initial_accumulator_value, eps }
        }
        fe::Optimizer::RmsProp { lr, alpha, eps, weight_decay, momentum, centered } => Optimizer::RmsProp { lr, alpha, eps, weight_decay, momentum, centered },
        fe::Optimizer::Adam { lr, betas: (beta1, beta2), eps, weight_decay, amsgrad } => Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, amsgrad },
        fe::Optimizer::AdamW { lr, betas: (beta1, beta2), eps, weight_decay, amsgrad } => Optimizer::AdamW { lr, beta1, beta2, eps, weight_decay, amsgrad },
    }
}

/// Replaces the learning rate.
pub fn with_lr(o: Optimizer, new: f64) -> Optimizer {
    match o {
        Optimizer::Sgd { momentum, dampening, nesterov, weight_decay, .. } => Optimizer::Sgd { lr: new, momentum, dampening, nesterov, weight_decay },
        Optimizer::Adagrad { lr_decay, weight_decay, initial_accumulator_value, eps, .. } => {
            Optimizer::Adagrad { lr: new, lr_decay, weight_decay, initial_accumulator_value, eps }
        }
        Optimizer::RmsProp { alpha, eps, weight_decay, momentum, centered, .. } => Optimizer::RmsProp { lr: new, alpha, eps, weight_decay, momentum, centered },
        Optimizer::Adam { beta1, beta2, eps, weight_decay, amsgrad, .. } => Optimizer::Adam { lr: new, beta1, beta2, eps, weight_decay, amsgrad },
        Optimizer::AdamW { beta1, beta2, eps, weight_decay, amsgrad, .. } => Optimizer::AdamW { lr: new, beta1, beta2, eps, weight_decay, amsgrad },
    }
}

/// The data spec of a train block's `data:` entry.
pub fn data(d: &fe::DataSpec) -> DataSpec {
    let mut spec = DataSpec::new(&d.path);
    spec.scale = d.scale;
    spec.label_scale = d.label_scale;
    match d.format {
        fe::DataFormat::Csv => {
            spec.format = Some(Format::Csv);
            if let Some(l) = &d.label {
                spec.label = l.clone();
            }
        }
        fe::DataFormat::Npz => {
            spec.format = Some(Format::Npz);
            spec.arrays = (d.features.clone().unwrap_or_else(|| "x".into()), d.label.clone().unwrap_or_else(|| "y".into()));
        }
        fe::DataFormat::Idx => {
            spec.format = Some(Format::Idx);
            spec.labels_path = d.label.as_ref().map(Into::into);
        }
    }
    spec
}

/// The trainer's configuration for a checked train block. `data` replaces the
/// block's data file (keeping its options when the format is the same).
pub fn from_spec(t: &fe::TrainSpec, data_override: Option<DataSpec>) -> Result<TrainConfig, Error> {
    let block_data = t.data.as_ref().map(data);
    let (data_spec, split, standardize) = match (data_override, &t.data) {
        (Some(d), _) => (d, Split::None, t.data.as_ref().is_some_and(|x| x.standardize)),
        (None, Some(d)) => {
            let split = match d.split {
                Some(train) => Split::Fraction { val: 1.0 - train, stratify: d.stratify },
                None => Split::None,
            };
            (block_data.clone().expect("data was given"), split, d.standardize)
        }
        (None, None) => return Err(Error::Input("the train block names no data; give one with --data FILE".into())),
    };
    Ok(TrainConfig {
        output: t.loss.output.clone(),
        label_input: (t.loss.label.source == fe::LabelSource::Input).then(|| t.loss.label.name.clone()),
        loss: loss(&t.loss),
        optimizer: optimizer(&t.optimizer.kind),
        epochs: t.epochs as usize,
        batch_size: t.batch_size as usize,
        seed: t.seed,
        shuffle: t.shuffle,
        data: data_spec,
        split,
        standardize,
        batch_order: None,
        init: None,
        checkpoint_dir: None,
        resume: false,
    })
}

/// Compiles a train block's training program (`@train_step` and `@eval`) for
/// `forward`, without touching any data: what `dlc compile --emit train` prints.
pub fn program(forward: &dlc_ir::Function, t: &fe::TrainSpec) -> Result<dlc_passes::train_step::TrainProgram, Error> {
    let label = (t.loss.label.source == fe::LabelSource::Input).then_some(t.loss.label.name.as_str());
    dlc_passes::train_step::build(forward, &t.loss.output, label, &loss(&t.loss), &optimizer(&t.optimizer.kind)).map_err(|e| Error::Input(e.0))
}

/// The gradient function of a train block's loss with respect to every
/// parameter: what `dlc compile --emit grad` prints.
pub fn gradient(forward: &dlc_ir::Function, t: &fe::TrainSpec) -> Result<dlc_ir::Function, Error> {
    let p = program(forward, t)?;
    let sig = dlc_ir::Signature::of(&p.eval).map_err(Error::Input)?;
    let params: Vec<usize> = sig.args.iter().enumerate().filter(|(_, a)| matches!(a.role, dlc_ir::Role::Param(_))).map(|(i, _)| i).collect();
    dlc_passes::gradient(&p.eval, 0, &params).map_err(|e| Error::Input(e.to_string()))
}
