//! One call of a structured kernel, before its machine code runs: every
//! check that makes the call sound, and the numbers the code needs (loop
//! sizes, per-operand offsets and strides in bytes, bounds-check constants),
//! laid out as `abi.rs` documents.
//!
//! The checks, over the iteration box `0 <= p < sizes` (dim 0 cut to the
//! requested rows): the operand count and dtypes; each operand's shape has
//! its map's rank and its buffer holds exactly the shape's elements; every
//! map result of an unpadded input, and every plain-dim result of a padded
//! one, stays inside its dim over the whole box; the results a padded input
//! checks at run time stay within ±2^62, so the code's 64-bit index
//! arithmetic cannot wrap; each output's shape is its map's image of the
//! sizes; and every offset and stride fits an i64 in bytes.
//!
//! Then adjacent loops the schedule allows to merge are merged where the
//! strides say they are one loop (`stride[k] = stride[k+1]·size[k+1]` for
//! every operand, as for two dims of one contiguous buffer): the outer size
//! becomes 1 and the inner loop runs over both. Deciding this per call, from
//! the strides, keeps it exact for operands whose plain-dim reads cover
//! only part of a dim (a slice), where a merge would be wrong.

use crate::codegen::elem_size;
use crate::error::JitError;
use crate::generic::schedule::Schedule;
use crate::generic::spec::{GenericSpec, IterKind};
use dlc_ir::DType;

/// Bound on the index values a run-time bounds check computes.
const CHECK_LIMIT: i128 = 1 << 62;

/// The numbers one call passes to the machine code.
#[derive(Debug)]
pub(crate) struct Launch {
    /// The loop sizes, after cutting dim 0 and merging.
    pub sizes: Vec<i64>,
    /// Per operand (inputs, then outputs): offset, then one stride per
    /// loop dim, in bytes; then per check: its constant and its bound.
    pub params: Vec<i64>,
    /// The box is empty: no code runs.
    pub empty: bool,
}

fn shape_err(what: impl Into<String>, message: impl Into<String>) -> JitError {
    JitError::Shape { what: what.into(), message: message.into() }
}

/// Elements of `shape`, if its bytes fit `isize`.
fn elements(shape: &[usize]) -> Result<usize, JitError> {
    shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .filter(|&n| n.checked_mul(8).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| JitError::TooLarge(shape.to_vec()))
}

/// Row-major strides of `shape`, in elements.
fn row_major(shape: &[usize]) -> Vec<i128> {
    let mut s = vec![0i128; shape.len()];
    let mut len = 1i128;
    for (d, &n) in shape.iter().enumerate().rev() {
        s[d] = len;
        len *= n as i128;
    }
    s
}

fn to_i64(v: i128, sizes: &[usize]) -> Result<i64, JitError> {
    i64::try_from(v).map_err(|_| JitError::TooLarge(sizes.to_vec()))
}

/// One output buffer as a call gives it: its dtype, its length in
/// elements, and the whole output's shape.
pub(crate) type OutArg<'a> = (DType, usize, &'a [usize]);

/// One input as a call gives it: its dtype, its length in elements and its
/// shape, or the output it is read in place from (with its shape).
pub(crate) enum InArg<'a> {
    /// A buffer of its own.
    Own(DType, usize, &'a [usize]),
    /// Output `r`'s buffer.
    Output(usize, &'a [usize]),
}

/// Checks one call and computes its numbers. Each output buffer holds the
/// output rows `lo..hi` when the output maps start with d0 (all of it
/// otherwise, and then `lo..hi` must be all of dim 0).
pub(crate) fn prepare(spec: &GenericSpec, sched: &Schedule, inputs: &[InArg<'_>], outs: &[OutArg<'_>], sizes: &[usize], lo: usize, hi: usize) -> Result<Launch, JitError> {
    let rank = spec.rank();
    let n_in = spec.inputs().len();
    let n_out = spec.outputs().len();
    if inputs.len() != n_in {
        return Err(JitError::InputCount { expected: n_in, found: inputs.len() });
    }
    if outs.len() != n_out {
        return Err(shape_err("outputs", format!("{} output buffers for {n_out} outputs", outs.len())));
    }
    if sizes.len() != rank {
        return Err(JitError::Rank { expected: rank, found: sizes.to_vec() });
    }
    if sizes.iter().any(|&n| n as u128 > (i64::MAX / 2) as u128) {
        return Err(JitError::TooLarge(sizes.to_vec()));
    }
    if lo > hi || hi > sizes[0] {
        return Err(shape_err("range", format!("rows {lo}..{hi} are not within dim 0 of size {}", sizes[0])));
    }
    let rows_first = spec.outputs().iter().all(|o| o.map.results.first().and_then(|e| e.as_dim()) == Some(0));
    if (lo, hi) != (0, sizes[0]) && !(rows_first && spec.iterators()[0] == IterKind::Parallel) {
        return Err(shape_err("range", format!("only a kernel whose output maps start with the parallel dim d0 runs part of dim 0 (its first output map is {})", spec.out_map())));
    }
    // The box the code visits: dim 0 cut to the rows.
    let mut cut = sizes.to_vec();
    cut[0] = hi - lo;
    let empty = cut.contains(&0);
    // Ranges are checked over the whole box, so a range call is exactly as
    // strict as the full call it is part of.
    let full_empty = sizes.contains(&0);

    // The outputs.
    for (r, (&(dtype, len, out_shape), o)) in outs.iter().zip(spec.outputs()).enumerate() {
        let what = if n_out == 1 { "output".to_string() } else { format!("output {r}") };
        if dtype != o.dtype {
            return Err(JitError::DType { what, expected: o.dtype, found: dtype });
        }
        let om = &o.map;
        if out_shape.len() != om.results.len() {
            return Err(shape_err(what, format!("shape {out_shape:?} has rank {}, its map {om} gives {}", out_shape.len(), om.results.len())));
        }
        let image: Vec<usize> = om.results.iter().map(|e| e.as_dim().map_or(0, |k| sizes[k])).collect();
        if image != out_shape {
            return Err(shape_err(what, format!("shape {out_shape:?} is not {image:?}, the output map {om} of sizes {sizes:?}")));
        }
        let total = elements(out_shape)?;
        let expected = if rows_first { (hi - lo) * out_shape[1..].iter().product::<usize>() } else { total };
        if len != expected {
            let what = if expected == total { what } else { format!("{what} rows {lo}..{hi}") };
            return Err(JitError::Len { what, expected, found: len, shape: out_shape.to_vec() });
        }
    }

    // Per operand element offsets and strides (i128: exact), then checks.
    let mut offsets = Vec::with_capacity(n_in + 1);
    let mut strides: Vec<Vec<i128>> = Vec::with_capacity(n_in + 1);
    for (i, (arg, input)) in inputs.iter().zip(spec.inputs()).enumerate() {
        let what = || format!("input {i}");
        let map = &input.map;
        let (dtype, shape) = match *arg {
            InArg::Own(d, _, s) => (d, s),
            InArg::Output(r, s) => {
                // Read where output r is written, at the same point: the
                // same map, shape and dtype, all-parallel, unpadded.
                let o = spec.outputs().get(r).ok_or_else(|| shape_err(what(), format!("output {r} does not exist")))?;
                if spec.has_reduction() || input.pad.is_some() || *map != o.map || outs.get(r).is_none_or(|a| a.2 != s) {
                    return Err(shape_err(what(), format!("it cannot be read in place from output {r}: that needs an all-parallel kernel, an unpadded input with the output's map ({}) and shape", o.map)));
                }
                (o.dtype, s)
            }
        };
        if dtype != input.dtype {
            return Err(JitError::DType { what: what(), expected: input.dtype, found: dtype });
        }
        if shape.len() != map.results.len() {
            return Err(shape_err(what(), format!("shape {shape:?} has rank {}, its map {map} gives {}", shape.len(), map.results.len())));
        }
        let len = elements(shape)?;
        if let InArg::Own(_, found, _) = *arg
            && found != len
        {
            return Err(JitError::Len { what: what(), expected: len, found, shape: shape.to_vec() });
        }
        let st = row_major(shape);
        let mut offset = 0i128;
        let mut s = vec![0i128; rank];
        for (j, e) in map.results.iter().enumerate() {
            if !full_empty {
                let (mut a, mut b) = (e.constant as i128, e.constant as i128);
                for &(k, c) in &e.terms {
                    let span = c as i128 * (sizes[k] as i128 - 1);
                    if span < 0 { a += span } else { b += span }
                }
                let checked = input.pad.is_some() && (e.as_dim().is_none() || input.checked_dims.contains(&j));
                if checked {
                    if a < -CHECK_LIMIT || b > CHECK_LIMIT {
                        return Err(JitError::TooLarge(sizes.to_vec()));
                    }
                } else if a < 0 || b >= shape[j] as i128 {
                    return Err(shape_err(
                        what(),
                        format!("its map {map} reads index {e} in [{a}, {b}] of its dim {j}, of size {} (out of bounds without a pad value)", shape[j]),
                    ));
                }
            }
            offset += st[j] * e.constant as i128;
            for &(k, c) in &e.terms {
                s[k] += st[j] * c as i128;
            }
        }
        // An in-place input starts where its output's rows do.
        offsets.push(if matches!(arg, InArg::Output(..)) { 0 } else { offset + s[0] * lo as i128 });
        strides.push(s);
    }
    for (&(_, _, out_shape), o) in outs.iter().zip(spec.outputs()) {
        let st = row_major(out_shape);
        let mut s = vec![0i128; rank];
        for (j, e) in o.map.results.iter().enumerate() {
            if let Some(k) = e.as_dim() {
                s[k] = st[j];
            }
        }
        // An output starts at row `lo` when rows are cut, so its offset is 0 either way.
        offsets.push(0);
        strides.push(s);
    }

    // Merge loops that are one loop for every operand the code reads.
    let n_ops = n_in + n_out;
    let mut n: Vec<i128> = cut.iter().map(|&n| n as i128).collect();
    let reads = |o: usize| o >= n_in || sched.live[o];
    if !empty {
        for k in 0..rank - 1 {
            let one_loop = (0..n_ops).filter(|&o| reads(o)).all(|o| strides[o][k] == strides[o][k + 1] * n[k + 1]);
            if sched.mergeable[k] && one_loop && n[k] * n[k + 1] <= (i64::MAX / 2) as i128 {
                n[k + 1] *= n[k];
                n[k] = 1;
            }
        }
    }

    let mut params = Vec::with_capacity(n_ops * (rank + 1) + 2 * sched.checks.len());
    for o in 0..n_ops {
        let size = elem_size(if o >= n_in { spec.outputs()[o - n_in].dtype } else { spec.inputs()[o].dtype }) as i128;
        if !reads(o) {
            params.extend(std::iter::repeat_n(0, rank + 1));
            continue;
        }
        params.push(to_i64(offsets[o] * size, sizes)?);
        for &s in &strides[o] {
            params.push(to_i64(s * size, sizes)?);
        }
    }
    for c in &sched.checks {
        let input = &spec.inputs()[c.input];
        let e = &input.map.results[c.result];
        // The index at the first row of the cut: inside the checked range.
        params.push(to_i64(e.constant as i128 + e.coefficient(0) as i128 * lo as i128, sizes)?);
        // Unsigned compares against a bound above i64::MAX would pass
        // negative indices; such a dim only exists beside a size-0 dim,
        // and then another check or the plain-dim range check fails.
        let shape = match inputs[c.input] {
            InArg::Own(_, _, s) | InArg::Output(_, s) => s,
        };
        params.push(i64::try_from(shape[c.result]).unwrap_or(i64::MAX));
    }
    let sizes = n.iter().map(|&v| v as i64).collect();
    Ok(Launch { sizes, params, empty })
}
