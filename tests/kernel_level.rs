//! The structured-kernel level of every example model — forward, train step
//! and eval — computes what the `dl` level computes (the interpreter runs
//! both on the same random inputs), prints → parses → prints byte-identically,
//! verifies, and is accepted by upstream `mlir-opt`. Its IR is snapshotted
//! for every example, so a change in lowering or fusion shows in review.

mod common;

use dlc::backends::run;
use dlc::ir::{Function, Module, parse_module, print_module, verify_function};
use dlc::program::kernel_level;
use std::process::Command;

const BATCH: usize = 3;

use common::{EXAMPLES, example as functions};

#[test]
fn the_kernel_level_computes_what_the_dl_level_computes() {
    for name in EXAMPLES {
        let (fs, prog) = functions(name);
        for f in &fs {
            let k = kernel_level(f).unwrap_or_else(|e| panic!("{name} @{}: {}", f.name, e.render(false)));
            let generics = k.body_ops().iter().filter(|&&o| k.op(o).kind == dlc::ir::OpKind::Generic).count();
            assert!(generics > 0 || f.name == "forward", "{name} @{}: no kernel.generic at all", f.name);
            for seed in [1, 2] {
                let args = common::arguments(f, &prog, BATCH, seed);
                let want = run(f, &args).unwrap_or_else(|e| panic!("{name} @{}: dl level: {e}", f.name));
                let got = run(&k, &args).unwrap_or_else(|e| panic!("{name} @{}: kernel level: {e}", f.name));
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    // Kernel reductions accumulate in the element type (the dl-level
                    // oracle sums in f64): equal to f32 rounding of long sums.
                    assert!(g.allclose(w, 1e-4, 1e-6), "{name} @{} result #{i}: max |diff| {:?}", f.name, g.max_abs_diff(w));
                }
            }
        }
    }
}

/// `mlir-opt-19` (Debian's mlir-19-tools) or `mlir-opt`, whichever is installed.
fn mlir_opt() -> Option<&'static str> {
    ["mlir-opt-19", "mlir-opt"].into_iter().find(|t| Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn kernel_ir_round_trips_verifies_and_upstream_mlir_accepts_it() {
    let tool = mlir_opt();
    if tool.is_none() {
        assert!(std::env::var("DLC_REQUIRE_TOOLS").as_deref() != Ok("1"), "DLC_REQUIRE_TOOLS=1 but mlir-opt is not installed (apt-get install mlir-19-tools)");
        eprintln!("mlir-opt not installed (apt-get install mlir-19-tools): checking the round trip only");
    }
    let dir = std::env::temp_dir().join(format!("dlc-kernel-mlir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in EXAMPLES {
        let (fs, _) = functions(name);
        let functions: Vec<Function> = fs.iter().map(|f| kernel_level(f).unwrap()).collect();
        let text = print_module(&Module { functions });
        let parsed = parse_module(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for f in &parsed.functions {
            verify_function(f).unwrap_or_else(|e| panic!("{name} @{}: {e:?}", f.name));
        }
        assert_eq!(print_module(&parsed), text, "{name}: print → parse → print differs");
        insta::assert_snapshot!(format!("kernel_{name}"), text);
        if let Some(tool) = tool {
            let path = dir.join(format!("{name}.kernel.mlir"));
            std::fs::write(&path, &text).unwrap();
            let o = Command::new(tool).arg("--allow-unregistered-dialect").arg(&path).output().unwrap();
            assert!(o.status.success(), "{tool} rejects the kernel IR of {name}:\n{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `dlc compile --explain-fusion` for every example, forward and train step:
/// the report is snapshotted (a fusion decision that changes shows in review),
/// fusion never makes the estimate worse or adds kernels or buffers, and
/// every memory plan's arena holds its peak.
#[test]
fn explain_fusion_reports_every_example() {
    for name in EXAMPLES {
        let (fs, _) = functions(name);
        let mut text = String::new();
        for f in &fs[..2] {
            let x = dlc::program::explain_fusion(f).unwrap_or_else(|e| panic!("{name} @{}: {}", f.name, e.render(false)));
            let (g, r) = (&x.egraph, &x.fusion);
            for m in &x.memory {
                assert!(m.peak_live_bytes <= m.arena_bytes && m.arena_bytes <= m.naive_bytes + 64 * m.buffers.len(), "{name} @{}: {m:?}", f.name);
            }
            assert!(x.memory[1].naive_bytes <= x.memory[0].naive_bytes, "{name} @{}: fusion added buffers", f.name);
            assert!(r.after.kernels <= r.before.kernels && r.after.time_ns() <= r.before.time_ns() * (1.0 + 1e-9), "{name} @{}: fusion made it worse:\n{r}", f.name);
            assert_eq!(r.kernels.len(), r.after.kernels, "{name} @{}: one line per kernel", f.name);
            check_kernel_provenance(&format!("{name} @{}", f.name), g, r);
            assert!(g.cost_after <= g.cost_before, "{name} @{}: the e-graph made it worse:\n{g}", f.name);
            // Without wall times: the rest is deterministic.
            text.push_str(&format!("{x:#}\n"));
        }
        insta::assert_snapshot!(format!("explain_{name}"), text);
    }
}

/// Each kernel's cost before fusion is that of the lowered kernels (one per
/// op) it replaces; every lowered kernel is replaced by at least one, so the
/// distinct ones sum to the report's total before, and the per-kernel
/// befores sum to at least that (a producer inlined into several consumers
/// counts in each), to exactly that when none is shared. The rules a kernel
/// reports fired.
fn check_kernel_provenance(what: &str, g: &dlc_passes::egraph::Report, r: &dlc_passes::kernel::FusionReport) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    let total: dlc_passes::kernel::cost::Cost = r.unfused.iter().copied().sum();
    assert!(close(total.bytes, r.before.bytes) && close(total.flops, r.before.flops) && total.kernels == r.before.kernels, "{what}:\n{r}");
    let mut seen = std::collections::BTreeSet::new();
    let mut shared = false;
    for k in &r.kernels {
        assert!(!k.replaces.is_empty() && k.before.bytes >= 0.0 && k.before.flops >= 0.0 && k.before.kernels == k.replaces.len(), "{what}:\n{r}");
        for &i in &k.replaces {
            shared |= !seen.insert(i);
        }
        for rule in &k.rules {
            assert!(g.fired.contains_key(rule), "{what}: {rule} is reported on a kernel but did not fire:\n{g}{r}");
        }
    }
    assert_eq!(seen, (0..r.unfused.len()).collect(), "{what}: a lowered kernel is replaced by no fused kernel:\n{r}");
    let per_kernel: f64 = r.kernels.iter().map(|k| k.before.bytes).sum();
    assert!(if shared { per_kernel > r.before.bytes } else { close(per_kernel, r.before.bytes) }, "{what}:\n{r}");
}

/// The e-graph pass's fusion plan decides the fusion of every example: the
/// kernels it leads to are never estimated slower, nor more, than those
/// `fuse-kernels`' own cost gate picks without a plan, and the plan covers
/// the ops it should (every train step inlines elementwise chains and
/// Adam's moments merge into each parameter's update).
#[test]
fn every_example_is_fused_as_the_e_graph_plans() {
    use dlc_passes::kernel::{cost::function_cost, to_kernels_planned, to_kernels_with};
    for name in EXAMPLES {
        let (fs, _) = functions(name);
        for f in &fs {
            let mut m = Module { functions: vec![f.clone()] };
            dlc_passes::PassManager::default_pipeline(dlc_passes::Options::default()).run(&mut m, &mut std::io::sink()).unwrap();
            let mut g = m.functions.pop().unwrap();
            let report = dlc_passes::egraph::optimize(&mut g).unwrap();
            let (mut planned, mut gated) = (g.clone(), g.clone());
            to_kernels_planned(&mut planned, true, Some(&report.plan)).unwrap();
            to_kernels_with(&mut gated, true).unwrap();
            let (p, c) = (function_cost(&planned), function_cost(&gated));
            assert!(p.time_ns() <= c.time_ns() && p.kernels <= c.kernels, "{name} @{}: planned {p:?}, cost gate {c:?}", f.name);
            assert_eq!(print_module(&Module { functions: vec![planned.clone()] }), print_module(&Module { functions: vec![kernel_level(f).unwrap()] }), "{name} @{}: kernel_level follows the plan", f.name);
            if f.name == "train_step" {
                let (inline, merge) = report.plan.counts();
                assert!(inline > 0, "{name}: {}", report.plan);
                // mlp trains with Adam: each parameter's m and v merge.
                assert!(*name != "mlp" || merge >= 2 * 6, "{name}: {}", report.plan);
            }
        }
    }
}
