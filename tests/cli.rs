//! The `dlc` command as a user meets it: exit codes, stdout/stderr, files
//! written or left alone, and one clear line for every kind of bad input.

use dlc::Tensor;
use dlc::io::{npy, weights};
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the dlc binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A user error: exit code 1, a message on stderr, no panic or backtrace.
fn assert_user_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "expected '{needle}' in stderr:\n{err}");
    assert!(!err.contains("panicked") && !err.contains("internal compiler error") && !err.contains("RUST_BACKTRACE"), "{err}");
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dlc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const EXAMPLES: &[&str] = &["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"];

#[test]
fn check_is_silent_and_succeeds_on_every_example() {
    for e in EXAMPLES {
        let o = dlc(&["check", &format!("examples/{e}.dl")]);
        assert_eq!(o.status.code(), Some(0), "{e}: {}", stderr(&o));
        assert_eq!(stdout(&o), "", "{e}");
    }
}

#[test]
fn check_reports_diagnostics_with_location_and_exit_1() {
    let d = temp_dir("check");
    let f = d.join("bad.dl");
    std::fs::write(&f, "model M {\n    input x: f32[batch, 4]\n    output y = relu(xx)\n}\n").unwrap();
    let o = dlc(&["check", s(&f)]);
    assert_user_error(&o, "bad.dl:3:");
    assert!(stderr(&o).contains("xx"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn compile_prints_ir_and_writes_it_atomically() {
    let o = dlc(&["compile", "examples/mnist_cnn.dl"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ir = stdout(&o);
    assert!(ir.starts_with("module {") && ir.contains("func.func @forward") && ir.contains("\"dl.conv2d\""), "{ir}");

    let d = temp_dir("compile");
    let out = d.join("cnn.mlir");
    let o = dlc(&["compile", "examples/mnist_cnn.dl", "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), ir);
    assert_eq!(stdout(&o), "");

    // The written IR compiles again, to the same text.
    let o = dlc(&["compile", s(&out)]);
    assert_eq!(stdout(&o), ir);

    // A failing compile leaves the previous output untouched.
    let bad = d.join("bad.dl");
    std::fs::write(&bad, "model M { input x: f32[batch, 4] output y = x @ }").unwrap();
    let o = dlc(&["compile", s(&bad), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), ir);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "no temporary file is left behind");
}

#[test]
fn compile_emits_the_ast_for_dl_only() {
    let o = dlc(&["compile", "examples/fcn.dl", "--emit", "ast"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).is_empty());
    let d = temp_dir("ast");
    let ir = d.join("m.mlir");
    std::fs::write(&ir, stdout(&dlc(&["compile", "examples/fcn.dl"]))).unwrap();
    assert_user_error(&dlc(&["compile", s(&ir), "--emit", "ast"]), "--emit ast needs a .dl file");
}

#[test]
fn missing_and_unreadable_files_are_named() {
    assert_user_error(&dlc(&["check", "no/such/model.dl"]), "no/such/model.dl: cannot read");
    assert_user_error(&dlc(&["compile", "no/such/model.mlir"]), "no/such/model.mlir: cannot read");
}

#[test]
fn bad_ir_text_gets_a_location() {
    let d = temp_dir("badir");
    let f = d.join("bad.mlir");
    std::fs::write(&f, "module {\n  func.func @forward() {\n    %0 = \"dl.nope\"() : () -> tensor<f32>\n  }\n}\n").unwrap();
    assert_user_error(&dlc(&["check", s(&f)]), "bad.mlir:3:");
}

fn f32_tensor(shape: &[usize], fill: impl Fn(usize) -> f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(fill).collect()).unwrap())
}

#[test]
fn run_writes_outputs_and_follows_weights_and_seed() {
    let d = temp_dir("run");
    let x = d.join("x.npy");
    npy::write(&x, &f32_tensor(&[3, 10], |i| (i as f32 * 0.37).sin())).unwrap();
    let out = d.join("out");
    let o = dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&x)), "-o", s(&out), "--seed", "7"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let y = npy::read(&out.join("y.npy")).unwrap();
    assert_eq!(y.shape(), &[3, 1]);

    // The same seed gives the same bytes; another seed other ones.
    let out2 = d.join("out2");
    dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&x)), "-o", s(&out2), "--seed", "7"]);
    assert_eq!(std::fs::read(out.join("y.npy")).unwrap(), std::fs::read(out2.join("y.npy")).unwrap());
    let out3 = d.join("out3");
    dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&x)), "-o", s(&out3), "--seed", "8"]);
    assert_ne!(std::fs::read(out.join("y.npy")).unwrap(), std::fs::read(out3.join("y.npy")).unwrap());

    // Weights of all zeros give a zero output: the file, not the seed, decides.
    let program = dlc::Program::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fcn.dl")).unwrap();
    let sig = program.signature().unwrap();
    let zeros: Vec<(String, Tensor)> = sig
        .params()
        .map(|(a, _)| (a.name.clone(), Tensor::zeros(&a.ty.shape.iter().map(|d| d.as_static().unwrap() as usize).collect::<Vec<_>>(), a.ty.dtype)))
        .collect();
    let w = d.join("w.safetensors");
    weights::write(&w, &zeros).unwrap();
    let o = dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&x)), "--weights", s(&w), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    match npy::read(&out.join("y.npy")).unwrap() {
        Tensor::F32(a) => assert!(a.iter().all(|&v| v == 0.0)),
        other => panic!("unexpected dtype {:?}", other.dtype()),
    }

    // Without -o, a summary goes to stdout.
    let o = dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&x))]);
    assert!(stdout(&o).starts_with("y: f32[3, 1] = ["), "{}", stdout(&o));
}

#[test]
fn run_rejects_bad_inputs_and_weights_clearly() {
    let d = temp_dir("runbad");
    let good = d.join("x.npy");
    npy::write(&good, &f32_tensor(&[2, 10], |_| 1.0)).unwrap();
    let x = format!("x={}", s(&good));

    let wrong_shape = d.join("shape.npy");
    npy::write(&wrong_shape, &f32_tensor(&[2, 11], |_| 1.0)).unwrap();
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&wrong_shape))]), "is f32[2, 11], the model expects f32[?, 10]");

    let wrong_dtype = d.join("dtype.npy");
    npy::write(&wrong_dtype, &Tensor::I64(ArrayD::zeros(IxDyn(&[2, 10])))).unwrap();
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&wrong_dtype))]), "is i64[2, 10]");

    let truncated = d.join("trunc.npy");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&truncated))]), "trunc.npy: data is truncated");

    let garbage = d.join("garbage.npy");
    std::fs::write(&garbage, b"not an array").unwrap();
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", &format!("x={}", s(&garbage))]), "garbage.npy: not a valid .npy file");

    assert_user_error(&dlc(&["run", "examples/fcn.dl"]), "missing input(s): x");
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", &x, "--input", "z=a.npy"]), "the model has no input 'z'");
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", "x=missing.npy"]), "missing.npy: cannot read");

    let bad_w = d.join("w.safetensors");
    std::fs::write(&bad_w, b"\x10\0\0\0\0\0\0\0{\"a\": 1}").unwrap();
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", &x, "--weights", s(&bad_w)]), "w.safetensors: not a valid safetensors file");

    let other = d.join("other.safetensors");
    weights::write(&other, &[("fc9.weight".into(), f32_tensor(&[2], |_| 0.0))]).unwrap();
    assert_user_error(&dlc(&["run", "examples/fcn.dl", "--input", &x, "--weights", s(&other)]), "missing parameter(s)");
}

#[test]
fn every_command_has_help() {
    for cmd in [vec!["--help"], vec!["compile", "--help"], vec!["check", "--help"], vec!["run", "--help"]] {
        let o = dlc(&cmd);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout(&o).contains("Usage: dlc"), "{}", stdout(&o));
    }
    // A usage mistake is clap's exit code 2, with the usage line.
    let o = dlc(&["compile"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Usage:"));
}

#[test]
fn compile_emits_the_kernel_level_and_explains_fusion() {
    let o = dlc(&["compile", "examples/mlp.dl", "--emit", "kernel"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("\"kernel.matmul\"(%x, %fc1.weight, %fc1.bias) {relu = true, transpose_b = true}") && out.contains("\"kernel.generic\""), "{out}");
    let o = dlc(&["compile", "examples/mlp.dl", "--emit", "train-kernel"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("func.func @train_step") && out.contains("func.func @eval"), "{out}");
    let o = dlc(&["compile", "examples/mlp.dl", "--explain-fusion"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.starts_with("e-graph @forward:") && out.contains("kernels @forward: 8 kernels -> 8") && out.contains("fired: matmul_bias ×3, matmul_bias_relu ×2") && out.contains("@train_step:") && out.contains("<- matmul add (bias) relu"), "{out}");
    // Flags that contradict each other are a usage error.
    assert_eq!(dlc(&["compile", "examples/mlp.dl", "--explain-fusion", "--emit", "dl"]).status.code(), Some(2));
    // A model without a train block at the kernel level of its training step: exit 1, a reason.
    let ir = std::env::temp_dir().join(format!("dlc-cli-tk-{}.mlir", std::process::id()));
    std::fs::write(&ir, String::from_utf8_lossy(&dlc(&["compile", "examples/mlp.dl"]).stdout).as_bytes()).unwrap();
    let o = dlc(&["compile", ir.to_str().unwrap(), "--emit", "train-kernel"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("need a .dl model with a train block"));
}
