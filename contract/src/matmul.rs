//! `dl.matmul`: `a[..., m, k] @ b[..., k, n]`, transpose flags on the last
//! two dims, leading (batch) dims broadcast NumPy-style.
//!
//! Each 2-D product is one strided `gemm` call: a transpose flag only swaps
//! the operand's strides. The one copy: a transposed `b` without batch dims
//! (PyTorch's `[out, in]` weight) small enough to stay cached is transposed
//! first, into a buffer the calling thread keeps, where that measured
//! faster (`transposes_b`). When `b` has no real
//! batch (a weight) and `a` is not transposed, `a`'s batch dims fold into `m`
//! and the whole op is a single `[batch·m, k]·[k, n]` product — the shape a
//! `Linear` layer over a sequence produces.

use crate::epilogue::Epilogue;
use crate::error::{ContractError, check_len};
use crate::kernel::{self, Operand, SendPtr};
use crate::Element;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A dense, row-major tensor operand: its elements and its shape.
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T> {
    /// The elements, row-major (the last dim is contiguous).
    pub data: &'a [T],
    /// The dims; `data.len()` must be their product.
    pub shape: &'a [usize],
}

impl<'a, T> View<'a, T> {
    /// A view of `data` as `shape` (checked when the view is used).
    pub fn new(data: &'a [T], shape: &'a [usize]) -> Self {
        View { data, shape }
    }

    pub(crate) fn check(&self, what: &'static str) -> Result<(), ContractError> {
        check_len(what, self.shape.iter().product(), self.data.len())
    }
}

/// `dl.matmul`'s transpose flags: use the operand's last two dims swapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transpose {
    /// Transpose `a`: it is stored `[..., k, m]`.
    pub a: bool,
    /// Transpose `b`: it is stored `[..., n, k]` (PyTorch's `[out, in]` weight).
    pub b: bool,
}

impl Transpose {
    /// Neither operand transposed.
    pub const NONE: Self = Transpose { a: false, b: false };
    /// Both flags given explicitly.
    pub fn new(a: bool, b: bool) -> Self {
        Transpose { a, b }
    }
}

/// Output bytes per row block (`rows × n` elements). Measured on the MLP
/// layers (benches/contract.rs, "block"): 16 KiB — 16 rows of a 256-wide
/// layer — ran 5–15% faster than one whole product, with or without an
/// epilogue. Two effects: the block is still in L1 when the epilogue runs
/// over it, and `gemm` reads a unit-stride `b` in place for a product of at
/// most 48 rows instead of re-packing it. Tunable for the benchmark only.
#[doc(hidden)]
pub static ROW_BLOCK_BYTES: AtomicUsize = AtomicUsize::new(16 * 1024);

/// Row blocks never get fewer rows than this (a wide output would otherwise
/// make each block a matrix-vector product).
const MIN_BLOCK_ROWS: usize = 16;

/// Row blocks re-read all of `b` per block, so they pay only while `b`
/// stays in L2 (1 MiB on Zen 4, 2 MiB on these Xeons): the MLP's largest
/// weight, 784×256 f32, is 784 KiB. A bigger `b` is left to `gemm`'s own
/// blocking in one product, and the epilogue runs after it.
const MAX_BLOCKED_B_BYTES: usize = 1 << 20;

/// With more threads than independent products: split the rows of each
/// product over the threads (each a single-threaded `gemm` call) instead of
/// letting `gemm` split it, where `b` stays cached. Tunable for the
/// benchmark only.
#[doc(hidden)]
pub static SPLIT_ROWS: AtomicBool = AtomicBool::new(true);

/// Transpose a `[n, k]` weight (`transpose_b`) into `[k, n]` before the
/// product, where it pays (`transposes_b`). Tunable for the benchmark only.
#[doc(hidden)]
pub static TRANSPOSE_B: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// The transposed `b` of the calling thread's current product, kept
    /// between calls so a train step's weights reuse one allocation (it
    /// grows to the largest such `b`, at most `MAX_BLOCKED_B_BYTES`, and
    /// lives as long as the thread).
    static TRANSPOSED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether a `transpose_b` product runs faster on `b` transposed first:
/// `gemm` re-packs a `[n, k]` operand for every block of rows it computes,
/// while a `[k, n]` one is read in place in row blocks (`ROW_BLOCK_BYTES`).
/// Measured (`cargo bench -p dlc-contract --bench contract -- pack`, Zen 4,
/// transposition included, 1 / 2 threads): 64×784·784×256 1.06–1.11x /
/// 1.16x, 64×256·256×128 1.50–1.54x / 1.87x, 256×784·784×256 1.04–1.05x /
/// 1.09x, 256×256·256×128 1.12–1.14x / 1.28x; the 10-wide output layer
/// gains nothing (1.00–1.02x), hence `n ≥ 32`. Only a `b` that row blocks
/// keep cached: for a bigger one `gemm`'s own packing is amortized anyway.
fn transposes_b<T>(g: &Geometry<'_>) -> bool {
    g.n >= 32 && g.k * g.n * size_of::<T>() <= MAX_BLOCKED_B_BYTES
}

/// The checked geometry of one `dl.matmul`, allocation-free: batch offsets
/// are decoded from the operand shapes on the fly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry<'s> {
    a_batch: &'s [usize],
    b_batch: &'s [usize],
    /// Volume of the broadcast batch.
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub t: Transpose,
}

impl<'s> Geometry<'s> {
    pub fn new(a: &'s [usize], b: &'s [usize], t: Transpose) -> Result<Self, ContractError> {
        if a.len() < 2 || b.len() < 2 {
            return Err(ContractError::Shape(format!("matmul operands need rank >= 2, got {a:?} and {b:?}")));
        }
        let (ra, rb) = (a.len(), b.len());
        let (m, k1) = if t.a { (a[ra - 1], a[ra - 2]) } else { (a[ra - 2], a[ra - 1]) };
        let (k2, n) = if t.b { (b[rb - 1], b[rb - 2]) } else { (b[rb - 2], b[rb - 1]) };
        if k1 != k2 {
            return Err(ContractError::Shape(format!("contracted dims differ: {a:?} has {k1}, {b:?} has {k2}")));
        }
        let (a_batch, b_batch) = (&a[..ra - 2], &b[..rb - 2]);
        let mut batch = 1;
        for d in 1..=a_batch.len().max(b_batch.len()) {
            let (da, db) = (dim_from_back(a_batch, d), dim_from_back(b_batch, d));
            if da != db && da != 1 && db != 1 {
                return Err(ContractError::Shape(format!("batch dims {a_batch:?} and {b_batch:?} do not broadcast")));
            }
            batch *= if da == 1 { db } else { da };
        }
        Ok(Geometry { a_batch, b_batch, batch, m, k: k1, n, t })
    }

    /// The output shape: broadcast batch dims, then `[m, n]`.
    pub fn out_shape(&self) -> Vec<usize> {
        let r = self.a_batch.len().max(self.b_batch.len());
        let mut s: Vec<usize> = (1..=r)
            .rev()
            .map(|d| {
                let da = dim_from_back(self.a_batch, d);
                if da == 1 { dim_from_back(self.b_batch, d) } else { da }
            })
            .collect();
        s.extend([self.m, self.n]);
        s
    }

    /// Which matrix of `a` and of `b` output batch element `idx` multiplies.
    fn operands_of(&self, mut idx: usize) -> (usize, usize) {
        let (mut ia, mut ib, mut sa, mut sb) = (0, 0, 1, 1);
        for d in 1..=self.a_batch.len().max(self.b_batch.len()) {
            let (da, db) = (dim_from_back(self.a_batch, d), dim_from_back(self.b_batch, d));
            let od = if da == 1 { db } else { da };
            let digit = idx % od;
            idx /= od;
            if da != 1 {
                ia += digit * sa;
            }
            if db != 1 {
                ib += digit * sb;
            }
            sa *= da;
            sb *= db;
        }
        (ia, ib)
    }

    /// Volume of `b`'s batch dims.
    fn b_volume(&self) -> usize {
        self.b_batch.iter().product()
    }
}

/// Dim `d` counted from the back (1 = last), 1 where the shape is shorter.
fn dim_from_back(s: &[usize], d: usize) -> usize {
    if d <= s.len() { s[s.len() - d] } else { 1 }
}

/// The shape `dl.matmul` gives `a @ b` under the flags `t`.
pub fn matmul_shape(a: &[usize], b: &[usize], t: Transpose) -> Result<Vec<usize>, ContractError> {
    Ok(Geometry::new(a, b, t)?.out_shape())
}

/// `out = epilogue(op(a) @ op(b))`: `dl.matmul` in full (rank ≥ 2, batch
/// broadcast, both transpose flags) into the row-major `out`, whose length
/// must be the product of [`matmul_shape`]. The epilogue's bias has `n`
/// elements (one per output column).
///
/// The product runs in row blocks (of about 16 KiB of output) while `b` is
/// small enough to stay in cache, and the epilogue is applied to each block
/// right after `gemm` wrote it.
///
/// With `threads > 1`, independent 2-D products (batch elements, row
/// blocks) go to separate jobs; with fewer of them than threads, each
/// product's rows are split over the threads (or, for a `b` too big to stay
/// cached, `gemm` splits the product itself). No split changes any sum's
/// order of terms, so 1 and 2 threads agree (bit-equal in the tests). Below
/// about 0.5 M multiply-adds one thread is used: a second costs more than it
/// saves.
///
/// For a constant `b` used many times, [`PackedB`](crate::PackedB) is faster.
pub fn matmul<T: Element>(
    a: View<'_, T>,
    b: View<'_, T>,
    out: &mut [T],
    t: Transpose,
    epilogue: Epilogue<'_, T>,
    threads: usize,
) -> Result<(), ContractError> {
    a.check("a")?;
    b.check("b")?;
    let g = Geometry::new(a.shape, b.shape, t)?;
    check_len("out", g.batch * g.m * g.n, out.len())?;
    epilogue.check(g.n)?;
    run(&g, a.data, b.data, out, epilogue, threads);
    Ok(())
}

/// Runs a checked matmul. Shared with [`PackedB`](crate::PackedB), whose
/// data is just a better-laid-out `b`.
pub(crate) fn run<T: Element>(g: &Geometry<'_>, a: &[T], b: &[T], out: &mut [T], epi: Epilogue<'_, T>, threads: usize) {
    if g.t.b && g.b_volume() == 1 && transposes_b::<T>(g) && TRANSPOSE_B.load(Ordering::Relaxed) {
        let (k, n) = (g.k, g.n);
        // u64 words, so any `Element` fits aligned, and a cache line's
        // worth more to start the matrix on a 64-byte boundary.
        let words = (k * n * size_of::<T>()).div_ceil(8) + 8;
        let mut transposed = |store: &mut Vec<u64>| {
            if store.len() < words {
                store.resize(words, 0);
            }
            let skip = store.as_ptr().align_offset(64).min(8);
            // SAFETY: the words from `skip` hold at least k·n elements of
            // `T` (an f32 or f64, aligned to at most 8 bytes), and the
            // buffer is borrowed mutably for as long as the slice lives.
            let bt = unsafe { std::slice::from_raw_parts_mut(store.as_mut_ptr().add(skip).cast::<T>(), k * n) };
            crate::pack::transpose(b, n, k, bt, threads);
            run(&Geometry { t: Transpose { a: g.t.a, b: false }, ..*g }, a, bt, out, epi, threads);
        };
        TRANSPOSED.with(|cell| match cell.try_borrow_mut() {
            Ok(mut store) => transposed(&mut store),
            // A product started while this thread's buffer is in use (a
            // pool worker that took another job while it waited): a buffer
            // of its own, so the path, and so the bits, do not depend on
            // scheduling.
            Err(_) => transposed(&mut Vec::new()),
        });
        return;
    }
    let (mut batch, mut m) = (g.batch, g.m);
    // A weight without batch dims: fold a's batch into its rows.
    if g.b_volume() == 1 && !g.t.a {
        (batch, m) = (1, g.batch * g.m);
    }
    let (k, n) = (g.k, g.n);
    if batch * m * n == 0 {
        return;
    }
    let threads = kernel::useful_threads(threads, batch * m * n * k);
    // Row blocks when `b` is read in place (unit stride along n: not
    // transposed) and stays cached; see `ROW_BLOCK_BYTES`.
    let elem = size_of::<T>();
    let b_cached = k * n * elem <= MAX_BLOCKED_B_BYTES;
    let mut rows_per_block = if !g.t.b && b_cached {
        (ROW_BLOCK_BYTES.load(Ordering::Relaxed) / (n * elem)).clamp(MIN_BLOCK_ROWS.min(m), m)
    } else {
        m
    };
    // Fewer products than threads: split rows over the threads while each
    // can keep `b` cached (1.2–1.6× faster than `gemm`'s own split for a
    // transposed 784×256 weight); a big `b` is better split by `gemm`
    // along n, or every thread streams all of it.
    if threads > 1 && batch * m.div_ceil(rows_per_block) < threads && b_cached && SPLIT_ROWS.load(Ordering::Relaxed) {
        rows_per_block = m.div_ceil(threads);
    }
    let blocks = m.div_ceil(rows_per_block);
    let items = batch * blocks;
    // Enough independent products: one job each, single-threaded gemm.
    // Too few: run them in turn and let gemm split each one.
    let (jobs, inner) = if items >= threads { (kernel::jobs(threads, items), 1) } else { (1, threads) };
    let dst = SendPtr(out.as_mut_ptr());
    let (a_mat, b_mat) = (g.m * k, k * n);
    let a_op = Operand::row_major(a, if g.t.a { g.m } else { k }, g.t.a);
    let b_op = Operand::row_major(b, if g.t.b { k } else { n }, g.t.b);
    kernel::split(jobs, items, |_, range| {
        for item in range {
            let (bi, blk) = (item / blocks, item % blocks);
            let (ia, ib) = if batch == 1 { (0, 0) } else { g.operands_of(bi) };
            let r0 = blk * rows_per_block;
            let rows = rows_per_block.min(m - r0);
            let lhs = a_op.skip(ia * a_mat).down(r0);
            let rhs = b_op.skip(ib * b_mat);
            let off = (bi * m + r0) * n;
            // SAFETY: shapes and lengths were checked by the caller; items
            // write disjoint row ranges of `out`.
            unsafe {
                kernel::gemm((rows, n, k), dst.at(off), n, false, lhs, rhs, inner);
                let block = std::slice::from_raw_parts_mut(dst.at(off), rows * n);
                epi.apply_cols(block, rows, n, n);
            }
        }
    });
}
