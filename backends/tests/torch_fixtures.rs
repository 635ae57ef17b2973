//! The interpreter against PyTorch: every case in `tests/fixtures/ops/`
//! (written by `gen_op_fixtures.py`) is rebuilt as a one-op function with the
//! registry's `Builder`, run, and compared with PyTorch's output.
//!
//! Tolerances: f32 `rtol = 1e-5, atol = 1e-6`; f64 `1e-12` both; integers and
//! booleans exact. NaN must meet NaN, an infinity the same infinity.
//! The test fails (never skips) when the fixture files are missing, and when
//! an op of the registry has no case, so a new op forces a new fixture (the
//! structured-kernel ops excepted: they are checked against the dl level).

mod common;

use common::one_op_fn;
use dlc_backends::{Tensor, run};
use dlc_ir::registry::AttrKind;
use dlc_ir::{Attr, Attrs, DType, OpKind, TensorType};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ops")
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("fixture {} is missing ({e}); run `python3 tests/fixtures/ops/gen_op_fixtures.py`", path.display())
    })
}

/// A safetensors tensor as a dlc tensor (little-endian, row-major).
fn to_tensor(view: &safetensors::tensor::TensorView<'_>) -> Result<Tensor, String> {
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
        Dtype::BOOL => Tensor::from_bool(shape, data.iter().map(|&b| b != 0).collect()),
        other => return Err(format!("unsupported fixture dtype {other:?}")),
    };
    t.map_err(|e| e.to_string())
}

/// Reads `key=value` by the kind the op's registry entry declares for `key`.
fn parse_attr(kind: OpKind, key: &str, text: &str) -> Result<Attr, String> {
    let spec = kind.def().attrs.iter().find(|s| s.name == key).ok_or_else(|| format!("{} has no attribute '{key}'", kind.name()))?;
    let bad = || format!("attribute {key}={text} is not {}", spec.kind.describe());
    Ok(match spec.kind {
        AttrKind::Int => Attr::Int(text.parse().map_err(|_| bad())?),
        AttrKind::Float => Attr::Float(text.parse().map_err(|_| bad())?),
        AttrKind::Bool => Attr::Bool(text.parse().map_err(|_| bad())?),
        AttrKind::Enum(_) => Attr::Str(text.trim_matches('"').to_string()),
        AttrKind::DType => Attr::from(DType::from_name(text).ok_or_else(bad)?),
        AttrKind::Ints => {
            let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(bad)?;
            let items: Result<Vec<i64>, _> = inner.split(',').filter(|s| !s.is_empty()).map(str::parse).collect();
            Attr::ints(&items.map_err(|_| bad())?)
        }
        AttrKind::Dense => return Err(format!("dense attribute '{key}' cannot be written in a fixture")),
        // Only the kernel-level ops (kernel.generic) have string, map and
        // element-type arrays, and they have no PyTorch fixtures (see the coverage check).
        AttrKind::Strings | AttrKind::Maps | AttrKind::DTypes => return Err(format!("attribute '{key}' ({}) cannot be written in a fixture", spec.kind.describe())),
    })
}

/// Runs one case; `Err` says what differs.
fn check_case(st: &SafeTensors<'_>, used: &mut BTreeSet<String>, name: &str, kind: OpKind, attrs: Attrs) -> Result<(), String> {
    let mut inputs = Vec::new();
    while let Ok(view) = st.tensor(&format!("{name}.in{}", inputs.len())) {
        used.insert(format!("{name}.in{}", inputs.len()));
        inputs.push(to_tensor(&view)?);
    }
    let want = to_tensor(&st.tensor(&format!("{name}.out")).map_err(|e| format!("no output tensor: {e}"))?)?;
    used.insert(format!("{name}.out"));
    let types: Vec<TensorType> = inputs.iter().map(common::type_of).collect();
    let f = one_op_fn(kind, attrs, &types);
    let got = run(&f, &inputs).map_err(|e| format!("interpreter error: {e}"))?.remove(0);
    let ok = match want.dtype() {
        DType::F32 => got.allclose(&want, 1e-5, 1e-6),
        DType::F64 => got.allclose(&want, 1e-12, 1e-12),
        _ => got == want,
    };
    if ok {
        return Ok(());
    }
    let detail = match got.max_abs_diff(&want) {
        Some(d) => format!("max |diff| = {d:e}"),
        None => format!("got {}, want {}", got.describe(), want.describe()),
    };
    Err(format!("{detail}\n    got  {:?}\n    want {:?}", got.to_f64_vec(), want.to_f64_vec()))
}

#[test]
fn interpreter_matches_pytorch_on_every_fixture_case() {
    let cases = String::from_utf8(read_fixture("cases.txt")).expect("cases.txt is UTF-8");
    let bytes = read_fixture("ops.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("ops.safetensors parses");
    let (mut failures, mut covered, mut used, mut count) = (Vec::new(), BTreeSet::new(), BTreeSet::new(), 0);
    for line in cases.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        count += 1;
        let mut words = line.split_whitespace();
        let (name, op) = (words.next().unwrap(), words.next().unwrap_or(""));
        let Some(kind) = OpKind::from_name(op) else {
            failures.push(format!("{name}: unknown op '{op}'"));
            continue;
        };
        let attrs: Result<Attrs, String> = words
            .map(|w| {
                let (k, v) = w.split_once('=').ok_or_else(|| format!("'{w}' is not key=value"))?;
                Ok((k.to_string(), parse_attr(kind, k, v)?))
            })
            .collect();
        let result = attrs.and_then(|a| check_case(&st, &mut used, name, kind, a));
        match result {
            Ok(()) => {
                covered.insert(kind);
            }
            Err(e) => failures.push(format!("{name} ({op}): {e}")),
        }
    }
    for &kind in OpKind::ALL {
        // Constants have no inputs to compare and return is the harness itself.
        // The structured-kernel level (kernel.*) has no PyTorch fixtures: it
        // is checked against the dl level instead, which these fixtures pin
        // to PyTorch (tests/kernel_level.rs runs every example model both
        // ways; backends/tests/every_op.rs checks each kernel op by hand and
        // the contractions against the dl ops they fuse).
        let kernel_level = kind.name().starts_with("kernel.");
        let exempt = kernel_level || matches!(kind, OpKind::Constant | OpKind::Return);
        if !exempt && !covered.contains(&kind) {
            failures.push(format!("{}: no passing fixture case (add one to gen_op_fixtures.py)", kind.name()));
        }
    }
    let unused: Vec<&str> = st.names().into_iter().filter(|n| !used.contains(*n)).collect();
    if !unused.is_empty() {
        failures.push(format!("tensors no case reads (a misspelt case name?): {unused:?}"));
    }
    assert!(count >= 150, "only {count} fixture cases: is cases.txt truncated?");
    assert!(failures.is_empty(), "{} of {count} fixture cases failed:\n{}", failures.len(), failures.join("\n"));
}
