//! `dlc compile` and `dlc check`.

use clap::{Args, ValueEnum};
use dlc::{Error, Program, SourceKind};
use std::path::PathBuf;

/// What `dlc compile` prints.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The parsed syntax tree of a `.dl` file.
    Ast,
    /// The `dl` dialect IR (MLIR generic syntax).
    Dl,
    /// The loss and its gradient with respect to every parameter (after autodiff).
    Grad,
    /// The whole training step: forward, loss, gradient and optimizer update.
    Train,
    /// The forward pass as structured kernels (after the default pipeline,
    /// lowering and fusion): what the JIT backend compiles.
    Kernel,
    /// The training step and eval functions as structured kernels.
    TrainKernel,
}

#[derive(Args)]
pub struct CompileArgs {
    /// The model: a `.dl` file, or `.mlir` IR text.
    file: PathBuf,
    /// The stage to print.
    #[arg(long, value_enum, default_value_t = Emit::Dl)]
    emit: Emit,
    /// Write the output to this file (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Instead of IR, report what kernel fusion does to the forward pass (and
    /// to the training step, for a model with a train block): each kernel
    /// with the ops it fuses, bytes moved and FLOPs before and after.
    #[arg(long, conflicts_with = "emit")]
    explain_fusion: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The model: a `.dl` file, or `.mlir` IR text.
    file: PathBuf,
}

pub fn compile(a: &CompileArgs) -> Result<(), Error> {
    if a.emit == Emit::Ast && SourceKind::of_path(&a.file) == SourceKind::Mlir {
        return Err(Error::Input(format!("{}: --emit ast needs a .dl file; IR text has no syntax tree", a.file.display())));
    }
    let program = Program::load(&a.file)?;
    let train_spec = || {
        program.compiled.as_ref().and_then(|c| c.model.train.as_ref()).ok_or_else(|| {
            Error::Input(format!("{}: --emit grad, train and train-kernel need a .dl model with a train block", a.file.display()))
        })
    };
    let module = |functions: Vec<dlc_ir::Function>| dlc_ir::print::print_module(&dlc_ir::Module { functions });
    if a.explain_fusion {
        let mut functions = vec![program.forward()?.clone()];
        if let Ok(spec) = train_spec() {
            functions.push(dlc::train::config::program(program.forward()?, spec)?.step);
        }
        let mut text = String::new();
        for f in &functions {
            text.push_str(&format!("{}\n", dlc::program::explain_fusion(f)?));
        }
        return super::emit(&text, a.output.as_deref());
    }
    let text = match a.emit {
        Emit::Ast => dlc_frontend::dump_ast(&program.compiled.as_ref().expect("a .dl source keeps its AST").ast),
        Emit::Dl => dlc_ir::print::print_module(&program.module),
        Emit::Grad => module(vec![dlc::train::config::gradient(program.forward()?, train_spec()?)?]),
        Emit::Train => {
            let p = dlc::train::config::program(program.forward()?, train_spec()?)?;
            module(vec![p.step, p.eval])
        }
        Emit::Kernel => module(vec![dlc::program::kernel_level(program.forward()?)?]),
        Emit::TrainKernel => {
            let p = dlc::train::config::program(program.forward()?, train_spec()?)?;
            module(vec![dlc::program::kernel_level(&p.step)?, dlc::program::kernel_level(&p.eval)?])
        }
    };
    super::emit(&text, a.output.as_deref())
}

pub fn check(a: &CheckArgs) -> Result<(), Error> {
    Program::load(&a.file).map(|_| ())
}
