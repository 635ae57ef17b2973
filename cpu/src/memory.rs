//! The memory plan: which step outputs share the arena, for how long each
//! is live, and where each one sits in it.
//!
//! At compile time ([`Layout::new`]) every step output that a kernel writes
//! into a `&mut` slice (JIT kernels, contractions, block-copy concat) of a
//! dtype the arena holds (f32, f64, i1) becomes a *block* whose lifetime is
//! `first..=last` in step numbers: its defining step to the last step that
//! reads it or any `dl.reshape` of it (a reshape of an arena value is an
//! alias: the same block under another shape, no copy). Each convolution's
//! im2col scratch (forward or either gradient) is a block too, live during
//! its step only. Function
//! results (and everything they alias) stay out of the arena: they are
//! written into buffers of their own and moved to the caller, with no copy.
//! Arguments and constants are the caller's and the executable's; outputs of
//! interpreter fallbacks are owned tensors outside the arena.
//!
//! Per batch size ([`Layout::place`]) the blocks get byte offsets, one arena
//! per dtype, by greedy best fit: largest block first, each at the smallest
//! gap (64-byte aligned) between the blocks already placed whose lifetimes
//! intersect its own, or at the end. Two blocks with intersecting lifetimes
//! never overlap ([`Placement::overlaps`] checks it, and debug builds run
//! that check on every plan). A block's lifetime includes its defining step,
//! so an output never shares bytes with the inputs of its own step (the
//! kernels require that) — with one exception, made on purpose:
//!
//! In place: an elementwise step whose input `v` reads in full what the
//! output writes (same shape and dtype, no broadcast: [`StepInfo::in_place`])
//! and whose block dies at that step (no later step reads `v` or a reshape
//! of it) writes its output over `v`, into `v`'s block, whose lifetime then
//! runs on. The JIT's in-place call reads each element before writing it.
//! A chain `x → relu → mul → add` then lives in one buffer, and an
//! optimizer's new moment overwrites the old one when the old one is not a
//! result. The output must not be a function result (those leave the arena
//! with their block).

use dlc_contract::Conv2d;
use dlc_ir::{DType, Dim, ValueId};

/// Every buffer in the arena starts on a 64-byte boundary.
pub(crate) const ALIGN: usize = 64;

/// The dtypes with an arena, in [`Placement::arena_bytes`] order.
pub(crate) const ARENA_DTYPES: [DType; 3] = [DType::F32, DType::F64, DType::I1];

/// The index of `d`'s arena.
pub(crate) fn arena_index(d: DType) -> Option<usize> {
    ARENA_DTYPES.iter().position(|&a| a == d)
}

/// How many elements a block holds at a batch size.
#[derive(Clone, Debug)]
pub(crate) enum Size {
    /// A value of this shape (`?` the batch).
    Shape(Vec<Dim>),
    /// The scratch of a convolution routine.
    ConvScratch(ConvScratch),
}

/// Which of dlc-contract's convolution routines a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvRoutine {
    /// `conv2d`.
    Forward,
    /// `conv2d_max_pool` with this window.
    ForwardPooled(dlc_contract::MaxPool2d),
    /// `conv2d_grad_input`.
    GradInput,
    /// `conv2d_grad_weight`.
    GradWeight,
    /// `conv2d_max_pool_grad_weight` with this window, or where that does
    /// not serve, the convolution, the pooling gradient and the weight
    /// gradient in turn.
    GradWeightPooled(dlc_contract::MaxPool2d),
    /// `conv2d_grad_input_routed` with this window, or where that does not
    /// serve, the pooling gradient and `conv2d_grad_input` in turn.
    GradInputRouted(dlc_contract::MaxPool2d),
    /// `conv2d_grad_weight_routed` with this window, or where that does not
    /// serve, the pooling gradient and `conv2d_grad_weight` in turn.
    GradWeightRouted(dlc_contract::MaxPool2d),
}

/// A convolution step's scratch: `routine` for the convolution of `x` by
/// `w` (`?` the batch) on `threads` threads (1 when it is too small to
/// split, as [`crate::CpuExecutable`] decides). For a gradient, `x` or `w`
/// is the shape it computes.
#[derive(Clone, Debug)]
pub(crate) struct ConvScratch {
    pub routine: ConvRoutine,
    pub x: Vec<Dim>,
    pub w: Vec<Dim>,
    pub conv: Conv2d,
    pub threads: usize,
}

impl ConvScratch {
    /// Its elements of `T` at batch size `batch`.
    fn len<T: dlc_contract::Element>(&self, batch: Option<usize>) -> usize {
        let (x, w) = (concrete(&self.x, batch), concrete(&self.w, batch));
        let threads = conv_threads(&x, &w, self.conv, self.threads);
        let len = match self.routine {
            ConvRoutine::Forward => dlc_contract::conv2d_scratch_len::<T>(&x, &w, self.conv, threads),
            ConvRoutine::ForwardPooled(pool) => dlc_contract::conv2d_max_pool_scratch_len::<T>(&x, &w, self.conv, pool, threads),
            ConvRoutine::GradInput => dlc_contract::conv2d_grad_input_scratch_len::<T>(&x, &w, self.conv, threads),
            ConvRoutine::GradWeight => dlc_contract::conv2d_grad_weight_scratch_len::<T>(&x, &w, self.conv, threads),
            ConvRoutine::GradWeightPooled(pool) => pooled_grad_weight_scratch_len::<T>(&x, &w, self.conv, pool, threads),
            ConvRoutine::GradInputRouted(pool) => routed_grad_scratch_len::<T>(&x, &w, self.conv, pool, threads, true),
            ConvRoutine::GradWeightRouted(pool) => routed_grad_scratch_len::<T>(&x, &w, self.conv, pool, threads, false),
        };
        len.unwrap_or(0)
    }
}

/// The scratch of a recomputing pooled weight gradient
/// (`kernel.conv2d_grad_weight`) on any machine: the one-pass routine's,
/// or what the step needs where that does not serve and it runs the
/// convolution, the pooling gradient and the weight gradient in turn on
/// chunks of [`pooled_grad_chunk`] images: their convolution output and
/// its gradient, a partial weight gradient, and the larger of the two
/// routines' scratch (the same plan on every machine).
pub(crate) fn pooled_grad_weight_scratch_len<T: dlc_contract::Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: dlc_contract::MaxPool2d, threads: usize) -> Result<usize, dlc_contract::ContractError> {
    let y = conv.out_shape(x, w)?;
    let y_img: usize = y[1..].iter().product();
    let chunk = pooled_grad_chunk(y_img * size_of::<T>(), x[0]);
    let xc = [chunk, x[1], x[2], x[3]];
    let steps = dlc_contract::conv2d_scratch_len::<T>(&xc, w, conv, threads)?.max(dlc_contract::conv2d_grad_weight_scratch_len::<T>(&xc, w, conv, threads)?);
    let partial: usize = w.iter().product();
    Ok(dlc_contract::conv2d_max_pool_grad_weight_scratch_len::<T>(x, w, conv, pool)?.max(2 * chunk * y_img + partial + steps))
}

/// The scratch of a routed convolution gradient (`kernel.routed_conv2d_grad_input`
/// when `input`, else `kernel.routed_conv2d_grad_weight`) on any machine:
/// the routed routine's, or what the step needs where that does not serve
/// (or an operand is not finite) and it runs the pooling gradient and the
/// dense gradient in turn on chunks of [`pooled_grad_chunk`] images: their
/// full-size gradient, a partial weight gradient, and the dense routine's
/// scratch (the same plan on every machine).
pub(crate) fn routed_grad_scratch_len<T: dlc_contract::Element>(x: &[usize], w: &[usize], conv: Conv2d, pool: dlc_contract::MaxPool2d, threads: usize, input: bool) -> Result<usize, dlc_contract::ContractError> {
    let y = conv.out_shape(x, w)?;
    let y_img: usize = y[1..].iter().product();
    let chunk = pooled_grad_chunk(y_img * size_of::<T>(), x[0]);
    let xc = [chunk, x[1], x[2], x[3]];
    let (routed, dense) = if input {
        (dlc_contract::conv2d_grad_input_routed_scratch_len::<T>(x, w, conv, pool, threads)?, dlc_contract::conv2d_grad_input_scratch_len::<T>(&xc, w, conv, threads)?)
    } else {
        let partial: usize = w.iter().product();
        (dlc_contract::conv2d_grad_weight_routed_scratch_len::<T>(x, w, conv, pool, threads)?, partial + dlc_contract::conv2d_grad_weight_scratch_len::<T>(&xc, w, conv, threads)?)
    };
    Ok(routed.max(chunk * y_img + dense))
}

/// Images per chunk where a recomputing pooled weight gradient runs its
/// three routines in turn: their convolution output and its gradient
/// (`y_img_bytes` each per image) within 1 MiB, so the pooling gradient and
/// the weight gradient read them from cache, and the scratch stays bounded.
pub(crate) fn pooled_grad_chunk(y_img_bytes: usize, n: usize) -> usize {
    ((1 << 20) / (2 * y_img_bytes).max(1)).clamp(1, n.max(1))
}

/// `dims` at batch size `batch` (`?` is 0 when no batch is bound: such a
/// step reports the unbound `?` itself before it touches its block).
pub(crate) fn concrete(dims: &[Dim], batch: Option<usize>) -> Vec<usize> {
    dims.iter().map(|d| d.as_static().map_or(batch.unwrap_or(0), |n| n as usize)).collect()
}

impl Size {
    fn elements(&self, dtype: DType, batch: Option<usize>) -> usize {
        match self {
            Size::Shape(dims) => concrete(dims, batch).iter().product(),
            Size::ConvScratch(s) => match dtype {
                DType::F64 => s.len::<f64>(batch),
                _ => s.len::<f32>(batch),
            },
        }
    }
}

/// The threads a convolution of `x` by `w` (or either of its gradients: the
/// same multiply-adds) runs on: `threads`, or 1 below
/// [`crate::PAR_MIN_MACS`] multiply-adds (where its scratch is smaller).
pub(crate) fn conv_threads(x: &[usize], w: &[usize], conv: Conv2d, threads: usize) -> usize {
    let macs = conv.out_shape(x, w).map_or(0, |s| s.iter().product::<usize>() * w[1..].iter().product::<usize>());
    if threads > 1 && macs >= crate::PAR_MIN_MACS { threads } else { 1 }
}

/// One buffer of the arena.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    /// The value written there first, then its `dl.reshape` aliases and the
    /// values written over it in place, in step order; empty for a scratch.
    pub values: Vec<ValueId>,
    /// The step whose scratch it is, if it is one.
    pub scratch_of: Option<usize>,
    pub dtype: DType,
    pub size: Size,
    /// The first and last step during which it is live.
    pub first: usize,
    pub last: usize,
}

/// Where a step's output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Home {
    /// Into block `i` of the arena.
    Block(usize),
    /// Nowhere new: a `dl.reshape` of block `i`'s value, read in place.
    Alias(usize),
    /// A buffer of its own (results, interpreter outputs, other dtypes).
    Outside,
}

/// What a step looks like to the plan.
pub(crate) struct StepInfo<'a> {
    /// Its output and the output's dtype and shape.
    pub output: ValueId,
    pub dtype: DType,
    pub shape: &'a [Dim],
    /// The values it reads.
    pub inputs: Vec<ValueId>,
    /// True when it writes its output into a `&mut` slice.
    pub writes_slice: bool,
    /// True for a `dl.reshape` (of `inputs[0]`).
    pub reshape: bool,
    /// A convolution routine's shapes, window and threads (for its scratch).
    pub conv: Option<ConvScratch>,
    /// An input whose buffer the output may take over, when this step is
    /// its last reader (an elementwise step reading it in full: see the
    /// module docs).
    pub in_place: Option<ValueId>,
}

/// The blocks of a compiled function and where each step writes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    pub blocks: Vec<Block>,
    /// Per step.
    pub homes: Vec<Home>,
    /// Per step: the block holding its scratch.
    pub scratch: Vec<Option<usize>>,
    /// Per step: true when it writes its output over its `in_place` input,
    /// in that input's block.
    pub in_place: Vec<bool>,
}

impl Layout {
    /// Blocks and lifetimes for `steps` (in execution order) of a function
    /// returning `results`; values defined by no step (arguments,
    /// constants) are never in the arena.
    pub(crate) fn new(steps: &[StepInfo<'_>], results: &[ValueId], num_values: usize) -> Layout {
        let mut blocks: Vec<Block> = Vec::new();
        let mut homes = Vec::with_capacity(steps.len());
        let mut in_place = vec![false; steps.len()];
        // The last step reading each value, and whether it is returned
        // (itself or through a reshape of it).
        let mut last_read: Vec<Option<usize>> = vec![None; num_values];
        for (i, s) in steps.iter().enumerate() {
            for v in &s.inputs {
                last_read[v.0 as usize] = Some(i);
            }
        }
        let mut returned = vec![false; num_values];
        for v in results {
            returned[v.0 as usize] = true;
        }
        for s in steps.iter().rev() {
            if s.reshape && returned[s.output.0 as usize] {
                for v in &s.inputs {
                    returned[v.0 as usize] = true;
                }
            }
        }
        // The block holding each value, by value number.
        let mut block_of: Vec<Option<usize>> = vec![None; num_values];
        for (i, s) in steps.iter().enumerate() {
            let aliased = if s.reshape { s.inputs.first().and_then(|v| block_of[v.0 as usize]) } else { None };
            // The block of an input that dies here, for an output that is not returned.
            let over = s
                .in_place
                .filter(|_| s.writes_slice && !returned[s.output.0 as usize])
                .and_then(|v| block_of[v.0 as usize])
                .filter(|&b| {
                    let dies = |w: &ValueId| !returned[w.0 as usize] && last_read[w.0 as usize].is_none_or(|l| l <= i);
                    // The step's other operands must not be views of the
                    // block too (a reshape of the input read beside it):
                    // only the input itself is read from the output buffer.
                    let others_elsewhere = s.inputs.iter().all(|w| Some(*w) == s.in_place || block_of[w.0 as usize] != Some(b));
                    blocks[b].dtype == s.dtype && blocks[b].values.iter().all(dies) && others_elsewhere
                });
            let home = match (aliased, over) {
                (Some(b), _) => {
                    blocks[b].values.push(s.output);
                    Home::Alias(b)
                }
                (None, Some(b)) => {
                    blocks[b].values.push(s.output);
                    in_place[i] = true;
                    Home::Block(b)
                }
                (None, None) if s.writes_slice && arena_index(s.dtype).is_some() => {
                    blocks.push(Block {
                        values: vec![s.output],
                        scratch_of: None,
                        dtype: s.dtype,
                        size: Size::Shape(s.shape.to_vec()),
                        first: i,
                        last: i,
                    });
                    Home::Block(blocks.len() - 1)
                }
                (None, None) => Home::Outside,
            };
            if let Home::Block(b) | Home::Alias(b) = home {
                block_of[s.output.0 as usize] = Some(b);
            }
            homes.push(home);
        }
        // Last uses, through aliases.
        for (i, s) in steps.iter().enumerate() {
            for v in &s.inputs {
                if let Some(b) = block_of[v.0 as usize] {
                    blocks[b].last = blocks[b].last.max(i);
                }
            }
        }
        // A block holding a result leaves the arena, with its aliases.
        let mut outside = vec![false; blocks.len()];
        for v in results {
            if let Some(b) = block_of[v.0 as usize] {
                outside[b] = true;
            }
        }
        let mut renumber = vec![None; blocks.len()];
        let mut kept = Vec::new();
        for (b, block) in blocks.into_iter().enumerate() {
            if !outside[b] {
                renumber[b] = Some(kept.len());
                kept.push(block);
            }
        }
        let homes = homes
            .into_iter()
            .map(|h| match h {
                Home::Block(b) => renumber[b].map_or(Home::Outside, Home::Block),
                Home::Alias(b) => renumber[b].map_or(Home::Outside, Home::Alias),
                Home::Outside => Home::Outside,
            })
            .collect();
        let mut blocks = kept;
        let scratch = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let conv = s.conv.clone()?;
                arena_index(s.dtype)?;
                blocks.push(Block {
                    values: Vec::new(),
                    scratch_of: Some(i),
                    dtype: s.dtype,
                    size: Size::ConvScratch(conv),
                    first: i,
                    last: i,
                });
                Some(blocks.len() - 1)
            })
            .collect();
        Layout { blocks, homes, scratch, in_place }
    }

    /// Offsets for every block at batch size `batch`.
    pub(crate) fn place(&self, batch: Option<usize>) -> Placement {
        let lens: Vec<usize> = self.blocks.iter().map(|b| b.size.elements(b.dtype, batch)).collect();
        let bytes: Vec<usize> = self.blocks.iter().zip(&lens).map(|(b, &n)| n * b.dtype.size_bytes()).collect();
        let mut offsets = vec![0usize; self.blocks.len()];
        let mut arena_bytes = [0usize; ARENA_DTYPES.len()];
        for (a, &dtype) in ARENA_DTYPES.iter().enumerate() {
            let mut order: Vec<usize> = (0..self.blocks.len()).filter(|&b| self.blocks[b].dtype == dtype).collect();
            order.sort_by_key(|&b| (std::cmp::Reverse(bytes[b]), self.blocks[b].first, b));
            // Placed blocks as (offset, end, first, last).
            let mut placed: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(order.len());
            for b in order {
                let (first, last) = (self.blocks[b].first, self.blocks[b].last);
                let need = bytes[b].next_multiple_of(ALIGN);
                let mut busy: Vec<(usize, usize)> =
                    placed.iter().filter(|p| p.2 <= last && first <= p.3).map(|p| (p.0, p.1)).collect();
                busy.sort_unstable();
                // Best fit: the smallest gap that holds it, else past the end.
                let mut best: Option<(usize, usize)> = None;
                let mut end = 0;
                for (start, stop) in busy {
                    if start >= end + need && best.is_none_or(|(_, gap)| start - end < gap) {
                        best = Some((end, start - end));
                    }
                    end = end.max(stop);
                }
                let offset = best.map_or(end, |(o, _)| o);
                offsets[b] = offset;
                arena_bytes[a] = arena_bytes[a].max(offset + need);
                placed.push((offset, offset + need, first, last));
            }
        }
        let placement = Placement { batch, lens, bytes, offsets, arena_bytes };
        debug_assert!(placement.overlaps(self).is_empty(), "the memory plan overlaps live blocks: {:?}", placement.overlaps(self));
        placement
    }
}

/// The blocks' places at one batch size.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    pub batch: Option<usize>,
    /// Per block: its element count, its bytes and its byte offset in its dtype's arena.
    pub lens: Vec<usize>,
    pub bytes: Vec<usize>,
    pub offsets: Vec<usize>,
    /// Per arena dtype ([`ARENA_DTYPES`]): the arena's size in bytes.
    pub arena_bytes: [usize; 3],
}

impl Placement {
    /// Block `b`'s element range in its dtype's arena.
    pub(crate) fn range(&self, layout: &Layout, b: usize) -> std::ops::Range<usize> {
        let start = self.offsets[b] / layout.blocks[b].dtype.size_bytes();
        start..start + self.lens[b]
    }

    /// Pairs of blocks of one dtype whose lifetimes intersect and whose
    /// bytes overlap: empty for a correct plan.
    pub(crate) fn overlaps(&self, layout: &Layout) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, a) in layout.blocks.iter().enumerate() {
            for (j, b) in layout.blocks.iter().enumerate().skip(i + 1) {
                let live = a.first <= b.last && b.first <= a.last;
                let (ra, rb) = (self.offsets[i]..self.offsets[i] + self.bytes[i], self.offsets[j]..self.offsets[j] + self.bytes[j]);
                let overlap = ra.start < rb.end && rb.start < ra.end;
                if a.dtype == b.dtype && live && overlap {
                    out.push((i, j));
                }
            }
        }
        out
    }

    /// The most bytes live at once: what any plan of these blocks needs at least.
    fn peak_live_bytes(&self, layout: &Layout) -> usize {
        let steps = layout.blocks.iter().map(|b| b.last + 1).max().unwrap_or(0);
        let mut delta = vec![0isize; steps + 1];
        for (b, block) in layout.blocks.iter().enumerate() {
            delta[block.first] += self.bytes[b] as isize;
            delta[block.last + 1] -= self.bytes[b] as isize;
        }
        let (mut live, mut peak) = (0isize, 0isize);
        for d in delta {
            live += d;
            peak = peak.max(live);
        }
        peak as usize
    }

    /// The report [`crate::CpuExecutable::memory_plan`] returns.
    pub(crate) fn report(&self, layout: &Layout, outside_bytes: usize) -> MemoryPlan {
        MemoryPlan {
            batch: self.batch,
            arena_bytes: self.arena_bytes.iter().sum(),
            peak_live_bytes: self.peak_live_bytes(layout),
            naive_bytes: self.bytes.iter().sum(),
            outside_bytes,
            in_place: layout.in_place.iter().filter(|&&p| p).count(),
            buffers: layout
                .blocks
                .iter()
                .enumerate()
                .map(|(b, block)| PlannedBuffer {
                    values: block.values.clone(),
                    scratch_of_step: block.scratch_of,
                    dtype: block.dtype,
                    offset: self.offsets[b],
                    bytes: self.bytes[b],
                    first_step: block.first,
                    last_step: block.last,
                })
                .collect(),
        }
    }
}

/// The memory plan of a [`crate::CpuExecutable`] at one batch size
/// ([`crate::CpuExecutable::memory_plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The batch size it was made for (`None`: the function has no `?`).
    pub batch: Option<usize>,
    /// The arena's size in bytes (all dtypes' arenas together, alignment included).
    pub arena_bytes: usize,
    /// The most bytes the arena's values and scratches hold at once (a lower
    /// bound for any plan).
    pub peak_live_bytes: usize,
    /// The bytes of every arena value and scratch together: what a fresh
    /// buffer per step output would allocate per run.
    pub naive_bytes: usize,
    /// The bytes of step outputs outside the arena (function results,
    /// interpreter outputs, integer values), allocated per run (less what
    /// donated arguments lend them: see [`crate::CpuExecutable::run_donated`]).
    pub outside_bytes: usize,
    /// Steps that write their output over an input's buffer in the arena.
    pub in_place: usize,
    /// Every buffer in the arena.
    pub buffers: Vec<PlannedBuffer>,
}

/// One buffer of a [`MemoryPlan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBuffer {
    /// The value written there, then its `dl.reshape` aliases and the values
    /// written over it in place (empty for a scratch).
    pub values: Vec<ValueId>,
    /// The step (as numbered by [`crate::CpuExecutable::plan_summary`]) whose
    /// convolution scratch it is.
    pub scratch_of_step: Option<usize>,
    /// Its element type (each dtype has an arena of its own).
    pub dtype: DType,
    /// Its byte offset in its dtype's arena (a multiple of 64).
    pub offset: usize,
    /// Its size in bytes.
    pub bytes: usize,
    /// The steps during which it is live, both included.
    pub first_step: usize,
    /// See `first_step`.
    pub last_step: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(output: u32, inputs: &[u32], shape: &[Dim]) -> (ValueId, Vec<ValueId>, Vec<Dim>) {
        (ValueId(output), inputs.iter().map(|&v| ValueId(v)).collect(), shape.to_vec())
    }

    fn layout(specs: &[(ValueId, Vec<ValueId>, Vec<Dim>)], reshapes: &[usize], results: &[u32]) -> Layout {
        layout_in_place(specs, reshapes, results, false)
    }

    /// Like `layout`; with `in_place`, every non-reshape step offers its
    /// first input for its output.
    fn layout_in_place(specs: &[(ValueId, Vec<ValueId>, Vec<Dim>)], reshapes: &[usize], results: &[u32], in_place: bool) -> Layout {
        let steps: Vec<StepInfo<'_>> = specs
            .iter()
            .enumerate()
            .map(|(i, (o, ins, shape))| StepInfo {
                output: *o,
                dtype: DType::F32,
                shape,
                inputs: ins.clone(),
                writes_slice: !reshapes.contains(&i),
                reshape: reshapes.contains(&i),
                conv: None,
                in_place: if in_place && !reshapes.contains(&i) { ins.first().copied() } else { None },
            })
            .collect();
        let results: Vec<ValueId> = results.iter().map(|&v| ValueId(v)).collect();
        Layout::new(&steps, &results, 32)
    }

    #[test]
    fn a_chain_reuses_two_buffers() {
        // %1 = f(%0), %2 = f(%1), %3 = f(%2), %4 = f(%3): at most two live at once.
        let d = [Dim::Dynamic, Dim::Static(100)];
        let l = layout(&[step(1, &[0], &d), step(2, &[1], &d), step(3, &[2], &d), step(4, &[3], &d)], &[], &[9]);
        let p = l.place(Some(8));
        assert!(p.overlaps(&l).is_empty());
        let r = p.report(&l, 0);
        assert_eq!(r.naive_bytes, 4 * 3200);
        assert_eq!(r.peak_live_bytes, 2 * 3200);
        assert_eq!(r.arena_bytes, 2 * 3200);
    }

    #[test]
    fn a_reshape_is_an_alias_that_extends_the_lifetime() {
        // %2 = reshape %1; %3 = f(%0); %4 = g(%2, %3): %1 lives through step 3.
        let d = [Dim::Static(16)];
        let l = layout(&[step(1, &[0], &d), step(2, &[1], &d), step(3, &[0], &d), step(4, &[2, 3], &d)], &[1], &[4]);
        assert_eq!(l.homes, vec![Home::Block(0), Home::Alias(0), Home::Block(1), Home::Outside]);
        assert_eq!((l.blocks[0].first, l.blocks[0].last), (0, 3));
        let p = l.place(None);
        assert!(p.overlaps(&l).is_empty());
        assert_ne!(p.offsets[0], p.offsets[1]);
    }

    #[test]
    fn results_and_their_aliases_stay_outside() {
        let d = [Dim::Static(4)];
        let l = layout(&[step(1, &[0], &d), step(2, &[1], &d)], &[1], &[2]);
        assert_eq!(l.homes, vec![Home::Outside, Home::Outside]);
        assert!(l.blocks.is_empty());
    }

    #[test]
    fn blocks_live_at_once_get_disjoint_bytes() {
        // A big block live throughout, two small ones meeting at step 2.
        let big = [Dim::Static(1024)];
        let small = [Dim::Static(16)];
        let l = layout(
            &[step(1, &[0], &big), step(2, &[0], &small), step(3, &[2], &small), step(4, &[1, 3], &small)],
            &[],
            &[4],
        );
        let p = l.place(None);
        assert!(p.overlaps(&l).is_empty());
        assert_eq!(p.arena_bytes[0], 4096 + 2 * 64);
    }

    #[test]
    fn a_chain_in_place_lives_in_one_buffer() {
        // %1 = f(%0) (an argument: not in the arena), then %2..%4 each over the last.
        let d = [Dim::Dynamic, Dim::Static(100)];
        let l = layout_in_place(&[step(1, &[0], &d), step(2, &[1], &d), step(3, &[2], &d), step(4, &[3], &d)], &[], &[9], true);
        assert_eq!(l.homes, vec![Home::Block(0); 4]);
        assert_eq!(l.in_place, vec![false, true, true, true]);
        assert_eq!(l.blocks[0].values, vec![ValueId(1), ValueId(2), ValueId(3), ValueId(4)]);
        let r = l.place(Some(8)).report(&l, 0);
        assert_eq!((r.arena_bytes, r.in_place), (3200, 3));
    }

    #[test]
    fn in_place_waits_for_every_reader_and_keeps_results() {
        let d = [Dim::Static(16)];
        // %2 = reshape %1 is read at step 3, after %3 = f(%1) at step 2: %3
        // may not overwrite %1; %4 = f(%2, %3) at step 3 may (both die there).
        let l = layout_in_place(&[step(1, &[0], &d), step(2, &[1], &d), step(3, &[1], &d), step(4, &[2, 3], &d)], &[1], &[9], true);
        assert_eq!(l.in_place, vec![false, false, false, true]);
        assert!(l.place(None).overlaps(&l).is_empty());
        // %1 is returned: %2 = f(%1) gets a block of its own.
        let l = layout_in_place(&[step(1, &[0], &d), step(2, &[1], &d), step(3, &[2], &d)], &[], &[1, 3], true);
        assert_eq!(l.in_place, vec![false, false, false]);
        // %3 = f(%2) is returned: it is not written over %2 (results leave the arena).
        let l = layout_in_place(&[step(1, &[0], &d), step(2, &[1], &d), step(3, &[2], &d)], &[], &[3], true);
        assert_eq!(l.in_place, vec![false, true, false]);
        assert_eq!(l.homes[2], Home::Outside);
    }

    #[test]
    fn a_step_reading_a_view_of_its_input_beside_it_is_not_written_in_place() {
        // %2 = reshape %1; %3 = f(%1, %2): %2 would read the bytes %3 overwrites.
        let d = [Dim::Static(16)];
        let l = layout_in_place(&[step(1, &[0], &d), step(2, &[1], &d), step(3, &[1, 2], &d), step(4, &[3], &d)], &[1], &[9], true);
        assert_eq!(l.in_place, vec![false, false, false, true]);
        assert!(l.place(None).overlaps(&l).is_empty());
    }
}
