//! What the e-graph pass and kernel fusion buy, per example model: its
//! forward pass and train step lowered three ways — one kernel per op
//! (neither), fusion alone, and the e-graph pass then fusion (what dlc
//! compiles) — each with its kernel count, the bytes its kernels move and
//! its FLOPs (the cost model's estimate at batch 64), the CPU backend's
//! arena at batch 64, and its run time at 1 and 2 threads, side by side in
//! one run. Ratios are to the "neither" column (above 1: faster).
//!
//! `cargo bench --bench fusion [-- --only NAME]`

#[path = "../tests/common/mod.rs"]
mod common;

use dlc::cpu::{CpuExecutable, CpuOptions};
use dlc::ir::Function;
use dlc::program::{KernelLevel, kernel_level_with};
use std::time::Instant;

const BATCH: usize = 64;

/// Median seconds per call over at least 5 calls and 0.3 s, after one warm-up.
fn median_s(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut ts = Vec::new();
    while ts.len() < 5 || start.elapsed().as_secs_f64() < 0.3 {
        let t = Instant::now();
        f();
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    ts[ts.len() / 2]
}

struct Row {
    kernels: usize,
    mib_moved: f64,
    arena_mib: f64,
    ms: [f64; 2],
}

fn measure(f: &Function, level: KernelLevel, args: &[dlc::Tensor]) -> Row {
    let k = kernel_level_with(f, level).unwrap_or_else(|e| panic!("@{}: {}", f.name, e.render(false)));
    let cost = dlc::passes::kernel::cost::function_cost(&k);
    let mut ms = [0.0; 2];
    let mut arena = 0;
    for (i, threads) in [1usize, 2].into_iter().enumerate() {
        let exe = CpuExecutable::compile(&k, &CpuOptions { threads }).expect("the kernels compile");
        arena = exe.memory_plan(Some(BATCH)).arena_bytes;
        ms[i] = 1e3 * median_s(|| {
            exe.run(args).expect("a run");
        });
    }
    Row { kernels: cost.kernels, mib_moved: cost.bytes / (1024.0 * 1024.0), arena_mib: arena as f64 / (1024.0 * 1024.0), ms }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("fusion benchmark: batch {BATCH}, 1 and 2 threads, {cores} core(s) here; times are medians of one run");
    println!("columns: kernels, MiB moved (cost model), arena MiB, ms at 1 thread, ms at 2 threads (ratio to 'neither')");
    let levels = [
        ("neither", KernelLevel { egraph: false, fuse: false }),
        ("fusion", KernelLevel { egraph: false, fuse: true }),
        ("egraph+fusion", KernelLevel { egraph: true, fuse: true }),
    ];
    for name in common::EXAMPLES {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let (fs, prog) = common::example(name);
        for f in &fs[..2] {
            let args = common::arguments(f, &prog, BATCH, 7);
            println!("\n{name} @{}", f.name);
            let mut base: Option<[f64; 2]> = None;
            for (label, level) in levels {
                let r = measure(f, level, &args);
                let b = *base.get_or_insert(r.ms);
                println!(
                    "  {label:<14} {:>4} kernels {:>8.2} MiB moved {:>7.2} MiB arena {:>8.3} ms ({:.2}x) {:>8.3} ms ({:.2}x)",
                    r.kernels,
                    r.mib_moved,
                    r.arena_mib,
                    r.ms[0],
                    b[0] / r.ms[0],
                    r.ms[1],
                    b[1] / r.ms[1]
                );
            }
        }
    }
}
