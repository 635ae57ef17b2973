//! Helpers shared by the JIT's tests: one JIT per process, kernels from a
//! single op, dl functions from shapes, and the comparison rules.
#![allow(dead_code)]

use dlc_backends::Tensor;
use dlc_ir::{Attrs, DType, Dim, Function, OpKind, TensorType, Type, ValueId};
use dlc_jit::{Access, Buffer, BufferMut, CompiledKernel, Jit, KernelBuilder, Lowered, lower_function};
use std::sync::OnceLock;

/// The process's JIT (the ISA is built once).
pub fn jit() -> &'static Jit {
    static JIT: OnceLock<Jit> = OnceLock::new();
    // fma contraction on (not the default): the tests cover that code path
    // too; the results are compared with tolerances that allow for it.
    JIT.get_or_init(|| Jit::with_options(dlc_jit::JitOptions { fma: true, ..dlc_jit::JitOptions::default() }).expect("the host is supported"))
}

/// A rank-1 kernel applying one unary op to one input.
pub fn unary(kind: OpKind, attrs: Attrs, dtype: DType) -> CompiledKernel {
    let mut k = KernelBuilder::new(1).unwrap();
    let x = k.input(dtype, &[Access::Full]).unwrap();
    let y = k.op(kind, &[x], attrs).unwrap();
    jit().compile(&k.finish(y).unwrap()).unwrap()
}

/// Runs a rank-1 f32 unary kernel over `xs`.
pub fn map_f32(k: &CompiledKernel, xs: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; xs.len()];
    k.run(&[xs], &mut out, &[xs.len()]).unwrap();
    out
}

/// Runs a rank-1 f64 unary kernel over `xs`.
pub fn map_f64(k: &CompiledKernel, xs: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; xs.len()];
    k.run_f64(&[xs], &mut out, &[xs.len()]).unwrap();
    out
}

/// A tensor type from a shape where `None` is `?`.
pub fn ty(shape: &[Option<u64>], dtype: DType) -> Type {
    Type::Tensor(TensorType::new(shape.iter().map(|d| d.map_or(Dim::Dynamic, Dim::Static)).collect(), dtype))
}

/// Adds arguments of the given types to a fresh function.
pub fn function(args: &[Type]) -> (Function, Vec<ValueId>) {
    let mut f = Function::new("kernel");
    let vs = args.iter().map(|t| f.add_arg(t.clone(), None, Attrs::new())).collect();
    (f, vs)
}

/// Runs `func` on the interpreter and on the JIT (through `lower_function`),
/// returning (interpreter, jit) outputs as f64 (i1 as 0/1).
pub fn both(func: &Function, args: &[Tensor], batch: Option<usize>) -> (Vec<f64>, Vec<f64>, Lowered) {
    let want = dlc_backends::run(func, args).expect("the interpreter runs it");
    let lowered = lower_function(func).expect("it lowers");
    let kernel = jit().compile(&lowered.spec).expect("it compiles");
    let out_shape = lowered.output_shape(batch).expect("batch given");
    let shape = lowered.iteration_shape(&out_shape).unwrap();
    let n: usize = out_shape.iter().product();
    let ins: Vec<Buffer<'_>> = args.iter().map(buffer).collect();
    let got = match lowered.spec.output_dtype() {
        DType::F32 => {
            let mut o = vec![0f32; n];
            kernel.run_buffers(&ins, BufferMut::F32(&mut o), &shape).unwrap();
            o.into_iter().map(f64::from).collect()
        }
        DType::F64 => {
            let mut o = vec![0f64; n];
            kernel.run_buffers(&ins, BufferMut::F64(&mut o), &shape).unwrap();
            o
        }
        DType::I1 => {
            let mut o = vec![false; n];
            kernel.run_buffers(&ins, BufferMut::I1(&mut o), &shape).unwrap();
            o.into_iter().map(|b| b as u8 as f64).collect()
        }
        d => panic!("unexpected output dtype {d}"),
    };
    assert_eq!(want.len(), 1);
    assert_eq!(want[0].shape(), out_shape.as_slice());
    (want[0].to_f64_vec(), got, lowered)
}

/// A borrowed buffer of a (standard-layout) tensor.
pub fn buffer(t: &Tensor) -> Buffer<'_> {
    match t {
        Tensor::F32(a) => Buffer::F32(a.as_slice().expect("standard layout")),
        Tensor::F64(a) => Buffer::F64(a.as_slice().expect("standard layout")),
        Tensor::I1(a) => Buffer::I1(a.as_slice().expect("standard layout")),
        other => panic!("no JIT buffer for {}", other.describe()),
    }
}

/// Within `rel` relative or `abs` absolute of `want`; NaN only matches NaN,
/// infinities only themselves, a zero only a zero of its sign (`1/x` tells
/// them apart downstream).
pub fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    if want == 0.0 && got == 0.0 {
        return want.is_sign_negative() == got.is_sign_negative();
    }
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= abs + rel * want.abs()
}

/// The error of an f32 result in units in the last place of the exact value
/// `want` (an f64 reference); 0 when `got` is `want` correctly rounded.
pub fn ulp_f32(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if got == want as f32 {
        return 0.0;
    }
    if got.is_infinite() || want.is_infinite() {
        return f64::INFINITY;
    }
    let a = want.abs().max(f32::MIN_POSITIVE as f64);
    let ulp = 2f64.powi(a.log2().floor() as i32 - 23);
    (got as f64 - want).abs() / ulp
}

/// The same for f64 results against an f64 reference (itself within about
/// half an ulp): the distance in representable doubles.
pub fn ulp_f64(got: f64, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if got == want {
        return 0.0;
    }
    if got.is_infinite() || want.is_infinite() || got.signum() != want.signum() {
        return f64::INFINITY;
    }
    (got.abs().to_bits() as i64 - want.abs().to_bits() as i64).unsigned_abs() as f64
}
