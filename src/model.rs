//! The host API: compile a model, feed it tensors, read tensors, train it step
//! by step, load and save its weights.
//!
//! ```
//! use dlc::{Model, Options, Tensor};
//! let src = "model Affine {
//!     input x: f32[batch, 3]
//!     fc = Linear(3, 2)
//!     output y = fc(x)
//!     train { loss: mse(y, target), optimizer: sgd(lr: 0.1) }
//!     input target: f32[batch, 2]
//! }";
//! let mut model = Model::compile_str("affine.dl", src, &Options::default())?;
//! let x = Tensor::from_f32(&[4, 3], vec![0.5; 12])?;
//! let y = model.forward(&[("x", &x)])?;
//! assert_eq!(y[0].0, "y");
//! assert_eq!(y[0].1.shape(), &[4, 2]);
//!
//! let target = Tensor::from_f32(&[4, 2], vec![1.0; 8])?;
//! let mut trainer = model.trainer()?;
//! let first = trainer.step(&[("x", &x)], &target)?.loss;
//! for _ in 0..50 {
//!     trainer.step(&[("x", &x)], &target)?;
//! }
//! assert!(trainer.step(&[("x", &x)], &target)?.loss < first / 10.0);
//! model.set_params(trainer.params())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::Error;
use crate::program::{Program, SourceKind};
use crate::train::{Slot, config, slots};
use crate::{Tensor, io};
use dlc_ir::{Dim, Signature, TensorType};
use dlc_passes::train_step::TrainProgram;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// How a model is compiled and run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seeds parameter initialization.
    pub seed: u64,
    /// What runs the model (default [`Backend::Jit`]).
    pub backend: Backend,
    /// Worker threads for the JIT backend (0, the default: one per core).
    pub threads: usize,
}

/// What executes a model's functions.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The reference interpreter (`dlc_backends::run`): the oracle, slow.
    Interp,
    /// `dlc_cpu::CpuExecutable`: fused elementwise kernels (Cranelift),
    /// gemm contractions with fused epilogues, the interpreter for the rest.
    #[default]
    Jit,
}

/// One function ready to run on a [`Backend`]: compiled once, run many times.
#[derive(Debug)]
pub enum Runner {
    /// Interpreted on every call.
    Interp(dlc_ir::Function),
    /// Compiled for the CPU.
    Jit(Box<dlc_cpu::CpuExecutable>),
}

impl Runner {
    /// Prepares `f` for `backend`: for [`Backend::Jit`], lowers it to the
    /// structured-kernel level ([`crate::program::kernel_level`]) and
    /// compiles that to run with `threads` worker threads (0: one per core).
    pub fn new(backend: Backend, f: &dlc_ir::Function, threads: usize) -> Result<Runner, Error> {
        match backend {
            Backend::Interp => Ok(Runner::Interp(f.clone())),
            Backend::Jit => {
                let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
                let k = crate::program::kernel_level(f)?;
                let exe = dlc_cpu::CpuExecutable::compile(&k, &dlc_cpu::CpuOptions { threads }).map_err(cpu_error)?;
                Ok(Runner::Jit(Box::new(exe)))
            }
        }
    }

    /// Which backend runs it.
    pub fn backend(&self) -> Backend {
        match self {
            Runner::Interp(_) => Backend::Interp,
            Runner::Jit(_) => Backend::Jit,
        }
    }

    /// Runs the function on `args` (owned tensors or references).
    pub fn run<T: std::borrow::Borrow<Tensor> + Sync>(&self, args: &[T]) -> Result<Vec<Tensor>, Error> {
        match self {
            Runner::Interp(f) => Ok(dlc_backends::run(f, args)?),
            Runner::Jit(exe) => exe.run(args).map_err(cpu_error),
        }
    }

    /// Binds a model's parameters for every later run, when the backend can
    /// (the JIT: [`dlc_cpu::CpuExecutable::bind`], which packs matmul
    /// weights once); runs then take the other arguments only. Returns
    /// whether they were bound.
    pub fn bind(&mut self, params: &BTreeMap<String, Tensor>) -> Result<bool, Error> {
        match self {
            Runner::Interp(_) => Ok(false),
            Runner::Jit(exe) => {
                exe.bind(params.iter().map(|(n, t)| (n.clone(), t.clone())).collect()).map_err(cpu_error)?;
                Ok(true)
            }
        }
    }

    /// Checks `args` as a run would first (names, dtypes, shapes, one batch size).
    pub fn check(&self, args: &[&Tensor]) -> Result<(), Error> {
        match self {
            Runner::Interp(f) => {
                let typed: Vec<(String, &dlc_ir::Type)> =
                    f.args().iter().enumerate().map(|(i, &v)| (f.value(v).name.clone().unwrap_or_else(|| format!("arg{i}")), f.ty(v))).collect();
                dlc_backends::check_args(&f.name, &typed, args)?;
            }
            Runner::Jit(exe) => {
                exe.check_args(args).map_err(cpu_error)?;
            }
        }
        Ok(())
    }

    /// Like [`Runner::run`] with arguments the caller gives up: the JIT
    /// writes results over donated arguments' buffers where it can (see
    /// [`dlc_cpu::CpuExecutable::run_donated`]); with `profile`, also each
    /// compiled step's wall time.
    pub fn run_donated(&self, args: Vec<std::borrow::Cow<'_, Tensor>>, profile: bool) -> Result<(Vec<Tensor>, dlc_cpu::StepTimes), Error> {
        match self {
            Runner::Interp(f) => Ok((dlc_backends::run(f, &args)?, Vec::new())),
            Runner::Jit(exe) if profile => exe.run_donated_profiled(args).map_err(cpu_error),
            Runner::Jit(exe) => Ok((exe.run_donated(args).map_err(cpu_error)?, Vec::new())),
        }
    }

    /// Like [`Runner::run`], also returning each compiled step's description
    /// and wall time (empty for the interpreter, which has no steps).
    pub fn run_profiled<T: std::borrow::Borrow<Tensor> + Sync>(&self, args: &[T]) -> Result<(Vec<Tensor>, dlc_cpu::StepTimes), Error> {
        match self {
            Runner::Interp(f) => Ok((dlc_backends::run(f, args)?, Vec::new())),
            Runner::Jit(exe) => exe.run_profiled(args).map_err(cpu_error),
        }
    }
}

fn cpu_error(e: dlc_cpu::CpuError) -> Error {
    match e {
        dlc_cpu::CpuError::Interp(i) => Error::Run(i),
        other => Error::Input(format!("jit backend: {other}")),
    }
}


/// A compiled model with its parameters.
#[derive(Debug)]
pub struct Model {
    program: Program,
    sig: Signature,
    params: BTreeMap<String, Tensor>,
    backend: Backend,
    /// The forward pass; on the JIT with the parameters bound (weights
    /// packed once, at compile or load time), rebound when they change.
    forward: Runner,
    /// True when `forward` has the parameters bound.
    bound: bool,
    threads: usize,
}

fn describe(t: &TensorType) -> String {
    format!("{}[{}]", t.dtype, t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// Checks a tensor against an argument type; all `?` dims must agree on one batch size.
pub(crate) fn check_arg(what: &str, t: &Tensor, ty: &TensorType, batch: &mut Option<usize>) -> Result<(), Error> {
    let fits = t.dtype() == ty.dtype
        && t.rank() == ty.rank()
        && t.shape().iter().zip(&ty.shape).all(|(&n, d)| match d {
            Dim::Static(s) => *s == n as u64,
            Dim::Dynamic => *batch.get_or_insert(n) == n,
        });
    if !fits {
        return Err(Error::Input(format!("{what} is {}, the model expects {}{}", t.describe(), describe(ty), match batch {
            Some(b) => format!(" (with ? = {b})"),
            None => String::new(),
        })));
    }
    Ok(())
}

impl Model {
    /// Compiles a `.dl` file (or `.mlir` IR text) and initializes its parameters.
    pub fn compile_file(path: impl AsRef<Path>, options: &Options) -> Result<Model, Error> {
        Model::new(Program::load(path.as_ref())?, options)
    }

    /// Compiles `.dl` source text; `name` labels diagnostics.
    pub fn compile_str(name: &str, src: &str, options: &Options) -> Result<Model, Error> {
        Model::new(Program::from_source(name, src, SourceKind::Dl)?, options)
    }

    fn new(program: Program, options: &Options) -> Result<Model, Error> {
        let sig = program.signature()?;
        let params = dlc_backends::init_params(&sig, options.seed).into_iter().collect();
        let backend = options.backend;
        let forward = Runner::new(backend, program.forward()?, options.threads)?;
        let mut m = Model { program, sig, params, backend, forward, bound: false, threads: options.threads };
        m.rebind()?;
        Ok(m)
    }

    /// Binds the current parameters to the forward pass (see [`Runner::bind`]).
    fn rebind(&mut self) -> Result<(), Error> {
        self.bound = self.forward.bind(&self.params)?;
        Ok(())
    }

    /// Runs the forward pass (and trainers made afterwards) on `backend`
    /// (default [`Backend::Jit`]); compiles the forward function once.
    pub fn set_backend(&mut self, backend: Backend) -> Result<(), Error> {
        if backend != self.backend {
            self.forward = Runner::new(backend, self.program.forward()?, self.threads)?;
            self.backend = backend;
            self.rebind()?;
        }
        Ok(())
    }

    /// The backend that runs the model.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The model's inputs, parameters and outputs.
    pub fn signature(&self) -> &Signature {
        &self.sig
    }

    /// The compiled program (IR module, and for `.dl` sources the AST and train block).
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Runs the forward pass; inputs by name, outputs in declaration order.
    /// Names, dtypes and shapes are checked first; a mistake is an error.
    pub fn forward(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>, Error> {
        let given: BTreeMap<&str, &Tensor> = inputs.iter().copied().collect();
        if given.len() != inputs.len() {
            return Err(Error::Input("an input is given twice".into()));
        }
        let known: Vec<&str> = self.sig.inputs().map(|a| a.name.as_str()).collect();
        if let Some((n, _)) = inputs.iter().find(|(n, _)| !known.contains(n)) {
            return Err(Error::Input(format!("the model has no input '{n}' (its inputs: {})", known.join(", "))));
        }
        let mut batch = None;
        let mut args = Vec::with_capacity(self.sig.args.len());
        let unused = self.program.unused_inputs()?;
        // The batch size, from the first given input with a `?` dim, so that a
        // left-out input declared before it is sized right.
        let seen = self.sig.inputs().filter_map(|a| {
            let t = given.get(a.name.as_str())?;
            let i = a.ty.shape.iter().position(|d| *d == Dim::Dynamic)?;
            t.shape().get(i).copied()
        });
        let fill_batch = seen.into_iter().next().unwrap_or(1);
        // Borrowed, not copied: parameters can be megabytes.
        for a in &self.sig.args {
            let t: Cow<'_, Tensor> = match (&a.role, given.get(a.name.as_str())) {
                (dlc_ir::Role::Input, Some(t)) => Cow::Borrowed(*t),
                // An input no op reads (a training label) may be left out.
                (dlc_ir::Role::Input, None) if unused.contains(&a.name) => {
                    Cow::Owned(Tensor::zeros(&a.ty.shape.iter().map(|d| d.as_static().map_or(fill_batch, |n| n as usize)).collect::<Vec<_>>(), a.ty.dtype))
                }
                (dlc_ir::Role::Input, None) => return Err(Error::Input(format!("missing input '{}'", a.name))),
                _ => Cow::Borrowed(&self.params[&a.name]),
            };
            check_arg(&format!("input '{}'", a.name), &t, &a.ty, &mut batch)?;
            // Bound parameters are the runner's already.
            if !(self.bound && matches!(a.role, dlc_ir::Role::Param(_))) {
                args.push(t);
            }
        }
        let out = self.forward.run(&args)?;
        Ok(self.sig.outputs.iter().map(|(n, _)| n.clone()).zip(out).collect())
    }

    /// The parameters, by name.
    pub fn params(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Replaces parameters by name; each must exist and keep its dtype and shape.
    pub fn set_params(&mut self, params: impl IntoIterator<Item = (String, Tensor)>) -> Result<(), Error> {
        // All checked before any is replaced: a mistake changes nothing.
        let mut checked = Vec::new();
        for (name, t) in params {
            let arg = self.sig.params().find(|(a, _)| a.name == name).map(|(a, _)| a).ok_or_else(|| Error::Input(format!("the model has no parameter '{name}'")))?;
            check_arg(&format!("parameter '{name}'"), &t, &arg.ty, &mut None)?;
            checked.push((name, t));
        }
        self.params.extend(checked);
        self.rebind()
    }

    /// Loads every parameter from a safetensors file (names as in the IR).
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let p = path.as_ref();
        let bound = io::weights::bind(p, &self.sig, io::weights::read(p)?)?;
        self.params = bound.into_iter().collect();
        self.rebind()
    }

    /// Saves the parameters to a safetensors file, atomically.
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let list: Vec<(String, Tensor)> = self.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(io::weights::write(path.as_ref(), &list)?)
    }

    /// A step-by-step trainer for the model's `train` block, starting from the
    /// current parameters.
    pub fn trainer(&self) -> Result<StepTrainer, Error> {
        let spec = self
            .program
            .compiled
            .as_ref()
            .and_then(|c| c.model.train.as_ref())
            .ok_or_else(|| Error::Input(format!("{}: the model has no train block", self.program.name)))?;
        let mut program = config::program(self.program.forward()?, spec)?;
        crate::train::optimize(&mut program)?;
        let sig = Signature::of(&program.step).map_err(Error::Input)?;
        let slots = slots(&sig, &program)?;
        let params = program.params.iter().map(|n| self.params[n].clone()).collect();
        let state = dlc_backends::init_state(&sig, 0).into_iter().map(|(_, t)| t).collect();
        let runner = Runner::new(self.backend, &program.step, self.threads)?;
        Ok(StepTrainer { program, sig, slots, params, state, step: 0, runner })
    }
}

/// What one training step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepResult {
    /// The batch's loss before the update.
    pub loss: f64,
    /// Correct predictions in the batch, for classification losses.
    pub correct: Option<f64>,
}

/// Trains a model one batch at a time (see [`Model::trainer`]).
#[derive(Debug)]
pub struct StepTrainer {
    program: TrainProgram,
    sig: Signature,
    slots: Vec<Slot>,
    params: Vec<Tensor>,
    state: Vec<Tensor>,
    step: u64,
    runner: Runner,
}

impl StepTrainer {
    /// One optimizer step on a batch: the model's inputs by name, and the labels.
    pub fn step(&mut self, inputs: &[(&str, &Tensor)], label: &Tensor) -> Result<StepResult, Error> {
        Ok(self.step_profiled(inputs, label, false)?.0)
    }

    /// Like [`StepTrainer::step`]; with `profile`, also each compiled step's
    /// description and wall time (see [`Runner::run_profiled`]).
    pub fn step_profiled(&mut self, inputs: &[(&str, &Tensor)], label: &Tensor, profile: bool) -> Result<(StepResult, dlc_cpu::StepTimes), Error> {
        let dtype = self.params.first().map_or(dlc_ir::DType::F32, Tensor::dtype);
        let step = Tensor::from_f64_values(&[], &[(self.step + 1) as f64], dtype).map_err(|e| Error::Input(e.to_string()))?;
        // Check every argument before the parameters are lent to the run.
        let mut batch = None;
        let mut feature: Vec<Option<&Tensor>> = Vec::with_capacity(self.slots.len());
        for (slot, a) in self.slots.iter().zip(&self.sig.args) {
            let input = inputs.iter().find(|(n, _)| *n == a.name).map(|(_, t)| *t);
            feature.push(input.filter(|_| matches!(slot, Slot::Features)));
            let t = match slot {
                Slot::Features => input.ok_or_else(|| Error::Input(format!("missing input '{}'", a.name)))?,
                Slot::Label => label,
                Slot::Param(i) => self.params.get(*i).ok_or_else(|| Error::Input("the parameters were lost when an earlier step failed; load them from a checkpoint".into()))?,
                Slot::State(i) => &self.state[*i],
                Slot::Step => &step,
            };
            check_arg(&format!("'{}'", a.name), t, &a.ty, &mut batch)?;
        }
        let w = crate::train::Weights { params: &mut self.params, state: &mut self.state };
        let (loss, correct, times) = crate::train::donated_step(&self.runner, &self.slots, w, &feature, label, &step, profile)?;
        self.step += 1;
        Ok((StepResult { loss, correct }, times))
    }

    /// The current parameters, by name.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        self.program.params.iter().cloned().zip(self.params.iter().cloned()).collect()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }
}
