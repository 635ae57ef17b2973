//! Compile time of typical 10-op kernels: a bias + tanh-GELU epilogue and an
//! Adam update. Prints the median over 21 compiles; a release build should
//! take well under 1 ms each (Cranelift compiles small functions in
//! 0.5-1 ms). The assertion is loose (25 ms) so that debug builds and busy
//! machines pass, but a pathological blow-up (a quadratic pass, an exploding
//! body) fails.

mod common;
use common::jit;
use dlc_ir::{Attrs, DType, OpKind};
use dlc_jit::{Access, KernelBuilder, KernelSpec, NodeId};
use std::time::Duration;

/// `gelu(x + bias)` in its tanh form: 0.5·y·(1 + tanh(√(2/π)·(y + 0.044715·y³))).
fn gelu_epilogue() -> KernelSpec {
    let mut k = KernelBuilder::new(2).unwrap();
    let x = k.input(DType::F32, &[Access::Full, Access::Full]).unwrap();
    let bias = k.input(DType::F32, &[Access::Broadcast, Access::Full]).unwrap();
    let op = |k: &mut KernelBuilder, kind, args: &[NodeId]| k.op(kind, args, Attrs::new()).unwrap();
    let y = op(&mut k, OpKind::Add, &[x, bias]);
    let y2 = op(&mut k, OpKind::Mul, &[y, y]);
    let y3 = op(&mut k, OpKind::Mul, &[y2, y]);
    let c = k.constant(0.044715, DType::F32).unwrap();
    let t = op(&mut k, OpKind::Mul, &[y3, c]);
    let t = op(&mut k, OpKind::Add, &[y, t]);
    let s = k.constant(0.7978845608, DType::F32).unwrap();
    let t = op(&mut k, OpKind::Mul, &[t, s]);
    let t = op(&mut k, OpKind::Tanh, &[t]);
    let one = k.constant(1.0, DType::F32).unwrap();
    let t = op(&mut k, OpKind::Add, &[t, one]);
    let t = op(&mut k, OpKind::Mul, &[y, t]);
    let half = k.constant(0.5, DType::F32).unwrap();
    let out = op(&mut k, OpKind::Mul, &[t, half]);
    k.finish(out).unwrap()
}

/// One Adam step for one parameter (the new parameter only).
fn adam_update() -> KernelSpec {
    let mut k = KernelBuilder::new(1).unwrap();
    let [p, g, m, v] = [0; 4].map(|_| k.input(DType::F32, &[Access::Full]).unwrap());
    let c = |k: &mut KernelBuilder, x: f64| k.constant(x, DType::F32).unwrap();
    let op = |k: &mut KernelBuilder, kind, args: &[NodeId]| k.op(kind, args, Attrs::new()).unwrap();
    let (b1, nb1, b2, nb2, lr, eps) = (c(&mut k, 0.9), c(&mut k, 0.1), c(&mut k, 0.999), c(&mut k, 0.001), c(&mut k, 1e-3), c(&mut k, 1e-8));
    let m1 = op(&mut k, OpKind::Mul, &[b1, m]);
    let m2 = op(&mut k, OpKind::Mul, &[nb1, g]);
    let m = op(&mut k, OpKind::Add, &[m1, m2]);
    let gg = op(&mut k, OpKind::Mul, &[g, g]);
    let v1 = op(&mut k, OpKind::Mul, &[b2, v]);
    let v2 = op(&mut k, OpKind::Mul, &[nb2, gg]);
    let v = op(&mut k, OpKind::Add, &[v1, v2]);
    let d = op(&mut k, OpKind::Sqrt, &[v]);
    let d = op(&mut k, OpKind::Add, &[d, eps]);
    let s = op(&mut k, OpKind::Div, &[m, d]);
    let s = op(&mut k, OpKind::Mul, &[s, lr]);
    let out = op(&mut k, OpKind::Sub, &[p, s]);
    k.finish(out).unwrap()
}

fn median_compile_time(spec: &KernelSpec) -> Duration {
    let mut ts: Vec<Duration> = (0..21).map(|_| jit().compile(spec).unwrap().compile_time()).collect();
    ts.sort();
    ts[ts.len() / 2]
}

#[test]
fn ten_op_kernels_compile_quickly() {
    for (name, spec) in [("bias + gelu (tanh), 10 ops", gelu_epilogue()), ("adam update, 12 ops", adam_update())] {
        let t = median_compile_time(&spec);
        println!("compile time of {name}: {:.3} ms (median of 21)", t.as_secs_f64() * 1e3);
        assert!(t < Duration::from_millis(25), "{name}: {t:?}");
    }
}
