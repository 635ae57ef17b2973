//! Every elementwise op of the registry, as a one-op kernel, against the
//! interpreter: f32 and f64, sizes 1, 3, 5, 17 and 1023 (vector loop, scalar
//! tail, both), broadcasting of the second (or first) operand as a row, a
//! column, a scalar, with a `?` batch dim, and NaN, ±inf and ±0 among random
//! inputs.
//!
//! The ops list is `OpKind::ALL` filtered by category, and the operands of
//! each op come from an exhaustive `match`, so a new elementwise op fails to
//! compile here until it has a case.
//!
//! Exact ops must agree exactly (NaN with NaN, zeros with their sign); exp and log within 4e-7 relative (f32; both sides
//! are within about an ulp of exact), tanh and sigmoid within 3e-7 absolute.

mod common;
use common::*;
use dlc_backends::Tensor;
use dlc_ir::registry::{AttrKind, Category};
use dlc_ir::{Attrs, Builder, DType, OpKind, attrs};

/// A deterministic xorshift stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Random values in [-4, 4] with specials sprinkled in (about one in six).
fn values(rng: &mut Rng, n: usize) -> Vec<f64> {
    const SPECIAL: [f64; 6] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1.0];
    (0..n)
        .map(|_| if rng.next().is_multiple_of(6) { SPECIAL[(rng.next() % 6) as usize] } else { rng.uniform(-4.0, 4.0) })
        .collect()
}

fn tensor(rng: &mut Rng, shape: &[usize], dtype: DType) -> Tensor {
    let n = shape.iter().product();
    match dtype {
        DType::I1 => Tensor::from_bool(shape, (0..n).map(|_| rng.next().is_multiple_of(2)).collect()).unwrap(),
        d => Tensor::from_f64_values(shape, &values(rng, n), d).unwrap(),
    }
}

/// The predicates of `dl.cmp`, as its registry entry lists them.
fn predicates() -> &'static [&'static str] {
    match OpKind::Cmp.def().attrs.iter().find(|a| a.name == "predicate").map(|a| a.kind) {
        Some(AttrKind::Enum(choices)) => choices,
        other => panic!("dl.cmp's predicate attribute is {other:?}"),
    }
}

/// One test case of an op: operand dtypes and attributes.
struct Case {
    operands: Vec<DType>,
    attrs: Attrs,
}

/// The cases of each elementwise op at float type `f`.
fn cases(kind: OpKind, f: DType) -> Vec<Case> {
    let one = |attrs| vec![Case { operands: vec![f], attrs }];
    use OpKind as K;
    match kind {
        K::Neg | K::Abs | K::Exp | K::Log | K::Sqrt | K::Rsqrt | K::Tanh | K::Sigmoid | K::Relu => one(Attrs::new()),
        K::LeakyRelu => vec![Case { operands: vec![f], attrs: Attrs::new() }, Case { operands: vec![f], attrs: attrs! {"alpha" => 0.2} }],
        K::Cast => {
            let other = if f == DType::F32 { DType::F64 } else { DType::F32 };
            vec![
                Case { operands: vec![f], attrs: attrs! {"dtype" => other} },
                Case { operands: vec![f], attrs: attrs! {"dtype" => DType::I1} },
                Case { operands: vec![DType::I1], attrs: attrs! {"dtype" => f} },
                Case { operands: vec![f], attrs: attrs! {"dtype" => f} },
            ]
        }
        K::Add | K::Sub | K::Mul | K::Div | K::Pow | K::Maximum | K::Minimum => vec![Case { operands: vec![f, f], attrs: Attrs::new() }],
        K::Cmp => predicates()
            .iter()
            .flat_map(|&p| {
                [Case { operands: vec![f, f], attrs: attrs! {"predicate" => p} }, Case {
                    operands: vec![DType::I1, DType::I1],
                    attrs: attrs! {"predicate" => p},
                }]
            })
            .collect(),
        K::Select => vec![Case { operands: vec![DType::I1, f, f], attrs: Attrs::new() }],
        K::ReduceSum
        | K::ReduceMean
        | K::ReduceMax
        | K::Argmax
        | K::Matmul
        | K::Conv2d
        | K::Conv2dGradInput
        | K::Conv2dGradWeight
        | K::MaxPool2d
        | K::MaxPool2dGrad
        | K::AvgPool2d
        | K::Softmax
        | K::LogSoftmax
        | K::Reshape
        | K::Transpose
        | K::BroadcastTo
        | K::Concat
        | K::Slice
        | K::Gather
        | K::OneHot
        | K::Constant
        | K::Return
        | K::Generic
        | K::Yield
        | K::ScalarConstant
        | K::KernelMatmul
        | K::KernelConv2d
        | K::KernelConv2dGradWeight
        | K::KernelRoutedConv2dGradInput
        | K::KernelRoutedConv2dGradWeight => Vec::new(),
    }
}

/// Tolerance (relative, absolute) of an op against the interpreter.
fn tolerance(kind: OpKind, f: DType) -> (f64, f64) {
    let f32_ = f == DType::F32;
    match kind {
        OpKind::Exp | OpKind::Log => (if f32_ { 4e-7 } else { 5e-16 }, 1e-300),
        OpKind::Tanh | OpKind::Sigmoid => (0.0, if f32_ { 3e-7 } else { 1e-15 }),
        _ => (0.0, 0.0),
    }
}

/// A named layout: operand shapes (`None` for `?`) and the batch.
type Layout = (&'static str, Vec<Vec<Option<u64>>>, Option<usize>);

/// The layouts an op of `arity` operands is checked in.
fn layouts(arity: usize) -> Vec<Layout> {
    let mut v = Vec::new();
    for n in [1u64, 3, 5, 17, 1023] {
        v.push(("same", vec![vec![Some(n)]; arity], None));
    }
    v.push(("same, 3-d", vec![vec![Some(2), Some(3), Some(7)]; arity], None));
    v.push(("same, batch", vec![vec![None, Some(9)]; arity], Some(5)));
    if arity >= 2 {
        let full = vec![Some(5), Some(19)];
        let mut with = |name, other: Vec<Option<u64>>| {
            let mut shapes = vec![full.clone(); arity];
            shapes[arity - 1] = other.clone();
            v.push((name, shapes.clone(), None));
            // And the broadcast operand first (the condition, for select).
            let mut shapes = vec![full.clone(); arity];
            shapes[0] = other;
            v.push((name, shapes, None));
        };
        with("row", vec![Some(19)]);
        with("column", vec![Some(5), Some(1)]);
        with("scalar", vec![]);
        v.push(("batch row", vec![vec![None, Some(6)], vec![Some(6)]].into_iter().cycle().take(arity).collect(), Some(4)));
        v.push(("outer product", vec![vec![Some(7), Some(1)], vec![Some(1), Some(6)]].into_iter().cycle().take(arity).collect(), None));
    }
    v
}

#[test]
fn every_elementwise_op_matches_the_interpreter() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut checked = 0;
    for &kind in OpKind::ALL {
        if !matches!(kind.category(), Category::Unary | Category::Binary) {
            continue;
        }
        for f in [DType::F32, DType::F64] {
            let cs = cases(kind, f);
            assert!(!cs.is_empty(), "{kind:?} has no case");
            for case in cs {
                for (layout, shapes, batch) in layouts(case.operands.len()) {
                    let types: Vec<_> = shapes.iter().zip(&case.operands).map(|(s, &d)| ty(s, d)).collect();
                    let (mut func, args) = function(&types);
                    let mut b = Builder::at_entry(&mut func);
                    let y = b.op(kind, &args, case.attrs.clone()).unwrap();
                    b.ret(&[y]);
                    let inputs: Vec<Tensor> = shapes
                        .iter()
                        .zip(&case.operands)
                        .map(|(s, &d)| {
                            let s: Vec<usize> = s.iter().map(|d| d.map_or_else(|| batch.unwrap(), |n| n as usize)).collect();
                            tensor(&mut rng, &s, d)
                        })
                        .collect();
                    let (want, got, _) = both(&func, &inputs, batch);
                    let (rel, abs) = tolerance(kind, f);
                    for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
                        assert!(
                            close(g, w, rel, abs),
                            "{kind:?} {:?} {:?} ({layout}, shapes {shapes:?}) element {i}: jit {g:e}, interpreter {w:e}",
                            case.operands,
                            case.attrs
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} kernels checked");
}

/// The mask path of the vector loop: `select(cmp(a, b), a, c)` and
/// `cast(cmp(..))` stay vectorized (no i1 buffer), unlike a one-op select.
#[test]
fn masks_inside_a_vectorized_body() {
    let mut rng = Rng(7);
    for f in [DType::F32, DType::F64] {
        for p in predicates() {
            let t = ty(&[Some(4), Some(37)], f);
            let (mut func, args) = function(&[t.clone(), t.clone(), t]);
            let mut b = Builder::at_entry(&mut func);
            let m = b.op(OpKind::Cmp, &[args[0], args[1]], attrs! {"predicate" => *p}).unwrap();
            let n = b.op(OpKind::Cmp, &[args[1], args[2]], attrs! {"predicate" => "lt"}).unwrap();
            let mm = b.op(OpKind::Cmp, &[m, n], attrs! {"predicate" => *p}).unwrap();
            let s = b.op(OpKind::Select, &[mm, args[0], args[2]], Attrs::new()).unwrap();
            let c = b.op(OpKind::Cast, &[m], attrs! {"dtype" => f}).unwrap();
            let y = b.op(OpKind::Add, &[s, c], Attrs::new()).unwrap();
            b.ret(&[y]);
            let inputs: Vec<Tensor> = (0..3).map(|_| tensor(&mut rng, &[4, 37], f)).collect();
            let (want, got, lowered) = both(&func, &inputs, None);
            let lanes = jit().compile(&lowered.spec).unwrap().vector_lanes();
            assert_eq!(lanes, if f == DType::F32 { 4 } else { 2 });
            for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
                assert!(close(g, w, 0.0, 0.0), "{f} {p} element {i}: jit {g}, interpreter {w}");
            }
        }
    }
}
