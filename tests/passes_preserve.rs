//! Every pass preserves semantics on real IR: the training program of every
//! example model (`@train_step`, `@eval` and the gradient function) runs on
//! the interpreter, the oracle, before and after the default pipeline and
//! after each declared pass alone, on the same random inputs, and the results
//! agree (f32 within 1e-6 relative; the `egraph` pass within rounding, 1e-5).
//! Run with `--nocapture` to see the op counts before and after.

mod common;

use dlc::backends::run;
use dlc::ir::{Function, Module, verify_module};
use dlc::passes::{Options, PassManager, registry};
use dlc::train::config;
use dlc::Program;
use std::path::Path;

const EXAMPLES: &[&str] = &["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"];
const BATCH: usize = 5;
/// Tolerances (relative, absolute): `dl`-level rewrites, and passes that
/// move sums to the kernel level.
const EXACT: (f64, f64) = (1e-6, 0.0);
const SUMS: (f64, f64) = (1e-4, 1e-6);
/// The `egraph` pass, whose loss and scalar rules agree within float
/// rounding, not bit for bit: a gradient summed over the batch can cancel to
/// a few ulps of its terms (the tolerance of `tests/egraph_examples.rs`).
const ROUNDING: (f64, f64) = (1e-5, 1e-6);

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

fn op_count(f: &Function) -> usize {
    f.walk().len()
}

/// Runs `after` and `before` on the same arguments and compares every result.
fn assert_same_results(label: &str, before: &Module, after: &Module, prog: &dlc::passes::train_step::TrainProgram, (rtol, atol): (f64, f64)) {
    for (b, a) in before.functions.iter().zip(&after.functions) {
        for seed in [1, 2] {
            let args = common::arguments(b, prog, BATCH, seed);
            let want = run(b, &args).unwrap_or_else(|e| panic!("{label} @{}: before: {e}", b.name));
            let got = run(a, &args).unwrap_or_else(|e| panic!("{label} @{}: after: {e}", a.name));
            assert_eq!(got.len(), want.len(), "{label} @{}", a.name);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.allclose(w, rtol, atol),
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
        assert_same_results(&format!("{name} (default pipeline)"), &before, &after, &prog, EXACT);
        for p in registry::PASSES {
            let mut alone = before.clone();
            PassManager::with_passes(options.clone(), &[p.name]).unwrap().run(&mut alone, &mut std::io::sink()).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Kernel-level reductions accumulate in the element type where the
            // dl-level oracle sums in f64: equal up to f32 rounding of long sums.
            let tol = if p.name.contains("kernels") { SUMS } else if p.name == "egraph" { ROUNDING } else { EXACT };
            assert_same_results(&format!("{name} ({} alone)", p.name), &before, &alone, &prog, tol);
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
