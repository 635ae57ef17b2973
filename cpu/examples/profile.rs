//! Prints the slowest steps of an example's train step at batch 64:
//! `cargo run -p dlc-cpu --release --example profile -- examples/mlp.dl`.
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
    let exe = CpuExecutable::compile(&p.step, &CpuOptions { threads: 2 }).unwrap();
    exe.run(&args).unwrap();
    let (_, mut times) = exe.run_profiled(&args).unwrap();
    let total: f64 = times.iter().map(|t| t.1.as_secs_f64()).sum();
    times.sort_by_key(|t| std::cmp::Reverse(t.1));
    println!("total {:.3} ms", total * 1e3);
    for (name, t) in times.iter().take(15) {
        println!("{:>9.3} ms  {}", t.as_secs_f64() * 1e3, &name[..name.len().min(100)]);
    }
}
