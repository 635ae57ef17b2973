//! The IR of every example's training program, as `dlc compile --emit grad` and
//! `--emit train` print it: snapshot-tested (review changes with `cargo insta
//! review`), exactly round-tripping through text, verified, and accepted by
//! upstream MLIR.

use dlc::train::config;
use dlc::{Program, SourceKind};
use std::path::Path;
use std::process::Command;

const EXAMPLES: &[&str] = &["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"];

fn load(name: &str) -> Program {
    Program::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.dl"))).unwrap_or_else(|e| panic!("{name}: {}", e.render(false)))
}

fn texts(name: &str) -> (String, String) {
    let p = load(name);
    let spec = p.compiled.as_ref().unwrap().model.train.as_ref().unwrap_or_else(|| panic!("{name} has no train block"));
    let f = p.forward().unwrap();
    let grad = config::gradient(f, spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    let prog = config::program(f, spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    let print = |functions| dlc::ir::print::print_module(&dlc::ir::Module { functions });
    (print(vec![grad]), print(vec![prog.step, prog.eval]))
}

#[test]
fn training_ir_snapshots() {
    for e in EXAMPLES {
        let (grad, train) = texts(e);
        insta::assert_snapshot!(format!("{e}.grad"), grad);
        insta::assert_snapshot!(format!("{e}.train"), train);
    }
}

#[test]
fn training_ir_round_trips_and_verifies() {
    for e in EXAMPLES {
        let (grad, train) = texts(e);
        for text in [grad, train] {
            let again = Program::from_source(&format!("{e}.mlir"), &text, SourceKind::Mlir).unwrap_or_else(|err| panic!("{e}: {}", err.render(false)));
            assert_eq!(dlc::ir::print::print_module(&again.module), text, "{e}: print → parse → print differs");
        }
    }
}

#[test]
fn upstream_mlir_accepts_training_ir() {
    let tool = ["mlir-opt-19", "mlir-opt"].into_iter().find(|t| Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(tool) = tool else {
        assert!(std::env::var("DLC_REQUIRE_TOOLS").as_deref() != Ok("1"), "DLC_REQUIRE_TOOLS=1 but mlir-opt is not installed (apt-get install mlir-19-tools)");
        eprintln!("skipping: mlir-opt not installed (apt-get install mlir-19-tools)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("dlc-mlir-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for e in EXAMPLES {
        let (grad, train) = texts(e);
        for (kind, text) in [("grad", grad), ("train", train)] {
            let f = dir.join(format!("{e}.{kind}.mlir"));
            std::fs::write(&f, text).unwrap();
            let o = Command::new(tool).arg("--allow-unregistered-dialect").arg(&f).output().unwrap();
            assert!(o.status.success(), "{tool} rejects {e} {kind}:\n{}", String::from_utf8_lossy(&o.stderr));
        }
    }
}
