//! Every example model's train step, with each optimizer, updates each
//! parameter in one kernel: `fuse-kernels` merges the new optimizer state
//! (Adam's moments, SGD's momentum buffer, RMSprop's and Adagrad's squared
//! gradients) into the kernel of the new parameter as extra results. The
//! fused step still computes what the `dl` level computes, on the
//! interpreter and on the CPU backend.

mod common;

use dlc::Program;
use dlc::backends::run;
use dlc::cpu::{CpuExecutable, CpuOptions};
use dlc::ir::{Function, OpKind, Role, Signature};
use dlc::program::kernel_level;
use dlc::train::config;
use std::path::Path;

const OPTIMIZERS: &[&str] = &[
    "sgd(lr: 0.01, momentum: 0.9)",
    "sgd(lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.01)",
    "rmsprop(lr: 0.01)",
    "rmsprop(lr: 0.01, momentum: 0.9, centered: true)",
    "adagrad(lr: 0.01)",
    "adam(lr: 0.001)",
    "adam(lr: 0.001, amsgrad: true)",
    "adamw(lr: 0.001)",
];

/// `example`'s train step with its optimizer replaced by `optimizer`.
fn train_step(example: &str, optimizer: &str) -> (Function, dlc::passes::train_step::TrainProgram) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join(format!("examples/{example}.dl"))).unwrap();
    let line = src.lines().find(|l| l.trim_start().starts_with("optimizer:")).unwrap_or_else(|| panic!("{example}: no optimizer line"));
    let indent = &line[..line.len() - line.trim_start().len()];
    let src = src.replace(line, &format!("{indent}optimizer: {optimizer}"));
    // Loading reads no data, so the copy need not sit beside the example.
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{example}.{}.dl", std::process::id()));
    std::fs::write(&path, src).unwrap();
    let p = Program::load(&path);
    std::fs::remove_file(&path).unwrap();
    let p = p.unwrap_or_else(|e| panic!("{example} with {optimizer}: {}", e.render(false)));
    let spec = p.compiled.as_ref().unwrap().model.train.as_ref().unwrap();
    let prog = config::program(p.forward().unwrap(), spec).unwrap_or_else(|e| panic!("{example} with {optimizer}: {e}"));
    (prog.step.clone(), prog)
}

#[test]
fn every_optimizer_updates_each_parameter_in_one_kernel() {
    for example in common::EXAMPLES {
        for optimizer in OPTIMIZERS {
            let what = format!("{example} with {optimizer}");
            let (step, prog) = train_step(example, optimizer);
            let k = kernel_level(&step).unwrap_or_else(|e| panic!("{what}: {}", e.render(false)));
            let sig = Signature::of(&step).unwrap();
            let params: Vec<&str> = sig.args.iter().filter(|a| matches!(a.role, Role::Param(_))).map(|a| a.name.as_str()).collect();
            let states = |p: &str| sig.args.iter().filter(|a| matches!(a.role, Role::State(_)) && a.name.starts_with(&format!("{p}."))).count();
            let names: Vec<&str> = sig.outputs.iter().map(|(n, _)| n.as_str()).collect();
            let returned = k.returned_values();
            for p in &params {
                let at = names.iter().position(|n| n == p).unwrap_or_else(|| panic!("{what}: {p} is not returned"));
                let def = k.value(returned[at]).def;
                let dlc::ir::ValueDef::OpResult { op, .. } = def else { panic!("{what}: {p}' is an argument") };
                assert_eq!(k.op(op).kind, OpKind::Generic, "{what}: {p}'");
                assert_eq!(k.op(op).results.len(), 1 + states(p), "{what}: {p}' and its {} state tensor(s) are not one kernel", states(p));
            }
            let args = common::arguments(&step, &prog, 3, 1);
            let want = run(&step, &args).unwrap();
            let got = run(&k, &args).unwrap();
            let jit = CpuExecutable::compile(&k, &CpuOptions { threads: 1 }).unwrap().run(&args).unwrap();
            for (i, w) in want.iter().enumerate() {
                assert!(got[i].allclose(w, 1e-4, 1e-6), "{what}: result #{i} on the interpreter: {:?}", got[i].max_abs_diff(w));
                assert!(jit[i].allclose(w, 1e-4, 1e-6), "{what}: result #{i} on the CPU: {:?}", jit[i].max_abs_diff(w));
            }
        }
    }
}
