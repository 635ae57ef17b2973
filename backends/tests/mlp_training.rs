//! End to end on the interpreter: a 64-32-10 MLP trained with SGD for 900
//! steps at batch 32, its training step written by hand in `dl` ops (forward,
//! softmax cross-entropy, backward, update). The loss must fall well below
//! chance, and the run shows how fast the oracle is (`--nocapture` prints it;
//! in release it takes a fraction of a second).

use dlc_backends::{Tensor, init_params, run};
use dlc_ir::signature::param_attrs;
use dlc_ir::{Attr, Attrs, Builder, DType, Function, Init, OpKind, Signature, TensorType, ValueId, attrs};
use std::time::Instant;

const BATCH: u64 = 32;
const IN: u64 = 64;
const HIDDEN: u64 = 32;
const CLASSES: u64 = 10;
const LR: f64 = 0.1;

fn tt(shape: &[u64], dtype: DType) -> dlc_ir::Type {
    TensorType::fixed(shape, dtype).into()
}

fn op(b: &mut Builder<'_>, kind: OpKind, operands: &[ValueId], attrs: Attrs) -> ValueId {
    b.op(kind, operands, attrs).unwrap_or_else(|e| panic!("{e}"))
}

/// `step(x, labels, w1, b1, w2, b2) -> (loss, w1', b1', w2', b2')`.
fn training_step() -> Function {
    let mut f = Function::new("step");
    let x = f.add_arg(tt(&[BATCH, IN], DType::F32), Some("x"), Attrs::new());
    let labels = f.add_arg(tt(&[BATCH], DType::I64), Some("labels"), Attrs::new());
    let w1 = f.add_arg(tt(&[HIDDEN, IN], DType::F32), Some("w1"), Attrs::new());
    let b1 = f.add_arg(tt(&[HIDDEN], DType::F32), Some("b1"), Attrs::new());
    let w2 = f.add_arg(tt(&[CLASSES, HIDDEN], DType::F32), Some("w2"), Attrs::new());
    let b2 = f.add_arg(tt(&[CLASSES], DType::F32), Some("b2"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let none = Attrs::new;
    // forward
    let y = op(&mut b, OpKind::OneHot, &[labels], attrs! {"num_classes" => CLASSES as i64});
    let h0 = op(&mut b, OpKind::Matmul, &[x, w1], attrs! {"transpose_b" => true});
    let h_pre = op(&mut b, OpKind::Add, &[h0, b1], none());
    let h = op(&mut b, OpKind::Relu, &[h_pre], none());
    let z0 = op(&mut b, OpKind::Matmul, &[h, w2], attrs! {"transpose_b" => true});
    let z = op(&mut b, OpKind::Add, &[z0, b2], none());
    // loss = -mean_b sum_c y * log_softmax(z)
    let ls = op(&mut b, OpKind::LogSoftmax, &[z], attrs! {"axis" => 1i64});
    let yls = op(&mut b, OpKind::Mul, &[y, ls], none());
    let per = op(&mut b, OpKind::ReduceSum, &[yls], attrs! {"axes" => Attr::ints(&[1])});
    let mean = op(&mut b, OpKind::ReduceMean, &[per], attrs! {"axes" => Attr::ints(&[0])});
    let loss = op(&mut b, OpKind::Neg, &[mean], none());
    // backward: dz = (softmax(z) - y) / batch
    let p = op(&mut b, OpKind::Softmax, &[z], attrs! {"axis" => 1i64});
    let py = op(&mut b, OpKind::Sub, &[p, y], none());
    let inv_n = b.scalar(1.0 / BATCH as f64, DType::F32);
    let dz = op(&mut b, OpKind::Mul, &[py, inv_n], none());
    let dw2 = op(&mut b, OpKind::Matmul, &[dz, h], attrs! {"transpose_a" => true});
    let db2 = op(&mut b, OpKind::ReduceSum, &[dz], attrs! {"axes" => Attr::ints(&[0])});
    let dh = op(&mut b, OpKind::Matmul, &[dz, w2], none());
    let zero = b.scalar(0.0, DType::F32);
    let live = op(&mut b, OpKind::Cmp, &[h_pre, zero], attrs! {"predicate" => "gt"});
    let dh_pre = op(&mut b, OpKind::Select, &[live, dh, zero], none());
    let dw1 = op(&mut b, OpKind::Matmul, &[dh_pre, x], attrs! {"transpose_a" => true});
    let db1 = op(&mut b, OpKind::ReduceSum, &[dh_pre], attrs! {"axes" => Attr::ints(&[0])});
    // SGD
    let lr = b.scalar(LR, DType::F32);
    let sgd = |b: &mut Builder<'_>, w: ValueId, g: ValueId| {
        let step = op(b, OpKind::Mul, &[g, lr], Attrs::new());
        op(b, OpKind::Sub, &[w, step], Attrs::new())
    };
    let outs = [loss, sgd(&mut b, w1, dw1), sgd(&mut b, b1, db1), sgd(&mut b, w2, dw2), sgd(&mut b, b2, db2)];
    b.ret(&outs);
    f
}

/// Random tensors from the initializer's streams: `(name, shape, init)`.
fn random(params: &[(&str, &[u64], Init)], seed: u64) -> Vec<Tensor> {
    let mut f = Function::new("r");
    for (name, shape, init) in params {
        f.add_arg(tt(shape, DType::F32), Some(name), param_attrs(init));
    }
    Builder::at_entry(&mut f).ret(&[]);
    init_params(&Signature::of(&f).unwrap(), seed).into_iter().map(|(_, t)| t).collect()
}

/// `labels = argmax(x @ teacher)`: a task the MLP can learn.
fn labels_of(x: &Tensor, teacher: &Tensor) -> Tensor {
    let mut f = Function::new("label");
    let xv = f.add_arg(tt(x.shape().iter().map(|&n| n as u64).collect::<Vec<_>>().as_slice(), DType::F32), Some("x"), Attrs::new());
    let tv = f.add_arg(tt(&[IN, CLASSES], DType::F32), Some("t"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let s = b.op(OpKind::Matmul, &[xv, tv], Attrs::new()).unwrap();
    let c = b.op(OpKind::Argmax, &[s], attrs! {"axis" => 1i64}).unwrap();
    b.ret(&[c]);
    run(&f, &[x.clone(), teacher.clone()]).unwrap().remove(0)
}

#[test]
fn mlp_trains_on_the_interpreter() {
    let batches = 30u64;
    let normal = Init::Normal { mean: 0.0, std: 1.0 };
    let data = random(&[("x", &[batches * BATCH, IN], normal.clone()), ("teacher", &[IN, CLASSES], normal)], 0);
    let labels = labels_of(&data[0], &data[1]);
    let (x_all, y_all) = (data[0].as_f32().unwrap(), labels.as_i64().unwrap());
    let slice = |i: u64| {
        let r = ndarray::s![(i * BATCH) as usize..((i + 1) * BATCH) as usize, ..];
        let x = Tensor::F32(x_all.slice(r).to_owned().into_dyn());
        let y = Tensor::I64(y_all.slice(ndarray::s![(i * BATCH) as usize..((i + 1) * BATCH) as usize]).to_owned().into_dyn());
        (x, y)
    };
    let data: Vec<(Tensor, Tensor)> = (0..batches).map(slice).collect();

    let (a1, a2) = (1.0 / (IN as f64).sqrt(), 1.0 / (HIDDEN as f64).sqrt());
    let mut params = random(
        &[
            ("w1", &[HIDDEN, IN], Init::Uniform { low: -a1, high: a1 }),
            ("b1", &[HIDDEN], Init::Zeros),
            ("w2", &[CLASSES, HIDDEN], Init::Uniform { low: -a2, high: a2 }),
            ("b2", &[CLASSES], Init::Zeros),
        ],
        1,
    );
    let step = training_step();
    let mut losses = Vec::new();
    let start = Instant::now();
    for i in 0..900 {
        let (x, y) = &data[i % batches as usize];
        let mut args = vec![x.clone(), y.clone()];
        args.extend(params.iter().cloned());
        let mut out = run(&step, &args).unwrap();
        losses.push(out[0].to_f64_vec()[0]);
        params = out.split_off(1);
    }
    let elapsed = start.elapsed();
    let first: f64 = losses[..30].iter().sum::<f64>() / 30.0;
    let last: f64 = losses[870..].iter().sum::<f64>() / 30.0;
    println!("900 steps of a 64-32-10 MLP at batch 32: {elapsed:?}; loss {first:.3} -> {last:.3}");
    assert!((first - 10f64.ln()).abs() < 0.5, "the first loss {first} is about ln 10 for a fresh net");
    assert!(last < 0.4 * first, "training did not learn: loss {first} -> {last}");
}
