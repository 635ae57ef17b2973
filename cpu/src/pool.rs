//! `dl.max_pool2d_grad` on the CPU: each window's output gradient goes to
//! the input element PyTorch's max_pool2d saves as its argmax.
//!
//! The rule (`backends`' interpreter holds the same one, as the oracle):
//! taps are visited in row-major window order, padding skipped; a tap
//! becomes the window's argmax when it is greater than the maximum so far
//! or is NaN, starting from the first tap inside the input with -inf, so
//! ties go to the first maximum and a NaN window to its last NaN.
//!
//! Why a routine and not a loop nest: the rule is a running argmax per
//! window and a scatter, which the JIT's loop nests could only express as
//! a per-tap compare-and-select kernel plus a scatter over a
//! `[n, c, oh, kh, ow, kw]` view whose innermost dims are the window's
//! (two kernels, every tap compared against the pooled value, strided
//! vectors). Here every window is one branch-free scan of its taps.
//!
//! Windows that tile the input (stride = kernel, no padding: the common
//! `MaxPool2d(k)`) write every element of the window, its argmax `g` and
//! the rest zero, so the result is written once; rows and columns no window
//! covers are zeroed. Other windows may overlap: the plane is zeroed and
//! each window adds its `g` at its argmax, in window order.
//!
//! With `relu` (the fused form of ReLU's gradient mask after the pooling's,
//! `select(x > 0, dx, 0)`), an element where `x > 0` does not hold is 0.
//!
//! Each `[H, W]` plane is computed by one call with the same code (the CPU
//! backend splits whole planes over its threads), so the result is
//! bit-identical at any thread count.
//!
//! The common 2×2 stride-2 window on f32 has an AVX-512 path (16 windows
//! per vector, [`avx512`]), where one is detected: the generic scan
//! compiles for the baseline x86-64 here and ran the Keras CNN's first
//! pooling gradient at about 3 cycles per input element (1.1 ms, batch 64).

use std::sync::atomic::{AtomicBool, Ordering};

/// A pooling window: `kernel`, `stride` and `padding`, each `[h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolWindow {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl PoolWindow {
    /// The pooled size of an `[h, w]` plane, if the window is well formed
    /// (stride ≥ 1, padding at most half the kernel) and fits it.
    pub fn out(&self, [h, w]: [usize; 2]) -> Option<[usize; 2]> {
        let one = |d: usize, size: usize| {
            let (k, s, p) = (self.kernel[d], self.stride[d], self.padding[d]);
            (k >= 1 && s >= 1 && 2 * p <= k && size + 2 * p >= k).then(|| (size + 2 * p - k) / s + 1)
        };
        Some([one(0, h)?, one(1, w)?])
    }
    fn tiles(&self) -> bool {
        self.stride == self.kernel && self.padding == [0, 0]
    }
    /// The input rows (or columns, `d = 1`) window `o` covers, padding cut.
    fn span(&self, d: usize, o: usize, size: usize) -> (usize, usize) {
        let start = (o * self.stride[d]) as isize - self.padding[d] as isize;
        let end = (start + self.kernel[d] as isize).min(size as isize);
        (start.max(0) as usize, end.max(0) as usize)
    }
}

/// Use the AVX-512 path where it applies. Public for the tests and the
/// benchmark only.
#[doc(hidden)]
pub static POOL_SIMD: AtomicBool = AtomicBool::new(true);

/// The float types the routine serves.
pub(crate) trait PoolFloat: Copy + PartialOrd + std::ops::Add<Output = Self> + std::ops::AddAssign + Send + Sync {
    const ZERO: Self;
    const NEG_INFINITY: Self;
    fn is_nan(self) -> bool;
    /// One plane of 2×2 stride-2 windows by a vector path, if this machine
    /// and type have one (arguments as [`pairs_plane`]'s); false when not.
    fn pairs(x: &[Self], g: &[Self], dx: &mut [Self], w: usize, out: [usize; 2], relu: bool) -> bool;
    /// `v` when `v` is greater than `self` or NaN, else `self`, and whether
    /// `v` was taken; computed with bit masks, so the compiler emits no
    /// branch (a branch on data mispredicts on most windows).
    fn take(self, v: Self) -> (Self, bool);
}

macro_rules! pool_float {
    ($t:ty, $bits:ty, $pairs:expr) => {
        impl PoolFloat for $t {
            const ZERO: $t = 0.0;
            const NEG_INFINITY: $t = <$t>::NEG_INFINITY;
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn pairs(x: &[$t], g: &[$t], dx: &mut [$t], w: usize, out: [usize; 2], relu: bool) -> bool {
                $pairs(x, g, dx, w, out, relu)
            }
            #[inline(always)]
            fn take(self, v: $t) -> ($t, bool) {
                let take = (v > self) | (v != v);
                let mask = (take as $bits).wrapping_neg();
                (<$t>::from_bits((v.to_bits() & mask) | (self.to_bits() & !mask)), take)
            }
        }
    };
}
pool_float!(f32, u32, pairs_plane);
pool_float!(f64, u64, |_: &[f64], _: &[f64], _: &mut [f64], _: usize, _: [usize; 2], _: bool| false);

/// The plane index (`row · W + col`) of the window's argmax, by the rule
/// in the module docs. The window must hold at least one input element.
#[inline(always)]
fn argmax<T: PoolFloat>(x: &[T], width: usize, rows: (usize, usize), cols: (usize, usize)) -> usize {
    let mut best = rows.0 * width + cols.0;
    let mut max = T::NEG_INFINITY;
    for r in rows.0..rows.1 {
        for c in cols.0..cols.1 {
            let i = r * width + c;
            let v = x[i];
            let take = v > max || v.is_nan();
            max = if take { v } else { max };
            best = if take { i } else { best };
        }
    }
    best
}

/// Planes `planes` of `dx` (`[N, C, H, W]`, the shape of `x`; `dx` holds
/// just those planes) from `x` and the output gradient `g` (`[N, C, OH,
/// OW]`, whole). The caller has checked the shapes: `x` holds whole planes
/// of `h · w` elements covering `planes`, `g` planes of `oh · ow`, and
/// `[oh, ow]` is [`PoolWindow::out`] of `[h, w]` (so every window holds at
/// least one input element). With `relu`, elements where `x > 0` does not
/// hold are 0.
#[allow(clippy::too_many_arguments)]
pub(crate) fn max_pool2d_grad<T: PoolFloat>(x: &[T], g: &[T], planes: std::ops::Range<usize>, dx: &mut [T], [h, w]: [usize; 2], [oh, ow]: [usize; 2], win: PoolWindow, relu: bool) {
    let (plane, out_plane) = (h * w, oh * ow);
    if plane == 0 {
        return;
    }
    let pairs = win.tiles() && win.kernel == [2, 2] && POOL_SIMD.load(Ordering::Relaxed);
    // The tiled scan's per-window state, one row of windows long, reused by every plane.
    let (mut max, mut best) = if win.tiles() { (vec![T::NEG_INFINITY; ow], vec![0u32; ow]) } else { (Vec::new(), Vec::new()) };
    for (p, dx) in planes.zip(dx.chunks_mut(plane)) {
        let (x, g) = (&x[p * plane..(p + 1) * plane], &g[p * out_plane..(p + 1) * out_plane]);
        if pairs && T::pairs(x, g, dx, w, [oh, ow], relu) {
            continue;
        }
        if win.tiles() {
            tiled_plane(x, g, dx, w, [oh, ow], win.kernel, (&mut max, &mut best));
        } else {
            dx.fill(T::ZERO);
            for oi in 0..oh {
                let rows = win.span(0, oi, h);
                for oj in 0..ow {
                    let cols = win.span(1, oj, w);
                    dx[argmax(x, w, rows, cols)] += g[oi * ow + oj];
                }
            }
        }
        if relu {
            for (d, &v) in dx.iter_mut().zip(x) {
                if v.partial_cmp(&T::ZERO) != Some(std::cmp::Ordering::Greater) {
                    *d = T::ZERO;
                }
            }
        }
    }
}

/// One `[h, w]` plane of 2×2 stride-2 windows (`[oh, ow]` of them, `oh =
/// h / 2`, `ow = w / 2`) on AVX-512, when this machine has it.
fn pairs_plane(x: &[f32], g: &[f32], dx: &mut [f32], w: usize, out: [usize; 2], relu: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was detected just above.
        unsafe { avx512::plane(x, g, dx, w, out, relu) };
        return true;
    }
    let _ = (x, g, dx, w, out, relu);
    false
}

/// One plane of tiling windows: each window writes all its taps. A row of
/// windows is scanned one kernel row at a time across the whole row
/// (`max`, `best`: each window's running maximum and argmax tap), so the
/// inner loops are branch-free selects over the row that the compiler
/// vectorizes; an argmax found by compare-and-branch per window mispredicts
/// on most windows (measured 2-3x slower). Kernel widths 2 and 3 get
/// unrolled copies.
/// `max` and `best` hold `ow` elements each (their contents are reset here).
fn tiled_plane<T: PoolFloat>(x: &[T], g: &[T], dx: &mut [T], w: usize, [oh, ow]: [usize; 2], [kh, kw]: [usize; 2], (max, best): (&mut [T], &mut [u32])) {
    for oi in 0..oh {
        max.fill(T::NEG_INFINITY);
        best.fill(0);
        for i in 0..kh {
            let row = &x[(oi * kh + i) * w..][..ow * kw];
            let first = (i * kw) as u32;
            match kw {
                2 => scan(row, 2, max, best, first),
                3 => scan(row, 3, max, best, first),
                k => scan(row, k, max, best, first),
            }
        }
        let share = &g[oi * ow..][..ow];
        for i in 0..kh {
            let r = oi * kh + i;
            let row = &mut dx[r * w..(r + 1) * w];
            let first = (i * kw) as u32;
            let (covered, rest) = row.split_at_mut(ow * kw);
            match kw {
                2 => place(covered, 2, best, share, first),
                3 => place(covered, 3, best, share, first),
                k => place(covered, k, best, share, first),
            }
            // Columns past the last window.
            rest.fill(T::ZERO);
        }
    }
    // Rows past the last window.
    dx[oh * kh * w..].fill(T::ZERO);
}

/// One kernel row of a row of windows `k` wide: tap `first + j` of each
/// window replaces the window's maximum when greater or NaN. Inlined where
/// `k` is a constant, so each width gets its own unrolled, vectorized loop.
#[inline(always)]
fn scan<T: PoolFloat>(row: &[T], k: usize, max: &mut [T], best: &mut [u32], first: u32) {
    for ((m, b), c) in max.iter_mut().zip(best.iter_mut()).zip(row.chunks_exact(k)) {
        for (j, &v) in c.iter().enumerate() {
            let (next, take) = m.take(v);
            let keep = (take as u32).wrapping_sub(1);
            *m = next;
            *b = (*b & keep) | ((first + j as u32) & !keep);
        }
    }
}

/// One kernel row of a row of windows `k` wide, written: the argmax tap
/// gets the window's gradient added to zero (as where windows overlap, and
/// as PyTorch's zeroed gradient: a -0.0 lands as +0.0), the others zero.
#[inline(always)]
fn place<T: PoolFloat>(row: &mut [T], k: usize, best: &[u32], share: &[T], first: u32) {
    for ((c, &b), &s) in row.chunks_exact_mut(k).zip(best).zip(share) {
        for (j, d) in c.iter_mut().enumerate() {
            *d = if b == first + j as u32 { T::ZERO + s } else { T::ZERO };
        }
    }
}

/// The 2×2 stride-2 window on AVX-512: a pair of input rows at a time, 16
/// windows per vector. Each row's 32 elements split into even and odd
/// columns (a two-source permute), so the window's four taps are four
/// vectors, compared in the scan's order (row-major, greater or NaN
/// replaces); the winner's mask picks where the gradient lands, and the
/// two columns are interleaved back for the store. Bit-identical to the
/// generic scan (the same rule, the same `0 + g`).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Windows per vector.
    const L: usize = 16;

    /// Lanes `0..n` set.
    fn lanes(n: usize) -> __mmask16 {
        if n >= L { !0 } else { ((1u32 << n) - 1) as __mmask16 }
    }

    /// A tap replaces the running maximum when greater, or NaN.
    #[target_feature(enable = "avx512f")]
    fn takes(v: __m512, max: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, max) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
    }

    /// `x`, `dx`: the plane, `h · w` elements with `h ≥ 2·oh`; `g`: `oh ·
    /// ow` elements, `2·ow ≤ w` (the caller checks; calling it needs
    /// `avx512f`).
    #[target_feature(enable = "avx512f")]
    pub(super) fn plane(x: &[f32], g: &[f32], dx: &mut [f32], w: usize, [oh, ow]: [usize; 2], relu: bool) {
        assert!(x.len() == dx.len() && x.len() >= 2 * oh * w && 2 * ow <= w && g.len() == oh * ow, "max_pool2d_grad: plane sizes");
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        let low = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        let high = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
        let zero = _mm512_setzero_ps();
        let (xp, gp) = (x.as_ptr(), g.as_ptr());
        for oi in 0..oh {
            let (r0, r1) = (2 * oi * w, (2 * oi + 1) * w);
            let dp = dx.as_mut_ptr();
            for oj in (0..ow).step_by(L) {
                let k = (ow - oj).min(L);
                let (m0, m1, mg) = (lanes(2 * k), lanes((2 * k).saturating_sub(L)), lanes(k));
                let c = 2 * oj;
                // SAFETY (every load and store below): the lanes `m0`, `m1`
                // and `mg` leave on lie inside the plane's rows `r0`, `r1`
                // (columns below 2·ow ≤ w) and inside `g`; a masked-off
                // lane is never accessed.
                let (a0, a1, b0, b1, gv) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(m0, xp.add(r0 + c)),
                        _mm512_maskz_loadu_ps(m1, xp.wrapping_add(r0 + c + L)),
                        _mm512_maskz_loadu_ps(m0, xp.add(r1 + c)),
                        _mm512_maskz_loadu_ps(m1, xp.wrapping_add(r1 + c + L)),
                        _mm512_maskz_loadu_ps(mg, gp.add(oi * ow + oj)),
                    )
                };
                let taps = [_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1), _mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1)];
                // The first tap starts the scan (it replaces -inf unless
                // it is -inf itself, and then the maximum is the same).
                let mut max = taps[0];
                let mut took = [0 as __mmask16; 4];
                for t in 1..4 {
                    took[t] = takes(taps[t], max);
                    max = _mm512_mask_blend_ps(took[t], max, taps[t]);
                }
                // The last tap that replaced the maximum is the argmax.
                let best = [!(took[1] | took[2] | took[3]), took[1] & !(took[2] | took[3]), took[2] & !took[3], took[3]];
                let mut share = _mm512_add_ps(zero, gv);
                if relu {
                    // The argmax holds the maximum: x > 0 there, or 0.
                    share = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(max, zero), share);
                }
                for (r, row) in [r0, r1].into_iter().enumerate() {
                    let (e, o) = (_mm512_maskz_mov_ps(best[2 * r], share), _mm512_maskz_mov_ps(best[2 * r + 1], share));
                    unsafe {
                        _mm512_mask_storeu_ps(dp.add(row + c), m0, _mm512_permutex2var_ps(e, low, o));
                        _mm512_mask_storeu_ps(dp.wrapping_add(row + c + L), m1, _mm512_permutex2var_ps(e, high, o));
                    }
                }
            }
            // Columns past the last window.
            dx[r0 + 2 * ow..r0 + w].fill(0.0);
            dx[r1 + 2 * ow..r1 + w].fill(0.0);
        }
        // Rows past the last window.
        dx[2 * oh * w..].fill(0.0);
    }
}
