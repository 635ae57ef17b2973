//! From a model's checked `train { … }` block to a [`TrainConfig`] and the
//! compiled training program. The loss and optimizer vocabulary is shared with
//! the frontend (`dlc_ir::train`); what maps here is data sources and splits.

use super::{Split, TrainConfig};
use crate::data::{DataSpec, Format};
use crate::error::Error;
use dlc_frontend::train as fe;
use dlc_passes::train::LossSpec;

fn loss(l: &fe::LossSpec) -> LossSpec {
    LossSpec { kind: l.kind, reduction: l.reduction }
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
        optimizer: t.optimizer.kind.clone(),
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
        threads: 0,
    })
}

/// Compiles a train block's training program (`@train_step` and `@eval`) for
/// `forward`, without touching any data: what `dlc compile --emit train` prints.
pub fn program(forward: &dlc_ir::Function, t: &fe::TrainSpec) -> Result<dlc_passes::train_step::TrainProgram, Error> {
    let label = (t.loss.label.source == fe::LabelSource::Input).then_some(t.loss.label.name.as_str());
    dlc_passes::train_step::build(forward, &t.loss.output, label, &loss(&t.loss), &t.optimizer.kind).map_err(|e| Error::Input(e.0))
}

/// The gradient function of a train block's loss with respect to every
/// parameter: what `dlc compile --emit grad` prints.
pub fn gradient(forward: &dlc_ir::Function, t: &fe::TrainSpec) -> Result<dlc_ir::Function, Error> {
    let p = program(forward, t)?;
    let sig = dlc_ir::Signature::of(&p.eval).map_err(Error::Input)?;
    let params: Vec<usize> = sig.args.iter().enumerate().filter(|(_, a)| matches!(a.role, dlc_ir::Role::Param(_))).map(|(i, _)| i).collect();
    dlc_passes::gradient(&p.eval, 0, &params).map_err(|e| Error::Input(e.to_string()))
}
