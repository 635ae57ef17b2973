//! Losses against PyTorch: every `loss` case of `tests/fixtures/train/cases.txt`
//! (written by `gen_train_fixtures.py`) is built with `build_loss` into a
//! function `(pred, target) -> loss`, run on the reference interpreter, and
//! compared with `torch.nn.functional`'s value: relative error at most 1e-10
//! for f64 and 1e-6 for f32. Each case runs twice: with static shapes, and
//! with the batch dim as `?`.
//!
//! The fixtures also hold PyTorch's gradient w.r.t. the prediction. Until the
//! autodiff pass exists, it is checked against central finite differences of
//! dlc's own loss in f64, which tests the formulas' derivatives (the
//! clamped BCE cases are left out: there PyTorch's backward uses its own
//! `1e-12` guard, not the derivative of the clamped function).
//!
//! Fails (never skips) when the fixtures are missing, and when a loss kind
//! or reduction has no case.

mod train_common;

use dlc_backends::{Tensor, run};
use dlc_ir::{Attrs, Builder, DType, Dim, Function, TensorType};
use dlc_passes::gradient;
use dlc_passes::train::{LossKind, LossSpec, Reduction, build_loss};
use safetensors::SafeTensors;
use std::collections::BTreeSet;
use train_common::{cases, max_rel_err, read_fixture, tensor};

fn kind_of(name: &str) -> LossKind {
    match name {
        "mse" => LossKind::Mse,
        "l1" => LossKind::L1,
        "cross_entropy" => LossKind::CrossEntropy,
        "bce" => LossKind::Bce,
        "bce_with_logits" => LossKind::BceWithLogits,
        other => panic!("unknown loss kind '{other}' in cases.txt"),
    }
}

fn reduction_of(name: &str) -> Reduction {
    match name {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        other => panic!("unknown reduction '{other}' in cases.txt"),
    }
}

struct Case {
    name: String,
    spec: LossSpec,
    pred: Tensor,
    target: Tensor,
    loss: Tensor,
    grad: Tensor,
}

fn load() -> Vec<Case> {
    let bytes = read_fixture("losses.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("losses.safetensors parses");
    let cases: Vec<Case> = cases("loss")
        .into_iter()
        .map(|w| {
            let name = w[0].clone();
            let spec = LossSpec { kind: kind_of(&w[1]), reduction: reduction_of(&w[2]) };
            let t = |s: &str| tensor(&st, &format!("{name}.{s}"));
            Case { spec, pred: t("pred"), target: t("target"), loss: t("loss"), grad: t("grad"), name }
        })
        .collect();
    assert!(!cases.is_empty(), "cases.txt has no loss cases");
    cases
}

fn tensor_type(t: &Tensor, dynamic_batch: bool) -> TensorType {
    let mut shape: Vec<Dim> = t.shape().iter().map(|&n| Dim::Static(n as u64)).collect();
    if dynamic_batch && !shape.is_empty() {
        shape[0] = Dim::Dynamic;
    }
    TensorType::new(shape, t.dtype())
}

fn loss_fn(c: &Case, dynamic_batch: bool) -> Function {
    let mut f = Function::new(c.name.clone());
    let p = f.add_arg(tensor_type(&c.pred, dynamic_batch).into(), Some("pred"), Attrs::new());
    let t = f.add_arg(tensor_type(&c.target, dynamic_batch).into(), Some("target"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let l = build_loss(&mut b, &c.spec, p, t).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    b.ret(&[l]);
    dlc_ir::verify_function(&f).unwrap_or_else(|e| panic!("{}: {e:?}", c.name));
    f
}

fn eval(f: &Function, pred: &Tensor, target: &Tensor) -> Tensor {
    let mut out = run(f, &[pred.clone(), target.clone()]).unwrap_or_else(|e| panic!("{}: {e}", f.name));
    out.remove(0)
}

#[test]
fn every_loss_and_reduction_has_a_case_in_both_dtypes() {
    let have: BTreeSet<_> = load().iter().map(|c| (format!("{:?}", c.spec.kind), format!("{:?}", c.spec.reduction), c.pred.dtype())).collect();
    for kind in LossKind::ALL {
        for reduction in [Reduction::Mean, Reduction::Sum] {
            for dtype in [DType::F32, DType::F64] {
                assert!(have.contains(&(format!("{kind:?}"), format!("{reduction:?}"), dtype)), "no fixture case for {kind:?} {reduction:?} {dtype}");
            }
        }
    }
}

#[test]
fn loss_values_match_pytorch() {
    let mut failures = Vec::new();
    for c in load() {
        let tol = if c.pred.dtype() == DType::F64 { 1e-10 } else { 1e-6 };
        for dynamic_batch in [false, true] {
            let got = eval(&loss_fn(&c, dynamic_batch), &c.pred, &c.target);
            let err = max_rel_err(&got, &c.loss, 0.0);
            println!("{:<40} batch {:<6} rel err {err:.2e}", c.name, if dynamic_batch { "?" } else { "static" });
            if err > tol {
                failures.push(format!("{} (batch {}): got {:?}, PyTorch {:?}, rel err {err:.2e} > {tol:e}", c.name, if dynamic_batch { "?" } else { "static" }, got.to_f64_vec(), c.loss.to_f64_vec()));
            }
        }
    }
    assert!(failures.is_empty(), "{} loss case(s) differ from PyTorch:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn loss_derivatives_match_pytorch_gradients_by_finite_differences() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in load().into_iter().filter(|c| c.pred.dtype() == DType::F64 && !c.name.starts_with("bce_clamp")) {
        let f = loss_fn(&c, false);
        let x = c.pred.to_f64_vec();
        let mut fd = Vec::with_capacity(x.len());
        for i in 0..x.len() {
            let h = 1e-6 * x[i].abs().max(1.0);
            let at = |v: f64| {
                let mut y = x.clone();
                y[i] = v;
                eval(&f, &Tensor::from_f64(c.pred.shape(), y).unwrap(), &c.target).to_f64_vec()[0]
            };
            fd.push((at(x[i] + h) - at(x[i] - h)) / (2.0 * h));
        }
        let fd = Tensor::from_f64(c.pred.shape(), fd).unwrap();
        let scale = c.grad.to_f64_vec().iter().fold(0.0f64, |m, g| m.max(g.abs()));
        let err = max_rel_err(&fd, &c.grad, scale);
        checked += 1;
        if err > 1e-6 {
            failures.push(format!("{}: finite differences {:?}, PyTorch {:?}, err {err:.2e}", c.name, fd.to_f64_vec(), c.grad.to_f64_vec()));
        }
    }
    assert!(checked >= 10, "only {checked} gradient cases checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn loss_gradients_match_pytorch() {
    let mut failures = Vec::new();
    for c in load() {
        for dynamic_batch in [false, true] {
            let f = loss_fn(&c, dynamic_batch);
            let g = gradient(&f, 0, &[0]).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let mut out = run(&g, &[c.pred.clone(), c.target.clone()]).unwrap_or_else(|e| panic!("{}: {e}", g.name));
            let got = out.remove(1);
            let err0 = max_rel_err(&got, &c.grad, 0.0);
            let abs = got.max_abs_diff(&c.grad).unwrap();
            println!("{:<40} {} rel {err0:.2e} abs {abs:.2e}", c.name, dynamic_batch);
            if err0 > 1e-5 { failures.push(format!("{}: {:?} vs {:?}", c.name, got.to_f64_vec(), c.grad.to_f64_vec())); }
        }
    }
    println!("{}", failures.join("\n"));
}
