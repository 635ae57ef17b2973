//! Memory bandwidth of JIT-compiled elementwise kernels against plain Rust
//! loops on 16M f32 elements (one thread):
//!
//! ```text
//! cargo run -p dlc-jit --release --example elementwise_bench
//! ```
//!
//! Prints GB/s (bytes read + written per second, best of 10 runs) for
//! `relu(a*b + c)` (16 bytes per element, memory bound), the same with `c` a
//! broadcast row, and `sigmoid(a)` (8 bytes per element, where the
//! polynomial's arithmetic starts to count), each beside a Rust loop that
//! rustc auto-vectorizes (with libm's `expf` for sigmoid). A number, not an
//! assertion.

use dlc_ir::{Attrs, DType, OpKind};
use dlc_jit::{Access, Jit, KernelBuilder, NodeId};
use std::hint::black_box;
use std::time::Instant;

const N: usize = 16 << 20;
const COLS: usize = 4096;

fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn report(name: &str, bytes: usize, jit: f64, rust: f64) {
    let gbs = |t: f64| bytes as f64 / t / 1e9;
    println!("{name:<28} jit {:6.2} GB/s ({:6.2} ms)   rust loop {:6.2} GB/s ({:6.2} ms)   jit/rust {:.2}", gbs(jit), jit * 1e3, gbs(rust), rust * 1e3, rust / jit);
}

fn main() {
    let jit = Jit::new().expect("host supported");
    let a: Vec<f32> = (0..N).map(|i| ((i % 1000) as f32 - 500.0) * 0.01).collect();
    let b: Vec<f32> = (0..N).map(|i| ((i % 777) as f32) * 0.003).collect();
    let c: Vec<f32> = (0..N).map(|i| ((i % 333) as f32 - 100.0) * 0.02).collect();
    let row: Vec<f32> = c[..COLS].to_vec();
    let mut out = vec![0f32; N];
    let mut out2 = vec![0f32; N];

    // relu(a*b + c), all full-size.
    let mut k = KernelBuilder::new(1).unwrap();
    let [x, y, z] = [0; 3].map(|_| k.input(DType::F32, &[Access::Full]).unwrap());
    let op = |k: &mut KernelBuilder, kind, args: &[NodeId]| k.op(kind, args, Attrs::new()).unwrap();
    let p = op(&mut k, OpKind::Mul, &[x, y]);
    let s = op(&mut k, OpKind::Add, &[p, z]);
    let r = op(&mut k, OpKind::Relu, &[s]);
    let kernel = jit.compile(&k.finish(r).unwrap()).unwrap();
    println!("relu(a*b+c): compiled in {:.3} ms, {} lanes, fma {}", kernel.compile_time().as_secs_f64() * 1e3, kernel.vector_lanes(), jit.uses_fma());
    let t_jit = best_of(10, || kernel.run(&[&a, &b, &c], &mut out, &[N]).unwrap());
    let t_rust = best_of(10, || {
        for (((o, &x), &y), &z) in out2.iter_mut().zip(black_box(&a)).zip(&b).zip(&c) {
            let v = x * y + z;
            *o = if v < 0.0 { 0.0 } else { v };
        }
        black_box(&mut out2);
    });
    let worst = out.iter().zip(&out2).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    report("relu(a*b+c), 16M f32", 16 * N, t_jit, t_rust);
    println!("  max |jit - rust| = {worst:e} (fma rounds once)");

    // relu(a*b + row), the row broadcast over N/COLS rows.
    let mut k = KernelBuilder::new(2).unwrap();
    let x = k.input(DType::F32, &[Access::Full, Access::Full]).unwrap();
    let y = k.input(DType::F32, &[Access::Full, Access::Full]).unwrap();
    let z = k.input(DType::F32, &[Access::Broadcast, Access::Full]).unwrap();
    let p = op(&mut k, OpKind::Mul, &[x, y]);
    let s = op(&mut k, OpKind::Add, &[p, z]);
    let r = op(&mut k, OpKind::Relu, &[s]);
    let kernel = jit.compile(&k.finish(r).unwrap()).unwrap();
    let t_jit = best_of(10, || kernel.run(&[&a, &b, &row], &mut out, &[N / COLS, COLS]).unwrap());
    let t_rust = best_of(10, || {
        for ((o, x), y) in out2.chunks_exact_mut(COLS).zip(black_box(&a).chunks_exact(COLS)).zip(b.chunks_exact(COLS)) {
            for (((o, &x), &y), &z) in o.iter_mut().zip(x).zip(y).zip(&row) {
                let v = x * y + z;
                *o = if v < 0.0 { 0.0 } else { v };
            }
        }
        black_box(&mut out2);
    });
    report("relu(a*b+row), 16M f32", 12 * N, t_jit, t_rust);

    // sigmoid(a).
    let mut k = KernelBuilder::new(1).unwrap();
    let x = k.input(DType::F32, &[Access::Full]).unwrap();
    let r = op(&mut k, OpKind::Sigmoid, &[x]);
    let kernel = jit.compile(&k.finish(r).unwrap()).unwrap();
    let t_jit = best_of(10, || kernel.run(&[&a], &mut out, &[N]).unwrap());
    let t_rust = best_of(10, || {
        for (o, &x) in out2.iter_mut().zip(black_box(&a)) {
            *o = if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) };
        }
        black_box(&mut out2);
    });
    report("sigmoid(a), 16M f32", 8 * N, t_jit, t_rust);
}
