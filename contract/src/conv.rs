//! `dl.conv2d` (NCHW input, OIHW weight, stride, padding, dilation) and its
//! two gradients, as im2col + gemm. On AVX-512 machines the f32 forward
//! pass and weight gradient of convolutions with many taps per output take
//! the direct kernels instead (`direct.rs`, which says where each path
//! wins), 3×3 stride-1 convolutions with at least 32 channels take
//! Winograd F(4×4, 3×3) for the forward pass and, where its tiles fit the
//! output, the input gradient (`winograd.rs`), and a 3×3 stride-1
//! convolution of a one-channel image takes its own kernel (`mono.rs`).
//!
//! Why im2col: it turns the convolution into one dense product
//! `W[O, C·KH·KW] · cols[C·KH·KW, OH·OW]` that runs at the kernel's speed,
//! and the copy costs `C·KH·KW·OH·OW` element moves against `2·O` times as
//! many FLOPs. Images are processed in *groups* of `G` side by side
//! (`cols[C·KH·KW, G·OH·OW]`) so that small late-layer feature maps (3×3
//! in the Keras CNN) still give the kernel a wide product; the grouped result
//! `[O, G·OH·OW]` is scattered back to NCHW through the epilogue, which is
//! where the bias and ReLU ride for free.
//!
//! The gradients reuse the same pieces: `dx = col2im(Wᵀ · dY)` and
//! `dW = Σ dY · im2col(x)ᵀ`. A 1×1, stride-1, unpadded conv needs no im2col
//! at all (the image *is* its column matrix) and skips the copy.
//!
//! All buffers come from a caller-provided scratch slice sized by the
//! `*_scratch_len` queries, so the hot path allocates nothing of its own.
//! Groups are fixed by the shapes alone and split statically over jobs, so
//! results are bit-identical run to run, and for the forward pass and the
//! input gradient also across thread counts (the weight gradient sums
//! per-job partials, so its rounding depends on the job count).

use crate::epilogue::Epilogue;
use crate::error::{ContractError, check_len};
use crate::kernel::{self, Operand, SendPtr};
use crate::matmul::View;
use crate::Element;
use crate::direct;
use crate::mono;
use crate::im2col::{col2im, col2im_positions, gather_positions, gather_wide, im2col, positions_apply};
use crate::winograd::{self, Wino};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Minimum number of columns (`G·OH·OW`) one grouped product should have:
/// below this the kernel's edge handling and per-call cost dominate.
/// Tunable for the benchmark only.
#[doc(hidden)]
pub static MIN_GROUP_COLS: AtomicUsize = AtomicUsize::new(512);

/// Largest column buffer a group may use, in bytes: about half of Zen 4's
/// 1 MiB L2, so the columns are still cached when the kernel reads them.
const MAX_GROUP_BYTES: usize = 512 * 1024;

/// Fewest images in a group for the input gradient's position-major
/// col2im: its runs are a group's images long, and short runs cost more
/// than they save (the Keras CNN's 13×13 layer, 3 images per group: 3.1 →
/// 6.7 ms; its 5×5 layer, 24 per group: 0.70 → 0.57 ms; batch 64, 1
/// thread).
const MIN_POSITION_GROUP: usize = 16;

/// `dl.conv2d`'s window attributes, each `[h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Step between output positions (≥ 1).
    pub stride: [usize; 2],
    /// Zero padding on each side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps (≥ 1).
    pub dilation: [usize; 2],
    /// Whether the Winograd path may serve it where it applies
    /// (`winograd.rs`): faster, with a larger rounding error than a direct
    /// sum's. dlc's CPU backend allows it for inference and keeps direct
    /// sums in a training step, whose trajectory should follow PyTorch's.
    pub winograd: bool,
}

impl Default for Conv2d {
    fn default() -> Self {
        Conv2d { stride: [1, 1], padding: [0, 0], dilation: [1, 1], winograd: true }
    }
}

impl Conv2d {
    /// The output shape `[N, O, OH, OW]` for input `x` `[N, C, H, W]` and
    /// weight `w` `[O, C, KH, KW]`.
    pub fn out_shape(&self, x: &[usize], w: &[usize]) -> Result<[usize; 4], ContractError> {
        let g = Geo::new(x, w, *self)?;
        Ok([g.n, g.o, g.oh, g.ow])
    }
}

/// The checked geometry of one convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub conv: Conv2d,
}

impl Geo {
    pub(crate) fn new(x: &[usize], w: &[usize], conv: Conv2d) -> Result<Geo, ContractError> {
        let (&[n, c, h, wd], &[o, wc, kh, kw]) = (x, w) else {
            return Err(ContractError::Shape(format!("conv2d takes input [N,C,H,W] and weight [O,C,KH,KW], got {x:?} and {w:?}")));
        };
        if wc != c {
            return Err(ContractError::Shape(format!("input has {c} channels, the weight expects {wc}")));
        }
        if conv.stride.contains(&0) || conv.dilation.contains(&0) || kh == 0 || kw == 0 {
            return Err(ContractError::Shape(format!("stride, dilation and kernel size must be >= 1, got {conv:?} and kernel {kh}x{kw}")));
        }
        let out = |d: usize, size: usize, k: usize| {
            let span = conv.dilation[d] * (k - 1) + 1;
            let padded = size + 2 * conv.padding[d];
            (padded >= span).then(|| (padded - span) / conv.stride[d] + 1)
        };
        let (Some(oh), Some(ow)) = (out(0, h, kh), out(1, wd, kw)) else {
            return Err(ContractError::Shape(format!("a {kh}x{kw} kernel (dilation {:?}) does not fit the {h}x{wd} input padded by {:?}", conv.dilation, conv.padding)));
        };
        Ok(Geo { n, c, h, w: wd, o, kh, kw, oh, ow, conv })
    }

    /// Output positions per image.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// Rows of the column matrix: one per (channel, tap).
    pub fn taps(&self) -> usize {
        self.c * self.kh * self.kw
    }
    pub fn x_img(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn y_img(&self) -> usize {
        self.o * self.p()
    }
    /// 1×1, stride 1, no padding: an image is its own column matrix.
    pub(crate) fn pointwise(&self) -> bool {
        let c = self.conv;
        self.kh == 1 && self.kw == 1 && c.stride == [1, 1] && c.padding == [0, 0]
    }
    /// Images per grouped product.
    fn group(&self, elem: usize) -> usize {
        let p = self.p().max(1);
        let want = MIN_GROUP_COLS.load(Ordering::Relaxed).div_ceil(p);
        let fit = MAX_GROUP_BYTES / (self.taps() * p * elem).max(1);
        want.min(fit).clamp(1, self.n.max(1))
    }
    /// Column-matrix elements for `g` images (none when the image is used directly).
    fn cols_len(&self, g: usize) -> usize {
        if g == 1 && self.pointwise() { 0 } else { self.taps() * g * self.p() }
    }
    /// `[O, G·P]` elements for a group of `g > 1` (none for one image,
    /// which is read or written in place).
    fn wide_len(&self, g: usize) -> usize {
        if g == 1 { 0 } else { self.o * g * self.p() }
    }
    /// The input gradient's position-major transpose buffer for a group
    /// of at least [`MIN_POSITION_GROUP`] images ([`col2im_positions`]);
    /// none otherwise.
    fn positions_len(&self, g: usize) -> usize {
        if g >= MIN_POSITION_GROUP && positions_apply(self) && self.cols_len(g) > 0 { g * self.x_img() } else { 0 }
    }
    /// (jobs, gemm threads per job) for `groups` groups on `threads` threads.
    fn split(&self, groups: usize, threads: usize) -> (usize, usize) {
        let threads = kernel::useful_threads(threads, self.n * self.o * self.p() * self.taps());
        if groups >= threads { (kernel::jobs(threads, groups), 1) } else { (1, threads) }
    }
}

/// Scratch layout of one job: consecutive regions of the lengths given.
fn carve<T>(scratch: SendPtr<T>, job: usize, per_job: usize, lens: [usize; 2]) -> (*mut T, *mut T) {
    let base = job * per_job;
    (scratch.at(base), scratch.at(base + lens[0]))
}

pub(crate) fn check_scratch(needed: usize, found: usize) -> Result<(), ContractError> {
    if found < needed { Err(ContractError::Scratch { needed, found }) } else { Ok(()) }
}

/// Whether [`conv2d_grad_weight`] of these shapes takes the direct kernels
/// on this machine, and so does [`conv2d`] unless it takes the Winograd
/// path ([`conv2d_is_winograd`]). For the tests and the benchmark.
#[doc(hidden)]
pub fn conv2d_is_direct<T: Element>(x: &[usize], w: &[usize], conv: Conv2d) -> Result<bool, ContractError> {
    Ok(direct::forward_applies::<T>(&Geo::new(x, w, conv)?))
}

/// Whether [`conv2d`] of these shapes takes the one-channel path
/// (`mono.rs`). For the tests and the benchmark.
#[doc(hidden)]
pub fn conv2d_is_mono<T: Element>(x: &[usize], w: &[usize], conv: Conv2d) -> Result<bool, ContractError> {
    Ok(mono::applies::<T>(&Geo::new(x, w, conv)?))
}

/// Whether [`conv2d`] of these shapes takes the Winograd path. For the
/// tests and the benchmark.
#[doc(hidden)]
pub fn conv2d_is_winograd<T: Element>(x: &[usize], w: &[usize], conv: Conv2d) -> Result<bool, ContractError> {
    Ok(winograd::forward_applies::<T>(&Geo::new(x, w, conv)?))
}

/// Whether [`conv2d_grad_input`] of these shapes takes the Winograd path.
/// For the tests and the benchmark.
#[doc(hidden)]
pub fn conv2d_grad_input_is_winograd<T: Element>(x: &[usize], w: &[usize], conv: Conv2d) -> Result<bool, ContractError> {
    Ok(winograd::grad_input_applies::<T>(&Geo::new(x, w, conv)?))
}

/// Scratch elements [`conv2d`] needs for these shapes and `threads`.
pub fn conv2d_scratch_len<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, threads: usize) -> Result<usize, ContractError> {
    let g = Geo::new(x, w, conv)?;
    let grp = g.group(size_of::<T>());
    let (jobs, _) = g.split(g.n.div_ceil(grp), threads);
    let mut need = jobs * (g.cols_len(grp) + g.wide_len(grp));
    // Every path's need, whichever this machine runs: the same plan on every CPU.
    if direct::suits::<T>(&g) {
        need = need.max(direct::conv2d_scratch(&g, threads));
    }
    if winograd::forward_suits::<T>(&g) {
        need = need.max(Wino::forward(&g).scratch(size_of::<T>(), threads));
    }
    if mono::suits::<T>(&g) {
        need = need.max(mono::scratch(&g, threads));
    }
    Ok(need)
}

/// `out = epilogue(conv2d(x, w))`: `x` `[N,C,H,W]`, `w` `[O,C,KH,KW]`,
/// `out` `[N,O,OH,OW]` (see [`Conv2d::out_shape`]); the bias has `O`
/// elements. `scratch` must hold at least [`conv2d_scratch_len`] elements.
pub fn conv2d<T: Element>(
    x: View<'_, T>,
    w: View<'_, T>,
    out: &mut [T],
    conv: Conv2d,
    epilogue: Epilogue<'_, T>,
    scratch: &mut [T],
    threads: usize,
) -> Result<(), ContractError> {
    x.check("x")?;
    w.check("w")?;
    let g = Geo::new(x.shape, w.shape, conv)?;
    check_len("out", g.n * g.y_img(), out.len())?;
    epilogue.check(g.o)?;
    if winograd::forward_applies::<T>(&g) {
        let p = Wino::forward(&g);
        check_scratch(p.scratch(size_of::<T>(), threads), scratch.len())?;
        winograd::run(&p, x.data, w.data, false, out, epilogue, false, scratch, threads);
        return Ok(());
    }
    if mono::applies::<T>(&g) {
        check_scratch(mono::scratch(&g, threads), scratch.len())?;
        mono::conv2d(&g, x.data, w.data, out, epilogue, scratch, threads);
        return Ok(());
    }
    if direct::forward_applies::<T>(&g) {
        check_scratch(direct::conv2d_scratch(&g, threads), scratch.len())?;
        direct::conv2d(&g, x.data, w.data, out, epilogue, scratch, threads);
        return Ok(());
    }
    let grp = g.group(size_of::<T>());
    let groups = g.n.div_ceil(grp);
    let (jobs, inner) = g.split(groups, threads);
    let lens = [g.cols_len(grp), g.wide_len(grp)];
    let per_job = lens[0] + lens[1];
    check_scratch(jobs * per_job, scratch.len())?;
    if out.is_empty() {
        return Ok(());
    }
    let (p, taps) = (g.p(), g.taps());
    let (out_p, scr) = (SendPtr(out.as_mut_ptr()), SendPtr(scratch.as_mut_ptr()));
    let w_op = Operand::row_major(w.data, taps, false);
    kernel::split(jobs, groups, |job, range| {
        let (cols, wide) = carve(scr, job, per_job, lens);
        for gi in range {
            let (n0, cnt) = (gi * grp, grp.min(g.n - gi * grp));
            let imgs = &x.data[n0 * g.x_img()..(n0 + cnt) * g.x_img()];
            // SAFETY: the scratch regions are this job's own, sized above;
            // each group writes only its own images of `out`.
            unsafe {
                let rhs = if lens[0] == 0 {
                    Operand::row_major(imgs, p, false)
                } else {
                    let cols = std::slice::from_raw_parts_mut(cols, taps * grp * p);
                    im2col(&g, imgs, cnt, cols, grp * p);
                    Operand { ptr: cols.as_ptr(), rs: (grp * p) as isize, cs: 1 }
                };
                let y = out_p.at(n0 * g.y_img());
                if grp == 1 {
                    kernel::gemm((g.o, p, taps), y, p, false, w_op, rhs, inner);
                    let y = std::slice::from_raw_parts_mut(y, g.y_img());
                    if !epilogue.is_identity() {
                        y.chunks_exact_mut(p.max(1)).enumerate().for_each(|(o, row)| epilogue.apply_channel(row, o));
                    }
                } else {
                    kernel::gemm((g.o, cnt * p, taps), wide, grp * p, false, w_op, rhs, inner);
                    let wide = std::slice::from_raw_parts(wide, g.o * grp * p);
                    let y = std::slice::from_raw_parts_mut(y, cnt * g.y_img());
                    for (i, img) in y.chunks_exact_mut(g.y_img()).enumerate() {
                        for (o, row) in img.chunks_exact_mut(p).enumerate() {
                            let src = &wide[o * grp * p + i * p..][..p];
                            epilogue.copy_channel(row, src, o);
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// Scratch elements [`conv2d_grad_input`] needs.
pub fn conv2d_grad_input_scratch_len<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, threads: usize) -> Result<usize, ContractError> {
    let g = Geo::new(x, w, conv)?;
    let grp = g.group(size_of::<T>());
    let (jobs, _) = g.split(g.n.div_ceil(grp), threads);
    let im2col = jobs * (g.wide_len(grp) + g.cols_len(grp) + g.positions_len(grp));
    // As in `conv2d_scratch_len`: every path's need.
    Ok(if winograd::grad_input_suits::<T>(&g) { im2col.max(Wino::grad_input(&g).scratch(size_of::<T>(), threads)) } else { im2col })
}

/// The gradient of [`conv2d`] with respect to its input: given `dy`
/// `[N,O,OH,OW]` and the weight `w`, writes `dx` of shape `x_shape`
/// (`[N,C,H,W]`; needed because a stride loses the input size) as
/// `col2im(Wᵀ · dY)`. `scratch` must hold [`conv2d_grad_input_scratch_len`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_grad_input<T: Element>(
    dy: View<'_, T>,
    w: View<'_, T>,
    dx: &mut [T],
    x_shape: &[usize],
    conv: Conv2d,
    scratch: &mut [T],
    threads: usize,
) -> Result<(), ContractError> {
    dy.check("dy")?;
    w.check("w")?;
    let g = Geo::new(x_shape, w.shape, conv)?;
    check_dy(&g, dy.shape)?;
    check_len("dx", g.n * g.x_img(), dx.len())?;
    if winograd::grad_input_applies::<T>(&g) {
        let p = Wino::grad_input(&g);
        check_scratch(p.scratch(size_of::<T>(), threads), scratch.len())?;
        winograd::run(&p, dy.data, w.data, true, dx, Epilogue::NONE, false, scratch, threads);
        return Ok(());
    }
    let grp = g.group(size_of::<T>());
    let groups = g.n.div_ceil(grp);
    let (jobs, inner) = g.split(groups, threads);
    let lens = [g.wide_len(grp), g.cols_len(grp)];
    // Narrow output rows: the group's columns position-major, and col2im
    // over all its images at once through a transpose (`im2col.rs`).
    let positions = g.positions_len(grp);
    let per_job = lens[0] + lens[1] + positions;
    check_scratch(jobs * per_job, scratch.len())?;
    if dx.is_empty() {
        return Ok(());
    }
    let (p, taps) = (g.p(), g.taps());
    let (dx_p, scr) = (SendPtr(dx.as_mut_ptr()), SendPtr(scratch.as_mut_ptr()));
    let wt = Operand::row_major(w.data, taps, true);
    kernel::split(jobs, groups, |job, range| {
        let (wide, cols) = carve(scr, job, per_job, lens);
        let tmp = scr.at(job * per_job + lens[0] + lens[1]);
        for gi in range {
            let (n0, cnt) = (gi * grp, grp.min(g.n - gi * grp));
            let dys = &dy.data[n0 * g.y_img()..(n0 + cnt) * g.y_img()];
            // SAFETY: as in `conv2d`: own scratch, own images of `dx`.
            unsafe {
                let rhs = if grp == 1 {
                    Operand::row_major(dys, p, false)
                } else {
                    let wide = std::slice::from_raw_parts_mut(wide, g.o * grp * p);
                    if positions > 0 {
                        gather_positions(&g, dys, cnt, wide, grp * p);
                    } else {
                        gather_wide(&g, dys, cnt, wide, grp * p);
                    }
                    Operand { ptr: wide.as_ptr(), rs: (grp * p) as isize, cs: 1 }
                };
                let imgs = std::slice::from_raw_parts_mut(dx_p.at(n0 * g.x_img()), cnt * g.x_img());
                if lens[1] == 0 {
                    kernel::gemm((taps, p, g.o), imgs.as_mut_ptr(), p, false, wt, rhs, inner);
                } else {
                    kernel::gemm((taps, cnt * p, g.o), cols, grp * p, false, wt, rhs, inner);
                    let cols = std::slice::from_raw_parts(cols, taps * grp * p);
                    if positions > 0 {
                        let tmp = std::slice::from_raw_parts_mut(tmp, positions);
                        col2im_positions(&g, cols, cnt, imgs, grp * p, tmp);
                    } else {
                        imgs.fill(T::ZERO);
                        col2im(&g, cols, cnt, imgs, grp * p);
                    }
                }
            }
        }
    });
    Ok(())
}

/// Scratch elements [`conv2d_grad_weight`] needs.
pub fn conv2d_grad_weight_scratch_len<T: Element>(x: &[usize], w: &[usize], conv: Conv2d, threads: usize) -> Result<usize, ContractError> {
    let g = Geo::new(x, w, conv)?;
    let grp = g.group(size_of::<T>());
    let (jobs, _) = g.split(g.n.div_ceil(grp), threads);
    let im2col = jobs * (g.cols_len(grp) + g.wide_len(grp)) + (jobs - 1) * g.o * g.taps();
    // As in `conv2d_scratch_len`: every path's need.
    let mut need = im2col;
    if direct::suits::<T>(&g) {
        need = need.max(direct::grad_weight_scratch(&g));
    }
    if mono::suits::<T>(&g) {
        need = need.max(mono::grad_weight_scratch(&g));
    }
    Ok(need)
}

/// The gradient of [`conv2d`] with respect to its weight: given the input
/// `x` and `dy` `[N,O,OH,OW]`, writes `dw` of shape `w_shape`
/// (`[O,C,KH,KW]`) as `Σ_images dY · im2col(x)ᵀ`. `scratch` must hold
/// [`conv2d_grad_weight_scratch_len`]. With several jobs each sums its own
/// images into a partial `dW`, and the partials are added in job order.
pub fn conv2d_grad_weight<T: Element>(
    x: View<'_, T>,
    dy: View<'_, T>,
    dw: &mut [T],
    w_shape: &[usize],
    conv: Conv2d,
    scratch: &mut [T],
    threads: usize,
) -> Result<(), ContractError> {
    x.check("x")?;
    dy.check("dy")?;
    let g = Geo::new(x.shape, w_shape, conv)?;
    check_dy(&g, dy.shape)?;
    let (p, taps) = (g.p(), g.taps());
    check_len("dw", g.o * taps, dw.len())?;
    if mono::applies::<T>(&g) {
        check_scratch(mono::grad_weight_scratch(&g), scratch.len())?;
        mono::conv2d_grad_weight(&g, x.data, dy.data, dw, scratch, threads);
        return Ok(());
    }
    if direct::grad_weight_applies::<T>(&g) {
        check_scratch(direct::grad_weight_scratch(&g), scratch.len())?;
        direct::conv2d_grad_weight(&g, x.data, dy.data, dw, scratch, threads);
        return Ok(());
    }
    let grp = g.group(size_of::<T>());
    let groups = g.n.div_ceil(grp);
    let (jobs, inner) = g.split(groups, threads);
    let lens = [g.cols_len(grp), g.wide_len(grp)];
    let per_job = lens[0] + lens[1];
    check_scratch(jobs * per_job + (jobs - 1) * g.o * taps, scratch.len())?;
    if g.n * p == 0 {
        dw.fill(T::ZERO);
        return Ok(());
    }
    let (dw_p, scr) = (SendPtr(dw.as_mut_ptr()), SendPtr(scratch.as_mut_ptr()));
    kernel::split(jobs, groups, |job, range| {
        let (cols, wide) = carve(scr, job, per_job, lens);
        // Job 0 sums into `dw` itself, the others into partials after the
        // per-job regions.
        let acc = if job == 0 { dw_p.at(0) } else { scr.at(jobs * per_job + (job - 1) * g.o * taps) };
        for (i, gi) in range.clone().enumerate() {
            let (n0, cnt) = (gi * grp, grp.min(g.n - gi * grp));
            let xs = &x.data[n0 * g.x_img()..(n0 + cnt) * g.x_img()];
            let dys = &dy.data[n0 * g.y_img()..(n0 + cnt) * g.y_img()];
            // SAFETY: own scratch regions and own accumulator.
            unsafe {
                let (cols_op, dy_op) = if grp == 1 {
                    let c = if lens[0] == 0 {
                        Operand::row_major(xs, p, true)
                    } else {
                        let cols = std::slice::from_raw_parts_mut(cols, taps * p);
                        im2col(&g, xs, 1, cols, p);
                        Operand::row_major(cols, p, true)
                    };
                    (c, Operand::row_major(dys, p, false))
                } else {
                    let cols = std::slice::from_raw_parts_mut(cols, taps * grp * p);
                    im2col(&g, xs, cnt, cols, grp * p);
                    let wide = std::slice::from_raw_parts_mut(wide, g.o * grp * p);
                    gather_wide(&g, dys, cnt, wide, grp * p);
                    (Operand::row_major(cols, grp * p, true), Operand::row_major(wide, grp * p, false))
                };
                kernel::gemm((g.o, taps, cnt * p), acc, taps, i > 0, dy_op, cols_op, inner);
            }
        }
    });
    for j in 1..jobs {
        let part = &scratch[jobs * per_job + (j - 1) * g.o * taps..][..g.o * taps];
        dw.iter_mut().zip(part).for_each(|(d, &s)| *d = *d + s);
    }
    Ok(())
}

fn check_dy(g: &Geo, dy: &[usize]) -> Result<(), ContractError> {
    if dy != [g.n, g.o, g.oh, g.ow] {
        return Err(ContractError::Shape(format!("dy has shape {dy:?}, the convolution gives [{}, {}, {}, {}]", g.n, g.o, g.oh, g.ow)));
    }
    Ok(())
}
