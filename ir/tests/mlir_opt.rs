//! Upstream MLIR reads everything dlc prints: each round-trip case goes
//! through `mlir-opt --allow-unregistered-dialect`, which must exit 0.
//!
//! Skipped with a message when no mlir-opt is installed, unless
//! `DLC_REQUIRE_TOOLS=1`, which turns a missing tool into a failure (CI sets
//! it where the tool is part of the image).

mod common;

use dlc_ir::print_module;
use std::path::PathBuf;
use std::process::Command;

/// The mlir-opt binaries that can be run here.
fn tools() -> Vec<String> {
    ["mlir-opt-19", "mlir-opt"]
        .into_iter()
        .filter(|t| Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()))
        .map(str::to_string)
        .collect()
}

#[test]
fn mlir_opt_accepts_every_printed_case() {
    let tools = tools();
    if tools.is_empty() {
        assert!(std::env::var("DLC_REQUIRE_TOOLS").as_deref() != Ok("1"), "DLC_REQUIRE_TOOLS=1 but neither mlir-opt-19 nor mlir-opt is on PATH");
        println!("skipped: neither mlir-opt-19 nor mlir-opt is on PATH");
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("dlc-ir-mlir-opt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for case in common::cases() {
        let path = dir.join(format!("{}.mlir", case.name));
        std::fs::write(&path, print_module(&case.module)).unwrap();
        for tool in &tools {
            let out = Command::new(tool).arg("--allow-unregistered-dialect").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{tool} rejects case '{}' ({}):\n{}",
                case.name,
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
