//! The autodiff pass itself: the shape of the function it returns, its
//! errors, the subgradients chosen at ties (exact values, as PyTorch's), and a
//! reviewed snapshot of a two-layer MLP's gradient.

mod ad_common;

use dlc_backends::{Tensor, run};
use dlc_ir::signature::{input_attrs, param_attrs, set_output_names};
use dlc_ir::{Attr, Attrs, Builder, DType, Dim, Function, Init, OpKind, Signature, TensorType, ValueId, attrs, print_function};
use dlc_passes::{AutodiffError, gradient};

fn t(shape: &[i64], dtype: DType) -> TensorType {
    TensorType::new(ad_common::dims(shape), dtype)
}

/// `f(args…)` with `body` building the returned values.
fn func(args: &[(&str, TensorType)], body: impl FnOnce(&mut Builder<'_>, &[ValueId]) -> Vec<ValueId>) -> Function {
    let mut f = Function::new("f");
    let xs: Vec<ValueId> = args.iter().map(|(n, ty)| f.add_arg(ty.clone().into(), Some(n), Attrs::new())).collect();
    let mut b = Builder::at_entry(&mut f);
    let out = body(&mut b, &xs);
    b.ret(&out);
    f
}

fn sum_all(b: &mut Builder<'_>, x: ValueId) -> ValueId {
    let rank = b.func.ty(x).as_tensor().unwrap().rank() as i64;
    b.op(OpKind::ReduceSum, &[x], attrs! {"axes" => Attr::ints(&(0..rank).collect::<Vec<_>>())}).unwrap()
}

fn f64s(shape: &[usize], v: &[f64]) -> Tensor {
    Tensor::from_f64(shape, v.to_vec()).unwrap()
}

#[test]
fn the_gradient_function_has_the_arguments_and_named_results() {
    let f = func(&[("x", t(&[-1, 3], DType::F64)), ("w", t(&[3], DType::F64)), ("unused", t(&[-1, 2], DType::F64))], |b, v| {
        let y = b.op(OpKind::Mul, &[v[0], v[1]], Attrs::new()).unwrap();
        let s = sum_all(b, y);
        vec![y, s]
    });
    let g = gradient(&f, 1, &[1, 2, 0]).unwrap();
    assert_eq!(g.name, "f_grad");
    let sig = Signature::of(&g).unwrap();
    let names: Vec<&str> = sig.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["output0", "output1", "grad.w", "grad.unused", "grad.x"]);
    assert_eq!(sig.args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["x", "w", "unused"]);
    let types: Vec<String> = g.result_types.iter().map(|t| t.to_string()).collect();
    assert_eq!(types[2..], ["tensor<3xf64>", "tensor<?x2xf64>", "tensor<?x3xf64>"]);
    let x = f64s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let w = f64s(&[3], &[0.5, -1.0, 2.0]);
    let out = run(&g, &[x, w, Tensor::zeros(&[2, 2], DType::F64)]).unwrap();
    assert_eq!(out[2].to_f64_vec(), [5.0, 7.0, 9.0]);
    assert_eq!(out[3].to_f64_vec(), [0.0; 4], "an argument the loss does not read gets zeros, even with a ? dim");
    assert_eq!(out[4].to_f64_vec(), [0.5, -1.0, 2.0, 0.5, -1.0, 2.0]);
}

#[test]
fn a_value_used_twice_accumulates_both_paths() {
    // loss = sum(x * x + exp(x)): d/dx = 2x + exp(x)
    let f = func(&[("x", t(&[3], DType::F64))], |b, v| {
        let sq = b.op(OpKind::Mul, &[v[0], v[0]], Attrs::new()).unwrap();
        let e = b.op(OpKind::Exp, &[v[0]], Attrs::new()).unwrap();
        let s = b.op(OpKind::Add, &[sq, e], Attrs::new()).unwrap();
        vec![sum_all(b, s)]
    });
    let g = gradient(&f, 0, &[0]).unwrap();
    let xs = [0.5, -1.0, 2.0];
    let out = run(&g, &[f64s(&[3], &xs)]).unwrap();
    for (got, x) in out[1].to_f64_vec().iter().zip(xs) {
        assert!((got - (2.0 * x + f64::exp(x))).abs() < 1e-12);
    }
}

#[test]
fn a_loss_that_is_an_argument_has_gradient_one() {
    let f = func(&[("l", t(&[], DType::F32))], |_, v| vec![v[0]]);
    let g = gradient(&f, 0, &[0]).unwrap();
    let out = run(&g, &[Tensor::from_f32(&[], vec![3.0]).unwrap()]).unwrap();
    assert_eq!(out[1].to_f64_vec(), [1.0]);
}

#[test]
fn integer_paths_carry_no_gradient() {
    // loss = sum(x * cast(argmax(x))): argmax is piecewise constant.
    let f = func(&[("x", t(&[2, 3], DType::F64))], |b, v| {
        let am = b.op(OpKind::Argmax, &[v[0]], attrs! {"axis" => 1i64, "keepdims" => true}).unwrap();
        let c = b.op(OpKind::Cast, &[am], attrs! {"dtype" => DType::F64}).unwrap();
        let y = b.op(OpKind::Mul, &[v[0], c], Attrs::new()).unwrap();
        vec![sum_all(b, y)]
    });
    let g = gradient(&f, 0, &[0]).unwrap();
    let out = run(&g, &[f64s(&[2, 3], &[1.0, 5.0, 2.0, 9.0, 0.0, 1.0])]).unwrap();
    assert_eq!(out[1].to_f64_vec(), [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn bad_requests_are_errors() {
    let f = func(&[("x", t(&[3], DType::F64)), ("k", t(&[3], DType::I64))], |b, v| {
        let s = sum_all(b, v[0]);
        vec![v[0], s]
    });
    let err = |of, wrt: &[usize]| gradient(&f, of, wrt).unwrap_err();
    assert!(matches!(err(0, &[0]), AutodiffError::NotScalarLoss { index: 0, .. }));
    assert_eq!(err(0, &[0]).to_string(), "loss result #0 must be a rank-0 float tensor, got tensor<3xf64>");
    assert_eq!(err(2, &[0]).to_string(), "loss result #2 does not exist: the function has 2 result(s)");
    assert_eq!(err(1, &[5]).to_string(), "argument #5 does not exist: the function has 2 argument(s)");
    assert_eq!(err(1, &[1]).to_string(), "cannot differentiate with respect to %k: it has type tensor<3xi64>, not a float tensor");
    let int_loss = func(&[("k", t(&[3], DType::I64))], |b, v| vec![sum_all(b, v[0])]);
    assert!(matches!(gradient(&int_loss, 0, &[]), Err(AutodiffError::NotScalarLoss { .. })));
    let mut broken = f.clone();
    broken.result_types.pop();
    assert!(matches!(gradient(&broken, 0, &[0]), Err(AutodiffError::Invalid(_))));
}

/// `d sum(op(a, b)) / d(a, b)` at the given points.
fn binary_grads(kind: OpKind, a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = a.len() as i64;
    let f = func(&[("a", t(&[n], DType::F64)), ("b", t(&[n], DType::F64))], |bl, v| {
        let y = bl.op(kind, &[v[0], v[1]], Attrs::new()).unwrap();
        vec![sum_all(bl, y)]
    });
    let out = run(&gradient(&f, 0, &[0, 1]).unwrap(), &[f64s(&[a.len()], a), f64s(&[b.len()], b)]).unwrap();
    (out[1].to_f64_vec(), out[2].to_f64_vec())
}

#[test]
fn ties_follow_pytorch() {
    // maximum/minimum split the gradient evenly on ties.
    assert_eq!(binary_grads(OpKind::Maximum, &[1.0, 2.0, 3.0], &[1.0, 5.0, 0.0]), (vec![0.5, 0.0, 1.0], vec![0.5, 1.0, 0.0]));
    assert_eq!(binary_grads(OpKind::Minimum, &[1.0, 2.0, 3.0], &[1.0, 5.0, 0.0]), (vec![0.5, 1.0, 0.0], vec![0.5, 0.0, 1.0]));
    // pow: the exponent's gradient is 0 where the base is 0 (not NaN).
    let (da, db) = binary_grads(OpKind::Pow, &[0.0, 2.0], &[2.0, 3.0]);
    assert_eq!(da, [0.0, 12.0]);
    assert_eq!(db[0], 0.0);
    assert!((db[1] - 8.0 * 2f64.ln()).abs() < 1e-12);

    let unary = |kind: OpKind, a: Attrs, shape: &[usize], x: &[f64]| {
        let ty = TensorType::fixed(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>(), DType::F64);
        let f = func(&[("x", ty)], |b, v| {
            let y = b.op(kind, &[v[0]], a).unwrap();
            vec![sum_all(b, y)]
        });
        run(&gradient(&f, 0, &[0]).unwrap(), &[f64s(shape, x)]).unwrap()[1].to_f64_vec()
    };
    // relu and abs take 0 as the derivative at 0.
    assert_eq!(unary(OpKind::Relu, Attrs::new(), &[3], &[-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0]);
    assert_eq!(unary(OpKind::Abs, Attrs::new(), &[3], &[-1.0, 0.0, 2.0]), [-1.0, 0.0, 1.0]);
    // reduce_max (amax) splits evenly among ties.
    let m = unary(OpKind::ReduceMax, attrs! {"axes" => Attr::ints(&[1])}, &[2, 3], &[1.0, 3.0, 3.0, 7.0, 7.0, 7.0]);
    let third = 1.0 / 3.0;
    assert_eq!(m, [0.0, 0.5, 0.5, third, third, third]);
    // max_pool2d routes each window's gradient to its first maximum (the argmax PyTorch saves);
    // overlapping windows add up at a shared maximum.
    let pool = attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[1, 1])};
    let ties = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 5.0];
    assert_eq!(unary(OpKind::MaxPool2d, pool.clone(), &[1, 1, 3, 3], &ties), [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    let shared = [0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 5.0];
    assert_eq!(unary(OpKind::MaxPool2d, pool, &[1, 1, 3, 3], &shared), [0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
    // Tiling windows (stride = kernel) take the tiled rule: ties go to the
    // first maximum in row-major window order, and the column no window
    // covers (width 5, kernel 2) gets nothing.
    let tiled = attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[2, 2])};
    #[rustfmt::skip]
    let x = [1.0, 1.0, 0.0, 2.0, 9.0,
             1.0, 0.0, 2.0, 2.0, 9.0,
             3.0, 1.0, 4.0, 4.0, 9.0,
             3.0, 3.0, 4.0, 4.0, 9.0];
    #[rustfmt::skip]
    let want = [1.0, 0.0, 0.0, 1.0, 0.0,
                0.0, 0.0, 0.0, 0.0, 0.0,
                1.0, 0.0, 1.0, 0.0, 0.0,
                0.0, 0.0, 0.0, 0.0, 0.0];
    assert_eq!(unary(OpKind::MaxPool2d, tiled, &[1, 1, 4, 5], &x), want);
}

#[test]
fn a_float_cast_casts_the_gradient_back() {
    let f = func(&[("x", t(&[2], DType::F32))], |b, v| {
        let c = b.op(OpKind::Cast, &[v[0]], attrs! {"dtype" => DType::F64}).unwrap();
        let y = b.op(OpKind::Mul, &[c, c], Attrs::new()).unwrap();
        vec![sum_all(b, y)]
    });
    let g = gradient(&f, 0, &[0]).unwrap();
    assert_eq!(g.result_types[1].to_string(), "tensor<2xf32>");
    let out = run(&g, &[Tensor::from_f32(&[2], vec![1.5, -2.0]).unwrap()]).unwrap();
    assert_eq!(out[1].to_f64_vec(), [3.0, -4.0]);
}

/// A two-layer MLP with cross-entropy, as the frontend would lower it.
fn mlp() -> Function {
    let mut f = Function::new("loss");
    let ty = |s: &[i64]| -> dlc_ir::Type { t(s, DType::F32).into() };
    let init = Init::Uniform { low: -0.5, high: 0.5 };
    let x = f.add_arg(ty(&[-1, 4]), Some("x"), input_attrs());
    let w1 = f.add_arg(ty(&[8, 4]), Some("fc1.weight"), param_attrs(&init));
    let b1 = f.add_arg(ty(&[8]), Some("fc1.bias"), param_attrs(&init));
    let w2 = f.add_arg(ty(&[3, 8]), Some("fc2.weight"), param_attrs(&init));
    let b2 = f.add_arg(ty(&[3]), Some("fc2.bias"), param_attrs(&init));
    let labels = f.add_arg(t(&[-1], DType::I64).into(), Some("label"), input_attrs());
    let mut b = Builder::at_entry(&mut f);
    let h = b.op(OpKind::Matmul, &[x, w1], attrs! {"transpose_b" => true}).unwrap();
    let h = b.op(OpKind::Add, &[h, b1], Attrs::new()).unwrap();
    let h = b.op(OpKind::Relu, &[h], Attrs::new()).unwrap();
    let logits = b.op(OpKind::Matmul, &[h, w2], attrs! {"transpose_b" => true}).unwrap();
    let logits = b.op(OpKind::Add, &[logits, b2], Attrs::new()).unwrap();
    let ls = b.op(OpKind::LogSoftmax, &[logits], attrs! {"axis" => 1i64}).unwrap();
    let hot = b.op(OpKind::OneHot, &[labels], attrs! {"num_classes" => 3i64}).unwrap();
    let picked = b.op(OpKind::Mul, &[ls, hot], Attrs::new()).unwrap();
    let per = b.op(OpKind::ReduceSum, &[picked], attrs! {"axes" => Attr::ints(&[1])}).unwrap();
    let mean = b.op(OpKind::ReduceMean, &[per], attrs! {"axes" => Attr::ints(&[0])}).unwrap();
    let loss = b.op(OpKind::Neg, &[mean], Attrs::new()).unwrap();
    b.name(loss, "loss");
    b.ret(&[loss]);
    set_output_names(&mut f, &["loss"]);
    f
}

#[test]
fn mlp_gradient_snapshot() {
    let f = mlp();
    let g = gradient(&f, 0, &[1, 2, 3, 4]).unwrap();
    assert_eq!(g.result_types[1..].iter().map(|t| t.as_tensor().unwrap().shape.clone()).collect::<Vec<_>>(), [
        vec![Dim::Static(8), Dim::Static(4)],
        vec![Dim::Static(8)],
        vec![Dim::Static(3), Dim::Static(8)],
        vec![Dim::Static(3)]
    ]);
    insta::assert_snapshot!(print_function(&g));
}

#[test]
fn gradients_of_padded_windows_print_and_parse_back() {
    // max_pool2d pads its taps with -inf, which the printer writes as hex bits.
    let x = t(&[-1, 2, 6, 6], DType::F32);
    let w = t(&[3, 2, 3, 3], DType::F32);
    let f = func(&[("x", x), ("w", w)], |b, v| {
        let c = b.op(OpKind::Conv2d, &[v[0], v[1]], attrs! {"stride" => Attr::ints(&[2, 2]), "padding" => Attr::ints(&[1, 1])}).unwrap();
        let p = b.op(OpKind::MaxPool2d, &[c], attrs! {"kernel" => Attr::ints(&[3, 3]), "stride" => Attr::ints(&[1, 1]), "padding" => Attr::ints(&[1, 1])}).unwrap();
        vec![sum_all(b, p)]
    });
    let g = gradient(&f, 0, &[0, 1]).unwrap();
    let text = print_function(&g);
    let m = dlc_ir::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    dlc_ir::verify_module(&m).unwrap();
    assert_eq!(print_function(&m.functions[0]), text);
}
