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
//!   row-major, not overlapping any input except those whose pointer is
//!   `out` itself (an in-place call): such an input has the output's dtype
//!   and is read in full, row-major (its strides are the output's).
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
//! rules give the rest: `out` is a `&mut` slice, so it overlaps no input
//! buffer. An in-place input (`None` in [`call`]'s list) is `out`'s own
//! pointer, checked to have the output's dtype and row-major strides: the
//! code loads element `j` of it only in the iteration that stores element
//! `j` of the output, and the store uses the loaded value, so the load comes
//! first; no other iteration touches `j` (the scalar tail does not overlap
//! the vector loop), and the loads are not marked `readonly`. The read and
//! the write go through the one pointer taken from the `&mut` slice.
//!
//! # The structured-kernel ABI
//!
//! A compiled [`crate::GenericSpec`] has the same machine signature,
//! `fn(ins, params, outs, sizes)`, with these meanings (r the rank, n the
//! input count, m the output count):
//!
//! - `sizes[0..r]`: the loop sizes, every entry >= 1.
//! - `ins[0..n]`: one base pointer per input; `ins[n]`: a 16-byte aligned
//!   block that any load may read ([`SAFE_BLOCK`]).
//! - `outs[0..m]`: one base pointer per output (the third parameter points
//!   at this array of pointers, not at an output).
//! - `params[o*(r+1)]` for operand `o` (inputs, then the outputs as
//!   `o = n..n+m`): its offset in bytes; `params[o*(r+1) + 1 + k]`: its
//!   stride in bytes along loop `k`. Then per bounds check `q`
//!   (`schedule.rs`), at `(n+m)*(r+1) + 2q`: the checked index at the origin
//!   of the box, and the operand dim's size.
//!
//! The code (`generic/codegen.rs`) reads operand `o` at `base + offset +
//! sum_k stride[k]·i_k` for loop indices `i` in the box (vector loads cover
//! `lanes` consecutive indices of the innermost loop, all in the box, on
//! stride-1 operands only), except that a padded read whose checked indices
//! are not all in `[0, size)` loads from the safe block and discards the
//! value. [`call_generic`] first runs `generic/launch.rs`, which proves the
//! rest: for every index in the box, each unchecked map result of each
//! input lies in its dim, and the checked ones are computed without
//! wrapping; so every address read is the row-major address of an element
//! inside the buffer (offsets and strides are that address, exactly, in
//! bytes), and each output's, a projection of the box onto its exact shape
//! (or onto the rows `lo..hi` the given slice holds), is inside it too.
//! Each output is its own `&mut` slice, so outputs overlap neither each
//! other nor any input buffer; an all-parallel kernel writes each element
//! of each output once per call (its map is a projection holding every
//! dim).
//!
//! In place: an input given as [`Source::Output`] is read through output
//! `r`'s pointer. `launch.rs` checks that the kernel is all-parallel, the
//! input unpadded, and that its map, shape and dtype are output `r`'s, so
//! at every point it reads exactly the element the point writes: an
//! iteration loads its inputs before the body and stores after it, no
//! other iteration touches those elements (distinct points write distinct
//! elements; the scalar tail does not overlap the vector loop), and the
//! loads of an all-parallel kernel are not marked `readonly`.
//!
//! # Wide code
//!
//! A structured kernel may also have wide code (`generic/wide.rs`, x86-64
//! with AVX2), `extern "sysv64" fn(ptrs: *const *const u8, n: i64)`: `ptrs`
//! holds one pointer per input (null for inputs the body does not read),
//! then one per output; each stream and output pointer is the address of
//! the operand's element at the box's origin, each scalar's the address of
//! its one element. The code reads streams at `ptr + 4·j` and writes
//! outputs at `ptr + 4·j` for `0 <= j < n`, reads each scalar once, and
//! reads nothing else but its own constants. [`call_generic`] runs it only
//! after `prepare` succeeded and only when the launch is one flat run
//! (`flat_run`): every loop but the innermost has size 1, so the points of
//! the box are `j = 0..n` along it, and the Cranelift code would read and
//! write exactly `base + offset + 4·j` of each stream and output (their
//! stride along it is 4 bytes) and `base + offset` of each scalar (all its
//! strides are 0): the addresses `prepare` proved inside the buffers. The
//! in-place argument above holds unchanged: each iteration loads before
//! it stores, and touches only its own elements (the scalar tail starts
//! where the vector loop ends).

use crate::error::JitError;
use crate::generic::launch;
use crate::generic::schedule::Schedule;
use crate::generic::kernel::Source;
use crate::generic::spec::GenericSpec;
#[cfg(target_arch = "x86_64")]
use crate::generic::wide::Read;
use crate::generic::wide::Wide;
use crate::kernel::{Buffer, BufferMut};
use crate::spec::{Access, KernelSpec};
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

/// Checks the buffers against `spec` and `shape`, then runs `code`. A
/// `None` input is the output itself (an in-place call, see the module docs).
pub(crate) fn call(code: &Code, spec: &KernelSpec, inputs: &[Option<Buffer<'_>>], out: BufferMut<'_>, shape: &[usize]) -> Result<(), JitError> {
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
    if out.dtype() != spec.output_dtype() {
        return Err(JitError::DType { what: "output".into(), expected: spec.output_dtype(), found: out.dtype() });
    }
    check_len("output".into(), numel, out.len(), shape)?;
    let out_ptr = out.into_ptr();
    let mut ptrs = Vec::with_capacity(inputs.len());
    let mut strides = Vec::with_capacity(inputs.len() * shape.len());
    for (i, (buf, is)) in inputs.iter().zip(spec.inputs()).enumerate() {
        let (s, len) = is.strides(shape);
        match buf {
            Some(buf) => {
                if buf.dtype() != is.dtype {
                    return Err(JitError::DType { what: format!("input {i}"), expected: is.dtype, found: buf.dtype() });
                }
                check_len(format!("input {i}"), len, buf.len(), shape)?;
                ptrs.push(buf.as_ptr());
            }
            None => {
                if is.dtype != spec.output_dtype() {
                    return Err(JitError::DType { what: format!("input {i} (in place)"), expected: is.dtype, found: spec.output_dtype() });
                }
                if is.access.iter().any(|a| *a != Access::Full) {
                    return Err(JitError::InPlace(i));
                }
                check_len(format!("input {i} (in place)"), len, numel, shape)?;
                ptrs.push(out_ptr.cast_const());
            }
        }
        strides.extend(s.iter().map(|&s| s as i64));
    }
    if numel == 0 {
        return Ok(());
    }
    let shape64: Vec<i64> = shape.iter().map(|&n| n as i64).collect();
    // SAFETY: see the module docs: every dtype, length and size was checked
    // above against the spec the code was generated from; the arrays outlive
    // the call; `out` is an exclusive borrow, and the inputs that read it are
    // full row-major reads of its own dtype and length.
    unsafe { (code.entry)(ptrs.as_ptr(), strides.as_ptr(), out_ptr, shape64.as_ptr()) };
    Ok(())
}

/// What a padded read loads from when its index is outside the operand:
/// 16 bytes, the widest load the code makes, aligned for any of them. The
/// value is discarded (the pad value replaces it), so reading the block
/// rather than branching keeps the loop straight-line.
#[repr(align(16))]
pub(crate) struct SafeBlock([u8; 16]);

/// The one [`SafeBlock`].
pub(crate) static SAFE_BLOCK: SafeBlock = SafeBlock([0; 16]);

/// Checks one call of a structured kernel (`generic/launch.rs`), fills the
/// output with `init` where the schedule needs it, then runs `code` over
/// rows `lo..hi` of dim 0, writing each of `outs` (buffer and whole shape).
#[allow(clippy::too_many_arguments)]
pub(crate) fn call_generic(
    code: &Code,
    wide: Option<&Wide>,
    spec: &GenericSpec,
    sched: &Schedule,
    inputs: &[(Source<'_>, &[usize])],
    outs: Vec<(BufferMut<'_>, &[usize])>,
    sizes: &[usize],
    (lo, hi): (usize, usize),
) -> Result<(), JitError> {
    let args: Vec<launch::OutArg<'_>> = outs.iter().map(|(b, s)| (b.dtype(), b.len(), *s)).collect();
    let ins: Vec<launch::InArg<'_>> = inputs
        .iter()
        .map(|(src, s)| match src {
            Source::Buffer(b) => launch::InArg::Own(b.dtype(), b.len(), s),
            Source::Output(r) => launch::InArg::Output(*r, s),
        })
        .collect();
    let l = launch::prepare(spec, sched, &ins, &args, sizes, lo, hi)?;
    let mut out_ptrs: Vec<*mut u8> = Vec::with_capacity(outs.len());
    for (mut out, _) in outs {
        if let Some(init) = spec.init()
            && (sched.prefill || l.empty)
        {
            out.fill(init);
        }
        out_ptrs.push(out.into_ptr());
    }
    if l.empty {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(w) = wide
        && let Some(n) = flat_run(spec, w, &l)
    {
        let r = spec.rank();
        let mut ptrs: Vec<*const u8> = Vec::with_capacity(inputs.len() + out_ptrs.len());
        for (i, (src, _)) in inputs.iter().enumerate() {
            let base = match src {
                Source::Buffer(b) => b.as_ptr(),
                Source::Output(r) => out_ptrs[*r].cast_const(),
            };
            // The byte offset `prepare` computed: in bounds, or the element
            // itself for a scalar.
            ptrs.push(if w.reads[i] == Read::Unused { std::ptr::null() } else { base.wrapping_byte_offset(l.params[i * (r + 1)] as isize) });
        }
        for (k, p) in out_ptrs.iter().enumerate() {
            ptrs.push(p.cast_const().wrapping_byte_offset(l.params[(inputs.len() + k) * (r + 1)] as isize));
        }
        // SAFETY: see the module docs ("Wide code"): `flat_run` found one
        // contiguous run of `n >= 1` elements per stream and output, whose
        // every element `prepare` proved in bounds, and scalars read at the
        // one element their offset names; `w` was generated from `spec`
        // (both belong to one `CompiledGeneric`) with `entry`'s signature.
        unsafe {
            let entry = std::mem::transmute::<*const u8, WideKernel>(w.code.ptr(w.entry));
            entry(ptrs.as_ptr(), n as i64);
        }
        return Ok(());
    }
    let mut ptrs: Vec<*const u8> = inputs
        .iter()
        .map(|(src, _)| match src {
            Source::Buffer(b) => b.as_ptr(),
            // `prepare` checked that output r exists.
            Source::Output(r) => out_ptrs[*r].cast_const(),
        })
        .collect();
    ptrs.push(SAFE_BLOCK.0.as_ptr());
    // SAFETY: see the module docs: `code` was generated from `spec` and
    // `sched` (a `CompiledGeneric` holds all three), `prepare` checked every
    // buffer, shape and index range against them and computed the offsets
    // and strides; the arrays and buffers outlive the call (`out_ptrs` came
    // from the exclusive borrows in `outs`, which live until this function
    // returns); each output is an exclusive borrow of its own, and an input
    // read in place from one reads it only where and before it is written
    // (module docs).
    unsafe { (code.entry)(ptrs.as_ptr(), l.params.as_ptr(), out_ptrs.as_ptr().cast::<u8>().cast_mut(), l.sizes.as_ptr()) };
    Ok(())
}

/// The wide code's signature (`generic/wide.rs`).
#[cfg(target_arch = "x86_64")]
type WideKernel = unsafe extern "sysv64" fn(ptrs: *const *const u8, n: i64);

/// The element count of a call the wide code can run: every loop but the
/// innermost merged away (size 1), every stream and output contiguous
/// along it (4-byte stride), every scalar fixed (stride 0).
#[cfg(target_arch = "x86_64")]
fn flat_run(spec: &GenericSpec, w: &Wide, l: &launch::Launch) -> Option<usize> {
    let r = spec.rank();
    let n_in = spec.inputs().len();
    if l.sizes[..r - 1].iter().any(|&s| s != 1) {
        return None;
    }
    let inner = |o: usize| l.params[o * (r + 1) + r];
    let ok = (0..n_in).all(|i| match w.reads[i] {
        Read::Unused => true,
        Read::Stream => inner(i) == 4,
        Read::Scalar => (1..=r).all(|k| l.params[i * (r + 1) + k] == 0),
    }) && (n_in..n_in + spec.outputs().len()).all(|o| inner(o) == 4);
    ok.then(|| l.sizes[r - 1] as usize)
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
