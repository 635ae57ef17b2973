//! A compiled kernel and its safe calling interface.

use crate::abi::{self, Code};
use crate::error::JitError;
use crate::spec::KernelSpec;
use dlc_ir::DType;
use std::time::Duration;

/// An input buffer: a borrowed slice of one of the JIT's element types.
#[derive(Copy, Clone, Debug)]
pub enum Buffer<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// f64 elements.
    F64(&'a [f64]),
    /// i1 elements.
    I1(&'a [bool]),
    /// i64 elements (inputs of structured kernels only: an argmax, a label).
    I64(&'a [i64]),
}

/// The output buffer.
#[derive(Debug)]
pub enum BufferMut<'a> {
    /// f32 elements.
    F32(&'a mut [f32]),
    /// f64 elements.
    F64(&'a mut [f64]),
    /// i1 elements.
    I1(&'a mut [bool]),
}

impl Buffer<'_> {
    /// Its element type.
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
            Buffer::I1(_) => DType::I1,
            Buffer::I64(_) => DType::I64,
        }
    }

    /// Its element count.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(s) => s.len(),
            Buffer::F64(s) => s.len(),
            Buffer::I1(s) => s.len(),
            Buffer::I64(s) => s.len(),
        }
    }

    /// True when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        match self {
            Buffer::F32(s) => s.as_ptr().cast(),
            Buffer::F64(s) => s.as_ptr().cast(),
            Buffer::I1(s) => s.as_ptr().cast(),
            Buffer::I64(s) => s.as_ptr().cast(),
        }
    }
}

impl BufferMut<'_> {
    /// Its element type.
    pub fn dtype(&self) -> DType {
        match self {
            BufferMut::F32(_) => DType::F32,
            BufferMut::F64(_) => DType::F64,
            BufferMut::I1(_) => DType::I1,
        }
    }

    /// Its element count.
    pub fn len(&self) -> usize {
        match self {
            BufferMut::F32(s) => s.len(),
            BufferMut::F64(s) => s.len(),
            BufferMut::I1(s) => s.len(),
        }
    }

    /// True when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets every element to `v` (rounded to the element type; nonzero is true).
    pub(crate) fn fill(&mut self, v: f64) {
        match self {
            BufferMut::F32(s) => s.fill(v as f32),
            BufferMut::F64(s) => s.fill(v),
            BufferMut::I1(s) => s.fill(v != 0.0),
        }
    }

    pub(crate) fn into_ptr(self) -> *mut u8 {
        match self {
            BufferMut::F32(s) => s.as_mut_ptr().cast(),
            BufferMut::F64(s) => s.as_mut_ptr().cast(),
            BufferMut::I1(s) => s.as_mut_ptr().cast(),
        }
    }
}

/// A kernel compiled to machine code, with the spec it was compiled from.
/// Calls check every buffer against the spec first, so no input can make the
/// machine code read or write out of bounds. It may be shared across threads.
pub struct CompiledKernel {
    pub(crate) code: Code,
    pub(crate) spec: KernelSpec,
    pub(crate) lanes: u32,
    pub(crate) compile_time: Duration,
    pub(crate) listing: Option<String>,
}

impl CompiledKernel {
    /// Runs an all-f32 kernel: `inputs` in spec order, `out` of
    /// `shape.product()` elements, `shape` the iteration shape.
    pub fn run(&self, inputs: &[&[f32]], out: &mut [f32], shape: &[usize]) -> Result<(), JitError> {
        let ins: Vec<Buffer<'_>> = inputs.iter().map(|s| Buffer::F32(s)).collect();
        self.run_buffers(&ins, BufferMut::F32(out), shape)
    }

    /// Runs an all-f64 kernel.
    pub fn run_f64(&self, inputs: &[&[f64]], out: &mut [f64], shape: &[usize]) -> Result<(), JitError> {
        let ins: Vec<Buffer<'_>> = inputs.iter().map(|s| Buffer::F64(s)).collect();
        self.run_buffers(&ins, BufferMut::F64(out), shape)
    }

    /// Runs the kernel on buffers of any supported element types.
    pub fn run_buffers(&self, inputs: &[Buffer<'_>], out: BufferMut<'_>, shape: &[usize]) -> Result<(), JitError> {
        let ins: Vec<Option<Buffer<'_>>> = inputs.iter().copied().map(Some).collect();
        abi::call(&self.code, &self.spec, &ins, out, shape)
    }

    /// Runs the kernel with its output overwriting some of its inputs: a
    /// `None` input reads `out` itself, which must then hold that input's
    /// elements. Such an input must be read in full and in order (every
    /// dim `Access::Full`, the output's dtype); the kernel reads each of its
    /// elements once, in the iteration that writes that element, before the
    /// write. This is how a value that dies at this kernel lends its buffer
    /// to the result (an optimizer's new state over the old one).
    pub fn run_in_place(&self, inputs: &[Option<Buffer<'_>>], out: BufferMut<'_>, shape: &[usize]) -> Result<(), JitError> {
        abi::call(&self.code, &self.spec, inputs, out, shape)
    }

    /// The spec it was compiled from.
    pub fn spec(&self) -> &KernelSpec {
        &self.spec
    }

    /// Lanes of the innermost loop's vectors (4 for f32, 2 for f64), or 1
    /// when the kernel runs scalar (mixed f32/f64, or i1 buffers).
    pub fn vector_lanes(&self) -> u32 {
        self.lanes
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

impl<'a> From<&'a [f32]> for Buffer<'a> {
    fn from(s: &'a [f32]) -> Self {
        Buffer::F32(s)
    }
}

impl<'a> From<&'a [f64]> for Buffer<'a> {
    fn from(s: &'a [f64]) -> Self {
        Buffer::F64(s)
    }
}

impl<'a> From<&'a [bool]> for Buffer<'a> {
    fn from(s: &'a [bool]) -> Self {
        Buffer::I1(s)
    }
}

impl<'a> From<&'a [i64]> for Buffer<'a> {
    fn from(s: &'a [i64]) -> Self {
        Buffer::I64(s)
    }
}

impl<'a> From<&'a mut [f32]> for BufferMut<'a> {
    fn from(s: &'a mut [f32]) -> Self {
        BufferMut::F32(s)
    }
}

impl<'a> From<&'a mut [f64]> for BufferMut<'a> {
    fn from(s: &'a mut [f64]) -> Self {
        BufferMut::F64(s)
    }
}

impl<'a> From<&'a mut [bool]> for BufferMut<'a> {
    fn from(s: &'a mut [bool]) -> Self {
        BufferMut::I1(s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_and_the_jit_are_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<super::CompiledKernel>();
        shared::<crate::Jit>();
    }
}
