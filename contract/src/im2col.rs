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
pub(crate) fn col2im<T: Element>(g: &Geo, cols: &[T], cnt: usize, dx: &mut [T], ld: usize) {
    let (ow, p) = (g.ow, g.p());
    let ([sh, sw], w) = (g.conv.stride, g.w);
    for_each_plane(g, cnt, ld, |pl| {
        if pl.empty() {
            return;
        }
        let ((ylo, yhi), (lo, hi)) = (pl.rows, pl.cols);
        let plane = &cols[pl.col..pl.col + p];
        let n = hi - lo;
        for (r, oy) in (ylo..yhi).enumerate() {
            let seg = &plane[oy * ow + lo..oy * ow + hi];
            let d = pl.input + r * sh * w;
            if sw == 1 {
                dx[d..d + n].iter_mut().zip(seg).for_each(|(d, &v)| *d = *d + v);
            } else {
                seg.iter().enumerate().for_each(|(t, &v)| dx[d + t * sw] = dx[d + t * sw] + v);
            }
        }
    });
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

/// Lays `cnt` images of `dy` (`[O, P]` each) side by side as `[O, ld]`.
pub(crate) fn gather_wide<T: Element>(g: &Geo, dy: &[T], cnt: usize, wide: &mut [T], ld: usize) {
    let p = g.p();
    for img in 0..cnt {
        for o in 0..g.o {
            wide[o * ld + img * p..][..p].copy_from_slice(&dy[img * g.y_img() + o * p..][..p]);
        }
    }
}
