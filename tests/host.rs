//! The host API (`dlc::Model`): inputs checked by name, dtype and shape with
//! errors (never a crash), weights saved and loaded, training step by step.

use dlc::{Error, Model, Options, Tensor};

const SRC: &str = "model Two {
    input x: f32[batch, 3]
    input mask: f32[batch, 2]
    fc = Linear(3, 2)
    output y = fc(x) * mask
}";

fn err(r: Result<impl std::fmt::Debug, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn inputs_are_checked_by_name_dtype_and_shape() {
    let m = Model::compile_str("two.dl", SRC, &Options::default()).unwrap();
    let x = Tensor::from_f32(&[4, 3], vec![1.0; 12]).unwrap();
    let mask = Tensor::from_f32(&[4, 2], vec![1.0; 8]).unwrap();
    let y = m.forward(&[("x", &x), ("mask", &mask)]).unwrap();
    assert_eq!((y[0].0.as_str(), y[0].1.shape()), ("y", &[4usize, 2][..]));

    assert!(err(m.forward(&[("x", &x)])).contains("missing input 'mask'"));
    assert!(err(m.forward(&[("x", &x), ("mask", &mask), ("z", &x)])).contains("the model has no input 'z' (its inputs: x, mask)"));
    assert!(err(m.forward(&[("x", &x), ("x", &x)])).contains("given twice"));
    let ints = Tensor::from_i64(&[4, 3], vec![1; 12]).unwrap();
    assert!(err(m.forward(&[("x", &ints), ("mask", &mask)])).contains("input 'x' is i64[4, 3], the model expects f32[?, 3]"));
    let narrow = Tensor::from_f32(&[4, 2], vec![1.0; 8]).unwrap();
    assert!(err(m.forward(&[("x", &narrow), ("mask", &mask)])).contains("the model expects f32[?, 3]"));
    // Both `?` dims are the one batch size.
    let other_batch = Tensor::from_f32(&[5, 2], vec![1.0; 10]).unwrap();
    assert!(err(m.forward(&[("x", &x), ("mask", &other_batch)])).contains("(with ? = 4)"));
    // NaN and inf are computed through, as PyTorch does.
    let nan = Tensor::from_f32(&[1, 3], vec![f32::NAN, f32::INFINITY, 0.0]).unwrap();
    let one = Tensor::from_f32(&[1, 2], vec![1.0, 1.0]).unwrap();
    let y = m.forward(&[("x", &nan), ("mask", &one)]).unwrap();
    assert!(y[0].1.to_f64_vec().iter().all(|v| v.is_nan()));
}

#[test]
fn weights_round_trip_and_foreign_weights_are_refused() {
    let dir = std::env::temp_dir().join(format!("dlc-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = Model::compile_str("two.dl", SRC, &Options { seed: 1, ..Options::default() }).unwrap();
    let mut b = Model::compile_str("two.dl", SRC, &Options { seed: 2, ..Options::default() }).unwrap();
    let p = dir.join("w.safetensors");
    a.save_weights(&p).unwrap();
    b.load_weights(&p).unwrap();
    for ((na, ta), (nb, tb)) in a.params().zip(b.params()) {
        assert_eq!((na, ta.max_abs_diff(tb)), (nb, Some(0.0)));
    }
    // The forward pass (weights bound and packed at load) computes with the
    // loaded weights, and with parameters set afterwards: y = (x·Wᵀ + b) * mask.
    let x = Tensor::from_f32(&[1, 3], vec![1.0, 2.0, 3.0]).unwrap();
    let mask = Tensor::from_f32(&[1, 2], vec![1.0, 1.0]).unwrap();
    let y = |m: &Model| m.forward(&[("x", &x), ("mask", &mask)]).unwrap()[0].1.to_f64_vec();
    assert_eq!(y(&b), y(&a));
    let w = Tensor::from_f32(&[2, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, -1.0]).unwrap();
    b.set_params([("fc.weight".to_string(), w), ("fc.bias".to_string(), Tensor::from_f32(&[2], vec![0.5, 0.0]).unwrap())]).unwrap();
    assert_eq!(y(&b), vec![1.5, -1.0]);
    let digits = Model::compile_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/digits_mlp.dl"), &Options::default()).unwrap();
    let q = dir.join("digits.safetensors");
    digits.save_weights(&q).unwrap();
    assert!(err(b.load_weights(&q)).contains("missing parameter(s): fc.weight, fc.bias"));
    assert!(err(b.set_params([("fc.weight".to_string(), Tensor::zeros(&[3, 2], dlc::ir::DType::F32))])).contains("parameter 'fc.weight' is f32[3, 2], the model expects f32[2, 3]"));
    assert!(err(b.set_params([("nope".to_string(), Tensor::zeros(&[1], dlc::ir::DType::F32))])).contains("no parameter 'nope'"));
    // A refused set changes nothing, even the parameters listed before the mistake.
    let zeros = Tensor::zeros(&[2, 3], dlc::ir::DType::F32);
    assert!(b.set_params([("fc.weight".to_string(), zeros), ("nope".to_string(), Tensor::zeros(&[1], dlc::ir::DType::F32))]).is_err());
    assert_eq!(y(&b), vec![1.5, -1.0]);
}

#[test]
fn training_step_by_step_lowers_the_loss_and_checks_labels() {
    let m = Model::compile_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/digits_mlp.dl"), &Options::default()).unwrap();
    let x = Tensor::from_f32(&[6, 64], (0..6 * 64).map(|i| (i % 7) as f32 / 7.0).collect()).unwrap();
    let y = Tensor::from_i64(&[6], vec![0, 1, 2, 3, 4, 5]).unwrap();
    let mut t = m.trainer().unwrap();
    let first = t.step(&[("x", &x)], &y).unwrap();
    for _ in 0..150 {
        t.step(&[("x", &x)], &y).unwrap();
    }
    let last = t.step(&[("x", &x)], &y).unwrap();
    assert!(last.loss < first.loss * 0.5, "{first:?} -> {last:?}");
    assert_eq!(t.steps(), 152);
    assert!(last.correct.unwrap() >= first.correct.unwrap());
    let float_labels = Tensor::from_f32(&[6], vec![0.0; 6]).unwrap();
    assert!(err(t.step(&[("x", &x)], &float_labels)).contains("'label' is f32[6], the model expects i64[?]"));
    let short = Tensor::from_i64(&[5], vec![0; 5]).unwrap();
    assert!(err(t.step(&[("x", &x)], &short)).contains("(with ? = 6)"));
    // Refused steps cost nothing: the parameters (lent to each step, which
    // writes the new ones over them) are still there and still train.
    let before = t.params();
    assert_eq!(before.len(), 4);
    assert_eq!(t.steps(), 152);
    let after = t.step(&[("x", &x)], &y).unwrap();
    assert!(after.loss <= last.loss * 1.01, "{last:?} -> {after:?}");
    assert_ne!(t.params(), before, "the step updated the parameters");
    let no_block = Model::compile_str("two.dl", SRC, &Options::default()).unwrap();
    assert!(err(no_block.trainer()).contains("the model has no train block"));
}
