//! The digits benchmark: the 20-epoch PyTorch reference run (MLP 64-32-10,
//! Adam, batch 32, 900 steps) trained by dlc and by PyTorch side by side in one
//! run, printed as a ratio. Absolute times on a shared machine mean little; the
//! ratio taken in one run does.
//!
//! `cargo bench --bench digits` — the PyTorch side runs when `python3` can
//! import torch, numpy and safetensors (`pip install torch numpy safetensors`),
//! and is skipped with a message otherwise. Both sides use one thread.

use dlc::Backend;
use dlc::train::{Quiet, Split, Trainer, config};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dlc_once(backend: Backend) -> (f64, f64) {
    let fix = root().join("tests/fixtures/digits");
    let program = dlc::Program::load(&root().join("examples/digits_mlp.dl")).expect("the example compiles");
    let spec = program.compiled.as_ref().and_then(|c| c.model.train.as_ref()).expect("a train block");
    let mut cfg = config::from_spec(spec, None).expect("a valid train block");
    cfg.data.path = root().join("data/digits.csv");
    cfg.init = Some(fix.join("init.safetensors"));
    cfg.split = Split::Indices(fix.join("train_idx.npy"), fix.join("test_idx.npy"));
    cfg.batch_order = Some(fix.join("perms.npy"));
    cfg.threads = 1;
    let mut trainer = Trainer::new(program.forward().expect("a forward function"), cfg).expect("the trainer builds");
    trainer.set_backend(backend).expect("the backend compiles the program");
    // Time the epochs only, as the reference script does (data loading and compilation excluded).
    let t0 = Instant::now();
    let report = trainer.run(&mut Quiet).expect("training runs");
    (t0.elapsed().as_secs_f64(), report.history.last().expect("20 epochs").train_loss)
}

fn torch() -> Result<(f64, String), String> {
    let script = root().join("benches/reference/digits_torch.py");
    let out = Command::new("python3").arg(&script).arg("3").env("OMP_NUM_THREADS", "1").output().map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let median = line.split("\"median_s\": ").nth(1).and_then(|r| r.split([',', '}']).next()).and_then(|v| v.parse().ok()).ok_or("unexpected output")?;
    Ok((median, line))
}

fn main() {
    println!("digits MLP 64-32-10, Adam lr 1e-3, batch 32, 20 epochs (900 steps), 1 thread");
    println!("machine: {} cores available", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut best = f64::INFINITY;
    for (label, backend) in [("dlc (interpreter)", Backend::Interp), ("dlc (jit, 1 thread)", Backend::Jit)] {
        let mut times: Vec<f64> = Vec::new();
        let mut loss = 0.0;
        for _ in 0..RUNS {
            let (t, l) = dlc_once(backend);
            times.push(t);
            loss = l;
        }
        times.sort_by(f64::total_cmp);
        let dlc = times[RUNS / 2];
        best = best.min(dlc);
        println!("{label:<28} {:>10.1} ms   (median of {RUNS}; final epoch loss {loss:.6})", dlc * 1e3);
    }
    let dlc = best;
    match torch() {
        Ok((t, line)) => {
            println!("{:<28} {:>10.1} ms   {line}", "PyTorch eager", t * 1e3);
            println!("ratio PyTorch / dlc (the faster backend): {:.2}x", t / dlc);
        }
        Err(e) => println!("PyTorch side skipped ({e}); install it with `pip install torch numpy safetensors`"),
    }
}
