//! Optimizer updates against PyTorch: for every `optim` case of
//! `tests/fixtures/train/cases.txt` (written by `gen_train_fixtures.py`), ONE
//! step function `(param, grad, state…, step) -> (param', state'…)` is built
//! with `Optimizer::build_update` and iterated 5 times on the reference
//! interpreter, feeding the fixture's gradients and its own state back; the
//! parameter after every step is compared with `torch.optim`'s
//! (`foreach=False`). Relative error (against `max(|p|, 1e-3)`) at most
//! 1e-12 for f64 and 1e-5 for f32. The f32 residue (up to ~3e-6, in SGD) is
//! ATen's fused multiply-adds in `add(alpha=)`, `addcmul` and `lerp`, which
//! round once where dlc's `mul` then `add` round twice; the tight f64 bound
//! is what catches a misplaced `eps` or bias correction.
//!
//! Fails (never skips) when a fixture file is missing, and when an
//! `Optimizer` variant has no case.

mod train_common;

use dlc_backends::{Tensor, run};
use dlc_ir::{Attrs, Builder, DType, Function, Init, TensorType, Type};
use dlc_passes::train::{BuildUpdate, Optimizer};
use safetensors::SafeTensors;
use std::collections::BTreeSet;
use train_common::{cases, max_rel_err, parse_optimizer, read_fixture, tensor};

const STEPS: usize = 5;
const F64_TOL: f64 = 1e-12;
const F32_TOL: f64 = 1e-5;
/// Parameters smaller than this are judged on this scale (see `max_rel_err`).
const FLOOR: f64 = 1e-3;

/// The variant's name; exhaustive, so a new variant does not compile here
/// until it is listed in `every_variant` and given fixture cases.
fn variant(o: &Optimizer) -> &'static str {
    match o {
        Optimizer::Sgd { .. } => "sgd",
        Optimizer::Adagrad { .. } => "adagrad",
        Optimizer::RmsProp { .. } => "rmsprop",
        Optimizer::Adam { .. } => "adam",
        Optimizer::AdamW { .. } => "adamw",
    }
}

fn every_variant() -> Vec<Optimizer> {
    vec![Optimizer::sgd(0.1), Optimizer::adagrad(0.1), Optimizer::rmsprop(0.1), Optimizer::adam(0.1), Optimizer::adamw(0.1)]
}


fn load_cases() -> Vec<(String, Optimizer)> {
    let cases: Vec<_> = cases("optim").into_iter().map(|w| (w[0].clone(), parse_optimizer(&w[1], &w[2..].iter().map(String::as_str).collect::<Vec<_>>()))).collect();
    assert!(!cases.is_empty(), "cases.txt has no optim cases");
    cases
}

/// `(param, grad, state…, step) -> (param', state'…)` for a `[3, 5]` parameter.
fn step_fn(o: &Optimizer, dtype: DType) -> Function {
    let ty: Type = TensorType::fixed(&[3, 5], dtype).into();
    let mut f = Function::new(format!("{}_step", o.name()));
    let p = f.add_arg(ty.clone(), Some("param"), Attrs::new());
    let g = f.add_arg(ty.clone(), Some("grad"), Attrs::new());
    let state: Vec<_> = o.state_slots().iter().map(|(name, _)| f.add_arg(ty.clone(), Some(name), Attrs::new())).collect();
    let t = f.add_arg(TensorType::fixed(&[], dtype).into(), Some("step"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let (p2, s2) = o.build_update(&mut b, p, g, &state, t).unwrap_or_else(|e| panic!("{o:?}: {e}"));
    b.ret(&[vec![p2], s2].concat());
    dlc_ir::verify_function(&f).unwrap_or_else(|e| panic!("{o:?}: {e:?}"));
    f
}

fn initial(init: &Init, dtype: DType) -> Tensor {
    let v = match init {
        Init::Zeros => 0.0,
        Init::Ones => 1.0,
        Init::Constant(v) => *v,
        other => panic!("optimizer state with a random init {other:?}"),
    };
    Tensor::from_f64_values(&[3, 5], &[v; 15], dtype).unwrap()
}

/// Runs 5 steps; returns the largest relative error of the parameter over all steps.
fn run_case(st: &SafeTensors<'_>, name: &str, o: &Optimizer, dtype: DType) -> f64 {
    let f = step_fn(o, dtype);
    let mut param = tensor(st, &format!("init.{dtype}"));
    let mut state: Vec<Tensor> = o.state_slots().iter().map(|(_, i)| initial(i, dtype)).collect();
    let mut worst = 0.0f64;
    for t in 1..=STEPS {
        let step = Tensor::from_f64_values(&[], &[t as f64], dtype).unwrap();
        let args = [vec![param, tensor(st, &format!("grad{t}.{dtype}"))], state, vec![step]].concat();
        let mut out = run(&f, &args).unwrap_or_else(|e| panic!("{name} {dtype} step {t}: {e}"));
        param = out.remove(0);
        state = out;
        let want = tensor(st, &format!("{name}.{dtype}.step{t}"));
        worst = worst.max(max_rel_err(&param, &want, FLOOR));
    }
    worst
}

#[test]
fn every_optimizer_variant_has_a_case() {
    let have: BTreeSet<_> = load_cases().iter().map(|(_, o)| variant(o)).collect();
    for o in every_variant() {
        assert!(have.contains(variant(&o)), "no fixture case for {}", variant(&o));
    }
}

#[test]
fn updates_match_pytorch_over_five_steps() {
    let bytes = read_fixture("optim.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("optim.safetensors parses");
    let mut failures = Vec::new();
    for (name, o) in load_cases() {
        let e32 = run_case(&st, &name, &o, DType::F32);
        let e64 = run_case(&st, &name, &o, DType::F64);
        println!("{name:<28} f32 rel err {e32:.2e}   f64 rel err {e64:.2e}");
        if e32 > F32_TOL || e64 > F64_TOL {
            failures.push(format!("{name}: f32 {e32:.2e} (tol {F32_TOL:e}), f64 {e64:.2e} (tol {F64_TOL:e})"));
        }
    }
    assert!(failures.is_empty(), "{} optimizer case(s) differ from PyTorch:\n{}", failures.len(), failures.join("\n"));
}
