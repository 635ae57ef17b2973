//! Command-line interface: argument definitions and dispatch. Each command
//! lives in its own file; all of them return [`dlc::Error`] for anything the
//! user can fix, which is printed on stderr with exit code 1.

mod compile;
mod opt;
mod run;
mod train;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

/// dlc, a deep-learning compiler: check, compile and run `.dl` models.
#[derive(Parser)]
#[command(name = "dlc", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a model and print its IR (or write it with -o).
    Compile(compile::CompileArgs),
    /// Check a model: exit 0 and print nothing when it is valid; print diagnostics and exit 1 when not.
    Check(compile::CheckArgs),
    /// Run passes over IR (or a model) and print the result.
    Opt(opt::OptArgs),
    /// Run a model's forward pass on inputs from .npy files.
    Run(run::RunArgs),
    /// Train a model as its train block says (flags override it).
    Train(train::TrainArgs),
    /// Evaluate trained weights: loss and accuracy on data.
    Eval(train::EvalArgs),
}

/// Parses arguments, runs the command, prints errors, picks the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(a) => compile::compile(&a),
        Command::Check(a) => compile::check(&a),
        Command::Opt(a) => opt::opt(&a),
        Command::Run(a) => run::run(&a),
        Command::Train(a) => train::train(&a),
        Command::Eval(a) => train::eval(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", e.render(use_color()));
            ExitCode::from(1)
        }
    }
}

/// Color on stderr only for a terminal, and never when `NO_COLOR` is set.
fn use_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A panic is a bug in dlc, never the user's fault: say so in one paragraph
/// instead of a backtrace, and exit with 101.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal compiler error: {msg}{at}\nnote: this is a bug in dlc; please report it with the input that caused it");
    }));
}

/// Writes `text` to `path` atomically, or to stdout when there is no path.
fn emit(text: &str, path: Option<&std::path::Path>) -> Result<(), dlc::Error> {
    match path {
        Some(p) => dlc::io::write_atomic(p, text.as_bytes()).map_err(|source| dlc::Error::Write { path: p.display().to_string(), source }),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
