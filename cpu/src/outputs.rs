//! Running a step with several outputs: a `kernel.generic` that fusion gave
//! extra results (an optimizer update writing p', m' and v'). Its outputs
//! live outside the arena; each is written over its donor input when the
//! run owns that buffer (a donated argument), which the kernel then reads
//! in place, or into a buffer of its own.

use crate::arena::Arena;
use crate::exec::{Fresh, Val, input, iteration_sizes, tensor};
use crate::memory::concrete;
use crate::steps::Exec;
use crate::{CpuError, CpuExecutable};
use dlc_backends::Tensor;
use dlc_ir::ValueId;
use dlc_jit::{BufferMut, Source};
use std::borrow::Cow;

impl CpuExecutable {
    /// Runs step `i`, a kernel with several outputs, and returns them: each
    /// written over its donor input (a tensor the run owns that no later
    /// step reads, [`crate::steps::donors`]) or into a buffer of its own;
    /// none lives in the arena.
    pub(crate) fn run_outputs_step(&self, i: usize, env: &mut [Option<Val<'_>>], arena: &mut Arena, batch: Option<usize>) -> Result<Vec<Tensor>, CpuError> {
        let step = &self.steps[i];
        let types: Vec<&dlc_ir::TensorType> = std::iter::once(&step.out).chain(step.extra.iter().map(|(_, t)| t)).collect();
        if batch.is_none() && types.iter().any(|t| t.shape.iter().any(|d| d.as_static().is_none())) {
            return Err(CpuError::Unsupported("a kernel's output has a ? dim but no argument binds the batch".into()));
        }
        let shapes: Vec<Vec<usize>> = types.iter().map(|t| concrete(&t.shape, batch)).collect();
        let Exec::Structured { kernel, generic, inputs: vs, .. } = &step.exec else {
            let reads = arena.reads();
            return match &step.exec {
                Exec::InterpKernel { func, inputs } => {
                    let ins = inputs.iter().map(|&v| tensor(env, &reads, v).map(Cow::into_owned)).collect::<Result<Vec<_>, _>>()?;
                    Ok(dlc_backends::run(func, &ins)?)
                }
                _ => Err(CpuError::Malformed("a step with several outputs that is no kernel.generic".into())),
            };
        };
        let sizes = iteration_sizes(&generic.sizes, batch)?;
        // Each output's buffer: its donor's, taken out of `env`, or a new one.
        let mut fresh = false;
        let mut bufs: Vec<Fresh> = Vec::with_capacity(types.len());
        let mut donated: Vec<Option<ValueId>> = Vec::with_capacity(types.len());
        for (r, ty) in types.iter().enumerate() {
            let n = shapes[r].iter().product();
            let taken = step.donors.get(r).copied().flatten().and_then(|v| {
                let slot = &mut env[v.0 as usize];
                if !matches!(slot, Some(Val::Tensor(Cow::Owned(_)))) {
                    return None;
                }
                let Some(Val::Tensor(Cow::Owned(t))) = slot.take() else { unreachable!("matched above") };
                match Fresh::take(t, ty.dtype, n) {
                    Ok(f) => Some((v, f)),
                    Err(t) => {
                        *slot = Some(Val::Tensor(Cow::Owned(t)));
                        None
                    }
                }
            });
            match taken {
                Some((v, f)) => {
                    bufs.push(f);
                    donated.push(Some(v));
                }
                None => {
                    fresh = true;
                    bufs.push(Fresh::new(ty.dtype, n)?);
                    donated.push(None);
                }
            }
        }
        let reads = arena.reads();
        let ins = vs
            .iter()
            .map(|&v| match donated.iter().position(|d| *d == Some(v)) {
                Some(r) => Ok((None, r)),
                None => input(env, &reads, v).map(|i| (Some(i), 0)),
            })
            .collect::<Result<Vec<_>, CpuError>>()?;
        let args: Vec<(Source<'_>, &[usize])> = ins
            .iter()
            .map(|(i, r)| match i {
                Some(i) => (Source::Buffer(i.data.buffer()), i.shape),
                None => (Source::Output(*r), shapes[*r].as_slice()),
            })
            .collect();
        let outs: Vec<(BufferMut<'_>, &[usize])> = bufs.iter_mut().zip(&shapes).map(|(b, s)| (b.buffer(), s.as_slice())).collect();
        self.run_structured_outputs(kernel, &args, outs, &sizes, fresh)?;
        bufs.into_iter().zip(&shapes).map(|(b, s)| b.into_tensor(s)).collect()
    }
}
