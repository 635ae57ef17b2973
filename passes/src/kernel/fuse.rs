//! `fuse-kernels`: the fusion module. Three rewrites over a kernel-level
//! function, each decision taken by the cost model ([`super::cost`]):
//!
//! 1. **Contraction epilogues.** A `kernel.matmul` / `kernel.conv2d` whose
//!    only user is a kernel adding a per-channel bias takes the bias as its
//!    third operand; one whose only user is a ReLU kernel takes `relu = true`.
//!    The epilogue then runs on each output block while it is in cache, and
//!    the kernel and its result's round trip through memory disappear.
//! 2. **Producer into consumer.** An all-parallel `kernel.generic` P whose
//!    users are all generics is inlined into each of them: P's body replaces
//!    the consumer's read of P's result, and P's operands are read through
//!    P's maps composed with the consumer's (broadcasts, transposes and
//!    slices fuse this way at no cost: they are only maps). The rewrite is
//!    taken when the estimated time of P and its users together is not
//!    lower than that of the fused users: it saves P's result's write and
//!    reads, and costs P's body once more per point of every user whose
//!    iteration space is larger than P's (a reduction over P, a broadcast
//!    of P), plus P's operands read by every user.
//! 3. **Several results.** An all-parallel generic P whose result is needed
//!    elsewhere too (returned, or read by a contraction or any other
//!    non-generic op) cannot disappear, but its one generic consumer C can
//!    compute it: when C is all-parallel over the same points (it reads
//!    P's result through a map that visits every element once: a
//!    permutation of C's dims onto P's whole shape), P's body is inlined
//!    into C as in 2 and its value also yielded as an extra result of C,
//!    written through that map. Taken when the merged kernel's estimated
//!    time is not above P's and C's: it saves P's result's read by C and a
//!    second read of the operands they share (an optimizer's gradient),
//!    and costs no FLOPs (each body still runs once per point). A
//!    training step's optimizer update so becomes one kernel per
//!    parameter: Adam's `m'` and `v'` are merged into the kernel of `p'`
//!    (reading p, g, m, v, writing p', m', v'), as are SGD's momentum
//!    buffer, RMSprop's and Adagrad's squared-gradient state. The merged
//!    kernel sits where C was, so every other user of P's result must come
//!    after C.
//!
//! A consumer never absorbs a producer it reads through a padded operand
//! (the padding value must stand for P's result, not be fed to P's body).
//!
//! **Who decides.** Given the e-graph pass's fusion plan ([`KernelPlan`],
//! from `egraph::plan`), rewrites 2 and 3 take, for the kernel computing a
//! planned `dl` op's result, the plan's decision instead of the cost model's
//! (still only where the rewrite is legal). The cost model decides the
//! kernels the plan has no node for (those inside an op that lowers to
//! several, such as softmax) and everything when there is no plan.

use super::cost::{Cost, generic_cost, op_cost};
use dlc_ir::kernel::{Generic, Output, Scalar};
use dlc_ir::{AffineExpr, AffineMap, Attr, AttrView, Dim, Function, OpId, OpKind, ValueDef, ValueId};
use std::collections::HashMap;

/// The fusion pass.
pub struct FuseKernels;

impl crate::Pass for FuseKernels {
    fn name(&self) -> &'static str {
        "fuse-kernels"
    }

    fn summary(&self) -> &'static str {
        "fuse bias/ReLU epilogues into contractions and producer kernels into their consumers (one with an extra result where the producer's is needed elsewhere), by the bytes/FLOPs cost model"
    }

    fn run(&self, f: &mut Function) -> bool {
        self.try_run(f).unwrap_or(false)
    }

    fn try_run(&self, f: &mut Function) -> Result<bool, String> {
        fuse_traced(f).map(|(changed, _)| changed)
    }
}

/// Each op a fusion emitted, with the ops it replaced (earlier fused ops
/// among them), in the order the fusions happened.
pub type FusionTrace = Vec<(OpId, Vec<OpId>)>;

/// A decision the e-graph pass's fusion plan (`egraph::plan`) took for a
/// producer kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fuse {
    /// Inlined into every kernel that reads its result (rewrite 2).
    Inline,
    /// Computed by its one consumer kernel as an extra result (rewrite 3).
    Merge,
}

/// The plan as the kernel level sees it: for each kernel that computes the
/// result of a `dl` op the plan covers, the decision (`None`: the kernel
/// stays on its own). Rewrites 2 and 3 follow it for those kernels instead
/// of asking the cost model, and keep it true as kernels are replaced (a
/// fused consumer inherits the consumer's entry). Kernels it does not list
/// (the inner kernels of an op that lowers to several) are decided by the
/// cost model as without a plan.
pub type KernelPlan = HashMap<OpId, Option<Fuse>>;

/// The pass, also saying which ops each fused op replaced, so that a report
/// can give a fused kernel's cost before fusion (`kernel::explain_with`).
/// A producer inlined into several consumers is replaced by each of them.
pub fn fuse_traced(f: &mut Function) -> Result<(bool, FusionTrace), String> {
    fuse_traced_with(f, None)
}

/// [`fuse_traced`], following `plan` where it has a decision.
pub fn fuse_traced_with(f: &mut Function, plan: Option<&KernelPlan>) -> Result<(bool, FusionTrace), String> {
    let mut trace = Vec::new();
    let mut plan = plan.cloned();
    let mut changed = false;
    while epilogue_once(f, &mut trace)? {
        changed = true;
    }
    while sweep(f, &mut trace, &mut plan, producer)? {
        changed = true;
    }
    while sweep(f, &mut trace, &mut plan, sibling)? {
        changed = true;
    }
    Ok((changed, trace))
}

/// What the plan says about producer `p`: `Some(true)` take the rewrite
/// `want` without asking the cost model, `Some(false)` leave it, `None` no
/// decision (ask the cost model).
fn planned(plan: &Option<KernelPlan>, p: OpId, want: Fuse) -> Option<bool> {
    plan.as_ref()?.get(&p).map(|d| *d == Some(want))
}

/// Moves the plan's entry of `old` to `new`, which replaced it.
fn replanned(plan: &mut Option<KernelPlan>, old: OpId, new: OpId) {
    if let Some(d) = plan.as_mut().and_then(|p| p.remove(&old)) {
        plan.as_mut().expect("it had the entry").insert(new, d);
    }
}

/// Users of each value among the top-level ops (op ids), and whether the
/// function returns it.
fn users(f: &Function) -> (Vec<Vec<OpId>>, Vec<bool>) {
    let mut u = vec![Vec::new(); f.num_values()];
    for &o in f.body_ops() {
        for &v in &f.op(o).operands {
            if !u[v.0 as usize].contains(&o) {
                u[v.0 as usize].push(o);
            }
        }
    }
    let mut ret = vec![false; f.num_values()];
    for v in f.returned_values() {
        ret[v.0 as usize] = true;
    }
    (u, ret)
}

/// Puts `new` (appended last) where `at` is, and unlinks `gone`.
fn relink(f: &mut Function, new: OpId, at: OpId, gone: &[OpId]) {
    let entry = f.entry();
    let mut ops: Vec<OpId> = f.body_ops().iter().copied().filter(|o| *o != new).collect();
    let pos = ops.iter().position(|&o| o == at).expect("the replaced op is linked");
    ops.insert(pos, new);
    ops.retain(|o| !gone.contains(o));
    f.set_block_ops(entry, ops);
}

/// The sole generic user of `v` (not returned), if there is exactly one.
fn sole_generic_user(f: &Function, v: ValueId) -> Option<OpId> {
    let (u, ret) = users(f);
    match u[v.0 as usize].as_slice() {
        [o] if !ret[v.0 as usize] && f.op(*o).kind == OpKind::Generic => Some(*o),
        _ => None,
    }
}

/// One epilogue fusion, if any applies.
fn epilogue_once(f: &mut Function, trace: &mut FusionTrace) -> Result<bool, String> {
    for o in f.body_ops().to_vec() {
        let op = f.op(o).clone();
        if !matches!(op.kind, OpKind::KernelMatmul | OpKind::KernelConv2d) || op.results.len() != 1 {
            continue;
        }
        let y = op.results[0];
        let Some(yt) = f.ty(y).as_tensor().cloned() else { continue };
        let relu = AttrView::new(op.kind, &op.attrs).bool("relu")?;
        let Some(u) = sole_generic_user(f, y) else { continue };
        let (g, operands) = Generic::read(f, u)?;
        let identity = |m: &AffineMap| *m == AffineMap::identity(yt.rank());
        if g.reduces() || !g.extra.is_empty() || !identity(&g.out_map) || g.dtype != yt.dtype {
            continue;
        }
        let body: Vec<&Scalar> = g.body.iter().collect();
        let mut new_operands = op.operands.clone();
        let mut attrs = op.attrs.clone();
        match (body.as_slice(), operands.as_slice()) {
            // relu(y)
            ([Scalar::Operand(0), Scalar::Op { kind: OpKind::Relu, args, .. }], [a]) if *a == y && args == &[0] && identity(&g.maps[0]) && !relu => {
                attrs.insert("relu".into(), Attr::Bool(true));
            }
            // y + bias, either order, before any ReLU.
            ([Scalar::Operand(0), Scalar::Operand(1), Scalar::Op { kind: OpKind::Add, args, .. }], [a, b]) if op.operands.len() == 2 && !relu && (args == &[0, 1] || args == &[1, 0]) => {
                let (yi, bias) = if *a == y { (0, *b) } else if *b == y { (1, *a) } else { continue };
                if bias == y || !identity(&g.maps[yi]) || !channel_map(&g.maps[1 - yi], op.kind, yt.rank()) {
                    continue;
                }
                if f.ty(bias).as_tensor().is_none_or(|t| t.shape.contains(&Dim::Dynamic)) {
                    continue;
                }
                new_operands.push(bias);
            }
            _ => continue,
        }
        let mut b = dlc_ir::Builder::at_entry(f);
        let Ok(r) = b.op(op.kind, &new_operands, attrs) else { continue };
        let new = match f.value(r).def {
            ValueDef::OpResult { op, .. } => op,
            ValueDef::BlockArg { .. } => unreachable!("an op result"),
        };
        let gr = f.op(u).results[0];
        f.replace_all_uses(gr, r);
        relink(f, new, u, &[o, u]);
        trace.push((new, vec![o, u]));
        return Ok(true);
    }
    Ok(false)
}

/// True when `m` reads one value per output channel: the last dim for a
/// matmul, dim 1 (of N, C, H, W) for a conv2d, all other results constant 0.
fn channel_map(m: &AffineMap, kind: OpKind, rank: usize) -> bool {
    let channel = if kind == OpKind::KernelMatmul { rank - 1 } else { 1 };
    let mut found = false;
    for e in &m.results {
        match e.as_dim() {
            Some(k) if k == channel && !found => found = true,
            Some(_) => return false,
            None if *e == AffineExpr::constant(0) => {}
            None => return false,
        }
    }
    found
}

/// Inlines producer `p` (result read by consumer `c` at the operand
/// positions where `c_operands` holds it) into `c`. `None` when the
/// combination is not allowed (padding). With `keep`, `p`'s value is also
/// yielded as a last extra result, written where `c` read it (all reads
/// must use one map, see [`siblings`]).
fn inline(p: &Generic, p_operands: &[ValueId], p_result: ValueId, c: &Generic, c_operands: &[ValueId], keep: bool) -> Option<(Generic, Vec<ValueId>)> {
    let reads: Vec<usize> = (0..c_operands.len()).filter(|&i| c_operands[i] == p_result).collect();
    if keep && (reads.is_empty() || reads.iter().any(|&i| c.maps[i] != c.maps[reads[0]])) {
        return None;
    }
    if reads.iter().any(|i| c.padded.contains(i)) {
        return None;
    }
    if !p.padded.is_empty() && !c.padded.is_empty() && p.pad.to_bits() != c.pad.to_bits() {
        return None;
    }
    // P's iteration dim k is P's result dim j with out_map[j] = d_k.
    let mut inverse = vec![usize::MAX; p.rank()];
    for (j, e) in p.out_map.results.iter().enumerate() {
        inverse[e.as_dim()?] = j;
    }
    if inverse.contains(&usize::MAX) {
        return None;
    }
    let mut operands: Vec<ValueId> = Vec::new();
    let mut maps: Vec<AffineMap> = Vec::new();
    let mut padded: Vec<usize> = Vec::new();
    let mut slot = |v: ValueId, m: AffineMap, pad: bool, operands: &mut Vec<ValueId>, maps: &mut Vec<AffineMap>| -> usize {
        if let Some(i) = (0..operands.len()).find(|&i| operands[i] == v && maps[i] == m && padded.contains(&i) == pad) {
            return i;
        }
        operands.push(v);
        maps.push(m);
        if pad {
            padded.push(operands.len() - 1);
        }
        operands.len() - 1
    };
    let mut body: Vec<Scalar> = Vec::new();
    let mut remap = vec![0usize; c.body.len()];
    let mut kept = None;
    for (n, s) in c.body.iter().enumerate() {
        remap[n] = match s {
            Scalar::Operand(i) if reads.contains(i) => {
                let sub: Vec<AffineExpr> = (0..p.rank()).map(|k| c.maps[*i].results[inverse[k]].clone()).collect();
                let mut pmap = vec![0usize; p.body.len()];
                for (m, ps) in p.body.iter().enumerate() {
                    let new = match ps {
                        Scalar::Operand(j) => {
                            let composed = AffineMap { dims: c.rank(), results: p.maps[*j].results.iter().map(|e| e.compose(&sub)).collect() };
                            Scalar::Operand(slot(p_operands[*j], composed, p.padded.contains(j), &mut operands, &mut maps))
                        }
                        Scalar::Acc => return None,
                        Scalar::Const { .. } => ps.clone(),
                        Scalar::Op { kind, attrs, args } => Scalar::Op { kind: *kind, attrs: attrs.clone(), args: args.iter().map(|&a| pmap[a]).collect() },
                    };
                    body.push(new);
                    pmap[m] = body.len() - 1;
                }
                kept = Some(pmap[p.result]);
                pmap[p.result]
            }
            Scalar::Operand(i) => {
                let k = slot(c_operands[*i], c.maps[*i].clone(), c.padded.contains(i), &mut operands, &mut maps);
                body.push(Scalar::Operand(k));
                body.len() - 1
            }
            Scalar::Op { kind, attrs, args } => {
                body.push(Scalar::Op { kind: *kind, attrs: attrs.clone(), args: args.iter().map(|&a| remap[a]).collect() });
                body.len() - 1
            }
            other => {
                body.push(other.clone());
                body.len() - 1
            }
        };
    }
    let pad = if p.padded.is_empty() { c.pad } else { p.pad };
    let mut fused = p.fused.clone();
    fused.extend(c.fused.iter().cloned());
    let mut extra: Vec<Output> = c.extra.iter().map(|o| Output { node: remap[o.node], ..o.clone() }).collect();
    if keep {
        extra.push(Output { map: c.maps[reads[0]].clone(), dtype: p.dtype, node: kept? });
    }
    let mut g = Generic { maps, padded, pad, fused, body, result: remap[c.result], extra, ..c.clone() };
    let keep = g.compact();
    let operands = keep.iter().map(|&i| operands[i]).collect();
    Some((g, operands))
}

/// The rewrite a sweep applies to one producer.
type Rewrite = fn(&mut Function, OpId, &mut FusionTrace, &mut Option<KernelPlan>) -> Result<bool, String>;

/// Tries `rewrite` on each generic from the last op to the first (each
/// once, skipping those an earlier rewrite of the sweep removed); the pass
/// repeats sweeps until one changes nothing (a fusion can make an earlier
/// producer's consumers all fusable). A few linear sweeps, not the
/// quadratic cost of restarting after every fusion.
fn sweep(f: &mut Function, trace: &mut FusionTrace, plan: &mut Option<KernelPlan>, rewrite: Rewrite) -> Result<bool, String> {
    let mut changed = false;
    for p_op in f.body_ops().to_vec().into_iter().rev() {
        if f.op(p_op).kind == OpKind::Generic && f.body_ops().contains(&p_op) {
            changed |= rewrite(f, p_op, trace, plan)?;
        }
    }
    Ok(changed)
}

/// Fuses generic `p_op` into all its consumers when the plan says so, or
/// without a decision, when that pays off.
fn producer(f: &mut Function, p_op: OpId, trace: &mut FusionTrace, plan: &mut Option<KernelPlan>) -> Result<bool, String> {
    let decided = planned(plan, p_op, Fuse::Inline);
    if decided == Some(false) {
        return Ok(false);
    }
    let (u, ret) = users(f);
    {
        let &[pr] = f.op(p_op).results.as_slice() else { return Ok(false) };
        let consumers = &u[pr.0 as usize];
        if ret[pr.0 as usize] || consumers.is_empty() || consumers.iter().any(|&c| f.op(c).kind != OpKind::Generic) {
            return Ok(false);
        }
        let (p, p_operands) = Generic::read(f, p_op)?;
        if p.reduces() {
            return Ok(false);
        }
        let mut fused = Vec::new();
        let mut before: Cost = op_cost(f, p_op);
        let mut after = Cost::default();
        for &c_op in consumers {
            let (c, c_operands) = Generic::read(f, c_op)?;
            let Some((g, ops)) = inline(&p, &p_operands, pr, &c, &c_operands, false) else { break };
            let outs: Vec<_> = f.op(c_op).results.iter().map(|&r| f.ty(r).clone()).collect();
            before = before + op_cost(f, c_op);
            after = after + generic_cost(f, &g, &ops, &outs);
            fused.push((c_op, g, ops));
        }
        if fused.len() != consumers.len() || (decided.is_none() && after.time_ns() > before.time_ns()) {
            return Ok(false);
        }
        let mut gone = vec![p_op];
        // A consumer may read another consumer's result: follow replacements.
        let mut replaced: Vec<(ValueId, ValueId)> = Vec::new();
        for (c_op, g, ops) in fused {
            let ops: Vec<ValueId> = ops.iter().map(|v| replaced.iter().find(|(o, _)| o == v).map_or(*v, |(_, n)| *n)).collect();
            let rs = g.emit_all(f, &ops)?;
            let new = f.body_ops().last().copied().expect("just emitted");
            for (old, r) in f.op(c_op).results.clone().into_iter().zip(rs) {
                f.replace_all_uses(old, r);
                replaced.push((old, r));
            }
            relink(f, new, c_op, &[]);
            trace.push((new, vec![p_op, c_op]));
            replanned(plan, c_op, new);
            gone.push(c_op);
        }
        let entry = f.entry();
        let ops: Vec<OpId> = f.body_ops().iter().copied().filter(|o| !gone.contains(o)).collect();
        f.set_block_ops(entry, ops);
        Ok(true)
    }
}

/// Merges generic `p_op`, whose result is needed elsewhere, into its one
/// generic consumer as an extra result (rewrite 3 of the module docs), when
/// the plan says so, or without a decision, when that pays off. Sweeps
/// repeat until nothing changes: the kernel of `p'` takes `m'`, then `v'`.
fn sibling(f: &mut Function, p_op: OpId, trace: &mut FusionTrace, plan: &mut Option<KernelPlan>) -> Result<bool, String> {
    let decided = planned(plan, p_op, Fuse::Merge);
    if decided == Some(false) {
        return Ok(false);
    }
    let (u, ret) = users(f);
    let &[pr] = f.op(p_op).results.as_slice() else { return Ok(false) };
    let users = &u[pr.0 as usize];
    let generic_users: Vec<OpId> = users.iter().copied().filter(|&o| f.op(o).kind == OpKind::Generic).collect();
    let &[c_op] = generic_users.as_slice() else { return Ok(false) };
    let elsewhere = ret[pr.0 as usize] || users.len() > 1;
    if !elsewhere {
        return Ok(false); // producer fusion's case
    }
    // Every other user comes after the consumer, where the merged kernel goes.
    let pos = |o: OpId| f.body_ops().iter().position(|&x| x == o);
    let Some(c_pos) = pos(c_op) else { return Ok(false) };
    if users.iter().any(|&o| o != c_op && pos(o).is_none_or(|p| p < c_pos)) {
        return Ok(false);
    }
    let (p, p_operands) = Generic::read(f, p_op)?;
    let (c, c_operands) = Generic::read(f, c_op)?;
    if p.reduces() || c.reduces() {
        return Ok(false);
    }
    // C reads P's whole result once per point: a permutation of C's dims
    // onto exactly P's shape.
    let Some(read) = c_operands.iter().position(|&v| v == pr) else { return Ok(false) };
    let map = &c.maps[read];
    let mut dims: Vec<usize> = map.results.iter().filter_map(|e| e.as_dim()).collect();
    let shape: Vec<Dim> = dims.iter().map(|&k| c.dim(k)).collect();
    dims.sort_unstable();
    let whole = dims == (0..c.rank()).collect::<Vec<_>>() && map.results.len() == c.rank();
    if !whole || f.ty(pr).as_tensor().is_none_or(|t| t.shape != shape) {
        return Ok(false);
    }
    let Some((g, ops)) = inline(&p, &p_operands, pr, &c, &c_operands, true) else { return Ok(false) };
    let mut outs: Vec<_> = f.op(c_op).results.iter().map(|&r| f.ty(r).clone()).collect();
    outs.push(f.ty(pr).clone());
    let before = op_cost(f, p_op) + op_cost(f, c_op);
    let after = generic_cost(f, &g, &ops, &outs);
    if decided.is_none() && after.time_ns() > before.time_ns() {
        return Ok(false);
    }
    let rs = g.emit_all(f, &ops)?;
    let new = f.body_ops().last().copied().expect("just emitted");
    let olds: Vec<ValueId> = f.op(c_op).results.iter().copied().chain([pr]).collect();
    for (old, r) in olds.into_iter().zip(rs) {
        f.replace_all_uses(old, r);
    }
    relink(f, new, c_op, &[p_op, c_op]);
    trace.push((new, vec![p_op, c_op]));
    replanned(plan, c_op, new);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::cost;
    use super::*;
    use dlc_backends::Tensor;

    /// Adam's update of one parameter, its moments returned beside it.
    const ADAM: &str = r#"module {
  func.func @adam(%p: tensor<5x7xf32>, %g: tensor<5x7xf32>, %m: tensor<5x7xf32>, %v: tensor<5x7xf32>) -> (tensor<5x7xf32>, tensor<5x7xf32>, tensor<5x7xf32>) {
    %b1 = "dl.constant"() {value = dense<0.1> : tensor<f32>} : () -> tensor<f32>
    %b2 = "dl.constant"() {value = dense<0.999> : tensor<f32>} : () -> tensor<f32>
    %c2 = "dl.constant"() {value = dense<0.001> : tensor<f32>} : () -> tensor<f32>
    %lr = "dl.constant"() {value = dense<0.01> : tensor<f32>} : () -> tensor<f32>
    %eps = "dl.constant"() {value = dense<1.0e-8> : tensor<f32>} : () -> tensor<f32>
    %d = "dl.sub"(%g, %m) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %s = "dl.mul"(%b1, %d) : (tensor<f32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %m2 = "dl.add"(%m, %s) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %vs = "dl.mul"(%v, %b2) : (tensor<5x7xf32>, tensor<f32>) -> tensor<5x7xf32>
    %gg = "dl.mul"(%g, %g) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %gs = "dl.mul"(%c2, %gg) : (tensor<f32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %v2 = "dl.add"(%vs, %gs) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %r = "dl.sqrt"(%v2) : (tensor<5x7xf32>) -> tensor<5x7xf32>
    %den = "dl.add"(%r, %eps) : (tensor<5x7xf32>, tensor<f32>) -> tensor<5x7xf32>
    %num = "dl.mul"(%lr, %m2) : (tensor<f32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %u = "dl.div"(%num, %den) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %p2 = "dl.sub"(%p, %u) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    return %p2, %m2, %v2 : tensor<5x7xf32>, tensor<5x7xf32>, tensor<5x7xf32>
  }
}"#;

    fn args(n: usize, shape: &[usize]) -> Vec<Tensor> {
        let len: usize = shape.iter().product();
        (0..n).map(|a| Tensor::from_f64_values(shape, &(0..len).map(|i| ((i * 7 + a * 3) % 11) as f64 / 10.0 + 0.05).collect::<Vec<_>>(), dlc_ir::DType::F32).unwrap()).collect()
    }

    #[test]
    fn an_update_and_its_returned_state_become_one_kernel_with_three_results() {
        let f = dlc_ir::parse_module(ADAM).unwrap().functions.remove(0);
        let mut k = f.clone();
        crate::kernel::to_kernels(&mut k).unwrap();
        let generics: Vec<OpId> = k.body_ops().iter().copied().filter(|&o| k.op(o).kind == OpKind::Generic).collect();
        assert_eq!(generics.len(), 1, "{}", dlc_ir::print_function(&k));
        let (g, operands) = Generic::read(&k, generics[0]).unwrap();
        assert_eq!((g.extra.len(), operands.len()), (2, 4), "three results from p, g, m, v each read once");
        // Cost: 4 tensors read and 3 written, against 3 kernels before.
        let after = cost::function_cost(&k);
        let mut lowered = f.clone();
        crate::kernel::to_kernels_with(&mut lowered, false).unwrap();
        assert_eq!(after.bytes, 7.0 * 35.0 * 4.0);
        assert!(cost::function_cost(&lowered).bytes > after.bytes);
        let want = dlc_backends::run(&f, &args(4, &[5, 7])).unwrap();
        assert_eq!(dlc_backends::run(&k, &args(4, &[5, 7])).unwrap(), want);
    }

    #[test]
    fn a_value_read_before_its_consumer_stays_a_kernel_of_its_own() {
        // %b feeds a matmul before the kernel that reads it: the merged
        // kernel would sit after the matmul, so nothing merges.
        let text = r#"module {
  func.func @f(%x: tensor<4x4xf32>, %y: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
    %b = "dl.add"(%x, %y) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %mm = "dl.matmul"(%b, %y) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %n = "dl.neg"(%b) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    return %mm, %n : tensor<4x4xf32>, tensor<4x4xf32>
  }
}"#;
        let f = dlc_ir::parse_module(text).unwrap().functions.remove(0);
        let mut k = f.clone();
        crate::kernel::to_kernels(&mut k).unwrap();
        let results: Vec<usize> = k.body_ops().iter().filter(|&&o| k.op(o).kind == OpKind::Generic).map(|&o| k.op(o).results.len()).collect();
        assert_eq!(results, vec![1, 1], "{}", dlc_ir::print_function(&k));
        assert_eq!(dlc_backends::run(&k, &args(2, &[4, 4])).unwrap(), dlc_backends::run(&f, &args(2, &[4, 4])).unwrap());
    }
}
