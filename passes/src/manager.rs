//! The pass manager: runs a pipeline of passes over every function of a
//! module, and owns the instrumentation around them.
//!
//! Instrumentation belongs here, not in the passes (as in MLIR's pass
//! manager): printing the IR after each pass or after each pass that changed
//! it, verifying after each pass and naming the pass that broke the IR,
//! timing each pass, and, when a pass fails, writing the IR it was given to a
//! reproducer file that `dlc opt FILE --pass NAME` replays. Everything it
//! reports goes to a caller-given writer (stderr in `dlc opt`), so tests can
//! read it.
//!
//! A pass fails when it returns an error ([`Pass::try_run`]), when it panics
//! (the panic is caught: a bug in a pass must still leave a reproducer), or,
//! with [`Options::verify_each`], when the IR after it does not verify.

use crate::Pass;
use crate::registry::{self, UnknownName};
use dlc_ir::{Module, VerifyError, print_module, verify_module};
use std::fmt;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the pass manager reports and checks around each pass.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Print the module after every pass.
    pub print_ir_after_all: bool,
    /// Print the module after each pass that changed it.
    pub print_ir_after_change: bool,
    /// Verify the module before the first pass and after every pass.
    pub verify_each: bool,
    /// Print a table of wall time per pass at the end.
    pub time_passes: bool,
    /// Where reproducers go; the system's temp dir when `None`.
    pub reproducer_dir: Option<PathBuf>,
}

/// A pipeline of passes and the instrumentation options around them.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    /// The instrumentation.
    pub options: Options,
}

/// What one stage of a pipeline did.
#[derive(Clone, Debug)]
pub struct StageReport {
    /// The pass's name.
    pub pass: &'static str,
    /// True when it changed some function.
    pub changed: bool,
    /// Wall time over all functions.
    pub time: Duration,
}

/// Why a pipeline stopped.
#[derive(Debug)]
pub enum PipelineError {
    /// With [`Options::verify_each`], the module did not verify before the first pass.
    InvalidInput(Vec<VerifyError>),
    /// A pass failed; its input IR was written as a reproducer.
    PassFailed(Box<PassFailure>),
}

/// A pass that failed, and where its input IR was saved.
#[derive(Debug)]
pub struct PassFailure {
    /// The pass's name.
    pub pass: &'static str,
    /// How it failed.
    pub cause: Cause,
    /// The reproducer file, or why it could not be written.
    pub reproducer: Result<PathBuf, String>,
}

/// How a pass failed.
#[derive(Debug)]
pub enum Cause {
    /// The pass returned an error on a function.
    Error {
        /// The function.
        function: String,
        /// The pass's message.
        message: String,
    },
    /// The pass panicked on a function (a bug in the pass).
    Panic {
        /// The function.
        function: String,
        /// The panic message.
        message: String,
    },
    /// The IR after the pass does not verify.
    Verify(Vec<VerifyError>),
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::InvalidInput(errors) => {
                write!(f, "the IR does not verify before the first pass:")?;
                errors.iter().try_for_each(|e| write!(f, "\n  {e}"))
            }
            PipelineError::PassFailed(p) => p.fmt(f),
        }
    }
}

impl fmt::Display for PassFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pass = self.pass;
        match &self.cause {
            Cause::Error { function, message } => write!(f, "pass '{pass}' failed on @{function}: {message}")?,
            Cause::Panic { function, message } => write!(f, "pass '{pass}' panicked on @{function} (a bug in the pass): {message}")?,
            Cause::Verify(errors) => {
                write!(f, "the IR after pass '{pass}' does not verify:")?;
                errors.iter().try_for_each(|e| write!(f, "\n  {e}"))?;
            }
        }
        match &self.reproducer {
            Ok(path) => write!(f, "\nnote: the IR '{pass}' was given is in {}; replay with `dlc opt {} --pass {pass} --verify-each`", path.display(), path.display()),
            Err(why) => write!(f, "\nnote: no reproducer was written: {why}"),
        }
    }
}

impl std::error::Error for PipelineError {}

impl PassManager {
    /// An empty pipeline.
    pub fn new(options: Options) -> Self {
        PassManager { passes: Vec::new(), options }
    }

    /// The pipeline of declared passes named in `names`, in order.
    pub fn with_passes(options: Options, names: &[&str]) -> Result<Self, UnknownName> {
        let mut pm = PassManager::new(options);
        for name in names {
            pm.add_named(name)?;
        }
        Ok(pm)
    }

    /// The default pipeline, [`registry::DEFAULT_PIPELINE`].
    pub fn default_pipeline(options: Options) -> Self {
        Self::with_passes(options, registry::DEFAULT_PIPELINE).expect("the default pipeline names declared passes")
    }

    /// Appends a pass.
    pub fn add(&mut self, pass: Box<dyn Pass>) -> &mut Self {
        self.passes.push(pass);
        self
    }

    /// Appends the declared pass named `name`.
    pub fn add_named(&mut self, name: &str) -> Result<&mut Self, UnknownName> {
        let info = registry::lookup(name)?;
        Ok(self.add((info.create)()))
    }

    /// The stages' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass, in order, over every function of `module`, writing
    /// instrumentation output to `log`. On failure the module is left as the
    /// failing pass left it; the reproducer holds the IR it was given.
    pub fn run(&self, module: &mut Module, log: &mut dyn Write) -> Result<Vec<StageReport>, PipelineError> {
        if self.options.verify_each {
            verify_module(module).map_err(PipelineError::InvalidInput)?;
        }
        let mut stages = Vec::with_capacity(self.passes.len());
        let result = self.passes.iter().try_for_each(|pass| {
            let stage = self.run_one(pass.as_ref(), module, log)?;
            stages.push(stage);
            Ok(())
        });
        if self.options.time_passes {
            write_timings(&stages, log);
        }
        result.map(|()| stages)
    }

    fn run_one(&self, pass: &dyn Pass, module: &mut Module, log: &mut dyn Write) -> Result<StageReport, PipelineError> {
        let input = module.clone();
        let start = Instant::now();
        let mut changed = false;
        for f in &mut module.functions {
            let fail = |cause| self.failure(pass.name(), cause, &input);
            match catch_unwind(AssertUnwindSafe(|| pass.try_run(f))) {
                Ok(Ok(c)) => changed |= c,
                Ok(Err(message)) => return Err(fail(Cause::Error { function: f.name.clone(), message })),
                Err(panic) => return Err(fail(Cause::Panic { function: f.name.clone(), message: panic_message(panic.as_ref()) })),
            }
        }
        let time = start.elapsed();
        if self.options.verify_each
            && let Err(errors) = verify_module(module)
        {
            return Err(self.failure(pass.name(), Cause::Verify(errors), &input));
        }
        if self.options.print_ir_after_all || (self.options.print_ir_after_change && changed) {
            let note = if changed { "" } else { " (no change)" };
            let _ = write!(log, "// -----// IR Dump After {}{note} //----- //\n{}\n", pass.name(), print_module(module));
        }
        Ok(StageReport { pass: pass.name(), changed, time })
    }

    fn failure(&self, pass: &'static str, cause: Cause, input: &Module) -> PipelineError {
        let dir = self.options.reproducer_dir.clone().unwrap_or_else(std::env::temp_dir);
        let reproducer = write_reproducer(&dir, pass, input);
        PipelineError::PassFailed(Box::new(PassFailure { pass, cause, reproducer }))
    }
}

/// Writes `<dir>/<pass>.reproducer.mlir`: the module the pass was given,
/// under a comment saying how to replay it.
fn write_reproducer(dir: &Path, pass: &str, input: &Module) -> Result<PathBuf, String> {
    let path = dir.join(format!("{pass}.reproducer.mlir"));
    let text = format!(
        "// dlc reproducer: the input of pass '{pass}', which failed on it.\n// replay: dlc opt {} --pass {pass} --verify-each\n{}",
        path.display(),
        print_module(input)
    );
    std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The `time_passes` table: wall time per stage, its share, and the total.
fn write_timings(stages: &[StageReport], log: &mut dyn Write) {
    let total: Duration = stages.iter().map(|s| s.time).sum();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let share = |d: Duration| if total.is_zero() { 0.0 } else { 100.0 * d.as_secs_f64() / total.as_secs_f64() };
    let _ = writeln!(log, "===- pass execution timing (wall clock) -===");
    let _ = writeln!(log, "{:>12}  {:>6}  pass", "time (ms)", "share");
    for s in stages {
        let note = if s.changed { "" } else { "  (no change)" };
        let _ = writeln!(log, "{:>12.3}  {:>5.1}%  {}{note}", ms(s.time), share(s.time), s.pass);
    }
    let _ = writeln!(log, "{:>12.3}  {:>5.1}%  total", ms(total), share(total));
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Attrs, Builder, DType, Function, OpKind, TensorType};

    /// `@f(x) = neg(neg(x * 1))` plus an unused exp, and an untouched `@g`.
    fn module() -> Module {
        let mut f = Function::new("f");
        let x = f.add_arg(TensorType::fixed(&[2], DType::F32).into(), Some("x"), Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let one = b.scalar(1.0, DType::F32);
        let m = b.op(OpKind::Mul, &[x, one], Attrs::new()).unwrap();
        let n = b.op(OpKind::Neg, &[m], Attrs::new()).unwrap();
        let nn = b.op(OpKind::Neg, &[n], Attrs::new()).unwrap();
        b.op(OpKind::Exp, &[x], Attrs::new()).unwrap();
        b.ret(&[nn]);
        let mut g = Function::new("g");
        let y = g.add_arg(TensorType::fixed(&[2], DType::F32).into(), Some("y"), Attrs::new());
        Builder::at_entry(&mut g).ret(&[y]);
        Module { functions: vec![f, g] }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dlc-pm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A pass that breaks the IR: it removes the first op, whose result is used.
    struct Breaker;
    impl Pass for Breaker {
        fn name(&self) -> &'static str {
            "breaker"
        }
        fn summary(&self) -> &'static str {
            "removes the first op"
        }
        fn run(&self, f: &mut Function) -> bool {
            if let Some(&o) = f.body_ops().first().filter(|_| f.body_ops().len() > 1) {
                f.remove_op(o);
                return true;
            }
            false
        }
    }

    /// A pass that reports an error.
    struct Failing;
    impl Pass for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn summary(&self) -> &'static str {
            "always fails"
        }
        fn run(&self, _: &mut Function) -> bool {
            false
        }
        fn try_run(&self, _: &mut Function) -> Result<bool, String> {
            Err("nothing works".into())
        }
    }

    /// A pass with a bug.
    struct Panicking;
    impl Pass for Panicking {
        fn name(&self) -> &'static str {
            "panicking"
        }
        fn summary(&self) -> &'static str {
            "panics"
        }
        fn run(&self, _: &mut Function) -> bool {
            panic!("index out of bounds")
        }
    }

    #[test]
    fn the_default_pipeline_cleans_up_and_reports_changes() {
        let mut m = module();
        let pm = PassManager::default_pipeline(Options { verify_each: true, ..Options::default() });
        assert_eq!(pm.names(), registry::DEFAULT_PIPELINE);
        let stages = pm.run(&mut m, &mut Vec::new()).unwrap();
        let changed: Vec<_> = stages.iter().map(|s| (s.pass, s.changed)).collect();
        assert_eq!(changed, [("canonicalize", true), ("cse", false), ("fold", false), ("dce", true)]);
        let f = &m.functions[0];
        assert_eq!(f.walk().len(), 1, "only the return is left:\n{}", print_module(&m));
        assert_eq!(f.returned_values(), f.args());
    }

    #[test]
    fn print_after_change_prints_only_changing_passes() {
        let mut log = Vec::new();
        let pm = PassManager::default_pipeline(Options { print_ir_after_change: true, ..Options::default() });
        pm.run(&mut module(), &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        let headers: Vec<&str> = log.lines().filter(|l| l.starts_with("// -----// IR Dump")).collect();
        assert_eq!(headers, ["// -----// IR Dump After canonicalize //----- //", "// -----// IR Dump After dce //----- //"]);
        assert_eq!(log.matches("module {").count(), 2);

        let mut log = Vec::new();
        let pm = PassManager::default_pipeline(Options { print_ir_after_all: true, ..Options::default() });
        pm.run(&mut module(), &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(log.contains("// -----// IR Dump After cse (no change) //----- //"), "{log}");
        assert_eq!(log.matches("module {").count(), 4);
    }

    #[test]
    fn time_passes_prints_one_row_per_stage() {
        let mut log = Vec::new();
        let pm = PassManager::default_pipeline(Options { time_passes: true, ..Options::default() });
        pm.run(&mut module(), &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        let rows: Vec<&str> = log.lines().skip(2).map(|l| l.split_whitespace().nth(2).unwrap_or("")).collect();
        assert_eq!(rows, ["canonicalize", "cse", "fold", "dce", "total"], "{log}");
        assert!(log.lines().last().unwrap().ends_with("total"), "{log}");
    }

    #[test]
    fn verify_each_names_the_pass_that_broke_the_ir_and_writes_its_input() {
        let dir = temp_dir("verify");
        let mut pm = PassManager::new(Options { verify_each: true, reproducer_dir: Some(dir.clone()), ..Options::default() });
        pm.add_named("cse").unwrap().add(Box::new(Breaker)).add_named("dce").unwrap();
        let before = print_module(&module());
        let mut m = module();
        let err = pm.run(&mut m, &mut Vec::new()).unwrap_err();
        let PipelineError::PassFailed(failure) = &err else { panic!("{err}") };
        assert_eq!(failure.pass, "breaker");
        assert!(matches!(&failure.cause, Cause::Verify(e) if e[0].message.contains("is not defined in this function")), "{err}");
        let path = dir.join("breaker.reproducer.mlir");
        assert_eq!(failure.reproducer.as_ref().unwrap(), &path);
        assert!(err.to_string().contains(&format!("{}", path.display())), "{err}");
        // The reproducer is the IR breaker was given (cse changed nothing), and it parses back.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("// dlc reproducer: the input of pass 'breaker'"), "{text}");
        assert_eq!(print_module(&dlc_ir::parse_module(&text).unwrap()), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_and_panics_in_a_pass_leave_a_reproducer() {
        let dir = temp_dir("fail");
        for (pass, expect) in [(Box::new(Failing) as Box<dyn Pass>, "pass 'failing' failed on @f: nothing works"), (Box::new(Panicking), "pass 'panicking' panicked on @f")] {
            let mut pm = PassManager::new(Options { reproducer_dir: Some(dir.clone()), ..Options::default() });
            pm.add(pass);
            let err = pm.run(&mut module(), &mut Vec::new()).unwrap_err().to_string();
            assert!(err.starts_with(expect), "{err}");
            assert!(err.contains("note: the IR"), "{err}");
        }
        assert!(dir.join("failing.reproducer.mlir").exists() && dir.join("panicking.reproducer.mlir").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_input_is_not_blamed_on_a_pass() {
        let mut m = module();
        let f = &mut m.functions[0];
        let first = f.body_ops()[0];
        f.remove_op(first);
        let pm = PassManager::default_pipeline(Options { verify_each: true, ..Options::default() });
        let err = pm.run(&mut m, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, PipelineError::InvalidInput(_)), "{err}");
    }

    #[test]
    fn unknown_pass_names_are_errors() {
        let e = PassManager::with_passes(Options::default(), &["cse", "folds"]).err().unwrap();
        assert_eq!(e.suggestion, Some("fold"));
    }
}
