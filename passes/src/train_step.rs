//! Training as compilation: a model's forward function, a loss and an
//! optimizer become one `@train_step` function, so every backend that runs IR
//! runs training.
//!
//! ```text
//! @loss(inputs…, label, params…)        = forward, then the loss (and a correct-count)
//! @loss_grad                            = autodiff::gradient(@loss, loss, params)
//! @train_step(inputs…, label, params…, state…, step)
//!     = inline @loss_grad, then one optimizer update per parameter
//!     → (new params…, new state…, loss[, correct])
//! ```
//! Arguments carry `dl.role` (`input`, `param`, `state`) and results are named
//! after what they replace (`fc1.weight`, `fc1.weight.exp_avg`), so a runner
//! feeds each result back into the argument of the same name.

use crate::autodiff;
use crate::train::{BuildUpdate, LossKind, LossSpec, Optimizer, build_loss};
use dlc_ir::inline::inline;
use dlc_ir::signature::{input_attrs, set_output_names, state_attrs};
use dlc_ir::{Attrs, Builder, DType, Dim, Function, OpKind, Role, Signature, TensorType, Type, ValueId, attrs};

/// The functions a training run needs.
#[derive(Clone, Debug)]
pub struct TrainProgram {
    /// `@train_step(inputs…, label, params…, state…, step) -> (params…, state…, loss[, correct])`.
    pub step: Function,
    /// `@eval(inputs…, label, params…) -> (loss[, correct])`: the loss without the update.
    pub eval: Function,
    /// Parameter names, in argument and result order.
    pub params: Vec<String>,
    /// State names (`<param>.<slot>`), in argument and result order.
    pub state: Vec<String>,
    /// The number of classes when the loss classifies (cross-entropy: the logits'
    /// last dim; binary losses: 2); `None` for regression. Labels are checked against it.
    pub classes: Option<u64>,
    /// The label argument's name and type.
    pub label: (String, TensorType),
    /// The input fed with data features (every input but the label).
    pub features: Vec<String>,
}

/// Why a train step could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainStepError(pub String);

impl std::fmt::Display for TrainStepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TrainStepError {}

fn e(m: impl Into<String>) -> TrainStepError {
    TrainStepError(m.into())
}

/// The label type a loss takes for a prediction of type `pred`.
fn label_type(kind: LossKind, pred: &TensorType) -> Result<TensorType, TrainStepError> {
    match kind {
        LossKind::CrossEntropy => {
            if pred.rank() != 2 {
                return Err(e(format!("cross_entropy needs logits of shape [batch, classes], the output is {pred}")));
            }
            Ok(TensorType::new(vec![pred.shape[0]], DType::I64))
        }
        _ => Ok(pred.clone()),
    }
}

/// `@loss`, its label argument (name and type), and the class count of a
/// classification loss.
type LossFunction = (Function, (String, TensorType), Option<u64>);

/// Builds `@loss`: forward, then the loss of output `output` against the label
/// — the model input named `label_input`, or else a new `label` argument — and
/// for classification the number of correct predictions.
fn loss_function(
    forward: &Function,
    sig: &Signature,
    output: usize,
    label_input: Option<&str>,
    spec: &LossSpec,
) -> Result<LossFunction, TrainStepError> {
    let pred_ty = sig.outputs[output].1.as_tensor().ok_or_else(|| e("the loss output must be a tensor"))?.clone();
    if !pred_ty.dtype.is_float() {
        return Err(e(format!("the loss needs a float output, '{}' is {pred_ty}", sig.outputs[output].0)));
    }
    let mut f = Function::new("loss");
    let mut args = Vec::new();
    let mut label = None;
    let (label_name, label_ty) = match label_input {
        Some(n) => {
            let a = sig.inputs().find(|a| a.name == n).ok_or_else(|| e(format!("the label '{n}' is not a model input")))?;
            (n.to_string(), a.ty.clone())
        }
        None => ("label".to_string(), label_type(spec.kind, &pred_ty)?),
    };
    for (i, a) in sig.args.iter().enumerate() {
        let attrs = forward.arg_attrs(i).cloned().unwrap_or_default();
        if label_input.is_none() && label.is_none() && !matches!(a.role, Role::Input) {
            label = Some(f.add_arg(label_ty.clone().into(), Some("label"), input_attrs()));
        }
        let v = f.add_arg(a.ty.clone().into(), Some(&a.name), attrs);
        if label_input == Some(a.name.as_str()) {
            label = Some(v);
        }
        args.push(v);
    }
    let label = match label {
        Some(l) => l,
        None => f.add_arg(label_ty.clone().into(), Some("label"), input_attrs()),
    };
    let entry = f.entry();
    let outs = inline(&mut f, entry, forward, &args);
    let pred = outs[output];
    let mut b = Builder::at_entry(&mut f);
    let loss = build_loss(&mut b, spec, pred, label).map_err(|x| e(format!("building the {:?} loss: {x}", spec.kind)))?;
    b.name(loss, "loss");
    let (classes, correct) = match spec.kind {
        LossKind::CrossEntropy => {
            let Dim::Static(c) = pred_ty.shape[1] else { return Err(e("the number of classes must be static")) };
            let guess = b.op(OpKind::Argmax, &[pred], attrs! {"axis" => 1i64}).map_err(|x| e(x.to_string()))?;
            (Some(c), Some(count_equal(&mut b, guess, label, pred_ty.dtype)?))
        }
        LossKind::Bce | LossKind::BceWithLogits => {
            let threshold = if spec.kind == LossKind::Bce { 0.5 } else { 0.0 };
            let t = b.scalar(threshold, pred_ty.dtype);
            let half = b.scalar(0.5, pred_ty.dtype);
            let guess = b.op(OpKind::Cmp, &[pred, t], attrs! {"predicate" => "gt"}).map_err(|x| e(x.to_string()))?;
            let truth = b.op(OpKind::Cmp, &[label, half], attrs! {"predicate" => "gt"}).map_err(|x| e(x.to_string()))?;
            (Some(2), Some(count_equal(&mut b, guess, truth, pred_ty.dtype)?))
        }
        LossKind::Mse | LossKind::L1 => (None, None),
    };
    let mut results = vec![loss];
    results.extend(correct);
    b.ret(&results);
    let names: Vec<&str> = if correct.is_some() { vec!["loss", "correct"] } else { vec!["loss"] };
    set_output_names(&mut f, &names);
    Ok((f, (label_name, label_ty), classes))
}

/// `reduce_sum(cast(a == b))` over all axes, in `dtype`.
fn count_equal(b: &mut Builder, x: ValueId, y: ValueId, dtype: DType) -> Result<ValueId, TrainStepError> {
    let eq = b.op(OpKind::Cmp, &[x, y], attrs! {"predicate" => "eq"}).map_err(|m| e(m.to_string()))?;
    let f = b.op(OpKind::Cast, &[eq], attrs! {"dtype" => dtype}).map_err(|m| e(m.to_string()))?;
    let rank = b.func.ty(f).as_tensor().map_or(0, |t| t.rank()) as i64;
    let s = b.op(OpKind::ReduceSum, &[f], { let mut a = Attrs::new(); a.insert("axes".into(), dlc_ir::Attr::ints(&(0..rank).collect::<Vec<_>>())); a }).map_err(|m| e(m.to_string()))?;
    Ok(b.name(s, "correct"))
}

/// Builds the training program for `forward`, training output `output` (by
/// name) against the model input `label_input`, or a new `label` argument.
pub fn build(forward: &Function, output: &str, label_input: Option<&str>, spec: &LossSpec, opt: &Optimizer) -> Result<TrainProgram, TrainStepError> {
    let sig = Signature::of(forward).map_err(e)?;
    let out = sig.outputs.iter().position(|(n, _)| n == output).ok_or_else(|| {
        let names: Vec<&str> = sig.outputs.iter().map(|(n, _)| n.as_str()).collect();
        e(format!("the model has no output '{output}' (outputs: {})", names.join(", ")))
    })?;
    let (mut loss_fn, label, classes) = loss_function(forward, &sig, out, label_input, spec)?;
    let features = sig.inputs().filter(|a| a.name != label.0).map(|a| a.name.clone()).collect();
    let loss_sig = Signature::of(&loss_fn).map_err(e)?;
    let param_idx: Vec<usize> = loss_sig.args.iter().enumerate().filter(|(_, a)| matches!(a.role, Role::Param(_))).map(|(i, _)| i).collect();
    if param_idx.is_empty() {
        return Err(e("the model has no parameters to train"));
    }
    let grad = autodiff::gradient(&loss_fn, 0, &param_idx).map_err(|x| e(format!("differentiating the loss: {x}")))?;

    let mut step = Function::new("train_step");
    let mut call_args = Vec::new();
    let mut params = Vec::new();
    for (i, a) in loss_sig.args.iter().enumerate() {
        let v = step.add_arg(a.ty.clone().into(), Some(&a.name), loss_fn.arg_attrs(i).cloned().unwrap_or_default());
        if let Role::Param(_) = a.role {
            params.push((a.name.clone(), a.ty.clone(), v));
        }
        call_args.push(v);
    }
    let slots = opt.state_slots();
    let mut state_names = Vec::new();
    let mut state_vals = Vec::new();
    for (name, ty, _) in &params {
        let mut vs = Vec::new();
        for (slot, init) in &slots {
            let n = format!("{name}.{slot}");
            vs.push(step.add_arg(ty.clone().into(), Some(&n), state_attrs(init)));
            state_names.push(n);
        }
        state_vals.push(vs);
    }
    let dtype = params[0].1.dtype;
    let step_arg = step.add_arg(Type::Tensor(TensorType::fixed(&[], dtype)), Some("step"), input_attrs());
    let entry = step.entry();
    let outs = inline(&mut step, entry, &grad, &call_args);
    let n_loss_outs = loss_fn.result_types.len();
    let (loss_outs, grads) = outs.split_at(n_loss_outs);
    let mut b = Builder::at_entry(&mut step);
    let mut new_params = Vec::new();
    let mut new_state = Vec::new();
    for (((name, _, p), g), st) in params.iter().zip(grads).zip(&state_vals) {
        let (np, ns) = opt.build_update(&mut b, *p, *g, st, step_arg).map_err(|x| e(format!("optimizer update of {name}: {x}")))?;
        new_params.push(np);
        new_state.extend(ns);
    }
    let mut results = new_params;
    results.extend(new_state);
    results.extend(loss_outs);
    b.ret(&results);
    let mut names: Vec<String> = params.iter().map(|(n, _, _)| n.clone()).collect();
    names.extend(state_names.iter().cloned());
    names.extend(loss_sig.outputs.iter().map(|(n, _)| n.clone()));
    set_output_names(&mut step, &names.iter().map(String::as_str).collect::<Vec<_>>());
    dlc_ir::verify_function(&step).map_err(|errs| e(format!("the train step does not verify: {}", errs[0])))?;

    loss_fn.name = "eval".into();
    Ok(TrainProgram {
        step,
        eval: loss_fn,
        params: params.into_iter().map(|(n, _, _)| n).collect(),
        state: state_names,
        classes,
        label,
        features,
    })
}

