//! Every VJP rule in the registry against central finite differences.
//!
//! For each case, `f(x…, r) = reduce_sum(op(x…) * r)` with random f64 inputs
//! and a random weight `r`, the gradient built by `dlc_passes::gradient` is
//! run on the reference interpreter and compared with
//! `(f(x + h) - f(x - h)) / 2h`, `h = 1e-6`, element by element
//! (`|analytic - numeric| <= 1e-7 + 1e-5 |numeric|`).
//!
//! The case table is driven by the registry: [`every_differentiable_op_has_a_case`]
//! walks `OpKind::ALL` and fails for a differentiable op without a case, so a
//! new op's VJP cannot go unchecked. Inputs keep away from kinks (relu at 0,
//! max ties); ties get exact tests in `autodiff.rs`. Shapes cover
//! broadcasting, the batch dim `?` (run with size 3), every matmul transpose
//! flag, conv2d and its two gradients with stride/padding/dilation, and
//! overlapping, padded pool windows.

mod ad_common;

use ad_common::{Arg, Gen, check_case};
use dlc_ir::{Attr, Attrs, Category, DType, OpKind, attrs};
use std::collections::BTreeSet;

/// One op applied to its arguments with attributes.
struct Case {
    kind: OpKind,
    args: Vec<Arg>,
    attrs: Attrs,
}

fn f(shape: &[i64]) -> Arg {
    Arg::f64(shape, Gen::Normal)
}

fn g(shape: &[i64], draw: Gen) -> Arg {
    Arg::f64(shape, draw)
}

fn ints(v: &[i64]) -> Attr {
    Attr::ints(v)
}

fn case(kind: OpKind, args: Vec<Arg>, attrs: Attrs) -> Case {
    Case { kind, args, attrs }
}

fn elementwise_cases() -> Vec<Case> {
    use Gen::*;
    use OpKind as K;
    let mut out = Vec::new();
    let unary = [
        (K::Neg, Normal),
        (K::Abs, AwayFromZero),
        (K::Exp, Normal),
        (K::Log, Positive),
        (K::Sqrt, Positive),
        (K::Rsqrt, Positive),
        (K::Tanh, Normal),
        (K::Sigmoid, Normal),
        (K::Relu, AwayFromZero),
        (K::LeakyRelu, AwayFromZero),
    ];
    for (k, draw) in unary {
        out.push(case(k, vec![g(&[2, 3], draw)], Attrs::new()));
        out.push(case(k, vec![g(&[-1, 4], draw)], Attrs::new()));
    }
    out.push(case(K::LeakyRelu, vec![g(&[-1, 5], AwayFromZero)], attrs! {"alpha" => 0.2}));
    out.push(case(K::Cast, vec![Arg::new(&[2, 3], DType::F32, Normal)], attrs! {"dtype" => DType::F64}));
    out.push(case(K::Cast, vec![g(&[-1, 2], Normal)], attrs! {"dtype" => DType::F64}));
    let shapes: [(&[i64], &[i64]); 5] = [(&[2, 3], &[2, 3]), (&[-1, 3], &[3]), (&[2, 1, 4], &[3, 1]), (&[-1, 1], &[1, 4]), (&[], &[2, 3])];
    for (a, b) in shapes {
        out.push(case(K::Add, vec![f(a), f(b)], Attrs::new()));
        out.push(case(K::Sub, vec![f(a), f(b)], Attrs::new()));
        out.push(case(K::Mul, vec![f(a), f(b)], Attrs::new()));
        out.push(case(K::Div, vec![f(a), g(b, AwayFromZero)], Attrs::new()));
        out.push(case(K::Pow, vec![g(a, Positive), f(b)], Attrs::new()));
        out.push(case(K::Maximum, vec![g(a, Spaced(0.0)), g(b, Spaced(0.05))], Attrs::new()));
        out.push(case(K::Minimum, vec![g(a, Spaced(0.0)), g(b, Spaced(0.05))], Attrs::new()));
    }
    let cond = |s: &[i64]| Arg::new(s, DType::I1, Below(2));
    out.push(case(K::Select, vec![cond(&[2, 3]), f(&[2, 3]), f(&[2, 3])], Attrs::new()));
    out.push(case(K::Select, vec![cond(&[2, 3]), f(&[2, 3]), f(&[3])], Attrs::new()));
    out.push(case(K::Select, vec![cond(&[-1, 1]), f(&[-1, 3]), f(&[])], Attrs::new()));
    out
}

fn reduction_cases() -> Vec<Case> {
    use OpKind as K;
    let mut out = Vec::new();
    let configs: [(&[i64], &[i64], bool); 5] =
        [(&[2, 3, 4], &[1], false), (&[2, 3, 4], &[0, 2], true), (&[-1, 3], &[0], false), (&[-1, 3], &[0, 1], true), (&[2, 3], &[-1], false)];
    for (shape, axes, keepdims) in configs {
        let a = attrs! {"axes" => ints(axes), "keepdims" => keepdims};
        out.push(case(K::ReduceSum, vec![f(shape)], a.clone()));
        out.push(case(K::ReduceMean, vec![f(shape)], a.clone()));
        out.push(case(K::ReduceMax, vec![g(shape, Gen::Spaced(0.0))], a));
    }
    out
}

fn contraction_cases() -> Vec<Case> {
    use OpKind as K;
    let mut out = Vec::new();
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a: &[i64] = if ta { &[4, 3] } else { &[3, 4] };
        let b: &[i64] = if tb { &[5, 4] } else { &[4, 5] };
        let flags = attrs! {"transpose_a" => ta, "transpose_b" => tb};
        out.push(case(K::Matmul, vec![f(a), f(b)], flags.clone()));
        // batch dims broadcast: [2, 1, m, k] @ [3, k, n], and a `?` batch against a shared matrix.
        out.push(case(K::Matmul, vec![f(&[&[2, 1][..], a].concat()), f(&[&[3][..], b].concat())], flags.clone()));
        out.push(case(K::Matmul, vec![f(&[&[-1][..], a].concat()), f(b)], flags));
    }
    out.push(case(K::Matmul, vec![f(&[-1, 4]), f(&[5, 4])], attrs! {"transpose_b" => true}));
    /// (x, w, stride, padding, dilation)
    type Conv<'a> = (&'a [i64], &'a [i64], [i64; 2], [i64; 2], [i64; 2]);
    let convs: [Conv<'_>; 8] = [
        (&[2, 2, 5, 5], &[3, 2, 3, 3], [1, 1], [0, 0], [1, 1]),
        (&[2, 2, 5, 5], &[3, 2, 3, 3], [2, 2], [1, 1], [1, 1]),
        (&[2, 2, 7, 6], &[3, 2, 3, 3], [1, 1], [0, 0], [2, 2]),
        (&[1, 2, 8, 7], &[2, 2, 3, 2], [2, 1], [1, 2], [2, 1]),
        (&[2, 1, 6, 6], &[2, 1, 1, 1], [2, 2], [1, 1], [1, 1]),
        (&[-1, 2, 5, 5], &[3, 2, 3, 3], [2, 2], [1, 1], [1, 1]),
        (&[-1, 2, 7, 6], &[2, 2, 2, 3], [1, 2], [2, 0], [2, 1]),
        (&[-1, 1, 6, 6], &[2, 1, 3, 3], [1, 1], [0, 0], [1, 1]),
    ];
    for (x, w, s, p, d) in convs {
        let window = attrs! {"stride" => ints(&s), "padding" => ints(&p), "dilation" => ints(&d)};
        out.push(case(K::Conv2d, vec![f(x), f(w)], window.clone()));
        // Its two gradients, each differentiated in both operands (their
        // VJPs are conv2d and each other): g is the conv's output.
        let size = |k: usize| (x[2 + k] + 2 * p[k] - d[k] * (w[2 + k] - 1) - 1) / s[k] + 1;
        let g = [x[0], w[0], size(0), size(1)];
        let mut gi = window.clone();
        gi.insert("input_size".into(), ints(&x[2..]));
        out.push(case(K::Conv2dGradInput, vec![f(&g), f(w)], gi));
        let mut gw = window;
        gw.insert("kernel".into(), ints(&w[2..]));
        out.push(case(K::Conv2dGradWeight, vec![f(x), f(&g)], gw));
    }
    out
}

fn window_cases() -> Vec<Case> {
    use OpKind as K;
    let mut out = Vec::new();
    /// (x, kernel, stride, padding): tiling, overlapping with padding, uneven, a `?` batch.
    type Pool<'a> = (&'a [i64], [i64; 2], [i64; 2], [i64; 2]);
    let pools: [Pool<'_>; 5] = [
        (&[2, 2, 4, 4], [2, 2], [2, 2], [0, 0]),
        (&[1, 2, 6, 5], [3, 3], [2, 2], [1, 1]),
        (&[2, 1, 5, 6], [3, 2], [1, 2], [1, 0]),
        (&[-1, 2, 5, 5], [2, 2], [1, 1], [0, 0]),
        (&[-1, 1, 7, 7], [3, 3], [2, 3], [1, 1]),
    ];
    for (x, k, s, p) in pools {
        let a = attrs! {"kernel" => ints(&k), "stride" => ints(&s), "padding" => ints(&p)};
        out.push(case(K::MaxPool2d, vec![g(x, Gen::Spaced(0.0))], a.clone()));
        out.push(case(K::AvgPool2d, vec![f(x)], a));
    }
    for (shape, axis) in [(&[-1, 5][..], 1), (&[3, 4][..], 0), (&[2, 3, 4][..], -1)] {
        out.push(case(K::Softmax, vec![f(shape)], attrs! {"axis" => axis as i64}));
        out.push(case(K::LogSoftmax, vec![f(shape)], attrs! {"axis" => axis as i64}));
    }
    out
}

fn movement_cases() -> Vec<Case> {
    use OpKind as K;
    let idx = |s: &[i64], n: i64| Arg::new(s, DType::I64, Gen::Below(n));
    vec![
        case(K::Reshape, vec![f(&[-1, 2, 3])], attrs! {"shape" => ints(&[-1, 6])}),
        case(K::Reshape, vec![f(&[2, 3, 4])], attrs! {"shape" => ints(&[4, 6])}),
        case(K::Transpose, vec![f(&[2, 3, 4])], attrs! {"perm" => ints(&[2, 0, 1])}),
        case(K::Transpose, vec![f(&[-1, 3])], attrs! {"perm" => ints(&[1, 0])}),
        case(K::BroadcastTo, vec![f(&[3])], attrs! {"shape" => ints(&[-1, 3])}),
        case(K::BroadcastTo, vec![f(&[2, 1])], attrs! {"shape" => ints(&[3, 2, 4])}),
        case(K::Concat, vec![f(&[2, 3]), f(&[2, 2]), f(&[2, 1])], attrs! {"axis" => 1i64}),
        case(K::Concat, vec![f(&[-1, 2]), f(&[-1, 3])], attrs! {"axis" => -1i64}),
        case(K::Concat, vec![f(&[2, 3])], attrs! {"axis" => 0i64}),
        case(K::Slice, vec![f(&[2, 7])], attrs! {"axis" => 1i64, "start" => 1i64, "end" => 6i64, "step" => 2i64}),
        case(K::Slice, vec![f(&[-1, 5])], attrs! {"axis" => 1i64, "start" => 2i64, "end" => 5i64}),
        case(K::Slice, vec![f(&[8, 2])], attrs! {"axis" => 0i64, "start" => 0i64, "end" => 7i64, "step" => 3i64}),
        // the embedding: indices with the batch dim, and static indices with repeats
        case(K::Gather, vec![f(&[5, 3]), idx(&[-1, 4], 5)], Attrs::new()),
        case(K::Gather, vec![f(&[4, 2, 3]), idx(&[2, 3], 4)], Attrs::new()),
        case(K::Gather, vec![f(&[6]), idx(&[-1], 6)], Attrs::new()),
        // other axes, `?` in the table
        case(K::Gather, vec![f(&[-1, 6]), idx(&[4], 6)], attrs! {"axis" => 1i64}),
        case(K::Gather, vec![f(&[4, 5, 2]), idx(&[3], 5)], attrs! {"axis" => 1i64}),
        case(K::Gather, vec![f(&[3, 4]), idx(&[-1, 2], 4)], attrs! {"axis" => -1i64}),
    ]
}

fn all_cases() -> Vec<Case> {
    [elementwise_cases(), reduction_cases(), contraction_cases(), window_cases(), movement_cases()].into_iter().flatten().collect()
}

fn run_cases(cases: &[Case]) {
    for (n, c) in cases.iter().enumerate() {
        let shapes: Vec<String> = c.args.iter().map(|a| a.ty.to_string()).collect();
        let label = format!("{} ({}) {}", c.kind.name(), shapes.join(", "), dlc_ir::print::print_attr_dict(&c.attrs));
        let body = |b: &mut dlc_ir::Builder<'_>, xs: &[dlc_ir::ValueId]| {
            b.op(c.kind, xs, c.attrs.clone()).unwrap_or_else(|e| panic!("{label}: building the op: {e}"))
        };
        check_case(&label, 1000 + n as u64, &c.args, &body);
    }
}

#[test]
fn every_differentiable_op_has_a_case() {
    let covered: BTreeSet<OpKind> = all_cases().iter().map(|c| c.kind).collect();
    let missing: Vec<&str> = OpKind::ALL.iter().filter(|k| k.is_differentiable() && !covered.contains(k)).map(|k| k.name()).collect();
    assert!(missing.is_empty(), "differentiable ops without a gradient check: {missing:?}");
    for k in &covered {
        assert!(k.is_differentiable(), "{} has a case but no VJP", k.name());
    }
}

#[test]
fn the_non_differentiable_ops_are_exactly_these() {
    let none: Vec<&str> = OpKind::ALL.iter().filter(|k| !k.is_differentiable()).map(|k| k.name()).collect();
    // The structured-kernel level (kernel.*) comes after autodiff: gradients
    // are built on the dl level and the train step is lowered afterwards, so
    // no kernel op needs (or has) a VJP; see `kernel_ops_have_no_vjp`.
    let kernel_level = ["kernel.generic", "kernel.yield", "kernel.constant", "kernel.matmul", "kernel.conv2d", "kernel.conv2d_grad_weight", "kernel.routed_conv2d_grad_input", "kernel.routed_conv2d_grad_weight"];
    // `dl.max_pool2d_grad` is built only by max_pool2d's VJP; training
    // needs first derivatives, and differentiating through it is autodiff's
    // "no VJP" error, not a silent zero.
    assert_eq!(none, [&["dl.cmp", "dl.argmax", "dl.max_pool2d_grad", "dl.one_hot", "dl.constant", "func.return"][..], &kernel_level[..]].concat());
    for k in OpKind::ALL.iter().filter(|k| k.name().starts_with("kernel.")) {
        assert!(!k.is_differentiable(), "{}", k.name());
    }
}

/// A loss computed at the kernel level is refused with the op that has no
/// rule, not differentiated wrongly: differentiate the dl level instead.
#[test]
fn kernel_ops_have_no_vjp() {
    use dlc_ir::kernel::{Generic, Scalar};
    use dlc_ir::{AffineMap, Builder, Function};
    let mut f = Function::new("loss");
    let x = f.add_arg(dlc_ir::Type::Tensor(dlc_ir::TensorType::fixed(&[2, 3], DType::F64)), Some("x"), Attrs::new());
    let w = f.add_arg(dlc_ir::Type::Tensor(dlc_ir::TensorType::fixed(&[4, 3], DType::F64)), Some("w"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let y = b.op(OpKind::KernelMatmul, &[x, w], attrs! {"transpose_b" => true, "relu" => true}).unwrap();
    // sum(y) as a kernel.generic reducing both dims.
    let sum = Generic {
        reduction: vec![true, true],
        sizes: vec![Some(2), Some(4)],
        maps: vec![AffineMap::identity(2)],
        out_map: AffineMap::projection(2, &[]),
        dtype: DType::F64,
        init: 0.0,
        padded: Vec::new(),
        pad: 0.0,
        fused: Vec::new(),
        body: vec![Scalar::Operand(0), Scalar::Acc, Scalar::Op { kind: OpKind::Add, attrs: Attrs::new(), args: vec![1, 0] }],
        result: 2,
        extra: Vec::new(),
    };
    let loss = sum.emit(b.func, &[y]).unwrap();
    b.ret(&[loss]);
    let e = dlc_passes::gradient(&f, 0, &[1]).unwrap_err().to_string();
    assert_eq!(e, r#"the loss depends on op '%1 = "kernel.generic"', which has no VJP rule"#);
    // The matmul is reached once the generic is out of the way.
    let mut g = Function::new("loss");
    let x = g.add_arg(dlc_ir::Type::Tensor(dlc_ir::TensorType::fixed(&[2, 3], DType::F64)), Some("x"), Attrs::new());
    let w = g.add_arg(dlc_ir::Type::Tensor(dlc_ir::TensorType::fixed(&[4, 3], DType::F64)), Some("w"), Attrs::new());
    let mut b = Builder::at_entry(&mut g);
    let y = b.op(OpKind::KernelMatmul, &[x, w], attrs! {"transpose_b" => true}).unwrap();
    let loss = b.op(OpKind::ReduceSum, &[y], attrs! {"axes" => ints(&[0, 1])}).unwrap();
    b.ret(&[loss]);
    let e = dlc_passes::gradient(&g, 0, &[1]).unwrap_err().to_string();
    assert_eq!(e, r#"the loss depends on op '%0 = "kernel.matmul"', which has no VJP rule"#);
}

#[test]
fn elementwise_vjps_match_finite_differences() {
    run_cases(&elementwise_cases());
}

#[test]
fn reduction_vjps_match_finite_differences() {
    run_cases(&reduction_cases());
}

#[test]
fn contraction_vjps_match_finite_differences() {
    run_cases(&contraction_cases());
}

#[test]
fn window_and_normalization_vjps_match_finite_differences() {
    let cases = window_cases();
    assert!(cases.iter().all(|c| matches!(c.kind.category(), Category::Window | Category::Normalization)));
    run_cases(&cases);
}

#[test]
fn movement_vjps_match_finite_differences() {
    run_cases(&movement_cases());
}

/// Whole models, differentiated end to end.
mod chains {
    use super::ad_common::{Arg, Gen, Rng, check_gradient, random};
    use dlc_ir::{Attr, Attrs, Builder, DType, Function, OpKind, ValueId, attrs};

    /// `-mean(sum(log_softmax(logits) * one_hot(labels), 1))`: cross-entropy
    /// from logits [?, classes] and i64 labels [?].
    pub fn cross_entropy(b: &mut Builder<'_>, logits: ValueId, labels: ValueId, classes: i64) -> ValueId {
        let ls = b.op(OpKind::LogSoftmax, &[logits], attrs! {"axis" => 1i64}).unwrap();
        let dtype = b.func.ty(logits).dtype().unwrap();
        let hot = b.op(OpKind::OneHot, &[labels], attrs! {"num_classes" => classes, "dtype" => dtype}).unwrap();
        let picked = b.op(OpKind::Mul, &[ls, hot], Attrs::new()).unwrap();
        let per = b.op(OpKind::ReduceSum, &[picked], attrs! {"axes" => Attr::ints(&[1])}).unwrap();
        let mean = b.op(OpKind::ReduceMean, &[per], attrs! {"axes" => Attr::ints(&[0])}).unwrap();
        b.op(OpKind::Neg, &[mean], Attrs::new()).unwrap()
    }

    /// `x @ wᵀ + bias`.
    pub fn linear(b: &mut Builder<'_>, x: ValueId, w: ValueId, bias: ValueId) -> ValueId {
        let y = b.op(OpKind::Matmul, &[x, w], attrs! {"transpose_b" => true}).unwrap();
        b.op(OpKind::Add, &[y, bias], Attrs::new()).unwrap()
    }

    fn args_of(f: &mut Function, args: &[(&str, &Arg)]) -> Vec<ValueId> {
        args.iter().map(|(n, a)| f.add_arg(a.ty.clone().into(), Some(n), Attrs::new())).collect()
    }

    fn check(label: &str, f: &Function, args: &[Arg], seed: u64) {
        let mut rng = Rng::new(seed);
        let inputs: Vec<_> = args.iter().map(|a| random(&mut rng, a)).collect();
        let wrt: Vec<usize> = (0..args.len()).filter(|&i| args[i].ty.dtype.is_float()).collect();
        check_gradient(label, f, &wrt, &inputs);
    }

    #[test]
    fn mlp_with_cross_entropy() {
        let args = [
            Arg::f64(&[-1, 4], Gen::Normal),
            Arg::f64(&[6, 4], Gen::Normal),
            Arg::f64(&[6], Gen::Normal),
            Arg::f64(&[3, 6], Gen::Normal),
            Arg::f64(&[3], Gen::Normal),
            Arg::new(&[-1], DType::I64, Gen::Below(3)),
        ];
        let mut f = Function::new("mlp");
        let v = args_of(&mut f, &[("x", &args[0]), ("w1", &args[1]), ("b1", &args[2]), ("w2", &args[3]), ("b2", &args[4]), ("labels", &args[5])]);
        let mut b = Builder::at_entry(&mut f);
        let h = linear(&mut b, v[0], v[1], v[2]);
        let h = b.op(OpKind::Tanh, &[h], Attrs::new()).unwrap();
        let logits = linear(&mut b, h, v[3], v[4]);
        let loss = cross_entropy(&mut b, logits, v[5], 3);
        b.ret(&[loss]);
        check("mlp", &f, &args, 7);
    }

    #[test]
    fn cnn_conv_relu_maxpool_flatten_linear() {
        let args = [
            Arg::f64(&[-1, 1, 6, 6], Gen::Normal),
            Arg::f64(&[2, 1, 3, 3], Gen::Normal),
            Arg::f64(&[2, 1, 1], Gen::Normal),
            Arg::f64(&[3, 8], Gen::Normal),
            Arg::f64(&[3], Gen::Normal),
            Arg::new(&[-1], DType::I64, Gen::Below(3)),
        ];
        let mut f = Function::new("cnn");
        let v = args_of(&mut f, &[("x", &args[0]), ("k", &args[1]), ("kb", &args[2]), ("w", &args[3]), ("b", &args[4]), ("labels", &args[5])]);
        let mut b = Builder::at_entry(&mut f);
        let c = b.op(OpKind::Conv2d, &[v[0], v[1]], Attrs::new()).unwrap();
        let c = b.op(OpKind::Add, &[c, v[2]], Attrs::new()).unwrap();
        let r = b.op(OpKind::Relu, &[c], Attrs::new()).unwrap();
        let p = b.op(OpKind::MaxPool2d, &[r], attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])}).unwrap();
        let flat = b.op(OpKind::Reshape, &[p], attrs! {"shape" => Attr::ints(&[-1, 8])}).unwrap();
        let logits = linear(&mut b, flat, v[3], v[4]);
        let loss = cross_entropy(&mut b, logits, v[5], 3);
        b.ret(&[loss]);
        check("cnn", &f, &args, 11);
    }

    #[test]
    fn embedding_sum_sigmoid_mse() {
        // gather rows of a table by token ids, pool over the sequence, squash, squared error.
        let args = [Arg::f64(&[7, 3], Gen::Normal), Arg::new(&[-1, 5], DType::I64, Gen::Below(7)), Arg::f64(&[-1, 3], Gen::Normal)];
        let mut f = Function::new("emb");
        let v = args_of(&mut f, &[("table", &args[0]), ("tokens", &args[1]), ("target", &args[2])]);
        let mut b = Builder::at_entry(&mut f);
        let e = b.op(OpKind::Gather, &[v[0], v[1]], Attrs::new()).unwrap();
        let s = b.op(OpKind::ReduceMean, &[e], attrs! {"axes" => Attr::ints(&[1])}).unwrap();
        let y = b.op(OpKind::Sigmoid, &[s], Attrs::new()).unwrap();
        let d = b.op(OpKind::Sub, &[y, v[2]], Attrs::new()).unwrap();
        let sq = b.op(OpKind::Mul, &[d, d], Attrs::new()).unwrap();
        let loss = b.op(OpKind::ReduceMean, &[sq], attrs! {"axes" => Attr::ints(&[0, 1])}).unwrap();
        b.ret(&[loss]);
        check("embedding", &f, &args, 13);
    }
}
