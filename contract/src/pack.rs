//! Packed weights: a constant right-hand side copied once, when the model
//! is compiled or loaded, into the layout the kernel is fastest with.
//!
//! Why this layout: `gemm` computes a row-major output as the transposed
//! product `outᵀ = bᵀ·aᵀ`, so `b` is its left operand and wants unit stride
//! along `n` — `b` stored `[k, n]` row-major (`[in, out]`). A PyTorch-style
//! `[out, in]` weight used with `transpose_b` has stride `k` there and is
//! re-packed by `gemm` on every call. [`PackedB`] stores `op(b)` as
//! `[k, n]` row-major on a 64-byte boundary, so that cost is paid once, and
//! `matmul` can then run the product in cached row blocks that read `b` in
//! place.
//!
//! Measured (benches/contract.rs, 64×784·784×256, Xeon with AVX-512): the
//! `[out, in]` weight with `transpose_b` ran at 116–124 GFLOP/s on one thread
//! and 99–187 on two; packed, 167 and 312 — 1.35–1.45× faster on one
//! thread, up to 2× on two. Packing a 256×784 weight takes about 0.25 ms,
//! once.

use crate::epilogue::Epilogue;
use crate::error::{ContractError, check_len};
use crate::matmul::{self, Geometry, Transpose, View};
use crate::Element;

/// The cache-line (and AVX-512 vector) size the packed data is aligned to.
const ALIGN_BYTES: usize = 64;

/// A constant right-hand side of `dl.matmul`, packed once as `op(b)`
/// (transpose applied) in row-major `[batch..., k, n]`, 64-byte aligned.
#[derive(Clone, Debug)]
pub struct PackedB<T> {
    /// Backing store; the packed data starts at `start`, which aligns it.
    store: Vec<T>,
    start: usize,
    /// `b`'s shape as `dl.matmul` sees it after the flag: `[batch..., k, n]`.
    shape: Vec<usize>,
}

impl<T: Element> PackedB<T> {
    /// Packs `b`, the right operand of `dl.matmul`, with its `transpose_b`
    /// flag (`true` for PyTorch's `[out, in]` Linear weight).
    pub fn new(b: View<'_, T>, transpose_b: bool) -> Result<Self, ContractError> {
        b.check("b")?;
        let r = b.shape.len();
        if r < 2 {
            return Err(ContractError::Shape(format!("matmul operands need rank >= 2, got {:?}", b.shape)));
        }
        let (rows, cols) = (b.shape[r - 2], b.shape[r - 1]);
        let (k, n) = if transpose_b { (cols, rows) } else { (rows, cols) };
        let mut shape = b.shape.to_vec();
        shape[r - 2..].copy_from_slice(&[k, n]);
        let len = b.data.len();
        let lanes = ALIGN_BYTES / size_of::<T>();
        let mut store = vec![T::ZERO; len + lanes];
        let start = store.as_ptr().align_offset(ALIGN_BYTES).min(lanes);
        let dst = &mut store[start..start + len];
        if !transpose_b || len == 0 {
            dst.copy_from_slice(b.data);
        } else {
            // Blocked transpose of each matrix: 32×32 tiles stay in L1 on
            // both the read and the write side.
            const TILE: usize = 32;
            for (src, dst) in b.data.chunks_exact(rows * cols).zip(dst.chunks_exact_mut(rows * cols)) {
                for i0 in (0..rows).step_by(TILE) {
                    for j0 in (0..cols).step_by(TILE) {
                        for i in i0..(i0 + TILE).min(rows) {
                            for j in j0..(j0 + TILE).min(cols) {
                                dst[j * rows + i] = src[i * cols + j];
                            }
                        }
                    }
                }
            }
        }
        Ok(PackedB { store, start, shape })
    }

    /// The packed operand's shape, `[batch..., k, n]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The packed elements, row-major `[batch..., k, n]`.
    pub fn data(&self) -> &[T] {
        let len = self.shape.iter().product::<usize>();
        &self.store[self.start..self.start + len]
    }
}

/// `out = epilogue(op(a) @ b)` with a packed `b`: [`matmul`](crate::matmul)
/// with `transpose_b` already applied by the packing. Same shapes, rules and
/// threading; the bias has `n` elements.
pub fn matmul_packed<T: Element>(
    a: View<'_, T>,
    b: &PackedB<T>,
    out: &mut [T],
    transpose_a: bool,
    epilogue: Epilogue<'_, T>,
    threads: usize,
) -> Result<(), ContractError> {
    a.check("a")?;
    let g = Geometry::new(a.shape, &b.shape, Transpose { a: transpose_a, b: false })?;
    check_len("out", g.batch * g.m * g.n, out.len())?;
    epilogue.check(g.n)?;
    matmul::run(&g, a.data, b.data(), out, epilogue, threads);
    Ok(())
}
