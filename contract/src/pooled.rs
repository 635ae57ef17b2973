//! A convolution max-pooled before it is written: `kernel.conv2d` with
//! `max_pool` (a CNN's conv → bias → ReLU → max-pool at inference).
//!
//! Why: a CNN's first layer writes a large activation (the Keras CNN's
//! 26×26×32 per image, 5.5 MB at batch 64) that a max-pool reads back
//! once and shrinks 4×. Here the images are convolved a chunk at a time
//! into a buffer sized to stay in L2 ([`CHUNK_BYTES`]), by
//! [`crate::conv2d`] itself (whichever path it takes), and pooled from
//! there; only the pooled result reaches memory.
//!
//! Two paths skip the chunks for a 2×2, stride-2 window: a one-channel 3×3
//! convolution (`mono.rs` pools each pair of output rows in registers),
//! and one on the Winograd path, whose output transform pools each of its
//! even-sized tiles as it leaves the registers (`winograd::run`'s `pool`).
//!
//! Measured (`cargo bench -p dlc-contract --bench contract -- pooled`,
//! batch 64, 1 thread, Zen 4): the first layer 0.51 ms pooled in registers
//! against 0.44 ms for its convolution alone (whose 5.5 MB output a
//! separate pooling kernel then read in about 0.35 ms), and 0.79–0.88 ms
//! through the chunks; the 13×13 layer 1.64 ms pooled in the Winograd
//! tiles against 1.86 ms for the convolution alone in the same run (through
//! the chunks it had been 1.88–2.25 against 1.66–2.00 ms: each chunk
//! repeated the weight transform).
//!
//! Chunks are fixed by the shapes and each is convolved by one job, so the
//! result is the same run to run and at any thread count. Max-pooling
//! follows the interpreter's `dl.max_pool2d`: padding is `-inf`, a window
//! holding a NaN pools to NaN, otherwise to its maximum.

use crate::conv::{Conv2d, conv2d, conv2d_scratch_len};
use crate::epilogue::Epilogue;
use crate::error::{ContractError, check_len};
use crate::kernel::{self, SendPtr};
use crate::matmul::View;
use crate::Element;
use crate::winograd::{self, Wino};

/// The convolution output of one chunk of images stays within this many
/// bytes: half of Zen 4's 1 MiB L2, so the pooling reads it from cache.
const CHUNK_BYTES: usize = 512 * 1024;

/// A max-pooling window, as `dl.max_pool2d`'s attributes (each `[h, w]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size (≥ 1).
    pub kernel: [usize; 2],
    /// Step between windows (≥ 1).
    pub stride: [usize; 2],
    /// `-inf` padding on each side (at most half the window).
    pub padding: [usize; 2],
}

impl MaxPool2d {
    /// The pooled size of a `[h, w]` plane.
    pub(crate) fn out(&self, h: usize, w: usize) -> Result<[usize; 2], ContractError> {
        let dim = |d: usize, size: usize| {
            let padded = size + 2 * self.padding[d];
            (self.kernel[d] >= 1 && self.stride[d] >= 1 && 2 * self.padding[d] <= self.kernel[d] && padded >= self.kernel[d]).then(|| (padded - self.kernel[d]) / self.stride[d] + 1)
        };
        match (dim(0, h), dim(1, w)) {
            (Some(a), Some(b)) => Ok([a, b]),
            _ => Err(ContractError::Shape(format!("the max-pool window {self:?} does not fit a {h}x{w} plane"))),
        }
    }
}

/// The geometry: images per chunk, the convolution's output shape, the
/// pooled shape.
struct Geo {
    chunk: usize,
    y: [usize; 4],
    pooled: [usize; 4],
    /// The convolution's own geometry.
    geo: crate::conv::Geo,
}

fn geo<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<Geo, ContractError> {
    let y = conv.out_shape(x, w)?;
    let [ph, pw] = pool.out(y[2], y[3])?;
    let img_bytes = (y[1] * y[2] * y[3] * size_of::<T>()).max(1);
    let chunk = (CHUNK_BYTES / img_bytes).clamp(1, y[0].max(1));
    Ok(Geo { chunk, y, pooled: [y[0], y[1], ph, pw], geo: crate::conv::Geo::new(x, w, conv)? })
}

/// Whether [`conv2d_max_pool`] of these shapes pools in the one-channel
/// kernel's registers (`mono.rs`) on this machine. For the tests.
#[doc(hidden)]
pub fn conv2d_max_pool_is_mono<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<bool, ContractError> {
    Ok(crate::mono::pooled_applies::<T>(&geo::<T>(x, w, conv, pool)?.geo, &pool))
}

/// The pooled output shape `[N, O, PH, PW]`.
pub fn conv2d_max_pool_shape(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<[usize; 4], ContractError> {
    Ok(geo::<f32>(x, w, conv, pool)?.pooled)
}

/// Scratch elements [`conv2d_max_pool`] needs for these shapes and `threads`.
pub fn conv2d_max_pool_scratch_len<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d, threads: usize) -> Result<usize, ContractError> {
    let g = geo::<T>(x, w, conv, pool)?;
    let jobs = threads.clamp(1, g.y[0].div_ceil(g.chunk).max(1));
    let chunks = jobs * per_job::<T>(&g, x, w, conv)?;
    // Every path's need, as in `conv2d_scratch_len`: the same on every machine.
    let wino = if winograd_suits::<T>(&g.geo, &pool) { Wino::forward(&g.geo).scratch(size_of::<T>(), threads) } else { 0 };
    Ok(chunks.max(crate::mono::scratch(&g.geo, threads)).max(wino))
}

/// Whether the Winograd path can pool its output tiles itself, on any
/// machine: a forward pass it suits, and 2×2 windows at stride 2 without
/// padding (which never straddle its even-sized tiles).
fn winograd_suits<T: 'static>(g: &crate::conv::Geo, pool: &MaxPool2d) -> bool {
    pool.kernel == [2, 2] && pool.stride == [2, 2] && pool.padding == [0, 0] && winograd::forward_suits::<T>(g)
}

/// Whether [`conv2d_max_pool`] of these shapes pools inside the Winograd
/// output transform here. For the tests and the benchmark.
#[doc(hidden)]
pub fn conv2d_max_pool_is_winograd<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<bool, ContractError> {
    let g = geo::<T>(x, w, conv, pool)?;
    Ok(winograd_suits::<T>(&g.geo, &pool) && winograd::forward_applies::<T>(&g.geo))
}

/// One job's scratch: a chunk's convolution output, then the scratch of
/// the chunk's convolution.
fn per_job<T: Element>(g: &Geo, x: &[usize], w: &[usize], conv: Conv2d) -> Result<usize, ContractError> {
    let chunk_x = [g.chunk, x[1], x[2], x[3]];
    Ok(g.chunk * g.y[1] * g.y[2] * g.y[3] + conv2d_scratch_len::<T>(&chunk_x, w, conv, 1)?)
}

/// Whether [`conv2d_max_pool_grad_weight`] serves these shapes and window
/// on this machine: f32, a one-channel 3×3 convolution at stride and
/// dilation 1, a 2×2 stride-2 unpadded window that tiles the convolution's
/// output exactly (even height and width), on AVX-512. Elsewhere the caller
/// runs the convolution, the pooling gradient and the weight gradient one
/// after another.
pub fn conv2d_max_pool_grad_weight_applies<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<bool, ContractError> {
    Ok(crate::mono::pooled_grad_applies::<T>(&geo::<T>(x, w, conv, pool)?.geo, &pool))
}

/// Scratch elements [`conv2d_max_pool_grad_weight`] needs.
pub fn conv2d_max_pool_grad_weight_scratch_len<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: MaxPool2d) -> Result<usize, ContractError> {
    Ok(crate::mono::grad_weight_scratch(&geo::<T>(x, w, conv, pool)?.geo))
}

/// The weight gradient of a max-pooled convolution from the pooled
/// output's gradient `g`, with the convolution recomputed rather than read
/// back: `dw = conv2d_grad_weight(x, dy)` where `dy` routes each window's
/// `g` to the window's argmax in `y = conv2d(x, w) + bias` (by
/// `dl.max_pool2d_grad`'s rule), and with `relu` keeps it only where `y >
/// 0` there. Only where [`conv2d_max_pool_grad_weight_applies`] (an error
/// otherwise); the result is the same bits as [`conv2d`],
/// `max_pool2d_grad` and [`conv2d_grad_weight`] on their AVX-512 paths.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_max_pool_grad_weight<T: Element>(
    x: View<'_, T>,
    w: View<'_, T>,
    bias: Option<&[T]>,
    relu: bool,
    g: View<'_, T>,
    dw: &mut [T],
    conv: Conv2d,
    pool: MaxPool2d,
    scratch: &mut [T],
    threads: usize,
) -> Result<(), ContractError> {
    x.check("x")?;
    w.check("w")?;
    g.check("g")?;
    let geo = geo::<T>(x.shape, w.shape, conv, pool)?;
    if !crate::mono::pooled_grad_applies::<T>(&geo.geo, &pool) {
        return Err(ContractError::Shape(format!("the recomputing pooled weight gradient serves one-channel 3x3 f32 convolutions pooled 2x2 on AVX-512 only, got input {:?}, weight {:?}, {pool:?}", x.shape, w.shape)));
    }
    if g.shape != geo.pooled {
        return Err(ContractError::Shape(format!("the pooled gradient is {:?}, the pooled output {:?}", g.shape, geo.pooled)));
    }
    check_len("dw", w.data.len(), dw.len())?;
    Epilogue { bias, relu: false }.check(geo.y[1])?;
    crate::conv::check_scratch(crate::mono::grad_weight_scratch(&geo.geo), scratch.len())?;
    crate::mono::conv2d_pooled_grad_weight(&geo.geo, x.data, w.data, bias, relu, g.data, dw, scratch, threads);
    Ok(())
}

/// `out = max_pool2d(epilogue(conv2d(x, w)))`: `out` has the pooled shape
/// ([`conv2d_max_pool_shape`]); `scratch` holds at least
/// [`conv2d_max_pool_scratch_len`] elements.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_max_pool<T: Element>(
    x: View<'_, T>,
    w: View<'_, T>,
    out: &mut [T],
    conv: Conv2d,
    epilogue: Epilogue<'_, T>,
    pool: MaxPool2d,
    scratch: &mut [T],
    threads: usize,
) -> Result<(), ContractError> {
    x.check("x")?;
    w.check("w")?;
    if x.shape.len() != 4 {
        return Err(ContractError::Shape(format!("conv2d takes input [N,C,H,W], got {:?}", x.shape)));
    }
    let g = geo::<T>(x.shape, w.shape, conv, pool)?;
    let [n, o, oh, ow] = g.y;
    let [_, _, ph, pw] = g.pooled;
    check_len("out", n * o * ph * pw, out.len())?;
    epilogue.check(o)?;
    if crate::mono::pooled_applies::<T>(&g.geo, &pool) {
        let need = crate::mono::scratch(&g.geo, threads);
        if scratch.len() < need {
            return Err(ContractError::Shape(format!("scratch holds {} elements, {} needed", scratch.len(), need)));
        }
        crate::mono::conv2d_pooled(&g.geo, x.data, w.data, out, epilogue, scratch, threads);
        return Ok(());
    }
    if winograd_suits::<T>(&g.geo, &pool) && winograd::forward_applies::<T>(&g.geo) {
        let p = Wino::forward(&g.geo);
        let need = p.scratch(size_of::<T>(), threads);
        if scratch.len() < need {
            return Err(ContractError::Shape(format!("scratch holds {} elements, {} needed", scratch.len(), need)));
        }
        winograd::run(&p, x.data, w.data, false, out, epilogue, true, scratch, threads);
        return Ok(());
    }
    let chunks = n.div_ceil(g.chunk);
    let jobs = threads.clamp(1, chunks.max(1));
    let per_job = per_job::<T>(&g, x.shape, w.shape, conv)?;
    if scratch.len() < jobs * per_job {
        return Err(ContractError::Shape(format!("scratch holds {} elements, {} needed", scratch.len(), jobs * per_job)));
    }
    if out.is_empty() {
        return Ok(());
    }
    let x_img = x.shape[1] * x.shape[2] * x.shape[3];
    let (y_img, p_img) = (o * oh * ow, o * ph * pw);
    let (out_p, scr) = (SendPtr(out.as_mut_ptr()), SendPtr(scratch.as_mut_ptr()));
    let failed = std::sync::Mutex::new(None);
    kernel::split(jobs, chunks, |job, range| {
        // SAFETY: each job owns its `per_job` elements of the scratch and
        // writes only the pooled images of its own chunks.
        let mine = unsafe { std::slice::from_raw_parts_mut(scr.at(job * per_job), per_job) };
        let (ybuf, inner) = mine.split_at_mut(g.chunk * y_img);
        for c in range {
            let (n0, cnt) = (c * g.chunk, g.chunk.min(n - c * g.chunk));
            let shape = [cnt, x.shape[1], x.shape[2], x.shape[3]];
            let xs = View::new(&x.data[n0 * x_img..(n0 + cnt) * x_img], &shape);
            let y = &mut ybuf[..cnt * y_img];
            if let Err(e) = conv2d(xs, w, y, conv, epilogue, inner, 1) {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
            // SAFETY: chunk `c`'s pooled images, this job's alone.
            let dst = unsafe { std::slice::from_raw_parts_mut(out_p.at(n0 * p_img), cnt * p_img) };
            for (plane, pooled) in y.chunks_exact(oh * ow).zip(dst.chunks_exact_mut(ph * pw)) {
                max_pool_plane(plane, [oh, ow], pooled, [ph, pw], pool);
            }
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Max-pools one `[h, w]` plane into `[ph, pw]` (see the module docs for
/// NaN and padding). Branch-free (a compare and a select per tap) and
/// without bounds checks in the inner loops, so the compiler vectorizes
/// them; a data-dependent branch per tap mispredicted half the time and
/// made the pass several times slower than the convolution it follows.
/// Taps are visited row by row, each row's columns in order, as the
/// interpreter visits the window, so ties (±0) resolve alike.
fn max_pool_plane<T: Element>(src: &[T], [h, w]: [usize; 2], dst: &mut [T], [ph, pw]: [usize; 2], pool: MaxPool2d) {
    let [kh, kw] = pool.kernel;
    let [sh, sw] = pool.stride;
    let [pt, pl] = pool.padding;
    if pool.kernel == [2, 2] && pool.stride == [2, 2] && pool.padding == [0, 0] {
        // The common window: two rows, pairs of columns.
        for (i, out) in dst.chunks_exact_mut(pw).take(ph).enumerate() {
            let (r0, r1) = (&src[2 * i * w..][..2 * pw], &src[(2 * i + 1) * w..][..2 * pw]);
            for ((o, a), b) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                *o = pick(pick(pick(a[0], a[1]), b[0]), b[1]);
            }
        }
        return;
    }
    for (i, out) in dst.chunks_exact_mut(pw).take(ph).enumerate() {
        out.fill(T::NEG_INFINITY);
        let rows = (i * sh).saturating_sub(pt)..(i * sh + kh).saturating_sub(pt).min(h);
        for r in rows {
            let row = &src[r * w..(r + 1) * w];
            for kj in 0..kw {
                // Output j reads column j·sw + kj - pl, where that is inside.
                let first = pl.saturating_sub(kj).div_ceil(sw);
                let last = if w + pl > kj { ((w + pl - kj - 1) / sw + 1).min(pw) } else { 0 };
                if first >= last {
                    continue;
                }
                let cols = row[first * sw + kj - pl..].iter().step_by(sw);
                for (m, &v) in out[first..last].iter_mut().zip(cols) {
                    *m = pick(*m, v);
                }
            }
        }
    }
}

/// The running maximum `m` after tap `v`: `v` when it is greater or NaN
/// (so a NaN, once taken, stays), else `m`.
#[inline(always)]
#[allow(clippy::eq_op)]
fn pick<T: Element>(m: T, v: T) -> T {
    if v > m || v != v { v } else { m }
}
