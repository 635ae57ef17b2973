//! The partition of a function's ops into executable steps, and the fusion
//! decisions behind it.
//!
//! Three passes over the entry block, in this order:
//!
//! 1. **Contractions.** A float `dl.matmul` whose only user is a bias
//!    `dl.add` (the other operand rank 1 along the last dim, the add's type
//!    the matmul's), and that add's only user a `dl.relu`, becomes one
//!    `matmul+bias+relu` step (dlc-contract's epilogue). A float `dl.conv2d`
//!    likewise absorbs a channel bias (`[O]`, `[O,1,1]` or `[1,O,1,1]`) and a
//!    ReLU.
//! 2. **Elementwise groups.** Walking the ops backwards, every unclaimed
//!    elementwise op (f32/f64, with i1 masks) roots a group; a producer joins
//!    the group when it is elementwise (or a splat constant) and *every* user
//!    of its result is already in the group (producer→consumer fusion, DAGs
//!    included), and it has the root's shape (a smaller, broadcast producer
//!    would be recomputed per output element, so it gets its own kernel). A group becomes one dlc-jit kernel whose inputs are the values
//!    it reads from outside.
//! 3. **Everything else** (reductions, softmax, pools, gather, movement,
//!    integer casts, …) is one interpreter step per op through
//!    `dlc_backends::eval_op`: correct by construction, and the list of the
//!    next kernels to compile. Non-splat constants are evaluated once, at
//!    compile time.
//!
//! A fused step runs at the program position of its last op: all the values
//! it reads from outside are defined before that, and nothing between its
//! ops reads the values it keeps inside.

use dlc_ir::{AttrView, DType, Dim, Function, OpId, OpKind, ValueId};

/// What one step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// A fused elementwise kernel over these ops (program order).
    Jit,
    /// `dl.matmul` with an optional bias and ReLU epilogue.
    Matmul {
        /// The bias operand (rank 1, one per output column).
        bias: Option<ValueId>,
        /// ReLU after the bias.
        relu: bool,
    },
    /// `dl.conv2d` with an optional channel bias and ReLU epilogue.
    Conv2d {
        /// The channel bias operand (`O` elements).
        bias: Option<ValueId>,
        /// ReLU after the bias.
        relu: bool,
    },
    /// One op through the reference interpreter's `eval_op`.
    Interp,
}

/// One step of the plan: its kind, the ops it covers (program order) and the
/// value it defines.
#[derive(Clone, Debug)]
pub struct PlannedStep {
    /// What runs.
    pub kind: StepKind,
    /// The ops it covers, in program order; the last one defines `output`.
    pub ops: Vec<OpId>,
    /// The value it defines.
    pub output: ValueId,
}

impl PlannedStep {
    /// The printable form: `jit[add,relu]`, `matmul+bias+relu`, `interp[reduce_sum]`.
    pub fn describe(&self, f: &Function) -> String {
        let names: Vec<&str> = self.ops.iter().map(|&o| short(f.op(o).kind)).collect();
        match &self.kind {
            StepKind::Jit => format!("jit[{}]", names.join(",")),
            StepKind::Interp => format!("interp[{}]", names.join(",")),
            StepKind::Matmul { bias, relu } | StepKind::Conv2d { bias, relu } => {
                let mut s = short(f.op(self.ops[0]).kind).to_string();
                if bias.is_some() {
                    s.push_str("+bias");
                }
                if *relu {
                    s.push_str("+relu");
                }
                s
            }
        }
    }
}

/// An op's name without its dialect (`add` for `dl.add`).
pub fn short(k: OpKind) -> &'static str {
    let n = k.name();
    n.split_once('.').map_or(n, |(_, s)| s)
}

/// The whole partition: steps in execution order, plus the constants that
/// are evaluated once at compile time.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Steps in execution order.
    pub steps: Vec<PlannedStep>,
    /// `dl.constant` ops evaluated at compile time.
    pub constants: Vec<OpId>,
}

fn float(d: Option<DType>) -> bool {
    matches!(d, Some(DType::F32 | DType::F64))
}

fn jit_dtype(d: Option<DType>) -> bool {
    matches!(d, Some(DType::F32 | DType::F64 | DType::I1))
}

/// True for an op a fused elementwise kernel can hold.
fn jittable(f: &Function, o: OpId) -> bool {
    let op = f.op(o);
    if !op.kind.is_elementwise() || op.results.len() != 1 {
        return false;
    }
    let dts = op.operands.iter().chain(&op.results).map(|&v| f.ty(v).dtype());
    let all: Vec<Option<DType>> = dts.collect();
    all.iter().all(|&d| jit_dtype(d)) && all.iter().any(|&d| float(d))
}

/// True for a splat float or i1 constant (a kernel-body constant).
fn splat_constant(f: &Function, o: OpId) -> bool {
    let op = f.op(o);
    if op.kind != OpKind::Constant {
        return false;
    }
    match AttrView::new(op.kind, &op.attrs).dense("value") {
        Ok(d) => d.is_splat() && jit_dtype(Some(d.ty.dtype)) && !matches!(d.data, dlc_ir::DenseData::Int(_)),
        Err(_) => false,
    }
}

/// Partitions `f`'s entry block.
pub fn plan(f: &Function) -> Plan {
    let ops: Vec<OpId> = f.body_ops().iter().copied().filter(|&o| f.op(o).kind != OpKind::Return).collect();
    let pos_of = |o: OpId| ops.iter().position(|&x| x == o);
    // users[v]: positions of the ops reading v; `usize::MAX` for func.return.
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); f.num_values()];
    for (p, &o) in ops.iter().enumerate() {
        for &v in &f.op(o).operands {
            users[v.0 as usize].push(p);
        }
    }
    for v in f.returned_values() {
        users[v.0 as usize].push(usize::MAX);
    }
    let def_pos = |v: ValueId| match f.value(v).def {
        dlc_ir::ValueDef::OpResult { op, .. } => pos_of(op),
        dlc_ir::ValueDef::BlockArg { .. } => None,
    };
    let single_user = |v: ValueId| match users[v.0 as usize].as_slice() {
        &[p] if p != usize::MAX => Some(p),
        _ => None,
    };
    let result = |p: usize| f.op(ops[p]).results.first().copied();

    // claimed[p]: the step (by its last position) that covers op p.
    let mut claim: Vec<Option<usize>> = vec![None; ops.len()];
    let mut fused: Vec<(usize, PlannedStep)> = Vec::new();

    // 1. Contractions with epilogues.
    for p in 0..ops.len() {
        let op = f.op(ops[p]);
        let is_mm = op.kind == OpKind::Matmul;
        let is_conv = op.kind == OpKind::Conv2d;
        if !(is_mm || is_conv) || op.results.len() != 1 || !float(f.ty(op.results[0]).dtype()) {
            continue;
        }
        let y = op.results[0];
        let y_ty = f.ty(y).as_tensor().cloned();
        let mut covered = vec![p];
        let mut bias = None;
        let mut relu = false;
        let mut last = y;
        if let (Some(q), Some(yt)) = (single_user(y), &y_ty) {
            let add = f.op(ops[q]);
            if add.kind == OpKind::Add && add.results.len() == 1 && f.ty(add.results[0]) == f.ty(y) {
                let other = if add.operands[0] == y { add.operands[1] } else { add.operands[0] };
                let ok = add.operands.contains(&y) && add.operands[0] != add.operands[1];
                let ot = f.ty(other).as_tensor();
                let fits = ot.is_some_and(|t| {
                    t.dtype == yt.dtype
                        && if is_mm {
                            t.rank() == 1 && yt.shape.last() == Some(&t.shape[0]) && matches!(t.shape[0], Dim::Static(_))
                        } else {
                            channel_bias(&t.shape, &yt.shape)
                        }
                });
                if ok && fits {
                    bias = Some(other);
                    covered.push(q);
                    last = add.results[0];
                }
            }
        }
        if let Some(q) = single_user(last) {
            let r = f.op(ops[q]);
            if r.kind == OpKind::Relu && r.results.len() == 1 {
                relu = true;
                covered.push(q);
                last = r.results[0];
            }
        }
        let end = *covered.last().expect("nonempty");
        for &c in &covered {
            claim[c] = Some(end);
        }
        let kind = if is_mm { StepKind::Matmul { bias, relu } } else { StepKind::Conv2d { bias, relu } };
        fused.push((end, PlannedStep { kind, ops: covered.iter().map(|&c| ops[c]).collect(), output: last }));
    }

    // 2. Elementwise groups, rooted backwards.
    for root in (0..ops.len()).rev() {
        if claim[root].is_some() || !jittable(f, ops[root]) {
            continue;
        }
        let mut members = vec![root];
        claim[root] = Some(root);
        let root_shape = result(root).and_then(|r| f.ty(r).as_tensor()).map(|t| &t.shape);
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..members.len() {
                let m = members[i];
                for &v in &f.op(ops[m]).operands {
                    let Some(q) = def_pos(v) else { continue };
                    // A producer of a smaller (broadcast) value would be
                    // recomputed for every output element: it roots its own
                    // group instead (Adam's scalar bias corrections).
                    let same_shape = f.ty(v).as_tensor().map(|t| &t.shape) == root_shape;
                    let absorbable = splat_constant(f, ops[q]) || (jittable(f, ops[q]) && same_shape);
                    if claim[q].is_some() || !absorbable {
                        continue;
                    }
                    if users[v.0 as usize].iter().all(|&u| u != usize::MAX && claim[u] == Some(root)) {
                        claim[q] = Some(root);
                        members.push(q);
                        changed = true;
                    }
                }
            }
        }
        members.sort_unstable();
        let output = result(root).expect("an elementwise op has a result");
        fused.push((root, PlannedStep { kind: StepKind::Jit, ops: members.iter().map(|&c| ops[c]).collect(), output }));
    }

    // 3. The rest: compile-time constants and interpreter steps.
    let mut constants = Vec::new();
    let mut steps = Vec::new();
    fused.sort_by_key(|(end, _)| *end);
    let mut fused = fused.into_iter().peekable();
    for p in 0..ops.len() {
        match claim[p] {
            Some(end) if end == p => {
                let (_, s) = fused.next().expect("a fused step ends here");
                steps.push(s);
            }
            Some(_) => {}
            None => {
                let op = f.op(ops[p]);
                if op.kind == OpKind::Constant {
                    constants.push(ops[p]);
                } else if let Some(&r) = op.results.first() {
                    steps.push(PlannedStep { kind: StepKind::Interp, ops: vec![ops[p]], output: r });
                }
            }
        }
    }
    Plan { steps, constants }
}

/// True when a bias of shape `b` adds one value per channel (dim 1) of the
/// NCHW output `y`: `[O]` is not NumPy-aligned to dim 1, so only `[O,1,1]`
/// and `[1,O,1,1]` qualify.
fn channel_bias(b: &[Dim], y: &[Dim]) -> bool {
    if y.len() != 4 {
        return false;
    }
    let o = y[1];
    let one = Dim::Static(1);
    match b {
        [c, h, w] => *c == o && *h == one && *w == one && matches!(o, Dim::Static(_)),
        [n, c, h, w] => *n == one && *c == o && *h == one && *w == one && matches!(o, Dim::Static(_)),
        _ => false,
    }
}

/// Splits a group that the JIT refused into one interpreter step per op
/// (splat constants become compile-time constants).
pub fn unfuse(f: &Function, step: &PlannedStep, steps: &mut Vec<PlannedStep>, constants: &mut Vec<OpId>) {
    for &o in &step.ops {
        let op = f.op(o);
        if op.kind == OpKind::Constant {
            constants.push(o);
        } else if let Some(&r) = op.results.first() {
            steps.push(PlannedStep { kind: StepKind::Interp, ops: vec![o], output: r });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Attrs, Builder, TensorType, Type, attrs};

    fn arg(f: &mut Function, shape: Vec<Dim>) -> ValueId {
        f.add_arg(Type::Tensor(TensorType::new(shape, DType::F32)), None, Attrs::new())
    }

    fn summary(f: &Function) -> Vec<String> {
        plan(f).steps.iter().map(|s| s.describe(f)).collect()
    }

    #[test]
    fn linear_layers_fuse_their_epilogue_and_chains_fuse_into_one_kernel() {
        let mut f = Function::new("f");
        let x = arg(&mut f, vec![Dim::Dynamic, Dim::Static(4)]);
        let w = arg(&mut f, vec![Dim::Static(3), Dim::Static(4)]);
        let b = arg(&mut f, vec![Dim::Static(3)]);
        let mut bld = Builder::at_entry(&mut f);
        let y = bld.op(OpKind::Matmul, &[x, w], attrs! {"transpose_b" => true}).unwrap();
        let y = bld.op(OpKind::Add, &[y, b], Attrs::new()).unwrap();
        let y = bld.op(OpKind::Relu, &[y], Attrs::new()).unwrap();
        let e = bld.op(OpKind::Exp, &[y], Attrs::new()).unwrap();
        let n = bld.op(OpKind::Neg, &[e], Attrs::new()).unwrap();
        let s = bld.op(OpKind::ReduceSum, &[n], attrs! {"axes" => dlc_ir::Attr::ints(&[1])}).unwrap();
        bld.ret(&[s]);
        assert_eq!(summary(&f), ["matmul+bias+relu", "jit[exp,neg]", "interp[reduce_sum]"]);
    }

    #[test]
    fn values_used_outside_stay_outside_and_broadcast_producers_get_their_own_kernel() {
        let mut f = Function::new("f");
        let x = arg(&mut f, vec![Dim::Dynamic, Dim::Static(4)]);
        let w = arg(&mut f, vec![Dim::Static(4), Dim::Static(4)]);
        let c = arg(&mut f, vec![Dim::Static(4)]);
        let mut bld = Builder::at_entry(&mut f);
        let m = bld.op(OpKind::Matmul, &[x, w], Attrs::new()).unwrap();
        // The matmul's result has two users: no bias epilogue.
        let a = bld.op(OpKind::Add, &[m, c], Attrs::new()).unwrap();
        let t = bld.op(OpKind::Tanh, &[a], Attrs::new()).unwrap();
        let e = bld.op(OpKind::Exp, &[c], Attrs::new()).unwrap();
        let y = bld.op(OpKind::Mul, &[t, e], Attrs::new()).unwrap();
        let z = bld.op(OpKind::Sub, &[y, m], Attrs::new()).unwrap();
        bld.ret(&[z, t]);
        // tanh is returned, so it ends its own kernel; exp of the [4] row is
        // not recomputed per row.
        assert_eq!(summary(&f), ["matmul", "jit[add,tanh]", "jit[exp]", "jit[mul,sub]"]);
    }
}
