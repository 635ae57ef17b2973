//! A compiled structured kernel and its safe calling interface.

use crate::abi::{self, Code};
use crate::error::JitError;
use crate::generic::schedule::Schedule;
use crate::generic::spec::{GenericSpec, IterKind};
use crate::generic::wide::Wide;
use crate::kernel::{Buffer, BufferMut};
use std::time::Duration;

/// Where a call reads one input of a structured kernel.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// A buffer of its own.
    Buffer(Buffer<'a>),
    /// Output `r`'s buffer, in place: the input is read at each point just
    /// before that point writes the output. Needs an all-parallel kernel
    /// and an unpadded input with the output's map, shape and dtype.
    Output(usize),
}

/// A structured kernel compiled to machine code, with the spec it was
/// compiled from. Calls check every buffer, shape and index range first, so
/// no input can make the machine code read or write out of bounds. It may
/// be shared across threads.
pub struct CompiledGeneric {
    pub(crate) code: Code,
    /// The same kernel on 256-bit vectors, where it qualifies (`wide.rs`).
    pub(crate) wide: Option<Wide>,
    pub(crate) spec: GenericSpec,
    pub(crate) sched: Schedule,
    pub(crate) compile_time: Duration,
    pub(crate) listing: Option<String>,
}

impl CompiledGeneric {
    /// Runs the kernel over the iteration space `sizes`: each input with
    /// its shape (dense, row-major), the output with its shape, which must
    /// be the output map's image of `sizes`.
    pub fn run(&self, inputs: &[(Buffer<'_>, &[usize])], out: (BufferMut<'_>, &[usize]), sizes: &[usize]) -> Result<(), JitError> {
        let rows = sizes.first().copied().unwrap_or(0);
        self.run_range(inputs, out, sizes, 0..rows)
    }

    /// Runs the points whose dim-0 index is in `lo..hi`, writing output
    /// rows `lo..hi`; `out.0` holds just those rows (the slice
    /// `[lo·row, hi·row)` of the whole output, `row` the product of the
    /// output shape past its first dim) and `out.1` is the whole output's
    /// shape. Disjoint row ranges write disjoint slices, so threads can run
    /// them at once from one `chunks_mut` of the output, and together they
    /// give exactly [`run`](Self::run)'s result. Partial ranges need a
    /// kernel that [`splits_rows`](Self::splits_rows); the whole range works
    /// for every kernel.
    pub fn run_range(&self, inputs: &[(Buffer<'_>, &[usize])], out: (BufferMut<'_>, &[usize]), sizes: &[usize], range: std::ops::Range<usize>) -> Result<(), JitError> {
        let inputs: Vec<(Source<'_>, &[usize])> = inputs.iter().map(|(b, s)| (Source::Buffer(*b), *s)).collect();
        self.run_outputs(&inputs, vec![out], sizes, range)
    }

    /// [`run_range`](Self::run_range) for a kernel with one or more
    /// outputs: one buffer (rows `lo..hi`, or all of it) and whole shape per
    /// output, in the spec's order; an input may be read in place from an
    /// output ([`Source::Output`]).
    pub fn run_outputs(&self, inputs: &[(Source<'_>, &[usize])], outs: Vec<(BufferMut<'_>, &[usize])>, sizes: &[usize], range: std::ops::Range<usize>) -> Result<(), JitError> {
        abi::call_generic(&self.code, self.wide.as_ref(), &self.spec, &self.sched, inputs, outs, sizes, (range.start, range.end))
    }

    /// True when [`run_range`](Self::run_range) takes part of dim 0: dim 0
    /// is parallel and every output map starts with it (so output rows are
    /// dim-0 rows).
    pub fn splits_rows(&self) -> bool {
        self.spec.iterators()[0] == IterKind::Parallel && self.spec.outputs().iter().all(|o| o.map.results.first().and_then(|e| e.as_dim()) == Some(0))
    }

    /// The spec it was compiled from.
    pub fn spec(&self) -> &GenericSpec {
        &self.spec
    }

    /// Lanes of the innermost loop's vectors (4 for f32, 2 for f64), or 1
    /// when it runs scalar: a strided or transposed operand along it, a
    /// bounds check that depends on it, i1 or mixed-width values, or a
    /// reduction whose body is not `acc ⊕ f(inputs)` with ⊕ add, maximum or
    /// minimum.
    pub fn vector_lanes(&self) -> u32 {
        self.sched.lanes()
    }

    /// True when the kernel also has 256-bit AVX code (a flat f32 map, on a
    /// CPU with AVX2; see [`crate::JitOptions::wide`]), which every call
    /// whose operands are contiguous runs instead.
    pub fn is_wide(&self) -> bool {
        self.wide.is_some()
    }

    /// The Cranelift IR and the disassembled machine code, when the JIT was
    /// made with [`crate::JitOptions::listing`].
    pub fn listing(&self) -> Option<&str> {
        self.listing.as_deref()
    }

    /// Wall time spent generating and compiling the code.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiled_generics_are_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<super::CompiledGeneric>();
    }
}
