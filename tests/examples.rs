//! Every example model prints → parses → prints byte-identically, verifies, and
//! is accepted by upstream MLIR's `mlir-opt`. (Its IR snapshots live with the
//! frontend's tests.)

use dlc::{Program, SourceKind};
use std::path::Path;
use std::process::Command;

const EXAMPLES: &[&str] = &["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"];

fn compile(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.dl"));
    let p = Program::load(&path).unwrap_or_else(|e| panic!("{name}: {}", e.render(false)));
    dlc::ir::print::print_module(&p.module)
}

#[test]
fn example_ir_round_trips_exactly() {
    for e in EXAMPLES {
        let text = compile(e);
        let again = Program::from_source(&format!("{e}.mlir"), &text, SourceKind::Mlir).unwrap_or_else(|err| panic!("{e}: {}", err.render(false)));
        assert_eq!(dlc::ir::print::print_module(&again.module), text, "{e}: print → parse → print differs");
    }
}

/// `mlir-opt-19` (Debian's mlir-19-tools) or `mlir-opt`, whichever is installed.
fn mlir_opt() -> Option<&'static str> {
    ["mlir-opt-19", "mlir-opt"].into_iter().find(|t| Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn upstream_mlir_accepts_example_ir() {
    let Some(tool) = mlir_opt() else {
        assert!(std::env::var("DLC_REQUIRE_TOOLS").as_deref() != Ok("1"), "DLC_REQUIRE_TOOLS=1 but mlir-opt is not installed (apt-get install mlir-19-tools)");
        eprintln!("skipping: mlir-opt not installed (apt-get install mlir-19-tools)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("dlc-mlir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for e in EXAMPLES {
        let f = dir.join(format!("{e}.mlir"));
        std::fs::write(&f, compile(e)).unwrap();
        let o = Command::new(tool).arg("--allow-unregistered-dialect").arg(&f).output().unwrap();
        assert!(o.status.success(), "{tool} rejects {e}:\n{}", String::from_utf8_lossy(&o.stderr));
    }
}
