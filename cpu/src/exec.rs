//! Running one step: where its inputs are read from (arguments, constants,
//! owned tensors, the arena), where its output goes (its arena block, a
//! buffer of its own, or, for a reshape of an arena value, nowhere new),
//! and the call that computes it.

use crate::arena::{Arena, Reads, Region};
use crate::memory::{Home, arena_index, concrete};
use crate::steps::Exec;
use crate::{CpuError, CpuExecutable, Packed, Step, movement};
use dlc_backends::{Tensor, eval_op};
use dlc_contract::{Conv2d, Epilogue, MaxPool2d, Transpose, View};
use dlc_ir::{AttrView, Attrs, DType, OpKind, ValueId};
use dlc_jit::{Buffer, BufferMut};
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;

/// A value at run time.
pub(crate) enum Val<'a> {
    /// An argument or constant (borrowed), or a tensor of its own (owned).
    Tensor(Cow<'a, Tensor>),
    /// Row-major elements in the arena, of this shape.
    Arena { region: Region, shape: Vec<usize> },
}

/// A kernel input: its elements, row-major and contiguous, and its shape.
pub(crate) struct In<'a> {
    pub data: Contig<'a>,
    pub shape: &'a [usize],
}

/// A fresh output buffer (for a step whose output is not in the arena).
pub(crate) enum Fresh {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I1(Vec<bool>),
}

impl Fresh {
    pub(crate) fn new(dtype: DType, n: usize) -> Result<Fresh, CpuError> {
        match dtype {
            DType::F32 => Ok(Fresh::F32(vec![0.0; n])),
            DType::F64 => Ok(Fresh::F64(vec![0.0; n])),
            DType::I1 => Ok(Fresh::I1(vec![false; n])),
            d => Err(CpuError::Unsupported(format!("a kernel writing {d}"))),
        }
    }

    /// `t`'s own vector as an output buffer of `n` elements of `dtype`, when
    /// it is one, row-major from its start; otherwise `t` back.
    pub(crate) fn take(t: Tensor, dtype: DType, n: usize) -> Result<Fresh, Tensor> {
        fn whole<T: Clone>(a: ArrayD<T>, n: usize) -> Result<Vec<T>, ArrayD<T>> {
            if !a.is_standard_layout() || a.len() != n {
                return Err(a);
            }
            // Row-major from `off`: the whole vector, or (an array cut out
            // of a bigger one) a copy of its part.
            Ok(match a.into_raw_vec_and_offset() {
                (v, Some(0)) if v.len() == n => v,
                (v, Some(off)) if off + n <= v.len() => v[off..off + n].to_vec(),
                _ => Vec::new(),
            })
        }
        match (t, dtype) {
            (Tensor::F32(a), DType::F32) => whole(a, n).map(Fresh::F32).map_err(Tensor::F32),
            (Tensor::F64(a), DType::F64) => whole(a, n).map(Fresh::F64).map_err(Tensor::F64),
            (Tensor::I1(a), DType::I1) => whole(a, n).map(Fresh::I1).map_err(Tensor::I1),
            (t, _) => Err(t),
        }
    }

    pub(crate) fn buffer(&mut self) -> BufferMut<'_> {
        match self {
            Fresh::F32(v) => BufferMut::F32(v),
            Fresh::F64(v) => BufferMut::F64(v),
            Fresh::I1(v) => BufferMut::I1(v),
        }
    }

    pub(crate) fn into_tensor(self, shape: &[usize]) -> Result<Tensor, CpuError> {
        Ok(match self {
            Fresh::F32(v) => Tensor::F32(array(shape, v)?),
            Fresh::F64(v) => Tensor::F64(array(shape, v)?),
            Fresh::I1(v) => Tensor::I1(array(shape, v)?),
        })
    }
}

/// A kernel's iteration space at batch size `batch`.
pub(crate) fn iteration_sizes(sizes: &[Option<u64>], batch: Option<usize>) -> Result<Vec<usize>, CpuError> {
    sizes
        .iter()
        .map(|s| s.map(|n| n as usize).or(batch))
        .collect::<Option<_>>()
        .ok_or_else(|| CpuError::Unsupported("a kernel's iteration space has a ? but no argument binds the batch".into()))
}

fn undefined(v: ValueId) -> CpuError {
    CpuError::Malformed(format!("%{} is used before it is defined", v.0))
}

/// `v`'s elements and shape, read where it lives.
pub(crate) fn input<'a>(env: &'a [Option<Val<'_>>], reads: &Reads<'a>, v: ValueId) -> Result<In<'a>, CpuError> {
    match env[v.0 as usize].as_ref().ok_or_else(|| undefined(v))? {
        Val::Tensor(t) => Ok(In { data: Contig::of(t)?, shape: t.shape() }),
        Val::Arena { region, shape } => {
            let data = match reads.get(region)? {
                Buffer::F32(s) => Contig::F32(Cow::Borrowed(s)),
                Buffer::F64(s) => Contig::F64(Cow::Borrowed(s)),
                Buffer::I1(s) => Contig::I1(Cow::Borrowed(s)),
                Buffer::I64(s) => Contig::I64(Cow::Borrowed(s)),
            };
            Ok(In { data, shape })
        }
    }
}

/// `v` as a tensor (an arena value is copied out).
pub(crate) fn tensor<'a>(env: &'a [Option<Val<'_>>], reads: &Reads<'_>, v: ValueId) -> Result<Cow<'a, Tensor>, CpuError> {
    tensor_of(env[v.0 as usize].as_ref().ok_or_else(|| undefined(v))?, reads)
}

/// A value as a tensor (an arena value is copied out).
pub(crate) fn tensor_of<'a>(val: &'a Val<'_>, reads: &Reads<'_>) -> Result<Cow<'a, Tensor>, CpuError> {
    match val {
        Val::Tensor(t) => Ok(Cow::Borrowed(&**t)),
        Val::Arena { region, shape } => Ok(Cow::Owned(match reads.get(region)? {
            Buffer::F32(s) => Tensor::F32(array(shape, s.to_vec())?),
            Buffer::F64(s) => Tensor::F64(array(shape, s.to_vec())?),
            Buffer::I1(s) => Tensor::I1(array(shape, s.to_vec())?),
            Buffer::I64(s) => Tensor::I64(array(shape, s.to_vec())?),
        })),
    }
}

/// The shape a `dl.reshape` gives (its `-1` is the batch).
fn reshape_dims(attrs: &Attrs, batch: Option<usize>) -> Result<Option<Vec<usize>>, CpuError> {
    let dims = AttrView::new(OpKind::Reshape, attrs).ints("shape").map_err(CpuError::Malformed)?;
    Ok(dims.iter().map(|&d| if d == -1 { batch } else { usize::try_from(d).ok() }).collect())
}

impl CpuExecutable {
    /// Runs step `i` and returns its output.
    pub(crate) fn run_step<'t>(&self, i: usize, env: &mut [Option<Val<'t>>], arena: &mut Arena, batch: Option<usize>) -> Result<Val<'t>, CpuError> {
        let step = &self.steps[i];
        let home = self.layout.homes[i];
        match &step.exec {
            Exec::Reshape { input, attrs } => self.reshape(step, *input, attrs, home, env, arena, batch),
            e if e.writes_slice() && arena_index(step.out.dtype).is_some() => {
                let donor = self.donor(i, env, batch);
                self.write_step(i, env, arena, batch, donor)
            }
            e => Ok(Val::Tensor(Cow::Owned(self.interp(e, env, &arena.reads(), batch)?))),
        }
    }

    /// The buffer of step `i`'s in-place input, taken out of `env`, when
    /// its output goes outside the arena and that input is a tensor the run
    /// owns (a donated argument, an interpreter's output) that fits: the
    /// output is then written over it rather than into a new allocation.
    fn donor(&self, i: usize, env: &mut [Option<Val<'_>>], batch: Option<usize>) -> Option<(ValueId, Fresh)> {
        let step = &self.steps[i];
        let v = step.in_place?;
        if self.layout.homes[i] != Home::Outside || (batch.is_none() && step.out.shape.iter().any(|d| d.as_static().is_none())) {
            return None;
        }
        let n: usize = concrete(&step.out.shape, batch).iter().product();
        let slot = &mut env[v.0 as usize];
        if !matches!(slot, Some(Val::Tensor(Cow::Owned(_)))) {
            return None;
        }
        let Some(Val::Tensor(Cow::Owned(t))) = slot.take() else { unreachable!("matched above") };
        match Fresh::take(t, step.out.dtype, n) {
            Ok(f) => Some((v, f)),
            Err(t) => {
                *slot = Some(Val::Tensor(Cow::Owned(t)));
                None
            }
        }
    }

    /// A step that writes its output into a slice: its arena block (over
    /// its in-place input's, when the plan says so), a donor's buffer, or
    /// a buffer of its own.
    fn write_step<'t>(&self, i: usize, env: &[Option<Val<'t>>], arena: &mut Arena, batch: Option<usize>, donor: Option<(ValueId, Fresh)>) -> Result<Val<'t>, CpuError> {
        let step = &self.steps[i];
        if batch.is_none() && step.out.shape.iter().any(|d| d.as_static().is_none()) {
            return Err(CpuError::Unsupported("a kernel's output has a ? dim but no argument binds the batch".into()));
        }
        let shape = concrete(&step.out.shape, batch);
        let over = if self.layout.in_place[i] { step.in_place } else { donor.as_ref().map(|(v, _)| *v) };
        let mut holes = Vec::with_capacity(2);
        let region = match self.layout.homes[i] {
            Home::Block(b) => Some(arena.region(&self.layout, b)),
            _ => None,
        };
        holes.extend(region.clone());
        // A scratch of no elements (a 1x1 convolution of one image reads
        // and writes in place) is no buffer: its empty range may sit inside
        // another block's.
        if let Some(s) = self.layout.scratch[i].map(|s| arena.region(&self.layout, s)).filter(|s| !s.range.is_empty()) {
            holes.push(s);
        }
        if cfg!(debug_assertions) {
            check_free(i, env, &holes, over)?;
        }
        let (reads, bufs) = arena.split(&holes)?;
        let mut bufs = bufs.into_iter();
        let donated = donor.is_some();
        let mut fresh = match (region.as_ref(), donor) {
            (Some(_), _) => None,
            (None, Some((_, f))) => Some(f),
            (None, None) => Some(Fresh::new(step.out.dtype, shape.iter().product())?),
        };
        let fresh_out = fresh.is_some() && !donated;
        let out = match fresh.as_mut() {
            Some(f) => f.buffer(),
            None => bufs.next().ok_or_else(|| CpuError::Malformed("no arena buffer for an output".into()))?,
        };
        self.write(&step.exec, self.packed[i].as_ref(), env, &reads, out, bufs.next(), &shape, batch, fresh_out, over)?;
        Ok(match (region, fresh) {
            (Some(region), _) => Val::Arena { region, shape },
            (None, Some(f)) => Val::Tensor(Cow::Owned(f.into_tensor(&shape)?)),
            (None, None) => unreachable!("a step without a block has a fresh buffer"),
        })
    }

    /// Computes a slice-writing step into `out`, which holds the value
    /// `over` (an elementwise step's in-place input) when there is one; a
    /// matmul with a `packed` right operand reads that rather than its `b`.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        e: &Exec,
        packed: Option<&Packed>,
        env: &[Option<Val<'_>>],
        reads: &Reads<'_>,
        out: BufferMut<'_>,
        scratch: Option<BufferMut<'_>>,
        shape: &[usize],
        batch: Option<usize>,
        fresh: bool,
        over: Option<ValueId>,
    ) -> Result<(), CpuError> {
        let inputs = |vs: &[ValueId]| vs.iter().map(|&v| input(env, reads, v)).collect::<Result<Vec<_>, _>>();
        match e {
            Exec::Elementwise { kernel, lowered, inputs: vs } => {
                let iter = lowered.iteration_shape(shape)?;
                let ins = vs.iter().map(|&v| if Some(v) == over { Ok(None) } else { input(env, reads, v).map(Some) }).collect::<Result<Vec<_>, _>>()?;
                let bufs: Vec<Option<Buffer<'_>>> = ins.iter().map(|i| i.as_ref().map(|i| i.data.buffer())).collect();
                self.run_elementwise(kernel, &bufs, out, &iter, fresh)
            }
            Exec::Structured { kernel, generic, inputs: vs, partial } => {
                let sizes = iteration_sizes(&generic.sizes, batch)?;
                let ins = inputs(vs)?;
                let bufs: Vec<(Buffer<'_>, &[usize])> = ins.iter().map(|i| (i.data.buffer(), i.shape)).collect();
                self.run_structured(kernel, &bufs, out, shape, &sizes, partial.as_deref())
            }
            Exec::Matmul { a, t, bias, relu, .. } if packed.is_some() => {
                let a = input(env, reads, *a)?;
                let bias = bias.map(|v| input(env, reads, v)).transpose()?;
                let bias = bias.as_ref().map(|b| &b.data);
                match (&a.data, packed, out) {
                    (Contig::F32(x), Some(Packed::F32(p)), BufferMut::F32(o)) => self.matmul_packed(View::new(x, a.shape), p, o, t.a, bias_of(bias, Contig::f32)?, *relu),
                    (Contig::F64(x), Some(Packed::F64(p)), BufferMut::F64(o)) => self.matmul_packed(View::new(x, a.shape), p, o, t.a, bias_of(bias, Contig::f64)?, *relu),
                    _ => Err(CpuError::Unsupported(format!("matmul of {:?} by a packed operand of another dtype", a.data.dtype()))),
                }
            }
            Exec::Matmul { a, b, t, bias, relu } => {
                let (a, b) = (input(env, reads, *a)?, input(env, reads, *b)?);
                let bias = bias.map(|v| input(env, reads, v)).transpose()?;
                let bias = bias.as_ref().map(|b| &b.data);
                match (&a.data, &b.data, out) {
                    (Contig::F32(x), Contig::F32(y), BufferMut::F32(o)) => self.matmul(View::new(x, a.shape), View::new(y, b.shape), o, *t, bias_of(bias, Contig::f32)?, *relu),
                    (Contig::F64(x), Contig::F64(y), BufferMut::F64(o)) => self.matmul(View::new(x, a.shape), View::new(y, b.shape), o, *t, bias_of(bias, Contig::f64)?, *relu),
                    _ => Err(CpuError::Unsupported(format!("matmul of {:?} and {:?}", a.data.dtype(), b.data.dtype()))),
                }
            }
            Exec::Conv2d { x, w, conv, bias, relu, pool } => {
                let (x, w) = (input(env, reads, *x)?, input(env, reads, *w)?);
                let bias = bias.map(|v| input(env, reads, v)).transpose()?;
                let bias = bias.as_ref().map(|b| &b.data);
                match (&x.data, &w.data, out) {
                    (Contig::F32(a), Contig::F32(b), BufferMut::F32(o)) => {
                        self.conv(View::new(a, x.shape), View::new(b, w.shape), o, f32s(scratch), *conv, Epilogue { bias: bias_of(bias, Contig::f32)?, relu: *relu }, *pool)
                    }
                    (Contig::F64(a), Contig::F64(b), BufferMut::F64(o)) => {
                        self.conv(View::new(a, x.shape), View::new(b, w.shape), o, f64s(scratch), *conv, Epilogue { bias: bias_of(bias, Contig::f64)?, relu: *relu }, *pool)
                    }
                    _ => Err(CpuError::Unsupported(format!("conv2d of {:?} and {:?}", x.data.dtype(), w.data.dtype()))),
                }
            }
            Exec::Conv2dGradInput { g, w, conv } => {
                let (g, w) = (input(env, reads, *g)?, input(env, reads, *w)?);
                match (&g.data, &w.data, out) {
                    (Contig::F32(a), Contig::F32(b), BufferMut::F32(o)) => self.conv_grad_input(View::new(a, g.shape), View::new(b, w.shape), o, shape, f32s(scratch), *conv),
                    (Contig::F64(a), Contig::F64(b), BufferMut::F64(o)) => self.conv_grad_input(View::new(a, g.shape), View::new(b, w.shape), o, shape, f64s(scratch), *conv),
                    _ => Err(CpuError::Unsupported(format!("conv2d_grad_input of {:?} and {:?}", g.data.dtype(), w.data.dtype()))),
                }
            }
            Exec::Conv2dGradWeight { x, g, conv } => {
                let (x, g) = (input(env, reads, *x)?, input(env, reads, *g)?);
                match (&x.data, &g.data, out) {
                    (Contig::F32(a), Contig::F32(b), BufferMut::F32(o)) => self.conv_grad_weight(View::new(a, x.shape), View::new(b, g.shape), o, shape, f32s(scratch), *conv),
                    (Contig::F64(a), Contig::F64(b), BufferMut::F64(o)) => self.conv_grad_weight(View::new(a, x.shape), View::new(b, g.shape), o, shape, f64s(scratch), *conv),
                    _ => Err(CpuError::Unsupported(format!("conv2d_grad_weight of {:?} and {:?}", x.data.dtype(), g.data.dtype()))),
                }
            }
            Exec::Conv2dPooledGradWeight { x, g, w, bias, conv, pool, relu } => {
                let (x, g, w) = (input(env, reads, *x)?, input(env, reads, *g)?, input(env, reads, *w)?);
                let bias = bias.map(|v| input(env, reads, v)).transpose()?;
                let bias = bias.as_ref().map(|b| &b.data);
                match (&x.data, &g.data, &w.data, out) {
                    (Contig::F32(a), Contig::F32(b), Contig::F32(c), BufferMut::F32(o)) => {
                        self.conv_pooled_grad_weight([View::new(a, x.shape), View::new(b, g.shape), View::new(c, w.shape)], bias_of(bias, Contig::f32)?, o, f32s(scratch), *conv, *pool, *relu)
                    }
                    (Contig::F64(a), Contig::F64(b), Contig::F64(c), BufferMut::F64(o)) => {
                        self.conv_pooled_grad_weight([View::new(a, x.shape), View::new(b, g.shape), View::new(c, w.shape)], bias_of(bias, Contig::f64)?, o, f64s(scratch), *conv, *pool, *relu)
                    }
                    _ => Err(CpuError::Unsupported(format!("kernel.conv2d_grad_weight of {:?}, {:?} and {:?}", x.data.dtype(), g.data.dtype(), w.data.dtype()))),
                }
            }
            Exec::RoutedGradInput { y, g, w, conv, pool, relu } => {
                let (y, g, w) = (input(env, reads, *y)?, input(env, reads, *g)?, input(env, reads, *w)?);
                match (&y.data, &g.data, &w.data, out) {
                    (Contig::F32(a), Contig::F32(b), Contig::F32(c), BufferMut::F32(o)) => {
                        self.routed_grad_input([View::new(a, y.shape), View::new(b, g.shape), View::new(c, w.shape)], o, shape, f32s(scratch), *conv, *pool, *relu)
                    }
                    (Contig::F64(a), Contig::F64(b), Contig::F64(c), BufferMut::F64(o)) => {
                        self.routed_grad_input([View::new(a, y.shape), View::new(b, g.shape), View::new(c, w.shape)], o, shape, f64s(scratch), *conv, *pool, *relu)
                    }
                    _ => Err(CpuError::Unsupported(format!("kernel.routed_conv2d_grad_input of {:?}, {:?} and {:?}", y.data.dtype(), g.data.dtype(), w.data.dtype()))),
                }
            }
            Exec::RoutedGradWeight { x, y, g, conv, pool, relu } => {
                let (x, y, g) = (input(env, reads, *x)?, input(env, reads, *y)?, input(env, reads, *g)?);
                match (&x.data, &y.data, &g.data, out) {
                    (Contig::F32(a), Contig::F32(b), Contig::F32(c), BufferMut::F32(o)) => {
                        self.routed_grad_weight([View::new(a, x.shape), View::new(b, y.shape), View::new(c, g.shape)], o, shape, f32s(scratch), *conv, *pool, *relu)
                    }
                    (Contig::F64(a), Contig::F64(b), Contig::F64(c), BufferMut::F64(o)) => {
                        self.routed_grad_weight([View::new(a, x.shape), View::new(b, y.shape), View::new(c, g.shape)], o, shape, f64s(scratch), *conv, *pool, *relu)
                    }
                    _ => Err(CpuError::Unsupported(format!("kernel.routed_conv2d_grad_weight of {:?}, {:?} and {:?}", x.data.dtype(), y.data.dtype(), g.data.dtype()))),
                }
            }
            Exec::MaxPool2dGrad { x, g, win, relu } => {
                let (x, g) = (input(env, reads, *x)?, input(env, reads, *g)?);
                let (&[n, c, h, w], &[gn, gc, oh, ow]) = (x.shape, g.shape) else {
                    return Err(CpuError::Malformed(format!("max_pool2d_grad takes [N, C, H, W] and [N, C, OH, OW], got {:?} and {:?}", x.shape, g.shape)));
                };
                if (gn, gc) != (n, c) || win.out([h, w]) != Some([oh, ow]) || shape != x.shape {
                    return Err(CpuError::Malformed(format!("max_pool2d_grad: {:?} pooled by {win:?} is not {:?}, or the result {shape:?} is not the input's shape", x.shape, g.shape)));
                }
                // One compare per input element and one write per output element.
                let cost = 2 * x.shape.iter().product::<usize>();
                match (&x.data, &g.data, out) {
                    (Contig::F32(a), Contig::F32(b), BufferMut::F32(o)) => self.run_planes(o, h * w, cost, |p, o| crate::pool::max_pool2d_grad(a, b, p, o, [h, w], [oh, ow], *win, *relu)),
                    (Contig::F64(a), Contig::F64(b), BufferMut::F64(o)) => self.run_planes(o, h * w, cost, |p, o| crate::pool::max_pool2d_grad(a, b, p, o, [h, w], [oh, ow], *win, *relu)),
                    _ => Err(CpuError::Unsupported(format!("max_pool2d_grad of {:?} and {:?}", x.data.dtype(), g.data.dtype()))),
                }
            }
            Exec::Interp { kind: OpKind::Concat, attrs, inputs: vs } => {
                let ins = inputs(vs)?;
                let rank = ins.first().map_or(0, |i| i.shape.len());
                let axis = AttrView::new(OpKind::Concat, attrs).int("axis").ok().and_then(|a| dlc_ir::registry::shape::axis(a, rank).ok());
                let parts: Vec<(&Contig<'_>, &[usize])> = ins.iter().map(|i| (&i.data, i.shape)).collect();
                if let Some(axis) = axis
                    && movement::concat_into(&parts, axis, out)
                {
                    return Ok(());
                }
                // Operands that do not fit: the interpreter says why.
                let ts = vs.iter().map(|&v| tensor(env, reads, v)).collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&Tensor> = ts.iter().map(|t| &**t).collect();
                eval_op(OpKind::Concat, attrs, &refs, batch)?;
                Err(CpuError::Malformed("a concat's operands do not fill its result".into()))
            }
            _ => Err(CpuError::Malformed("a step that does not write a slice was given one".into())),
        }
    }

    /// A step the reference interpreter runs (or a concat of integers).
    fn interp(&self, e: &Exec, env: &[Option<Val<'_>>], reads: &Reads<'_>, batch: Option<usize>) -> Result<Tensor, CpuError> {
        match e {
            Exec::Interp { kind, attrs, inputs } => {
                let ts = inputs.iter().map(|&v| tensor(env, reads, v)).collect::<Result<Vec<_>, _>>()?;
                let ins: Vec<&Tensor> = ts.iter().map(|t| &**t).collect();
                if *kind == OpKind::Concat
                    && let Some(axis) = ins.first().and_then(|x| AttrView::new(*kind, attrs).int("axis").ok().and_then(|a| dlc_ir::registry::shape::axis(a, x.rank()).ok()))
                    && let Some(joined) = movement::concat(&ins, axis)
                {
                    return joined;
                }
                Ok(eval_op(*kind, attrs, &ins, batch)?)
            }
            Exec::InterpKernel { func, inputs } => {
                let ins = inputs.iter().map(|&v| tensor(env, reads, v).map(Cow::into_owned)).collect::<Result<Vec<_>, _>>()?;
                let mut out = dlc_backends::run(func, &ins)?;
                out.pop().ok_or_else(|| CpuError::Malformed("a kernel returned nothing".into()))
            }
            // Slice-writing steps of a dtype the arena does not hold.
            e => {
                let ts = e.inputs().into_iter().map(|v| tensor(env, reads, v)).collect::<Result<Vec<_>, _>>()?;
                let shapes: Vec<String> = ts.iter().map(|t| t.describe()).collect();
                Err(CpuError::Unsupported(format!("a kernel step on {}", shapes.join(", "))))
            }
        }
    }

    /// `dl.reshape`: an arena value is read in place under its new shape; a
    /// tensor this step reads last is moved, any other copied.
    #[allow(clippy::too_many_arguments)]
    fn reshape<'t>(
        &self,
        step: &Step,
        input: ValueId,
        attrs: &Attrs,
        home: Home,
        env: &mut [Option<Val<'t>>],
        arena: &Arena,
        batch: Option<usize>,
    ) -> Result<Val<'t>, CpuError> {
        let slot = &mut env[input.0 as usize];
        match slot.as_ref().ok_or_else(|| undefined(input))? {
            Val::Arena { region, .. } if matches!(home, Home::Alias(_)) => {
                let shape = reshape_dims(attrs, batch)?.filter(|s| s.iter().product::<usize>() == region.range.len());
                let shape = shape.ok_or_else(|| CpuError::Malformed(format!("a reshape to {attrs:?} of {} elements", region.range.len())))?;
                Ok(Val::Arena { region: region.clone(), shape })
            }
            Val::Tensor(Cow::Owned(_)) if step.frees.contains(&input) => {
                let Some(Val::Tensor(Cow::Owned(t))) = slot.take() else { unreachable!("matched above") };
                Ok(Val::Tensor(Cow::Owned(reshape_owned(t, attrs, batch)?)))
            }
            _ => {
                let t = tensor(env, &arena.reads(), input)?;
                Ok(Val::Tensor(Cow::Owned(match reshape_contiguous(attrs, &t, batch) {
                    Some(r) => r,
                    None => eval_op(OpKind::Reshape, attrs, &[&t], batch)?,
                })))
            }
        }
    }

    fn matmul<T: dlc_contract::Element>(
        &self,
        a: View<'_, T>,
        b: View<'_, T>,
        out: &mut [T],
        t: Transpose,
        bias: Option<&[T]>,
        relu: bool,
    ) -> Result<(), CpuError> {
        let r = a.shape.len();
        let k = if r < 2 { 0 } else if t.a { a.shape[r - 2] } else { a.shape[r - 1] };
        let epi = Epilogue { bias, relu };
        let macs = out.len() * k;
        self.parallel(macs, |threads| dlc_contract::matmul(a, b, out, t, epi, threads))?;
        Ok(())
    }

    fn matmul_packed<T: dlc_contract::Element>(
        &self,
        a: View<'_, T>,
        b: &dlc_contract::PackedB<T>,
        out: &mut [T],
        transpose_a: bool,
        bias: Option<&[T]>,
        relu: bool,
    ) -> Result<(), CpuError> {
        let r = b.shape().len();
        let macs = out.len() * b.shape()[r - 2];
        let epi = Epilogue { bias, relu };
        self.parallel(macs, |threads| dlc_contract::matmul_packed(a, b, out, transpose_a, epi, threads))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    fn conv<T: dlc_contract::Element>(
        &self,
        x: View<'_, T>,
        w: View<'_, T>,
        out: &mut [T],
        scratch: Option<&mut [T]>,
        conv: Conv2d,
        epi: Epilogue<'_, T>,
        pool: Option<MaxPool2d>,
    ) -> Result<(), CpuError> {
        let taps: usize = w.shape.iter().skip(1).product();
        let macs = conv.out_shape(x.shape, w.shape).map_or(0, |s| s.iter().product::<usize>()) * taps;
        match pool {
            None => self.with_scratch(
                macs,
                scratch,
                |threads| dlc_contract::conv2d_scratch_len::<T>(x.shape, w.shape, conv, threads),
                |s, threads| dlc_contract::conv2d(x, w, out, conv, epi, s, threads),
            ),
            Some(pool) => self.with_scratch(
                macs,
                scratch,
                |threads| dlc_contract::conv2d_max_pool_scratch_len::<T>(x.shape, w.shape, conv, pool, threads),
                |s, threads| dlc_contract::conv2d_max_pool(x, w, out, conv, epi, pool, s, threads),
            ),
        }
    }

    /// `dx` (of shape `x_shape`) of a convolution by `w` whose output gradient is `g`.
    fn conv_grad_input<T: dlc_contract::Element>(&self, g: View<'_, T>, w: View<'_, T>, dx: &mut [T], x_shape: &[usize], scratch: Option<&mut [T]>, conv: Conv2d) -> Result<(), CpuError> {
        let taps: usize = w.shape.iter().skip(1).product();
        self.with_scratch(
            g.data.len() * taps,
            scratch,
            |threads| dlc_contract::conv2d_grad_input_scratch_len::<T>(x_shape, w.shape, conv, threads),
            |s, threads| dlc_contract::conv2d_grad_input(g, w, dx, x_shape, conv, s, threads),
        )
    }

    /// `dw` (of shape `w_shape`) of a convolution of `x` whose output gradient is `g`.
    fn conv_grad_weight<T: dlc_contract::Element>(&self, x: View<'_, T>, g: View<'_, T>, dw: &mut [T], w_shape: &[usize], scratch: Option<&mut [T]>, conv: Conv2d) -> Result<(), CpuError> {
        let taps: usize = w_shape.iter().skip(1).product();
        self.with_scratch(
            g.data.len() * taps,
            scratch,
            |threads| dlc_contract::conv2d_grad_weight_scratch_len::<T>(x.shape, w_shape, conv, threads),
            |s, threads| dlc_contract::conv2d_grad_weight(x, g, dw, w_shape, conv, s, threads),
        )
    }

    /// `dw` of the convolution of `x` by `w` (plus `bias`) max-pooled by
    /// `pool`, from the pooled output's gradient `g`, the convolution
    /// recomputed (`kernel.conv2d_grad_weight`): the contraction library's
    /// one pass where it serves the shapes; elsewhere the convolution, the
    /// pooling gradient and the weight gradient in turn, in the scratch
    /// the memory plan sized for that.
    #[allow(clippy::too_many_arguments)]
    fn conv_pooled_grad_weight<T: dlc_contract::Element + crate::pool::PoolFloat>(
        &self,
        [x, g, w]: [View<'_, T>; 3],
        bias: Option<&[T]>,
        dw: &mut [T],
        scratch: Option<&mut [T]>,
        conv: Conv2d,
        pool: MaxPool2d,
        relu: bool,
    ) -> Result<(), CpuError> {
        let taps: usize = w.shape.iter().skip(1).product();
        let y_shape = conv.out_shape(x.shape, w.shape)?;
        let macs = 2 * y_shape.iter().product::<usize>() * taps;
        if dlc_contract::conv2d_max_pool_grad_weight_applies::<T>(x.shape, w.shape, conv, pool)? {
            return self.with_scratch(
                macs,
                scratch,
                |_| dlc_contract::conv2d_max_pool_grad_weight_scratch_len::<T>(x.shape, w.shape, conv, pool),
                |s, threads| dlc_contract::conv2d_max_pool_grad_weight(x, w, bias, relu, g, dw, conv, pool, s, threads),
            );
        }
        let [n, c, h, wd] = y_shape;
        let win = crate::pool::PoolWindow { kernel: pool.kernel, stride: pool.stride, padding: pool.padding };
        let Some([oh, ow]) = win.out([h, wd]).filter(|&o| g.shape == [n, c, o[0], o[1]]) else {
            return Err(CpuError::Malformed(format!("kernel.conv2d_grad_weight: the convolution's {y_shape:?} pooled by {pool:?} is not the gradient's {:?}", g.shape)));
        };
        // Chunks of images: each chunk's weight gradient is added to the
        // sum of the chunks before it.
        let (y_img, x_img, g_img) = (c * h * wd, x.shape[1..].iter().product::<usize>(), c * oh * ow);
        let chunk = crate::memory::pooled_grad_chunk(y_img * size_of::<T>(), n);
        let fixed = 2 * chunk * y_img + dw.len();
        let mut own = Vec::new();
        let scratch = match scratch {
            Some(s) if s.len() >= fixed => s,
            _ => {
                own.resize(fixed, <T as dlc_contract::Element>::ZERO);
                &mut own[..]
            }
        };
        let (y, rest) = scratch.split_at_mut(chunk * y_img);
        let (dy, rest) = rest.split_at_mut(chunk * y_img);
        let (partial, rest) = rest.split_at_mut(dw.len());
        let mut rest = (!rest.is_empty()).then_some(rest);
        if n == 0 {
            dw.fill(<T as dlc_contract::Element>::ZERO);
        }
        for n0 in (0..n).step_by(chunk) {
            let cnt = chunk.min(n - n0);
            let xs = [cnt, x.shape[1], x.shape[2], x.shape[3]];
            let xc = View::new(&x.data[n0 * x_img..(n0 + cnt) * x_img], &xs);
            let (y, dy) = (&mut y[..cnt * y_img], &mut dy[..cnt * y_img]);
            self.conv(xc, w, y, rest.as_deref_mut(), conv, Epilogue { bias, relu: false }, None)?;
            let (y, gc): (&[T], &[T]) = (y, &g.data[n0 * g_img..(n0 + cnt) * g_img]);
            self.run_planes(dy, h * wd, 2 * cnt * y_img, |p, o| crate::pool::max_pool2d_grad(y, gc, p, o, [h, wd], [oh, ow], win, relu))?;
            let target = if n0 == 0 { &mut *dw } else { &mut *partial };
            self.conv_grad_weight(xc, View::new(dy, &[cnt, c, h, wd]), target, w.shape, rest.as_deref_mut(), conv)?;
            if n0 > 0 {
                for (d, &p) in dw.iter_mut().zip(partial.iter()) {
                    *d += p;
                }
            }
        }
        Ok(())
    }

    /// `dx` (of shape `x_shape`) of a convolution by `w` whose output `y`
    /// was max-pooled by `pool`, from the pooled output's gradient `g`
    /// (`kernel.routed_conv2d_grad_input`): the contraction library's
    /// routed routine where it serves the shapes and `w` is finite;
    /// elsewhere the pooling gradient and the dense input gradient in turn
    /// on chunks of images ([`Self::routed_chunks`]).
    #[allow(clippy::too_many_arguments)]
    fn routed_grad_input<T: dlc_contract::Element + crate::pool::PoolFloat>(
        &self,
        [y, g, w]: [View<'_, T>; 3],
        dx: &mut [T],
        x_shape: &[usize],
        mut scratch: Option<&mut [T]>,
        conv: Conv2d,
        pool: MaxPool2d,
        relu: bool,
    ) -> Result<(), CpuError> {
        let taps: usize = w.shape.iter().skip(1).product();
        if dlc_contract::conv2d_routed_grads_apply::<T>(x_shape, w.shape, conv, pool)? {
            let mut done = false;
            self.with_scratch(
                g.data.len() * taps,
                scratch.as_deref_mut(),
                |threads| dlc_contract::conv2d_grad_input_routed_scratch_len::<T>(x_shape, w.shape, conv, pool, threads),
                |s, threads| {
                    done = dlc_contract::conv2d_grad_input_routed(y, g, w, relu, dx, x_shape, conv, pool, s, threads)?;
                    Ok(())
                },
            )?;
            if done {
                return Ok(());
            }
        }
        let x_img: usize = x_shape[1..].iter().product();
        self.routed_chunks(y, g, pool, relu, scratch, |this, n0, dy, rest| {
            let cnt = dy.shape[0];
            let xs = [cnt, x_shape[1], x_shape[2], x_shape[3]];
            this.conv_grad_input(dy, w, &mut dx[n0 * x_img..(n0 + cnt) * x_img], &xs, rest, conv)
        })
    }

    /// `dw` (of shape `w_shape`) of a convolution of `x` whose output `y`
    /// was max-pooled by `pool`, from the pooled output's gradient `g`
    /// (`kernel.routed_conv2d_grad_weight`): as [`Self::routed_grad_input`],
    /// `x` finite; on the chunks each one's weight gradient is added to the
    /// sum of those before it.
    #[allow(clippy::too_many_arguments)]
    fn routed_grad_weight<T: dlc_contract::Element + crate::pool::PoolFloat>(
        &self,
        [x, y, g]: [View<'_, T>; 3],
        dw: &mut [T],
        w_shape: &[usize],
        mut scratch: Option<&mut [T]>,
        conv: Conv2d,
        pool: MaxPool2d,
        relu: bool,
    ) -> Result<(), CpuError> {
        let taps: usize = w_shape.iter().skip(1).product();
        if dlc_contract::conv2d_routed_grads_apply::<T>(x.shape, w_shape, conv, pool)? {
            let mut done = false;
            self.with_scratch(
                g.data.len() * taps,
                scratch.as_deref_mut(),
                |threads| dlc_contract::conv2d_grad_weight_routed_scratch_len::<T>(x.shape, w_shape, conv, pool, threads),
                |s, threads| {
                    done = dlc_contract::conv2d_grad_weight_routed(x, y, g, relu, dw, w_shape, conv, pool, s, threads)?;
                    Ok(())
                },
            )?;
            if done {
                return Ok(());
            }
        }
        if y.shape.first() == Some(&0) {
            dw.fill(<T as dlc_contract::Element>::ZERO);
        }
        let x_img: usize = x.shape[1..].iter().product();
        // Each chunk's weight gradient after the first, from the planned
        // scratch (`memory::routed_grad_scratch_len`).
        let mut own = Vec::new();
        let (partial, scratch) = match scratch {
            Some(s) if s.len() >= dw.len() => {
                let (p, rest) = s.split_at_mut(dw.len());
                (p, Some(rest))
            }
            _ => {
                own.resize(dw.len(), <T as dlc_contract::Element>::ZERO);
                (&mut own[..], None)
            }
        };
        self.routed_chunks(y, g, pool, relu, scratch, |this, n0, dy, rest| {
            let cnt = dy.shape[0];
            let xs = [cnt, x.shape[1], x.shape[2], x.shape[3]];
            let xc = View::new(&x.data[n0 * x_img..(n0 + cnt) * x_img], &xs);
            let target = if n0 == 0 { &mut *dw } else { &mut *partial };
            this.conv_grad_weight(xc, dy, target, w_shape, rest, conv)?;
            if n0 > 0 {
                for (d, &p) in dw.iter_mut().zip(partial.iter()) {
                    *d += p;
                }
            }
            Ok(())
        })
    }

    /// The fallback of the routed gradients: for each chunk of
    /// [`crate::memory::pooled_grad_chunk`] images, the pooling gradient of
    /// `y`'s chunk routes `g`'s into a full-size gradient `dy` in the
    /// scratch, and `each(self, first image, dy, rest of the scratch)` runs
    /// the dense routine on it (the scratch as [`crate::memory::routed_grad_scratch_len`]
    /// plans it).
    #[allow(clippy::too_many_arguments)]
    fn routed_chunks<T: dlc_contract::Element + crate::pool::PoolFloat>(
        &self,
        y: View<'_, T>,
        g: View<'_, T>,
        pool: MaxPool2d,
        relu: bool,
        scratch: Option<&mut [T]>,
        mut each: impl FnMut(&Self, usize, View<'_, T>, Option<&mut [T]>) -> Result<(), CpuError>,
    ) -> Result<(), CpuError> {
        let &[n, c, h, wd] = y.shape else {
            return Err(CpuError::Malformed(format!("a routed convolution gradient takes y [N, C, H, W], got {:?}", y.shape)));
        };
        let win = crate::pool::PoolWindow { kernel: pool.kernel, stride: pool.stride, padding: pool.padding };
        let Some([oh, ow]) = win.out([h, wd]).filter(|&o| g.shape == [n, c, o[0], o[1]]) else {
            return Err(CpuError::Malformed(format!("a routed convolution gradient: y {:?} pooled by {pool:?} is not the gradient's {:?}", y.shape, g.shape)));
        };
        let (y_img, g_img) = (c * h * wd, c * oh * ow);
        let chunk = crate::memory::pooled_grad_chunk(y_img * size_of::<T>(), n);
        let mut own = Vec::new();
        let scratch = match scratch {
            Some(s) if s.len() >= chunk * y_img => s,
            _ => {
                own.resize(chunk * y_img, <T as dlc_contract::Element>::ZERO);
                &mut own[..]
            }
        };
        let (dy, rest) = scratch.split_at_mut(chunk * y_img);
        let mut rest = (!rest.is_empty()).then_some(rest);
        for n0 in (0..n).step_by(chunk) {
            let cnt = chunk.min(n - n0);
            let dy = &mut dy[..cnt * y_img];
            let (yc, gc) = (&y.data[n0 * y_img..(n0 + cnt) * y_img], &g.data[n0 * g_img..(n0 + cnt) * g_img]);
            self.run_planes(dy, h * wd, 2 * cnt * y_img, |p, o| crate::pool::max_pool2d_grad(yc, gc, p, o, [h, wd], [oh, ow], win, relu))?;
            each(self, n0, View::new(dy, &[cnt, c, h, wd]), rest.as_deref_mut())?;
        }
        Ok(())
    }

    /// Runs a convolution routine of `macs` multiply-adds (as [`Self::parallel`]
    /// splits it) whose scratch is `need(threads)` elements: the arena's
    /// `scratch`, which the memory plan sized for these threads, or a buffer
    /// of its own if that is short.
    fn with_scratch<T: dlc_contract::Element>(
        &self,
        macs: usize,
        scratch: Option<&mut [T]>,
        need: impl FnOnce(usize) -> Result<usize, dlc_contract::ContractError> + Send,
        run: impl FnOnce(&mut [T], usize) -> Result<(), dlc_contract::ContractError> + Send,
    ) -> Result<(), CpuError> {
        self.parallel(macs, |threads| {
            let need = need(threads)?;
            let mut own = Vec::new();
            let scratch = match scratch {
                Some(s) if s.len() >= need => &mut s[..need],
                _ => {
                    own.resize(need, T::ZERO);
                    &mut own[..]
                }
            };
            run(scratch, threads)
        })?;
        Ok(())
    }

    /// Runs a contraction of `macs` multiply-adds with this executable's
    /// threads inside its rayon pool, or on the calling thread with one
    /// thread when it is too small to split (dlc-contract would use one
    /// anyway, and entering the pool costs a thread hand-off per call).
    fn parallel<R: Send>(&self, macs: usize, f: impl FnOnce(usize) -> R + Send) -> R {
        if self.threads > 1 && macs >= crate::PAR_MIN_MACS { self.pool.install(|| f(self.threads)) } else { f(1) }
    }
}

/// Debug builds: checks that no value still live occupies `holes`, the
/// regions step `i` is about to write, but `over`, the one it writes over.
fn check_free(i: usize, env: &[Option<Val<'_>>], holes: &[Region], over: Option<ValueId>) -> Result<(), CpuError> {
    for (v, slot) in env.iter().enumerate() {
        if over.is_some_and(|o| o.0 as usize == v) {
            continue;
        }
        if let Some(Val::Arena { region, .. }) = slot
            && holes.iter().any(|h| h.dtype == region.dtype && h.range.start < region.range.end && region.range.start < h.range.end)
        {
            return Err(CpuError::Malformed(format!("the memory plan lets step {i} write over %{v}, which is still live")));
        }
    }
    Ok(())
}

/// An f32 scratch buffer, if the arena gave one.
fn f32s(scratch: Option<BufferMut<'_>>) -> Option<&mut [f32]> {
    match scratch {
        Some(BufferMut::F32(s)) => Some(s),
        _ => None,
    }
}

/// An f64 scratch buffer, if the arena gave one.
fn f64s(scratch: Option<BufferMut<'_>>) -> Option<&mut [f64]> {
    match scratch {
        Some(BufferMut::F64(s)) => Some(s),
        _ => None,
    }
}

fn bias_of<'a, T: 'a>(bias: Option<&'a Contig<'a>>, get: fn(&'a Contig<'a>) -> Option<&'a [T]>) -> Result<Option<&'a [T]>, CpuError> {
    bias.map(|b| get(b).ok_or_else(|| CpuError::Unsupported(format!("a {:?} bias of another dtype than its contraction", b.dtype())))).transpose()
}

/// `dl.reshape` of a tensor this step owns: the same elements under the new
/// shape, without a copy when they are row-major already.
fn reshape_owned(t: Tensor, attrs: &Attrs, batch: Option<usize>) -> Result<Tensor, CpuError> {
    let Some(shape) = reshape_dims(attrs, batch)?.filter(|s| s.iter().product::<usize>() == t.len()) else {
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

/// `dl.reshape` of a row-major tensor: one copy of its elements under the
/// new shape (`None`: leave it to the interpreter, which checks and reports).
fn reshape_contiguous(attrs: &Attrs, t: &Tensor, batch: Option<usize>) -> Option<Tensor> {
    let shape = reshape_dims(attrs, batch).ok()??;
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

fn array<T>(shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, CpuError> {
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| CpuError::Malformed(e.to_string()))
}

/// The elements of `a` in row-major order, borrowed when already contiguous
/// (otherwise copied lane by lane along the last axis).
pub(crate) fn contiguous<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
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

/// A tensor's elements, contiguous, as one of the JIT's buffer types.
pub(crate) enum Contig<'a> {
    F32(Cow<'a, [f32]>),
    F64(Cow<'a, [f64]>),
    I1(Cow<'a, [bool]>),
    /// Read by structured kernels only (an argmax compared with labels).
    I64(Cow<'a, [i64]>),
}

impl<'a> Contig<'a> {
    fn of(t: &'a Tensor) -> Result<Contig<'a>, CpuError> {
        match t {
            Tensor::F32(a) => Ok(Contig::F32(contiguous(a))),
            Tensor::F64(a) => Ok(Contig::F64(contiguous(a))),
            Tensor::I1(a) => Ok(Contig::I1(contiguous(a))),
            Tensor::I64(a) => Ok(Contig::I64(contiguous(a))),
            other => Err(CpuError::Unsupported(format!("a kernel input of {}", other.describe()))),
        }
    }

    pub(crate) fn buffer(&self) -> Buffer<'_> {
        match self {
            Contig::F32(s) => Buffer::F32(s),
            Contig::F64(s) => Buffer::F64(s),
            Contig::I1(s) => Buffer::I1(s),
            Contig::I64(s) => Buffer::I64(s),
        }
    }

    fn dtype(&self) -> DType {
        self.buffer().dtype()
    }

    pub(crate) fn len(&self) -> usize {
        self.buffer().len()
    }

    fn f32(&self) -> Option<&[f32]> {
        match self {
            Contig::F32(s) => Some(s),
            _ => None,
        }
    }

    fn f64(&self) -> Option<&[f64]> {
        match self {
            Contig::F64(s) => Some(s),
            _ => None,
        }
    }
}
