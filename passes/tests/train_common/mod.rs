//! Reading the training fixtures written by
//! `tests/fixtures/train/gen_train_fixtures.py`, shared by `train_losses.rs`,
//! `train_optim.rs` and `train_model.rs`. A missing file is a failure, never a skip.

#![allow(dead_code)]

use dlc_backends::Tensor;
use dlc_passes::train::Optimizer;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `tests/fixtures/train/` of the workspace.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/train")
}

/// A fixture file's bytes; panics with the command that regenerates it.
pub fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("fixture {} is missing ({e}); run `python3 tests/fixtures/train/gen_train_fixtures.py`", path.display())
    })
}

/// The case lines of `cases.txt` whose first word is `section`, split into words.
pub fn cases(section: &str) -> Vec<Vec<String>> {
    let text = String::from_utf8(read_fixture("cases.txt")).expect("cases.txt is UTF-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|w| w[0] == section)
        .map(|w| w[1..].to_vec())
        .collect()
}

/// Tensor `name` of a safetensors file, as a dlc tensor.
pub fn tensor(st: &SafeTensors<'_>, name: &str) -> Tensor {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    let (shape, data) = (view.shape(), view.data());
    macro_rules! le {
        ($t:ty, $n:expr) => {
            data.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())).collect()
        };
    }
    let t = match view.dtype() {
        Dtype::F32 => Tensor::from_f32(shape, le!(f32, 4)),
        Dtype::F64 => Tensor::from_f64(shape, le!(f64, 8)),
        Dtype::I32 => Tensor::from_i32(shape, le!(i32, 4)),
        Dtype::I64 => Tensor::from_i64(shape, le!(i64, 8)),
        other => panic!("fixture tensor {name}: unsupported dtype {other:?}"),
    };
    t.unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"))
}

/// The largest relative error `|a - b| / |b|` over all elements (`b` is the
/// reference); an element whose reference is below `floor` in magnitude is
/// measured against `floor`, so that values that cancel to nearly zero are
/// judged on the scale of their inputs, not as 100% errors. NaN against
/// anything but NaN is an infinite error.
pub fn max_rel_err(a: &Tensor, b: &Tensor, floor: f64) -> f64 {
    assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "dtype or shape differs");
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(&x, y)| match (x.is_nan(), y.is_nan()) {
            (true, true) => 0.0,
            (false, false) if x == y => 0.0,
            (false, false) if x.is_finite() && y.is_finite() => (x - y).abs() / y.abs().max(floor),
            _ => f64::INFINITY,
        })
        .fold(0.0, f64::max)
}

/// Builds the optimizer of a case line: every hyper-parameter must be given,
/// and nothing else.
pub fn parse_optimizer(kind: &str, words: &[&str]) -> Optimizer {
    let mut kv: BTreeMap<&str, &str> = words.iter().map(|w| w.split_once('=').unwrap_or_else(|| panic!("bad hyper-parameter '{w}'"))).collect();
    let mut take = |k: &str| kv.remove(k).unwrap_or_else(|| panic!("{kind}: missing '{k}'"));
    let mut num = |k: &str| -> f64 { take(k).parse().unwrap_or_else(|_| panic!("{kind}: '{k}' is not a number")) };
    let o = match kind {
        "sgd" => Optimizer::Sgd { lr: num("lr"), momentum: num("momentum"), dampening: num("dampening"), nesterov: false, weight_decay: num("weight_decay") },
        "adagrad" => Optimizer::Adagrad { lr: num("lr"), lr_decay: num("lr_decay"), weight_decay: num("weight_decay"), initial_accumulator_value: num("initial_accumulator_value"), eps: num("eps") },
        "rmsprop" => Optimizer::RmsProp { lr: num("lr"), alpha: num("alpha"), eps: num("eps"), weight_decay: num("weight_decay"), momentum: num("momentum"), centered: false },
        "adam" => Optimizer::Adam { lr: num("lr"), beta1: num("beta1"), beta2: num("beta2"), eps: num("eps"), weight_decay: num("weight_decay"), amsgrad: false },
        "adamw" => Optimizer::AdamW { lr: num("lr"), beta1: num("beta1"), beta2: num("beta2"), eps: num("eps"), weight_decay: num("weight_decay"), amsgrad: false },
        other => panic!("unknown optimizer '{other}' in the fixture's case list"),
    };
    let mut flag = |k: &str| -> bool { kv.remove(k).unwrap_or_else(|| panic!("{kind}: missing '{k}'")).parse().unwrap_or_else(|_| panic!("{kind}: '{k}' is not a bool")) };
    let o = match o {
        Optimizer::Sgd { lr, momentum, dampening, weight_decay, .. } => Optimizer::Sgd { lr, momentum, dampening, nesterov: flag("nesterov"), weight_decay },
        Optimizer::RmsProp { lr, alpha, eps, weight_decay, momentum, .. } => Optimizer::RmsProp { lr, alpha, eps, weight_decay, momentum, centered: flag("centered") },
        Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, .. } => Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, amsgrad: flag("amsgrad") },
        Optimizer::AdamW { lr, beta1, beta2, eps, weight_decay, .. } => Optimizer::AdamW { lr, beta1, beta2, eps, weight_decay, amsgrad: flag("amsgrad") },
        o @ Optimizer::Adagrad { .. } => o,
    };
    assert!(kv.is_empty(), "{kind}: unknown hyper-parameter(s) {:?}", kv.keys().collect::<Vec<_>>());
    o
}
