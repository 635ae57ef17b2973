//! A 3×3 convolution of a one-channel image (a CNN's first layer on
//! grayscale input) and its weight gradient, f32 on AVX-512: vectors of 16
//! output positions along a row.
//!
//! Why: with 9 taps per output, im2col + `gemm` multiplies `[O, 9] · [9, P]`
//! matrices too shallow for its micro-kernel (the Keras CNN's first layer
//! ran at about 40 GFLOP/s, 0.6 ms), and the direct kernels' tile of
//! positions × channels sums too few products to pay for writing itself out
//! (2.1× slower, `direct.rs`). Here one output row segment of up to 32
//! positions keeps its 9 shifted input vectors per half in registers, and
//! every output channel is 9 multiply-adds per vector from them, written
//! straight into the NCHW row with its epilogue: the image is read once per
//! row, nothing is copied but the padding, nothing is transposed.
//!
//! Measured (`cargo bench -p dlc-contract --bench contract -- conv`, batch
//! 64, 1 thread, the Keras CNN's first layer with bias and ReLU): 0.48 ms
//! against 0.81 ms for im2col + `gemm` in the same run (a busy moment of
//! the shared machine; 0.64 ms in a quiet one). What is left is mostly
//! writing the 5.5 MB output, which the pooled convolution
//! (`pooled.rs`) keeps in cache.
//!
//! The weight gradient runs the same way round: for each output channel, 9
//! vector accumulators, one per tap, take the output gradient's row segment
//! times the shifted input row, over every row of every image, and are
//! summed across lanes at the end (0.50 ms against 0.76 ms for im2col +
//! `gemm` on that layer, in one run).
//!
//! Sums run in tap order from zero (fused multiply-adds); the bias is added
//! to the rounded sum and ReLU applied after (`x < 0 → 0`, so NaN and -0
//! pass), as on the other paths. Each image is computed by one job, so
//! results are the same at any thread count. Stride and dilation 1; any
//! zero padding. Only `x86_64` with `avx512f` (detected at run time) takes
//! this path; [`MONO`] turns it off.

use crate::conv::Geo;
use crate::direct::{epilogue_f32, f32s, f32s_mut, is_f32};
use crate::epilogue::Epilogue;
use crate::kernel::{self, SendPtr};
use std::sync::atomic::{AtomicBool, Ordering};

/// Use this path where it applies. Public for the benchmark and the tests
/// only.
#[doc(hidden)]
pub static MONO: AtomicBool = AtomicBool::new(true);

/// Taps of the kernel this path serves.
const TAPS: usize = 9;

/// f32 lanes per AVX-512 vector.
const L: usize = 16;

/// Whether this path suits the convolution, on any machine: f32, one input
/// channel, a 3×3 kernel, stride and dilation 1.
pub(crate) fn suits<T: 'static>(g: &Geo) -> bool {
    is_f32::<T>() && g.c == 1 && g.kh == 3 && g.kw == 3 && g.conv.stride == [1, 1] && g.conv.dilation == [1, 1] && g.n * g.o * g.p() > 0
}

/// Whether it serves the convolution here.
pub(crate) fn applies<T: 'static>(g: &Geo) -> bool {
    suits::<T>(g) && enabled()
}

fn enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        MONO.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The padded plane's `[h, w]`.
fn padded(g: &Geo) -> (usize, usize) {
    (g.h + 2 * g.conv.padding[0], g.w + 2 * g.conv.padding[1])
}

fn jobs(g: &Geo, threads: usize) -> usize {
    kernel::useful_threads(threads, g.n * g.o * g.p() * TAPS).clamp(1, g.n.max(1))
}

/// Scratch elements: one padded plane per job, when there is padding.
pub(crate) fn scratch(g: &Geo, threads: usize) -> usize {
    if g.conv.padding == [0, 0] {
        return 0;
    }
    let (ph, pw) = padded(g);
    jobs(g, threads) * ph * pw
}

/// Runs `each(src, out)` for every image over the jobs: `src` the image's
/// plane, padded into the job's scratch when the convolution pads, `out`
/// the image's `out_img` elements of `out`.
fn per_image(g: &Geo, x: &[f32], out: &mut [f32], out_img: usize, scratch: &mut [f32], threads: usize, each: impl Fn(&[f32], &mut [f32]) + Sync) {
    let jobs = jobs(g, threads);
    let (ph, pw) = padded(g);
    let pad = g.conv.padding != [0, 0];
    let per_job = if pad { ph * pw } else { 0 };
    let (out_p, scr) = (SendPtr(out.as_mut_ptr()), SendPtr(scratch.as_mut_ptr()));
    let x_img = g.x_img();
    kernel::split(jobs, g.n, |job, range| {
        // SAFETY: each job owns its padded plane and writes only the output
        // images of its own range.
        let plane = unsafe { std::slice::from_raw_parts_mut(scr.at(job * per_job), per_job) };
        for img in range {
            let src = &x[img * x_img..][..x_img];
            let src: &[f32] = if pad {
                plane.fill(0.0);
                let [pt, pl] = g.conv.padding;
                for r in 0..g.h {
                    plane[(r + pt) * pw + pl..][..g.w].copy_from_slice(&src[r * g.w..][..g.w]);
                }
                plane
            } else {
                src
            };
            each(src, unsafe { std::slice::from_raw_parts_mut(out_p.at(img * out_img), out_img) });
        }
    });
}

/// `out = epilogue(conv2d(x, w))` on this path (see [`applies`]).
pub(crate) fn conv2d<T: 'static>(g: &Geo, x: &[T], w: &[T], out: &mut [T], epi: Epilogue<'_, T>, scratch: &mut [T], threads: usize) {
    let (x, w, out, scratch, epi) = (f32s(x), f32s(w), f32s_mut(out), f32s_mut(scratch), epilogue_f32(epi));
    let pw = padded(g).1;
    // SAFETY: `src` holds the `ph × pw` plane the output's `oh × ow`
    // positions read with the 3×3 kernel (oh = ph - 2, ow = pw - 2); `y`
    // holds `o` planes of `oh × ow`; `w` holds `o × 9` weights.
    per_image(g, x, out, g.y_img(), scratch, threads, |src, y| unsafe { image(src, pw, w, g.o, g.oh, g.ow, epi, y) });
}

/// Whether [`conv2d_pooled`] serves this convolution and window here: the
/// path applies and the pool is 2×2, stride 2, unpadded.
pub(crate) fn pooled_applies<T: 'static>(g: &Geo, pool: &crate::MaxPool2d) -> bool {
    applies::<T>(g) && pool.kernel == [2, 2] && pool.stride == [2, 2] && pool.padding == [0, 0]
}

/// `out = max_pool2d(epilogue(conv2d(x, w)))` with a 2×2, stride-2 window
/// (see [`pooled_applies`]), `out` `[N, O, OH/2, OW/2]`: each pair of
/// output rows is computed in registers and pooled there, so the
/// convolution's output is never stored. The window's taps are compared
/// column by column, then across (a NaN wins, then the greater value);
/// among equal values that can pick `+0` where a row-major scan picks
/// `-0`, the only difference.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_pooled<T: 'static>(g: &Geo, x: &[T], w: &[T], out: &mut [T], epi: Epilogue<'_, T>, scratch: &mut [T], threads: usize) {
    let (x, w, out, scratch, epi) = (f32s(x), f32s(w), f32s_mut(out), f32s_mut(scratch), epilogue_f32(epi));
    let (pw, (qh, qw)) = (padded(g).1, (g.oh / 2, g.ow / 2));
    // SAFETY: as in `conv2d`; `q` holds `o` planes of `qh × qw`.
    per_image(g, x, out, g.o * qh * qw, scratch, threads, |src, q| unsafe { image_pooled(src, pw, w, g.o, (qh, qw), epi, q) });
}

/// One image of [`conv2d_pooled`].
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn image_pooled(src: &[f32], pw: usize, w: &[f32], o: usize, (qh, qw): (usize, usize), epi: Epilogue<'_, f32>, q: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let (sp, wp, qp) = (src.as_ptr(), w.as_ptr(), q.as_mut_ptr());
        let zero = _mm512_setzero_ps();
        // Even lanes, then odd ones.
        let split = _mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0);
        // Written out below rather than as closures: a closure does not
        // inherit `target_feature`, and one taking vectors was not inlined
        // (the pooled kernel ran 3x slower).
        for py in 0..qh {
            let mut qx = 0;
            while qx < qw {
                // Pooled columns qx..qx + n: convolution columns 2·qx.. of
                // rows 2·py and 2·py + 1, from input rows 2·py..2·py + 4.
                let n = (qw - qx).min(L / 2);
                let m = if 2 * n >= L { 0xffff } else { ((1u32 << (2 * n)) - 1) as __mmask16 };
                // SAFETY (whole block): masked loads read `2n + 2 ≤ pw - 2qx`
                // columns of rows inside the plane; the store writes `n`
                // pooled outputs of row `py`.
                unsafe {
                    let mut xs = [zero; 12];
                    for r in 0..4 {
                        for j in 0..3 {
                            xs[r * 3 + j] = _mm512_maskz_loadu_ps(m, sp.wrapping_add((2 * py + r) * pw + 2 * qx + j));
                        }
                    }
                    for c in 0..o {
                        let wc = wp.wrapping_add(c * TAPS);
                        let (mut a0, mut a1) = (zero, zero);
                        for i in 0..3 {
                            for j in 0..3 {
                                let wv = _mm512_set1_ps(*wc.add(i * 3 + j));
                                a0 = _mm512_fmadd_ps(wv, xs[i * 3 + j], a0);
                                a1 = _mm512_fmadd_ps(wv, xs[(i + 1) * 3 + j], a1);
                            }
                        }
                        let (a0, a1) = epilogue2(a0, a1, epi, c);
                        // The running maximum: a NaN, or a greater value, wins.
                        let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a1, a0) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a1, a1);
                        let v = _mm512_mask_blend_ps(take, a0, a1);
                        // Even columns in lanes 0..8, odd ones in 8..16; then
                        // the halves swapped, so lane k meets its pair.
                        let even = _mm512_permutexvar_ps(split, v);
                        let odd = _mm512_shuffle_f32x4::<0b01_00_11_10>(even, even);
                        let keep = ((1u32 << n) - 1) as __mmask16;
                        let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(odd, even) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(odd, odd);
                        _mm512_mask_storeu_ps(qp.wrapping_add((c * qh + py) * qw + qx), keep, _mm512_mask_blend_ps(take, even, odd));
                    }
                }
                qx += L / 2;
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, pw, w, o, qh, qw, epi, q);
        unreachable!("this path runs only on x86_64");
    }
}

/// Scratch elements [`conv2d_grad_weight`] needs: every image padded, when
/// there is padding.
pub(crate) fn grad_weight_scratch(g: &Geo) -> usize {
    if g.conv.padding == [0, 0] {
        return 0;
    }
    let (ph, pw) = padded(g);
    g.n * ph * pw
}

/// `dw[o, i, j] = Σ_{image, oy, ox} dy[image, o, oy, ox] · x[image, oy + i, ox + j]`
/// on this path (see [`applies`]): for each output channel, 9 vector
/// accumulators over every row segment of every image, summed across lanes
/// at the end. Output channels are split over the jobs, each summed by one
/// job, so the result is the same at any thread count.
pub(crate) fn conv2d_grad_weight<T: 'static>(g: &Geo, x: &[T], dy: &[T], dw: &mut [T], scratch: &mut [T], threads: usize) {
    let (x, dy, dw, scratch) = (f32s(x), f32s(dy), f32s_mut(dw), f32s_mut(scratch));
    let (ph, pw) = padded(g);
    let planes = padded_planes(g, x, scratch);
    let jobs = kernel::useful_threads(threads, g.n * g.o * g.p() * TAPS).clamp(1, g.o.max(1));
    let dw_p = SendPtr(dw.as_mut_ptr());
    kernel::split(jobs, g.o, |_, range| {
        for o in range {
            // SAFETY: channel `o`'s 9 weights are this job's alone; `planes`
            // holds the `n` padded `ph × pw` planes, `dy` the `[n, o, oh, ow]`
            // output gradient.
            unsafe {
                let out = std::slice::from_raw_parts_mut(dw_p.at(o * TAPS), TAPS);
                grad_weight_channel(planes, (ph, pw), dy, g.n, g.o, o, (g.oh, g.ow), out);
            }
        }
    });
}

/// Every image of `x` as its padded plane: `x` itself without padding,
/// else copied into `scratch` (which holds [`grad_weight_scratch`]).
fn padded_planes<'a>(g: &Geo, x: &'a [f32], scratch: &'a mut [f32]) -> &'a [f32] {
    if g.conv.padding == [0, 0] {
        return x;
    }
    let (ph, pw) = padded(g);
    let [pt, pl] = g.conv.padding;
    let planes = &mut scratch[..g.n * ph * pw];
    planes.fill(0.0);
    for img in 0..g.n {
        for r in 0..g.h {
            planes[(img * ph + r + pt) * pw + pl..][..g.w].copy_from_slice(&x[(img * g.h + r) * g.w..][..g.w]);
        }
    }
    planes
}

/// Whether [`conv2d_pooled_grad_weight`] serves this convolution and
/// window here: the pooled path applies, and the windows tile the
/// convolution's output exactly (even height and width), so every output
/// position lies in one window.
pub(crate) fn pooled_grad_applies<T: 'static>(g: &Geo, pool: &crate::MaxPool2d) -> bool {
    pooled_applies::<T>(g, pool) && g.oh.is_multiple_of(2) && g.ow.is_multiple_of(2)
}

/// The weight gradient of a convolution whose output was max-pooled,
/// from the pooled output's gradient `gp` (`[N, O, OH/2, OW/2]`), with the
/// convolution recomputed instead of read back (see
/// [`pooled_grad_applies`]): `dw = conv2d_grad_weight(x, dy)` where `dy =
/// max_pool2d_grad(y, gp)` routes each window's gradient to its argmax in
/// `y = conv2d(x, w) + bias` (masked to `y > 0` there with `relu`).
///
/// Why: a first layer's output is the largest activation of a CNN (5.5 MB
/// for the Keras CNN at batch 64), and storing it for the backward pass
/// costs a write, a read for the pooling and a read for the pooling's
/// gradient, plus the full-size gradient's write and read. Recomputing it
/// costs 9 multiply-adds per output, as many as the weight gradient
/// itself, on data that stays in L1.
///
/// Per output channel (split over the jobs, so the result is the same at
/// any thread count): for each pair of output rows, 8 windows at a time,
/// the two rows are computed in registers as [`conv2d`] computes them (taps
/// in order from zero, then the bias), each window's argmax is found by the
/// pooling gradient's rule (row-major, a greater value or a NaN replaces;
/// the two rows' scans are merged, which picks the same tap), the window's
/// `0 + g` lands there, and the two gradient rows are multiplied into 9
/// accumulators as in [`conv2d_grad_weight`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_pooled_grad_weight<T: 'static>(g: &Geo, x: &[T], w: &[T], bias: Option<&[T]>, relu: bool, gp: &[T], dw: &mut [T], scratch: &mut [T], threads: usize) {
    let (x, w, gp, dw, scratch) = (f32s(x), f32s(w), f32s(gp), f32s_mut(dw), f32s_mut(scratch));
    let bias = bias.map(f32s);
    let (ph, pw) = padded(g);
    let planes = padded_planes(g, x, scratch);
    let jobs = kernel::useful_threads(threads, 2 * g.n * g.o * g.p() * TAPS).clamp(1, g.o.max(1));
    let dw_p = SendPtr(dw.as_mut_ptr());
    // Channels per block, so that a block's image of routed gradient rows
    // stays within [`ROUTED_BYTES`].
    let row_bytes = g.oh * (g.ow / 2).div_ceil(L / 2) * L * size_of::<f32>();
    let block = (ROUTED_BYTES / row_bytes.max(1)).max(1);
    kernel::split(jobs, g.o, |_, range| {
        let mut c0 = range.start;
        while c0 < range.end {
            let chans = c0..(c0 + block).min(range.end);
            // SAFETY: the channels' weights of `dw` are this job's alone;
            // `planes` holds the `n` padded `ph × pw` planes, `gp` the pooled
            // gradient `[n, o, oh/2, ow/2]`, `w` the `o × 9` weights.
            unsafe {
                let out = std::slice::from_raw_parts_mut(dw_p.at(chans.start * TAPS), chans.len() * TAPS);
                c0 = chans.end;
                pooled_grad_channels(planes, (ph, pw), w, bias, relu, gp, (g.n, g.o), chans, (g.oh / 2, g.ow / 2), out);
            }
        }
    });
}

/// The most bytes of routed gradient rows (one image, a block of channels)
/// [`conv2d_pooled_grad_weight`] holds at once: half of Zen 4's 1 MiB L2,
/// so the weight gradient reads them back from cache.
const ROUTED_BYTES: usize = 512 * 1024;

/// A window's tap replaces the running maximum when greater, or NaN.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn takes(v: std::arch::x86_64::__m512, max: std::arch::x86_64::__m512) -> std::arch::x86_64::__mmask16 {
    use std::arch::x86_64::*;
    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, max) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
}

/// Channels `chans` of [`conv2d_pooled_grad_weight`], image by image:
/// first the routed output gradient of every channel (each pair of rows
/// computed in registers, then its windows' gradients placed, channel by
/// channel from the same 12 input vectors) into `dy`, one image's worth
/// ([`ROUTED_BYTES`] at most); then each channel's 9 accumulators take that image
/// as [`grad_weight_channel`] takes it, in the same order, so the result is
/// the same bits as the convolution, the pooling gradient and the weight
/// gradient run one after another on this path. `(n, co)`: images and
/// channels; `(qh, qw)`: the pooled plane.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
#[allow(clippy::too_many_arguments)]
unsafe fn pooled_grad_channels(planes: &[f32], (ph, pw): (usize, usize), w: &[f32], bias: Option<&[f32]>, relu: bool, gp: &[f32], (n, co): (usize, usize), chans: std::ops::Range<usize>, (qh, qw): (usize, usize), out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let (xp, gpp, wp) = (planes.as_ptr(), gp.as_ptr(), w.as_ptr());
        let zero = _mm512_setzero_ps();
        // Two rows of 16 columns → even columns (row 0 | row 1), odd ones.
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        // Even and odd halves back into rows: row 0 from the low halves,
        // row 1 from the high ones.
        let row0 = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        let row1 = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
        let (oh, ow) = (2 * qh, 2 * qw);
        let segs = qw.div_ceil(L / 2);
        // One image's routed gradient for these channels: rows of `segs`
        // whole vectors.
        let stride = segs * L;
        let mut dy = vec![0.0f32; chans.len() * oh * stride];
        let dp = dy.as_mut_ptr();
        let mut acc = vec![zero; chans.len() * TAPS];
        for img in 0..n {
            let base = xp.wrapping_add(img * ph * pw);
            for py in 0..qh {
                for s in 0..segs {
                    let qx = s * L / 2;
                    let k = (qw - qx).min(L / 2);
                    let (m, mg) = (((1u32 << (2 * k)) - 1) as __mmask16, ((1u32 << k) - 1) as __mmask16);
                    // SAFETY (whole block): masked loads read `2k + 2 ≤ pw -
                    // 2qx` columns of rows `2py..2py + 4 ≤ ph` of the image's
                    // plane, and `k` pooled gradients of row `py`; stores
                    // write whole vectors of rows `2py`, `2py + 1` of `dy`.
                    unsafe {
                        let at = base.wrapping_add(2 * py * pw + 2 * qx);
                        let mut xs = [zero; 12];
                        for r in 0..4 {
                            for j in 0..3 {
                                xs[r * 3 + j] = _mm512_maskz_loadu_ps(m, at.wrapping_add(r * pw + j));
                            }
                        }
                        for (ci, c) in chans.clone().enumerate() {
                            // The two output rows, as `image` computes them.
                            let wc = wp.wrapping_add(c * TAPS);
                            let (mut a0, mut a1) = (zero, zero);
                            for t in 0..TAPS {
                                let wv = _mm512_set1_ps(*wc.add(t));
                                a0 = _mm512_fmadd_ps(wv, xs[t], a0);
                                a1 = _mm512_fmadd_ps(wv, xs[t + 3], a1);
                            }
                            if let Some(b) = bias {
                                let bv = _mm512_set1_ps(b[c]);
                                a0 = _mm512_add_ps(a0, bv);
                                a1 = _mm512_add_ps(a1, bv);
                            }
                            // Taps 0 | 2 and 1 | 3 of each window: each row's
                            // scan, then row 1's winner against row 0's.
                            let (e, od) = (_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1));
                            let c01 = takes(od, e);
                            let rmax = _mm512_mask_blend_ps(c01, e, od);
                            let swapped = _mm512_shuffle_f32x4::<0b01_00_11_10>(rmax, rmax);
                            // Lanes 0..8 hold the windows (8..16 are not used).
                            let second = takes(swapped, rmax);
                            let max = _mm512_mask_blend_ps(second, rmax, swapped);
                            let gv = _mm512_maskz_loadu_ps(mg, gpp.wrapping_add(((img * co + c) * qh + py) * qw + qx));
                            let mut share = _mm512_add_ps(zero, gv);
                            if relu {
                                share = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(max, zero), share);
                            }
                            // The share in the winning row's half (row 0 low,
                            // row 1 high), then in the winning column.
                            let (first, last) = (_mm512_mask_mov_ps(share, second, zero), _mm512_maskz_mov_ps(second, share));
                            let halves = _mm512_shuffle_f32x4::<0b01_00_01_00>(first, last);
                            let (de, dodd) = (_mm512_mask_mov_ps(halves, c01, zero), _mm512_maskz_mov_ps(c01, halves));
                            let row = dp.wrapping_add((ci * oh + 2 * py) * stride + s * L);
                            _mm512_storeu_ps(row, _mm512_permutex2var_ps(de, row0, dodd));
                            _mm512_storeu_ps(row.wrapping_add(stride), _mm512_permutex2var_ps(de, row1, dodd));
                        }
                    }
                }
            }
            // Two channels at a time, so each input vector loaded serves
            // 18 multiply-adds.
            let mut ci = 0;
            while ci < chans.len() {
                let pair = (chans.len() - ci).min(2);
                let mut a = [zero; 2 * TAPS];
                a[..pair * TAPS].copy_from_slice(&acc[ci * TAPS..][..pair * TAPS]);
                for oy in 0..oh {
                    for s in 0..segs {
                        let seg = s * L;
                        let nl = (ow - seg).min(L);
                        let m = if nl >= L { 0xffff } else { ((1u32 << nl) - 1) as __mmask16 };
                        // SAFETY: as in `grad_weight_channel`; `dy` holds
                        // row `oy`'s whole vectors of both channels (a lone
                        // last channel reads its own row twice).
                        unsafe {
                            let d0 = _mm512_loadu_ps(dp.wrapping_add((ci * oh + oy) * stride + seg));
                            let d1 = _mm512_loadu_ps(dp.wrapping_add(((ci + pair - 1) * oh + oy) * stride + seg));
                            for i in 0..3 {
                                let row = base.wrapping_add((oy + i) * pw + seg);
                                for j in 0..3 {
                                    let xv = _mm512_maskz_loadu_ps(m, row.wrapping_add(j));
                                    a[i * 3 + j] = _mm512_fmadd_ps(d0, xv, a[i * 3 + j]);
                                    a[TAPS + i * 3 + j] = _mm512_fmadd_ps(d1, xv, a[TAPS + i * 3 + j]);
                                }
                            }
                        }
                    }
                }
                acc[ci * TAPS..][..pair * TAPS].copy_from_slice(&a[..pair * TAPS]);
                ci += pair;
            }
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = _mm512_reduce_add_ps(*a);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (planes, ph, pw, w, bias, relu, gp, n, co, chans, qh, qw, out);
        unreachable!("this path runs only on x86_64");
    }
}

/// Channel `o` of [`conv2d_grad_weight`].
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
#[allow(clippy::too_many_arguments)]
unsafe fn grad_weight_channel(planes: &[f32], (ph, pw): (usize, usize), dy: &[f32], n: usize, co: usize, o: usize, (oh, ow): (usize, usize), out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let (xp, gp) = (planes.as_ptr(), dy.as_ptr());
        let mut acc = [_mm512_setzero_ps(); TAPS];
        for img in 0..n {
            for oy in 0..oh {
                let mut seg = 0;
                while seg < ow {
                    let nl = (ow - seg).min(L);
                    let m = if nl >= L { 0xffff } else { ((1u32 << nl) - 1) as __mmask16 };
                    // SAFETY: masked loads read only positions inside the row
                    // of `dy` and inside the padded plane's rows (`seg + j +
                    // lane < ow + 2 = pw`, rows `oy + i < oh + 2 = ph`).
                    unsafe {
                        let d = _mm512_maskz_loadu_ps(m, gp.wrapping_add(((img * co + o) * oh + oy) * ow + seg));
                        for i in 0..3 {
                            let row = xp.wrapping_add((img * ph + oy + i) * pw + seg);
                            for j in 0..3 {
                                acc[i * 3 + j] = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, row.wrapping_add(j)), acc[i * 3 + j]);
                            }
                        }
                    }
                    seg += L;
                }
            }
        }
        for (t, a) in acc.iter().enumerate() {
            out[t] = _mm512_reduce_add_ps(*a);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (planes, ph, pw, dy, n, co, o, oh, ow, out);
        unreachable!("this path runs only on x86_64");
    }
}

/// Channel `c`'s epilogue on two vectors: the bias added to the rounded
/// sums, then ReLU (`x < 0 → 0`, so NaN and -0 pass).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn epilogue2(a0: std::arch::x86_64::__m512, a1: std::arch::x86_64::__m512, epi: Epilogue<'_, f32>, c: usize) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512) {
    use std::arch::x86_64::*;
    let (mut a0, mut a1) = (a0, a1);
    if let Some(b) = epi.bias {
        let bv = _mm512_set1_ps(b[c]);
        a0 = _mm512_add_ps(a0, bv);
        a1 = _mm512_add_ps(a1, bv);
    }
    if epi.relu {
        let zero = _mm512_setzero_ps();
        a0 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a0, zero), a0, zero);
        a1 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a1, zero), a1, zero);
    }
    (a0, a1)
}

/// One image: `y[o, oy, ox] = epi(Σ_{i,j} w[o, i, j] · src[oy + i, ox + j])`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
#[allow(clippy::too_many_arguments)]
unsafe fn image(src: &[f32], pw: usize, w: &[f32], o: usize, oh: usize, ow: usize, epi: Epilogue<'_, f32>, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let (sp, wp, yp) = (src.as_ptr(), w.as_ptr(), y.as_mut_ptr());
        let zero = _mm512_setzero_ps();
        let lanes = |n: usize| -> __mmask16 { if n >= L { 0xffff } else { ((1u32 << n) - 1) as __mmask16 } };
        for oy in 0..oh {
            let mut seg = 0;
            while seg < ow {
                let (n0, n1) = ((ow - seg).min(L), (ow - seg).saturating_sub(L).min(L));
                let (m0, m1) = (lanes(n0), lanes(n1));
                // SAFETY (whole segment): masked loads read only lanes inside
                // the row (`seg + j + lane < ow + 2 = pw`), masked stores write
                // only the segment's positions of row `oy`.
                unsafe {
                    let mut x0 = [zero; TAPS];
                    let mut x1 = [zero; TAPS];
                    for i in 0..3 {
                        for j in 0..3 {
                            let at = sp.wrapping_add((oy + i) * pw + j + seg);
                            x0[i * 3 + j] = _mm512_maskz_loadu_ps(m0, at);
                            x1[i * 3 + j] = _mm512_maskz_loadu_ps(m1, at.wrapping_add(L));
                        }
                    }
                    for c in 0..o {
                        let wc = wp.wrapping_add(c * TAPS);
                        let (mut a0, mut a1) = (zero, zero);
                        for t in 0..TAPS {
                            let wv = _mm512_set1_ps(*wc.add(t));
                            a0 = _mm512_fmadd_ps(wv, x0[t], a0);
                            a1 = _mm512_fmadd_ps(wv, x1[t], a1);
                        }
                        let (a0, a1) = epilogue2(a0, a1, epi, c);
                        let out = yp.wrapping_add((c * oh + oy) * ow + seg);
                        _mm512_mask_storeu_ps(out, m0, a0);
                        if n1 > 0 {
                            _mm512_mask_storeu_ps(out.wrapping_add(L), m1, a1);
                        }
                    }
                }
                seg += 2 * L;
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, pw, w, o, oh, ow, epi, y);
        unreachable!("this path runs only on x86_64");
    }
}
