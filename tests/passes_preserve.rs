//! Every pass preserves semantics on real IR: the training program of every
//! example model (`@train_step`, `@eval` and the gradient function) runs on
//! the interpreter, the oracle, before and after the default pipeline and
//! after each declared pass alone, on the same random inputs, and the results
//! agree (f32 within 1e-6 relative). Run with `--nocapture` to see the op
//! counts before and after.

use dlc::backends::{Tensor, init_tensor, run};
use dlc::ir::{Function, Module, Role, Signature, TensorType, verify_module};
use dlc::passes::{Options, PassManager, registry};
use dlc::train::config;
use dlc::Program;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const EXAMPLES: &[&str] = &["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"];
const BATCH: usize = 5;

/// The example's training functions: `@train_step`, `@eval`, the gradient.
fn training_module(name: &str) -> (Module, dlc::passes::train_step::TrainProgram) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.dl"));
    let p = Program::load(&path).unwrap_or_else(|e| panic!("{name}: {}", e.render(false)));
    let spec = p.compiled.as_ref().unwrap().model.train.as_ref().unwrap_or_else(|| panic!("{name} has no train block"));
    let forward = p.forward().unwrap();
    let prog = config::program(forward, spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    let grad = config::gradient(forward, spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    (Module { functions: vec![prog.step.clone(), prog.eval.clone(), grad] }, prog)
}

fn concrete(ty: &TensorType) -> Vec<usize> {
    ty.shape.iter().map(|d| d.as_static().map_or(BATCH, |n| n as usize)).collect()
}

/// Random arguments for `f`: features in [-1, 1), labels valid for the loss
/// (class indices below the class count, or 0/1 for binary losses), initialized
/// parameters, non-negative optimizer state (second moments), step 3.
fn arguments(f: &Function, prog: &dlc::passes::train_step::TrainProgram, seed: u64) -> Vec<Tensor> {
    let sig = Signature::of(f).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    sig.args
        .iter()
        .map(|a| {
            let shape = concrete(&a.ty);
            let n: usize = shape.iter().product();
            let values: Vec<f64> = match &a.role {
                Role::Param(init) => return init_tensor(&a.name, &a.ty, init, seed),
                Role::State(_) => (0..n).map(|_| rng.random_range(0.0..1.0)).collect(),
                Role::Input if a.name == prog.label.0 => match prog.classes {
                    Some(k) if a.ty.dtype.is_int() => (0..n).map(|_| rng.random_range(0..k) as f64).collect(),
                    Some(_) => (0..n).map(|_| rng.random_range(0..2) as f64).collect(),
                    None => (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
                },
                Role::Input if prog.features.contains(&a.name) => (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
                Role::Input => vec![3.0; n], // the step counter
            };
            Tensor::from_f64_values(&shape, &values, a.ty.dtype).unwrap()
        })
        .collect()
}

fn op_count(f: &Function) -> usize {
    f.walk().len()
}

/// Runs `after` and `before` on the same arguments and compares every result.
fn assert_same_results(label: &str, before: &Module, after: &Module, prog: &dlc::passes::train_step::TrainProgram) {
    for (b, a) in before.functions.iter().zip(&after.functions) {
        for seed in [1, 2] {
            let args = arguments(b, prog, seed);
            let want = run(b, &args).unwrap_or_else(|e| panic!("{label} @{}: before: {e}", b.name));
            let got = run(a, &args).unwrap_or_else(|e| panic!("{label} @{}: after: {e}", a.name));
            assert_eq!(got.len(), want.len(), "{label} @{}", a.name);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.allclose(w, 1e-6, 0.0),
                    "{label} @{} result #{i} differs (max |diff| {:?})",
                    a.name,
                    g.max_abs_diff(w)
                );
            }
        }
    }
}

#[test]
fn the_default_pipeline_and_each_pass_preserve_every_example_training_step() {
    let mut table = String::new();
    for name in EXAMPLES {
        let (before, prog) = training_module(name);
        verify_module(&before).unwrap();
        let mut after = before.clone();
        let options = Options { verify_each: true, ..Options::default() };
        PassManager::default_pipeline(options.clone()).run(&mut after, &mut std::io::sink()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (b, a) in before.functions.iter().zip(&after.functions) {
            let (nb, na) = (op_count(b), op_count(a));
            assert!(na <= nb, "{name} @{}: the pipeline grew the function ({nb} → {na} ops)", b.name);
            table.push_str(&format!("{name:>12} @{:<11} {nb:>5} → {na:>5} ops  (-{:.0}%)\n", b.name, 100.0 * (nb - na) as f64 / nb as f64));
        }
        assert_same_results(&format!("{name} (default pipeline)"), &before, &after, &prog);
        for p in registry::PASSES {
            let mut alone = before.clone();
            PassManager::with_passes(options.clone(), &[p.name]).unwrap().run(&mut alone, &mut std::io::sink()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_same_results(&format!("{name} ({} alone)", p.name), &before, &alone, &prog);
        }
    }
    println!("op counts, before → after the default pipeline:\n{table}");
}

// --- `dlc opt` end to end (tests/cli.rs belongs to the CLI owners) ---------

fn dlc_opt(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dlc"))
        .arg("opt")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the dlc binary runs")
}

#[test]
fn dlc_opt_optimizes_a_model_and_writes_the_ir_atomically() {
    let dir = std::env::temp_dir().join(format!("dlc-opt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("mlp.opt.mlir");
    let o = dlc_opt(&["examples/mlp.dl", "--pipeline", "default", "--verify-each", "--print-ir-after-all", "--time-passes", "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(o.stdout.is_empty(), "-o writes the file, not stdout");
    assert!(err.contains("IR Dump After") && err.contains("total"), "instrumentation goes to stderr: {err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let p = Program::from_source("mlp.opt.mlir", &text, dlc::SourceKind::Mlir).unwrap_or_else(|e| panic!("{}", e.render(false)));
    assert!(p.module.function("forward").is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dlc_opt_refuses_bad_input_and_unknown_passes_with_exit_1() {
    let dir = std::env::temp_dir().join(format!("dlc-opt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.mlir");
    std::fs::write(&bad, "module {\n  func.func @f(%x: tensor<3xf32>) -> tensor<4xf32> {\n    return %x : tensor<3xf32>\n  }\n}\n").unwrap();
    for (args, needle) in [
        (vec![bad.to_str().unwrap(), "--cse"], "does not verify"),
        (vec!["examples/mlp.dl", "--pass", "fodl"], "did you mean 'fold'?"),
    ] {
        let o = dlc_opt(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
