//! Whole training steps against PyTorch: a small MLP (`x[?, 6] -> fc1 (6 -> 5)
//! -> tanh -> fc2 (5 -> 3)`) is built with the `Builder` as the frontend would
//! lower it, `train_step::build` turns it into `@train_step` for every case of
//! `tests/fixtures/train_model/manifest.txt` (written by `gen.py`: each
//! optimizer configuration with cross-entropy and with MSE), and the reference
//! interpreter runs 6 steps from the fixture's initial weights on its 6
//! batches, feeding every result back into the argument of the same name. The
//! parameters after every step, the loss of every step and (cross-entropy) the
//! number of correct predictions are compared with PyTorch's `zero_grad();
//! loss.backward(); opt.step()` loop (`foreach=False`), in f64 and f32.
//!
//! Tolerances:
//! - f64: every parameter element within 1e-10 relative (against
//!   `max(|want|, 1e-3)`), and the loss. Measured: at most ~2e-13 (Adagrad),
//!   ~1e-15 for Adam; only summation order differs from PyTorch. The bound
//!   is far below the 1e-6 on purpose: doubling Adam's `eps` moves
//!   the parameters by only ~7e-7, which 1e-6 would let through.
//! - f32: every parameter tensor within 1e-5 normwise (`max|got - want| /
//!   max|want|`, per tensor and step), and the loss within 1e-5 relative.
//!   Measured: at most ~4e-7. Elementwise, f32 errors reach ~8e-5 on elements
//!   that are near zero (|p| ~ 1e-3, absolute error ~1e-7): rounding noise
//!   in the gradients (BLAS summation order, ATen's fused multiply-adds),
//!   which RMSprop's and Adagrad's normalizations amplify. PyTorch's own f32
//!   run differs from its f64 run by the same amounts (up to ~5e-5
//!   elementwise, ~8e-7 normwise), so an elementwise f32 bound would judge
//!   noise.
//!
//! Fails (never skips) when the fixture is missing, and when an `Optimizer`
//! variant has no case with either loss.

mod train_common;

use dlc_backends::{Tensor, init_state, run};
use dlc_ir::signature::{input_attrs, param_attrs, set_output_names};
use dlc_ir::{Attrs, Builder, DType, Dim, Function, Init, OpKind, Signature, TensorType, attrs};
use dlc_passes::train::{LossKind, LossSpec, Optimizer, Reduction};
use dlc_passes::train_step;
use safetensors::SafeTensors;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use train_common::{parse_optimizer, tensor};

/// f64: elementwise relative error (floor `FLOOR`) of every parameter, and the loss.
const F64_TOL: f64 = 1e-10;
/// f32: normwise relative error of every parameter tensor, and the loss.
const F32_TOL: f64 = 1e-5;
/// In the elementwise error, references smaller than this are judged on this scale.
const FLOOR: f64 = 1e-3;
/// The model's parameters, in argument order, with their shapes.
const PARAMS: [(&str, &[u64]); 4] = [("fc1.weight", &[5, 6]), ("fc1.bias", &[5]), ("fc2.weight", &[3, 5]), ("fc2.bias", &[3])];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/train_model")
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} is missing ({e}); run `python3 tests/fixtures/train_model/gen.py`", path.display()))
}

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

struct Case {
    name: String,
    loss: LossKind,
    opt: Optimizer,
}

struct Manifest {
    steps: usize,
    batch: usize,
    cases: Vec<Case>,
}


fn load_manifest() -> Manifest {
    let text = String::from_utf8(read_fixture("manifest.txt")).expect("manifest.txt is UTF-8");
    let (mut steps, mut batch, mut params, mut cases) = (None, None, Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "steps" => steps = Some(w[1].parse().expect("steps is a number")),
            "batch" => batch = Some(w[1].parse().expect("batch is a number")),
            "param" => params.push((w[1].to_string(), w[2].split('x').map(|d| d.parse::<u64>().expect("a dim")).collect::<Vec<_>>())),
            "case" => {
                let loss = match w[2] {
                    "cross_entropy" => LossKind::CrossEntropy,
                    "mse" => LossKind::Mse,
                    other => panic!("case {}: unexpected loss '{other}'", w[1]),
                };
                cases.push(Case { name: w[1].to_string(), loss, opt: parse_optimizer(w[3], &w[4..]) });
            }
            other => panic!("manifest.txt: unknown line kind '{other}'"),
        }
    }
    let want: Vec<(String, Vec<u64>)> = PARAMS.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect();
    assert_eq!(params, want, "the fixture's model is not the one built here");
    assert!(!cases.is_empty(), "manifest.txt has no cases");
    Manifest { steps: steps.expect("manifest.txt has no 'steps'"), batch: batch.expect("manifest.txt has no 'batch'"), cases }
}

/// `@forward(x: [?, 6], fc1.weight, fc1.bias, fc2.weight, fc2.bias) -> logits [?, 3]`:
/// `fc2(tanh(fc1(x)))`, each linear layer `matmul(x, W, transpose_b) + b`.
fn forward(dtype: DType) -> Function {
    let mut f = Function::new("forward");
    let x = f.add_arg(TensorType::new(vec![Dim::Dynamic, Dim::Static(6)], dtype).into(), Some("x"), input_attrs());
    // The initializer is never drawn: the fixture's weights are fed.
    let init = Init::Uniform { low: -0.5, high: 0.5 };
    let p: Vec<_> = PARAMS.iter().map(|(name, shape)| f.add_arg(TensorType::fixed(shape, dtype).into(), Some(name), param_attrs(&init))).collect();
    let mut b = Builder::at_entry(&mut f);
    let h = b.op(OpKind::Matmul, &[x, p[0]], attrs! {"transpose_b" => true}).unwrap();
    let h = b.op(OpKind::Add, &[h, p[1]], Attrs::new()).unwrap();
    let h = b.op(OpKind::Tanh, &[h], Attrs::new()).unwrap();
    let y = b.op(OpKind::Matmul, &[h, p[2]], attrs! {"transpose_b" => true}).unwrap();
    let y = b.op(OpKind::Add, &[y, p[3]], Attrs::new()).unwrap();
    b.name(y, "logits");
    b.ret(&[y]);
    set_output_names(&mut f, &["logits"]);
    dlc_ir::verify_function(&f).unwrap_or_else(|e| panic!("forward does not verify: {e:?}"));
    f
}

/// The largest elementwise relative error of `got` against `want`, each
/// element judged against `max(|want|, floor)`; NaN or infinity is an infinite error.
fn rel_err(got: &[f64], want: &[f64], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "sizes differ");
    got.iter()
        .zip(want)
        .map(|(&x, &y)| if x == y { 0.0 } else if x.is_finite() && y.is_finite() { (x - y).abs() / y.abs().max(floor) } else { f64::INFINITY })
        .fold(0.0, f64::max)
}

/// The normwise relative error `max|got - want| / max|want|` of one tensor.
fn norm_err(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, y| m.max(y.abs()));
    rel_err(got, want, scale.max(f64::MIN_POSITIVE))
}

/// The worst errors of one case in one dtype, over all steps.
#[derive(Default)]
struct Errs {
    /// Elementwise, against `max(|want|, FLOOR)`.
    params: f64,
    /// Normwise, per parameter tensor and step.
    params_norm: f64,
    /// Relative.
    loss: f64,
    /// Steps whose correct-count differs from PyTorch's.
    correct_mismatch: Vec<usize>,
}

fn run_case(st: &SafeTensors<'_>, m: &Manifest, case: &Case, dtype: DType) -> Errs {
    let fwd = forward(dtype);
    let spec = LossSpec { kind: case.loss, reduction: Reduction::Mean };
    let program = train_step::build(&fwd, "logits", None, &spec, &case.opt).unwrap_or_else(|e| panic!("{} {dtype}: {e}", case.name));
    let names: Vec<&str> = PARAMS.iter().map(|p| p.0).collect();
    assert_eq!(program.params, names, "{}: parameter order", case.name);
    assert_eq!((program.label.0.as_str(), program.features.clone()), ("label", vec!["x".to_string()]), "{}", case.name);
    let sig = Signature::of(&program.step).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let state = init_state(&sig, 0);
    assert_eq!(state.iter().map(|s| s.0.clone()).collect::<Vec<_>>(), program.state, "{}: state order", case.name);

    // Every value the step reads, by argument name.
    let mut vals: BTreeMap<String, Tensor> = BTreeMap::new();
    for name in &names {
        vals.insert(name.to_string(), tensor(st, &format!("init.{dtype}.{name}")));
    }
    vals.extend(state);
    let want: Vec<Vec<f64>> = names.iter().map(|n| tensor(st, &format!("{}.{dtype}.{n}", case.name)).to_f64_vec()).collect();
    let want_loss = tensor(st, &format!("{}.{dtype}.loss", case.name)).to_f64_vec();
    let want_correct = (case.loss == LossKind::CrossEntropy).then(|| tensor(st, &format!("{}.{dtype}.correct", case.name)).to_f64_vec());
    let mut errs = Errs::default();
    for t in 1..=m.steps {
        let x = tensor(st, &format!("batch{t}.x.{dtype}"));
        assert_eq!(x.shape(), [m.batch, 6]);
        let label = match case.loss {
            LossKind::CrossEntropy => tensor(st, &format!("batch{t}.class")),
            _ => tensor(st, &format!("batch{t}.target.{dtype}")),
        };
        vals.insert("x".into(), x);
        vals.insert("label".into(), label);
        vals.insert("step".into(), Tensor::from_f64_values(&[], &[t as f64], dtype).unwrap());
        let args: Vec<Tensor> = sig.args.iter().map(|a| vals.get(&a.name).unwrap_or_else(|| panic!("no value for argument '{}'", a.name)).clone()).collect();
        let out = run(&program.step, &args).unwrap_or_else(|e| panic!("{} {dtype} step {t}: {e}", case.name));
        assert_eq!(out.len(), sig.outputs.len());
        for ((name, _), v) in sig.outputs.iter().zip(out) {
            assert!(vals.contains_key(name) || name == "loss" || name == "correct", "{}: result '{name}' feeds no argument", case.name);
            vals.insert(name.clone(), v);
        }
        for (n, w) in names.iter().zip(&want) {
            let got = vals[*n].to_f64_vec();
            let row = &w[(t - 1) * got.len()..t * got.len()];
            errs.params = errs.params.max(rel_err(&got, row, FLOOR));
            errs.params_norm = errs.params_norm.max(norm_err(&got, row));
        }
        errs.loss = errs.loss.max(rel_err(&vals["loss"].to_f64_vec(), &want_loss[t - 1..t], 0.0));
        if let Some(c) = &want_correct
            && vals["correct"].to_f64_vec() != [c[t - 1]]
        {
            errs.correct_mismatch.push(t);
        }
    }
    errs
}

#[test]
fn every_optimizer_variant_has_a_case_with_each_loss() {
    let m = load_manifest();
    for loss in [LossKind::CrossEntropy, LossKind::Mse] {
        let have: BTreeSet<_> = m.cases.iter().filter(|c| c.loss == loss).map(|c| variant(&c.opt)).collect();
        for o in every_variant() {
            assert!(have.contains(variant(&o)), "no {loss:?} fixture case for {}", variant(&o));
        }
    }
}

#[test]
fn training_an_mlp_matches_pytorch_step_by_step() {
    let m = load_manifest();
    let bytes = read_fixture("model.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("model.safetensors parses");
    let mut failures = Vec::new();
    println!("relative errors against PyTorch, worst over {} steps (param: elementwise, floor {FLOOR:e}; norm: per tensor)", m.steps);
    println!("{:<36} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}", "case", "f64 param", "f64 norm", "f64 loss", "f32 param", "f32 norm", "f32 loss");
    for case in &m.cases {
        let e64 = run_case(&st, &m, case, DType::F64);
        let e32 = run_case(&st, &m, case, DType::F32);
        println!(
            "{:<36} {:>9.2e} {:>9.2e} {:>9.2e} | {:>9.2e} {:>9.2e} {:>9.2e}",
            case.name, e64.params, e64.params_norm, e64.loss, e32.params, e32.params_norm, e32.loss
        );
        // f64 is judged elementwise, f32 per tensor (see the module docs).
        for (dtype, e, params, tol) in [("f64", &e64, e64.params, F64_TOL), ("f32", &e32, e32.params_norm, F32_TOL)] {
            if params > tol || e.loss > tol {
                failures.push(format!("{} {dtype}: parameters {params:.2e}, loss {:.2e} (tol {tol:e})", case.name, e.loss));
            }
            if !e.correct_mismatch.is_empty() {
                failures.push(format!("{} {dtype}: correct-count differs at steps {:?}", case.name, e.correct_mismatch));
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) differ from PyTorch:\n{}", failures.len(), failures.join("\n"));
}
