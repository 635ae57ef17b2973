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
//! thread, up to 2× on two. Packing a 256×784 weight took 0.19 ms with a
//! blocked scalar transpose; with 8×8 AVX tiles ([`transpose`]), 0.05–0.06
//! ms (Zen 4). That is cheap enough to transpose an `[out, in]` weight that
//! changes every step (a train step's) before each product: `matmul` does
//! (`TRANSPOSE_B`).

use crate::epilogue::Epilogue;
use crate::error::{ContractError, check_len};
use crate::matmul::{self, Geometry, Transpose, View};
use crate::Element;
use crate::kernel::{self, SendPtr};

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
            for (src, dst) in b.data.chunks_exact(rows * cols).zip(dst.chunks_exact_mut(rows * cols)) {
                transpose(src, rows, cols, dst, 1);
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

/// `dst = srcᵀ`: `src` is `[rows, cols]` row-major, `dst` `[cols, rows]`,
/// on up to `threads` jobs (blocks of 8 source rows each). Where the
/// machine has AVX, f32 goes through 8×8 register tiles (eight row loads,
/// three rounds of shuffles, eight row stores); the edges, other types and
/// other machines through 32×32 blocks of scalar copies, which stay in L1
/// on both sides.
pub(crate) fn transpose<T: Element>(src: &[T], rows: usize, cols: usize, dst: &mut [T], threads: usize) {
    assert!(dst.len() == rows * cols, "transpose: {rows}x{cols} into {}", dst.len());
    transpose_ld(src, rows, cols, dst, rows, threads);
}

/// [`transpose`] into rows `ld ≥ rows` apart: `dst[j·ld + i] = src[i·cols
/// + j]`; the elements of each `dst` row past `rows` are not written.
pub(crate) fn transpose_ld<T: Element>(src: &[T], rows: usize, cols: usize, dst: &mut [T], ld: usize, threads: usize) {
    assert!(
        src.len() == rows * cols && ld >= rows && (cols == 0 || dst.len() >= (cols - 1) * ld + rows),
        "transpose: {rows}x{cols} of {} into {} with rows {ld} apart",
        src.len(),
        dst.len()
    );
    let blocks = rows.div_ceil(8);
    // Every thread takes a share however small the matrix: on the caller
    // alone it ran 10x slower at 2 threads than at 1 (64×256·256×128), the
    // pool's idle workers spinning beside it on the two cores.
    let jobs = kernel::jobs(threads, blocks);
    let dst = SendPtr(dst.as_mut_ptr());
    kernel::split(jobs, blocks, |_, range| {
        let rs = range.start * 8..(range.end * 8).min(rows);
        // SAFETY: each job writes only the columns `rs` of `dst`'s rows:
        // disjoint elements, inside `(cols - 1) · ld + rows` (checked above).
        unsafe { transpose_rows(src, cols, dst, ld, rs) };
    });
}

/// The source rows `rs` (from a multiple of 8) of [`transpose`].
///
/// # Safety
/// `src` holds `rows · cols` elements for some `rows ≥ rs.end`, and `dst`
/// points to `(cols - 1) · ld + rows` with `ld ≥ rows`, whose columns `rs`
/// nothing else accesses meanwhile.
unsafe fn transpose_rows<T: Element>(src: &[T], cols: usize, dst: SendPtr<T>, ld: usize, rs: std::ops::Range<usize>) {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let (mut r8, mut c8) = (rs.start, 0);
    #[cfg(target_arch = "x86_64")]
    if crate::direct::is_f32::<T>() && std::arch::is_x86_feature_detected!("avx") {
        (r8, c8) = (rs.start + (rs.end - rs.start) / 8 * 8, cols / 8 * 8);
        // SAFETY: AVX was detected; T is f32; the caller's contract.
        unsafe { avx::tiles(crate::direct::f32s(src), cols, dst.at(0).cast(), ld, rs.start..r8, c8) };
    }
    // What the tiles left: the columns from c8 in their rows, and the rows
    // from r8.
    const TILE: usize = 32;
    let scalar = |rs: std::ops::Range<usize>, cs: std::ops::Range<usize>| {
        for i0 in rs.clone().step_by(TILE) {
            for j0 in cs.clone().step_by(TILE) {
                for i in i0..(i0 + TILE).min(rs.end) {
                    for j in j0..(j0 + TILE).min(cs.end) {
                        // SAFETY: j·ld + i < (cols - 1)·ld + rows, in column i ∈ rs.
                        unsafe { *dst.at(j * ld + i) = src[i * cols + j] };
                    }
                }
            }
        }
    };
    scalar(rs.start..r8, c8..cols);
    scalar(r8..rs.end, 0..cols);
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// The 8×8 tiles of rows `rs`, columns `0..c8` (both spans multiples
    /// of 8), into `dp`'s rows `ld` apart.
    ///
    /// # Safety
    /// The machine has AVX; `src` holds `rows · cols` elements and `dp`
    /// `(cols - 1) · ld + rows`, `rs.end ≤ rows ≤ ld`, `c8 ≤ cols`; nothing
    /// else accesses `dp`'s columns `rs` meanwhile.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn tiles(src: &[f32], cols: usize, dp: *mut f32, ld: usize, rs: std::ops::Range<usize>, c8: usize) {
        let sp = src.as_ptr();
        for i in rs.step_by(8) {
            for j in (0..c8).step_by(8) {
                // SAFETY: rows i..i+8 and columns j..j+8 lie inside both
                // matrices (i + 8 ≤ rs.end ≤ rows ≤ ld, j + 8 ≤ c8 ≤ cols).
                unsafe {
                    let r: [__m256; 8] = std::array::from_fn(|q| _mm256_loadu_ps(sp.add((i + q) * cols + j)));
                    // Pairs of rows interleaved, then quadruples, then halves.
                    let t = [
                        _mm256_unpacklo_ps(r[0], r[1]),
                        _mm256_unpackhi_ps(r[0], r[1]),
                        _mm256_unpacklo_ps(r[2], r[3]),
                        _mm256_unpackhi_ps(r[2], r[3]),
                        _mm256_unpacklo_ps(r[4], r[5]),
                        _mm256_unpackhi_ps(r[4], r[5]),
                        _mm256_unpacklo_ps(r[6], r[7]),
                        _mm256_unpackhi_ps(r[6], r[7]),
                    ];
                    let u = [
                        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
                    ];
                    let out = [
                        _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
                        _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
                        _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
                        _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
                        _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
                        _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
                        _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
                        _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
                    ];
                    for (q, v) in out.into_iter().enumerate() {
                        _mm256_storeu_ps(dp.add((j + q) * ld + i), v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// `transpose_ld` on f32 (the AVX tiles where the machine has AVX, the
    /// scalar edges) and f64 (scalar only): every element moved, the gap
    /// past `rows` in each destination row untouched, at 1 and 2 threads.
    #[test]
    fn transposes_into_spaced_rows() {
        for (rows, cols, ld) in [(13, 21, 16), (64, 121, 64), (8, 8, 9), (1, 5, 3), (17, 1, 17), (24, 40, 31)] {
            for threads in [1, 2] {
                let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
                let mut dst = vec![-1.0f32; (cols - 1) * ld + rows];
                super::transpose_ld(&src, rows, cols, &mut dst, ld, threads);
                for j in 0..cols {
                    for k in 0..ld.min(dst.len() - j * ld) {
                        let want = if k < rows { src[k * cols + j] } else { -1.0 };
                        assert_eq!(dst[j * ld + k], want, "{rows}x{cols} ld {ld}, {threads} thread(s): row {j}, element {k}");
                    }
                }
                let src64: Vec<f64> = src.iter().map(|&v| v as f64).collect();
                let mut dst64 = vec![-1.0f64; (cols - 1) * ld + rows];
                super::transpose_ld(&src64, rows, cols, &mut dst64, ld, threads);
                assert_eq!(dst64, dst.iter().map(|&v| v as f64).collect::<Vec<_>>(), "f64 {rows}x{cols} ld {ld}");
            }
        }
    }
}
