//! Prints the slowest steps of an example's train step at batch 64, the
//! median run time and the memory plan:
//! `cargo run -p dlc-cpu --release --example profile -- examples/mlp.dl [threads] [runs]`.
use dlc_backends::Tensor;
use dlc_cpu::{CpuExecutable, CpuOptions};
use dlc_ir::{Dim, Role, Signature};

fn main() {
    let path = std::env::args().nth(1).expect("a .dl file");
    let src = std::fs::read_to_string(&path).unwrap();
    let c = dlc_frontend::compile(&path, &src).unwrap_or_else(|_| panic!("{path} does not compile"));
    let fwd = c.module.function("forward").unwrap().clone();
    let t = c.model.train.as_ref().expect("a train block");
    let label = (t.loss.label.source == dlc_frontend::LabelSource::Input).then_some(t.loss.label.name.as_str());
    let loss = dlc_ir::train::LossSpec { kind: t.loss.kind, reduction: t.loss.reduction };
    let p = dlc_passes::train_step::build(&fwd, &t.loss.output, label, &loss, &t.optimizer.kind).unwrap();
    let sig = Signature::of(&p.step).unwrap();
    let params = dlc_backends::init_params(&sig, 0);
    let state = dlc_backends::init_state(&sig, 0);
    let args: Vec<Tensor> = sig
        .args
        .iter()
        .map(|a| match &a.role {
            Role::Param(_) => params.iter().find(|x| x.0 == a.name).unwrap().1.clone(),
            Role::State(_) => state.iter().find(|x| x.0 == a.name).unwrap().1.clone(),
            Role::Input => {
                let s: Vec<usize> = a.ty.shape.iter().map(|d| if let Dim::Static(n) = d { *n as usize } else { 64 }).collect();
                let n: usize = s.iter().product();
                Tensor::from_f64_values(&s, &vec![1.0; n], a.ty.dtype).unwrap()
            }
        })
        .collect();
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    let runs: usize = std::env::args().nth(3).and_then(|t| t.parse().ok()).unwrap_or(20);
    let mut k = p.step.clone();
    dlc_passes::to_kernels(&mut k).unwrap();
    let exe = CpuExecutable::compile(&k, &CpuOptions { threads }).unwrap();
    let mut walls: Vec<f64> = (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            drop(exe.run(&args).unwrap());
            start.elapsed().as_secs_f64()
        })
        .collect();
    walls.sort_by(f64::total_cmp);
    println!("{threads} thread(s), median of {runs} runs: {:.3} ms", walls[runs / 2] * 1e3);
    let m = exe.memory_plan(Some(64));
    println!(
        "memory: arena {} KiB, peak live {} KiB, naive {} KiB, outside {} KiB",
        m.arena_bytes / 1024,
        m.peak_live_bytes / 1024,
        m.naive_bytes / 1024,
        m.outside_bytes / 1024
    );
    // Each step's median over the runs.
    let profiles: Vec<Vec<(String, std::time::Duration)>> = (0..runs).map(|_| exe.run_profiled(&args).unwrap().1).collect();
    let mut steps: Vec<(f64, usize, String)> = (0..profiles[0].len())
        .map(|i| {
            let mut t: Vec<f64> = profiles.iter().map(|p| p[i].1.as_secs_f64()).collect();
            t.sort_by(f64::total_cmp);
            (t[runs / 2], i, profiles[0][i].0.clone())
        })
        .collect();
    let total: f64 = steps.iter().map(|s| s.0).sum();
    steps.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("sum of step medians {:.3} ms", total * 1e3);
    for (t, i, name) in steps.iter().take(15) {
        println!("{:>9.3} ms  #{i:<4} {}", t * 1e3, &name[..name.len().min(100)]);
    }
}
