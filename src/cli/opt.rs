//! `dlc opt`: runs passes over IR text (or a lowered `.dl` model) and prints
//! the result, as `mlir-opt` does.
//!
//! The pass flags are generated from the declared pass list
//! ([`dlc::passes::PASSES`]): `--canonicalize --cse` runs those passes in that
//! order, and so do `--pass canonicalize --pass cse`; `--pipeline default`
//! stands for its stages where it is written. With no pass, the IR is only
//! parsed, verified and printed back.

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};
use dlc::passes::{Options, PassManager, registry};
use dlc::{Error, Program};
use std::path::PathBuf;

#[derive(Args)]
pub struct OptArgs {
    /// The input: `.mlir` IR text, or a `.dl` model (lowered as `dlc compile` does).
    file: PathBuf,
    #[command(flatten)]
    stages: Stages,
    /// Print the IR after every pass (on stderr).
    #[arg(long)]
    print_ir_after_all: bool,
    /// Print the IR after each pass that changed it (on stderr).
    #[arg(long)]
    print_ir_after_change: bool,
    /// Verify the IR after every pass and name the pass that broke it.
    #[arg(long)]
    verify_each: bool,
    /// Print the wall time of every pass (on stderr).
    #[arg(long)]
    time_passes: bool,
    /// Where a failing pass's input IR is written [default: the temp dir].
    #[arg(long, value_name = "DIR")]
    reproducer_dir: Option<PathBuf>,
    /// Write the IR to this file (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The passes to run, in command-line order: `--<pass>` flags (one per
/// declared pass), `--pass NAME` and `--pipeline NAME`, interleaved as given.
struct Stages(Vec<Stage>);

#[derive(Clone, Debug, PartialEq)]
enum Stage {
    Pass(String),
    Pipeline(String),
}

const PASS: &str = "pass";
const PIPELINE: &str = "pipeline";
const HEADING: &str = "Passes (run in the order given)";

impl Args for Stages {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        cmd = cmd
            .arg(Arg::new(PASS).long(PASS).value_name("NAME").action(ArgAction::Append).help_heading(HEADING).help("Run the declared pass NAME"))
            .arg(
                Arg::new(PIPELINE)
                    .long(PIPELINE)
                    .value_name("NAME")
                    .action(ArgAction::Append)
                    .help_heading(HEADING)
                    .help(format!("Run the passes of a named pipeline ({})", pipelines())),
            );
        for p in registry::PASSES {
            // Append with no value records every occurrence with its position.
            let flag = Arg::new(p.name).long(p.name).num_args(0).default_missing_value("").action(ArgAction::Append);
            cmd = cmd.arg(flag.help_heading(HEADING).help(capitalize(p.summary)));
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Stages {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut at: Vec<(usize, Stage)> = Vec::new();
        let mut values = |id: &str, stage: fn(String) -> Stage| {
            if let (Some(idx), Some(vals)) = (m.indices_of(id), m.get_many::<String>(id)) {
                at.extend(idx.zip(vals).map(|(i, v)| (i, stage(v.clone()))));
            }
        };
        values(PASS, Stage::Pass);
        values(PIPELINE, Stage::Pipeline);
        for p in registry::PASSES {
            at.extend(m.indices_of(p.name).into_iter().flatten().map(|i| (i, Stage::Pass(p.name.to_string()))));
        }
        at.sort_by_key(|(i, _)| *i);
        Ok(Stages(at.into_iter().map(|(_, s)| s).collect()))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

fn pipelines() -> String {
    registry::PIPELINES.iter().map(|(name, stages)| format!("{name}: {}", stages.join(", "))).collect::<Vec<_>>().join("; ")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl Stages {
    /// The pass names, pipelines expanded; an unknown name is an error that
    /// lists the declared ones.
    fn pass_names(&self) -> Result<Vec<&'static str>, Error> {
        let mut names = Vec::new();
        for s in &self.0 {
            let unknown = |e: registry::UnknownName| Error::Input(e.to_string());
            match s {
                Stage::Pass(n) => names.push(registry::lookup(n).map_err(unknown)?.name),
                Stage::Pipeline(n) => names.extend(registry::pipeline(n).map_err(unknown)?),
            }
        }
        Ok(names)
    }
}

pub fn opt(a: &OptArgs) -> Result<(), Error> {
    let names = a.stages.pass_names()?;
    let mut program = Program::load(&a.file)?;
    let options = Options {
        print_ir_after_all: a.print_ir_after_all,
        print_ir_after_change: a.print_ir_after_change,
        verify_each: a.verify_each,
        time_passes: a.time_passes,
        reproducer_dir: a.reproducer_dir.clone(),
    };
    let pm = PassManager::with_passes(options, &names).map_err(|e| Error::Input(e.to_string()))?;
    pm.run(&mut program.module, &mut std::io::stderr().lock()).map_err(|e| Error::Input(format!("{}: {e}", a.file.display())))?;
    super::emit(&dlc::ir::print::print_module(&program.module), a.output.as_deref())
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use clap::{CommandFactory, Parser};

    fn stages(args: &[&str]) -> Result<Vec<&'static str>, String> {
        let cli = Cli::try_parse_from(["dlc", "opt", "in.mlir"].iter().chain(args)).map_err(|e| e.to_string())?;
        let Command::Opt(a) = cli.command else { panic!("not opt") };
        a.stages.pass_names().map_err(|e| e.to_string())
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn passes_run_in_the_order_written_whatever_the_spelling() {
        assert_eq!(stages(&[]).unwrap(), Vec::<&str>::new());
        assert_eq!(stages(&["--dce", "--pass", "cse", "--canonicalize", "--dce"]).unwrap(), ["dce", "cse", "canonicalize", "dce"]);
        assert_eq!(stages(&["--fold", "--pipeline", "default", "--pass=cse"]).unwrap(), ["fold", "canonicalize", "cse", "fold", "dce", "cse"]);
    }

    #[test]
    fn unknown_names_suggest_a_declared_one() {
        let e = stages(&["--pass", "cs"]).unwrap_err();
        assert!(e.contains("unknown pass 'cs'; did you mean 'cse'?") && e.contains("available: canonicalize, cse, fold, dce"), "{e}");
        let e = stages(&["--pipeline", "defualt"]).unwrap_err();
        assert!(e.contains("did you mean 'default'"), "{e}");
        let e = stages(&["--csee"]).unwrap_err();
        assert!(e.contains("--cse"), "clap suggests the flag: {e}");
    }
}
