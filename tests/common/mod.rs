//! Helpers shared by the integration tests that run examples' training
//! functions on random inputs.
#![allow(dead_code)]

use dlc::backends::{Tensor, init_tensor};
use dlc::ir::{Function, Role, Signature, TensorType};
use dlc::passes::train_step::TrainProgram;
use dlc::train::config;
use dlc::Program;
use std::path::Path;

/// Every example model in `examples/`.
pub const EXAMPLES: &[&str] = &["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"];

/// An example's `@forward`, `@train_step` and `@eval` (as the trainer builds
/// them, before any optimization), and its train program.
pub fn example(name: &str) -> (Vec<Function>, TrainProgram) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.dl"));
    let p = Program::load(&path).unwrap_or_else(|e| panic!("{name}: {}", e.render(false)));
    let spec = p.compiled.as_ref().unwrap().model.train.as_ref().unwrap_or_else(|| panic!("{name} has no train block"));
    let forward = p.forward().unwrap().clone();
    let prog = config::program(&forward, spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    (vec![forward, prog.step.clone(), prog.eval.clone()], prog)
}
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `ty`'s shape with `?` = `batch`.
pub fn concrete(ty: &TensorType, batch: usize) -> Vec<usize> {
    ty.shape.iter().map(|d| d.as_static().map_or(batch, |n| n as usize)).collect()
}

/// Random arguments for `f` (a function of `prog`, or its forward pass):
/// features in [-1, 1), labels valid for the loss (class indices below the
/// class count, or 0/1 for binary losses), initialized parameters,
/// non-negative optimizer state (second moments), step 3.
pub fn arguments(f: &Function, prog: &TrainProgram, batch: usize, seed: u64) -> Vec<Tensor> {
    let sig = Signature::of(f).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    sig.args
        .iter()
        .map(|a| {
            let shape = concrete(&a.ty, batch);
            let n: usize = shape.iter().product();
            let values: Vec<f64> = match &a.role {
                Role::Param(init) => return init_tensor(&a.name, &a.ty, init, seed),
                Role::State(_) => (0..n).map(|_| rng.random_range(0.0..1.0)).collect(),
                Role::Input if a.name == prog.label.0 => match prog.classes {
                    Some(k) if a.ty.dtype.is_int() => (0..n).map(|_| rng.random_range(0..k) as f64).collect(),
                    Some(_) => (0..n).map(|_| rng.random_range(0..2) as f64).collect(),
                    None => (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
                },
                Role::Input if a.ty.shape.is_empty() => vec![3.0; n], // the step counter
                Role::Input => (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
            };
            Tensor::from_f64_values(&shape, &values, a.ty.dtype).unwrap()
        })
        .collect()
}
