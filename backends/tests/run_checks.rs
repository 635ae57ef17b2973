//! What `run` checks before and while interpreting: argument count and types,
//! the one batch size behind every `?`, and IR it cannot trust. Bad input is
//! always an error with a message naming what is wrong, never a panic.

mod common;

use common::{f32t, f64t, i64t, ty};
use dlc_backends::{InterpError, Tensor, eval_op, run};
use dlc_ir::{Attr, Attrs, Builder, DType, Function, OpKind, Type, attrs};

/// `@f(%x: tensor<?x3xf32>, %y: tensor<?x3xf32>) { return x + y }`.
fn add_fn() -> Function {
    let mut f = Function::new("f");
    let x = f.add_arg(ty(&[-1, 3], DType::F32).into(), Some("x"), Attrs::new());
    let y = f.add_arg(ty(&[-1, 3], DType::F32).into(), Some("y"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let s = b.op(OpKind::Add, &[x, y], Attrs::new()).unwrap();
    b.ret(&[s]);
    f
}

#[test]
fn argument_count_and_types_are_checked() {
    let f = add_fn();
    let two = || f32t(&[2, 3], &[0.0; 6]);
    let err = run(&f, &[two()]).unwrap_err();
    assert_eq!(err, InterpError::ArgCount { func: "f".into(), expected: 2, found: 1 });
    assert_eq!(err.to_string(), "@f takes 2 argument(s), got 1");

    let err = run(&f, &[two(), f64t(&[2, 3], &[0.0; 6])]).unwrap_err();
    assert_eq!(err.to_string(), "argument %y: expected tensor<?x3xf32>, found f64[2, 3]");
    let err = run(&f, &[f32t(&[2, 4], &[0.0; 8]), two()]).unwrap_err();
    assert_eq!(err, InterpError::ArgType { name: "x".into(), expected: "tensor<?x3xf32>".into(), found: "f32[2, 4]".into() });
    let err = run(&f, &[f32t(&[6], &[0.0; 6]), two()]).unwrap_err();
    assert!(matches!(err, InterpError::ArgType { ref name, .. } if name == "x"), "{err}");
}

#[test]
fn every_question_mark_is_one_batch_size() {
    let f = add_fn();
    let out = run(&f, &[f32t(&[2, 3], &[1.0; 6]), f32t(&[2, 3], &[2.0; 6])]).unwrap();
    assert_eq!(out, vec![f32t(&[2, 3], &[3.0; 6])]);
    // Any batch works, including 1 and 0.
    assert_eq!(run(&f, &[f32t(&[1, 3], &[1.0; 3]), f32t(&[1, 3], &[1.0; 3])]).unwrap()[0].shape(), &[1, 3]);
    assert_eq!(run(&f, &[f32t(&[0, 3], &[]), f32t(&[0, 3], &[])]).unwrap()[0].shape(), &[0, 3]);

    let err = run(&f, &[f32t(&[2, 3], &[0.0; 6]), f32t(&[4, 3], &[0.0; 12])]).unwrap_err();
    assert_eq!(err, InterpError::BatchMismatch { name: "y".into(), dim: 0, found: 4, batch: 2, bound_by: "x".into() });
    assert_eq!(err.to_string(), "argument %y: dim 0 is the batch dim ? and has size 4, but %x set the batch size to 2");

    // Two `?` in one argument must agree too.
    let mut g = Function::new("g");
    let x = g.add_arg(ty(&[-1, -1], DType::F32).into(), Some("sq"), Attrs::new());
    Builder::at_entry(&mut g).ret(&[x]);
    assert!(run(&g, &[f32t(&[2, 2], &[0.0; 4])]).is_ok());
    let err = run(&g, &[f32t(&[2, 3], &[0.0; 6])]).unwrap_err();
    assert!(matches!(err, InterpError::BatchMismatch { dim: 1, found: 3, batch: 2, .. }), "{err}");
}

#[test]
fn minus_one_in_a_shape_is_the_bound_batch() {
    // reshape tensor<?x2x3> to [-1, 6], then broadcast a [6] bias to [-1, 6] and add.
    let mut f = Function::new("flatten");
    let x = f.add_arg(ty(&[-1, 2, 3], DType::F32).into(), Some("x"), Attrs::new());
    let bias = f.add_arg(ty(&[6], DType::F32).into(), Some("bias"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let flat = b.op(OpKind::Reshape, &[x], attrs! {"shape" => Attr::ints(&[-1, 6])}).unwrap();
    let wide = b.op(OpKind::BroadcastTo, &[bias], attrs! {"shape" => Attr::ints(&[-1, 6])}).unwrap();
    let y = b.op(OpKind::Add, &[flat, wide], Attrs::new()).unwrap();
    b.ret(&[y]);
    let xs: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let out = run(&f, &[f32t(&[4, 2, 3], &xs), f32t(&[6], &[100.0; 6])]).unwrap();
    let want: Vec<f32> = xs.iter().map(|v| v + 100.0).collect();
    assert_eq!(out, vec![f32t(&[4, 6], &want)]);

    // With no `?` argument there is no batch to substitute.
    let mut g = Function::new("g");
    let bias = g.add_arg(ty(&[6], DType::F32).into(), Some("bias"), Attrs::new());
    let mut b = Builder::at_entry(&mut g);
    let wide = b.op(OpKind::BroadcastTo, &[bias], attrs! {"shape" => Attr::ints(&[-1, 6])}).unwrap();
    b.ret(&[wide]);
    let err = run(&g, &[f32t(&[6], &[0.0; 6])]).unwrap_err();
    assert_eq!(err, InterpError::BatchUnbound { op: "dl.broadcast_to".into() });
}

#[test]
fn run_time_data_errors_name_the_op() {
    // An embedding lookup with a token id past the table.
    let mut f = Function::new("embed");
    let table = f.add_arg(ty(&[4, 2], DType::F32).into(), Some("table"), Attrs::new());
    let ids = f.add_arg(ty(&[-1], DType::I64).into(), Some("ids"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let e = b.op(OpKind::Gather, &[table, ids], Attrs::new()).unwrap();
    b.ret(&[e]);
    let t = f32t(&[4, 2], &[0.0; 8]);
    assert_eq!(run(&f, &[t.clone(), i64t(&[3], &[0, 3, 1])]).unwrap()[0].shape(), &[3, 2]);
    let err = run(&f, &[t, i64t(&[2], &[1, 4])]).unwrap_err();
    assert_eq!(err, InterpError::IndexOutOfRange { op: "dl.gather".into(), index: 4, bound: 4 });
}

#[test]
fn untrustworthy_ir_is_an_error_not_a_panic() {
    // A result whose declared type disagrees with what the op computes.
    let mut f = Function::new("lie");
    let x = f.add_arg(ty(&[3], DType::F32).into(), Some("x"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let y = b.op(OpKind::Neg, &[x], Attrs::new()).unwrap();
    b.ret(&[y]);
    f.set_ty(y, Type::Tensor(ty(&[4], DType::F32)));
    let err = run(&f, &[f32t(&[3], &[1.0; 3])]).unwrap_err();
    assert_eq!(err.to_string(), "'dl.neg': malformed IR: produced f32[3] but its declared type is tensor<4xf32>");

    // A body without func.return.
    let mut g = Function::new("open");
    let x = g.add_arg(ty(&[3], DType::F32).into(), Some("x"), Attrs::new());
    Builder::at_entry(&mut g).op(OpKind::Neg, &[x], Attrs::new()).unwrap();
    assert!(matches!(run(&g, &[f32t(&[3], &[1.0; 3])]).unwrap_err(), InterpError::Malformed { .. }));

    // eval_op on its own: wrong operand count, ill-typed or missing attributes, wrong dtypes.
    let one = f32t(&[2], &[1.0, 2.0]);
    let cases: Vec<(OpKind, Attrs, Vec<&Tensor>)> = vec![
        (OpKind::Add, Attrs::new(), vec![&one]),
        (OpKind::Softmax, attrs! {"axis" => "one"}, vec![&one]),
        (OpKind::Softmax, attrs! {"axis" => 5i64}, vec![&one]),
        (OpKind::ReduceSum, Attrs::new(), vec![&one]),
        (OpKind::Transpose, attrs! {"perm" => Attr::ints(&[0, 0])}, vec![&one]),
        (OpKind::Slice, attrs! {"axis" => 0i64, "start" => 1i64, "end" => 9i64}, vec![&one]),
        (OpKind::Reshape, attrs! {"shape" => Attr::ints(&[3])}, vec![&one]),
        (OpKind::Cmp, attrs! {"predicate" => "approx"}, vec![&one, &one]),
        (OpKind::Matmul, Attrs::new(), vec![&one, &one]),
        (OpKind::MaxPool2d, attrs! {"kernel" => Attr::ints(&[2, 2]), "stride" => Attr::ints(&[0, 1])}, vec![&one]),
        (OpKind::Return, Attrs::new(), vec![&one]),
    ];
    for (kind, attrs, inputs) in cases {
        let err = eval_op(kind, &attrs, &inputs, None).unwrap_err();
        assert!(matches!(err, InterpError::Malformed { .. }), "{}: {err}", kind.name());
    }
    let ints = i64t(&[2], &[1, 2]);
    for (kind, inputs) in [(OpKind::Exp, vec![&ints]), (OpKind::Add, vec![&one, &ints]), (OpKind::Pow, vec![&ints, &ints])] {
        let err = eval_op(kind, &Attrs::new(), &inputs, None).unwrap_err();
        assert!(matches!(err, InterpError::Unsupported { .. }), "{}: {err}", kind.name());
    }
}

#[test]
fn returning_arguments_and_repeated_values() {
    let mut f = Function::new("twice");
    let x = f.add_arg(ty(&[2], DType::F32).into(), Some("x"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let y = b.op(OpKind::Neg, &[x], Attrs::new()).unwrap();
    b.ret(&[y, x, y]);
    let out = run(&f, &[f32t(&[2], &[1.0, -2.0])]).unwrap();
    assert_eq!(out, vec![f32t(&[2], &[-1.0, 2.0]), f32t(&[2], &[1.0, -2.0]), f32t(&[2], &[-1.0, 2.0])]);
}
