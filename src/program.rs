//! A loaded program: a `.dl` model compiled to IR, or IR text parsed and
//! verified. Either way the rest of the pipeline sees only the IR module.

use crate::error::Error;
use dlc_ir::{Function, Module, Signature};
use std::path::Path;

/// What a source text is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The model language.
    Dl,
    /// IR text (`.mlir`).
    Mlir,
}

impl SourceKind {
    /// Picks the kind from a file extension: `.mlir` is IR, anything else `.dl`.
    pub fn of_path(path: &Path) -> SourceKind {
        match path.extension().and_then(|e| e.to_str()) {
            Some("mlir") => SourceKind::Mlir,
            _ => SourceKind::Dl,
        }
    }
}

/// A model ready for the backends.
#[derive(Debug)]
pub struct Program {
    /// Where it came from (for messages).
    pub name: String,
    /// The verified `dl` module.
    pub module: Module,
    /// The frontend's result (AST, model info, train block), for `.dl` sources.
    pub compiled: Option<dlc_frontend::Compiled>,
}

impl Program {
    /// Reads and compiles a file (`.mlir` as IR text, otherwise `.dl`).
    pub fn load(path: &Path) -> Result<Program, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Program::from_source(&path.display().to_string(), &text, SourceKind::of_path(path))
    }

    /// Compiles source text; `name` labels diagnostics.
    pub fn from_source(name: &str, text: &str, kind: SourceKind) -> Result<Program, Error> {
        match kind {
            SourceKind::Dl => {
                let compiled = dlc_frontend::compile(name, text).map_err(|d| Error::Diagnostics(Box::new(d)))?;
                let module = compiled.module.clone();
                Program::verified(name, module, Some(compiled))
            }
            SourceKind::Mlir => {
                let module = dlc_ir::parse::parse_module(text).map_err(|error| Error::IrParse { path: name.to_string(), error })?;
                Program::verified(name, module, None)
            }
        }
    }

    fn verified(name: &str, module: Module, compiled: Option<dlc_frontend::Compiled>) -> Result<Program, Error> {
        dlc_ir::verify::verify_module(&module).map_err(|errors| Error::Verify { path: name.to_string(), errors })?;
        Ok(Program { name: name.to_string(), module, compiled })
    }

    /// The model function: `@forward`, or the module's only function.
    pub fn forward(&self) -> Result<&Function, Error> {
        if let Some(f) = self.module.function("forward") {
            return Ok(f);
        }
        match self.module.functions.as_slice() {
            [f] => Ok(f),
            [] => Err(Error::Input(format!("{}: the module has no function", self.name))),
            _ => Err(Error::Input(format!("{}: the module has several functions and none is named @forward", self.name))),
        }
    }

    /// Inputs of the model function that no op reads (a label declared for
    /// training only): running the forward pass does not need them.
    pub fn unused_inputs(&self) -> Result<Vec<String>, Error> {
        let f = self.forward()?;
        let sig = self.signature()?;
        let used: std::collections::HashSet<_> = f.walk().iter().flat_map(|&o| f.op(o).operands.clone()).collect();
        Ok(sig
            .args
            .iter()
            .zip(f.args())
            .filter(|(a, v)| a.role == dlc_ir::Role::Input && !used.contains(v))
            .map(|(a, _)| a.name.clone())
            .collect())
    }

    /// The model function's inputs, parameters and outputs.
    pub fn signature(&self) -> Result<Signature, Error> {
        Signature::of(self.forward()?).map_err(|e| Error::Input(format!("{}: {e}", self.name)))
    }
}

/// The structured-kernel level of `f` (what `dlc compile --emit kernel`
/// prints and the JIT backend compiles): the default `dl` pipeline, the
/// e-graph pass, then lowering to kernels and fusion, checked by the verifier.
pub fn kernel_level(f: &Function) -> Result<Function, Error> {
    let mut k = optimized(f)?;
    dlc_passes::egraph::optimize(&mut k).map_err(|e| Error::Input(format!("@{}: equality saturation: {e}", f.name)))?;
    dlc_passes::to_kernels(&mut k).map_err(|e| Error::Input(format!("@{}: lowering to kernels: {e}", f.name)))?;
    dlc_ir::verify::verify_function(&k).map_err(|errors| Error::Verify { path: format!("@{} at the kernel level", f.name), errors })?;
    Ok(k)
}

/// `f` after the default `dl` pipeline.
fn optimized(f: &Function) -> Result<Function, Error> {
    let mut m = Module { functions: vec![f.clone()] };
    dlc_passes::PassManager::default_pipeline(dlc_passes::Options::default())
        .run(&mut m, &mut std::io::sink())
        .map_err(|e| Error::Input(format!("@{}: optimizing: {e}", f.name)))?;
    Ok(m.functions.pop().expect("one function"))
}

/// What the e-graph pass and kernel fusion do to `f` (after the default
/// pipeline): the rules that fired, e-graph size per stage, kernel costs
/// before and after fusion, and each kernel with the ops it computes
/// (`dlc compile --explain-fusion`).
pub fn explain_fusion(f: &Function) -> Result<(dlc_passes::egraph::Report, dlc_passes::kernel::FusionReport), Error> {
    let mut g = optimized(f)?;
    let report = dlc_passes::egraph::optimize(&mut g).map_err(|e| Error::Input(format!("@{}: equality saturation: {e}", f.name)))?;
    let fusion = dlc_passes::kernel::explain(&g).map_err(|e| Error::Input(format!("@{}: lowering to kernels: {e}", f.name)))?;
    Ok((report, fusion))
}
