//! Random small expression DAGs (depth <= 5, up to 8 ops, values shared
//! between ops) over broadcast inputs, JIT against the interpreter.
//!
//! - Exactly rounded ops (arithmetic, sqrt, pow, max/min, relu, select/cmp,
//!   casts), f32 and f64, `fma` contraction off: the JIT must give the
//!   interpreter's values exactly (NaN for NaN, zeros with their sign).
//! - Continuous ops and the transcendental functions, f32, `fma` on: the JIT
//!   must agree with the interpreter within 1e-5 relative + 1e-6 absolute,
//!   or else be no further from the exact value (the same DAG evaluated in
//!   f64) than 8 times the interpreter's own f32 error plus 1e-6 relative:
//!   where the DAG is ill-conditioned (cancellation, overflow), both f32
//!   evaluations are far from the exact value, and that is not the JIT's fault.

mod common;
use common::*;
use dlc_backends::Tensor;
use dlc_ir::{Attrs, Builder, DType, Function, OpKind, ValueId, attrs};
use dlc_jit::{Jit, JitOptions, lower_function};
use proptest::prelude::*;

/// The DAG's op vocabulary; indices into this are what proptest draws.
#[derive(Copy, Clone, Debug)]
enum Step {
    Unary(OpKind),
    LeakyRelu,
    Binary(OpKind),
    /// `select(cmp(a, b, predicate), c, d)`.
    Select,
    /// Cast to the other float width and back.
    CastRound,
    /// Cast to i1 and back (nonzero is 1).
    CastMask,
    /// Add a constant.
    AddConst,
}

const EXACT: &[Step] = &[
    Step::Unary(OpKind::Neg),
    Step::Unary(OpKind::Abs),
    Step::Unary(OpKind::Sqrt),
    Step::Unary(OpKind::Rsqrt),
    Step::Unary(OpKind::Relu),
    Step::LeakyRelu,
    Step::Binary(OpKind::Add),
    Step::Binary(OpKind::Sub),
    Step::Binary(OpKind::Mul),
    Step::Binary(OpKind::Div),
    Step::Binary(OpKind::Pow),
    Step::Binary(OpKind::Maximum),
    Step::Binary(OpKind::Minimum),
    Step::Select,
    Step::CastRound,
    Step::CastMask,
    Step::AddConst,
];

/// The continuous ops and the transcendental functions. Comparisons,
/// selects, mask casts and pow jump at ties (pow at a zero base), where two
/// correct evaluations a rounding apart can take different branches; they
/// are checked exactly above.
const SMOOTH: &[Step] = &[
    Step::Unary(OpKind::Neg),
    Step::Unary(OpKind::Abs),
    Step::Unary(OpKind::Sqrt),
    Step::Unary(OpKind::Rsqrt),
    Step::Unary(OpKind::Relu),
    Step::LeakyRelu,
    Step::Binary(OpKind::Add),
    Step::Binary(OpKind::Sub),
    Step::Binary(OpKind::Mul),
    Step::Binary(OpKind::Div),
    Step::Binary(OpKind::Maximum),
    Step::Binary(OpKind::Minimum),
    Step::CastRound,
    Step::AddConst,
    Step::Unary(OpKind::Exp),
    Step::Unary(OpKind::Log),
    Step::Unary(OpKind::Tanh),
    Step::Unary(OpKind::Sigmoid),
    Step::Unary(OpKind::Exp),
    Step::Unary(OpKind::Log),
    Step::Unary(OpKind::Tanh),
    Step::Unary(OpKind::Sigmoid),
];

const PREDICATES: [&str; 6] = ["eq", "ne", "lt", "le", "gt", "ge"];

/// One drawn op: which step, raw operand picks, a parameter in [-1, 1].
type Drawn = (usize, [u16; 4], f64);

/// A drawn DAG: output shape [rows, cols], each input's layout, the ops, and input values.
#[derive(Clone, Debug)]
struct Dag {
    rows: usize,
    cols: usize,
    layouts: Vec<u8>,
    ops: Vec<Drawn>,
    seed: u64,
}

fn dag() -> impl Strategy<Value = Dag> {
    (1usize..5, 1usize..40, prop::collection::vec(0u8..5, 3), prop::collection::vec((0usize..64, any::<[u16; 4]>(), -1.0f64..1.0), 1..=8), any::<u64>())
        .prop_map(|(rows, cols, layouts, ops, seed)| Dag { rows, cols, layouts, ops, seed })
}

impl Dag {
    /// Input `i`'s shape: full, row, column, scalar or [1, cols].
    fn shape(&self, i: usize) -> Vec<usize> {
        match self.layouts.get(i).copied().unwrap_or(0) {
            0 => vec![self.rows, self.cols],
            1 => vec![self.cols],
            2 => vec![self.rows, 1],
            3 => vec![],
            _ => vec![1, self.cols],
        }
    }

    /// The function over three drawn inputs and a full-size zero (added last
    /// so that the output has the full shape whatever the DAG uses).
    /// `exact_value` makes `CastRound` the identity (for the f64 reference).
    fn build(&self, f: DType, steps: &[Step], exact_value: bool) -> Function {
        let mut types: Vec<_> = (0..3).map(|i| ty(&self.shape(i).iter().map(|&n| Some(n as u64)).collect::<Vec<_>>(), f)).collect();
        types.push(ty(&[Some(self.rows as u64), Some(self.cols as u64)], f));
        let (mut func, args) = function(&types);
        let mut b = Builder::at_entry(&mut func);
        let mut vals: Vec<(ValueId, u32)> = args[..3].iter().map(|&a| (a, 0)).collect();
        for &(which, picks, param) in &self.ops {
            let step = steps[which % steps.len()];
            // Select (cmp, select) and the casts (there and back) spend two
            // levels; keep the depth <= 5.
            let limit = if matches!(step, Step::Select | Step::CastRound | Step::CastMask) { 4 } else { 5 };
            let pool: Vec<(ValueId, u32)> = vals.iter().copied().filter(|v| v.1 < limit).collect();
            let pick = |k: usize| pool[picks[k] as usize % pool.len()];
            let (a, c, d, e) = (pick(0), pick(1), pick(2), pick(3));
            let depth = |xs: &[(ValueId, u32)]| xs.iter().map(|x| x.1).max().unwrap_or(0) + 1;
            let none = Attrs::new();
            let (v, dep) = match step {
                Step::Unary(k) => (b.op(k, &[a.0], none).unwrap(), depth(&[a])),
                Step::LeakyRelu => (b.op(OpKind::LeakyRelu, &[a.0], attrs! {"alpha" => param}).unwrap(), depth(&[a])),
                Step::Binary(k) => (b.op(k, &[a.0, c.0], none).unwrap(), depth(&[a, c])),
                Step::Select => {
                    let p = PREDICATES[picks[3] as usize % 6];
                    let m = b.op(OpKind::Cmp, &[a.0, c.0], attrs! {"predicate" => p}).unwrap();
                    (b.op(OpKind::Select, &[m, d.0, e.0], none).unwrap(), depth(&[a, c, d, e]) + 1)
                }
                Step::CastRound if exact_value => (a.0, a.1 + 2),
                Step::CastRound => {
                    let other = if f == DType::F32 { DType::F64 } else { DType::F32 };
                    let t = b.op(OpKind::Cast, &[a.0], attrs! {"dtype" => other}).unwrap();
                    (b.op(OpKind::Cast, &[t], attrs! {"dtype" => f}).unwrap(), depth(&[a]) + 1)
                }
                Step::CastMask => {
                    let t = b.op(OpKind::Cast, &[a.0], attrs! {"dtype" => DType::I1}).unwrap();
                    (b.op(OpKind::Cast, &[t], attrs! {"dtype" => f}).unwrap(), depth(&[a]) + 1)
                }
                Step::AddConst => {
                    let k = b.scalar(param * 4.0, f);
                    (b.op(OpKind::Add, &[a.0, k], none).unwrap(), depth(&[a]))
                }
            };
            assert!(dep <= 5, "depth {dep}");
            vals.push((v, dep));
        }
        let last = vals.last().expect("at least the inputs").0;
        let y = b.op(OpKind::Add, &[last, args[3]], Attrs::new()).unwrap();
        b.ret(&[y]);
        func
    }

    /// The inputs: values in [-3, 3] with NaN, ±inf, ±0 and 1 sprinkled in,
    /// then the zero.
    fn inputs(&self, f: DType) -> Vec<Tensor> {
        let mut s = self.seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1.0];
        let mut ts: Vec<Tensor> = (0..3)
            .map(|i| {
                let shape = self.shape(i);
                let n: usize = shape.iter().product();
                let v: Vec<f64> = (0..n)
                    .map(|_| {
                        let r = next();
                        let v = if r.is_multiple_of(8) { specials[(r >> 8) as usize % 6] } else { ((r >> 11) as f64 / (1u64 << 53) as f64) * 6.0 - 3.0 };
                        // f32 values, so that the f64 reference starts from the same inputs.
                        v as f32 as f64
                    })
                    .collect();
                Tensor::from_f64_values(&shape, &v, f).unwrap()
            })
            .collect();
        ts.push(Tensor::zeros(&[self.rows, self.cols], f));
        ts
    }
}

fn no_fma() -> &'static Jit {
    static JIT: std::sync::OnceLock<Jit> = std::sync::OnceLock::new();
    JIT.get_or_init(|| Jit::with_options(JitOptions { fma: false, ..JitOptions::default() }).unwrap())
}

/// The JIT's output of `func` (compiled by `jit`) on `args`, as f64.
fn run_jit(jit: &Jit, func: &Function, args: &[Tensor]) -> Vec<f64> {
    let lowered = lower_function(func).expect("it lowers");
    let kernel = jit.compile(&lowered.spec).expect("it compiles");
    let out_shape = lowered.output_shape(None).unwrap();
    let shape = lowered.iteration_shape(&out_shape).unwrap();
    let ins: Vec<_> = args.iter().map(buffer).collect();
    let n = out_shape.iter().product();
    match lowered.spec.output_dtype() {
        DType::F32 => {
            let mut o = vec![0f32; n];
            kernel.run_buffers(&ins, (&mut o[..]).into(), &shape).unwrap();
            o.into_iter().map(f64::from).collect()
        }
        _ => {
            let mut o = vec![0f64; n];
            kernel.run_buffers(&ins, (&mut o[..]).into(), &shape).unwrap();
            o
        }
    }
}

fn err(x: f64, exact: f64) -> f64 {
    match (x.is_nan(), exact.is_nan()) {
        (true, true) => 0.0,
        (false, false) if x == exact => 0.0,
        (false, false) => (x - exact).abs(),
        _ => f64::INFINITY,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: Some(Box::new(prop::test_runner::FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn exact_ops_match_the_interpreter_exactly(d in dag(), f64_ in any::<bool>()) {
        let f = if f64_ { DType::F64 } else { DType::F32 };
        let func = d.build(f, EXACT, false);
        let args = d.inputs(f);
        let want = dlc_backends::run(&func, &args).unwrap()[0].to_f64_vec();
        let got = run_jit(no_fma(), &func, &args);
        for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
            prop_assert!(close(g, w, 0.0, 0.0), "element {}: jit {:e}, interpreter {:e}", i, g, w);
        }
    }

    #[test]
    fn transcendental_dags_match_the_interpreter_within_tolerance(d in dag()) {
        let steps = SMOOTH;
        let func = d.build(DType::F32, steps, false);
        let args = d.inputs(DType::F32);
        let want = dlc_backends::run(&func, &args).unwrap()[0].to_f64_vec();
        let got = run_jit(jit(), &func, &args);
        let mut exact: Option<Vec<f64>> = None;
        for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
            if close(g, w, 1e-5, 1e-6) {
                continue;
            }
            let e = exact.get_or_insert_with(|| {
                let f64_func = d.build(DType::F64, steps, true);
                dlc_backends::run(&f64_func, &d.inputs(DType::F64)).unwrap()[0].to_f64_vec()
            });
            let x = e[i];
            let ok = err(g, x) <= 8.0 * err(w, x) + 1e-6 * x.abs();
            prop_assert!(ok, "element {}: jit {:e}, interpreter {:e}, exact {:e}", i, g, w, x);
        }
    }
}
