//! `kernel.generic` and the contraction ops of the structured-kernel level.
//!
//! The oracle for the kernel level must be obviously right, not fast, so a
//! generic kernel is evaluated straight from its definition: each operand is
//! gathered through its indexing map into a tensor over the iteration space
//! (the parallel dims, for reductions), and the body's ops run on those
//! tensors with [`eval_op`], the same code that evaluates the `dl` ops. A
//! reduction repeats that once per point of its reduction dims, in row-major
//! order, feeding the accumulator through — or, for the common fold bodies
//! (`acc + t`, `max(acc, t)`), evaluates `t` once over the whole space and
//! folds it in that same order, each step rounded as the definition rounds it.
//! The lowering to this level and
//! every fusion decision are then checked against the `dl`-level function.

use super::{InterpError, eval_op};
use crate::tensor::Tensor;
use dlc_ir::registry::kernel::GenericAttrs;
use dlc_ir::{AttrView, Attrs, DType, Function, OpId, OpKind, ValueId};
use std::collections::HashMap;

const OP: &str = "kernel.generic";

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Every index of `shape`, row-major.
fn points(shape: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let total: usize = shape.iter().product();
    let st = strides(shape);
    (0..total).map(move |i| st.iter().zip(shape).map(|(&s, &n)| (i / s) % n.max(1)).collect())
}

/// Evaluates a `kernel.generic` of `f` on its operand values: one tensor
/// per result.
pub fn eval(f: &Function, o: OpId, inputs: &[&Tensor], batch: Option<usize>) -> Result<Vec<Tensor>, InterpError> {
    let op = f.op(o);
    let g = GenericAttrs::read(&AttrView::new(op.kind, &op.attrs), inputs.len()).map_err(|m| InterpError::malformed(OP, m))?;
    let sizes: Vec<usize> = g
        .sizes
        .iter()
        .map(|s| match s {
            Some(n) => Ok(*n as usize),
            None => batch.ok_or_else(|| InterpError::BatchUnbound { op: OP.to_string() }),
        })
        .collect::<Result<_, _>>()?;
    for (i, (t, map)) in inputs.iter().zip(&g.maps).enumerate() {
        if t.rank() != map.results.len() {
            return Err(InterpError::malformed(OP, format!("operand #{i} has rank {}, its map {map} gives {}", t.rank(), map.results.len())));
        }
        if g.padded.contains(&i) {
            continue;
        }
        for (j, e) in map.results.iter().enumerate() {
            if let Some((lo, hi)) = e.range(&sizes)
                && (lo < 0 || hi >= t.shape()[j] as i64)
            {
                return Err(InterpError::malformed(OP, format!("operand #{i}: index {e} spans [{lo}, {hi}], outside dim {j} of size {}", t.shape()[j])));
            }
        }
    }
    // The interpreter materializes every operand over the parallel points and
    // walks the reduction points one by one: refuse what cannot fit.
    const MAX_POINTS: usize = 1 << 32;
    if sizes.iter().try_fold(1usize, |a, &n| a.checked_mul(n)).is_none_or(|n| n > MAX_POINTS) {
        return Err(InterpError::unsupported(OP, format!("an iteration space of sizes {sizes:?} is too large to interpret")));
    }
    let par: Vec<usize> = (0..sizes.len()).filter(|&k| !g.reduction[k]).collect();
    let red: Vec<usize> = (0..sizes.len()).filter(|&k| g.reduction[k]).collect();
    let par_shape: Vec<usize> = par.iter().map(|&k| sizes[k]).collect();
    let red_shape: Vec<usize> = red.iter().map(|&k| sizes[k]).collect();
    let data: Vec<Vec<f64>> = inputs.iter().map(|t| t.to_f64_vec()).collect();
    let body = Body::of(f, o)?;

    // Operand i at every parallel point, the reduction dims fixed at `r`.
    let gather = |i: usize, r: &[usize]| -> Result<Tensor, InterpError> {
        let t = inputs[i];
        let st = strides(t.shape());
        let mut idx = vec![0usize; sizes.len()];
        for (&k, &v) in red.iter().zip(r) {
            idx[k] = v;
        }
        let values: Vec<f64> = points(&par_shape)
            .map(|p| {
                for (&k, &v) in par.iter().zip(&p) {
                    idx[k] = v;
                }
                let mut flat = 0usize;
                for (j, e) in g.maps[i].results.iter().enumerate() {
                    let at = e.eval(&idx);
                    if at < 0 || at >= t.shape()[j] as i64 {
                        return g.pad;
                    }
                    flat += at as usize * st[j];
                }
                data[i][flat]
            })
            .collect();
        Tensor::from_f64_values(&par_shape, &values, t.dtype()).map_err(|e| InterpError::malformed(OP, e.to_string()))
    };

    if g.reduces()
        && g.dtype.is_float()
        && let Some(fold) = body.fold()
    {
        return fold_reduction(&fold, &body, &g, inputs, &data, &sizes, &par, batch).map(|y| vec![y]);
    }
    let mut acc = if g.reduces() {
        Some(Tensor::from_f64_values(&par_shape, &vec![g.init; par_shape.iter().product()], g.dtype).map_err(|e| InterpError::malformed(OP, e.to_string()))?)
    } else {
        None
    };
    let mut results = None;
    let reduction_points: Box<dyn Iterator<Item = Vec<usize>>> = if g.reduces() { Box::new(points(&red_shape)) } else { Box::new(std::iter::once(Vec::new())) };
    for r in reduction_points {
        let r = &r;
        let mut args = (0..inputs.len()).map(|i| gather(i, r)).collect::<Result<Vec<_>, _>>()?;
        if let Some(a) = acc.take() {
            args.push(a);
        }
        let mut ys = body.run(&args, batch)?;
        if g.reduces() {
            acc = ys.pop();
        } else {
            results = Some(ys);
        }
    }
    let ys = match acc {
        Some(a) => vec![a],
        None => results.ok_or_else(|| InterpError::malformed(OP, "the kernel computed nothing"))?,
    };
    if ys.len() != g.results() {
        return Err(InterpError::malformed(OP, format!("the body yields {} value(s) for {} result(s)", ys.len(), g.results())));
    }
    ys.into_iter()
        .enumerate()
        .map(|(r, y)| {
            let y = if y.shape() == par_shape.as_slice() { y } else { broadcast(&y, &par_shape, g.dtypes[r])? };
            scatter(&y, &par, &g, &sizes, r)
        })
        .collect()
}

/// A reduction whose body is `combine(acc, t)` with `t` independent of the
/// accumulator: `t` is evaluated once over the whole iteration space (one
/// `eval_op` per body op, not one per reduction point), then folded along
/// the reduction dims in row-major order, each step rounded to the result's
/// element type as the point-by-point definition rounds it.
#[allow(clippy::too_many_arguments)]
fn fold_reduction(fold: &Fold, body: &Body, g: &GenericAttrs, inputs: &[&Tensor], data: &[Vec<f64>], sizes: &[usize], par: &[usize], batch: Option<usize>) -> Result<Tensor, InterpError> {
    let total: usize = sizes.iter().product();
    let mut args = Vec::with_capacity(inputs.len() + 1);
    for (i, t) in inputs.iter().enumerate() {
        let st = strides(t.shape());
        let values: Vec<f64> = points(sizes)
            .map(|p| {
                let mut flat = 0usize;
                for (j, e) in g.maps[i].results.iter().enumerate() {
                    let at = e.eval(&p);
                    if at < 0 || at >= t.shape()[j] as i64 {
                        return g.pad;
                    }
                    flat += at as usize * st[j];
                }
                data[i][flat]
            })
            .collect();
        args.push(Tensor::from_f64_values(sizes, &values, t.dtype()).map_err(|e| InterpError::malformed(OP, e.to_string()))?);
    }
    // The accumulator is not read on the way to the term; any value will do.
    args.push(Tensor::zeros(sizes, g.dtype));
    let term = body.value(&args, batch, fold.term)?.to_f64_vec();
    let term = if term.len() == 1 && total != 1 { vec![term[0]; total] } else { term };
    let par_shape: Vec<usize> = par.iter().map(|&k| sizes[k]).collect();
    let par_st = strides(&par_shape);
    let mut out = vec![g.init; par_shape.iter().product()];
    let round = |v: f64| match g.dtype {
        DType::F32 => v as f32 as f64,
        _ => v,
    };
    for (n, p) in points(sizes).enumerate() {
        let o: usize = par.iter().zip(&par_st).map(|(&k, s)| p[k] * s).sum();
        let (a, t) = (out[o], term[n]);
        out[o] = match fold.combine {
            OpKind::Add => round(a + t),
            OpKind::Maximum if a.is_nan() || t.is_nan() => f64::NAN,
            OpKind::Maximum => a.max(t),
            OpKind::Minimum if a.is_nan() || t.is_nan() => f64::NAN,
            _ => a.min(t),
        };
    }
    let y = Tensor::from_f64_values(&par_shape, &out, g.dtype).map_err(|e| InterpError::malformed(OP, e.to_string()))?;
    scatter(&y, par, g, sizes, 0)
}

/// A reduction body `combine(acc, term)`.
struct Fold {
    combine: OpKind,
    term: ValueId,
}

/// A body value that did not depend on any operand is a rank-0 tensor:
/// stretch it over the parallel points.
fn broadcast(y: &Tensor, shape: &[usize], dtype: DType) -> Result<Tensor, InterpError> {
    let v = y.to_f64_vec();
    if v.len() != 1 {
        return Err(InterpError::malformed(OP, format!("the body computed {}, not one element per point of {shape:?}", y.describe())));
    }
    let n: usize = shape.iter().product();
    Tensor::from_f64_values(shape, &vec![v[0]; n], dtype).map_err(|e| InterpError::malformed(OP, e.to_string()))
}

/// Writes the values over the parallel points (dims in iteration order) to
/// result `r`'s layout, which its map may permute.
fn scatter(y: &Tensor, par: &[usize], g: &GenericAttrs, sizes: &[usize], r: usize) -> Result<Tensor, InterpError> {
    let out_map = g.result_map(r);
    let out_dims: Vec<usize> = out_map.results.iter().map(|e| e.as_dim().expect("a projection")).collect();
    let out_shape: Vec<usize> = out_dims.iter().map(|&k| sizes[k]).collect();
    if out_dims == par {
        return Ok(y.clone());
    }
    let st = strides(&out_shape);
    let src = y.to_f64_vec();
    let mut dst = vec![0.0; src.len()];
    let par_shape: Vec<usize> = par.iter().map(|&k| sizes[k]).collect();
    for (i, p) in points(&par_shape).enumerate() {
        let flat: usize = out_dims.iter().zip(&st).map(|(k, s)| p[par.iter().position(|q| q == k).expect("parallel")] * s).sum();
        dst[flat] = src[i];
    }
    Tensor::from_f64_values(&out_shape, &dst, g.dtypes[r]).map_err(|e| InterpError::malformed(OP, e.to_string()))
}

/// A kernel body as a list of tensor ops over the gathered operands.
struct Body {
    args: Vec<ValueId>,
    ops: Vec<(OpKind, Attrs, Vec<ValueId>, Option<ValueId>)>,
    /// One value per result (the new accumulator, for reductions).
    yielded: Vec<ValueId>,
}

impl Body {
    fn of(f: &Function, o: OpId) -> Result<Body, InterpError> {
        let op = f.op(o);
        let block = op.regions.first().and_then(|r| r.blocks.first()).ok_or_else(|| InterpError::malformed(OP, "the kernel has no body"))?;
        let block = f.block(*block);
        let mut ops = Vec::new();
        let mut yielded = None;
        for &b in &block.ops {
            let d = f.op(b);
            if d.kind == OpKind::Yield {
                yielded = Some(d.operands.clone()).filter(|v| !v.is_empty());
            } else {
                ops.push((d.kind, d.attrs.clone(), d.operands.clone(), d.results.first().copied()));
            }
        }
        let yielded = yielded.ok_or_else(|| InterpError::malformed(OP, "the body does not end with kernel.yield"))?;
        Ok(Body { args: block.args.clone(), ops, yielded })
    }

    /// The fold form of a reduction body (call it for reductions only: the
    /// accumulator is the last block argument): its yielded value is
    /// `add`/`maximum`/`minimum` of the accumulator and a term that no other
    /// op computes from the accumulator.
    fn fold(&self) -> Option<Fold> {
        let acc = *self.args.last()?;
        let &[yielded] = self.yielded.as_slice() else { return None };
        let (kind, _, args, _) = self.ops.iter().find(|(_, _, _, r)| *r == Some(yielded))?;
        if !matches!(kind, OpKind::Add | OpKind::Maximum | OpKind::Minimum) {
            return None;
        }
        let term = match args.as_slice() {
            [a, t] | [t, a] if *a == acc && *t != acc => *t,
            _ => return None,
        };
        let reads_acc = self.ops.iter().filter(|(_, _, _, r)| *r != Some(yielded)).any(|(_, _, a, _)| a.contains(&acc));
        (!reads_acc).then_some(Fold { combine: *kind, term })
    }

    /// The body's value `target` on these arguments.
    fn value(&self, args: &[Tensor], batch: Option<usize>, target: ValueId) -> Result<Tensor, InterpError> {
        let mut env: HashMap<ValueId, Tensor> = self.args.iter().copied().zip(args.iter().cloned()).collect();
        for (kind, attrs, operands, result) in &self.ops {
            if env.contains_key(&target) {
                break;
            }
            let y = self.eval(*kind, attrs, operands, &env, batch)?;
            if let Some(r) = result {
                env.insert(*r, y);
            }
        }
        env.remove(&target).ok_or_else(|| InterpError::malformed(OP, "the body value is not defined"))
    }

    fn eval(&self, kind: OpKind, attrs: &Attrs, operands: &[ValueId], env: &HashMap<ValueId, Tensor>, batch: Option<usize>) -> Result<Tensor, InterpError> {
        if kind == OpKind::ScalarConstant {
            let view = AttrView::new(kind, attrs);
            let value = view.float("value").map_err(|m| InterpError::malformed(kind.name(), m))?;
            let dtype = view.dtype("dtype").map_err(|m| InterpError::malformed(kind.name(), m))?;
            return Tensor::from_f64_values(&[], &[value], dtype).map_err(|e| InterpError::malformed(kind.name(), e.to_string()));
        }
        let ins = operands
            .iter()
            .map(|v| env.get(v).ok_or_else(|| InterpError::malformed(kind.name(), format!("body value %{} is not defined", v.0))))
            .collect::<Result<Vec<_>, _>>()?;
        eval_op(kind, attrs, &ins, batch)
    }

    fn run(&self, args: &[Tensor], batch: Option<usize>) -> Result<Vec<Tensor>, InterpError> {
        let mut env: HashMap<ValueId, Tensor> = self.args.iter().copied().zip(args.iter().cloned()).collect();
        for (kind, attrs, operands, result) in &self.ops {
            let y = if *kind == OpKind::ScalarConstant {
                let view = AttrView::new(*kind, attrs);
                let value = view.float("value").map_err(|m| InterpError::malformed(kind.name(), m))?;
                let dtype = view.dtype("dtype").map_err(|m| InterpError::malformed(kind.name(), m))?;
                Tensor::from_f64_values(&[], &[value], dtype).map_err(|e| InterpError::malformed(kind.name(), e.to_string()))?
            } else {
                let ins = operands
                    .iter()
                    .map(|v| env.get(v).ok_or_else(|| InterpError::malformed(kind.name(), format!("body value %{} is not defined", v.0))))
                    .collect::<Result<Vec<_>, _>>()?;
                eval_op(*kind, attrs, &ins, batch)?
            };
            if let Some(r) = result {
                env.insert(*r, y);
            }
        }
        self.yielded.iter().map(|v| env.get(v).cloned().ok_or_else(|| InterpError::malformed(OP, "the yielded value is not defined"))).collect()
    }
}
