//! JIT kernels split over the executable's threads.
//!
//! An elementwise kernel splits its outermost iteration dim: each part is
//! one call over the rows `lo..hi`, with the inputs that have that dim cut
//! to the same rows and the broadcast ones passed whole. A structured
//! kernel whose dim 0 is parallel and indexes the output's rows
//! ([`CompiledGeneric::splits_rows`]) runs `run_range` per part. Either way
//! every output element is computed by the same code on the same inputs as
//! in one call (a rank-1 elementwise space is cut at multiples of 16
//! elements, so vector lanes and the scalar tail fall where they do in one
//! call), so any split gives exactly one thread's result.
//!
//! A structured kernel whose dim 0 is a sum (a bias gradient summing over
//! the batch) runs as partial sums over parts of that dim, added in part
//! order: bit-identical run to run at a thread count, within rounding of
//! the one-thread sum (the steps decide when that is valid:
//! `steps::partial_sums`).
//!
//! A kernel is split when its cost, iteration points times (1 + the ops
//! in its body), is at least [`PAR_MIN_COST`]: handing half of a smaller
//! kernel to a worker costs more than it saves (the `split_threshold`
//! example measures it: a split costs about 2 µs even with the workers
//! spinning; a memory-bound add gains nothing below about 128 Ki points,
//! a chain with a square root and a division from about 32 Ki).

use crate::{CpuError, CpuExecutable};
use dlc_jit::{Access, Buffer, BufferMut, CompiledGeneric, CompiledKernel, Node, Source};
use std::ops::Range;

/// Below this cost (iteration points × (1 + body ops)) a JIT kernel runs
/// on one thread (see the module docs).
pub(crate) const PAR_MIN_COST: usize = 1 << 18;

/// An elementwise kernel writing a fresh buffer (a function result, not
/// the arena) splits only from this many times [`PAR_MIN_COST`]: the
/// allocation zeroes the buffer on the calling thread, so the other
/// thread's half of the writes first pulls those cache lines across, and
/// only a kernel with more arithmetic than memory traffic gains (on the
/// mlp train step, the Adam update with a square root and two divisions
/// over 200 Ki points gains, the two moment updates lose).
pub(crate) const FRESH_FACTOR: usize = 4;

/// The ops in a kernel body (its nodes that are not inputs, constants or
/// the accumulator).
pub(crate) fn ops(body: &[Node]) -> usize {
    body.iter().filter(|n| matches!(n, Node::Op { .. })).count()
}

impl CpuExecutable {
    /// How many parts a kernel of cost `cost` with `rows` outer rows (in
    /// units of its grain) is split into.
    fn parts(&self, cost: usize, rows: usize) -> usize {
        if self.threads <= 1 || cost < self.par_min_cost { 1 } else { self.threads.min(rows) }
    }

    /// Runs an elementwise kernel over the iteration shape `iter`, into a
    /// buffer that is `fresh` (just allocated) or in the arena; a `None`
    /// input is `out` itself (an in-place step: [`CompiledKernel::run_in_place`]).
    pub(crate) fn run_elementwise(&self, kernel: &CompiledKernel, ins: &[Option<Buffer<'_>>], out: BufferMut<'_>, iter: &[usize], fresh: bool) -> Result<(), CpuError> {
        let grain = if iter.len() == 1 { 16 } else { 1 };
        let n0 = iter.first().copied().unwrap_or(1);
        let cost = iter.iter().product::<usize>() * (1 + ops(kernel.spec().body()));
        let parts = self.parts(if fresh { cost / FRESH_FACTOR } else { cost }, n0 / grain);
        if parts <= 1 {
            return Ok(kernel.run_in_place(ins, out, iter)?);
        }
        let bounds = bounds(n0, parts, grain);
        let row: usize = iter[1..].iter().product();
        let specs = kernel.spec().inputs();
        if specs.len() != ins.len() {
            return Ok(kernel.run_in_place(ins, out, iter)?); // the kernel reports the mismatch
        }
        let mut jobs = Vec::with_capacity(parts);
        for (o, w) in split_mut(out, &bounds, row).into_iter().zip(bounds.windows(2)) {
            let (lo, hi) = (w[0], w[1]);
            // An in-place input stays `None`: its rows are the output part's.
            let part: Vec<Option<Buffer<'_>>> = ins
                .iter()
                .zip(specs)
                .map(|(b, s)| match (b, s.access.first()) {
                    (None, _) => Some(None),
                    (Some(b), Some(Access::Full)) => {
                        let stride = s.strides(iter).0[0];
                        sub(*b, lo * stride..hi * stride).map(Some)
                    }
                    (Some(b), _) => Some(Some(*b)),
                })
                .collect::<Option<_>>()
                .ok_or_else(|| CpuError::Malformed("a kernel input is shorter than its iteration shape".into()))?;
            let mut shape = iter.to_vec();
            shape[0] = hi - lo;
            jobs.push(move || kernel.run_in_place(&part, o, &shape).map_err(CpuError::from));
        }
        self.join(jobs)
    }

    /// Runs a structured kernel with several outputs (each a buffer and its
    /// shape; `fresh` when some was just allocated) over the iteration
    /// space `sizes`, split into row ranges like [`Self::run_structured`]:
    /// every output cut at the same rows, an input read in place from an
    /// output reading that output's part.
    pub(crate) fn run_structured_outputs(&self, kernel: &CompiledGeneric, ins: &[(Source<'_>, &[usize])], outs: Vec<(BufferMut<'_>, &[usize])>, sizes: &[usize], fresh: bool) -> Result<(), CpuError> {
        let n0 = sizes.first().copied().unwrap_or(1);
        let cost = sizes.iter().product::<usize>() * (1 + ops(kernel.spec().body()));
        let rows = kernel.splits_rows() && outs.iter().all(|(_, s)| s.first() == Some(&n0));
        let parts = if rows { self.parts(if fresh { cost / FRESH_FACTOR } else { cost }, n0) } else { 1 };
        if parts <= 1 {
            return Ok(kernel.run_outputs(ins, outs, sizes, 0..n0)?);
        }
        let bounds = bounds(n0, parts, 1);
        let mut cut: Vec<std::vec::IntoIter<BufferMut<'_>>> = Vec::with_capacity(outs.len());
        let mut shapes = Vec::with_capacity(outs.len());
        for (o, shape) in outs {
            cut.push(split_mut(o, &bounds, shape[1..].iter().product()).into_iter());
            shapes.push(shape);
        }
        let mut jobs = Vec::with_capacity(parts);
        for w in bounds.windows(2) {
            let part: Vec<(BufferMut<'_>, &[usize])> = cut.iter_mut().zip(&shapes).map(|(c, s)| c.next().map(|b| (b, *s))).collect::<Option<_>>().ok_or_else(|| CpuError::Malformed("an output has fewer rows than its kernel".into()))?;
            let range = w[0]..w[1];
            jobs.push(move || kernel.run_outputs(ins, part, sizes, range).map_err(CpuError::from));
        }
        self.join(jobs)
    }

    /// Runs a structured kernel over the iteration space `sizes` into `out`
    /// of shape `out_shape`; `partial` says how to cut its inputs when its
    /// dim 0 is a sum that can be split into partial sums.
    pub(crate) fn run_structured(
        &self,
        kernel: &CompiledGeneric,
        ins: &[(Buffer<'_>, &[usize])],
        out: BufferMut<'_>,
        out_shape: &[usize],
        sizes: &[usize],
        partial: Option<&[bool]>,
    ) -> Result<(), CpuError> {
        let n0 = sizes.first().copied().unwrap_or(1);
        let cost = sizes.iter().product::<usize>() * (1 + ops(kernel.spec().body()));
        let rows = kernel.splits_rows() && out_shape.first() == Some(&n0);
        let parts = if rows || partial.is_some() { self.parts(cost, n0) } else { 1 };
        if parts <= 1 {
            return Ok(kernel.run(ins, (out, out_shape), sizes)?);
        }
        if !rows && let Some(cut) = partial {
            return self.partial_sums(kernel, ins, cut, out, out_shape, sizes, parts);
        }
        let bounds = bounds(n0, parts, 1);
        let row: usize = out_shape[1..].iter().product();
        let jobs: Vec<_> = split_mut(out, &bounds, row)
            .into_iter()
            .zip(bounds.windows(2))
            .map(|(o, w)| {
                let range = w[0]..w[1];
                move || kernel.run_range(ins, (o, out_shape), sizes, range).map_err(CpuError::from)
            })
            .collect();
        self.join(jobs)
    }

    /// A kernel summing over dim 0, run as `parts` sums over parts of it
    /// (the inputs marked in `cut` cut to the part's rows): the first part
    /// into `out`, the others into buffers added to it in order, so a
    /// thread count always adds the same partial sums the same way (within
    /// rounding of the one-thread sum, not bit-equal to it).
    #[allow(clippy::too_many_arguments)]
    fn partial_sums(
        &self,
        kernel: &CompiledGeneric,
        ins: &[(Buffer<'_>, &[usize])],
        cut: &[bool],
        mut out: BufferMut<'_>,
        out_shape: &[usize],
        sizes: &[usize],
        parts: usize,
    ) -> Result<(), CpuError> {
        if cut.len() != ins.len() {
            return Ok(kernel.run(ins, (out, out_shape), sizes)?);
        }
        let bounds = bounds(sizes[0], parts, 1);
        let n = out.len();
        let mut extra: Vec<Partial> = (2..bounds.len())
            .map(|_| match out {
                BufferMut::F32(_) => Ok(Partial::F32(vec![0.0; n])),
                BufferMut::F64(_) => Ok(Partial::F64(vec![0.0; n])),
                BufferMut::I1(_) => Err(CpuError::Unsupported("a sum of booleans".into())),
            })
            .collect::<Result<_, _>>()?;
        // Each part's input shapes and sizes, kept while the jobs borrow them.
        let shapes: Vec<(Vec<Vec<usize>>, Vec<usize>)> = bounds
            .windows(2)
            .map(|w| {
                let mut s = sizes.to_vec();
                s[0] = w[1] - w[0];
                let shapes = ins
                    .iter()
                    .zip(cut)
                    .map(|((_, shape), &c)| {
                        let mut shape = shape.to_vec();
                        if c && let Some(d0) = shape.first_mut() {
                            *d0 = w[1] - w[0];
                        }
                        shape
                    })
                    .collect();
                (shapes, s)
            })
            .collect();
        let outs = std::iter::once(reborrow(&mut out)).chain(extra.iter_mut().map(Partial::buffer));
        let mut jobs = Vec::with_capacity(parts);
        for ((o, w), (part_shapes, part_sizes)) in outs.zip(bounds.windows(2)).zip(&shapes) {
            let part: Vec<(Buffer<'_>, &[usize])> = ins
                .iter()
                .zip(cut)
                .zip(part_shapes)
                .map(|(((b, shape), &c), part_shape)| {
                    if !c {
                        return Some((*b, &part_shape[..]));
                    }
                    let row: usize = shape[1..].iter().product();
                    Some((sub(*b, w[0] * row..w[1] * row)?, &part_shape[..]))
                })
                .collect::<Option<_>>()
                .ok_or_else(|| CpuError::Malformed("a kernel input is shorter than its iteration space".into()))?;
            jobs.push(move || kernel.run(&part, (o, out_shape), part_sizes).map_err(CpuError::from));
        }
        self.join(jobs)?;
        for p in &extra {
            match (&mut out, p) {
                (BufferMut::F32(o), Partial::F32(p)) => o.iter_mut().zip(p).for_each(|(o, p)| *o += p),
                (BufferMut::F64(o), Partial::F64(p)) => o.iter_mut().zip(p).for_each(|(o, p)| *o += p),
                _ => return Err(CpuError::Malformed("a partial sum of another dtype".into())),
            }
        }
        Ok(())
    }

    /// Runs `jobs` at once: the first on the calling thread, the others on
    /// the pool's workers; the first error, in job order, is returned.
    /// Runs `f` over `out` cut into whole planes of `plane` elements, the
    /// planes split into contiguous ranges over the threads when `cost` is
    /// worth it; `f` gets each range of plane indices and its part of `out`.
    /// Each plane is computed by one call, so any split gives the same result.
    pub(crate) fn run_planes<T: Send>(&self, out: &mut [T], plane: usize, cost: usize, f: impl Fn(Range<usize>, &mut [T]) + Sync) -> Result<(), CpuError> {
        let planes = out.len().checked_div(plane).unwrap_or(0);
        let parts = self.parts(cost, planes);
        if parts <= 1 {
            f(0..planes, out);
            return Ok(());
        }
        let bounds = bounds(planes, parts, 1);
        let mut jobs = Vec::with_capacity(parts);
        let mut rest = out;
        let f = &f;
        for w in bounds.windows(2) {
            let (part, tail) = rest.split_at_mut((w[1] - w[0]) * plane);
            rest = tail;
            let range = w[0]..w[1];
            jobs.push(move || {
                f(range, part);
                Ok(())
            });
        }
        self.join(jobs)
    }

    fn join<F: FnOnce() -> Result<(), CpuError> + Send>(&self, jobs: Vec<F>) -> Result<(), CpuError> {
        let mut results: Vec<Result<(), CpuError>> = (0..jobs.len()).map(|_| Ok(())).collect();
        let mut jobs = jobs.into_iter();
        let (Some(first), Some((r0, rest))) = (jobs.next(), results.split_first_mut()) else {
            return Ok(());
        };
        self.pool.in_place_scope(|s| {
            for (job, slot) in jobs.zip(rest.iter_mut()) {
                s.spawn(move |_| *slot = job());
            }
            *r0 = first();
        });
        results.into_iter().collect()
    }
}

/// A partial sum's buffer.
enum Partial {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Partial {
    fn buffer(&mut self) -> BufferMut<'_> {
        match self {
            Partial::F32(v) => BufferMut::F32(v),
            Partial::F64(v) => BufferMut::F64(v),
        }
    }
}

fn reborrow<'b>(b: &'b mut BufferMut<'_>) -> BufferMut<'b> {
    match b {
        BufferMut::F32(s) => BufferMut::F32(s),
        BufferMut::F64(s) => BufferMut::F64(s),
        BufferMut::I1(s) => BufferMut::I1(s),
    }
}

/// `parts + 1` row bounds splitting `0..n` evenly, every inner bound a
/// multiple of `grain` (duplicates dropped, so no part is empty).
fn bounds(n: usize, parts: usize, grain: usize) -> Vec<usize> {
    let mut b: Vec<usize> = (0..parts).map(|i| (i * n / parts) / grain * grain).collect();
    b.push(n);
    b.dedup();
    b
}

/// `b`'s elements `r`, `None` when it is shorter.
fn sub<'a>(b: Buffer<'a>, r: Range<usize>) -> Option<Buffer<'a>> {
    Some(match b {
        Buffer::F32(s) => Buffer::F32(s.get(r)?),
        Buffer::F64(s) => Buffer::F64(s.get(r)?),
        Buffer::I1(s) => Buffer::I1(s.get(r)?),
        Buffer::I64(s) => Buffer::I64(s.get(r)?),
    })
}

/// `out` cut into the rows between consecutive `bounds`, `row` elements a
/// row (a part past the end of `out` is cut short: the kernel reports it).
fn split_mut<'a>(out: BufferMut<'a>, bounds: &[usize], row: usize) -> Vec<BufferMut<'a>> {
    fn cut<'a, T>(mut s: &'a mut [T], bounds: &[usize], row: usize) -> Vec<&'a mut [T]> {
        let mut parts = Vec::with_capacity(bounds.len());
        for w in bounds.windows(2) {
            let n = ((w[1] - w[0]) * row).min(s.len());
            let (part, rest) = std::mem::take(&mut s).split_at_mut(n);
            parts.push(part);
            s = rest;
        }
        parts
    }
    match out {
        BufferMut::F32(s) => cut(s, bounds, row).into_iter().map(BufferMut::F32).collect(),
        BufferMut::F64(s) => cut(s, bounds, row).into_iter().map(BufferMut::F64).collect(),
        BufferMut::I1(s) => cut(s, bounds, row).into_iter().map(BufferMut::I1).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::bounds;

    #[test]
    fn bounds_are_even_aligned_and_never_empty() {
        assert_eq!(bounds(10, 2, 1), vec![0, 5, 10]);
        assert_eq!(bounds(100, 2, 16), vec![0, 48, 100]);
        assert_eq!(bounds(3, 3, 1), vec![0, 1, 2, 3]);
        assert_eq!(bounds(20, 2, 16), vec![0, 20]);
    }
}

