//! The `egraph` pass on every example model: the forward function, the
//! training step and the eval function (`train_step::build`, as the trainer
//! runs them; the loss rules rewrite the last two) run on the interpreter before and after the pass, on the same random inputs, and
//! agree (f32 within 1e-5 relative, 1e-6 absolute); the output verifies and
//! is byte-identical from run to run and from thread to thread; the pass
//! finishes well under the 100 ms compile budget; kernel-level functions
//! (opaque `kernel.generic` ops) stay valid too. Run with `--nocapture` for
//! the per-function reports (op counts, cost before and after, e-graph size
//! and time per stage, the rules that fired).

mod common;

use common::{EXAMPLES, arguments, example};
use dlc::backends::run;
use dlc::ir::{Function, print_function, verify_function};
use dlc::passes::egraph::optimize;

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;
/// The compile budget the pass must stay well under (release builds).
const BUDGET_MS: f64 = 100.0;

/// Every example's forward function, training step and eval, by example name.
fn examples() -> Vec<(&'static str, Vec<Function>, dlc::passes::train_step::TrainProgram)> {
    EXAMPLES
        .iter()
        .map(|&name| {
            let (fs, prog) = example(name);
            (name, fs, prog)
        })
        .collect()
}

fn optimized(f: &Function) -> (Function, dlc_passes::egraph::Report) {
    let mut g = f.clone();
    let report = optimize(&mut g).unwrap_or_else(|e| panic!("@{}: {e}", f.name));
    verify_function(&g).unwrap_or_else(|e| panic!("@{} after the pass does not verify: {e:?}\n{}", f.name, print_function(&g)));
    (g, report)
}

#[test]
fn the_pass_preserves_every_example_forward_and_train_step() {
    for (name, fs, prog) in examples() {
        for f in &fs {
            let (after, report) = optimized(f);
            println!("{name:>12} {report}");
            for (batch, seed) in [(1, 1), (5, 2), (16, 3)] {
                let args = arguments(f, &prog, batch, seed);
                let want = run(f, &args).unwrap_or_else(|e| panic!("{} @{} before: {e}", name, f.name));
                let got = run(&after, &args).unwrap_or_else(|e| panic!("{} @{} after: {e}", name, f.name));
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(g.allclose(w, RTOL, ATOL), "{} @{} batch {batch}: result {i} differs by {:?}\n{}", name, f.name, g.max_abs_diff(w), print_function(&after));
                }
            }
            assert!(report.cost_after <= report.cost_before, "{} @{}: the pass made the function costlier", name, f.name);
            assert!(report.ops.1 <= report.ops.0, "{} @{}: the pass grew the function ({} → {} ops)", name, f.name, report.ops.0, report.ops.1);
        }
    }
}

#[test]
fn the_output_is_byte_identical_across_runs_and_threads() {
    let exs = examples();
    let texts = |exs: &[(&str, Vec<Function>, dlc::passes::train_step::TrainProgram)]| -> Vec<String> {
        exs.iter().flat_map(|(_, fs, _)| fs).map(|f| print_function(&optimized(f).0)).collect()
    };
    let first = texts(&exs);
    assert_eq!(texts(&exs), first, "a second run differs");
    // Other threads, running at the same time: egg's global symbol table and
    // every map the pass uses are shared or fresh; the output may not depend
    // on which thread interned what first.
    let others: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| texts(&exs))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in others {
        assert_eq!(o, first, "a run on another thread differs");
    }
}

#[test]
fn the_pass_stays_well_under_the_compile_budget() {
    let mut worst: f64 = 0.0;
    for (name, fs, _) in examples() {
        for f in &fs {
            // The best of three, so a busy machine does not judge the pass.
            let ms = (0..3).map(|_| optimized(f).1.time.as_secs_f64() * 1e3).fold(f64::INFINITY, f64::min);
            println!("{name:>12} @{:<10} {:>5} ops  {ms:>7.2} ms", f.name, f.body_ops().len());
            worst = worst.max(ms);
        }
    }
    if cfg!(debug_assertions) {
        println!("debug build: worst {worst:.2} ms (the {BUDGET_MS} ms bound is asserted in release builds)");
    } else {
        assert!(worst < BUDGET_MS / 4.0, "the pass took {worst:.2} ms on an example, budget {BUDGET_MS} ms");
    }
}

/// At the kernel level, `kernel.generic` ops (with regions) stay opaque and
/// the contractions are modeled as any op: the pass still leaves IR that
/// verifies and computes the same.
#[test]
fn kernel_level_functions_stay_valid() {
    for (name, fs, prog) in examples() {
        for f in &fs {
            let mut k = f.clone();
            dlc::passes::to_kernels(&mut k).unwrap_or_else(|e| panic!("{} @{}: {e}", name, f.name));
            let (after, _) = optimized(&k);
            let args = arguments(f, &prog, 3, 9);
            let want = run(&k, &args).unwrap_or_else(|e| panic!("{} @{} kernel level: {e}", name, f.name));
            let got = run(&after, &args).unwrap_or_else(|e| panic!("{} @{} after: {e}", name, f.name));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(g.allclose(w, RTOL, ATOL), "{} @{} kernel level: result {i} differs by {:?}", name, f.name, g.max_abs_diff(w));
            }
        }
    }
}
