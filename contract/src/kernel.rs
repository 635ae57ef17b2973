//! The one place that calls `gemm::gemm` (unsafe: raw pointers and strides),
//! and the job splitter every entry point shares.
//!
//! Callers validate every shape and length before they get here, so the
//! pointers below always address elements inside their slices.

use crate::Element;
use gemm::Parallelism;

/// A strided, read-only matrix operand: element `(i, j)` lives at
/// `ptr + i·rs + j·cs`. Strides let one kernel call read a transposed
/// operand, or one row block of a bigger matrix, without copying it.
pub(crate) struct Operand<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

impl<T> Clone for Operand<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Operand<T> {}

impl<T> Operand<T> {
    /// A row-major matrix with `cols` columns, or its transpose.
    pub fn row_major(data: &[T], cols: usize, transposed: bool) -> Self {
        let (rs, cs) = if transposed { (1, cols as isize) } else { (cols as isize, 1) };
        Operand { ptr: data.as_ptr(), rs, cs }
    }

    /// The same operand starting `elems` elements further on (another
    /// matrix of a batch).
    pub fn skip(self, elems: usize) -> Self {
        Operand { ptr: self.ptr.wrapping_add(elems), ..self }
    }

    /// The same operand starting `rows` rows further down.
    pub fn down(self, rows: usize) -> Self {
        Operand { ptr: self.ptr.wrapping_offset(rows as isize * self.rs), ..self }
    }
}

// SAFETY: an operand is only read, and the data it points into outlives
// every job it is handed to.
unsafe impl<T: Sync> Send for Operand<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Operand<T> {}

/// `threads` as `gemm`'s parallelism: one thread is `None` (no rayon
/// overhead at all), more is `Rayon(n)` on the current pool.
fn parallelism(threads: usize) -> Parallelism {
    if threads <= 1 { Parallelism::None } else { Parallelism::Rayon(threads) }
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` (or `dst +=` when `accumulate`), with
/// `dst` row-major at row stride `dst_rs`.
///
/// # Safety
/// Every element addressed through the operands must be readable, every
/// element of `dst` writable and not aliased by the operands.
pub(crate) unsafe fn gemm<T: Element>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    lhs: Operand<T>,
    rhs: Operand<T>,
    threads: usize,
) {
    // gemm computes dst = alpha·dst + beta·lhs·rhs; alpha is read only when
    // read_dst is set, and k = 0 zeroes dst (or leaves it, accumulating).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism(threads),
        )
    }
}

/// A raw pointer that may cross threads: jobs write disjoint parts of one
/// output, which the borrow checker cannot see through index arithmetic.
pub(crate) struct SendPtr<T>(pub *mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: only used for disjoint writes, joined before the borrow ends.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer `off` elements further on.
    pub fn at(self, off: usize) -> *mut T {
        self.0.wrapping_add(off)
    }
}

/// Below this many multiply-adds a second thread costs more (waking it,
/// handing it work, joining) than it saves: the MLP's 64×128·128×10 output
/// layer (82 K) ran slower on 2 threads than on 1. The same order as
/// `gemm`'s own threading threshold (48·48·256).
const PAR_MIN_MACS: usize = 1 << 19;

/// The threads worth using for `macs` multiply-adds.
pub(crate) fn useful_threads(threads: usize, macs: usize) -> usize {
    if macs < PAR_MIN_MACS { 1 } else { threads.max(1) }
}

/// How many jobs `items` independent work items are split into: never more
/// than `threads` nor than the items. A pure function of its arguments, so
/// scratch sizes and job boundaries — and thus results — are the same on
/// every run with the same thread count.
pub(crate) fn jobs(threads: usize, items: usize) -> usize {
    threads.max(1).min(items).max(1)
}

/// Runs `f(job, range)` over `jobs` contiguous, near-equal ranges of
/// `0..items`, in parallel on the current rayon pool when `jobs > 1`.
/// Static ranges (not work stealing) keep which job computes which item
/// fixed, which matters where a job accumulates partial sums.
pub(crate) fn split<F>(jobs: usize, items: usize, f: F)
where
    F: Fn(usize, std::ops::Range<usize>) + Sync,
{
    let range = |j: usize| (j * items / jobs)..((j + 1) * items / jobs);
    if jobs <= 1 {
        f(0, 0..items);
        return;
    }
    use rayon::prelude::*;
    (0..jobs).into_par_iter().with_max_len(1).for_each(|j| f(j, range(j)));
}
