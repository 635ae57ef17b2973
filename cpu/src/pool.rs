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
//! Each `[H, W]` plane is computed by one call with the same code (the CPU
//! backend splits whole planes over its threads), so the result is
//! bit-identical at any thread count.

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

/// The float types the routine serves.
pub(crate) trait PoolFloat: Copy + PartialOrd + std::ops::Add<Output = Self> + std::ops::AddAssign + Send + Sync {
    const ZERO: Self;
    const NEG_INFINITY: Self;
    fn is_nan(self) -> bool;
    /// `v` when `v` is greater than `self` or NaN, else `self`, and whether
    /// `v` was taken; computed with bit masks, so the compiler emits no
    /// branch (a branch on data mispredicts on most windows).
    fn take(self, v: Self) -> (Self, bool);
}

macro_rules! pool_float {
    ($t:ty, $bits:ty) => {
        impl PoolFloat for $t {
            const ZERO: $t = 0.0;
            const NEG_INFINITY: $t = <$t>::NEG_INFINITY;
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
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
pool_float!(f32, u32);
pool_float!(f64, u64);

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
/// least one input element).
pub(crate) fn max_pool2d_grad<T: PoolFloat>(x: &[T], g: &[T], planes: std::ops::Range<usize>, dx: &mut [T], [h, w]: [usize; 2], [oh, ow]: [usize; 2], win: PoolWindow) {
    let (plane, out_plane) = (h * w, oh * ow);
    if plane == 0 {
        return;
    }
    // The tiled scan's per-window state, one row of windows long, reused by every plane.
    let (mut max, mut best) = if win.tiles() { (vec![T::NEG_INFINITY; ow], vec![0u32; ow]) } else { (Vec::new(), Vec::new()) };
    for (p, dx) in planes.zip(dx.chunks_mut(plane)) {
        let (x, g) = (&x[p * plane..(p + 1) * plane], &g[p * out_plane..(p + 1) * out_plane]);
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
    }
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
