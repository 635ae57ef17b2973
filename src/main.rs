//! The `dlc` command.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::install_panic_hook();
    cli::main()
}
