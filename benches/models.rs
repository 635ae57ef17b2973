//! The model benchmark: dlc beside PyTorch eager, torch.compile and
//! onnxruntime on the MLP (784-256-128-10) and the Keras MNIST CNN — inference
//! and an Adam train step — plus dlc's compile time for every example model,
//! forward and train step. Ratios are taken within this one run (reference
//! time / dlc time: above 1 means dlc is faster); absolute times on a shared
//! machine mean little.
//!
//! `cargo bench --bench models [-- --threads 2] [-- --no-compile] [-- --profile]`
//! (`--profile`: per-step times of the dlc train steps instead of the table). The reference
//! side runs when `python3` can import torch (and onnxruntime for its column):
//! `pip install torch numpy onnx onnxruntime`; otherwise it is skipped with a message.

use dlc::{Model, Options, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// PERF.md's f32 FMA peak of one core (GFLOP/s). The Xeon dev machines measure higher
/// (184-232 with AVX-512, see the contract crate's bench), so read it as a floor.
const PEAK_PER_CORE: f64 = 115.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Median milliseconds of `calls` calls after 2 warm-up calls.
fn median_ms(calls: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut ts: Vec<f64> = (0..calls)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    ts[calls / 2]
}

/// Multiply-add FLOPs (×2) of one forward pass per example, as PERF.md counts them.
fn forward_flops(model: &str) -> f64 {
    match model {
        "mlp" => 2.0 * (784.0 * 256.0 + 256.0 * 128.0 + 128.0 * 10.0),
        _ => 2.0 * (26.0 * 26.0 * 32.0 * 9.0 + 11.0 * 11.0 * 64.0 * 32.0 * 9.0 + 3.0 * 3.0 * 64.0 * 64.0 * 9.0 + 576.0 * 64.0 + 64.0 * 10.0),
    }
}

/// An example model compiled with `threads`, its input's name, a
/// deterministic batch of inputs (`shape` after the batch dim) and labels.
fn setup(file: &str, shape: &[usize], batch: usize, threads: usize) -> (Model, String, Tensor, Tensor) {
    let model = Model::compile_file(root().join("examples").join(file), &Options { threads, ..Options::default() }).expect("the example compiles");
    let input = model.signature().inputs().next().expect("one input").name.clone();
    let mut full = vec![batch];
    full.extend(shape);
    let n: usize = full.iter().product();
    let x = Tensor::from_f32(&full, (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect()).expect("shape fits");
    let y = Tensor::from_i64(&[batch], (0..batch as i64).map(|i| i % 10).collect()).expect("shape fits");
    (model, input, x, y)
}

fn dlc_times(threads: usize) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, file, shape, batch, calls) in [
        ("mlp", "mlp.dl", vec![784usize], 64usize, 30usize),
        ("mlp", "mlp.dl", vec![784], 256, 10),
        ("cnn", "mnist_cnn.dl", vec![1, 28, 28], 64, 15),
    ] {
        let (model, input, x, y) = setup(file, &shape, batch, threads);
        let t = median_ms(calls, || {
            model.forward(&[(input.as_str(), &x)]).expect("forward runs");
        });
        out.insert(format!("{name}_b{batch}_infer"), t);
        let mut trainer = model.trainer().expect("a train block");
        let t = median_ms(calls, || {
            trainer.step(&[(input.as_str(), &x)], &y).expect("a step runs");
        });
        out.insert(format!("{name}_b{batch}_train"), t);
    }
    out
}

/// `{"workload": …, "framework": …, "ms": …}` lines from the reference script.
fn reference(threads: usize, compile: bool) -> Result<Vec<(String, String, f64)>, String> {
    let script = root().join("benches/reference/models_torch.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg("--threads").arg(threads.to_string());
    if !compile {
        cmd.arg("--no-compile");
    }
    let out = cmd.output().map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("failed").to_string());
    }
    let field = |line: &str, key: &str| -> Option<String> {
        let rest = line.split(&format!("\"{key}\": ")).nth(1)?;
        Some(rest.split([',', '}']).next()?.trim().trim_matches('"').to_string())
    };
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| Some((field(l, "workload")?, field(l, "framework")?, field(l, "ms")?.parse().ok()?)))
        .collect())
}

fn compile_times() {
    println!("\ncompile time (release build; the train step includes autodiff and the optimizer):");
    for e in ["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"] {
        let path = root().join(format!("examples/{e}.dl"));
        let fwd = median_ms(9, || {
            Model::compile_file(&path, &Options::default()).expect("compiles");
        });
        let model = Model::compile_file(&path, &Options::default()).expect("compiles");
        let train = median_ms(9, || {
            model.trainer().expect("a train block");
        });
        // Where the train step's time goes: building it (autodiff, optimizer,
        // the default pipeline), lowering and fusion, code generation.
        let p = dlc::Program::load(&path).expect("compiles");
        let spec = p.compiled.as_ref().and_then(|c| c.model.train.as_ref()).expect("a train block");
        let step = dlc::train::config::program(p.forward().expect("@forward"), spec).expect("builds").step;
        let build = median_ms(5, || {
            dlc::train::config::program(p.forward().expect("@forward"), spec).expect("builds");
        });
        let kernels = dlc::program::kernel_level(&step).expect("lowers");
        let lower = median_ms(5, || {
            dlc::program::kernel_level(&step).expect("lowers");
        });
        let codegen = median_ms(5, || {
            dlc::cpu::CpuExecutable::compile(&kernels, &dlc::cpu::CpuOptions { threads: 1 }).expect("compiles");
        });
        println!("  {e:<12} forward {fwd:>7.2} ms   train step {train:>7.2} ms (build {build:.2}, kernel level {lower:.2}, code {codegen:.2})");
        // The e-graph pass alone on the optimized train step (its budget is
        // part of the kernel level above), and what fusion does after it.
        let x = dlc::program::explain_fusion(&step).expect("explains");
        let (g, fusion) = (&x.egraph, &x.fusion);
        println!(
            "  {:<12} egraph {:>5.2} ms ({} -> {} ops, est. {:.0} -> {:.0} us); kernels {} -> {}, {:.0} -> {:.0} KiB moved",
            "",
            g.time.as_secs_f64() * 1e3,
            g.ops.0,
            g.ops.1,
            g.cost_before / 1e3,
            g.cost_after / 1e3,
            fusion.before.kernels,
            fusion.after.kernels,
            fusion.before.bytes / 1024.0,
            fusion.after.bytes / 1024.0
        );
    }
}

/// `--profile`: where the CNN's and the MLPs' forward pass and train step
/// spend their time, summed per step description (`interp[reduce_sum]`,
/// `matmul+bias+relu`, …), largest first.
fn profile(threads: usize) {
    let rounds = 5;
    for (file, shape, batch) in [("mnist_cnn.dl", vec![1usize, 28, 28], 64usize), ("mlp.dl", vec![784], 64), ("mlp.dl", vec![784], 256), ("digits_mlp.dl", vec![64], 32)] {
        let (model, input, x, y) = setup(file, &shape, batch, threads);
        // The forward pass as Model::forward runs it: parameters bound.
        let k = dlc::program::kernel_level(model.program().forward().expect("a forward")).expect("lowers");
        let mut exe = dlc::cpu::CpuExecutable::compile(&k, &dlc::cpu::CpuOptions { threads }).expect("compiles");
        exe.bind(model.params().map(|(n, t)| (n.to_string(), t.clone())).collect()).expect("binds");
        // One round first, untimed: it allocates the arena, whose first
        // touch (page faults) would be charged to whichever step writes a
        // page first.
        exe.run(&[&x]).expect("runs");
        let forward: Vec<_> = (0..rounds).map(|_| exe.run_profiled(&[&x]).expect("runs").1).collect();
        print_profile(&format!("{file} forward, batch {batch}, {threads} thread(s)"), &forward);
        let mut trainer = model.trainer().expect("a train block");
        trainer.step_profiled(&[(input.as_str(), &x)], &y, true).expect("a step runs");
        let steps: Vec<_> = (0..rounds).map(|_| trainer.step_profiled(&[(input.as_str(), &x)], &y, true).expect("a step runs").1).collect();
        print_profile(&format!("{file} train step, batch {batch}, {threads} thread(s)"), &steps);
    }
}

/// Per-step times of `rounds` runs, summed per step kind and averaged.
fn print_profile(title: &str, rounds: &[dlc::cpu::StepTimes]) {
    let n = rounds.len() as f64;
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut single: Vec<(f64, usize, String)> = Vec::new();
    for times in rounds {
        for (i, (name, t)) in times.iter().enumerate() {
            if single.len() < times.len() {
                single.push((0.0, i, name.clone()));
            }
            single[i].0 += t.as_secs_f64() * 1e3 / n;
            let e = sums.entry(name.clone()).or_default();
            e.0 += t.as_secs_f64() * 1e3 / n;
            e.1 += 1;
        }
    }
    let total: f64 = sums.values().map(|v| v.0).sum();
    let mut rows: Vec<_> = sums.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!("\n{title}: {total:.2} ms in {} kinds of step", rows.len());
    for (name, (ms, count)) in rows.iter().take(25) {
        println!("  {ms:>8.3} ms {:>5.1}%  x{:<4} {name}", 100.0 * ms / total, *count as f64 / n);
    }
    single.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("  slowest single steps (step number: time):");
    for (ms, i, name) in single.iter().take(12) {
        println!("    #{i:<4} {ms:>8.3} ms  {name}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args.iter().position(|a| a == "--threads").and_then(|i| args.get(i + 1)).and_then(|t| t.parse().ok()).unwrap_or(1usize);
    let compile = !args.iter().any(|a| a == "--no-compile");
    if args.iter().any(|a| a == "--profile") {
        profile(threads);
        return;
    }
    println!("dlc (jit backend) and the references, all at {threads} thread(s)");
    let dlc = dlc_times(threads);
    let refs = reference(threads, compile);
    println!("\n{:<16} {:>10} {:>9} {:>12} {:>12} {:>12} {:>14} {:>12}", "workload", "dlc ms", "GFLOP/s", "torch ms", "torch NHWC", "compile ms", "onnxruntime ms", "best ratio");
    for (w, &ms) in &dlc {
        let model = w.split('_').next().unwrap_or("mlp");
        let batch: f64 = w.split('_').nth(1).and_then(|b| b.trim_start_matches('b').parse().ok()).unwrap_or(1.0);
        let mult = if w.ends_with("train") { 3.0 } else { 1.0 };
        let gflops = forward_flops(model) * batch * mult / (ms * 1e6);
        let get = |fw: &str| refs.as_ref().ok().and_then(|r| r.iter().find(|(rw, rf, _)| rw == w && rf == fw).map(|r| r.2));
        let (t, nhwc, c, o) = (get("torch"), get("torch.channels_last"), get("torch.compile"), get("onnxruntime"));
        let best = [t, nhwc, c, o].into_iter().flatten().fold(f64::INFINITY, f64::min);
        let show = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        let ratio = if best.is_finite() { format!("{:.2}x", best / ms) } else { "-".into() };
        println!("{w:<16} {ms:>10.3} {gflops:>9.1} {:>12} {:>12} {:>12} {:>14} {ratio:>12}", show(t), show(nhwc), show(c), show(o));
    }
    if let Err(e) = &refs {
        println!("reference side skipped ({e}); install it with `pip install torch numpy onnx onnxruntime`");
    }
    println!("(GFLOP/s counts multiply-adds x2, a train step as 3 forward passes; PERF.md gives one core's peak as {PEAK_PER_CORE} GFLOP/s)");
    compile_times();
}
