//! dlc's CPU executable: a kernel-level function compiled once and run
//! many times, at any batch size.
//!
//! Its input is a function at the structured-kernel level (`dlc compile
//! --emit kernel`; `dlc_passes::to_kernels` produces it): every top-level op
//! becomes one step ([`steps`]): elementwise `kernel.generic`s run as dlc-jit
//! elementwise kernels, other generics (reductions, pooling windows,
//! transposed or strided reads) as dlc-jit loop nests, `kernel.matmul` and
//! `kernel.conv2d` on dlc-contract's gemm with their bias/ReLU epilogue,
//! `dl.conv2d_grad_input` and `dl.conv2d_grad_weight` on its convolution
//! gradients,
//! `dl.reshape` as a view, `dl.concat` as block copies, and what remains
//! (gather, one-hot, argmax, integer kernels, `dl` ops not lowered) on the
//! reference interpreter, one op at a time. Constants are evaluated at
//! compile time.
//!
//! [`CpuExecutable::run`] checks the arguments as the interpreter does
//! (dtype, rank, static dims, one batch size for every `?`), runs the steps
//! over a table of values indexed by [`ValueId`] and returns the function's
//! results.
//!
//! # Memory
//!
//! Step outputs that a kernel writes into a slice (JIT kernels,
//! contractions, concat) live in one arena per dtype (f32, f64, i1) that the
//! executable keeps between runs; a convolution's im2col scratch (forward
//! or either gradient) does too.
//! The plan (`memory.rs`) gives each such value a lifetime, from the step
//! that defines it to the last step that reads it or a reshape of it (a
//! `dl.reshape` of an arena value is a view of the same bytes), and places
//! the values by greedy best fit so that two values live at the same step
//! never share a byte; each buffer starts on a 64-byte boundary. Arguments
//! and constants are not in the arena; function results are written into
//! buffers of their own and moved to the caller, so returning them copies
//! nothing; interpreter fallbacks allocate their outputs, freed after their
//! last use. [`CpuExecutable::memory_plan`] reports the arena's size, the
//! peak of live bytes and what a fresh buffer per output would take.
//!
//! The plan depends on the batch size. The first run plans for its batch;
//! a run at another batch size plans again (microseconds: a few hundred
//! buffers) and resizes the arena, and the plan for the last batch size is
//! kept, so alternating sizes (a last partial batch) re-plans at each
//! change. The arena sits behind a mutex: a run that finds it held by a
//! concurrent run of the same executable plans and allocates an arena of
//! its own instead of waiting. Debug builds fill the arena with NaN before
//! every run and check before every step that it writes over no live value.
//!
//! # Threads
//!
//! With `threads` > 1, a private rayon pool of that many workers runs
//! contractions (dlc-contract splits them from 512 Ki multiply-adds) and
//! JIT kernels whose cost, iteration points × (1 + the ops in the body), is
//! at least 256 Ki (`parallel.rs`; [`CpuExecutable::with_min_parallel_cost`]
//! moves the threshold). An elementwise kernel is cut along its outermost
//! iteration dim, a structured kernel along its dim 0 when that is parallel
//! and indexes the output's rows: each part is computed by the same code as
//! one call, so the result is exactly the one-thread result. A structured
//! kernel whose dim 0 is a plain sum (a bias gradient over the batch) runs
//! as partial sums added in a fixed order: within rounding of one thread.
//! At a fixed thread count every run is bit-identical.
//!
//! A run with something to split executes on a worker of the pool while
//! the other workers spin, picking up each split part as soon as it is
//! pushed (OpenMP's active wait): waking a sleeping thread costs tens of
//! microseconds on small VMs, as much as a whole kernel. The spinning ends
//! with the run; a run with nothing large enough stays on the calling
//! thread and wakes no one.
#![deny(missing_docs)]

mod arena;
mod exec;
mod memory;
mod movement;
mod outputs;
mod parallel;
mod pool;
pub mod steps;

#[doc(hidden)]
pub use pool::POOL_SIMD;

pub use memory::{MemoryPlan, PlannedBuffer};

use arena::Arena;
use dlc_backends::{InterpError, Tensor, eval_op};
use dlc_contract::ContractError;
use dlc_ir::{Dim, Function, OpKind, TensorType, Type, ValueId};
use dlc_jit::{Jit, JitError};
use exec::Val;
use memory::{ConvRoutine, ConvScratch, Home, Layout, StepInfo};
use std::borrow::Cow;
use std::sync::Mutex;
use steps::Exec;

/// Each step's description and wall time, in execution order.
pub type StepTimes = Vec<(String, std::time::Duration)>;

/// Options for [`CpuExecutable::compile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    /// Worker threads for contractions and large JIT kernels (at least 1).
    pub threads: usize,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions { threads: 1 }
    }
}

/// What can go wrong compiling or running a function.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// Something this backend cannot compile or run.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An interpreter step failed.
    #[error(transparent)]
    Interp(#[from] InterpError),
    /// A JIT kernel failed.
    #[error("jit: {0}")]
    Jit(#[from] JitError),
    /// A contraction failed.
    #[error("contraction: {0}")]
    Contract(#[from] ContractError),
    /// The IR is inconsistent (a value used before its definition, …).
    #[error("malformed IR: {0}")]
    Malformed(String),
}

/// Below this many multiply-adds a contraction runs on one thread
/// (dlc-contract's own threshold: a second thread costs more than it saves).
const PAR_MIN_MACS: usize = 1 << 19;

/// How much work a step is, in the units its split threshold counts.
enum Work {
    /// Not split (interpreter steps, reshapes).
    None,
    /// A JIT kernel's cost: the product of these dims (its iteration
    /// space) times this factor (1 + the ops in its body).
    Points(Vec<Dim>, usize),
    /// A contraction's multiply-adds: the product of these dims.
    Macs(Vec<Dim>),
}

struct Step {
    exec: Exec,
    work: Work,
    output: ValueId,
    /// The output's type.
    out: TensorType,
    /// Values whose last use is this step, and its output if nothing reads
    /// it: dropped after it.
    frees: Vec<ValueId>,
    /// An input read for the last time here, whose buffer the output may
    /// take over (see `memory.rs`): an elementwise step reading it in full.
    in_place: Option<ValueId>,
    /// The outputs after the first, of a structured kernel with several
    /// results. Such a step writes every output into a buffer of its own,
    /// outside the arena (`memory.rs`), or over a donated input.
    extra: Vec<(ValueId, TensorType)>,
    /// With `extra`: per output, the input it may be written over
    /// ([`steps::donors`]).
    donors: Vec<Option<ValueId>>,
    describe: String,
}

/// A function compiled for the CPU. See the crate docs.
pub struct CpuExecutable {
    name: String,
    args: Vec<(ValueId, String, TensorType)>,
    results: Vec<ValueId>,
    num_values: usize,
    constants: Vec<(ValueId, Tensor)>,
    steps: Vec<Step>,
    threads: usize,
    pool: rayon::ThreadPool,
    /// JIT kernels of a smaller cost (iteration points × (1 + body ops))
    /// run on one thread.
    par_min_cost: usize,
    /// Where each step's output lives.
    layout: Layout,
    /// The arena and its plan for the last batch size run.
    arena: Mutex<Option<Arena>>,
    /// Per argument: the value bound to it ([`CpuExecutable::bind`]), which
    /// runs then leave out of their argument list.
    bound: Vec<Option<Tensor>>,
    /// Per step: a `kernel.matmul`'s right operand packed once, when it is
    /// a bound argument.
    packed: Vec<Option<Packed>>,
}

/// A bound matmul operand, packed ([`dlc_contract::PackedB`]).
pub(crate) enum Packed {
    F32(dlc_contract::PackedB<f32>),
    F64(dlc_contract::PackedB<f64>),
}

impl std::fmt::Debug for CpuExecutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuExecutable").field("name", &self.name).field("plan", &self.plan_summary()).finish()
    }
}

fn tensor_ty(f: &Function, v: ValueId) -> Result<TensorType, CpuError> {
    f.ty(v).as_tensor().cloned().ok_or_else(|| CpuError::Unsupported(format!("value %{} is not a tensor", v.0)))
}

impl CpuExecutable {
    /// Compiles `func` (its entry block must end in `func.return`).
    pub fn compile(func: &Function, options: &CpuOptions) -> Result<CpuExecutable, CpuError> {
        if func.return_op().is_none() {
            return Err(CpuError::Malformed(format!("@{} does not end with func.return", func.name)));
        }
        let threads = options.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| CpuError::Unsupported(format!("cannot start {threads} threads: {e}")))?;
        let jit = Jit::new()?;
        let mut constants = Vec::new();
        let mut jobs = Vec::new();
        for &o in func.body_ops() {
            let op = func.op(o);
            match op.kind {
                OpKind::Return => {}
                OpKind::Constant => constants.push(o),
                _ => {
                    if op.results.is_empty() || op.results.len() > 1 && op.kind != OpKind::Generic {
                        return Err(CpuError::Unsupported(format!("'{}' with {} results", op.kind.name(), op.results.len())));
                    }
                    jobs.push((o, op.results.clone()));
                }
            }
        }
        // Kernels compile on the executable's threads, each distinct one once.
        let cache = steps::KernelCache::default();
        let compiled: Vec<Result<(Exec, String), CpuError>> = {
            use rayon::prelude::*;
            pool.install(|| jobs.par_iter().map(|&(o, _)| steps::compile_op(func, o, &jit, &cache)).collect())
        };
        let mut ready: Vec<(Exec, Vec<ValueId>, String)> = Vec::with_capacity(jobs.len());
        for ((_, rs), c) in jobs.iter().zip(compiled) {
            let (exec, describe) = c?;
            ready.push((exec, rs.clone(), describe));
        }
        let consts = constants
            .iter()
            .map(|&o| {
                let op = func.op(o);
                Ok((op.results[0], eval_op(op.kind, &op.attrs, &[], None)?))
            })
            .collect::<Result<Vec<_>, CpuError>>()?;
        // Last uses: a value is dropped after the last step that reads it
        // (right after its own step if none does), unless it is returned.
        let results = func.returned_values();
        let mut last: Vec<Option<usize>> = vec![None; func.num_values()];
        for (i, (e, _, _)) in ready.iter().enumerate() {
            for v in e.inputs() {
                last[v.0 as usize] = Some(i);
            }
        }
        for (i, (_, outputs, _)) in ready.iter().enumerate() {
            for v in outputs {
                last[v.0 as usize].get_or_insert(i);
            }
        }
        for &v in &results {
            last[v.0 as usize] = None;
        }
        let is_const_or_arg = |v: ValueId| func.args().contains(&v) || consts.iter().any(|(c, _)| *c == v);
        let steps = ready
            .into_iter()
            .enumerate()
            .map(|(i, (exec, outputs, describe))| {
                let mut frees: Vec<ValueId> = exec.inputs().into_iter().chain(outputs.iter().copied()).filter(|&v| last[v.0 as usize] == Some(i) && !is_const_or_arg(v)).collect();
                frees.sort_unstable();
                frees.dedup();
                let output = outputs[0];
                let out = tensor_ty(func, output)?;
                let extra = outputs[1..].iter().map(|&v| Ok((v, tensor_ty(func, v)?))).collect::<Result<Vec<_>, CpuError>>()?;
                let dims = |v: ValueId| tensor_ty(func, v).map(|t| t.shape);
                let work = match &exec {
                    Exec::Elementwise { kernel, .. } => Work::Points(out.shape.clone(), 1 + parallel::ops(kernel.spec().body())),
                    Exec::Structured { kernel, generic, .. } => {
                        Work::Points(generic.sizes.iter().map(|s| s.map_or(Dim::Dynamic, Dim::Static)).collect(), 1 + parallel::ops(kernel.spec().body()))
                    }
                    Exec::Matmul { a, t, .. } => {
                        let a = dims(*a)?;
                        let k = if a.len() < 2 { Dim::Static(0) } else if t.a { a[a.len() - 2] } else { a[a.len() - 1] };
                        Work::Macs(out.shape.iter().copied().chain([k]).collect())
                    }
                    // The convolution's own output (before any pooling) times C·KH·KW.
                    Exec::Conv2d { x, w, conv, .. } => {
                        let (xd, wd) = (dims(*x)?, dims(*w)?);
                        let fixed = |d: &[Dim]| d.iter().map(|d| d.as_static().unwrap_or(1) as usize).collect::<Vec<_>>();
                        let y = conv.out_shape(&fixed(&xd), &fixed(&wd)).map_err(|e| CpuError::Malformed(e.to_string()))?;
                        let mut shape = vec![xd[0]];
                        shape.extend(y[1..].iter().map(|&n| Dim::Static(n as u64)));
                        Work::Macs(shape.into_iter().chain(wd.into_iter().skip(1)).collect())
                    }
                    // Both gradients: the output gradient's elements times C·KH·KW.
                    Exec::Conv2dGradInput { g, w, .. } => Work::Macs(dims(*g)?.into_iter().chain(dims(*w)?.into_iter().skip(1)).collect()),
                    Exec::Conv2dGradWeight { g, .. } => Work::Macs(dims(*g)?.into_iter().chain(out.shape.iter().copied().skip(1)).collect()),
                    // The convolution twice: recomputed, then its weight gradient.
                    Exec::Conv2dPooledGradWeight { x, w, conv, .. } => {
                        let (xd, wd) = (dims(*x)?, dims(*w)?);
                        let fixed = |d: &[Dim]| d.iter().map(|d| d.as_static().unwrap_or(1) as usize).collect::<Vec<_>>();
                        let y = conv.out_shape(&fixed(&xd), &fixed(&wd)).map_err(|e| CpuError::Malformed(e.to_string()))?;
                        let mut shape = vec![xd[0], Dim::Static(2)];
                        shape.extend(y[1..].iter().map(|&n| Dim::Static(n as u64)));
                        Work::Macs(shape.into_iter().chain(wd.into_iter().skip(1)).collect())
                    }
                    // Routed: the pooled gradient's elements times C·KH·KW.
                    Exec::RoutedGradInput { g, w, .. } => Work::Macs(dims(*g)?.into_iter().chain(dims(*w)?.into_iter().skip(1)).collect()),
                    Exec::RoutedGradWeight { g, .. } => Work::Macs(dims(*g)?.into_iter().chain(out.shape.iter().copied().skip(1)).collect()),
                    // One compare per input element, one write per output element.
                    Exec::MaxPool2dGrad { .. } => Work::Points(out.shape.clone(), 2),
                    _ => Work::None,
                };
                let (in_place, donors) = if extra.is_empty() {
                    (exec.in_place_candidates(&out).into_iter().find(|v| last[v.0 as usize] == Some(i) && tensor_ty(func, *v).is_ok_and(|t| t == out)), Vec::new())
                } else {
                    let outs: Vec<TensorType> = std::iter::once(out.clone()).chain(extra.iter().map(|(_, t)| t.clone())).collect();
                    (None, steps::donors(&exec, &outs, &|v| tensor_ty(func, v).ok(), &|v| last[v.0 as usize] == Some(i)))
                };
                Ok(Step { exec, work, output, out, frees, in_place, extra, donors, describe })
            })
            .collect::<Result<Vec<_>, CpuError>>()?;
        let infos: Vec<StepInfo<'_>> = steps
            .iter()
            .map(|s| {
                let scratch = |routine, x: Vec<Dim>, w: Vec<Dim>, conv| Some(ConvScratch { routine, x, w, conv, threads });
                let conv = match &s.exec {
                    Exec::Conv2d { x, w, conv, pool, .. } => {
                        let routine = pool.map_or(ConvRoutine::Forward, ConvRoutine::ForwardPooled);
                        scratch(routine, tensor_ty(func, *x)?.shape, tensor_ty(func, *w)?.shape, *conv)
                    }
                    Exec::Conv2dGradInput { w, conv, .. } => scratch(ConvRoutine::GradInput, s.out.shape.clone(), tensor_ty(func, *w)?.shape, *conv),
                    Exec::Conv2dGradWeight { x, conv, .. } => scratch(ConvRoutine::GradWeight, tensor_ty(func, *x)?.shape, s.out.shape.clone(), *conv),
                    Exec::Conv2dPooledGradWeight { x, conv, pool, .. } => scratch(ConvRoutine::GradWeightPooled(*pool), tensor_ty(func, *x)?.shape, s.out.shape.clone(), *conv),
                    Exec::RoutedGradInput { w, conv, pool, .. } => scratch(ConvRoutine::GradInputRouted(*pool), s.out.shape.clone(), tensor_ty(func, *w)?.shape, *conv),
                    Exec::RoutedGradWeight { x, conv, pool, .. } => scratch(ConvRoutine::GradWeightRouted(*pool), tensor_ty(func, *x)?.shape, s.out.shape.clone(), *conv),
                    _ => None,
                };
                Ok(StepInfo {
                    output: s.output,
                    dtype: s.out.dtype,
                    shape: &s.out.shape,
                    inputs: s.exec.inputs(),
                    // Several outputs live outside the arena.
                    writes_slice: s.exec.writes_slice() && s.extra.is_empty(),
                    reshape: matches!(s.exec, Exec::Reshape { .. }),
                    conv,
                    in_place: s.in_place,
                })
            })
            .collect::<Result<_, CpuError>>()?;
        let layout = Layout::new(&infos, &results, func.num_values());
        let args = func
            .args()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let name = func.value(v).name.clone().unwrap_or_else(|| format!("arg{i}"));
                Ok((v, name, tensor_ty(func, v)?))
            })
            .collect::<Result<_, CpuError>>()?;
        Ok(CpuExecutable {
            bound: vec![None; func.args().len()],
            packed: (0..steps.len()).map(|_| None).collect(),
            name: func.name.clone(),
            args,
            results,
            num_values: func.num_values(),
            constants: consts,
            steps,
            threads,
            pool,
            par_min_cost: parallel::PAR_MIN_COST,
            layout,
            arena: Mutex::new(None),
        })
    }

    /// Binds values to arguments by name, for every later run: runs take
    /// the arguments that are not bound, in order ([`CpuExecutable::arguments`]).
    /// A model's weights are bound this way for inference: a weight that a
    /// matmul reads as its transposed right operand (PyTorch's `[out, in]`
    /// layout) is packed once, here, into the layout the gemm kernel reads
    /// fastest (`[in, out]`, aligned), rather than on every call. Binding a
    /// name again replaces its value (and repacks). Each value must have
    /// its argument's dtype and shape, with no batch dim.
    pub fn bind(&mut self, values: Vec<(String, Tensor)>) -> Result<(), CpuError> {
        for (name, t) in values {
            let i = self.args.iter().position(|(_, n, _)| *n == name).ok_or_else(|| CpuError::Malformed(format!("@{} has no argument named '{name}'", self.name)))?;
            let ty = &self.args[i].2;
            if ty.shape.iter().any(|d| d.as_static().is_none()) {
                return Err(CpuError::Malformed(format!("'{name}' has a batch dim ({ty}); only arguments of a fixed shape can be bound")));
            }
            let typed = [(name.clone(), Type::Tensor(ty.clone()))];
            let typed: Vec<(String, &Type)> = typed.iter().map(|(n, t)| (n.clone(), t)).collect();
            dlc_backends::check_args(&self.name, &typed, &[&t])?;
            self.bound[i] = Some(t);
        }
        for (i, step) in self.steps.iter().enumerate() {
            self.packed[i] = match &step.exec {
                Exec::Matmul { b, t, .. } if t.b => {
                    let bound = self.args.iter().position(|(v, _, _)| v == b).and_then(|k| self.bound[k].as_ref());
                    match bound {
                        Some(Tensor::F32(a)) => Some(Packed::F32(dlc_contract::PackedB::new(dlc_contract::View::new(&exec::contiguous(a), a.shape()), true)?)),
                        Some(Tensor::F64(a)) => Some(Packed::F64(dlc_contract::PackedB::new(dlc_contract::View::new(&exec::contiguous(a), a.shape()), true)?)),
                        _ => None,
                    }
                }
                _ => None,
            };
        }
        Ok(())
    }

    /// The arguments a run takes, in order: name and type (bound ones left out).
    pub fn arguments(&self) -> Vec<(&str, &TensorType)> {
        self.args.iter().zip(&self.bound).filter(|(_, b)| b.is_none()).map(|((_, n, t), _)| (n.as_str(), t)).collect()
    }

    /// How many matmul operands are bound and packed.
    pub fn num_packed(&self) -> usize {
        self.packed.iter().flatten().count()
    }

    /// Splits JIT kernels over the threads from a cost of `cost` up
    /// (iteration points × (1 + the ops in the kernel's body); by default
    /// 256 Ki, below which a split costs more than it saves); `0` splits
    /// every kernel that can be split, which is how the tests exercise the
    /// split on small inputs.
    pub fn with_min_parallel_cost(mut self, cost: usize) -> CpuExecutable {
        self.par_min_cost = cost;
        self
    }

    /// The steps in execution order: `jit[add,relu]`, `matmul+bias+relu`,
    /// `interp[reduce_sum]`, … (constants evaluated at compile time are not steps).
    pub fn plan_summary(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.describe.clone()).collect()
    }

    /// The number of constants evaluated at compile time.
    pub fn num_constants(&self) -> usize {
        self.constants.len()
    }

    /// The memory plan at batch size `batch` (`None` for a function without
    /// a `?`): arena bytes, peak live bytes, what allocating every output
    /// would take, and where each buffer sits. See the crate docs.
    pub fn memory_plan(&self, batch: Option<usize>) -> MemoryPlan {
        let outside: usize = self
            .steps
            .iter()
            .zip(&self.layout.homes)
            .filter(|(s, h)| **h == Home::Outside && !matches!(s.exec, Exec::Reshape { .. }))
            .flat_map(|(s, _)| std::iter::once(&s.out).chain(s.extra.iter().map(|(_, t)| t)))
            .map(|t| memory::concrete(&t.shape, batch).iter().product::<usize>() * t.dtype.size_bytes())
            .sum();
        self.layout.place(batch).report(&self.layout, outside)
    }

    /// Runs the function on `args` and returns its results. Arguments may be
    /// owned tensors or references (`&[&Tensor]`): a caller holding
    /// parameters need not copy them for a call.
    pub fn run<T: std::borrow::Borrow<Tensor> + Sync>(&self, args: &[T]) -> Result<Vec<Tensor>, CpuError> {
        self.run_timed(borrowed(args), None)
    }

    /// Like [`CpuExecutable::run`], with arguments the caller gives up
    /// (`Cow::Owned`): where an elementwise step reads such an argument for
    /// the last time and returns a result of its shape (an optimizer's new
    /// parameter from the old one), the result is written over the
    /// argument's buffer, with no new allocation. Borrowed arguments are
    /// only read. The results are the same as [`CpuExecutable::run`]'s.
    ///
    /// A donated argument is gone whatever happens: when the run fails
    /// after checking its arguments, some may already have been overwritten.
    pub fn run_donated(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, CpuError> {
        self.run_timed(args, None)
    }

    /// Like [`CpuExecutable::run`], also returning each step's description
    /// and wall time, in execution order.
    pub fn run_profiled<T: std::borrow::Borrow<Tensor> + Sync>(&self, args: &[T]) -> Result<(Vec<Tensor>, StepTimes), CpuError> {
        self.run_donated_profiled(borrowed(args))
    }

    /// [`CpuExecutable::run_donated`] with each step's wall time, as
    /// [`CpuExecutable::run_profiled`] gives them.
    pub fn run_donated_profiled(&self, args: Vec<Cow<'_, Tensor>>) -> Result<(Vec<Tensor>, StepTimes), CpuError> {
        let mut times = Vec::with_capacity(self.steps.len());
        let out = self.run_timed(args, Some(&mut times))?;
        let named = self.steps.iter().map(|s| s.describe.clone()).zip(times).collect();
        Ok((out, named))
    }

    /// Checks `args` against the function's parameters (names, dtypes,
    /// shapes, one batch size) as a run does first; returns the batch size.
    /// A caller about to donate arguments checks here, so that a mistake
    /// does not cost it the tensors.
    pub fn check_args<T: std::borrow::Borrow<Tensor>>(&self, args: &[T]) -> Result<Option<usize>, CpuError> {
        let typed: Vec<(String, Type)> = self.arguments().into_iter().map(|(name, ty)| (name.to_string(), Type::Tensor(ty.clone()))).collect();
        let typed: Vec<(String, &Type)> = typed.iter().map(|(n, t)| (n.clone(), t)).collect();
        Ok(dlc_backends::check_args(&self.name, &typed, args)?)
    }

    fn run_timed(&self, args: Vec<Cow<'_, Tensor>>, times: Option<&mut Vec<std::time::Duration>>) -> Result<Vec<Tensor>, CpuError> {
        let batch = self.check_args(&args)?;
        // The executable's arena, re-planned if the batch size changed; a
        // run that finds it taken by a concurrent run plans one of its own.
        let mut own = None;
        let mut guard = match self.arena.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let arena: &mut Arena = match guard.as_deref_mut() {
            Some(slot) => {
                let a = slot.get_or_insert_with(|| Arena::new(&self.layout, batch));
                a.fit(&self.layout, batch);
                a
            }
            None => own.insert(Arena::new(&self.layout, batch)),
        };
        if cfg!(debug_assertions) {
            arena.poison();
        }
        if self.threads > 1 && self.splits_at(batch) {
            self.pool.install(|| hot(|| self.run_steps(args, arena, batch, times)))
        } else {
            self.run_steps(args, arena, batch, times)
        }
    }

    /// True when some step at batch size `batch` is large enough to split.
    fn splits_at(&self, batch: Option<usize>) -> bool {
        self.steps.iter().any(|s| match &s.work {
            Work::None => false,
            Work::Points(dims, factor) => memory::concrete(dims, batch).iter().product::<usize>() * factor >= self.par_min_cost,
            Work::Macs(dims) => memory::concrete(dims, batch).iter().product::<usize>() >= PAR_MIN_MACS,
        })
    }

    fn run_steps(&self, args: Vec<Cow<'_, Tensor>>, arena: &mut Arena, batch: Option<usize>, mut times: Option<&mut Vec<std::time::Duration>>) -> Result<Vec<Tensor>, CpuError> {
        let mut env: Vec<Option<Val<'_>>> = (0..self.num_values).map(|_| None).collect();
        let mut args = args.into_iter();
        for ((v, _, _), bound) in self.args.iter().zip(&self.bound) {
            let t = match bound {
                Some(t) => Cow::Borrowed(t),
                None => args.next().ok_or_else(|| CpuError::Malformed("fewer arguments than checked".into()))?,
            };
            env[v.0 as usize] = Some(Val::Tensor(t));
        }
        for (v, t) in &self.constants {
            env[v.0 as usize] = Some(Val::Tensor(Cow::Borrowed(t)));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let start = std::time::Instant::now();
            if step.extra.is_empty() {
                let out = self.run_step(i, &mut env, arena, batch)?;
                env[step.output.0 as usize] = Some(out);
            } else {
                let outs = self.run_outputs_step(i, &mut env, arena, batch)?;
                for (v, out) in std::iter::once(step.output).chain(step.extra.iter().map(|(v, _)| *v)).zip(outs) {
                    env[v.0 as usize] = Some(Val::Tensor(Cow::Owned(out)));
                }
            }
            if let Some(t) = times.as_deref_mut() {
                t.push(start.elapsed());
            }
            for v in &step.frees {
                env[v.0 as usize] = None;
            }
        }
        let mut out = Vec::with_capacity(self.results.len());
        for (i, &v) in self.results.iter().enumerate() {
            let last = !self.results[i + 1..].contains(&v);
            let t = match env[v.0 as usize].take() {
                None => return Err(CpuError::Malformed(format!("result %{} is not defined", v.0))),
                Some(Val::Tensor(t)) if last => t.into_owned(),
                // Results never live in the arena (the plan keeps them out),
                // so this copy is for returning one value twice.
                val => {
                    let val = val.expect("matched above");
                    let t = exec::tensor_of(&val, &arena.reads())?.into_owned();
                    env[v.0 as usize] = Some(val);
                    t
                }
            };
            out.push(t);
        }
        Ok(out)
    }
}

/// Arguments the run only reads.
fn borrowed<T: std::borrow::Borrow<Tensor>>(args: &[T]) -> Vec<Cow<'_, Tensor>> {
    args.iter().map(|t| Cow::Borrowed(t.borrow())).collect()
}

/// Runs `f` on the current worker of a rayon pool while the pool's other
/// workers spin, each running whatever job the run splits off as soon as
/// it is pushed: a sleeping worker takes tens of microseconds to wake (on
/// the 2-vCPU machine the benchmarks run on, 20–50 µs, as much as a whole
/// elementwise kernel), which would eat the gain of every split. Like
/// OpenMP's active wait policy, the spinning costs the other cores for the
/// duration of the run; they yield to the OS scheduler between polls.
fn hot<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Stops the spinning when the run ends, panics included (the scope
    /// waits for the spinners, so a panic that left them spinning would hang).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let active = AtomicBool::new(true);
    let me = rayon::current_thread_index();
    rayon::in_place_scope(|s| {
        let _stop = Stop(&active);
        s.spawn_broadcast(|_, ctx| {
            if Some(ctx.index()) == me {
                return;
            }
            while active.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
        });
        f()
    })
}
