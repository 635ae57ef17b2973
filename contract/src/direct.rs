//! Direct convolutions for `f32` on AVX-512: the product runs straight from
//! the image, with no im2col copy and no packing inside `gemm`.
//!
//! A register tile of `R` output positions × `16·V` output channels
//! accumulates over every (channel, tap) straight from the input: one
//! broadcast input element times `V` weight vectors per step, the weights
//! packed once per call as `[taps, O]`. The forward tile goes to a small
//! `[P, O]` buffer that is transposed into NCHW through the epilogue while it
//! is in L1. The weight gradient swaps the roles: the tile is `R` taps ×
//! `16·V` output channels, summed over every output position of every image,
//! the output gradient transposed per group of images to `[P, O]` rows.
//!
//! Why, and where, measured on an AVX-512 machine (a 2-vCPU AMD EPYC,
//! Zen 4: the reference machine type; `cargo bench -p dlc-contract --bench
//! contract -- conv taps`, batch 64, 1 thread, a build running beside it):
//! - the Keras CNN's 13×13 layer (288 taps): forward 3.39 against 4.02 ms
//!   for im2col + `gemm` (84 against 71 GFLOP/s), weight gradient 4.37
//!   against 4.70 ms; its 5×5 layer (576 taps): forward 0.59 against
//!   0.83 ms, weight gradient 0.43 against 0.88 ms;
//! - its first layer (1 input channel, 9 taps) is 2.1× *slower* forward and
//!   1.2× slower in the weight gradient: each tile sums too few products to
//!   pay for writing itself out. The `taps` sweep (3×3 kernels, 1 to 32
//!   input channels on 28×28 images) puts the crossover at 54–72 taps for
//!   the forward pass and about 144 for the weight gradient, so the direct
//!   path starts at [`MIN_DIRECT_TAPS`] = 128 taps;
//! - as each weight-gradient output is one sequential sum computed by one
//!   job, that gradient is bit-identical at any thread count (the im2col
//!   path adds per-job partials);
//! - the input gradient stays on im2col + `gemm`. Written as this forward
//!   tile over the output gradient (stride 1: the kernel flipped, its
//!   channel axes swapped, padding `dilation·(K-1) - padding`), it was
//!   slower: 4.57 against 4.15 ms on the 13×13 layer, 1.48 against 1.27 ms
//!   on the 5×5 (its 32 or 64 output channels make a narrow tile), and 10×
//!   slower for a 1-channel input.
//!
//! An AVX2 port (8 lanes, tiles of 6–7 positions × 8–16 channels), measured
//! on an AVX2-only EPYC VM, lost everywhere but the 13×13 layer's forward
//! pass (weight gradient 2.3× slower) and was not kept.
//!
//! The forward pass of 3×3 stride-1 convolutions with enough channels now
//! goes to Winograd first (`winograd.rs`: 1.6–1.8 against 3.0–3.2 ms on the
//! 13×13 layer); the weight gradient stays here.
//!
//! Only `x86_64` with `avx512f` (detected at run time) takes this path;
//! everything else stays on im2col + `gemm`. [`DIRECT`] turns it off, for the
//! benchmark and for the tests that check both paths. The forward pass
//! allocates its tap-offset and position tables (one `usize` per tap and
//! per output position) once per call.

use crate::conv::Geo;
use crate::epilogue::Epilogue;
use crate::kernel::{self, SendPtr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Use the direct path where it applies. Public for the benchmark and the
/// tests only.
#[doc(hidden)]
pub static DIRECT: AtomicBool = AtomicBool::new(true);

/// f32 lanes per AVX-512 vector.
const L: usize = 16;

/// Output-channel vectors per tile at most (64 channels): with `R`
/// positions, `R·V` accumulators plus `V` weight vectors stay in the 32
/// registers.
const MAX_V: usize = 4;

/// The most positions (or taps) a tile takes: [`tile_r`] of one vector.
const MAX_R: usize = tile_r(1);

/// Bytes of one group's operands in the weight gradient (transposed output
/// gradient and padded input): about half an L2, so a tap block's pass over
/// the group reads from cache.
const GROUP_BYTES: usize = 512 * 1024;

/// True when this machine runs the direct kernels and [`DIRECT`] is on.
fn enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        DIRECT.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True when `T` is `f32` (the only type with direct kernels).
pub(crate) fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// Fewest taps (input channels × kernel taps) a convolution needs for the
/// direct path: with fewer, each register tile sums too few products to pay
/// for writing itself out, and im2col + `gemm` is faster. Public for the
/// benchmark's sweep (`-- taps`), which sets it to 0.
#[doc(hidden)]
pub static MIN_DIRECT_TAPS: AtomicUsize = AtomicUsize::new(128);

/// Whether the direct path suits this convolution's shapes and type, on
/// any machine: f32, at least [`MIN_DIRECT_TAPS`] taps, and not a 1×1
/// stride-1 conv without padding (which needs no im2col either and stays
/// on `gemm`). Scratch sizes follow this, not the machine, so a memory plan
/// is the same on every CPU.
pub(crate) fn suits<T: 'static>(g: &Geo) -> bool {
    is_f32::<T>() && !g.pointwise() && g.n * g.o * g.p() > 0 && g.taps() >= MIN_DIRECT_TAPS.load(Ordering::Relaxed)
}

/// Whether the direct path serves this convolution here: it [`suits`] it
/// and this machine runs the direct kernels.
pub(crate) fn forward_applies<T: 'static>(g: &Geo) -> bool {
    suits::<T>(g) && enabled()
}

/// See [`forward_applies`].
pub(crate) fn grad_weight_applies<T: 'static>(g: &Geo) -> bool {
    forward_applies::<T>(g) && g.taps() > 0
}

/// One direct forward problem: `out[co, p] = Σ_t src[off(t) + base(p)] · wp[t, co]`
/// over an input of `ci` planes of `ph × pw` (already padded).
#[derive(Clone, Copy, Debug)]
struct Fwd {
    ci: usize,
    ph: usize,
    pw: usize,
    kh: usize,
    kw: usize,
    dil: [usize; 2],
    stride: [usize; 2],
    co: usize,
    oh: usize,
    ow: usize,
}

impl Fwd {
    fn taps(&self) -> usize {
        self.ci * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn plane(&self) -> usize {
        self.ph * self.pw
    }
    /// Output channels rounded up to whole vectors: the packed weight's and
    /// the tile buffer's row length.
    fn opad(&self) -> usize {
        self.co.next_multiple_of(L)
    }
    /// Rows of the `[P, O]` tile buffer: the last position block may run
    /// past `P` (its extra rows repeat the last position and are dropped).
    fn tile_rows(&self) -> usize {
        self.p() + MAX_R
    }
    /// Input offset of output position `p`.
    fn base(&self, p: usize) -> usize {
        (p / self.ow) * self.stride[0] * self.pw + (p % self.ow) * self.stride[1]
    }
}

/// Positions (or taps) per tile for `v` channel vectors: `R·V`
/// accumulators, `V` weight vectors and `R` broadcast inputs fit in the 32
/// vector registers (LLVM issues all `R` broadcasts of a step before its
/// FMAs; one more position and the accumulators spill to the stack).
const fn tile_r(v: usize) -> usize {
    match v {
        1 => 15,
        2 => 10,
        3 => 7,
        _ => 5,
    }
}

/// The padded size of an input plane.
fn padded(g: &Geo) -> (usize, usize) {
    (g.h + 2 * g.conv.padding[0], g.w + 2 * g.conv.padding[1])
}

fn fwd_of(g: &Geo) -> Fwd {
    let (ph, pw) = padded(g);
    Fwd { ci: g.c, ph, pw, kh: g.kh, kw: g.kw, dil: g.conv.dilation, stride: g.conv.stride, co: g.o, oh: g.oh, ow: g.ow }
}

/// Elements of a padded copy of one image (none when there is no padding).
fn pad_len(planes: usize, (ph, pw): (usize, usize), (h, w): (usize, usize)) -> usize {
    if (ph, pw) == (h, w) { 0 } else { planes * ph * pw }
}

/// Scratch of a forward problem: packed weight, then per job a tile buffer
/// and a padded image.
fn fwd_scratch(f: &Fwd, pad: usize, jobs: usize) -> usize {
    f.taps() * f.opad() + jobs * (f.tile_rows() * f.opad() + pad)
}

fn jobs_for(g: &Geo, items: usize, threads: usize) -> usize {
    kernel::jobs(kernel::useful_threads(threads, g.n * g.o * g.p() * g.taps()), items)
}

/// Scratch elements of [`conv2d`].
pub(crate) fn conv2d_scratch(g: &Geo, threads: usize) -> usize {
    let f = fwd_of(g);
    fwd_scratch(&f, pad_len(g.c, (f.ph, f.pw), (g.h, g.w)), jobs_for(g, g.n, threads))
}

/// Images per group of the weight gradient.
fn grad_weight_group(g: &Geo) -> usize {
    let (ph, pw) = padded(g);
    let per_img = 4 * (g.p() * g.o.next_multiple_of(L) + pad_len(g.c, (ph, pw), (g.h, g.w)));
    (GROUP_BYTES / per_img.max(1)).clamp(1, g.n.max(1))
}

/// Scratch elements of [`conv2d_grad_weight`]: the `[taps, O]` sums, then
/// one group's transposed output gradient and padded images.
pub(crate) fn grad_weight_scratch(g: &Geo) -> usize {
    let f = fwd_of(g);
    let grp = grad_weight_group(g);
    let opad = f.opad();
    g.taps() * opad + grp * (g.p() * opad + pad_len(g.c, (f.ph, f.pw), (g.h, g.w)))
}

/// Reinterprets an `f32` slice of a generic element (checked by the callers
/// through [`is_f32`]).
pub(crate) fn f32s<T: 'static>(s: &[T]) -> &[f32] {
    assert!(is_f32::<T>());
    // SAFETY: `T` is `f32` (asserted), so the slice is one of f32.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
}

pub(crate) fn f32s_mut<T: 'static>(s: &mut [T]) -> &mut [f32] {
    assert!(is_f32::<T>());
    // SAFETY: as in `f32s`.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
}

pub(crate) fn epilogue_f32<'a, T: 'static>(e: Epilogue<'a, T>) -> Epilogue<'a, f32> {
    Epilogue { bias: e.bias.map(f32s), relu: e.relu }
}

/// Copies `planes` planes of `h × w` into the middle of `ph × pw` planes,
/// zeros around.
fn pad_into(src: &[f32], planes: usize, (h, w): (usize, usize), dst: &mut [f32], (ph, pw): (usize, usize), (top, left): (usize, usize)) {
    dst[..planes * ph * pw].fill(0.0);
    for c in 0..planes {
        for y in 0..h {
            let s = &src[(c * h + y) * w..][..w];
            dst[(c * ph + y + top) * pw + left..][..w].copy_from_slice(s);
        }
    }
}

/// Runs a forward problem over `n` images: `src` holds them at `src_img`
/// elements apiece (unpadded, `pad` says how to pad them), `wp` the packed
/// weight, `out` `[n, co, P]`.
#[allow(clippy::too_many_arguments)]
fn run_fwd(f: &Fwd, n: usize, src: &[f32], src_img: usize, unpadded: (usize, usize), pad: (usize, usize), wp: &[f32], out: &mut [f32], epi: Epilogue<'_, f32>, scratch: &mut [f32], jobs: usize) {
    let opad = f.opad();
    let pad_elems = pad_len(f.ci, (f.ph, f.pw), unpadded);
    let per_job = f.tile_rows() * opad + pad_elems;
    let (out_p, scr) = (SendPtr(out.as_mut_ptr()), SendPtr(scratch.as_mut_ptr()));
    let y_img = f.co * f.p();
    // Each tap's offset in an image and each position's base, once per call
    // (computed per image, their divisions cost a fifth of the 5×5 layer).
    let offs: Vec<usize> = (0..f.taps()).map(|t| tap_offset(f, t)).collect();
    let bases: Vec<usize> = (0..f.p()).map(|p| f.base(p)).collect();
    kernel::split(jobs, n, |job, range| {
        // SAFETY: each job owns its scratch region and its images of `out`.
        let (tile, padbuf) = unsafe {
            let base = scr.at(job * per_job);
            (std::slice::from_raw_parts_mut(base, f.tile_rows() * opad), std::slice::from_raw_parts_mut(base.add(f.tile_rows() * opad), pad_elems))
        };
        for img in range {
            let x = &src[img * src_img..][..src_img];
            let x: &[f32] = if pad_elems == 0 {
                x
            } else {
                pad_into(x, f.ci, unpadded, padbuf, (f.ph, f.pw), pad);
                padbuf
            };
            // SAFETY: `tile` has `tile_rows` rows of `opad`; every input read
            // is inside the (padded) image: base(p) + off(t) ≤ the last element
            // for every valid position and tap, and the tile blocks clamp
            // positions to valid ones.
            unsafe { fwd_image(f, x, wp, (&offs, &bases), tile) };
            let y = unsafe { std::slice::from_raw_parts_mut(out_p.at(img * y_img), y_img) };
            let p = f.p();
            for (o, row) in y.chunks_exact_mut(p).enumerate() {
                let col = tile[o..].iter().step_by(opad);
                match (epi.bias.map(|b| b[o]), epi.relu) {
                    (Some(b), true) => row.iter_mut().zip(col).for_each(|(d, &s)| *d = relu(s + b)),
                    (Some(b), false) => row.iter_mut().zip(col).for_each(|(d, &s)| *d = s + b),
                    (None, true) => row.iter_mut().zip(col).for_each(|(d, &s)| *d = relu(s)),
                    (None, false) => row.iter_mut().zip(col).for_each(|(d, &s)| *d = s),
                }
            }
        }
    });
}

#[inline(always)]
fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// Packs `w` `[O, C, KH, KW]` as `[taps=(c, i, j), O]`, zero-padded to `opad`.
fn pack_forward(w: &[f32], o: usize, taps: usize, opad: usize, dst: &mut [f32]) {
    dst[..taps * opad].fill(0.0);
    for oc in 0..o {
        for t in 0..taps {
            dst[t * opad + oc] = w[oc * taps + t];
        }
    }
}

/// `out = epilogue(conv2d(x, w))` on the direct path (see [`forward_applies`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d<T: 'static>(g: &Geo, x: &[T], w: &[T], out: &mut [T], epi: Epilogue<'_, T>, scratch: &mut [T], threads: usize) {
    let (x, w, out, scratch, epi) = (f32s(x), f32s(w), f32s_mut(out), f32s_mut(scratch), epilogue_f32(epi));
    let f = fwd_of(g);
    let (wp, rest) = scratch.split_at_mut(f.taps() * f.opad());
    pack_forward(w, g.o, f.taps(), f.opad(), wp);
    let pad = (g.conv.padding[0], g.conv.padding[1]);
    run_fwd(&f, g.n, x, g.x_img(), (g.h, g.w), pad, wp, out, epi, rest, jobs_for(g, g.n, threads));
}

/// The weight gradient on the direct path (see [`grad_weight_applies`]).
pub(crate) fn conv2d_grad_weight<T: 'static>(g: &Geo, x: &[T], dy: &[T], dw: &mut [T], scratch: &mut [T], threads: usize) {
    let (x, dy, dw, scratch) = (f32s(x), f32s(dy), f32s_mut(dw), f32s_mut(scratch));
    let f = fwd_of(g);
    let (opad, taps, p) = (f.opad(), f.taps(), f.p());
    let grp = grad_weight_group(g);
    let pad_elems = pad_len(g.c, (f.ph, f.pw), (g.h, g.w));
    let (acc, rest) = scratch.split_at_mut(taps * opad);
    let (dyt, rest) = rest.split_at_mut(grp * p * opad);
    let xpad = &mut rest[..grp * pad_elems];
    acc.fill(0.0);
    let v = opad / L;
    let blocks = taps.div_ceil(tile_r(v.min(MAX_V)));
    let jobs = jobs_for(g, blocks, threads);
    let acc_p = SendPtr(acc.as_mut_ptr());
    for n0 in (0..g.n).step_by(grp) {
        let cnt = grp.min(g.n - n0);
        // The group's output gradient as [image, P, opad] rows, on the
        // transposer's AVX tiles (a scalar copy took a fifth of the 13×13
        // layer's weight gradient); one image's is too small to split.
        for i in 0..cnt {
            let src = &dy[(n0 + i) * g.y_img()..][..g.y_img()];
            let dst = &mut dyt[i * p * opad..][..p * opad];
            crate::pack::transpose_ld(src, g.o, p, dst, opad, 1);
            if opad > g.o {
                dst.chunks_exact_mut(opad).for_each(|row| row[g.o..].fill(0.0));
            }
        }
        let (xs, img_len): (&[f32], usize) = if pad_elems == 0 {
            (&x[n0 * g.x_img()..(n0 + cnt) * g.x_img()], g.x_img())
        } else {
            for i in 0..cnt {
                let src = &x[(n0 + i) * g.x_img()..][..g.x_img()];
                pad_into(src, g.c, (g.h, g.w), &mut xpad[i * pad_elems..], (f.ph, f.pw), (g.conv.padding[0], g.conv.padding[1]));
            }
            (&xpad[..cnt * pad_elems], pad_elems)
        };
        let dyt = &dyt[..cnt * p * opad];
        kernel::split(jobs, blocks, |_, range| {
            for b in range {
                // SAFETY: tap block `b` owns rows `b·R..` of `acc` (the
                // blocks of one job, and of different jobs, are disjoint),
                // and the reads stay in `xs` and `dyt` (see `grad_weight_block`).
                unsafe { grad_weight_block(&f, b, xs, img_len, cnt, dyt, acc_p) };
            }
        });
    }
    // dW[o, t] = acc[t, o].
    for o in 0..g.o {
        for t in 0..taps {
            dw[o * taps + t] = acc[t * opad + o];
        }
    }
}

/// Offset of tap `t` (`(c, i, j)`) inside a padded image.
fn tap_offset(f: &Fwd, t: usize) -> usize {
    let (c, ij) = (t / (f.kh * f.kw), t % (f.kh * f.kw));
    c * f.plane() + (ij / f.kw) * f.dil[0] * f.pw + (ij % f.kw) * f.dil[1]
}

/// The forward tile over every position of one (padded) image: `tile[p, co]`.
///
/// # Safety
/// AVX-512F must be available; `x` must be a whole padded image of `f`,
/// `wp` `[taps, opad]`, `tile` `tile_rows × opad`; `offs` holds every
/// tap's [`tap_offset`] and `bases` every position's [`Fwd::base`].
unsafe fn fwd_image(f: &Fwd, x: &[f32], wp: &[f32], (offs, bases): (&[usize], &[usize]), tile: &mut [f32]) {
    debug_assert!(x.len() >= f.ci * f.plane() && wp.len() >= f.taps() * f.opad() && tile.len() >= f.tile_rows() * f.opad());
    let opad = f.opad();
    let mut o0 = 0;
    while o0 < opad {
        let v = ((opad - o0) / L).min(MAX_V);
        // SAFETY: forwarded from the caller; `o0 + 16·v ≤ opad`.
        unsafe {
            match v {
                1 => fwd_block::<{ tile_r(1) }, 1>(f, x, wp, (offs, bases), tile, o0),
                2 => fwd_block::<{ tile_r(2) }, 2>(f, x, wp, (offs, bases), tile, o0),
                3 => fwd_block::<{ tile_r(3) }, 3>(f, x, wp, (offs, bases), tile, o0),
                _ => fwd_block::<{ tile_r(4) }, 4>(f, x, wp, (offs, bases), tile, o0),
            }
        }
        o0 += v * L;
    }
}

/// Channels `o0..o0 + 16·V` of [`fwd_image`], `R` positions at a time.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn fwd_block<const R: usize, const V: usize>(f: &Fwd, x: &[f32], wp: &[f32], (offs, bases): (&[usize], &[usize]), tile: &mut [f32], o0: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let (p, opad) = (f.p(), f.opad());
        let (xp, wptr, tp) = (x.as_ptr(), wp.as_ptr().wrapping_add(o0), tile.as_mut_ptr().wrapping_add(o0));
        // One flat loop over the taps, each at its offset in the image:
        // nested (channel, row, column) loops of 3 cost more in loop
        // bookkeeping than the 20 FMAs of a step.
        let mut p0 = 0;
        while p0 < p {
            let mut at = [xp; R];
            for (r, a) in at.iter_mut().enumerate() {
                *a = xp.wrapping_add(bases[(p0 + r).min(p - 1)]);
            }
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            let mut wt = wptr;
            for &off in offs {
                // SAFETY (whole block): the caller's contract; the weight
                // row has `opad - o0 ≥ 16·V` elements left.
                unsafe {
                    let mut wv = [_mm512_setzero_ps(); V];
                    for (k, w) in wv.iter_mut().enumerate() {
                        *w = _mm512_loadu_ps(wt.add(k * L));
                    }
                    for r in 0..R {
                        let s = _mm512_set1_ps(*at[r].add(off));
                        for k in 0..V {
                            acc[r][k] = _mm512_fmadd_ps(s, wv[k], acc[r][k]);
                        }
                    }
                }
                wt = wt.wrapping_add(opad);
            }
            for (r, a) in acc.iter().enumerate() {
                for (k, v) in a.iter().enumerate() {
                    // SAFETY: row `p0 + r < tile_rows`, columns inside `opad`.
                    unsafe { _mm512_storeu_ps(tp.add((p0 + r) * opad + k * L), *v) };
                }
            }
            p0 += R;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (f, x, wp, offs, bases, tile, o0);
        unreachable!("the direct path runs only on x86_64");
    }
}

/// Tap block `b` of the weight gradient over one group: for taps
/// `b·R..(b+1)·R` and every output channel, adds `Σ_{image, p}
/// x[off(t) + base(p)] · dyt[image, p, o]` onto `acc[t, o]`.
///
/// # Safety
/// AVX-512F must be available; `xs` holds `cnt` padded images of
/// `img_len`, `dyt` `cnt × P × opad`, and `acc` has `taps` rows of `opad`,
/// of which this block alone touches rows `b·RB..(b+1)·RB` (see
/// [`grad_weight_tile`]).
unsafe fn grad_weight_block(f: &Fwd, b: usize, xs: &[f32], img_len: usize, cnt: usize, dyt: &[f32], acc: SendPtr<f32>) {
    let opad = f.opad();
    let mut o0 = 0;
    while o0 < opad {
        let v = ((opad - o0) / L).min(MAX_V);
        // All channel blocks use the tap block size of the widest one, so
        // the blocks partition the taps the same way for every `o0`.
        // SAFETY: forwarded.
        unsafe {
            match v {
                1 => grad_weight_tile::<{ tile_r(1) }, 1>(f, b, xs, img_len, cnt, dyt, acc, o0),
                2 => grad_weight_tile::<{ tile_r(2) }, 2>(f, b, xs, img_len, cnt, dyt, acc, o0),
                3 => grad_weight_tile::<{ tile_r(3) }, 3>(f, b, xs, img_len, cnt, dyt, acc, o0),
                _ => grad_weight_tile::<{ tile_r(4) }, 4>(f, b, xs, img_len, cnt, dyt, acc, o0),
            }
        }
        o0 += v * L;
    }
}

/// One tile of [`grad_weight_block`]: taps `b·RB..` where `RB` is the
/// block size of the first channel block, `R` of them at a time.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn grad_weight_tile<const R: usize, const V: usize>(f: &Fwd, b: usize, xs: &[f32], img_len: usize, cnt: usize, dyt: &[f32], acc: SendPtr<f32>, o0: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let (p, opad, taps) = (f.p(), f.opad(), f.taps());
        let rb = tile_r((opad / L).min(MAX_V));
        let (t_lo, t_hi) = (b * rb, ((b + 1) * rb).min(taps));
        let mut t0 = t_lo;
        while t0 < t_hi {
            // Rows past the block repeat its last tap and are neither read
            // nor written back: they belong to another block.
            let rows = (t_hi - t0).min(R);
            let mut off = [0usize; R];
            for (r, o) in off.iter_mut().enumerate() {
                *o = tap_offset(f, (t0 + r).min(t_hi - 1));
            }
            let ap = acc.at(t0 * opad + o0);
            let mut sum = [[_mm512_setzero_ps(); V]; R];
            // SAFETY (whole block): the caller's contract; rows `t0 + r` for
            // `r < rows` are this block's rows of `acc`, reads inside `xs`/`dyt`.
            unsafe {
                for (r, s) in sum.iter_mut().enumerate().take(rows) {
                    for (k, v) in s.iter_mut().enumerate() {
                        *v = _mm512_loadu_ps(ap.add(r * opad + k * L));
                    }
                }
                for img in 0..cnt {
                    let x = xs.as_ptr().add(img * img_len);
                    let mut d = dyt.as_ptr().add(img * p * opad + o0);
                    for oy in 0..f.oh {
                        let xr = x.add(oy * f.stride[0] * f.pw);
                        for ox in 0..f.ow {
                            let xp = xr.add(ox * f.stride[1]);
                            let mut dv = [_mm512_setzero_ps(); V];
                            for (k, v) in dv.iter_mut().enumerate() {
                                *v = _mm512_loadu_ps(d.add(k * L));
                            }
                            for r in 0..R {
                                let s = _mm512_set1_ps(*xp.add(off[r]));
                                for k in 0..V {
                                    sum[r][k] = _mm512_fmadd_ps(s, dv[k], sum[r][k]);
                                }
                            }
                            d = d.add(opad);
                        }
                    }
                }
                for (r, s) in sum.iter().enumerate().take(rows) {
                    for (k, v) in s.iter().enumerate() {
                        _mm512_storeu_ps(ap.add(r * opad + k * L), *v);
                    }
                }
            }
            t0 += R;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (f, b, xs, img_len, cnt, dyt, acc, o0);
        unreachable!("the direct path runs only on x86_64");
    }
}
