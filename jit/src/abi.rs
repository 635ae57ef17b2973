//! The machine-code boundary: the kernel ABI, the checks that make a call
//! sound, the call itself, and ownership of the code's memory. All of the
//! crate's `unsafe` is in this file.
//!
//! # The kernel ABI
//!
//! A compiled kernel is
//!
//! ```text
//! extern "C" fn(ins: *const *const u8, strides: *const i64, out: *mut u8, shape: *const i64)
//! ```
//!
//! - `shape[0..rank]`: the iteration shape, every entry >= 1 (an empty
//!   iteration space is never called).
//! - `ins[0..n_inputs]`: one base pointer per input buffer, aligned to its
//!   element type.
//! - `strides[i*rank + d]`: input `i`'s element stride along dim `d`, as
//!   [`InputSpec::strides`] gives it (0 on broadcast dims); the innermost
//!   stride is 1 or 0 as the spec's access says, and the code relies on that.
//! - `out`: `shape.product()` contiguous elements of the output dtype,
//!   row-major, not overlapping any input.
//!
//! f32/f64 elements are IEEE floats; i1 elements are bytes holding 0 or 1
//! (Rust's `bool`), and the code writes only 0 or 1 (it masks with 1 before
//! the store).
//!
//! # Why the call is sound
//!
//! The generated code (see `codegen.rs`) reads input `i` only at offsets
//! `sum_d idx[d]·strides[i][d]` for `idx` inside the shape box (its vector
//! loads cover indices `j..j+lanes` with `j + lanes <= shape[rank-1]` on
//! stride-1 dims), and writes the output only at the row-major offsets of
//! that box. [`call`] checks, before the call: the buffer count, every dtype,
//! the rank, that every input holds exactly `prod over its Full dims of
//! shape[d]` elements (so the largest offset read is `len - 1`), that the
//! output holds `prod(shape)` elements, and that no size overflows. Borrowing
//! rules give the rest: `out` is a `&mut` slice, so it overlaps no input.

use crate::error::JitError;
use crate::kernel::{Buffer, BufferMut};
use crate::spec::KernelSpec;
use cranelift_jit::JITModule;
use cranelift_module::FuncId;

/// The kernel's machine-code signature (see the module docs).
type RawKernel = unsafe extern "C" fn(ins: *const *const u8, strides: *const i64, out: *mut u8, shape: *const i64);

/// Compiled code and the memory that holds it; the memory is freed on drop.
pub(crate) struct Code {
    module: Option<JITModule>,
    entry: RawKernel,
}

// SAFETY: `JITModule` is `Send` but not `Sync` (it has a `RefCell` of
// symbols). `Code` never lends the module out: `&Code` only reads `entry`,
// a plain function pointer into memory that stays mapped, read-only and
// executable until `drop` (which has `&mut`), so sharing `&Code` across
// threads cannot reach the `RefCell`. The generated code itself touches no
// shared state besides the buffers of each call.
unsafe impl Sync for Code {}

impl Code {
    /// Finalizes `module` and takes ownership of it and of its function
    /// `id`, which `codegen.rs` defined with the ABI of this module (the
    /// crate's one caller does; the transmute below relies on it).
    pub(crate) fn new(mut module: JITModule, id: FuncId) -> Result<Code, JitError> {
        if let Err(e) = module.finalize_definitions() {
            // SAFETY: no pointer into the module's memory was taken yet.
            unsafe { module.free_memory() };
            return Err(JitError::codegen(e));
        }
        let ptr = module.get_finalized_function(id);
        // SAFETY: `ptr` is the finalized, executable entry of a function whose
        // Cranelift signature is four I64 (pointer) parameters and no result,
        // in the ISA's default calling convention, which is the host's C
        // convention: that is `RawKernel` on the 64-bit hosts `Jit` accepts.
        let entry = unsafe { std::mem::transmute::<*const u8, RawKernel>(ptr) };
        Ok(Code { module: Some(module), entry })
    }
}

/// Frees a module whose code was never finalized or handed out (a failed compile).
pub(crate) fn discard(module: JITModule) {
    // SAFETY: no pointer into the module's memory exists: `Code::new`, the
    // only place that takes one, was not reached.
    unsafe { module.free_memory() };
}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `entry` is the only pointer into this memory and it is
            // dropped with `self`; `&mut self` means no call is running.
            unsafe { m.free_memory() };
        }
    }
}

fn check_len(what: String, expected: usize, found: usize, shape: &[usize]) -> Result<(), JitError> {
    if expected == found { Ok(()) } else { Err(JitError::Len { what, expected, found, shape: shape.to_vec() }) }
}

/// Checks the buffers against `spec` and `shape`, then runs `code`.
pub(crate) fn call(code: &Code, spec: &KernelSpec, inputs: &[Buffer<'_>], out: BufferMut<'_>, shape: &[usize]) -> Result<(), JitError> {
    if inputs.len() != spec.inputs().len() {
        return Err(JitError::InputCount { expected: spec.inputs().len(), found: inputs.len() });
    }
    if shape.len() != spec.rank() {
        return Err(JitError::Rank { expected: spec.rank(), found: shape.to_vec() });
    }
    // Every buffer's byte size must fit isize (so offsets and i64 strides cannot wrap).
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .filter(|&n| n.checked_mul(8).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| JitError::TooLarge(shape.to_vec()))?;
    let mut ptrs = Vec::with_capacity(inputs.len());
    let mut strides = Vec::with_capacity(inputs.len() * shape.len());
    for (i, (buf, is)) in inputs.iter().zip(spec.inputs()).enumerate() {
        if buf.dtype() != is.dtype {
            return Err(JitError::DType { what: format!("input {i}"), expected: is.dtype, found: buf.dtype() });
        }
        let (s, len) = is.strides(shape);
        check_len(format!("input {i}"), len, buf.len(), shape)?;
        ptrs.push(buf.as_ptr());
        strides.extend(s.iter().map(|&s| s as i64));
    }
    if out.dtype() != spec.output_dtype() {
        return Err(JitError::DType { what: "output".into(), expected: spec.output_dtype(), found: out.dtype() });
    }
    check_len("output".into(), numel, out.len(), shape)?;
    if numel == 0 {
        return Ok(());
    }
    let shape64: Vec<i64> = shape.iter().map(|&n| n as i64).collect();
    let out_ptr = out.into_ptr();
    // SAFETY: see the module docs: every dtype, length and size was checked
    // above against the spec the code was generated from; the arrays outlive
    // the call; `out` is an exclusive borrow.
    unsafe { (code.entry)(ptrs.as_ptr(), strides.as_ptr(), out_ptr, shape64.as_ptr()) };
    Ok(())
}

/// `powf` for generated code (Cranelift has no pow instruction): the same
/// function the interpreter calls, so `dl.pow` matches it exactly.
pub(crate) extern "C" fn pow_f32(x: f32, y: f32) -> f32 {
    x.powf(y)
}

/// `pow` for generated code.
pub(crate) extern "C" fn pow_f64(x: f64, y: f64) -> f64 {
    x.powf(y)
}
