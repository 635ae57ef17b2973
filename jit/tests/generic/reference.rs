//! A naive evaluator of `GenericSpec` semantics, the oracle for the
//! structured-kernel tests, and the helpers that run the JIT beside it.
//!
//! It visits every point of the iteration space in row-major order and
//! evaluates the body in f64, rounding every f32 node to f32 (as the
//! machine code's f32 arithmetic does), with the interpreter's op rules
//! (`backends/src/interp`): `maximum`/`minimum` propagate NaN and keep the
//! first operand on ties, `relu` lets NaN through, `cmp` is IEEE.

use dlc_ir::{AttrView, DType, OpKind};
use dlc_jit::{Buffer, BufferMut, CompiledGeneric, GenericSpec, Jit, Node};
use std::sync::OnceLock;

/// The process's JIT.
pub fn jit() -> &'static Jit {
    static JIT: OnceLock<Jit> = OnceLock::new();
    // fma contraction on (not the default): the tests cover that code path
    // too; the results are compared with tolerances that allow for it.
    JIT.get_or_init(|| Jit::with_options(dlc_jit::JitOptions { fma: true, ..dlc_jit::JitOptions::default() }).expect("the host is supported"))
}

/// A dense row-major operand: values as f64 (i1 as 0/1) and a shape.
#[derive(Clone, Debug)]
pub struct Operand {
    pub data: Vec<f64>,
    pub shape: Vec<usize>,
}

impl Operand {
    pub fn new(data: Vec<f64>, shape: &[usize]) -> Operand {
        assert_eq!(data.len(), shape.iter().product::<usize>());
        Operand { data, shape: shape.to_vec() }
    }
}

/// A small deterministic generator (xorshift64*), so the tests need no rand.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1), representable in f32.
    pub fn value(&mut self) -> f64 {
        ((self.next() >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32 as f64
    }

    /// An operand of random values in [-1, 1).
    pub fn operand(&mut self, shape: &[usize]) -> Operand {
        let n = shape.iter().product();
        Operand::new((0..n).map(|_| self.value()).collect(), shape)
    }

    /// An operand of random booleans.
    pub fn mask(&mut self, shape: &[usize]) -> Operand {
        let n = shape.iter().product();
        Operand::new((0..n).map(|_| (self.next() >> 63) as f64).collect(), shape)
    }
}

fn round(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => v as f32 as f64,
        DType::I1 => (v != 0.0) as u8 as f64,
        _ => v,
    }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        if a.is_nan() { a } else { b }
    } else if b > a {
        b
    } else {
        a
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        if a.is_nan() { a } else { b }
    } else if b < a {
        b
    } else {
        a
    }
}

/// One body op on f64 values, before rounding to its type.
fn op(kind: OpKind, attrs: &dlc_ir::Attrs, x: &[f64]) -> f64 {
    use OpKind as K;
    match kind {
        K::Neg => -x[0],
        K::Abs => x[0].abs(),
        K::Exp => x[0].exp(),
        K::Log => x[0].ln(),
        K::Sqrt => x[0].sqrt(),
        K::Tanh => x[0].tanh(),
        K::Sigmoid => 1.0 / (1.0 + (-x[0]).exp()),
        K::Relu => {
            if x[0] < 0.0 {
                0.0
            } else {
                x[0]
            }
        }
        K::Cast => x[0],
        K::Add => x[0] + x[1],
        K::Sub => x[0] - x[1],
        K::Mul => x[0] * x[1],
        K::Div => x[0] / x[1],
        K::Maximum => nan_max(x[0], x[1]),
        K::Minimum => nan_min(x[0], x[1]),
        K::Cmp => {
            let p = AttrView::new(kind, attrs).str("predicate").unwrap();
            let r = match p.as_str() {
                "eq" => x[0] == x[1],
                "ne" => x[0] != x[1],
                "lt" => x[0] < x[1],
                "le" => x[0] <= x[1],
                "gt" => x[0] > x[1],
                _ => x[0] >= x[1],
            };
            r as u8 as f64
        }
        K::Select => {
            if x[0] != 0.0 {
                x[1]
            } else {
                x[2]
            }
        }
        other => panic!("the reference evaluator has no {}", other.name()),
    }
}

/// The output shape: the output map's image of `sizes`.
pub fn out_shape(spec: &GenericSpec, sizes: &[usize]) -> Vec<usize> {
    spec.out_map().results.iter().map(|e| sizes[e.as_dim().unwrap()]).collect()
}

fn offset(shape: &[usize], idx: &[i64]) -> Option<usize> {
    let mut off = 0usize;
    for (&n, &i) in shape.iter().zip(idx) {
        if i < 0 || i as usize >= n {
            return None;
        }
        off = off * n + i as usize;
    }
    Some(off)
}

/// Evaluates `spec` by its definition.
pub fn eval(spec: &GenericSpec, inputs: &[Operand], sizes: &[usize]) -> Vec<f64> {
    let oshape = out_shape(spec, sizes);
    let n_out: usize = oshape.iter().product();
    let mut out = vec![spec.init().map_or(f64::NAN, |v| round(spec.out_dtype(), v)); n_out];
    let total: usize = sizes.iter().product();
    let mut p = vec![0usize; sizes.len()];
    let mut vals = vec![0.0; spec.body().len()];
    for _ in 0..total {
        let oidx: Vec<i64> = spec.out_map().results.iter().map(|e| e.eval(&p)).collect();
        let o = offset(&oshape, &oidx).unwrap();
        for (n, node) in spec.body().iter().enumerate() {
            let d = spec.dtype(dlc_jit::NodeId(n as u32));
            vals[n] = match node {
                Node::Input(i) => {
                    let input = &spec.inputs()[*i];
                    let idx: Vec<i64> = input.map.results.iter().map(|e| e.eval(&p)).collect();
                    match offset(&inputs[*i].shape, &idx) {
                        Some(off) => inputs[*i].data[off],
                        None => round(d, input.pad.expect("an out-of-bounds read has a pad value")),
                    }
                }
                Node::Acc => out[o],
                Node::Const { value, .. } => round(d, *value),
                Node::Op { kind, attrs, args } => {
                    let x: Vec<f64> = args.iter().map(|a| vals[a.0 as usize]).collect();
                    round(d, op(*kind, attrs, &x))
                }
            };
        }
        out[o] = vals[spec.result().0 as usize];
        for k in (0..sizes.len()).rev() {
            p[k] += 1;
            if p[k] < sizes[k] {
                break;
            }
            p[k] = 0;
        }
    }
    out
}

/// An owned buffer of one of the JIT's element types.
pub enum Owned {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I1(Vec<bool>),
    /// Inputs only.
    I64(Vec<i64>),
}

impl Owned {
    pub fn new(d: DType, data: &[f64]) -> Owned {
        match d {
            DType::F32 => Owned::F32(data.iter().map(|&v| v as f32).collect()),
            DType::F64 => Owned::F64(data.to_vec()),
            DType::I1 => Owned::I1(data.iter().map(|&v| v != 0.0).collect()),
            DType::I64 => Owned::I64(data.iter().map(|&v| v as i64).collect()),
            d => panic!("no buffers of {d}"),
        }
    }

    pub fn buffer(&self) -> Buffer<'_> {
        match self {
            Owned::F32(v) => Buffer::F32(v),
            Owned::F64(v) => Buffer::F64(v),
            Owned::I1(v) => Buffer::I1(v),
            Owned::I64(v) => Buffer::I64(v),
        }
    }

    pub fn buffer_mut(&mut self) -> BufferMut<'_> {
        match self {
            Owned::F32(v) => BufferMut::F32(v),
            Owned::F64(v) => BufferMut::F64(v),
            Owned::I1(v) => BufferMut::I1(v),
            Owned::I64(_) => panic!("kernels write no i64"),
        }
    }

    /// A sub-range of elements as an output buffer.
    pub fn slice_mut(&mut self, r: std::ops::Range<usize>) -> BufferMut<'_> {
        match self {
            Owned::F32(v) => BufferMut::F32(&mut v[r]),
            Owned::F64(v) => BufferMut::F64(&mut v[r]),
            Owned::I1(v) => BufferMut::I1(&mut v[r]),
            Owned::I64(_) => panic!("kernels write no i64"),
        }
    }

    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Owned::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Owned::F64(v) => v.clone(),
            Owned::I1(v) => v.iter().map(|&x| x as u8 as f64).collect(),
            Owned::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

/// Typed buffers for the inputs of `spec`.
pub fn input_buffers(spec: &GenericSpec, inputs: &[Operand]) -> Vec<Owned> {
    spec.inputs().iter().zip(inputs).map(|(i, o)| Owned::new(i.dtype, &o.data)).collect()
}

/// Runs the compiled kernel over rows `ranges` one after the other (the
/// whole of dim 0 with `None`), from an output that starts as NaN (false),
/// so that unwritten elements show.
pub fn run_jit(k: &CompiledGeneric, inputs: &[Operand], sizes: &[usize], ranges: Option<&[std::ops::Range<usize>]>) -> Vec<f64> {
    let spec = k.spec();
    let owned = input_buffers(spec, inputs);
    let ins: Vec<(Buffer<'_>, &[usize])> = owned.iter().zip(inputs).map(|(b, o)| (b.buffer(), o.shape.as_slice())).collect();
    let oshape = out_shape(spec, sizes);
    let n: usize = oshape.iter().product();
    let mut out = Owned::new(spec.out_dtype(), &vec![f64::NAN; n]);
    match ranges {
        None => k.run(&ins, (out.buffer_mut(), &oshape), sizes).unwrap(),
        Some(rs) => {
            let row: usize = oshape[1..].iter().product();
            for r in rs {
                k.run_range(&ins, (out.slice_mut(r.start * row..r.end * row), &oshape), sizes, r.clone()).unwrap();
            }
        }
    }
    out.to_f64()
}

/// Asserts that `got` matches `want` element by element: NaN for NaN,
/// else within `rtol` of `1 + |want|` (0 means exactly, zeros' signs too).
pub fn assert_close(got: &[f64], want: &[f64], rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if rtol == 0.0 {
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())
        } else {
            (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= rtol * (1.0 + w.abs())
        };
        assert!(ok, "{what}: element {i}: jit {g:e}, reference {w:e}\n  jit {got:?}\n  ref {want:?}");
    }
}

/// Compiles `spec`, runs it on `inputs` over `sizes`, whole and split into
/// row ranges where the kernel splits rows, and compares both with the
/// reference. Returns the kernel (for lane assertions).
pub fn check(spec: &GenericSpec, inputs: &[Operand], sizes: &[usize], rtol: f64) -> CompiledGeneric {
    let k = jit().compile_generic(spec).expect("it compiles");
    let want = eval(spec, inputs, sizes);
    let what = format!("sizes {sizes:?}");
    assert_close(&run_jit(&k, inputs, sizes, None), &want, rtol, &what);
    if k.splits_rows() && sizes[0] > 1 {
        let n = sizes[0];
        let ranges = [0..1, 1..n / 2 + 1, n / 2 + 1..n];
        assert_close(&run_jit(&k, inputs, sizes, Some(&ranges)), &want, rtol, &format!("{what}, rows split"));
    }
    k
}
