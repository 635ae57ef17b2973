//! How large a JIT kernel must be before splitting it over two threads
//! pays: times one step, four kinds of kernel (an add, an elementwise
//! chain with a square root and a division, a transposed copy, a row sum)
//! over `[batch, 256]` inputs, on one thread and on two with every kernel
//! split, from 4 Ki to 1 Mi points; once writing into the arena (the
//! kernel's value is consumed by a later step) and once into a fresh buffer
//! (the kernel's value is a function result):
//! `cargo run -p dlc-cpu --release --example split_threshold`.
//! `PAR_MIN_COST` (`cpu/src/parallel.rs`: points × (1 + body ops)) is
//! about where the speedups pass 1.
use dlc_backends::Tensor;
use dlc_cpu::{CpuExecutable, CpuOptions};
use dlc_ir::{Attr, Attrs, Builder, DType, Dim, Function, OpKind, TensorType, ValueId};

const KINDS: [&str; 4] = ["add", "mul,sqrt,div,sub", "transpose,neg", "reduce_sum (rows)"];

/// Kernel `kind` of `x, y: [?, n]`; returned as is (`fresh`) or multiplied
/// by a vector `w` (a matmul, which no kernel fuses into), so that it lives
/// in the arena.
fn func(kind: usize, n: u64, fresh: bool) -> Function {
    let mut f = Function::new("f");
    let ty: dlc_ir::Type = TensorType::new(vec![Dim::Dynamic, Dim::Static(n)], DType::F32).into();
    let x = f.add_arg(ty.clone(), Some("x"), Attrs::new());
    let y = f.add_arg(ty, Some("y"), Attrs::new());
    let w = f.add_arg(TensorType::new(vec![Dim::Static(n)], DType::F32).into(), Some("w"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let ints = |name: &str, v: &[i64]| {
        let mut a = Attrs::new();
        a.insert(name.into(), Attr::ints(v));
        a
    };
    let op = |b: &mut Builder<'_>, k: OpKind, ins: &[ValueId]| b.op(k, ins, Attrs::new()).unwrap();
    let r = match kind {
        0 => op(&mut b, OpKind::Add, &[x, y]),
        1 => {
            let m = op(&mut b, OpKind::Mul, &[x, y]);
            let s = op(&mut b, OpKind::Sqrt, &[m]);
            let d = op(&mut b, OpKind::Div, &[x, s]);
            op(&mut b, OpKind::Sub, &[d, y])
        }
        2 => {
            let t = b.op(OpKind::Transpose, &[x], ints("perm", &[1, 0])).unwrap();
            op(&mut b, OpKind::Neg, &[t])
        }
        _ => b.op(OpKind::ReduceSum, &[x], ints("axes", &[1])).unwrap(),
    };
    let r = match (fresh, kind) {
        (true, _) => r,
        (false, 2) => {
            let w = b.op(OpKind::Reshape, &[w], ints("shape", &[1, n as i64])).unwrap();
            op(&mut b, OpKind::Matmul, &[w, r])
        }
        (false, _) => {
            let w = b.op(OpKind::Reshape, &[w], ints("shape", &[n as i64, 1])).unwrap();
            op(&mut b, OpKind::Matmul, &[r, w])
        }
    };
    b.ret(&[r]);
    f.result_types = vec![f.ty(r).clone()];
    dlc_passes::to_kernels(&mut f).unwrap();
    f
}

/// The median time of step 0 over 200 runs.
fn step0(exe: &CpuExecutable, args: &[Tensor]) -> f64 {
    let mut t: Vec<f64> = (0..200).map(|_| exe.run_profiled(args).unwrap().1[0].1.as_secs_f64()).collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let n = 256;
    for (kind, name) in KINDS.iter().enumerate() {
        for fresh in [false, true] {
            if kind == 3 && !fresh {
                continue; // its output is one value a row: where it lives hardly matters
            }
            let f = func(kind, n, fresh);
            let one = CpuExecutable::compile(&f, &CpuOptions { threads: 1 }).unwrap();
            let two = CpuExecutable::compile(&f, &CpuOptions { threads: 2 }).unwrap().with_min_parallel_cost(0);
            println!("{name}, output {}: {}", if fresh { "fresh (a result)" } else { "in the arena" }, one.plan_summary()[0]);
            for batch in [16usize, 64, 128, 256, 512, 1024, 4096] {
                let x = Tensor::from_f32(&[batch, n as usize], (0..batch * n as usize).map(|i| (i % 7) as f32 + 1.0).collect()).unwrap();
                let args = [x.clone(), x, Tensor::from_f32(&[n as usize], vec![1.0; n as usize]).unwrap()];
                let (t1, t2) = (step0(&one, &args), step0(&two, &args));
                println!("  {:>8} points: 1 thread {:>8.2} us, 2 threads {:>8.2} us, speedup {:.2}", batch * n as usize, t1 * 1e6, t2 * 1e6, t1 / t2);
            }
        }
    }
}
