//! Every example model's forward pass against PyTorch: for each `examples/*.dl`,
//! `tests/fixtures/models/<name>.safetensors` (written by
//! `gen_model_fixtures.py`) holds the equivalent `torch.nn` module's parameters
//! under dlc's parameter names, a random input batch (`input.<name>`) and
//! PyTorch's outputs in float32 (`output.<name>`) and float64
//! (`output_f64.<name>`, from the same float32 weights and inputs).
//!
//! The model is loaded with [`dlc::Program::load`], the parameters bound by
//! the signature's names ([`dlc::io::weights::bind`]: every name present, no
//! extra, dtypes and shapes equal), the forward function run on the reference
//! interpreter, and every output compared with PyTorch's float32 output
//! (`|dlc - torch| <= 1e-5 + 1e-5 * |torch|`) and, for the record, with the
//! float64 one (same tolerance; the interpreter accumulates sums in f64, so
//! it sits at least as close to the exact answer as PyTorch's f32 does).
//!
//! Fails (never skips) when a fixture is missing: every `.dl` file in
//! `examples/` must have one, so a new example needs a new fixture.

use dlc::backends::{Tensor, run};
use dlc::ir::signature::Role;
use dlc::{Program, io::weights};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The stems of `examples/*.dl`, sorted.
fn examples() -> Vec<String> {
    let dir = root().join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "dl"))
        .map(|p| p.file_stem().expect("file stem").to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no examples/*.dl found");
    names
}

/// The largest `|a - b|` and `|a - b| / |b|` (the latter over elements with
/// `|b| > ATOL`), both as f64; `a` and `b` must have the same shape.
fn errors(a: &Tensor, b: &Tensor) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec().iter().zip(b.to_f64_vec()).fold((0.0f64, 0.0f64), |(abs, rel), (&x, y)| {
        let d = if x == y { 0.0 } else if x.is_finite() && y.is_finite() { (x - y).abs() } else { f64::INFINITY };
        (abs.max(d), if y.abs() > ATOL { rel.max(d / y.abs()) } else { rel })
    })
}

/// `|a - b| <= ATOL + RTOL * |b|` everywhere, comparing values as f64 (the
/// dtypes may differ: `b` is PyTorch's f32 or f64 output).
fn close(a: &Tensor, b: &Tensor) -> bool {
    a.shape() == b.shape()
        && a.to_f64_vec().iter().zip(b.to_f64_vec()).all(|(&x, y)| x.is_finite() && y.is_finite() && (x - y).abs() <= ATOL + RTOL * y.abs())
}

/// Runs one example against its fixture; returns a line per output for the
/// log, or what went wrong.
fn check(name: &str) -> Result<Vec<String>, String> {
    let model = root().join(format!("examples/{name}.dl"));
    let fixture = root().join(format!("tests/fixtures/models/{name}.safetensors"));
    if !fixture.exists() {
        return Err(format!("no fixture {}; run `python3 tests/fixtures/models/gen_model_fixtures.py` (after adding the model to it)", fixture.display()));
    }
    let program = Program::load(&model).map_err(|e| e.render(false))?;
    let sig = program.signature().map_err(|e| e.render(false))?;
    let forward = program.forward().map_err(|e| e.render(false))?;

    let mut params = weights::read(&fixture).map_err(|e| e.to_string())?;
    let mut take = |prefix: &str| -> BTreeMap<String, Tensor> {
        let keys: Vec<String> = params.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.into_iter().map(|k| (k[prefix.len()..].to_string(), params.remove(&k).expect("listed key"))).collect()
    };
    let mut inputs = take("input.");
    let want32 = take("output.");
    let want64 = take("output_f64.");
    // What is left must be exactly the model's parameters.
    let mut bound: BTreeMap<String, Tensor> = weights::bind(&fixture, &sig, params).map_err(|e| e.to_string())?.into_iter().collect();

    let mut args = Vec::new();
    for a in &sig.args {
        let t = match a.role {
            Role::Input => inputs.remove(&a.name).ok_or_else(|| format!("{}: no tensor input.{}", fixture.display(), a.name))?,
            Role::Param(_) => bound.remove(&a.name).expect("bind returns every parameter"),
            Role::State(_) => return Err(format!("{name}: the forward function has optimizer state %{}", a.name)),
        };
        args.push(t);
    }
    if !inputs.is_empty() {
        return Err(format!("{}: inputs the model does not have: {:?}", fixture.display(), inputs.keys().collect::<Vec<_>>()));
    }
    let names: BTreeSet<&str> = sig.outputs.iter().map(|(n, _)| n.as_str()).collect();
    if want32.keys().map(String::as_str).collect::<BTreeSet<_>>() != names {
        return Err(format!("{}: outputs {:?} in the file, the model has {names:?}", fixture.display(), want32.keys().collect::<Vec<_>>()));
    }

    let got = run(forward, &args).map_err(|e| format!("{name}: {e}"))?;
    let batch = args.iter().zip(&sig.args).find(|(_, a)| a.role == Role::Input).map_or(0, |(t, _)| t.shape()[0]);
    let mut log = Vec::new();
    let mut bad = Vec::new();
    for (out, (oname, _)) in got.iter().zip(&sig.outputs) {
        let w32 = &want32[oname];
        let w64 = want64.get(oname).ok_or_else(|| format!("{}: no tensor output_f64.{oname}", fixture.display()))?;
        if out.dtype() != w32.dtype() || out.shape() != w32.shape() {
            bad.push(format!("{name}.{oname}: dlc gives {}, PyTorch {}", out.describe(), w32.describe()));
            continue;
        }
        let (abs32, rel32) = errors(out, w32);
        let (abs64, rel64) = errors(out, w64);
        let (torch_abs, _) = errors(w32, w64);
        log.push(format!(
            "{name:<12} {oname:<7} {:<12} vs torch f32: abs {abs32:.2e} rel {rel32:.2e} | vs f64: abs {abs64:.2e} rel {rel64:.2e} (torch f32 vs f64: abs {torch_abs:.2e})",
            out.describe()
        ));
        if !close(out, w32) || !close(out, w64) {
            bad.push(format!(
                "{name}.{oname} (batch {batch}): max abs err {abs32:.3e} vs PyTorch f32, {abs64:.3e} vs f64 (tolerance {ATOL:e} + {RTOL:e}·|ref|)\n  dlc:   {:?}\n  torch: {:?}",
                out.to_f64_vec().iter().take(10).collect::<Vec<_>>(),
                w32.to_f64_vec().iter().take(10).collect::<Vec<_>>()
            ));
        }
    }
    if bad.is_empty() { Ok(log) } else { Err(bad.join("\n")) }
}

#[test]
fn every_example_matches_pytorch_forward() {
    let mut failures = Vec::new();
    for name in examples() {
        match check(&name) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{} example(s) differ from PyTorch:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_fixture_belongs_to_an_example() {
    // A fixture left behind by a renamed or removed example tests nothing.
    let dir = root().join("tests/fixtures/models");
    let examples = examples();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
        let p = entry.expect("directory entry").path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let stem = p.file_stem().expect("file stem").to_string_lossy().into_owned();
            if !examples.contains(&stem) {
                orphans.push(p.display().to_string());
            }
        }
    }
    assert!(orphans.is_empty(), "fixtures without an examples/<name>.dl: {orphans:?}");
}
