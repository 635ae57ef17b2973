//! `dlc run`: the forward pass, compiled for the CPU (`--backend jit`, the
//! default) or on the reference interpreter (`--backend interp`).

use clap::Args;
use dlc::io::{npy, weights};
use dlc::ir::{Dim, Signature, TensorType};
use dlc::{Error, Program, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// The model: a `.dl` file, or `.mlir` IR text.
    file: PathBuf,
    /// An input as NAME=FILE.npy; give one per model input.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE", value_parser = parse_input)]
    inputs: Vec<(String, PathBuf)>,
    /// Parameters from a safetensors file (names as in the IR, e.g. fc1.weight).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Seed for initializing parameters when no --weights are given.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write each output as DIR/NAME.npy (created if missing); without it, print a summary.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// What runs the model: the CPU JIT or the reference interpreter.
    #[arg(long, value_enum, default_value = "jit")]
    backend: dlc::model::Backend,
    /// Worker threads for the JIT backend (default: one per core).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    threads: usize,
}

fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => Err(format!("expected NAME=FILE.npy, got '{s}'")),
    }
}

/// `f32[?, 784]`.
fn describe_type(t: &TensorType) -> String {
    format!("{}[{}]", t.dtype, t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

fn describe_tensor(t: &Tensor) -> String {
    format!("{}[{}]", t.dtype(), t.shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// Matches the given files to the model's inputs by name and checks each one's
/// dtype and shape, so a mistake is reported against the file, not deep in the run.
/// Inputs in `optional` that are not given are fed zeros.
fn gather_inputs(sig: &Signature, given: &[(String, PathBuf)], optional: &[String]) -> Result<BTreeMap<String, Tensor>, Error> {
    let expected: Vec<&str> = sig.inputs().map(|a| a.name.as_str()).collect();
    let mut out = BTreeMap::new();
    for (name, path) in given {
        let Some(arg) = sig.inputs().find(|a| &a.name == name) else {
            return Err(Error::Input(format!("the model has no input '{name}' (its inputs: {})", expected.join(", "))));
        };
        if out.contains_key(name) {
            return Err(Error::Input(format!("input '{name}' is given twice")));
        }
        let t = npy::read(path)?;
        let fits = t.dtype() == arg.ty.dtype
            && t.shape().len() == arg.ty.rank()
            && t.shape().iter().zip(&arg.ty.shape).all(|(&n, d)| matches!(d, Dim::Dynamic) || d.as_static() == Some(n as u64));
        if !fits {
            return Err(Error::Input(format!(
                "{}: input '{name}' is {}, the model expects {}",
                path.display(),
                describe_tensor(&t),
                describe_type(&arg.ty)
            )));
        }
        out.insert(name.clone(), t);
    }
    let batch = out.values().next().and_then(|t| t.shape().first().copied()).unwrap_or(1);
    let absent: Vec<_> = sig.inputs().filter(|a| optional.contains(&a.name) && !out.contains_key(&a.name)).collect();
    for arg in absent {
        let shape: Vec<usize> = arg.ty.shape.iter().map(|d| d.as_static().map_or(batch, |n| n as usize)).collect();
        out.insert(arg.name.clone(), Tensor::zeros(&shape, arg.ty.dtype));
    }
    let missing: Vec<&str> = expected.iter().copied().filter(|n| !out.contains_key(*n)).collect();
    if !missing.is_empty() {
        return Err(Error::Input(format!("missing input(s): {} (give each as --input NAME=FILE.npy)", missing.join(", "))));
    }
    Ok(out)
}

pub fn run(a: &RunArgs) -> Result<(), Error> {
    let program = Program::load(&a.file)?;
    let sig = program.signature()?;
    let mut inputs = gather_inputs(&sig, &a.inputs, &program.unused_inputs()?)?;
    let mut params: BTreeMap<String, Tensor> = match &a.weights {
        Some(p) => weights::bind(p, &sig, weights::read(p)?)?.into_iter().collect(),
        None => dlc::backends::init_params(&sig, a.seed).into_iter().collect(),
    };
    let args: Vec<Tensor> = sig
        .args
        .iter()
        .map(|arg| inputs.remove(&arg.name).or_else(|| params.remove(&arg.name)).expect("every argument was bound above"))
        .collect();
    let outputs = dlc::model::Runner::new(a.backend, program.forward()?, a.threads)?.run(&args)?;
    match &a.output {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.display().to_string(), source })?;
            for ((name, _), t) in sig.outputs.iter().zip(&outputs) {
                npy::write(&dir.join(format!("{name}.npy")), t)?;
            }
        }
        None => {
            for ((name, _), t) in sig.outputs.iter().zip(&outputs) {
                println!("{name}: {}", summarize(t));
            }
        }
    }
    Ok(())
}

/// `f32[2, 10] = [0.1, 0.2, …]` with at most 8 leading elements.
fn summarize(t: &Tensor) -> String {
    let vals: Vec<String> = match t {
        Tensor::F32(a) => a.iter().take(8).map(|v| format!("{v}")).collect(),
        Tensor::F64(a) => a.iter().take(8).map(|v| format!("{v}")).collect(),
        Tensor::I32(a) => a.iter().take(8).map(|v| v.to_string()).collect(),
        Tensor::I64(a) => a.iter().take(8).map(|v| v.to_string()).collect(),
        Tensor::I1(a) => a.iter().take(8).map(|v| v.to_string()).collect(),
    };
    let n: usize = t.shape().iter().product();
    let more = if n > 8 { ", …" } else { "" };
    format!("{} = [{}{more}]", describe_tensor(t), vals.join(", "))
}

