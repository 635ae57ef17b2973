//! Training runs: a model, a loss and an optimizer compiled into one
//! `@train_step` function (see `dlc_passes::train_step`), executed batch by
//! batch, with held-out evaluation, metrics, checkpoints and resumption.

pub mod checkpoint;
pub mod config;
pub mod report;

use crate::data::{self, DataSpec, Dataset, split};
use crate::error::Error;
use crate::model::{Backend, Runner};
use crate::Tensor;
use checkpoint::{Checkpoint, Position};
use dlc_ir::{DType, Function, Signature, TensorType};
use dlc_passes::train::{LossSpec, Optimizer};
use dlc_passes::train_step::TrainProgram;
use report::EpochMetrics;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How the data is split into training and held-out rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Split {
    /// No held-out set.
    None,
    /// Hold out this fraction of the rows (seeded shuffle), per class when stratified.
    Fraction {
        /// The held-out fraction.
        val: f64,
        /// Hold out the same fraction of every class.
        stratify: bool,
    },
    /// Row indices from two integer `.npy` files (train, held-out).
    Indices(PathBuf, PathBuf),
}

/// Everything a run needs besides the model.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The model output the loss reads.
    pub output: String,
    /// The model input that holds the label, when the model declares one;
    /// otherwise the label is the data's label column.
    pub label_input: Option<String>,
    /// The loss.
    pub loss: LossSpec,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Total epochs (a resumed run continues up to this many).
    pub epochs: usize,
    /// Rows per step; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Seeds the split, the batch orders and the parameter initialization.
    pub seed: u64,
    /// Shuffle each epoch (otherwise rows go in order).
    pub shuffle: bool,
    /// The data.
    pub data: DataSpec,
    /// The held-out split.
    pub split: Split,
    /// Standardize features with the training rows' mean and deviation.
    pub standardize: bool,
    /// Per-epoch batch orders (`[epochs, n_train]` `.npy`), to follow another run exactly.
    pub batch_order: Option<PathBuf>,
    /// Initial parameters (safetensors) instead of seeded initialization.
    pub init: Option<PathBuf>,
    /// Where checkpoints go (one per epoch).
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in `checkpoint_dir`.
    pub resume: bool,
    /// Worker threads for the JIT backend (0: one per core).
    pub threads: usize,
}

/// What a run tells its caller as it goes.
pub trait Observer {
    /// Called after every step.
    fn step(&mut self, _epoch: usize, _batch: usize, _batches: usize, _loss: f64) {}
    /// Called after every epoch.
    fn epoch(&mut self, _m: &EpochMetrics, _epochs: usize) {}
    /// Called when a checkpoint is written.
    fn checkpoint(&mut self, _path: &std::path::Path) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// The outcome of a run.
#[derive(Debug)]
pub struct TrainReport {
    /// One row per epoch, including those of the run that was resumed.
    pub history: Vec<EpochMetrics>,
    /// The final parameters, by name.
    pub params: Vec<(String, Tensor)>,
    /// True when the run stopped early because it was interrupted.
    pub interrupted: bool,
}

/// A compiled training program with its data and state.
pub struct Trainer {
    program: TrainProgram,
    train: Dataset,
    val: Option<Dataset>,
    params: Vec<Tensor>,
    state: Vec<Tensor>,
    position: Position,
    history: Vec<EpochMetrics>,
    orders: Option<Vec<Vec<usize>>>,
    input: TensorType,
    step_slots: Vec<Slot>,
    eval_slots: Vec<Slot>,
    cfg: TrainConfig,
    fingerprint: String,
    interrupt: Arc<AtomicBool>,
    step_runner: Runner,
    eval_runner: Runner,
}

fn input_err(m: impl Into<String>) -> Error {
    Error::Input(m.into())
}

/// `[n, dims…]` for a batch of `n` rows of an input typed `ty` (its `?` is the batch).
fn batch_shape(ty: &TensorType, n: usize) -> Vec<usize> {
    ty.shape.iter().map(|d| d.as_static().map_or(n, |s| s as usize)).collect()
}

impl Trainer {
    /// Compiles the train step for `forward` and loads the data, the initial
    /// parameters (or the newest checkpoint when resuming).
    pub fn new(forward: &Function, cfg: TrainConfig) -> Result<Trainer, Error> {
        let mut program = dlc_passes::train_step::build(forward, &cfg.output, cfg.label_input.as_deref(), &cfg.loss, &cfg.optimizer)
            .map_err(|x| input_err(x.0))?;
        optimize(&mut program)?;
        let sig = Signature::of(&program.step).map_err(input_err)?;
        if cfg.batch_size == 0 {
            return Err(input_err("the batch size must be at least 1"));
        }
        let [feature] = program.features.as_slice() else {
            return Err(input_err(format!(
                "training feeds the data's features to one model input; this model has {} besides the label ({})",
                program.features.len(),
                program.features.join(", ")
            )));
        };
        let input = sig.inputs().find(|a| &a.name == feature).expect("features are inputs").clone();
        let step_slots = slots(&sig, &program)?;
        let eval_slots = slots(&Signature::of(&program.eval).map_err(input_err)?, &program)?;
        let width: usize = input.ty.shape.iter().filter_map(|d| d.as_static()).product::<u64>() as usize;
        let all = data::load(&cfg.data)?;
        split::check_width(&cfg.data.path.display().to_string(), &all, width)?;
        check_labels(&cfg.data.path.display().to_string(), &all, &program)?;
        let (train, val) = match &cfg.split {
            Split::None => (all, None),
            Split::Fraction { val, stratify } => {
                let (t, v) = if *stratify { split::stratified(&all.y, *val, cfg.seed) } else { split::by_fraction(all.len(), *val, cfg.seed) }
                    .map_err(|m| input_err(format!("{}: {m}", cfg.data.path.display())))?;
                (all.select(&t), (!v.is_empty()).then(|| all.select(&v)))
            }
            Split::Indices(t, v) => (all.select(&split::read_indices(t, all.len())?), Some(all.select(&split::read_indices(v, all.len())?))),
        };
        if train.is_empty() {
            return Err(input_err(format!("{}: no training rows", cfg.data.path.display())));
        }
        let (mut train, mut val) = (train, val);
        if cfg.standardize {
            let (mean, std) = train.moments();
            train.standardize(&mean, &std);
            if let Some(v) = &mut val {
                v.standardize(&mean, &std);
            }
        }
        let orders = match &cfg.batch_order {
            Some(p) => {
                let o = split::read_orders(p, train.len())?;
                if o.len() < cfg.epochs {
                    return Err(input_err(format!("{}: batch orders for {} epochs, the run has {}", p.display(), o.len(), cfg.epochs)));
                }
                Some(o)
            }
            None => None,
        };
        let types: Vec<(String, String)> = sig.args.iter().filter(|a| !matches!(a.role, dlc_ir::Role::Input)).map(|a| (a.name.clone(), a.ty.to_string())).collect();
        let fingerprint = checkpoint::fingerprint(&types, &format!("{:?}", cfg.optimizer));
        let mut params: BTreeMap<String, Tensor> = match &cfg.init {
            Some(p) => crate::io::weights::bind(p, &sig, crate::io::weights::read(p)?)?.into_iter().collect(),
            None => dlc_backends::init_params(&sig, cfg.seed).into_iter().collect(),
        };
        let mut state: BTreeMap<String, Tensor> = dlc_backends::init_state(&sig, cfg.seed).into_iter().collect();
        let mut position = Position { epoch: 0, batch: 0, step: 0, partial: (0.0, 0) };
        let mut history = Vec::new();
        if cfg.resume {
            let dir = cfg.checkpoint_dir.as_ref().ok_or_else(|| input_err("--resume needs --checkpoint-dir"))?;
            if let Some(path) = checkpoint::newest(dir)? {
                let c = checkpoint::load(&path)?;
                if c.fingerprint != fingerprint {
                    return Err(input_err(format!("{}: the checkpoint is from a different model or optimizer", path.display())));
                }
                for (name, t) in c.tensors {
                    let slot = params.get_mut(&name).or_else(|| state.get_mut(&name)).ok_or_else(|| input_err(format!("{}: unexpected tensor '{name}'", path.display())))?;
                    *slot = t;
                }
                position = c.position;
                history = EpochMetrics::parse_rows(&c.history);
            }
        }
        let params = program.params.iter().map(|n| params.remove(n).expect("every parameter was initialized")).collect();
        let state = program.state.iter().map(|n| state.remove(n).expect("every state slot was initialized")).collect();
        let backend = Backend::default();
        let step_runner = Runner::new(backend, &program.step, cfg.threads)?;
        let eval_runner = Runner::new(backend, &program.eval, cfg.threads)?;
        Ok(Trainer {
            step_runner,
            eval_runner,
            program,
            train,
            val,
            params,
            state,
            position,
            history,
            orders,
            input: input.ty.clone(),
            step_slots,
            eval_slots,
            cfg,
            fingerprint,
            interrupt: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs the train step and evaluation on `backend` (default
    /// [`Backend::Jit`]); compiles each function once.
    pub fn set_backend(&mut self, backend: Backend) -> Result<(), Error> {
        if backend != self.step_runner.backend() {
            self.step_runner = Runner::new(backend, &self.program.step, self.cfg.threads)?;
            self.eval_runner = Runner::new(backend, &self.program.eval, self.cfg.threads)?;
        }
        Ok(())
    }

    /// The backend that runs the train step.
    pub fn backend(&self) -> Backend {
        self.step_runner.backend()
    }

    /// A flag that, once set (e.g. by a Ctrl-C handler), makes the run save a
    /// checkpoint after the current step and return.
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// The compiled training program.
    pub fn program(&self) -> &TrainProgram {
        &self.program
    }

    fn batch(&self, d: &Dataset, rows: &[usize]) -> Result<(Tensor, Tensor), Error> {
        let sel = d.select(rows);
        let x = Tensor::from_f32(&batch_shape(&self.input, rows.len()), sel.x).map_err(|e| input_err(e.to_string()))?;
        let y = labels(&self.program.label.1, &sel.y).map_err(input_err)?;
        Ok((x, y))
    }

    /// The arguments of a step or eval call, in `slots` order: borrowed,
    /// not copied (parameters and optimizer state can be megabytes).
    fn args<'a>(&'a self, slots: &[Slot], x: &'a Tensor, y: &'a Tensor, step: Option<&'a Tensor>) -> Vec<&'a Tensor> {
        slots
            .iter()
            .map(|s| match s {
                Slot::Features => x,
                Slot::Label => y,
                Slot::Param(i) => &self.params[*i],
                Slot::State(i) => &self.state[*i],
                Slot::Step => step.expect("only the train step takes a step count"),
            })
            .collect()
    }

    fn order(&self, epoch: usize) -> Vec<usize> {
        match &self.orders {
            Some(o) => o[epoch].clone(),
            None if self.cfg.shuffle => split::permutation(self.train.len(), self.cfg.seed, epoch as u64 + 1),
            None => (0..self.train.len()).collect(),
        }
    }

    fn dtype(&self) -> DType {
        self.params[0].dtype()
    }

    /// One optimizer step on `rows` of the training set; returns (loss, correct).
    fn step(&mut self, rows: &[usize]) -> Result<(f64, Option<f64>), Error> {
        let (x, y) = self.batch(&self.train, rows)?;
        self.position.step += 1;
        let step = Tensor::from_f64_values(&[], &[self.position.step as f64], self.dtype()).map_err(|e| input_err(e.to_string()))?;
        let w = Weights { params: &mut self.params, state: &mut self.state };
        let features: Vec<Option<&Tensor>> = self.step_slots.iter().map(|s| matches!(s, Slot::Features).then_some(&x)).collect();
        let (loss, correct, _) = donated_step(&self.step_runner, &self.step_slots, w, &features, &y, &step, false)?;
        Ok((loss, correct))
    }

    /// Loss and accuracy of the current parameters on `d`, in batches.
    pub fn evaluate(&self, d: &Dataset) -> Result<(f64, Option<f64>), Error> {
        let (mut loss, mut correct) = (0.0, None::<f64>);
        let rows: Vec<usize> = (0..d.len()).collect();
        for chunk in rows.chunks(self.cfg.batch_size.max(256)) {
            let (x, y) = self.batch(d, chunk)?;
            let args = self.args(&self.eval_slots, &x, &y, None);
            let out = self.eval_runner.run(&args)?;
            loss += out[0].to_f64_vec()[0] * self.loss_weight(chunk.len());
            if let Some(c) = out.get(1) {
                *correct.get_or_insert(0.0) += c.to_f64_vec()[0];
            }
        }
        Ok((loss / d.len() as f64, correct.map(|c| c / d.len() as f64)))
    }

    /// How much one batch's loss counts toward a per-row mean: its row count
    /// for a mean-reduced loss, 1 for a summed one.
    fn loss_weight(&self, rows: usize) -> f64 {
        match self.cfg.loss.reduction {
            dlc_passes::train::Reduction::Mean => rows as f64,
            dlc_passes::train::Reduction::Sum => 1.0,
        }
    }

    fn save(&self, obs: &mut dyn Observer) -> Result<(), Error> {
        let Some(dir) = &self.cfg.checkpoint_dir else { return Ok(()) };
        let mut tensors = BTreeMap::new();
        for (n, t) in self.program.params.iter().zip(&self.params).chain(self.program.state.iter().zip(&self.state)) {
            tensors.insert(n.clone(), t.clone());
        }
        let c = Checkpoint {
            position: self.position.clone(),
            seed: self.cfg.seed,
            fingerprint: self.fingerprint.clone(),
            tensors,
            history: self.history.iter().map(EpochMetrics::csv_row).collect(),
        };
        let p = checkpoint::save(dir, &c)?;
        obs.checkpoint(&p);
        Ok(())
    }

    /// Trains up to `epochs` in total. A non-finite loss stops the run with an
    /// error naming the epoch and step; the last checkpoint stays as it was.
    pub fn run(&mut self, obs: &mut dyn Observer) -> Result<TrainReport, Error> {
        let n = self.train.len();
        let bs = self.cfg.batch_size;
        let batches = n.div_ceil(bs);
        let mut interrupted = false;
        while self.position.epoch < self.cfg.epochs {
            let epoch = self.position.epoch;
            let order = self.order(epoch);
            let t0 = Instant::now();
            // An epoch interrupted halfway resumes its running mean from the checkpoint.
            let (mut total, mut seen) = (self.position.partial.0, self.position.partial.1 as usize);
            for b in self.position.batch..batches {
                let rows = &order[b * bs..((b + 1) * bs).min(n)];
                let (loss, _) = self.step(rows)?;
                if !loss.is_finite() {
                    return Err(input_err(format!(
                        "training diverged: the loss is {loss} at epoch {}, step {} (batch {} of {batches}); the last checkpoint is kept",
                        epoch + 1,
                        self.position.step,
                        b + 1
                    )));
                }
                total += loss * self.loss_weight(rows.len());
                seen += rows.len();
                self.position.batch = b + 1;
                self.position.partial = (total, seen as u64);
                obs.step(epoch, b, batches, loss);
                if self.interrupt.load(Ordering::SeqCst) && b + 1 < batches {
                    interrupted = true;
                    break;
                }
            }
            if interrupted {
                self.save(obs)?;
                break;
            }
            let (val_loss, val_accuracy) = match &self.val {
                Some(v) => {
                    let (l, a) = self.evaluate(v)?;
                    (Some(l), a)
                }
                None => (None, None),
            };
            let m = EpochMetrics { epoch: epoch + 1, train_loss: total / seen.max(1) as f64, val_loss, val_accuracy, seconds: t0.elapsed().as_secs_f64() };
            self.position = Position { epoch: epoch + 1, batch: 0, step: self.position.step, partial: (0.0, 0) };
            self.history.push(m.clone());
            obs.epoch(&m, self.cfg.epochs);
            self.save(obs)?;
            if self.interrupt.load(Ordering::SeqCst) {
                interrupted = self.position.epoch < self.cfg.epochs;
                break;
            }
        }
        Ok(TrainReport { history: self.history.clone(), params: self.params(), interrupted })
    }

    /// The current parameters, by name.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        self.program.params.iter().cloned().zip(self.params.iter().cloned()).collect()
    }

    /// The held-out set, if any.
    pub fn validation(&self) -> Option<&Dataset> {
        self.val.as_ref()
    }

    /// Loss and accuracy on the held-out rows, or on all rows when there is no split.
    pub fn evaluate_held_out(&self) -> Result<(f64, Option<f64>), Error> {
        self.evaluate(self.val.as_ref().unwrap_or(&self.train))
    }

    /// The number of rows [`Trainer::evaluate_held_out`] evaluates.
    pub fn held_out_len(&self) -> usize {
        self.val.as_ref().unwrap_or(&self.train).len()
    }
}

/// Runs the default pass pipeline (canonicalize, CSE, fold, DCE) over the
/// step and eval functions: the same values, about a third fewer ops.
pub(crate) fn optimize(p: &mut TrainProgram) -> Result<(), Error> {
    let mut m = dlc_ir::Module { functions: vec![std::mem::replace(&mut p.step, Function::new("")), std::mem::replace(&mut p.eval, Function::new(""))] };
    dlc_passes::PassManager::default_pipeline(dlc_passes::Options::default())
        .run(&mut m, &mut std::io::sink())
        .map_err(|e| input_err(format!("optimizing the training program: {e}")))?;
    p.eval = m.functions.pop().expect("two functions");
    p.step = m.functions.pop().expect("two functions");
    Ok(())
}

/// What feeds one argument of the step or eval function.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    /// The data's features (a model input).
    Features,
    /// The labels.
    Label,
    /// A parameter, by position in the program's list.
    Param(usize),
    /// An optimizer state slot, by position.
    State(usize),
    /// The 1-based step count.
    Step,
}

/// The weights and optimizer state a train step updates, lent to it.
pub(crate) struct Weights<'a> {
    pub params: &'a mut Vec<Tensor>,
    pub state: &'a mut Vec<Tensor>,
}

/// Runs one train step: `slots` say which argument is which; `features`
/// gives a model input by name. The parameters and optimizer state are
/// donated to the run (each new value is written over the old one's buffer,
/// see [`dlc_cpu::CpuExecutable::run_donated`]) and replaced by its results;
/// the loss and the correct count (if any) are returned, with per-step times
/// when `profile`.
///
/// When the run fails after its arguments were checked, the donated
/// tensors may already be overwritten: `params` and `state` are then left
/// empty, and every later step says so (the last checkpoint has them).
pub(crate) fn donated_step<'a>(
    runner: &Runner,
    slots: &[Slot],
    w: Weights<'_>,
    features: &[Option<&'a Tensor>],
    label: &'a Tensor,
    step: &'a Tensor,
    profile: bool,
) -> Result<(f64, Option<f64>, dlc_cpu::StepTimes), Error> {
    use std::borrow::Cow;
    if w.params.is_empty() {
        return Err(input_err("the parameters were lost when an earlier step failed; load them from the last checkpoint"));
    }
    if slots.iter().enumerate().any(|(i, s)| matches!(s, Slot::Features) && features.get(i).copied().flatten().is_none()) {
        return Err(input_err("a model input of the train step is missing"));
    }
    // Checked while still borrowed: a mistake must not cost the weights.
    let borrowed: Vec<&Tensor> = slots
        .iter()
        .enumerate()
        .map(|(i, slot)| match slot {
            Slot::Features => features[i].expect("checked above"),
            Slot::Label => label,
            Slot::Step => step,
            Slot::Param(k) => &w.params[*k],
            Slot::State(k) => &w.state[*k],
        })
        .collect();
    runner.check(&borrowed)?;
    let (np, ns) = (w.params.len(), w.state.len());
    let mut params: Vec<Option<Tensor>> = std::mem::take(w.params).into_iter().map(Some).collect();
    let mut state: Vec<Option<Tensor>> = std::mem::take(w.state).into_iter().map(Some).collect();
    let args: Vec<Cow<'a, Tensor>> = slots
        .iter()
        .enumerate()
        .map(|(i, slot)| match slot {
            Slot::Features => Cow::Borrowed(features[i].expect("checked above")),
            Slot::Label => Cow::Borrowed(label),
            Slot::Step => Cow::Borrowed(step),
            Slot::Param(k) => Cow::Owned(params[*k].take().expect("each parameter feeds one argument")),
            Slot::State(k) => Cow::Owned(state[*k].take().expect("each state slot feeds one argument")),
        })
        .collect();
    let (out, times) = runner.run_donated(args, profile)?;
    let mut out = out.into_iter();
    *w.params = out.by_ref().take(np).collect();
    *w.state = out.by_ref().take(ns).collect();
    let loss = out.next().map(|l| l.to_f64_vec()[0]);
    match loss {
        Some(loss) if w.params.len() == np && w.state.len() == ns => Ok((loss, out.next().map(|c| c.to_f64_vec()[0]), times)),
        _ => Err(input_err("the train step returned fewer results than the model has parameters and state")),
    }
}

/// Maps each argument of a training function to what feeds it, by name.
pub(crate) fn slots(sig: &Signature, p: &TrainProgram) -> Result<Vec<Slot>, Error> {
    sig.args
        .iter()
        .map(|a| {
            if p.features.contains(&a.name) {
                Ok(Slot::Features)
            } else if a.name == p.label.0 {
                Ok(Slot::Label)
            } else if let Some(i) = p.params.iter().position(|n| *n == a.name) {
                Ok(Slot::Param(i))
            } else if let Some(i) = p.state.iter().position(|n| *n == a.name) {
                Ok(Slot::State(i))
            } else if a.name == "step" {
                Ok(Slot::Step)
            } else {
                Err(input_err(format!("the training function has an argument '{}' that nothing feeds", a.name)))
            }
        })
        .collect()
}

/// Label values as the label argument wants them: class indices (i64) or
/// float targets, one per row.
fn labels(ty: &TensorType, y: &[f64]) -> Result<Tensor, String> {
    let shape = batch_shape(ty, y.len());
    match ty.dtype {
        DType::I64 => Tensor::from_i64(&shape, y.iter().map(|&v| v as i64).collect()).map_err(|e| e.to_string()),
        d => Tensor::from_f64_values(&shape, y, d).map_err(|e| e.to_string()),
    }
}

/// Checks labels against the loss: class indices must be whole numbers in
/// `[0, classes)`; binary labels 0 or 1; every label finite.
fn check_labels(name: &str, d: &Dataset, p: &TrainProgram) -> Result<(), Error> {
    let label = &p.label.1;
    if label.shape.iter().skip(1).any(|dim| dim.as_static() != Some(1)) {
        return Err(input_err(format!("{name}: the loss needs {label} labels, the data has 1 label per row")));
    }
    for (i, &v) in d.y.iter().enumerate() {
        let bad = match p.classes {
            _ if !v.is_finite() => Some("is not a finite number".to_string()),
            Some(c) if label.dtype == DType::I64 && (v.fract() != 0.0 || v < 0.0 || v >= c as f64) => Some(format!("is not a class index in [0, {c})")),
            Some(2) if label.dtype != DType::I64 && v != 0.0 && v != 1.0 => Some("is not a binary label 0 or 1".to_string()),
            _ => None,
        };
        if let Some(why) = bad {
            return Err(input_err(format!("{name}: row {}: label {v} {why}", i + 1)));
        }
    }
    Ok(())
}
