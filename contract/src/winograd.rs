//! Winograd convolution F(m×m, 3×3) for f32 on AVX-512: stride-1,
//! undilated 3×3 kernels, the forward pass and, as a full convolution with
//! the flipped kernel, the input gradient.
//!
//! Each `m×m` output tile is computed from an `α×α` input tile (`α = m + 2`)
//! as `Y = Aᵀ [ Σ_c (G g Gᵀ) ⊙ (Bᵀ d B) ] A`: per input/output channel pair
//! `α²` products instead of `9·m²` (36 against 144 for F(4×4, 3×3), 16
//! against 36 for F(2×2, 3×3); Lavin's points 0, ±1, ±2). The channel sum
//! at each of the `α²` transformed positions `ξ` is one product `M[ξ] =
//! U[ξ][O, C] · V[ξ][C, tiles]` on `gemm`'s kernels.
//!
//! How it runs:
//! - the weight transform `U = G g Gᵀ` is computed per call in f64 and
//!   rounded once, 16 input channels per AVX-512 step, split over the jobs
//!   by output channel (scalar, it took a quarter of the 5×5 layer's 0.6
//!   ms; vectorized, the whole convolution ran 0.63 → 0.33 ms);
//! - the tiles of all images are numbered in one sequence and cut into
//!   blocks of tiles sized so that one block's transformed input `V` `[α²,
//!   C, T]` and products `M` `[α², O, T]` take about half of the 1 MiB L2
//!   ([`WINO_BLOCK_BYTES`]; the `wblock` sweep was flat from 64 KiB to 2
//!   MiB within its noise). Blocks are fixed by the shapes alone and split
//!   statically over the jobs, and every block runs the same `α²` `gemm`
//!   calls on one thread, so each output element's arithmetic does not
//!   depend on the thread count: results are bit-identical run to run and
//!   across threads;
//! - the input and output transforms work on 16 tiles at a time, one per
//!   AVX-512 lane: the input windows are read with masked gathers (the
//!   lanes whose window row and column lie in the image; the rest read the
//!   zero padding) and the outputs written with masked scatters; the
//!   epilogue is applied to the rounded result (bias, then ReLU as `x < 0 →
//!   0`), as the other paths do. No FMA contracts the transforms, so every
//!   machine rounds alike;
//! - the `α²` matrices of `U`, `V` and `M` are one cache line apart beyond
//!   their sizes: those are often multiples of 4 KiB, and the transforms
//!   touch all `α²` side by side, which with plain strides all fell in one
//!   L1 set (the transforms ran 2–3× slower).
//!
//! Why, and where, measured on the reference Zen 4 (`cargo bench -p
//! dlc-contract --bench contract -- wino wsweep`, batch 64, 1 thread,
//! another build running beside it; see the bench for the full tables):
//! - the Keras CNN's 13×13 layer (32→64 channels): forward 1.6–1.8 ms with
//!   F(4×4) against 3.0–3.2 ms direct and 3.5–3.8 ms im2col; input gradient
//!   3.2–3.5 ms against 3.7–4.1 ms im2col;
//! - its 5×5 layer (64→64, 3×3 output): forward 0.44 against 0.58 ms
//!   direct; its input gradient (5×5 output on 4×4 tiles: 2.6× the products
//!   of a plain sum's 9 per output) 1.4 against 0.8 ms im2col, so it stays;
//! - F(2×2) was never the faster tile (13×13 forward 3.8 ms): it saves too
//!   few products for its transforms;
//! - the transforms cost per tile and channel, the products per tile and
//!   channel *pair*, so few channels lose: the `wsweep` sweep (C = O on
//!   13×13 and 28×28 maps) had F(4×4) behind or level with direct up to 16
//!   channels on 28×28 maps and well ahead from 64 (23 against 37 ms); at
//!   32 it was level with direct forward and 1.3× faster than im2col for the
//!   input gradient. Hence [`MIN_WINO_CHANNELS`] = 32 (for the smaller of C
//!   and O), and a cap on the products the edge tiles waste
//!   (`MAX_PRODUCT_RATIO`).
//!
//! Rounding is larger than a direct sum's (the transforms scale and
//! cancel): `tests/winograd.rs` states and checks the bound, `|y - exact| ≤
//! 2e-6 · K · max|x| · max|w|` for F(4×4) with `K = 9·C` (measured 6.8e-7;
//! relative to an output's `Σ|x·w|`, up to 1.8e-5 at edge outputs of the
//! input gradient).
//!
//! Only `x86_64` with `avx512f` (detected at run time) takes this path, like
//! the direct kernels; elsewhere nothing changes. [`WINOGRAD`] turns it off,
//! and a convolution whose `Conv2d::winograd` is false never takes it: dlc's
//! CPU backend clears it in a training step. There the larger rounding moved
//! the mnist_cnn replay's epoch-1 mean loss 1.1e-3 (relative) from
//! PyTorch's, three times PyTorch's own spread under a one-ulp change of its
//! initial weights (3.5e-4; `tests/train_mnist_cnn.rs`), even with the
//! Winograd input gradient off. So the input-gradient path, tested and
//! benched here, serves only callers that allow it.

use crate::conv::Geo;
use crate::direct::{epilogue_f32, f32s, f32s_mut, is_f32};
use crate::epilogue::Epilogue;
use crate::kernel::{self, Operand, SendPtr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Use the Winograd path where it applies. Public for the benchmark and the
/// tests only.
#[doc(hidden)]
pub static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// The output tile size `m` the Winograd path uses: 2 or 4 (0: the default,
/// 4). Public for the benchmark and the tests.
#[doc(hidden)]
pub static WINO_TILE: AtomicUsize = AtomicUsize::new(0);

/// Bytes of one block's transformed input and products (`V` and `M`).
/// Public for the benchmark's sweep.
#[doc(hidden)]
pub static WINO_BLOCK_BYTES: AtomicUsize = AtomicUsize::new(512 * 1024);

/// Fewest input and output channels (the smaller of the two) a
/// convolution needs for the Winograd path. Public for the benchmark's
/// sweep and the tests, which set it to 0.
#[doc(hidden)]
pub static MIN_WINO_CHANNELS: AtomicUsize = AtomicUsize::new(32);

/// Padding between the `α²` matrices of `U`, `V` and `M`, in elements.
const SKEW: usize = 16;

/// Tiles per SIMD step of the transforms.
const LANES: usize = 16;

/// One Winograd problem: a stride-1 3×3 correlation of `n` images of `ci`
/// planes `h × w`, zero-padded by `pad`, into `co` planes `oh × ow`, with
/// `m × m` output tiles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wino {
    pub n: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub oh: usize,
    pub ow: usize,
    pub pad: [usize; 2],
    pub m: usize,
}

impl Wino {
    /// The forward pass of `g`.
    pub fn forward(g: &Geo) -> Wino {
        Wino { n: g.n, ci: g.c, h: g.h, w: g.w, co: g.o, oh: g.oh, ow: g.ow, pad: g.conv.padding, m: tile() }
    }

    /// The input gradient of `g`: `dY` padded by `2 - padding`, correlated
    /// with the kernel flipped and its channel axes swapped.
    pub fn grad_input(g: &Geo) -> Wino {
        let pad = g.conv.padding.map(|p| 2 - p);
        Wino { n: g.n, ci: g.o, h: g.oh, w: g.ow, co: g.c, oh: g.h, ow: g.w, pad, m: tile() }
    }

    fn alpha(&self) -> usize {
        self.m + 2
    }
    /// Transformed positions: `α²`.
    fn xi(&self) -> usize {
        self.alpha() * self.alpha()
    }
    fn th(&self) -> usize {
        self.oh.div_ceil(self.m)
    }
    fn tw(&self) -> usize {
        self.ow.div_ceil(self.m)
    }
    fn tiles(&self) -> usize {
        self.n * self.th() * self.tw()
    }
    /// Tiles per block: a multiple of [`LANES`], as many as fit
    /// [`WINO_BLOCK_BYTES`] (at least one lane group), no more than needed.
    fn block(&self, elem: usize) -> usize {
        let per_tile = self.xi() * (self.ci + self.co) * elem;
        let fit = (WINO_BLOCK_BYTES.load(Ordering::Relaxed) / per_tile.max(1)) / LANES * LANES;
        fit.max(LANES).min(self.tiles().next_multiple_of(LANES)).max(LANES)
    }
    fn blocks(&self, elem: usize) -> usize {
        self.tiles().div_ceil(self.block(elem))
    }
    /// Elements from one `U[ξ]` to the next: `O·C` and one cache line, so
    /// that the `α²` matrices a transform writes or reads side by side do
    /// not all fall in the same L1 set (their plain sizes are often
    /// multiples of 4 KiB).
    fn u_stride(&self) -> usize {
        self.co * self.ci + SKEW
    }
    /// As [`Wino::u_stride`], for one block's `V[ξ]` (`C × tb`).
    fn v_stride(&self, tb: usize) -> usize {
        self.ci * tb + SKEW
    }
    /// As [`Wino::u_stride`], for one block's `M[ξ]` (`O × tb`).
    fn m_stride(&self, tb: usize) -> usize {
        self.co * tb + SKEW
    }
    fn u_len(&self) -> usize {
        self.xi() * self.u_stride()
    }
    fn per_job(&self, elem: usize) -> usize {
        let tb = self.block(elem);
        self.xi() * (self.v_stride(tb) + self.m_stride(tb))
    }
    fn jobs(&self, elem: usize, threads: usize) -> usize {
        let macs = self.n * self.co * self.oh * self.ow * self.ci * 9;
        kernel::jobs(kernel::useful_threads(threads, macs), self.blocks(elem))
    }
    /// Scratch elements: the transformed weight, then per job one block's
    /// `V` and `M`.
    pub fn scratch(&self, elem: usize, threads: usize) -> usize {
        self.u_len() + self.jobs(elem, threads) * self.per_job(elem)
    }
}

/// The tile size: 4 (F(2×2) was never faster in the sweeps), or
/// [`WINO_TILE`] when set to 2 or 4.
fn tile() -> usize {
    match WINO_TILE.load(Ordering::Relaxed) {
        2 => 2,
        _ => 4,
    }
}

/// Multiplications of F(4×4) tiles (36 per tile and channel pair) against
/// those of the plain convolution (9 per output), edge tiles counted whole:
/// the path wins where this is at most [`MAX_PRODUCT_RATIO`].
fn product_ratio(oh: usize, ow: usize) -> f64 {
    (oh.div_ceil(4) * ow.div_ceil(4) * 36) as f64 / (oh * ow * 9) as f64
}

/// See [`product_ratio`]: 0.30 on the CNN's 13×13 layer and 0.44 on its
/// 5×5 one (both won), 0.38 for the 13×13 layer's input gradient (won),
/// 0.64 for the 5×5 layer's (lost 1.8× to im2col).
const MAX_PRODUCT_RATIO: f64 = 0.45;

/// Whether a convolution has the Winograd shape: f32, 3×3, stride 1,
/// dilation 1, enough channels, and tensors the 32-bit gather offsets
/// address.
fn shape_fits<T: 'static>(g: &Geo) -> bool {
    let c = g.conv;
    let small = |len: usize| len < i32::MAX as usize;
    is_f32::<T>()
        && g.kh == 3
        && g.kw == 3
        && c.stride == [1, 1]
        && c.dilation == [1, 1]
        && g.n * g.o * g.p() * g.c > 0
        && g.c.min(g.o) >= MIN_WINO_CHANNELS.load(Ordering::Relaxed)
        && small(g.n * g.x_img())
        && small(g.n * g.y_img())
}

/// Whether the forward pass suits Winograd, on any machine (scratch sizes
/// follow this, not the machine).
pub(crate) fn forward_suits<T: 'static>(g: &Geo) -> bool {
    g.conv.winograd && shape_fits::<T>(g) && pays(g.oh, g.ow)
}

/// Whether the input gradient suits Winograd, on any machine: also a
/// padding of at most 2 (the full convolution pads `dY` by `2 - padding`).
pub(crate) fn grad_input_suits<T: 'static>(g: &Geo) -> bool {
    g.conv.winograd && shape_fits::<T>(g) && g.conv.padding.iter().all(|&p| p <= 2) && pays(g.h, g.w)
}

/// Whether the tiles of an `oh × ow` output waste few enough products (see
/// [`product_ratio`]; the tests and the benchmark's sweeps lift this with
/// the channel threshold).
fn pays(oh: usize, ow: usize) -> bool {
    MIN_WINO_CHANNELS.load(Ordering::Relaxed) == 0 || product_ratio(oh, ow) <= MAX_PRODUCT_RATIO
}

/// True when [`WINOGRAD`] is on and this machine has AVX-512.
fn enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        WINOGRAD.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the forward pass takes the Winograd path here.
pub(crate) fn forward_applies<T: 'static>(g: &Geo) -> bool {
    forward_suits::<T>(g) && enabled()
}

/// Whether the input gradient takes the Winograd path here.
pub(crate) fn grad_input_applies<T: 'static>(g: &Geo) -> bool {
    grad_input_suits::<T>(g) && enabled()
}

/// `out = epilogue(conv)` of problem `p`. `x` holds the `n` input images
/// `[ci, h, w]`; `w` is `[co, ci, 3, 3]`, or with `flip` the weight of the
/// transposed problem, `[ci, co, 3, 3]`, read rotated by 180°. With
/// `pool`, `out` is that max-pooled by 2×2 windows at stride 2 (`[n, co,
/// oh/2, ow/2]`, as `dl.max_pool2d` rounds): the output transform pools
/// each tile as it leaves the registers, since the windows never straddle
/// the (even-sized) tiles, and the unpooled result is never stored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<T: 'static>(p: &Wino, x: &[T], w: &[T], flip: bool, out: &mut [T], epi: Epilogue<'_, T>, pool: bool, scratch: &mut [T], threads: usize) {
    let (x, w, out, scratch, epi) = (f32s(x), f32s(w), f32s_mut(out), f32s_mut(scratch), epilogue_f32(epi));
    let elem = size_of::<f32>();
    let jobs = p.jobs(elem, threads);
    let (tb, per_job, u_len) = (p.block(elem), p.per_job(elem), p.u_len());
    let scr = SendPtr(scratch.as_mut_ptr());
    // The weight transform, by output channel.
    kernel::split(jobs, p.co, |_, range| {
        // SAFETY: rows `range` of every `U[ξ]` are this job's alone; the
        // path runs only where AVX-512 was detected (`enabled`).
        unsafe {
            #[cfg(target_arch = "x86_64")]
            avx512::weights(p, w, flip, range, scr);
            #[cfg(not(target_arch = "x86_64"))]
            weight_transform(p, w, flip, range, scr);
        }
    });
    let (x_p, out_p) = (SendPtr(x.as_ptr() as *mut f32), SendPtr(out.as_mut_ptr()));
    let tiles = p.tiles();
    let (xi, ci, co) = (p.xi(), p.ci, p.co);
    kernel::split(jobs, p.blocks(elem), |job, range| {
        let vbuf = scr.at(u_len + job * per_job);
        let mbuf = scr.at(u_len + job * per_job + xi * p.v_stride(tb));
        let (us, vs, ms) = (p.u_stride(), p.v_stride(tb), p.m_stride(tb));
        for b in range {
            let t0 = b * tb;
            let cnt = tb.min(tiles - t0);
            // SAFETY: `vbuf`/`mbuf` are this job's regions (`xi·ci·tb` and
            // `xi·co·tb`); `x` is read inside its images; the tiles of this
            // block own their output elements.
            unsafe {
                input_transform(p, x_p.at(0), t0, cnt, tb, vbuf);
                let u = scr.at(0);
                for k in 0..xi {
                    let lhs = Operand { ptr: u.add(k * us), rs: ci as isize, cs: 1 };
                    let rhs = Operand { ptr: vbuf.add(k * vs), rs: tb as isize, cs: 1 };
                    kernel::gemm((co, cnt, ci), mbuf.add(k * ms), tb, false, lhs, rhs, 1);
                }
                output_transform(p, mbuf, t0, cnt, tb, out_p.at(0), epi, pool);
            }
        }
    });
}

// ---- weight transform ---------------------------------------------------

/// `U[ξ][o][c] = (G g Gᵀ)[ξ]` for output channels `range`, in f64: the
/// scalar definition, which `avx512::weights` computes 16 input channels
/// at a time with the same operations in the same order (bit-identical,
/// but for which NaN a NaN weight turns into: the tests compare the two). The scalar form took 0.15 ms per call on
/// the Keras CNN's 64×64 5×5 layer, a quarter of that convolution.
///
/// # Safety
/// `u` addresses `α²·co·ci` elements; no other job writes rows `range`.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) unsafe fn weight_transform(p: &Wino, w: &[f32], flip: bool, range: std::ops::Range<usize>, u: SendPtr<f32>) {
    let (a, ci, co, us) = (p.alpha(), p.ci, p.co, p.u_stride());
    // 16 input channels at a time into `buf[ξ]`, then one contiguous run
    // per `U[ξ]` row.
    let mut buf = [[0.0f32; 16]; 36];
    for o in range {
        for c0 in (0..ci).step_by(16) {
            let cn = 16.min(ci - c0);
            // `cc` indexes the inner axis of `buf[ξ][cc]`, not `buf`.
            #[allow(clippy::needless_range_loop)]
            for cc in 0..cn {
                let c = c0 + cc;
                let mut g = [[0.0f64; 3]; 3];
                for (i, row) in g.iter_mut().enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        let e = if flip { w[((c * co + o) * 3 + 2 - i) * 3 + 2 - j] } else { w[((o * ci + c) * 3 + i) * 3 + j] };
                        *v = e as f64;
                    }
                }
                // Gg (α×3), then (Gg)Gᵀ (α×α).
                let mut gg = [[0.0f64; 3]; 6];
                for j in 0..3 {
                    let col = g_1d(p.m, [g[0][j], g[1][j], g[2][j]]);
                    for i in 0..a {
                        gg[i][j] = col[i];
                    }
                }
                for (i, r) in gg.iter().enumerate().take(a) {
                    let row = g_1d(p.m, *r);
                    for (j, &v) in row.iter().enumerate().take(a) {
                        buf[i * a + j][cc] = v as f32;
                    }
                }
            }
            for (k, b) in buf.iter().enumerate().take(a * a) {
                // SAFETY: row `o` of `U[k]`, columns `c0..c0 + cn` (the
                // caller's contract).
                unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), u.at(k * us + o * ci + c0), cn) };
            }
        }
    }
}

/// `G g` for one column of 3 taps (the first `α` entries are used).
fn g_1d(m: usize, [g0, g1, g2]: [f64; 3]) -> [f64; 6] {
    if m == 2 {
        [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2, 0.0, 0.0]
    } else {
        const SIXTH: f64 = 1.0 / 6.0;
        let (s, d) = (g0 + g2, g1);
        let (q, r) = (g0 * (1.0 / 24.0) + g2 * SIXTH, g1 * (1.0 / 12.0));
        [g0 * 0.25, -(s + d) * SIXTH, -(s - d) * SIXTH, q + r, q - r, g2]
    }
}

// ---- input and output transforms (AVX-512, f32) ------------------------

/// One tile's input window: the offset of its top-left element (unpadded
/// coordinates, possibly outside the image) from the first image's start,
/// and the window rows `i0..i1` and columns `j0..j1` inside the image (the
/// rest read zeros).
#[derive(Clone, Copy, Default)]
struct Window {
    off: isize,
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
}

fn window(p: &Wino, t: usize, alpha: usize) -> Window {
    let per_img = p.th() * p.tw();
    let (img, r) = (t / per_img, t % per_img);
    let (ty, tx) = (r / p.tw(), r % p.tw());
    let y0 = (ty * p.m) as isize - p.pad[0] as isize;
    let x0 = (tx * p.m) as isize - p.pad[1] as isize;
    let clip = |lo: isize, size: usize| {
        let a = (-lo).clamp(0, alpha as isize) as usize;
        let b = (size as isize - lo).clamp(a as isize, alpha as isize) as usize;
        (a, b)
    };
    let (i0, i1) = clip(y0, p.h);
    let (j0, j1) = clip(x0, p.w);
    Window { off: (img * p.ci * p.h * p.w) as isize + y0 * p.w as isize + x0, i0, i1, j0, j1 }
}

/// `V[ξ][c][t - t0]` for tiles `t0..t0 + cnt` (row stride `tb`).
///
/// # Safety
/// AVX-512F must be available; `x` holds the problem's `n` input images
/// (fewer than 2³¹ elements); `v` has `α²·ci·tb` elements.
#[cfg(target_arch = "x86_64")]
unsafe fn input_transform(p: &Wino, x: *const f32, t0: usize, cnt: usize, tb: usize, v: *mut f32) {
    // SAFETY: forwarded.
    unsafe {
        if p.m == 2 {
            avx512::input::<2, 4>(p, x, t0, cnt, tb, v)
        } else {
            avx512::input::<4, 6>(p, x, t0, cnt, tb, v)
        }
    }
}

/// `out = epilogue(Aᵀ M A)` for tiles `t0..t0 + cnt`.
///
/// # Safety
/// AVX-512F must be available; `mbuf` holds `M` (`α²·co·tb`, columns
/// `< cnt` written); `out` the problem's `n` output images (fewer than 2³¹
/// elements), of which these tiles' elements are this caller's alone.
/// With `pool`, the 2×2 stride-2 maxima of each tile (see [`run`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(p: &Wino, mbuf: *const f32, t0: usize, cnt: usize, tb: usize, out: *mut f32, epi: Epilogue<'_, f32>, pool: bool) {
    // SAFETY: forwarded.
    unsafe {
        if p.m == 2 {
            avx512::output::<2, 4>(p, mbuf, t0, cnt, tb, out, epi, pool)
        } else {
            avx512::output::<4, 6>(p, mbuf, t0, cnt, tb, out, epi, pool)
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn input_transform(_: &Wino, _: *const f32, _: usize, _: usize, _: usize, _: *mut f32) {
    unreachable!("the Winograd path runs only on x86_64");
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(_: &Wino, _: *const f32, _: usize, _: usize, _: usize, _: *mut f32, _: Epilogue<'_, f32>, _: bool) {
    unreachable!("the Winograd path runs only on x86_64");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{LANES, Wino, window};
    use crate::epilogue::Epilogue;
    use crate::kernel::SendPtr;
    use std::arch::x86_64::*;

    /// `G g` for one column of 3 taps, on 8 channels per vector: `g_1d`'s
    /// operations in its order (no FMA), so the same bits.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn g_1d<const M: usize>(g0: __m512d, g1: __m512d, g2: __m512d) -> [__m512d; 6] {
        let z = _mm512_setzero_pd();
        if M == 2 {
            let half = _mm512_set1_pd(0.5);
            let sum = _mm512_mul_pd(_mm512_add_pd(_mm512_add_pd(g0, g1), g2), half);
            let dif = _mm512_mul_pd(_mm512_add_pd(_mm512_sub_pd(g0, g1), g2), half);
            return [g0, sum, dif, g2, z, z];
        }
        let sixth = _mm512_set1_pd(1.0 / 6.0);
        let (s, d) = (_mm512_add_pd(g0, g2), g1);
        let q = _mm512_add_pd(_mm512_mul_pd(g0, _mm512_set1_pd(1.0 / 24.0)), _mm512_mul_pd(g2, sixth));
        let r = _mm512_mul_pd(g1, _mm512_set1_pd(1.0 / 12.0));
        // `-v` as the scalar form's: the sign bit flipped (signed zeros and
        // NaN too; a multiply by -1 would keep a NaN's sign).
        let neg = |v: __m512d| _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(v), _mm512_set1_epi64(i64::MIN)));
        [
            _mm512_mul_pd(g0, _mm512_set1_pd(0.25)),
            _mm512_mul_pd(neg(_mm512_add_pd(s, d)), sixth),
            _mm512_mul_pd(neg(_mm512_sub_pd(s, d)), sixth),
            _mm512_add_pd(q, r),
            _mm512_sub_pd(q, r),
            g2,
        ]
    }

    /// [`super::weight_transform`] for 16 input channels at a time: each
    /// tap of 16 channels is one gather, widened to two vectors of f64, and
    /// each `U[ξ]` row segment is one masked store.
    ///
    /// # Safety
    /// AVX-512F must be available; as [`super::weight_transform`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weights(p: &Wino, w: &[f32], flip: bool, range: std::ops::Range<usize>, u: SendPtr<f32>) {
        if p.m == 2 {
            // SAFETY: forwarded.
            unsafe { weights_m::<2>(p, w, flip, range, u) }
        } else {
            // SAFETY: forwarded.
            unsafe { weights_m::<4>(p, w, flip, range, u) }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn weights_m<const M: usize>(p: &Wino, w: &[f32], flip: bool, range: std::ops::Range<usize>, u: SendPtr<f32>) {
        let (a, ci, co, us) = (M + 2, p.ci, p.co, p.u_stride());
        // Lane `l` reads channel `c0 + l`: 9 elements apart, or `9·co` in
        // the flipped (transposed) weight.
        let step = if flip { 9 * co } else { 9 } as i32;
        let idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(step));
        let wp = w.as_ptr();
        let widen = |v: __m512| {
            let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
            (_mm512_cvtps_pd(_mm512_castps512_ps256(v)), _mm512_cvtps_pd(_mm256_castpd_ps(high)))
        };
        for o in range {
            for c0 in (0..ci).step_by(LANES) {
                let lanes = LANES.min(ci - c0);
                let mask = ((1u32 << lanes) - 1) as __mmask16;
                // g[i][j] for 8 channels per half: (low, high).
                let mut lo = [[_mm512_setzero_pd(); 3]; 3];
                let mut hi = lo;
                for i in 0..3 {
                    for j in 0..3 {
                        let at = if flip { ((c0 * co + o) * 3 + 2 - i) * 3 + 2 - j } else { ((o * ci + c0) * 3 + i) * 3 + j };
                        // SAFETY: lane `l < lanes` reads channel `c0 + l`'s
                        // tap, inside `w`; the others are masked off.
                        let v = unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, wp.add(at)) };
                        (lo[i][j], hi[i][j]) = widen(v);
                    }
                }
                let mut out = [[_mm512_setzero_ps(); 6]; 6];
                for (half, g) in [lo, hi].iter().enumerate() {
                    // G g (α×3), then (G g) Gᵀ (α×α), as the scalar form.
                    let cols: [[__m512d; 6]; 3] = std::array::from_fn(|j| g_1d::<M>(g[0][j], g[1][j], g[2][j]));
                    for i in 0..a {
                        let row = g_1d::<M>(cols[0][i], cols[1][i], cols[2][i]);
                        for j in 0..a {
                            let f = _mm512_cvtpd_ps(row[j]);
                            out[i][j] = if half == 0 {
                                _mm512_castps256_ps512(f)
                            } else {
                                _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castps_pd(out[i][j]), _mm256_castps_pd(f)))
                            };
                        }
                    }
                }
                for (i, row) in out.iter().enumerate().take(a) {
                    for (j, &v) in row.iter().enumerate().take(a) {
                        // SAFETY: row `o` of `U[i·α + j]`, columns `c0..c0 +
                        // lanes` (the caller's contract).
                        unsafe { _mm512_mask_storeu_ps(u.at((i * a + j) * us + o * ci + c0), mask, v) };
                    }
                }
            }
        }
    }

    /// `Bᵀ d` (the first `M + 2` entries).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn bt<const M: usize>(d: [__m512; 6]) -> [__m512; 6] {
        let z = _mm512_setzero_ps();
        if M == 2 {
            return [_mm512_sub_ps(d[0], d[2]), _mm512_add_ps(d[1], d[2]), _mm512_sub_ps(d[2], d[1]), _mm512_sub_ps(d[1], d[3]), z, z];
        }
        let (four, five, two) = (_mm512_set1_ps(4.0), _mm512_set1_ps(5.0), _mm512_set1_ps(2.0));
        let a = _mm512_sub_ps(d[4], _mm512_mul_ps(d[2], four));
        let b = _mm512_sub_ps(d[3], _mm512_mul_ps(d[1], four));
        let c = _mm512_sub_ps(d[4], d[2]);
        let e = _mm512_mul_ps(_mm512_sub_ps(d[3], d[1]), two);
        [
            _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(d[0], four), _mm512_mul_ps(d[2], five)), d[4]),
            _mm512_add_ps(a, b),
            _mm512_sub_ps(a, b),
            _mm512_add_ps(c, e),
            _mm512_sub_ps(c, e),
            _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(d[1], four), _mm512_mul_ps(d[3], five)), d[5]),
        ]
    }

    /// `Aᵀ m` (the first `M` entries).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn at<const M: usize>(m: [__m512; 6]) -> [__m512; 4] {
        let z = _mm512_setzero_ps();
        if M == 2 {
            return [_mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]), _mm512_sub_ps(_mm512_sub_ps(m[1], m[2]), m[3]), z, z];
        }
        let (two, four, eight) = (_mm512_set1_ps(2.0), _mm512_set1_ps(4.0), _mm512_set1_ps(8.0));
        let a = _mm512_add_ps(m[1], m[2]);
        let b = _mm512_sub_ps(m[1], m[2]);
        let c = _mm512_add_ps(m[3], m[4]);
        let d = _mm512_sub_ps(m[3], m[4]);
        [
            _mm512_add_ps(_mm512_add_ps(m[0], a), c),
            _mm512_add_ps(b, _mm512_mul_ps(d, two)),
            _mm512_add_ps(a, _mm512_mul_ps(c, four)),
            _mm512_add_ps(_mm512_add_ps(b, _mm512_mul_ps(d, eight)), m[5]),
        ]
    }

    /// Lane offsets and, per window row and column, the lanes whose tile
    /// has that row (column) inside the image (and exists).
    struct Lanes<const A: usize> {
        idx: __m512i,
        rows: [u16; A],
        cols: [u16; A],
    }

    /// See [`super::input_transform`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input<const M: usize, const A: usize>(p: &Wino, x: *const f32, t0: usize, cnt: usize, tb: usize, v: *mut f32) {
        let (w, plane, vs) = (p.w, p.h * p.w, p.v_stride(tb));
        let mut g0 = 0;
        while g0 < cnt {
            let mut ln = Lanes::<A> { idx: _mm512_setzero_si512(), rows: [0; A], cols: [0; A] };
            let mut idx = [0i32; LANES];
            for (l, ix) in idx.iter_mut().enumerate().take(LANES.min(cnt - g0)) {
                let win = window(p, t0 + g0 + l, A);
                *ix = win.off as i32;
                (win.i0..win.i1).for_each(|i| ln.rows[i] |= 1 << l);
                (win.j0..win.j1).for_each(|j| ln.cols[j] |= 1 << l);
            }
            // SAFETY: `idx` holds 16 i32.
            ln.idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
            for c in 0..p.ci {
                let base = x.wrapping_add(c * plane);
                let mut d = [[_mm512_setzero_ps(); 6]; 6];
                for (i, di) in d.iter_mut().enumerate().take(A) {
                    for (j, dj) in di.iter_mut().enumerate().take(A) {
                        let mask = ln.rows[i] & ln.cols[j];
                        // SAFETY: the lanes in `mask` read inside their image.
                        *dj = unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, ln.idx, base.wrapping_add(i * w + j)) };
                    }
                }
                // Bᵀ down each column, then along each row.
                let mut tmp = [[_mm512_setzero_ps(); 6]; 6];
                for j in 0..A {
                    let col = bt::<M>(std::array::from_fn(|i| d[i][j]));
                    for k in 0..A {
                        tmp[k][j] = col[k];
                    }
                }
                for (k, row) in tmp.iter().enumerate().take(A) {
                    let r = bt::<M>(*row);
                    for (l, rv) in r.iter().enumerate().take(A) {
                        // SAFETY: `V[ξ][c]` row of `tb ≥ g0 + 16` elements.
                        unsafe { _mm512_storeu_ps(v.add((k * A + l) * vs + c * tb + g0), *rv) };
                    }
                }
            }
            g0 += LANES;
        }
    }

    /// See [`super::output_transform`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output<const M: usize, const A: usize>(p: &Wino, mbuf: *const f32, t0: usize, cnt: usize, tb: usize, out: *mut f32, epi: Epilogue<'_, f32>, pool: bool) {
        let per_img = p.th() * p.tw();
        // What the tile writes: its `M × M` elements, or their `M/2 × M/2`
        // 2×2 maxima, into planes of `oh × ow` or `oh/2 × ow/2`.
        let (s, n) = if pool { (2, M / 2) } else { (1, M) };
        let (oh, ow) = (p.oh / s, p.ow / s);
        let (plane, ms) = (oh * ow, p.m_stride(tb));
        let zero = _mm512_setzero_ps();
        let mut g0 = 0;
        while g0 < cnt {
            let mut ln = Lanes::<M> { idx: _mm512_setzero_si512(), rows: [0; M], cols: [0; M] };
            let mut idx = [0i32; LANES];
            for (l, ix) in idx.iter_mut().enumerate().take(LANES.min(cnt - g0)) {
                let t = t0 + g0 + l;
                let (img, r) = (t / per_img, t % per_img);
                let (y, x) = ((r / p.tw()) * n, (r % p.tw()) * n);
                *ix = (img * p.co * plane + y * ow + x) as i32;
                (0..n.min(oh.saturating_sub(y))).for_each(|i| ln.rows[i] |= 1 << l);
                (0..n.min(ow.saturating_sub(x))).for_each(|j| ln.cols[j] |= 1 << l);
            }
            // SAFETY: `idx` holds 16 i32.
            ln.idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
            for o in 0..p.co {
                let mut mm = [[zero; 6]; 6];
                for (i, row) in mm.iter_mut().enumerate().take(A) {
                    for (j, e) in row.iter_mut().enumerate().take(A) {
                        // SAFETY: `M[ξ][o]` row, columns `g0..g0 + 16 ≤ tb`.
                        *e = unsafe { _mm512_loadu_ps(mbuf.add((i * A + j) * ms + o * tb + g0)) };
                    }
                }
                let mut tmp = [[zero; 6]; 4];
                for j in 0..A {
                    let col = at::<M>(std::array::from_fn(|i| mm[i][j]));
                    for k in 0..M {
                        tmp[k][j] = col[k];
                    }
                }
                let bias = epi.bias.map(|b| _mm512_set1_ps(b[o]));
                let mut ys = [[zero; 4]; 4];
                for (k, row) in tmp.iter().enumerate().take(M) {
                    let y = at::<M>(*row);
                    for (j, &yj) in y.iter().enumerate().take(M) {
                        // The epilogue on the rounded result, as elsewhere:
                        // bias, then ReLU as `x < 0 → 0` (NaN and -0 pass).
                        let mut e = yj;
                        if let Some(b) = bias {
                            e = _mm512_add_ps(e, b);
                        }
                        if epi.relu {
                            e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(e, zero), zero);
                        }
                        ys[k][j] = e;
                    }
                }
                let base = out.wrapping_add(o * plane);
                for k in 0..n {
                    for j in 0..n {
                        let e = if pool {
                            // The window's taps in row-major order; a tap
                            // replaces the maximum when greater or NaN.
                            let taps = [ys[2 * k][2 * j + 1], ys[2 * k + 1][2 * j], ys[2 * k + 1][2 * j + 1]];
                            taps.into_iter().fold(ys[2 * k][2 * j], |m, v| {
                                let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, m) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                                _mm512_mask_blend_ps(take, m, v)
                            })
                        } else {
                            ys[k][j]
                        };
                        let mask = ln.rows[k] & ln.cols[j];
                        // SAFETY: the lanes in `mask` write their tile's
                        // elements inside the plane.
                        unsafe { _mm512_mask_i32scatter_ps::<4>(base.wrapping_add(k * ow + j), mask, ln.idx, e) };
                    }
                }
            }
            g0 += LANES;
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The vector weight transform gives the scalar definition's bits:
    /// both tile sizes, plain and flipped, channel counts that fill 16
    /// lanes and that do not, weights with signed zeros, tiny and huge
    /// values.
    #[test]
    fn the_vector_weight_transform_is_the_scalar_one() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 here: the vector weight transform is not run");
            return;
        }
        for (ci, co) in [(16, 3), (19, 5), (37, 2), (1, 1)] {
            // Every fifth kernel all +0, the next all -0 (so sums of zeros
            // meet negations); the rest mixed, with ±inf and NaN.
            let w: Vec<f32> = (0..ci * co * 9)
                .map(|i| match ((i / 9) % 5, i % 29) {
                    (0, _) => 0.0,
                    (1, _) => -0.0,
                    (_, 0) => -0.0,
                    (_, 1) => 0.0,
                    (_, 2) => 3.0e-39,
                    (_, 3) => -1.0e30,
                    (_, 4) => f32::INFINITY,
                    (_, 5) => f32::NEG_INFINITY,
                    (_, 6) => f32::NAN,
                    (_, k) => (k as f32 - 6.5) * 0.37 + i as f32 * 1e-3,
                })
                .collect();
            for m in [2, 4] {
                for flip in [false, true] {
                    let p = Wino { n: 1, ci, h: 8, w: 8, co, oh: 6, ow: 6, pad: [0, 0], m };
                    let mut scalar = vec![f32::NAN; p.u_len()];
                    let mut vector = vec![f32::NAN; p.u_len()];
                    // SAFETY: each buffer holds `U` (`u_len`); one job.
                    unsafe {
                        weight_transform(&p, &w, flip, 0..co, SendPtr(scalar.as_mut_ptr()));
                        avx512::weights(&p, &w, flip, 0..co, SendPtr(vector.as_mut_ptr()));
                    }
                    let a = p.alpha() * p.alpha();
                    for k in 0..a {
                        for e in 0..co * ci {
                            let (x, y) = (scalar[k * p.u_stride() + e], vector[k * p.u_stride() + e]);
                            let same = x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
                            assert!(same, "ci {ci} co {co} m {m} flip {flip}: U[{k}] element {e}: {x} vs {y}");
                        }
                    }
                }
            }
        }
    }
}
