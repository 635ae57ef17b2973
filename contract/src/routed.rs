//! The two gradients of a convolution whose output was max-pooled, taken
//! straight from the pooled output's gradient: `kernel.routed_conv2d_grad_input`
//! and `kernel.routed_conv2d_grad_weight`.
//!
//! Why: a 2×2 max-pool's gradient routes each window's gradient to one of
//! its four taps, so at least three quarters of the convolution's output
//! gradient are exact zeros (more with ReLU's mask, and a row and column
//! more on odd sizes: 25 of the Keras CNN's 121 positions per 11×11 plane).
//! The dense gradients multiply every one of them: im2col + `gemm` spent
//! 3.4 ms on the input gradient and 3.0 ms on the weight gradient of the
//! Keras CNN's second layer (batch 64, 1 thread), after a pooling gradient
//! of 0.35 ms had written the 2 MB of mostly zeros. Here each window's
//! argmax is found from `y` (the convolution's output, as the pooling
//! gradient finds it), and only the windows whose gradient is nonzero
//! contribute: one multiply-add per tap and input channel each, a fifth of
//! the dense work, and the full-size gradient is never written.
//!
//! Layout: both run on a channels-last copy of one padded image (input
//! channels innermost, 16 to a vector), so a window's contribution is 9
//! taps × `Ci / 16` whole vectors. The input gradient keeps one output
//! channel's 3×3 weights (a block of 16 or 32 input channels) in registers
//! and adds `g · w` into the image's gradient at the 9 positions the
//! argmax reads; the weight gradient keeps the channel's 3×3 accumulators
//! in registers and adds `g · x` from those 9 positions.
//!
//! Sums: the input gradient of each image adds the output channels in
//! order, each channel's windows in row-major order; the weight gradient
//! adds images in order, each image's windows in row-major order. Images
//! (input gradient) and output channels (weight gradient) are split over
//! the jobs, so results are the same bits at any thread count. The terms
//! are the dense gradients' nonzero ones in another order, so results
//! equal theirs within rounding, except where a weight (input gradient) or
//! an input (weight gradient) is infinite or NaN: there the dense routines'
//! `0 · inf` products make NaN that routing never forms, so those calls
//! report it and the caller runs the dense routines.
//!
//! Only f32, a 3×3 kernel at stride and dilation 1 (any zero padding),
//! input channels a multiple of 16, and a 2×2 stride-2 unpadded window;
//! [`ROUTED`] turns the path off. The kernels above need AVX-512 (detected
//! at run time); elsewhere portable ones route a window at a time and
//! multiply with separate multiplies and adds, compiled for AVX2 where the
//! machine has it. Measured on an AVX-512 machine with the AVX-512 kernels
//! off (the Keras layer alone, every window's gradient nonzero): 3.2 and
//! 2.8 ms, against the AVX-512 kernels' 1.4 and 1.0 ms and the dense
//! routines' 3.2 and 2.6 ms on AVX-512. Without AVX-512 the dense products
//! would run on 256-bit vectors after the pooling gradient, which is why
//! the portable kernels are expected, not measured, to win there too.

use crate::Element;
use crate::conv::{Conv2d, Geo, check_scratch};
use crate::direct::{f32s, f32s_mut, is_f32};
use crate::error::{ContractError, check_len};
use crate::kernel::{self, SendPtr};
use crate::matmul::View;
use crate::pooled::MaxPool2d;
use std::sync::atomic::{AtomicBool, Ordering};

/// Use this path where it applies. Public for the benchmark and the tests
/// only.
#[doc(hidden)]
pub static ROUTED: AtomicBool = AtomicBool::new(true);

/// f32 lanes per AVX-512 vector.
const L: usize = 16;

/// Taps of the kernel this path serves.
const TAPS: usize = 9;

/// The shapes of one call.
struct Shape {
    geo: Geo,
    /// The pooled plane `[qh, qw]`.
    pooled: [usize; 2],
    /// The padded input plane's width.
    wp: usize,
    /// The padded input plane's elements.
    plane: usize,
    /// Vectors of input channels per register block (1 or 2).
    b: usize,
}

impl Shape {
    fn new(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<Shape, ContractError> {
        let geo = Geo::new(x, w, conv)?;
        let pooled = pool.out(geo.oh, geo.ow)?;
        let (hp, wp) = (geo.h + 2 * conv.padding[0], geo.w + 2 * conv.padding[1]);
        let b = if geo.c.is_multiple_of(2 * L) { 2 } else { 1 };
        Ok(Shape { geo, pooled, wp, plane: hp * wp, b })
    }

    /// Floats of one unpadded channels-last image where the convolution
    /// pads (the copies to and from the padded one go through it), else 0.
    fn unpadded(&self) -> usize {
        if self.geo.conv.padding == [0, 0] { 0 } else { self.geo.h * self.geo.w * self.geo.c }
    }

    /// Register blocks of input channels.
    fn blocks(&self) -> usize {
        self.geo.c / (self.b * L)
    }

    /// Floats of one output channel's 3×3 weights (or accumulators) in
    /// register-block order: `[blocks][TAPS][b · L]`.
    fn tile(&self) -> usize {
        TAPS * self.geo.c
    }

    /// The conv output's `[n, o, oh, ow]`.
    fn y(&self) -> [usize; 4] {
        [self.geo.n, self.geo.o, self.geo.oh, self.geo.ow]
    }

    fn g(&self) -> [usize; 4] {
        [self.geo.n, self.geo.o, self.pooled[0], self.pooled[1]]
    }

    /// Multiply-adds if every window's gradient is nonzero.
    fn macs(&self) -> usize {
        self.geo.n * self.geo.o * self.pooled[0] * self.pooled[1] * TAPS * self.geo.c
    }
}

/// Whether the path suits these shapes on any machine.
fn suits<T: 'static>(s: &Shape, pool: &MaxPool2d) -> bool {
    let g = &s.geo;
    is_f32::<T>()
        && g.kh == 3
        && g.kw == 3
        && g.conv.stride == [1, 1]
        && g.conv.dilation == [1, 1]
        && g.c.is_multiple_of(L)
        && g.c > 0
        && g.o > 0
        && *pool == MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0] }
        && u32::try_from(g.oh * s.wp).is_ok()
}

fn applies<T: 'static>(s: &Shape, pool: &MaxPool2d) -> bool {
    suits::<T>(s, pool) && ROUTED.load(Ordering::Relaxed)
}

/// Take the AVX-512 kernels where the machine has them; the portable ones
/// otherwise. Public for the tests only (they run both on AVX-512 machines).
#[doc(hidden)]
pub static ROUTED_AVX512: AtomicBool = AtomicBool::new(true);

/// Whether this call runs the AVX-512 kernels.
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ROUTED_AVX512.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`conv2d_grad_input_routed`] and [`conv2d_grad_weight_routed`]
/// serve a convolution of input `x` and weight `w` (shapes) pooled by
/// `pool` on this machine: f32, a 3×3 kernel at stride and dilation 1,
/// input channels a multiple of 16, a 2×2 stride-2 unpadded window (on
/// any machine, unless [`ROUTED`] is off). Elsewhere the caller runs the
/// pooling gradient and the dense gradients.
pub fn conv2d_routed_grads_apply<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<bool, ContractError> {
    Ok(applies::<T>(&Shape::new(x, w, conv, pool)?, &pool))
}

fn input_jobs(s: &Shape, threads: usize) -> usize {
    kernel::jobs(kernel::useful_threads(threads, s.macs()), s.geo.n)
}

fn weight_jobs(s: &Shape, threads: usize) -> usize {
    kernel::jobs(kernel::useful_threads(threads, s.macs()), s.geo.o)
}

/// Scratch elements [`conv2d_grad_input_routed`] needs: the weights in
/// register-block order, and per job one padded channels-last image
/// gradient (and an unpadded one, where the convolution pads); 0 for
/// shapes the path serves on no machine.
pub fn conv2d_grad_input_routed_scratch_len<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d, threads: usize) -> Result<usize, ContractError> {
    let s = Shape::new(x, w, conv, pool)?;
    Ok(if suits::<T>(&s, &pool) { input_scratch(&s, input_jobs(&s, threads)) } else { 0 })
}

fn input_scratch(s: &Shape, jobs: usize) -> usize {
    s.geo.o * s.tile() + jobs * (s.plane * s.geo.c + s.unpadded()) + L
}

/// Scratch elements [`conv2d_grad_weight_routed`] needs: every image
/// padded and channels-last, the accumulators in register-block order,
/// and per job an unpadded channels-last image, where the convolution
/// pads; 0 for shapes the path serves on no machine.
pub fn conv2d_grad_weight_routed_scratch_len<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d, threads: usize) -> Result<usize, ContractError> {
    let s = Shape::new(x, w, conv, pool)?;
    Ok(if suits::<T>(&s, &pool) { weight_scratch(&s, input_jobs(&s, threads)) } else { 0 })
}

fn weight_scratch(s: &Shape, copy_jobs: usize) -> usize {
    s.geo.n * s.plane * s.geo.c + s.geo.o * s.tile() + copy_jobs * s.unpadded() + L
}

/// Checks the operands of either gradient; returns the shapes.
fn check<T: Element>(x: &[usize], w: &[usize], y: &View<'_, T>, g: &View<'_, T>, conv: Conv2d, pool: MaxPool2d) -> Result<Shape, ContractError> {
    y.check("y")?;
    g.check("g")?;
    let s = Shape::new(x, w, conv, pool)?;
    if !applies::<T>(&s, &pool) {
        return Err(ContractError::Shape(format!(
            "the routed convolution gradients serve f32 3x3 convolutions at stride and dilation 1 with input channels a multiple of 16, pooled 2x2, got input {x:?}, weight {w:?}, {pool:?}"
        )));
    }
    if y.shape != s.y() {
        return Err(ContractError::Shape(format!("y is {:?}, the convolution's output {:?}", y.shape, s.y())));
    }
    if g.shape != s.g() {
        return Err(ContractError::Shape(format!("the pooled gradient is {:?}, the pooled output {:?}", g.shape, s.g())));
    }
    Ok(s)
}

/// The input gradient of a max-pooled convolution, from the pooled
/// output's gradient `g`: `dx = conv2d_grad_input(max_pool2d_grad(y, g),
/// w)`, where each window's `g` goes to the window's argmax in `y` (the
/// convolution's output, by `dl.max_pool2d_grad`'s rule) and with `relu`
/// only where `y > 0` there. `x_shape` is the input's shape. Only where
/// [`conv2d_routed_grads_apply`] (an error otherwise).
///
/// Returns false, with `dx` unspecified, when `w` holds an infinity or a
/// NaN: the dense routines' result then has NaN where this one has none
/// (see the module docs), and the caller runs them instead.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_grad_input_routed<T: Element>(
    y: View<'_, T>,
    g: View<'_, T>,
    w: View<'_, T>,
    relu: bool,
    dx: &mut [T],
    x_shape: &[usize],
    conv: Conv2d,
    pool: MaxPool2d,
    scratch: &mut [T],
    threads: usize,
) -> Result<bool, ContractError> {
    w.check("w")?;
    let s = check(x_shape, w.shape, &y, &g, conv, pool)?;
    check_len("dx", s.geo.n * s.geo.x_img(), dx.len())?;
    let jobs = input_jobs(&s, threads);
    check_scratch(input_scratch(&s, jobs), scratch.len())?;
    let w = f32s(w.data);
    if !all_finite(w) {
        return Ok(false);
    }
    grad_input(&s, f32s(y.data), f32s(g.data), w, relu, f32s_mut(dx), f32s_mut(scratch), jobs);
    Ok(true)
}

/// The weight gradient of a max-pooled convolution of `x`, from the pooled
/// output's gradient `g`: `dw = conv2d_grad_weight(x, max_pool2d_grad(y,
/// g))`, routed as in [`conv2d_grad_input_routed`]. `w_shape` is the
/// weight's shape. Only where [`conv2d_routed_grads_apply`] (an error
/// otherwise).
///
/// Returns false, with `dw` unspecified, when `x` holds an infinity or a
/// NaN (as [`conv2d_grad_input_routed`] for `w`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_grad_weight_routed<T: Element>(
    x: View<'_, T>,
    y: View<'_, T>,
    g: View<'_, T>,
    relu: bool,
    dw: &mut [T],
    w_shape: &[usize],
    conv: Conv2d,
    pool: MaxPool2d,
    scratch: &mut [T],
    threads: usize,
) -> Result<bool, ContractError> {
    x.check("x")?;
    let s = check(x.shape, w_shape, &y, &g, conv, pool)?;
    check_len("dw", s.geo.o * s.tile(), dw.len())?;
    check_scratch(weight_scratch(&s, input_jobs(&s, threads)), scratch.len())?;
    Ok(grad_weight(&s, f32s(x.data), f32s(y.data), f32s(g.data), relu, f32s_mut(dw), f32s_mut(scratch), [input_jobs(&s, threads), weight_jobs(&s, threads)]))
}

/// `scratch` from its first 64-byte boundary on: every vector access of
/// the kernels is then within one cache line (the tiles and the padded
/// images are whole vectors long), where a line-splitting one costs two
/// (measured 1.5-2x on both kernels). The scratch lengths count `L`
/// floats for it.
fn aligned(scratch: &mut [f32]) -> &mut [f32] {
    let skip = scratch.as_ptr().align_offset(64).min(scratch.len());
    &mut scratch[skip..]
}

/// `img` (a padded channels-last image, `[hp · wp][c]`) from `src` (one
/// NCHW image), through `tmp` (`[h · w][c]`) where the convolution pads.
fn to_channels_last(s: &Shape, src: &[f32], img: &mut [f32], tmp: &mut [f32]) {
    let g = &s.geo;
    if tmp.is_empty() {
        return crate::pack::transpose(src, g.c, g.h * g.w, img, 1);
    }
    crate::pack::transpose(src, g.c, g.h * g.w, tmp, 1);
    img.fill(0.0);
    let [pt, pl] = g.conv.padding;
    for r in 0..g.h {
        img[((r + pt) * s.wp + pl) * g.c..][..g.w * g.c].copy_from_slice(&tmp[r * g.w * g.c..][..g.w * g.c]);
    }
}

/// One NCHW image `dst` from the padded channels-last `img`, its padding
/// dropped, through `tmp` where the convolution pads.
fn from_channels_last(s: &Shape, img: &[f32], dst: &mut [f32], tmp: &mut [f32]) {
    let g = &s.geo;
    if tmp.is_empty() {
        return crate::pack::transpose(img, g.h * g.w, g.c, dst, 1);
    }
    let [pt, pl] = g.conv.padding;
    for r in 0..g.h {
        tmp[r * g.w * g.c..][..g.w * g.c].copy_from_slice(&img[((r + pt) * s.wp + pl) * g.c..][..g.w * g.c]);
    }
    crate::pack::transpose(tmp, g.h * g.w, g.c, dst, 1);
}

/// Whether every element is finite, without a branch per element (so the
/// compiler vectorizes it).
fn all_finite(v: &[f32]) -> bool {
    v.iter().fold(true, |ok, x| ok & x.is_finite())
}

/// The windows of one plane whose gradient reaches the convolution, in
/// row-major order, as two parallel lists: `base[i]` is the argmax's
/// output position as `row · wp + col` (the top-left of the padded input
/// positions it reads), `g[i]` its gradient. Each holds `qh · qw` + [`L`]
/// elements (a vector store may run past the last window).
struct Routed {
    base: Vec<u32>,
    g: Vec<f32>,
}

impl Routed {
    fn new([qh, qw]: [usize; 2]) -> Routed {
        Routed { base: vec![0; qh * qw + L], g: vec![0.0; qh * qw + L] }
    }
}

/// The windows of one `[oh, ow]` plane of `y` whose gradient is nonzero,
/// into `out`; returns how many. Each window's argmax is
/// `dl.max_pool2d_grad`'s: taps in row-major order, the first one to
/// start, replaced by a greater value or a NaN (each row scanned, then the
/// second row's winner against the first's, which picks the same tap, as
/// in `mono.rs`). Its gradient `g` is kept when nonzero (a zero of
/// either sign adds nothing), with `relu` only where `y > 0` at the argmax.
/// Eight windows of a row at a time, compacted with compress.
///
/// # Safety
/// avx512f must be available; `y` holds `oh · ow` elements with `oh ≥ 2qh`,
/// `ow ≥ 2qw`, `g` holds `qh · qw`, `out` was made for `[qh, qw]`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn route(y: &[f32], ow: usize, g: &[f32], [qh, qw]: [usize; 2], wp: usize, relu: bool, out: &mut Routed) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        debug_assert!(y.len() >= 2 * qh * ow && ow >= 2 * qw && g.len() >= qh * qw && out.g.len() >= qh * qw + L);
        let zero = _mm512_setzero_ps();
        // Two rows of 16 columns: taps 0 | 2 of 8 windows, and taps 1 | 3.
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        let cols = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let (wpv, one) = (_mm512_set1_epi32(wp as i32), _mm512_set1_epi32(1));
        let mut len = 0;
        for qi in 0..qh {
            let mut qx = 0;
            while qx < qw {
                let k = (qw - qx).min(L / 2);
                let (m, mg) = (((1u32 << (2 * k)) - 1) as __mmask16, ((1u32 << k) - 1) as __mmask16);
                // SAFETY: masked loads read `2k ≤ ow - 2qx` columns of rows
                // `2qi`, `2qi + 1` and `k` gradients of row `qi`; the stores
                // write `L` elements from `len ≤ qh · qw - k`.
                unsafe {
                    let r0 = y.as_ptr().add(2 * qi * ow + 2 * qx);
                    let (a0, a1) = (_mm512_maskz_loadu_ps(m, r0), _mm512_maskz_loadu_ps(m, r0.add(ow)));
                    let (e, od) = (_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1));
                    let c01 = takes(od, e);
                    let rmax = _mm512_mask_blend_ps(c01, e, od);
                    let swapped = _mm512_shuffle_f32x4::<0b01_00_11_10>(rmax, rmax);
                    // Lanes 0..8 hold the windows; `second`: row 1 wins.
                    let second = takes(swapped, rmax) & 0xff;
                    let max = _mm512_mask_blend_ps(second, rmax, swapped);
                    let col = (second & (c01 >> 8)) | (!second & c01 & 0xff);
                    let start = _mm512_add_epi32(cols, _mm512_set1_epi32((2 * qi * wp + 2 * qx) as i32));
                    let row = _mm512_mask_add_epi32(start, second, start, wpv);
                    let base = _mm512_mask_add_epi32(row, col, row, one);
                    let mut share = _mm512_maskz_loadu_ps(mg, g.as_ptr().add(qi * qw + qx));
                    if relu {
                        share = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(max, zero), share);
                    }
                    let keep = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(share, zero) & mg;
                    _mm512_storeu_si512(out.base.as_mut_ptr().add(len).cast(), _mm512_maskz_compress_epi32(keep, base));
                    _mm512_storeu_ps(out.g.as_mut_ptr().add(len), _mm512_maskz_compress_ps(keep, share));
                    len += keep.count_ones() as usize;
                }
                qx += k;
            }
        }
        len
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (y, ow, g, qh, qw, wp, relu, out);
        unreachable!("this path runs only on x86_64");
    }
}

/// A window's tap replaces the running maximum when greater, or NaN.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn takes(v: std::arch::x86_64::__m512, max: std::arch::x86_64::__m512) -> std::arch::x86_64::__mmask16 {
    use std::arch::x86_64::*;
    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, max) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
}

/// The offsets of the 9 taps in a padded channels-last image of `c`
/// channels and width `wp`.
fn tap_offsets(wp: usize, c: usize) -> [usize; TAPS] {
    std::array::from_fn(|t| ((t / 3) * wp + t % 3) * c)
}

/// Copies `w` (`[o, c, 3, 3]`) into register-block order (`[o][blocks][TAPS][b · L]`).
fn weight_tiles(s: &Shape, w: &[f32], tiles: &mut [f32]) {
    let (c, bl) = (s.geo.c, s.b * L);
    for o in 0..s.geo.o {
        for blk in 0..s.blocks() {
            for t in 0..TAPS {
                let dst = &mut tiles[((o * s.blocks() + blk) * TAPS + t) * bl..][..bl];
                for (lane, d) in dst.iter_mut().enumerate() {
                    *d = w[(o * c + blk * bl + lane) * TAPS + t];
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn grad_input(s: &Shape, y: &[f32], g: &[f32], w: &[f32], relu: bool, dx: &mut [f32], scratch: &mut [f32], jobs: usize) {
    let geo = &s.geo;
    let (tiles, images) = aligned(scratch).split_at_mut(geo.o * s.tile());
    weight_tiles(s, w, tiles);
    let tiles = &*tiles;
    let per_job = s.plane * geo.c + s.unpadded();
    let (dx_p, img_p) = (SendPtr(dx.as_mut_ptr()), SendPtr(images.as_mut_ptr()));
    let [qh, qw] = s.pooled;
    let taps = tap_offsets(s.wp, geo.c);
    let wide = avx512();
    kernel::split(jobs, geo.n, |job, range| {
        // SAFETY: each job owns its images and writes only the input
        // gradient's images of its own range.
        let mine = unsafe { std::slice::from_raw_parts_mut(img_p.at(job * per_job), per_job) };
        let (img, unpadded) = mine.split_at_mut(s.plane * geo.c);
        let mut routed = Routed::new(s.pooled);
        for n in range {
            img.fill(0.0);
            for o in 0..geo.o {
                let plane = n * geo.o + o;
                let (yp, gp) = (&y[plane * geo.oh * geo.ow..][..geo.oh * geo.ow], &g[plane * qh * qw..][..qh * qw]);
                // SAFETY: when `wide`, avx512f was detected; the planes are whole.
                let len = if wide { unsafe { route(yp, geo.ow, gp, s.pooled, s.wp, relu, &mut routed) } } else { route_portable(yp, geo.ow, gp, s.pooled, s.wp, relu, &mut routed) };
                for blk in 0..s.blocks() {
                    let bl = s.b * L;
                    let tile = &tiles[(o * s.blocks() + blk) * TAPS * bl..][..TAPS * bl];
                    // SAFETY: when `wide`, avx512f was detected; every routed
                    // base is an output position, whose 9 taps lie in the
                    // padded plane, and the block's channels in the image.
                    unsafe {
                        match (wide, s.b) {
                            (true, 2) => scatter::<2>(&routed, len, tile, img, &taps, geo.c, blk * bl),
                            (true, _) => scatter::<1>(&routed, len, tile, img, &taps, geo.c, blk * bl),
                            (false, _) => scatter_portable(&routed, len, tile, img, &taps, geo.c, blk * bl, bl),
                        }
                    }
                }
            }
            // SAFETY: image `n` of `dx` is this job's alone.
            let out = unsafe { std::slice::from_raw_parts_mut(dx_p.at(n * geo.x_img()), geo.x_img()) };
            from_channels_last(s, img, out, unpadded);
        }
    });
}

/// Returns false when `x` holds a non-finite element.
#[allow(clippy::too_many_arguments)]
/// `jobs`: the copies' (split by image) and the sums' (by output channel).
fn grad_weight(s: &Shape, x: &[f32], y: &[f32], g: &[f32], relu: bool, dw: &mut [f32], scratch: &mut [f32], [copy_jobs, jobs]: [usize; 2]) -> bool {
    let geo = &s.geo;
    let per_img = s.plane * geo.c;
    let (images, rest) = aligned(scratch).split_at_mut(geo.n * per_img);
    let (acc, unpadded) = rest.split_at_mut(geo.o * s.tile());
    // Every image padded and channels-last.
    let finite = AtomicBool::new(true);
    let (img_p, tmp_p) = (SendPtr(images.as_mut_ptr()), SendPtr(unpadded.as_mut_ptr()));
    kernel::split(copy_jobs, geo.n, |job, range| {
        // SAFETY: each job owns its unpadded image.
        let tmp = unsafe { std::slice::from_raw_parts_mut(tmp_p.at(job * s.unpadded()), s.unpadded()) };
        for n in range {
            // SAFETY: image `n` of the copies is this job's alone.
            let img = unsafe { std::slice::from_raw_parts_mut(img_p.at(n * per_img), per_img) };
            let src = &x[n * geo.x_img()..][..geo.x_img()];
            if !all_finite(src) {
                finite.store(false, Ordering::Relaxed);
            }
            to_channels_last(s, src, img, tmp);
        }
    });
    if !finite.load(Ordering::Relaxed) {
        return false;
    }
    let images = &*images;
    let [qh, qw] = s.pooled;
    let taps = tap_offsets(s.wp, geo.c);
    let tile = s.tile();
    let wide = avx512();
    let acc_p = SendPtr(acc.as_mut_ptr());
    kernel::split(jobs, geo.o, |_, range| {
        // SAFETY: the accumulators of this job's output channels are its
        // alone.
        let acc = unsafe { std::slice::from_raw_parts_mut(acc_p.at(range.start * tile), range.len() * tile) };
        acc.fill(0.0);
        let mut routed = Routed::new(s.pooled);
        for n in 0..geo.n {
            let img = &images[n * per_img..][..per_img];
            for (k, o) in range.clone().enumerate() {
                let plane = n * geo.o + o;
                let (yp, gp) = (&y[plane * geo.oh * geo.ow..][..geo.oh * geo.ow], &g[plane * qh * qw..][..qh * qw]);
                // SAFETY: when `wide`, avx512f was detected; the planes are whole.
                let len = if wide { unsafe { route(yp, geo.ow, gp, s.pooled, s.wp, relu, &mut routed) } } else { route_portable(yp, geo.ow, gp, s.pooled, s.wp, relu, &mut routed) };
                for blk in 0..s.blocks() {
                    let bl = s.b * L;
                    let a = &mut acc[k * tile + blk * TAPS * bl..][..TAPS * bl];
                    // SAFETY: as in `grad_input`.
                    unsafe {
                        match (wide, s.b) {
                            (true, 2) => gather::<2>(&routed, len, img, a, &taps, geo.c, blk * bl),
                            (true, _) => gather::<1>(&routed, len, img, a, &taps, geo.c, blk * bl),
                            (false, _) => gather_portable(&routed, len, img, a, &taps, geo.c, blk * bl, bl),
                        }
                    }
                }
            }
        }
    });
    // From register-block order back to `[o, c, 3, 3]`.
    let bl = s.b * L;
    for o in 0..geo.o {
        for blk in 0..s.blocks() {
            for t in 0..TAPS {
                let src = &acc[((o * s.blocks() + blk) * TAPS + t) * bl..][..bl];
                for (lane, &v) in src.iter().enumerate() {
                    dw[(o * geo.c + blk * bl + lane) * TAPS + t] = v;
                }
            }
        }
    }
    true
}

/// [`route`] on any machine, a window at a time (the same windows, in the
/// same order).
fn route_portable(y: &[f32], ow: usize, g: &[f32], [qh, qw]: [usize; 2], wp: usize, relu: bool, out: &mut Routed) -> usize {
    let mut len = 0;
    for qi in 0..qh {
        for qj in 0..qw {
            let top = 2 * qi * ow + 2 * qj;
            let taps = [y[top], y[top + 1], y[top + ow], y[top + ow + 1]];
            let (mut best, mut max) = (0, taps[0]);
            for (t, &v) in taps.iter().enumerate().skip(1) {
                if v > max || v.is_nan() {
                    (best, max) = (t, v);
                }
            }
            let positive = max.partial_cmp(&0.0) == Some(std::cmp::Ordering::Greater);
            let share = if relu && !positive { 0.0 } else { g[qi * qw + qj] };
            out.base[len] = ((2 * qi + best / 2) * wp + 2 * qj + best % 2) as u32;
            out.g[len] = share;
            len += usize::from(share != 0.0);
        }
    }
    len
}

/// [`scatter`] on any machine, for a block of `bl` channels (separate
/// multiplies and adds, so the sums round differently from the AVX-512
/// kernels' fused ones).
#[allow(clippy::too_many_arguments)]
fn scatter_portable(routed: &Routed, len: usize, tile: &[f32], img: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize, bl: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 was detected just above.
        return unsafe { avx2::scatter(routed, len, tile, img, taps, c, c0, bl) };
    }
    scatter_body(routed, len, tile, img, taps, c, c0, bl)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scatter_body(routed: &Routed, len: usize, tile: &[f32], img: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize, bl: usize) {
    for (&base, &g) in routed.base[..len].iter().zip(&routed.g[..len]) {
        let at = base as usize * c + c0;
        for (t, &off) in taps.iter().enumerate() {
            for (d, &w) in img[at + off..][..bl].iter_mut().zip(&tile[t * bl..][..bl]) {
                *d += g * w;
            }
        }
    }
}

/// [`gather`] on any machine, for a block of `bl` channels (as
/// [`scatter_portable`]).
#[allow(clippy::too_many_arguments)]
fn gather_portable(routed: &Routed, len: usize, img: &[f32], acc: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize, bl: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 was detected just above.
        return unsafe { avx2::gather(routed, len, img, acc, taps, c, c0, bl) };
    }
    gather_body(routed, len, img, acc, taps, c, c0, bl)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gather_body(routed: &Routed, len: usize, img: &[f32], acc: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize, bl: usize) {
    for (&base, &g) in routed.base[..len].iter().zip(&routed.g[..len]) {
        let at = base as usize * c + c0;
        for (t, &off) in taps.iter().enumerate() {
            for (a, &x) in acc[t * bl..][..bl].iter_mut().zip(&img[at + off..][..bl]) {
                *a += g * x;
            }
        }
    }
}

/// The portable kernels compiled for AVX2 (8 lanes where the baseline
/// build has 4), for machines that have it but not AVX-512.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Routed, TAPS};

    /// [`super::scatter_body`] on AVX2.
    ///
    /// # Safety
    /// The machine has AVX2.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn scatter(routed: &Routed, len: usize, tile: &[f32], img: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize, bl: usize) {
        super::scatter_body(routed, len, tile, img, taps, c, c0, bl)
    }

    /// [`super::gather_body`] on AVX2.
    ///
    /// # Safety
    /// The machine has AVX2.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gather(routed: &Routed, len: usize, img: &[f32], acc: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize, bl: usize) {
        super::gather_body(routed, len, img, acc, taps, c, c0, bl)
    }
}

/// Adds each routed window's `g · w` into the padded channels-last image
/// gradient `img` at its 9 taps, for one block of `B` vectors of channels
/// starting at channel `c0` (`tile`: the block's weights, `[TAPS][B · L]`).
///
/// # Safety
/// avx512f must be available; every `base + taps[t] + c0 + B · L` must lie
/// within `img`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn scatter<const B: usize>(routed: &Routed, len: usize, tile: &[f32], img: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut w = [_mm512_setzero_ps(); 2 * TAPS];
        for (k, v) in w.iter_mut().take(B * TAPS).enumerate() {
            // SAFETY: `tile` holds `TAPS · B · L` floats.
            *v = unsafe { _mm512_loadu_ps(tile.as_ptr().add(k * L)) };
        }
        let p = img.as_mut_ptr();
        for (&base, &g) in routed.base[..len].iter().zip(&routed.g[..len]) {
            let gv = _mm512_set1_ps(g);
            let at = p.wrapping_add(base as usize * c + c0);
            for t in 0..TAPS {
                for b in 0..B {
                    let q = at.wrapping_add(taps[t] + b * L);
                    // SAFETY: the caller's bound.
                    unsafe { _mm512_storeu_ps(q, _mm512_fmadd_ps(gv, w[t * B + b], _mm512_loadu_ps(q))) };
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (routed, len, tile, img, taps, c, c0);
        unreachable!("this path runs only on x86_64");
    }
}

/// Adds each routed window's `g · x` at its 9 taps of the padded
/// channels-last image `img` into the accumulators `acc` (`[TAPS][B · L]`)
/// of one block of `B` vectors of channels starting at channel `c0`.
///
/// # Safety
/// As [`scatter`]'s.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn gather<const B: usize>(routed: &Routed, len: usize, img: &[f32], acc: &mut [f32], taps: &[usize; TAPS], c: usize, c0: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut a = [_mm512_setzero_ps(); 2 * TAPS];
        for (k, v) in a.iter_mut().take(B * TAPS).enumerate() {
            // SAFETY: `acc` holds `TAPS · B · L` floats.
            *v = unsafe { _mm512_loadu_ps(acc.as_ptr().add(k * L)) };
        }
        let p = img.as_ptr();
        for (&base, &g) in routed.base[..len].iter().zip(&routed.g[..len]) {
            let gv = _mm512_set1_ps(g);
            let at = p.wrapping_add(base as usize * c + c0);
            for t in 0..TAPS {
                for b in 0..B {
                    // SAFETY: the caller's bound.
                    let xv = unsafe { _mm512_loadu_ps(at.wrapping_add(taps[t] + b * L)) };
                    a[t * B + b] = _mm512_fmadd_ps(gv, xv, a[t * B + b]);
                }
            }
        }
        for (k, v) in a.iter().take(B * TAPS).enumerate() {
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(acc.as_mut_ptr().add(k * L), *v) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (routed, len, img, acc, taps, c, c0);
        unreachable!("this path runs only on x86_64");
    }
}
