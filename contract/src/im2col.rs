//! im2col and its adjoint col2im: the copies that turn a convolution into
//! one dense product.
//!
//! The column matrix is `[C·KH·KW, ld]` row-major: row `(c, i, j)` holds,
//! for each image of a group side by side (`OH·OW` columns each), the input
//! element that kernel tap `(i, j)` of channel `c` reads at every output
//! position, or zero where it reads padding.
//!
//! Speed matters more than it seems: the Keras CNN's maps are small (26×26
//! down to 3×3), so a plane is a few short rows and per-row overhead, not
//! bandwidth, set the cost. Hence whole planes per step, valid ranges (which
//! cost divisions) computed once per tap, the image as the inner loop (the
//! column matrix is written front to back), and short rows copied by fixed
//! moves instead of `memcpy` calls. Together these took the forward pass of
//! the CNN's 3×3 layer (64×5×5 input, batch 64) from 33 to 58 GFLOP/s on one
//! thread, against a row-at-a-time im2col.

use crate::Element;
use crate::conv::Geo;

/// The output positions `[lo, hi)` along one axis whose tap at offset
/// `off = k·dilation` lands inside an input of `size` (the rest read padding).
fn valid(out: usize, size: usize, off: usize, pad: usize, stride: usize) -> (usize, usize) {
    // ix = o·stride + off - pad must satisfy 0 <= ix < size.
    let lo = pad.saturating_sub(off).div_ceil(stride);
    let hi = (size + pad).saturating_sub(off).div_ceil(stride);
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// One (channel, tap, image) plane: where its `OH·OW` segment of the column
/// matrix starts, the input element that output position (`rows.0`,
/// `cols.0`) reads, and the output rows and columns whose taps land inside
/// the input.
#[derive(Clone, Copy)]
struct Plane {
    col: usize,
    input: usize,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Plane {
    /// True when every tap of the plane reads padding.
    fn empty(&self) -> bool {
        self.rows.0 >= self.rows.1 || self.cols.0 >= self.cols.1
    }
}

/// Walks every plane of a group of `cnt` images, channel and tap outer,
/// image inner.
#[inline(always)]
fn for_each_plane(g: &Geo, cnt: usize, ld: usize, mut f: impl FnMut(Plane)) {
    let [sh, sw] = g.conv.stride;
    let [ph, pw] = g.conv.padding;
    let [dh, dw] = g.conv.dilation;
    let (p, x_img, hw) = (g.p(), g.x_img(), g.h * g.w);
    for c in 0..g.c {
        for i in 0..g.kh {
            let rows = valid(g.oh, g.h, i * dh, ph, sh);
            for j in 0..g.kw {
                let cols = valid(g.ow, g.w, j * dw, pw, sw);
                // Non-negative whenever both ranges are non-empty.
                let first = if rows.0 < rows.1 && cols.0 < cols.1 {
                    (rows.0 * sh + i * dh - ph) * g.w + cols.0 * sw + j * dw - pw
                } else {
                    0
                };
                let row = (c * g.kh + i) * g.kw + j;
                for img in 0..cnt {
                    f(Plane { col: row * ld + img * p, input: img * x_img + c * hw + first, rows, cols });
                }
            }
        }
    }
}

/// Copies the input windows of `cnt` images into `cols` (`[taps, ld]`
/// row-major; image `i` at columns `i·P..`), zeros for padding.
pub(crate) fn im2col<T: Element>(g: &Geo, x: &[T], cnt: usize, cols: &mut [T], ld: usize) {
    let (ow, oh, p) = (g.ow, g.oh, g.p());
    let ([sh, sw], w) = (g.conv.stride, g.w);
    for_each_plane(g, cnt, ld, |pl| {
        let plane = &mut cols[pl.col..pl.col + p];
        if pl.empty() {
            plane.fill(T::ZERO);
            return;
        }
        let ((ylo, yhi), (lo, hi)) = (pl.rows, pl.cols);
        if ylo > 0 {
            plane[..ylo * ow].fill(T::ZERO);
        }
        if yhi < oh {
            plane[yhi * ow..].fill(T::ZERO);
        }
        if lo > 0 || hi < ow {
            for oy in ylo..yhi {
                plane[oy * ow..oy * ow + lo].fill(T::ZERO);
                plane[oy * ow + hi..(oy + 1) * ow].fill(T::ZERO);
            }
        }
        let (rows, n) = (yhi - ylo, hi - lo);
        let dst = &mut plane[ylo * ow + lo..];
        if sw == 1 {
            copy_rows(dst, ow, &x[pl.input..], sh * w, rows, n);
        } else {
            for r in 0..rows {
                let s = pl.input + r * sh * w;
                dst[r * ow..r * ow + n].iter_mut().enumerate().for_each(|(t, d)| *d = x[s + t * sw]);
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds each column-matrix entry back onto the
/// input position it was copied from (`dx` must start zeroed).
///
/// Each element's taps are added in tap order onto zero. The walk below
/// adds each tap's rows onto the planes in turn, so every add of an element
/// waits on its previous store: on the Keras CNN's 5×5 layer that was half
/// of the input gradient's time. For f32 at unit stride and dilation on
/// AVX-512, `avx512::col2im` instead sums 16 elements of an input row per
/// vector, eight rows side by side, the same taps in the same order, and
/// stores them once: the Keras CNN's 13×13 layer's input gradient ran
/// 3.34–3.72 ms against 3.75–4.41 ms (alternating runs, batch 64, 1
/// thread); the 5×5 layer's, whose rows are 5 wide, about the same.
pub(crate) fn col2im<T: Element>(g: &Geo, cols: &[T], cnt: usize, dx: &mut [T], ld: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::direct::is_f32::<T>() && g.conv.stride == [1, 1] && g.conv.dilation == [1, 1] && std::arch::is_x86_feature_detected!("avx512f") {
        assert!(cols.len() >= g.c * g.kh * g.kw * ld && ld >= cnt * g.p() && dx.len() >= cnt * g.x_img(), "col2im: buffer sizes");
        // SAFETY: AVX-512F was detected; T is f32; the sizes were checked.
        unsafe { avx512::col2im(g, crate::direct::f32s(cols), cnt, crate::direct::f32s_mut(dx), ld) };
        return;
    }
    col2im_walk(g, cols, cnt, dx, ld);
}

/// [`col2im`] plane by plane: each tap's rows added onto the input.
fn col2im_walk<T: Element>(g: &Geo, cols: &[T], cnt: usize, dx: &mut [T], ld: usize) {
    let (ow, p) = (g.ow, g.p());
    let ([sh, sw], w) = (g.conv.stride, g.w);
    for_each_plane(g, cnt, ld, |pl| {
        if pl.empty() {
            return;
        }
        let ((ylo, yhi), (lo, hi)) = (pl.rows, pl.cols);
        let plane = &cols[pl.col..pl.col + p];
        let n = hi - lo;
        if sw == 1 {
            add_rows(&mut dx[pl.input..], sh * w, &plane[ylo * ow + lo..], ow, yhi - ylo, n);
            return;
        }
        for (r, oy) in (ylo..yhi).enumerate() {
            let seg = &plane[oy * ow + lo..oy * ow + hi];
            let d = pl.input + r * sh * w;
            seg.iter().enumerate().for_each(|(t, &v)| dx[d + t * sw] = dx[d + t * sw] + v);
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::conv::Geo;
    use std::arch::x86_64::*;

    /// Lanes per vector.
    const L: usize = 16;

    /// Input rows summed side by side.
    const R: usize = 8;

    /// [`super::col2im`] at unit stride and dilation: input element `(y,
    /// x)` of a plane gathers tap `(i, j)` from output position `(y + ph -
    /// i, x + pw - j)` where that lies inside the output, taps in row-major
    /// order from zero; a lane whose tap falls outside adds a masked-off
    /// `+0`, which changes no sum (one that starts at `+0` never becomes
    /// `-0`), so the bits are the walk's.
    ///
    /// # Safety
    /// AVX-512F must be available; `cols` holds `C·KH·KW` rows of `ld ≥
    /// cnt·P`, `dx` `cnt` input images.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn col2im(g: &Geo, cols: &[f32], cnt: usize, dx: &mut [f32], ld: usize) {
        let (oh, ow, p, h, w, kh, kw) = (g.oh as isize, g.ow as isize, g.p(), g.h, g.w, g.kh, g.kw);
        let [ph, pw] = g.conv.padding.map(|v| v as isize);
        let (x_img, hw) = (g.x_img(), h * w);
        let (cp, dp) = (cols.as_ptr(), dx.as_mut_ptr());
        // Per block of 16 input columns and tap column j: the lanes whose
        // output column x + pw - j lies inside the output.
        let masks: Vec<Vec<__mmask16>> = (0..w)
            .step_by(L)
            .map(|x0| {
                (0..kw as isize)
                    .map(|j| {
                        (0..L.min(w - x0)).filter(|&l| (0..ow).contains(&(x0 as isize + l as isize + pw - j))).fold(0, |m, l| m | (1 << l))
                    })
                    .collect()
            })
            .collect();
        for c in 0..g.c {
            for img in 0..cnt {
                let base = (c * kh * kw * ld + img * p) as isize;
                let plane = img * x_img + c * hw;
                for (x0, masks) in (0..w).step_by(L).zip(&masks) {
                    let n = L.min(w - x0);
                    let m_out = ((1u32 << n) - 1) as __mmask16;
                    // R rows at a time: their sums are independent chains.
                    for y0 in (0..h).step_by(R) {
                        let rows = R.min(h - y0);
                        let mut acc = [_mm512_setzero_ps(); R];
                        for i in 0..kh as isize {
                            for (j, &m) in masks.iter().enumerate() {
                                // Lane l reads output column x0 + l + pw - j.
                                let first = x0 as isize + pw - j as isize;
                                let tap = base + ((i as usize * kw + j) * ld) as isize + first;
                                for (r, a) in acc.iter_mut().enumerate().take(rows) {
                                    let oy = (y0 + r) as isize + ph - i;
                                    if oy < 0 || oy >= oh {
                                        continue;
                                    }
                                    // SAFETY: the lanes in `m` read output
                                    // columns inside row `oy` of this tap's
                                    // plane in `cols`; the others are never
                                    // accessed.
                                    let v = unsafe { _mm512_maskz_loadu_ps(m, cp.wrapping_offset(tap + oy * ow)) };
                                    *a = _mm512_add_ps(*a, v);
                                }
                            }
                        }
                        for (r, a) in acc.iter().enumerate().take(rows) {
                            // SAFETY: elements x0..x0 + n of row y0 + r of
                            // the plane.
                            unsafe {
                                let d = dp.add(plane + (y0 + r) * w + x0);
                                _mm512_mask_storeu_ps(d, m_out, _mm512_add_ps(_mm512_maskz_loadu_ps(m_out, d), *a));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds `rows` runs of `n` elements, run `r` of `src[r·src_stride..]` onto
/// `dst[r·dst_stride..]`, with one bounds check for all of them: col2im's
/// runs are as short as im2col's (3 elements on the Keras CNN's 5×5
/// layer), and checking each one took the layer's input gradient from
/// 0.55 to about 1.1 ms (half of it in col2im, measured with `perf`).
#[inline(always)]
fn add_rows<T: Element>(dst: &mut [T], dst_stride: usize, src: &[T], src_stride: usize, rows: usize, n: usize) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!((rows - 1) * dst_stride + n <= dst.len() && (rows - 1) * src_stride + n <= src.len());
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    for r in 0..rows {
        // SAFETY: every run lies inside its slice (asserted above), and
        // `dst` and `src` are distinct borrows.
        unsafe {
            let (d, s) = (d.add(r * dst_stride), s.add(r * src_stride));
            for t in 0..n {
                *d.add(t) = *d.add(t) + *s.add(t);
            }
        }
    }
}

/// Copies `rows` runs of `n` elements, run `r` from `src[r·src_stride..]`
/// to `dst[r·dst_stride..]`, with one bounds check for all of them.
#[inline(always)]
fn copy_rows<T: Copy>(dst: &mut [T], dst_stride: usize, src: &[T], src_stride: usize, rows: usize, n: usize) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!((rows - 1) * dst_stride + n <= dst.len() && (rows - 1) * src_stride + n <= src.len());
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    for r in 0..rows {
        // SAFETY: every run lies inside its slice (asserted above), and
        // `dst` and `src` are distinct borrows.
        unsafe { copy_run(d.add(r * dst_stride), s.add(r * src_stride), n) }
    }
}

/// Copies `n` elements. Short runs (3 to 26 elements in the Keras CNN) use
/// fixed 4-element moves, overlapping at the end: LLVM compiles a copy loop
/// into a `memcpy` call, which costs more than such a copy.
///
/// # Safety
/// `n` elements must be readable at `s`, writable at `d`, not overlapping.
#[inline(always)]
unsafe fn copy_run<T: Copy>(d: *mut T, s: *const T, n: usize) {
    unsafe {
        if n >= 16 {
            std::ptr::copy_nonoverlapping(s, d, n);
        } else if n >= 4 {
            let mut i = 0;
            while i + 4 < n {
                d.add(i).cast::<[T; 4]>().write_unaligned(s.add(i).cast::<[T; 4]>().read_unaligned());
                i += 4;
            }
            d.add(n - 4).cast::<[T; 4]>().write_unaligned(s.add(n - 4).cast::<[T; 4]>().read_unaligned());
        } else {
            *d = *s;
            if n > 1 {
                *d.add(1) = *s.add(1);
            }
            if n > 2 {
                *d.add(2) = *s.add(2);
            }
        }
    }
}

/// Whether a group's input gradient takes the position-major layout
/// ([`gather_positions`], [`col2im_positions`]): unit stride and dilation,
/// and output rows narrower than a vector, where [`col2im`]'s 16-column
/// vectors run mostly empty (the Keras CNN's 5×5 layer has 3-wide output
/// rows, its 13×13 layer 11-wide ones).
pub(crate) fn positions_apply(g: &Geo) -> bool {
    g.conv.stride == [1, 1] && g.conv.dilation == [1, 1] && g.ow < 16
}

/// Lays `cnt` images of `dy` (`[O, P]` each) out as `[O, P·cnt]`, position
/// major: column `q·cnt + i` is image `i`'s position `q`.
pub(crate) fn gather_positions<T: Element>(g: &Geo, dy: &[T], cnt: usize, wide: &mut [T], ld: usize) {
    let p = g.p();
    for o in 0..g.o {
        let row = &mut wide[o * ld..][..p * cnt];
        for img in 0..cnt {
            let src = &dy[img * g.y_img() + o * p..][..p];
            for (q, &v) in src.iter().enumerate() {
                row[q * cnt + img] = v;
            }
        }
    }
}

/// [`col2im`] of columns laid out by [`gather_positions`]: each input
/// element of all `cnt` images at once (runs of `cnt` contiguous columns,
/// added lane by lane), its taps in the walk's order from zero, into `tmp`
/// (`[C·H·W, cnt]`, at least that long), then transposed into `dx`. The
/// same sums in the same order as [`col2im`], so the same bits.
pub(crate) fn col2im_positions<T: Element>(g: &Geo, cols: &[T], cnt: usize, dx: &mut [T], ld: usize, tmp: &mut [T]) {
    let [ph, pw] = g.conv.padding;
    let image = g.x_img();
    let tmp = &mut tmp[..image * cnt];
    for c in 0..g.c {
        for y in 0..g.h {
            for x in 0..g.w {
                let acc = &mut tmp[((c * g.h + y) * g.w + x) * cnt..][..cnt];
                acc.fill(T::ZERO);
                for i in 0..g.kh {
                    let Some(oy) = (y + ph).checked_sub(i).filter(|&oy| oy < g.oh) else { continue };
                    for j in 0..g.kw {
                        let Some(ox) = (x + pw).checked_sub(j).filter(|&ox| ox < g.ow) else { continue };
                        let row = (c * g.kh + i) * g.kw + j;
                        let src = &cols[row * ld + (oy * g.ow + ox) * cnt..][..cnt];
                        acc.iter_mut().zip(src).for_each(|(a, &s)| *a = *a + s);
                    }
                }
            }
        }
    }
    crate::pack::transpose(tmp, image, cnt, &mut dx[..image * cnt], 1);
}

/// Lays `cnt` images of `dy` (`[O, P]` each) side by side as `[O, ld]`.
pub(crate) fn gather_wide<T: Element>(g: &Geo, dy: &[T], cnt: usize, wide: &mut [T], ld: usize) {
    let p = g.p();
    for img in 0..cnt {
        for o in 0..g.o {
            wide[o * ld + img * p..][..p].copy_from_slice(&dy[img * g.y_img() + o * p..][..p]);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::conv::{Conv2d, Geo};

    /// The vector col2im gives the walk's bits: padded and unpadded,
    /// square and rectangular kernels, planes wider than 16 and narrower,
    /// entries with signed zeros.
    #[test]
    fn the_vector_col2im_is_the_walk() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 here: the vector col2im is not run");
            return;
        }
        for (x, w, pad) in [([3, 2, 5, 5], [4, 2, 3, 3], [0, 0]), ([2, 3, 13, 21], [2, 3, 3, 3], [1, 1]), ([2, 1, 9, 40], [3, 1, 2, 5], [1, 2]), ([1, 2, 4, 4], [1, 2, 3, 3], [2, 2])] {
            let g = Geo::new(&x, &w, Conv2d { padding: pad, ..Conv2d::default() }).unwrap();
            let cnt = x[0];
            let ld = cnt * g.p() + 3;
            let cols: Vec<f32> = (0..g.taps() * ld).map(|i| if i % 13 == 0 { -0.0 } else { ((i * 7919) % 23) as f32 * 0.37 - 4.0 }).collect();
            let mut walk = vec![0.0f32; cnt * g.x_img()];
            let mut vector = walk.clone();
            col2im_walk(&g, &cols, cnt, &mut walk, ld);
            col2im(&g, &cols, cnt, &mut vector, ld);
            for (i, (a, b)) in walk.iter().zip(&vector).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "x {x:?} w {w:?} pad {pad:?}: element {i}: {a} vs {b}");
            }
        }
    }
}

#[cfg(test)]
mod position_tests {
    use super::*;
    use crate::conv::{Conv2d, Geo};

    /// The position-major gather and col2im give the image-major ones'
    /// bits (the walk's): padded and unpadded, square and rectangular
    /// kernels, a kernel larger than the padded input's rows, entries with
    /// signed zeros, columns past the group (`ld` larger).
    #[test]
    fn position_major_col2im_is_the_walk() {
        for (x, w, pad) in [([3, 2, 5, 5], [4, 2, 3, 3], [0, 0]), ([17, 3, 5, 4], [2, 3, 3, 2], [1, 1]), ([5, 1, 3, 3], [3, 1, 3, 3], [2, 2]), ([2, 2, 4, 6], [1, 2, 2, 5], [1, 2])] {
            let g = Geo::new(&x, &w, Conv2d { padding: pad, ..Conv2d::default() }).unwrap();
            let (cnt, p) = (x[0], g.p());
            let ld = cnt * p + 3;
            let image_major: Vec<f32> = (0..g.taps() * ld).map(|i| if i % 13 == 0 { -0.0 } else { ((i * 7919) % 23) as f32 * 0.37 - 4.0 }).collect();
            let mut position_major = image_major.clone();
            for r in 0..g.taps() {
                for img in 0..cnt {
                    for q in 0..p {
                        position_major[r * ld + q * cnt + img] = image_major[r * ld + img * p + q];
                    }
                }
            }
            let mut walk = vec![0.0f32; cnt * g.x_img()];
            col2im_walk(&g, &image_major, cnt, &mut walk, ld);
            let mut got = vec![f32::NAN; cnt * g.x_img()];
            let mut tmp = vec![f32::NAN; cnt * g.x_img()];
            col2im_positions(&g, &position_major, cnt, &mut got, ld, &mut tmp);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&walk), "{x:?} {w:?} padding {pad:?}");

            // The gather lays out dY so that the product writes these columns.
            let dy: Vec<f32> = (0..cnt * g.y_img()).map(|i| i as f32).collect();
            let (mut wide, mut positions) = (vec![0.0f32; g.o * ld], vec![0.0f32; g.o * ld]);
            gather_wide(&g, &dy, cnt, &mut wide, ld);
            gather_positions(&g, &dy, cnt, &mut positions, ld);
            for o in 0..g.o {
                for img in 0..cnt {
                    for q in 0..p {
                        assert_eq!(positions[o * ld + q * cnt + img], wide[o * ld + img * p + q], "{x:?}: channel {o}, image {img}, position {q}");
                    }
                }
            }
        }
    }
}
