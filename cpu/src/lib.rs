//! dlc's CPU executable: a kernel-level function compiled once and run
//! many times, at any batch size.
//!
//! Its input is a function at the structured-kernel level (`dlc compile
//! --emit kernel`; `dlc_passes::to_kernels` produces it): every top-level op
//! becomes one step ([`steps`]): elementwise `kernel.generic`s run as dlc-jit
//! elementwise kernels, other generics (reductions, pooling windows,
//! transposed or strided reads) as dlc-jit loop nests, `kernel.matmul` and
//! `kernel.conv2d` on dlc-contract's gemm with their bias/ReLU epilogue,
//! `dl.reshape` as a view, and what remains (gather, concat, one-hot,
//! argmax, integer kernels, `dl` ops not lowered) on the reference
//! interpreter, one op at a time. Constants are evaluated at compile time.
//!
//! [`CpuExecutable::run`] checks the arguments as the interpreter does
//! (dtype, rank, static dims, one batch size for every `?`), runs the steps
//! over a table of value buffers indexed by [`ValueId`], frees each buffer
//! after its last use and returns the function's results. Contractions use
//! `threads` workers of a private rayon pool; at a fixed thread count every
//! run is bit-identical.
#![deny(missing_docs)]

mod movement;
pub mod steps;

use dlc_backends::{InterpError, Tensor, eval_op};
use dlc_contract::{Conv2d, ContractError, Epilogue, Transpose, View};
use dlc_ir::{AttrView, Attrs, DType, Function, OpKind, TensorType, Type, ValueId};
use dlc_jit::{Buffer, BufferMut, Jit, JitError};
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;
use steps::Exec;

/// Each step's description and wall time, in execution order.
pub type StepTimes = Vec<(String, std::time::Duration)>;

/// Options for [`CpuExecutable::compile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    /// Worker threads for contractions (at least 1).
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

struct Step {
    exec: Exec,
    output: ValueId,
    /// Values whose last use is this step: freed after it.
    frees: Vec<ValueId>,
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
                    let &[r] = op.results.as_slice() else {
                        return Err(CpuError::Unsupported(format!("'{}' with {} results", op.kind.name(), op.results.len())));
                    };
                    jobs.push((o, r));
                }
            }
        }
        // Kernels compile on the executable's threads, each distinct one once.
        let cache = steps::KernelCache::default();
        let compiled: Vec<Result<(Exec, String), CpuError>> = {
            use rayon::prelude::*;
            pool.install(|| jobs.par_iter().map(|&(o, _)| steps::compile_op(func, o, &jit, &cache)).collect())
        };
        let mut ready: Vec<(Exec, ValueId, String)> = Vec::with_capacity(jobs.len());
        for ((_, r), c) in jobs.iter().zip(compiled) {
            let (exec, describe) = c?;
            ready.push((exec, *r, describe));
        }
        let consts = constants
            .iter()
            .map(|&o| {
                let op = func.op(o);
                Ok((op.results[0], eval_op(op.kind, &op.attrs, &[], None)?))
            })
            .collect::<Result<Vec<_>, CpuError>>()?;
        // Last uses: a value is freed after the last step that reads it,
        // unless the function returns it.
        let results = func.returned_values();
        let mut last: Vec<Option<usize>> = vec![None; func.num_values()];
        for (i, (e, _, _)) in ready.iter().enumerate() {
            for v in e.inputs() {
                last[v.0 as usize] = Some(i);
            }
        }
        for &v in &results {
            last[v.0 as usize] = None;
        }
        let is_const_or_arg = |v: ValueId| func.args().contains(&v) || consts.iter().any(|(c, _)| *c == v);
        let steps = ready
            .into_iter()
            .enumerate()
            .map(|(i, (exec, output, describe))| {
                let mut frees: Vec<ValueId> = exec.inputs().into_iter().filter(|&v| last[v.0 as usize] == Some(i) && !is_const_or_arg(v)).collect();
                frees.dedup();
                Step { exec, output, frees, describe }
            })
            .collect();
        let args = func
            .args()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let name = func.value(v).name.clone().unwrap_or_else(|| format!("arg{i}"));
                Ok((v, name, tensor_ty(func, v)?))
            })
            .collect::<Result<_, CpuError>>()?;
        Ok(CpuExecutable { name: func.name.clone(), args, results, num_values: func.num_values(), constants: consts, steps, threads, pool })
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

    /// Runs the function on `args` and returns its results.
    pub fn run(&self, args: &[Tensor]) -> Result<Vec<Tensor>, CpuError> {
        self.run_timed(args, None)
    }

    /// Like [`CpuExecutable::run`], also returning each step's description
    /// and wall time, in execution order.
    pub fn run_profiled(&self, args: &[Tensor]) -> Result<(Vec<Tensor>, StepTimes), CpuError> {
        let mut times = Vec::with_capacity(self.steps.len());
        let out = self.run_timed(args, Some(&mut times))?;
        let named = self.steps.iter().map(|s| s.describe.clone()).zip(times).collect();
        Ok((out, named))
    }

    fn run_timed(&self, args: &[Tensor], mut times: Option<&mut Vec<std::time::Duration>>) -> Result<Vec<Tensor>, CpuError> {
        let typed: Vec<(String, Type)> = self.args.iter().map(|(_, name, ty)| (name.clone(), Type::Tensor(ty.clone()))).collect();
        let typed: Vec<(String, &Type)> = typed.iter().map(|(n, t)| (n.clone(), t)).collect();
        let batch = dlc_backends::check_args(&self.name, &typed, args)?;
        let mut env: Vec<Option<Cow<'_, Tensor>>> = (0..self.num_values).map(|_| None).collect();
        for ((v, _, _), t) in self.args.iter().zip(args) {
            env[v.0 as usize] = Some(Cow::Borrowed(t));
        }
        for (v, t) in &self.constants {
            env[v.0 as usize] = Some(Cow::Borrowed(t));
        }
        {
            for step in &self.steps {
                let start = std::time::Instant::now();
                let out = match &step.exec {
                    // A view of a value whose last use this is: move it.
                    Exec::Reshape { input, attrs } if step.frees.contains(input) && matches!(env[input.0 as usize], Some(Cow::Owned(_))) => {
                        let Some(Cow::Owned(t)) = env[input.0 as usize].take() else { unreachable!("checked above") };
                        reshape_owned(t, attrs, batch)?
                    }
                    e => self.exec(e, &env, batch)?,
                };
                if let Some(t) = times.as_deref_mut() {
                    t.push(start.elapsed());
                }
                for v in &step.frees {
                    env[v.0 as usize] = None;
                }
                env[step.output.0 as usize] = Some(Cow::Owned(out));
            }
        }
        let mut out = Vec::with_capacity(self.results.len());
        for (i, &v) in self.results.iter().enumerate() {
            let slot = &mut env[v.0 as usize];
            let t = if self.results[i + 1..].contains(&v) { slot.clone() } else { slot.take() };
            let t = t.ok_or_else(|| CpuError::Malformed(format!("result %{} is not defined", v.0)))?;
            out.push(t.into_owned());
        }
        Ok(out)
    }

    fn exec(&self, e: &Exec, env: &[Option<Cow<'_, Tensor>>], batch: Option<usize>) -> Result<Tensor, CpuError> {
        let get = |v: ValueId| -> Result<&Tensor, CpuError> {
            env[v.0 as usize].as_deref().ok_or_else(|| CpuError::Malformed(format!("%{} is used before it is defined", v.0)))
        };
        match e {
            Exec::Interp { kind, attrs, inputs } => {
                let ins = inputs.iter().map(|&v| get(v)).collect::<Result<Vec<_>, _>>()?;
                if *kind == OpKind::Concat
                    && let Some(axis) = ins.first().and_then(|x| AttrView::new(*kind, attrs).int("axis").ok().and_then(|a| dlc_ir::registry::shape::axis(a, x.rank()).ok()))
                    && let Some(joined) = movement::concat(&ins, axis)
                {
                    return joined;
                }
                Ok(eval_op(*kind, attrs, &ins, batch)?)
            }
            Exec::Reshape { input, attrs } => {
                let t = get(*input)?;
                match reshape_contiguous(attrs, t, batch) {
                    Some(t) => Ok(t),
                    None => Ok(eval_op(OpKind::Reshape, attrs, &[t], batch)?),
                }
            }
            Exec::InterpKernel { func, inputs } => {
                let ins = inputs.iter().map(|&v| get(v).cloned()).collect::<Result<Vec<_>, _>>()?;
                let mut out = dlc_backends::run(func, &ins)?;
                out.pop().ok_or_else(|| CpuError::Malformed("a kernel returned nothing".into()))
            }
            Exec::Structured { kernel, generic, inputs } => {
                let ins = inputs.iter().map(|&v| get(v)).collect::<Result<Vec<_>, _>>()?;
                self.structured(kernel, generic, &ins, batch)
            }
            Exec::Elementwise { kernel, lowered, inputs } => {
                let shape = lowered
                    .output_shape(batch)
                    .ok_or_else(|| CpuError::Unsupported("a kernel's output has a ? dim but no argument binds the batch".into()))?;
                let iter = lowered.iteration_shape(&shape)?;
                let ins = inputs.iter().map(|&v| get(v)).collect::<Result<Vec<_>, _>>()?;
                let slices: Vec<Contig<'_>> = ins.iter().map(|t| Contig::of(t)).collect::<Result<_, _>>()?;
                let bufs: Vec<Buffer<'_>> = slices.iter().map(Contig::buffer).collect();
                with_output(lowered.output.dtype, &shape, |out| Ok(kernel.run_buffers(&bufs, out, &iter)?))
            }
            Exec::Matmul { a, b, t, bias, relu } => {
                let (a, b) = (get(*a)?, get(*b)?);
                let bias = bias.map(get).transpose()?;
                match (a, b) {
                    (Tensor::F32(x), Tensor::F32(y)) => self.matmul::<f32>(x, y, *t, bias.map(f32_of).transpose()?, *relu).map(Tensor::F32),
                    (Tensor::F64(x), Tensor::F64(y)) => self.matmul::<f64>(x, y, *t, bias.map(f64_of).transpose()?, *relu).map(Tensor::F64),
                    _ => Err(CpuError::Unsupported(format!("matmul of {} and {}", a.describe(), b.describe()))),
                }
            }
            Exec::Conv2d { x, w, conv, bias, relu } => {
                let (x, w) = (get(*x)?, get(*w)?);
                let bias = bias.map(get).transpose()?;
                match (x, w) {
                    (Tensor::F32(x), Tensor::F32(y)) => self.conv::<f32>(x, y, *conv, bias.map(f32_of).transpose()?, *relu).map(Tensor::F32),
                    (Tensor::F64(x), Tensor::F64(y)) => self.conv::<f64>(x, y, *conv, bias.map(f64_of).transpose()?, *relu).map(Tensor::F64),
                    _ => Err(CpuError::Unsupported(format!("conv2d of {} and {}", x.describe(), w.describe()))),
                }
            }
        }
    }

    fn matmul<T: dlc_contract::Element + Clone>(
        &self,
        a: &ArrayD<T>,
        b: &ArrayD<T>,
        t: Transpose,
        bias: Option<Cow<'_, [T]>>,
        relu: bool,
    ) -> Result<ArrayD<T>, CpuError> {
        let (ad, bd) = (contiguous(a), contiguous(b));
        let shape = dlc_contract::matmul_shape(a.shape(), b.shape(), t)?;
        let mut out = vec![T::ZERO; shape.iter().product()];
        let epi = Epilogue { bias: bias.as_deref(), relu };
        let k = if t.a { a.shape()[a.ndim() - 2] } else { a.shape()[a.ndim() - 1] };
        self.parallel(out.len() * k, |threads| {
            dlc_contract::matmul(View::new(&ad, a.shape()), View::new(&bd, b.shape()), &mut out, t, epi, threads)
        })?;
        array(&shape, out)
    }

    fn conv<T: dlc_contract::Element + Clone>(
        &self,
        x: &ArrayD<T>,
        w: &ArrayD<T>,
        conv: Conv2d,
        bias: Option<Cow<'_, [T]>>,
        relu: bool,
    ) -> Result<ArrayD<T>, CpuError> {
        let (xd, wd) = (contiguous(x), contiguous(w));
        let shape = conv.out_shape(x.shape(), w.shape())?;
        let mut out = vec![T::ZERO; shape.iter().product()];
        let epi = Epilogue { bias: bias.as_deref(), relu };
        let taps: usize = w.shape()[1..].iter().product();
        self.parallel(out.len() * taps, |threads| {
            let mut scratch = vec![T::ZERO; dlc_contract::conv2d_scratch_len::<T>(x.shape(), w.shape(), conv, threads)?];
            dlc_contract::conv2d(View::new(&xd, x.shape()), View::new(&wd, w.shape()), &mut out, conv, epi, &mut scratch, threads)
        })?;
        array(&shape, out)
    }

    /// Runs a structured kernel: the iteration space from the sizes (`?` the
    /// batch), the result's shape from its map.
    fn structured(&self, kernel: &dlc_jit::CompiledGeneric, g: &dlc_ir::kernel::Generic, ins: &[&Tensor], batch: Option<usize>) -> Result<Tensor, CpuError> {
        let sizes: Vec<usize> = g
            .sizes
            .iter()
            .map(|s| s.map(|n| n as usize).or(batch))
            .collect::<Option<_>>()
            .ok_or_else(|| CpuError::Unsupported("a kernel's iteration space has a ? but no argument binds the batch".into()))?;
        let shape: Vec<usize> = g.out_map.results.iter().map(|e| e.as_dim().map_or(1, |k| sizes[k])).collect();
        let slices: Vec<Contig<'_>> = ins.iter().map(|t| Contig::of(t)).collect::<Result<_, _>>()?;
        let bufs: Vec<(Buffer<'_>, &[usize])> = slices.iter().zip(ins).map(|(c, t)| (c.buffer(), t.shape())).collect();
        with_output(g.dtype, &shape, |out| Ok(kernel.run(&bufs, (out, &shape), &sizes)?))
    }

    /// Runs a contraction of `macs` multiply-adds with this executable's
    /// threads inside its rayon pool, or on the calling thread with one
    /// thread when it is too small to split (dlc-contract would use one
    /// anyway, and entering the pool costs a thread hand-off per call).
    fn parallel<R: Send>(&self, macs: usize, f: impl FnOnce(usize) -> R + Send) -> R {
        if self.threads > 1 && macs >= PAR_MIN_MACS {
            self.pool.install(|| f(self.threads))
        } else {
            f(1)
        }
    }
}

/// Runs `fill` on a fresh output buffer of `dtype` and `shape` and wraps it.
fn with_output(dtype: DType, shape: &[usize], fill: impl FnOnce(BufferMut<'_>) -> Result<(), CpuError>) -> Result<Tensor, CpuError> {
    let n: usize = shape.iter().product();
    match dtype {
        DType::F32 => {
            let mut out = vec![0f32; n];
            fill(BufferMut::F32(&mut out))?;
            Ok(Tensor::F32(array(shape, out)?))
        }
        DType::F64 => {
            let mut out = vec![0f64; n];
            fill(BufferMut::F64(&mut out))?;
            Ok(Tensor::F64(array(shape, out)?))
        }
        DType::I1 => {
            let mut out = vec![false; n];
            fill(BufferMut::I1(&mut out))?;
            Ok(Tensor::I1(array(shape, out)?))
        }
        d => Err(CpuError::Unsupported(format!("a kernel writing {d}"))),
    }
}

/// `dl.reshape` of a tensor this step owns: the same elements under the new
/// shape, without a copy when they are row-major already.
fn reshape_owned(t: Tensor, attrs: &Attrs, batch: Option<usize>) -> Result<Tensor, CpuError> {
    let dims = AttrView::new(OpKind::Reshape, attrs).ints("shape").map_err(CpuError::Malformed)?;
    let shape: Option<Vec<usize>> = dims.iter().map(|&d| if d == -1 { batch } else { usize::try_from(d).ok() }).collect();
    let Some(shape) = shape.filter(|s| s.iter().product::<usize>() == t.len()) else {
        return Ok(eval_op(OpKind::Reshape, attrs, &[&t], batch)?);
    };
    fn go<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, CpuError> {
        let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
        a.into_shape_with_order(IxDyn(shape)).map_err(|e| CpuError::Malformed(e.to_string()))
    }
    Ok(match t {
        Tensor::F32(a) => Tensor::F32(go(a, &shape)?),
        Tensor::F64(a) => Tensor::F64(go(a, &shape)?),
        Tensor::I32(a) => Tensor::I32(go(a, &shape)?),
        Tensor::I64(a) => Tensor::I64(go(a, &shape)?),
        Tensor::I1(a) => Tensor::I1(go(a, &shape)?),
    })
}

fn array<T>(shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, CpuError> {
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| CpuError::Malformed(e.to_string()))
}

/// The elements of `a` in row-major order, borrowed when already contiguous
/// (otherwise copied lane by lane along the last axis).
fn contiguous<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None if a.ndim() == 0 => Cow::Owned(a.iter().cloned().collect()),
        None => {
            let mut v = Vec::with_capacity(a.len());
            for lane in a.rows() {
                match lane.as_slice() {
                    Some(s) => v.extend_from_slice(s),
                    None => v.extend(lane.iter().cloned()),
                }
            }
            Cow::Owned(v)
        }
    }
}

/// `dl.reshape` of a row-major tensor: one copy of its elements under the
/// new shape (`None`: leave it to the interpreter, which checks and reports).
fn reshape_contiguous(attrs: &Attrs, t: &Tensor, batch: Option<usize>) -> Option<Tensor> {
    let dims = AttrView::new(OpKind::Reshape, attrs).ints("shape").ok()?;
    let shape: Vec<usize> = dims.iter().map(|&d| if d == -1 { batch } else { usize::try_from(d).ok() }).collect::<Option<_>>()?;
    if shape.iter().product::<usize>() != t.len() {
        return None;
    }
    fn go<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Option<ArrayD<T>> {
        ArrayD::from_shape_vec(IxDyn(shape), contiguous(a).into_owned()).ok()
    }
    Some(match t {
        Tensor::F32(a) => Tensor::F32(go(a, &shape)?),
        Tensor::F64(a) => Tensor::F64(go(a, &shape)?),
        Tensor::I32(a) => Tensor::I32(go(a, &shape)?),
        Tensor::I64(a) => Tensor::I64(go(a, &shape)?),
        Tensor::I1(a) => Tensor::I1(go(a, &shape)?),
    })
}

fn f32_of(t: &Tensor) -> Result<Cow<'_, [f32]>, CpuError> {
    t.as_f32().map(contiguous).ok_or_else(|| CpuError::Unsupported(format!("bias {} for an f32 contraction", t.describe())))
}

fn f64_of(t: &Tensor) -> Result<Cow<'_, [f64]>, CpuError> {
    t.as_f64().map(contiguous).ok_or_else(|| CpuError::Unsupported(format!("bias {} for an f64 contraction", t.describe())))
}

/// A tensor's elements, contiguous, as one of the JIT's buffer types.
enum Contig<'a> {
    F32(Cow<'a, [f32]>),
    F64(Cow<'a, [f64]>),
    I1(Cow<'a, [bool]>),
}

impl<'a> Contig<'a> {
    fn of(t: &'a Tensor) -> Result<Contig<'a>, CpuError> {
        match t {
            Tensor::F32(a) => Ok(Contig::F32(contiguous(a))),
            Tensor::F64(a) => Ok(Contig::F64(contiguous(a))),
            Tensor::I1(a) => Ok(Contig::I1(contiguous(a))),
            other => Err(CpuError::Unsupported(format!("a kernel input of {}", other.describe()))),
        }
    }

    fn buffer(&self) -> Buffer<'_> {
        match self {
            Contig::F32(s) => Buffer::F32(s),
            Contig::F64(s) => Buffer::F64(s),
            Contig::I1(s) => Buffer::I1(s),
        }
    }
}

