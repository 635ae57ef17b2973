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
    kernel_level_with(f, KernelLevel::default())
}

/// Which optimizations [`kernel_level_with`] runs besides the default `dl`
/// pipeline and the lowering (all of them by default): for measuring what
/// each one does (`cargo bench --bench fusion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLevel {
    /// The e-graph pass at the `dl` level.
    pub egraph: bool,
    /// Kernel fusion after the lowering.
    pub fuse: bool,
}

impl Default for KernelLevel {
    fn default() -> Self {
        KernelLevel { egraph: true, fuse: true }
    }
}

/// [`kernel_level`] with the optimizations `level` names.
pub fn kernel_level_with(f: &Function, level: KernelLevel) -> Result<Function, Error> {
    let mut k = optimized(f)?;
    let plan = if level.egraph {
        Some(dlc_passes::egraph::optimize(&mut k).map_err(|e| Error::Input(format!("@{}: equality saturation: {e}", f.name)))?.plan)
    } else {
        None
    };
    dlc_passes::kernel::to_kernels_planned(&mut k, level.fuse, plan.as_ref()).map_err(|e| Error::Input(format!("@{}: lowering to kernels: {e}", f.name)))?;
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

/// What the e-graph pass and kernel fusion do to a function
/// (`dlc compile --explain-fusion`).
#[derive(Debug)]
pub struct FusionExplanation {
    /// The rules that fired and the e-graph's size and time per stage.
    pub egraph: dlc_passes::egraph::Report,
    /// Kernel costs before and after fusion, and each kernel with the ops it computes.
    pub fusion: dlc_passes::kernel::FusionReport,
    /// The CPU backend's memory plan at [`dlc_passes::kernel::cost::NOMINAL_BATCH`]
    /// for the function lowered one kernel per op, and fused.
    pub memory: [dlc_cpu::MemoryPlan; 2],
}

impl std::fmt::Display for FusionExplanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        let [a, b] = &self.memory;
        // `{:#}` leaves out the e-graph's wall times (for snapshots).
        if f.alternate() {
            write!(f, "e-graph {:#}kernels {}", self.egraph, self.fusion)?;
        } else {
            write!(f, "e-graph {}kernels {}", self.egraph, self.fusion)?;
        }
        writeln!(
            f,
            "memory at batch {}: arena {:.2} MiB -> {:.2}, peak live {:.2} MiB -> {:.2}, one buffer per output {:.2} MiB -> {:.2}, outside the arena {:.2} MiB -> {:.2}, outputs written in place {} -> {}",
            dlc_passes::kernel::cost::NOMINAL_BATCH,
            mib(a.arena_bytes),
            mib(b.arena_bytes),
            mib(a.peak_live_bytes),
            mib(b.peak_live_bytes),
            mib(a.naive_bytes),
            mib(b.naive_bytes),
            mib(a.outside_bytes),
            mib(b.outside_bytes),
            a.in_place,
            b.in_place
        )
    }
}

/// What the e-graph pass and kernel fusion do to `f` (after the default
/// pipeline): the rules that fired, e-graph size per stage, kernel costs
/// before and after fusion, each kernel with the ops it computes, and the
/// CPU backend's memory plan before and after fusion (its kernels are
/// compiled for that: the plan depends on which steps the JIT takes).
pub fn explain_fusion(f: &Function) -> Result<FusionExplanation, Error> {
    let mut g = optimized(f)?;
    let egraph = dlc_passes::egraph::optimize_explained(&mut g).map_err(|e| Error::Input(format!("@{}: equality saturation: {e}", f.name)))?;
    let lowering = |e: String| Error::Input(format!("@{}: lowering to kernels: {e}", f.name));
    let fusion = dlc_passes::kernel::explain_with(&g, &egraph.rules, Some(&egraph.plan)).map_err(lowering)?;
    let (lowered, fused) = dlc_passes::kernel::lowered_and_fused(&g, Some(&egraph.plan)).map_err(lowering)?;
    let batch = Some(dlc_passes::kernel::cost::NOMINAL_BATCH as usize);
    let plan = |k: &Function| -> Result<dlc_cpu::MemoryPlan, Error> {
        let exe = dlc_cpu::CpuExecutable::compile(k, &dlc_cpu::CpuOptions { threads: 1 }).map_err(|e| Error::Input(format!("@{}: jit backend: {e}", f.name)))?;
        Ok(exe.memory_plan(batch))
    };
    Ok(FusionExplanation { egraph, fusion, memory: [plan(&lowered)?, plan(&fused)?] })
}
