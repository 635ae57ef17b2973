//! `fuse-kernels`: the fusion module. Two rewrites over a kernel-level
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
//!
//! A consumer never absorbs a producer it reads through a padded operand
//! (the padding value must stand for P's result, not be fed to P's body).

use super::cost::{Cost, generic_cost, op_cost};
use dlc_ir::kernel::{Generic, Scalar};
use dlc_ir::{AffineExpr, AffineMap, Attr, AttrView, Dim, Function, OpId, OpKind, ValueDef, ValueId};

/// The fusion pass.
pub struct FuseKernels;

impl crate::Pass for FuseKernels {
    fn name(&self) -> &'static str {
        "fuse-kernels"
    }

    fn summary(&self) -> &'static str {
        "fuse bias/ReLU epilogues into contractions and producer kernels into their consumers, by the bytes/FLOPs cost model"
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

/// The pass, also saying which ops each fused op replaced, so that a report
/// can give a fused kernel's cost before fusion (`kernel::explain_with`).
/// A producer inlined into several consumers is replaced by each of them.
pub fn fuse_traced(f: &mut Function) -> Result<(bool, FusionTrace), String> {
    let mut trace = Vec::new();
    let mut changed = false;
    while epilogue_once(f, &mut trace)? {
        changed = true;
    }
    while producers(f, &mut trace)? {
        changed = true;
    }
    Ok((changed, trace))
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
        if g.reduces() || !identity(&g.out_map) || g.dtype != yt.dtype {
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
/// combination is not allowed (padding).
fn inline(p: &Generic, p_operands: &[ValueId], p_result: ValueId, c: &Generic, c_operands: &[ValueId]) -> Option<(Generic, Vec<ValueId>)> {
    let reads: Vec<usize> = (0..c_operands.len()).filter(|&i| c_operands[i] == p_result).collect();
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
    let mut g = Generic { maps, padded, pad, fused, body, result: remap[c.result], ..c.clone() };
    let keep = g.compact();
    let operands = keep.iter().map(|&i| operands[i]).collect();
    Some((g, operands))
}

/// Producer fusion in one sweep from the last op to the first, each
/// producer tried once; the pass repeats sweeps until one changes nothing
/// (a fusion can make an earlier producer's consumers all fusable). A few
/// linear sweeps, not the quadratic cost of restarting after every fusion.
fn producers(f: &mut Function, trace: &mut FusionTrace) -> Result<bool, String> {
    let mut changed = false;
    for p_op in f.body_ops().to_vec().into_iter().rev() {
        if f.op(p_op).kind == OpKind::Generic && f.body_ops().contains(&p_op) {
            changed |= producer(f, p_op, trace)?;
        }
    }
    Ok(changed)
}

/// Fuses generic `p_op` into all its consumers when that pays off.
fn producer(f: &mut Function, p_op: OpId, trace: &mut FusionTrace) -> Result<bool, String> {
    let (u, ret) = users(f);
    {
        let pr = f.op(p_op).results[0];
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
            let Some((g, ops)) = inline(&p, &p_operands, pr, &c, &c_operands) else { break };
            let out = f.ty(f.op(c_op).results[0]).clone();
            before = before + op_cost(f, c_op);
            after = after + generic_cost(f, &g, &ops, &out);
            fused.push((c_op, g, ops));
        }
        if fused.len() != consumers.len() || after.time_ns() > before.time_ns() {
            return Ok(false);
        }
        let mut gone = vec![p_op];
        // A consumer may read another consumer's result: follow replacements.
        let mut replaced: Vec<(ValueId, ValueId)> = Vec::new();
        for (c_op, g, ops) in fused {
            let ops: Vec<ValueId> = ops.iter().map(|v| replaced.iter().find(|(o, _)| o == v).map_or(*v, |(_, n)| *n)).collect();
            let r = g.emit(f, &ops)?;
            let new = f.body_ops().last().copied().expect("just emitted");
            let old = f.op(c_op).results[0];
            f.replace_all_uses(old, r);
            replaced.push((old, r));
            relink(f, new, c_op, &[]);
            trace.push((new, vec![p_op, c_op]));
            gone.push(c_op);
        }
        let entry = f.entry();
        let ops: Vec<OpId> = f.body_ops().iter().copied().filter(|o| !gone.contains(o)).collect();
        f.set_block_ops(entry, ops);
        Ok(true)
    }
}
