//! The arena at run time: one vector per dtype (f32, f64, i1) sized by the
//! [`Placement`] of the current batch size, and the borrows a step takes of
//! it: `&mut` slices for what it writes (its output, its scratch), shared
//! slices of everything else.
//!
//! All of it is safe Rust: a step's writable regions are carved out with
//! `split_at_mut`, and a read of a region that overlaps one of them (which
//! a correct plan never asks for) is an error, not aliasing.

use crate::CpuError;
use crate::memory::{ALIGN, ARENA_DTYPES, Layout, Placement, arena_index};
use dlc_ir::DType;
use dlc_jit::{Buffer, BufferMut};
use std::ops::Range;

/// Elements of one dtype's arena: `range` of the vector of `dtype`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub dtype: DType,
    pub range: Range<usize>,
}

impl Region {
    fn overlaps(&self, other: &Region) -> bool {
        self.dtype == other.dtype && self.range.start < other.range.end && other.range.start < self.range.end
    }
}

/// The arenas and the placement they were sized for.
pub(crate) struct Arena {
    pub placement: Placement,
    f32: Vec<f32>,
    f64: Vec<f64>,
    i1: Vec<bool>,
    /// Per dtype: elements from the vector's start to its first 64-byte
    /// boundary, where offset 0 of the placement is.
    shift: [usize; 3],
}

/// Makes `v` hold at least `len` elements past its first 64-byte boundary;
/// returns where that boundary is. Reallocates when it must grow, or when
/// it is more than twice too big (a batch much smaller than the last).
fn fit<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) -> usize {
    let slack = ALIGN / size_of::<T>();
    let want = len + slack;
    if v.len() < want || v.len() > 2 * want.max(4096) {
        *v = vec![fill; want];
    }
    let shift = v.as_ptr().align_offset(ALIGN);
    if shift <= slack { shift } else { 0 }
}

impl Arena {
    /// Arenas for `layout` at `batch`.
    pub(crate) fn new(layout: &Layout, batch: Option<usize>) -> Arena {
        let mut a = Arena { placement: layout.place(batch), f32: Vec::new(), f64: Vec::new(), i1: Vec::new(), shift: [0; 3] };
        a.resize();
        a
    }

    /// Re-plans for another batch size (the plan for the last one is kept).
    pub(crate) fn fit(&mut self, layout: &Layout, batch: Option<usize>) {
        if self.placement.batch != batch {
            self.placement = layout.place(batch);
            self.resize();
        }
    }

    fn resize(&mut self) {
        let elems = |d: DType| self.placement.arena_bytes[arena_index(d).expect("an arena dtype")] / d.size_bytes();
        let (n32, n64, n1) = (elems(DType::F32), elems(DType::F64), elems(DType::I1));
        self.shift = [fit(&mut self.f32, n32, 0.0), fit(&mut self.f64, n64, 0.0), fit(&mut self.i1, n1, false)];
    }

    /// Fills every arena with a value no kernel should ever read (NaN,
    /// true): debug builds do it before each run, so a step reading a slot
    /// before it was written shows up as a wrong result.
    pub(crate) fn poison(&mut self) {
        self.f32.fill(f32::NAN);
        self.f64.fill(f64::NAN);
        self.i1.fill(true);
    }

    /// Block `b`'s region.
    pub(crate) fn region(&self, layout: &Layout, b: usize) -> Region {
        let dtype = layout.blocks[b].dtype;
        let r = self.placement.range(layout, b);
        let shift = self.shift[arena_index(dtype).expect("an arena dtype")];
        Region { dtype, range: r.start + shift..r.end + shift }
    }

    /// Shared slices of all of it.
    pub(crate) fn reads(&self) -> Reads<'_> {
        Reads { f32: Part { pieces: vec![(0, &self.f32[..])] }, f64: Part { pieces: vec![(0, &self.f64[..])] }, i1: Part { pieces: vec![(0, &self.i1[..])] } }
    }

    /// Shared slices of everything but `holes`, and `&mut` slices of the
    /// holes, in the order given.
    pub(crate) fn split(&mut self, holes: &[Region]) -> Result<(Reads<'_>, Vec<BufferMut<'_>>), CpuError> {
        for (i, a) in holes.iter().enumerate() {
            if holes[..i].iter().any(|b| a.overlaps(b)) {
                return Err(CpuError::Malformed(format!("the memory plan gives one step two overlapping buffers: {a:?}")));
            }
        }
        let pick = |d: DType| holes.iter().enumerate().filter(|(_, h)| h.dtype == d).map(|(i, h)| (i, h.range.clone())).collect::<Vec<_>>();
        let (r32, o32) = carve(&mut self.f32, &pick(DType::F32))?;
        let (r64, o64) = carve(&mut self.f64, &pick(DType::F64))?;
        let (r1, o1) = carve(&mut self.i1, &pick(DType::I1))?;
        let mut outs: Vec<(usize, BufferMut<'_>)> = Vec::with_capacity(holes.len());
        outs.extend(o32.into_iter().map(|(i, s)| (i, BufferMut::F32(s))));
        outs.extend(o64.into_iter().map(|(i, s)| (i, BufferMut::F64(s))));
        outs.extend(o1.into_iter().map(|(i, s)| (i, BufferMut::I1(s))));
        outs.sort_by_key(|(i, _)| *i);
        Ok((Reads { f32: r32, f64: r64, i1: r1 }, outs.into_iter().map(|(_, b)| b).collect()))
    }
}

const _: () = assert!(ARENA_DTYPES.len() == 3);

/// `v` cut at `holes` (element ranges, sorted or not, disjoint): the shared
/// pieces between them and the holes as `&mut`, each with its tag.
#[allow(clippy::type_complexity)]
fn carve<'a, T>(v: &'a mut [T], holes: &[(usize, Range<usize>)]) -> Result<(Part<'a, T>, Vec<(usize, &'a mut [T])>), CpuError> {
    let mut holes = holes.to_vec();
    holes.sort_by_key(|h| h.1.start);
    let mut pieces = Vec::with_capacity(holes.len() + 1);
    let mut outs = Vec::with_capacity(holes.len());
    let mut rest = v;
    let mut at = 0;
    for (tag, r) in holes {
        if r.start < at || r.end > at + rest.len() {
            return Err(CpuError::Malformed(format!("an arena buffer {r:?} lies outside the arena or overlaps another")));
        }
        let (before, tail) = rest.split_at_mut(r.start - at);
        let (hole, after) = tail.split_at_mut(r.len());
        pieces.push((at, &*before));
        outs.push((tag, hole));
        rest = after;
        at = r.end;
    }
    pieces.push((at, &*rest));
    Ok((Part { pieces }, outs))
}

/// The shared pieces of one arena: `(start, elements)`, in order.
struct Part<'a, T> {
    pieces: Vec<(usize, &'a [T])>,
}

impl<'a, T> Part<'a, T> {
    fn get(&self, r: &Range<usize>) -> Option<&'a [T]> {
        self.pieces.iter().find(|(s, p)| *s <= r.start && r.end <= s + p.len()).map(|(s, p)| &p[r.start - s..r.end - s])
    }
}

/// What a step may read of the arenas.
pub(crate) struct Reads<'a> {
    f32: Part<'a, f32>,
    f64: Part<'a, f64>,
    i1: Part<'a, bool>,
}

impl<'a> Reads<'a> {
    /// `r`'s elements; an error when a buffer this step writes overlaps it.
    pub(crate) fn get(&self, r: &Region) -> Result<Buffer<'a>, CpuError> {
        let b = match r.dtype {
            DType::F32 => self.f32.get(&r.range).map(Buffer::F32),
            DType::F64 => self.f64.get(&r.range).map(Buffer::F64),
            DType::I1 => self.i1.get(&r.range).map(Buffer::I1),
            _ => None,
        };
        b.ok_or_else(|| CpuError::Malformed(format!("the memory plan lets a step write over its own input {r:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carving_gives_disjoint_pieces_and_refuses_overlaps() {
        let mut v: Vec<u32> = (0..10).collect();
        let (part, outs) = carve(&mut v, &[(1, 6..8), (0, 2..4)]).unwrap();
        assert_eq!(part.get(&(0..2)), Some(&[0u32, 1][..]));
        assert_eq!(part.get(&(4..6)), Some(&[4u32, 5][..]));
        assert_eq!(part.get(&(8..10)), Some(&[8u32, 9][..]));
        assert_eq!(part.get(&(3..5)), None, "overlaps a hole");
        assert_eq!(part.get(&(9..11)), None, "past the end");
        let tags: Vec<(usize, Vec<u32>)> = outs.into_iter().map(|(t, s)| (t, s.to_vec())).collect();
        assert_eq!(tags, vec![(0, vec![2, 3]), (1, vec![6, 7])]);
        assert!(carve(&mut v, &[(0, 2..5), (1, 4..6)]).is_err());
        assert!(carve(&mut v, &[(0, 8..11)]).is_err());
    }
}
