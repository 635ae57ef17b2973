//! The wide (256-bit AVX) code of a flat f32 map against the Cranelift code
//! of the same kernel, side by side in one run: Adam's update of the mlp's
//! 256×784 weight (two divisions and a square root per element), and a
//! memory-bound map (`p - lr·g`) of the same size for contrast.
//!
//! `cargo bench -p dlc-jit --bench wide`; one thread, best of many runs.

use dlc_ir::{AffineMap, Attrs, DType, OpKind};
use dlc_jit::{BufferMut, Buffer, CompiledGeneric, GenericBuilder, GenericSpec, IterKind, Jit, JitOptions, NodeId, Source};
use std::time::Instant;

const SIZES: [usize; 2] = [256, 784];

fn full() -> AffineMap {
    AffineMap::identity(2)
}

/// Adam's update as the train step writes it: inputs `p, step, m, g, v, c`,
/// outputs `p'`, `v'`, `m'`.
fn adam() -> GenericSpec {
    let mut g = GenericBuilder::new(&[IterKind::Parallel; 2], DType::F32).unwrap();
    let scalar = AffineMap { dims: 2, results: vec![] };
    let p = g.input(DType::F32, full(), None).unwrap();
    let step = g.input(DType::F32, scalar.clone(), None).unwrap();
    let m = g.input(DType::F32, full(), None).unwrap();
    let gr = g.input(DType::F32, full(), None).unwrap();
    let v = g.input(DType::F32, full(), None).unwrap();
    let c = g.input(DType::F32, scalar, None).unwrap();
    let d = g.op(OpKind::Sub, &[gr, m], Attrs::new()).unwrap();
    let b1 = g.constant(0.1, DType::F32).unwrap();
    let b2 = g.constant(0.999, DType::F32).unwrap();
    let c2 = g.constant(0.001, DType::F32).unwrap();
    let eps = g.constant(1e-8, DType::F32).unwrap();
    let mut op = |k: OpKind, a: &[NodeId]| g.op(k, a, Attrs::new()).unwrap();
    let d = op(OpKind::Mul, &[b1, d]);
    let m2 = op(OpKind::Add, &[m, d]);
    let vb = op(OpKind::Mul, &[v, b2]);
    let gg = op(OpKind::Mul, &[c2, gr]);
    let gg = op(OpKind::Mul, &[gg, gr]);
    let v2 = op(OpKind::Add, &[vb, gg]);
    let s = op(OpKind::Sqrt, &[v2]);
    let s = op(OpKind::Div, &[s, c]);
    let den = op(OpKind::Add, &[s, eps]);
    let num = op(OpKind::Mul, &[step, m2]);
    let q = op(OpKind::Div, &[num, den]);
    let p2 = op(OpKind::Add, &[p, q]);
    g.finish_outputs(&[(p2, full()), (v2, full()), (m2, full())], None).unwrap()
}

/// Plain SGD: `p - lr·g`, two streams in, one out.
fn sgd() -> GenericSpec {
    let mut g = GenericBuilder::new(&[IterKind::Parallel; 2], DType::F32).unwrap();
    let p = g.input(DType::F32, full(), None).unwrap();
    let gr = g.input(DType::F32, full(), None).unwrap();
    let lr = g.constant(0.01, DType::F32).unwrap();
    let s = g.op(OpKind::Mul, &[lr, gr], Attrs::new()).unwrap();
    let p2 = g.op(OpKind::Sub, &[p, s], Attrs::new()).unwrap();
    g.finish(p2, full(), None).unwrap()
}

/// Best time of `runs` calls of `k` on fresh-looking data (values that stay
/// normal across the runs).
fn time(k: &CompiledGeneric, runs: usize) -> f64 {
    let n = SIZES[0] * SIZES[1];
    let spec = k.spec();
    let inputs: Vec<Vec<f32>> = spec
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, input)| if input.map.results.is_empty() { vec![0.5] } else { (0..n).map(|j| 0.01 + ((i * 7 + j) % 97) as f32 * 1e-3).collect() })
        .collect();
    let shapes: Vec<Vec<usize>> = spec.inputs().iter().map(|i| if i.map.results.is_empty() { vec![] } else { SIZES.to_vec() }).collect();
    let mut outs: Vec<Vec<f32>> = spec.outputs().iter().map(|_| vec![0.0; n]).collect();
    let mut best = f64::MAX;
    for _ in 0..runs {
        let ins: Vec<(Source<'_>, &[usize])> = inputs.iter().zip(&shapes).map(|(d, s)| (Source::Buffer(Buffer::F32(d)), s.as_slice())).collect();
        let bufs: Vec<(BufferMut<'_>, &[usize])> = outs.iter_mut().map(|o| (BufferMut::F32(o), &SIZES[..])).collect();
        let t = Instant::now();
        k.run_outputs(&ins, bufs, &SIZES, 0..SIZES[0]).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let wide = Jit::new().unwrap();
    let narrow = Jit::with_options(JitOptions { wide: false, ..JitOptions::default() }).unwrap();
    println!("flat f32 maps over {}x{} elements, 1 thread, best of 300 calls", SIZES[0], SIZES[1]);
    for (name, spec) in [("Adam update", adam()), ("SGD update", sgd())] {
        let (kw, kn) = (wide.compile_generic(&spec).unwrap(), narrow.compile_generic(&spec).unwrap());
        if !kw.is_wide() {
            println!("{name}: no wide code on this machine (it needs x86-64 with AVX2); 128-bit code only");
            continue;
        }
        // Interleaved rounds, so that both see the same moments of a shared machine.
        let (mut tw, mut tn) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            tn = tn.min(time(&kn, 100));
            tw = tw.min(time(&kw, 100));
        }
        println!("{name:<12} 128-bit (Cranelift) {:>7.3} ms   256-bit (wide) {:>7.3} ms   {:.2}x", tn * 1e3, tw * 1e3, tn / tw);
    }
}
