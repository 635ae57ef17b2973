//! `lower-kernels`: every `dl` op that computes something becomes a
//! structured kernel, one op at a time (fusion is the next pass's job).
//!
//! | `dl` ops | become |
//! |---|---|
//! | elementwise (with NumPy broadcasting), `broadcast_to`, `transpose`, `slice` | one all-parallel `kernel.generic`; broadcasts are constant-0 or dropped map results, transposes permuted maps, slices `d * step + start` |
//! | `reduce_sum`, `reduce_max`, `reduce_mean` (static reduced sizes) | a reduction `kernel.generic` (+ a scaling kernel for the mean; `keepdims` becomes a free `dl.reshape`) |
//! | `softmax`, `log_softmax` | max-reduce; `e = exp(x - max)`; its sum (f64 for f32, rounded once in a row kernel of its own); the normalizing kernel (`e / s`, or `x - max - log s`), each in one float width |
//! | `max_pool2d`, `avg_pool2d` | windows of up to 16 taps unrolled: one operand per tap reading `x[n, c, oh*s + kh - p, …]`, folded in window order; larger windows a reduction over `[n, c, oh, ow, kh, kw]`; padded reads give `-inf` / `0` (+ the `1/(kh*kw)` scaling) |
//! | `matmul`, `conv2d` | `kernel.matmul`, `kernel.conv2d` (epilogues are fused later) |
//! | `concat` of one tensor with constant fills | a padded read (`d - offset`, padding with the fill value) |
//! | `reshape` (a view), other `concat`s, `gather`, `one_hot`, `argmax`, `conv2d_grad_input`, `conv2d_grad_weight`, dense constants, a mean over the batch | unchanged: the backends run them directly |
//!
//! Splat constants read by an elementwise op become body constants. The pass
//! is idempotent: kernel-level ops are left as they are.

use dlc_ir::kernel::{Generic, Scalar};
use dlc_ir::{AffineExpr, AffineMap, Attr, AttrView, Attrs, DType, DenseData, Dim, Function, OpId, OpKind, TensorType, ValueId};

/// The lowering pass.
pub struct LowerKernels;

impl crate::Pass for LowerKernels {
    fn name(&self) -> &'static str {
        "lower-kernels"
    }

    fn summary(&self) -> &'static str {
        "lower dl ops to structured kernels (kernel.generic loop nests, kernel.matmul / kernel.conv2d contractions)"
    }

    fn run(&self, f: &mut Function) -> bool {
        self.try_run(f).unwrap_or(false)
    }

    fn try_run(&self, f: &mut Function) -> Result<bool, String> {
        lower(f)
    }
}

/// Lowers `f` in place; true when some op changed.
pub fn lower(f: &mut Function) -> Result<bool, String> {
    lower_traced(f).map(|(changed, _)| changed)
}

/// The ops of the lowered function that one op of the input became: the
/// input op, and the ops its lowering added (itself among them when kept).
pub type LoweringTrace = Vec<(OpId, Vec<OpId>)>;

/// [`lower`], also saying what each op of the entry block became, so that a
/// report can tell which `dl` op a kernel computes (`kernel::explain_with`).
pub fn lower_traced(f: &mut Function) -> Result<(bool, LoweringTrace), String> {
    lower_with_results(f).map(|(changed, trace, _)| (changed, trace))
}

/// Each lowered op with the value that took over its result.
pub type LoweredResults = Vec<(OpId, ValueId)>;

/// [`lower_traced`], also giving the value that took over each lowered
/// op's result (what the fusion plan's decisions are keyed by).
pub fn lower_with_results(f: &mut Function) -> Result<(bool, LoweringTrace, LoweredResults), String> {
    let entry = f.entry();
    let mut results = Vec::new();
    let original: Vec<OpId> = f.body_ops().to_vec();
    let mut order = Vec::with_capacity(original.len());
    let mut trace = Vec::with_capacity(original.len());
    let mut changed = false;
    for o in original {
        let before = f.body_ops().len();
        let replaced = lower_op(f, o).map_err(|m| format!("{}: {m}", f.op(o).kind.name()))?;
        let appended: Vec<OpId> = f.body_ops()[before..].to_vec();
        match replaced {
            Some(v) => {
                let old = f.op(o).results[0];
                f.replace_all_uses(old, v);
                results.push((o, v));
                order.extend(appended.iter().copied());
                trace.push((o, appended));
                changed = true;
            }
            None => {
                order.push(o);
                order.extend(appended.iter().copied());
                trace.push((o, [vec![o], appended].concat()));
            }
        }
    }
    f.set_block_ops(entry, order);
    Ok((changed, trace, results))
}

fn tensor(f: &Function, v: ValueId) -> Result<TensorType, String> {
    f.ty(v).as_tensor().cloned().ok_or_else(|| format!("%{} is not a tensor", v.0))
}

fn sizes_of(t: &TensorType) -> Vec<Option<u64>> {
    t.shape.iter().map(|d| d.as_static()).collect()
}

/// The splat value of `v`'s defining constant, if it is one.
fn splat(f: &Function, v: ValueId) -> Option<(f64, DType)> {
    let dlc_ir::ValueDef::OpResult { op, .. } = f.value(v).def else { return None };
    let op = f.op(op);
    if op.kind != OpKind::Constant {
        return None;
    }
    let d = AttrView::new(op.kind, &op.attrs).dense("value").ok()?;
    let value = match &d.data {
        DenseData::Float(x) if x.len() == 1 => x[0],
        DenseData::Bool(x) if x.len() == 1 => x[0] as u8 as f64,
        _ => return None,
    };
    Some((value, d.ty.dtype))
}

/// `(start, step)` when `v` is a rank-1 integer constant `start + step·k`.
fn progression(f: &Function, v: ValueId) -> Option<(i64, i64)> {
    let dlc_ir::ValueDef::OpResult { op, .. } = f.value(v).def else { return None };
    let op = f.op(op);
    if op.kind != OpKind::Constant {
        return None;
    }
    let d = AttrView::new(op.kind, &op.attrs).dense("value").ok()?;
    let DenseData::Int(ix) = &d.data else { return None };
    if d.ty.rank() != 1 {
        return None;
    }
    let n = d.ty.shape[0].as_static()? as usize;
    let values: Vec<i64> = if ix.len() == 1 { vec![ix[0]; n] } else { ix.clone() };
    let start = *values.first()?;
    let step = values.get(1).map_or(1, |v| v - start);
    values.iter().enumerate().all(|(k, &v)| v == start + step * k as i64).then_some((start, step))
}

/// The value every element of `v` has when `v` is a constant fill: a splat
/// constant, or a broadcast of one (as a `dl.broadcast_to` or as the kernel
/// it was already lowered to).
fn fill(f: &Function, v: ValueId) -> Option<f64> {
    if let Some((value, _)) = splat(f, v) {
        return Some(value);
    }
    let dlc_ir::ValueDef::OpResult { op, .. } = f.value(v).def else { return None };
    let data = f.op(op);
    match data.kind {
        OpKind::BroadcastTo => splat(f, data.operands[0]).map(|s| s.0),
        OpKind::Generic => {
            let (g, operands) = Generic::read(f, op).ok()?;
            match (&g.body[g.result], operands.as_slice()) {
                (Scalar::Operand(0), [x]) if g.padded.is_empty() => splat(f, *x).map(|s| s.0),
                (Scalar::Const { value, .. }, _) => Some(*value),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The map reading an operand of type `t` broadcast (NumPy, right-aligned)
/// over an iteration space of shape `out`.
fn broadcast_map(t: &TensorType, out: &[Dim]) -> Result<AffineMap, String> {
    let lead = out.len().checked_sub(t.rank()).ok_or_else(|| format!("{t} has more dims than the result"))?;
    let results = (0..t.rank())
        .map(|j| {
            let d = lead + j;
            if t.shape[j] == out[d] {
                Ok(AffineExpr::dim(d))
            } else if t.shape[j] == Dim::Static(1) {
                Ok(AffineExpr::constant(0))
            } else {
                Err(format!("{t} does not broadcast to {}", dlc_ir::registry::shape::dims_str(out)))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(AffineMap { dims: out.len(), results })
}

/// An all-parallel kernel over `out`'s shape whose body is `op(operands)`;
/// splat-constant operands become body constants.
fn elementwise(f: &Function, kind: OpKind, attrs: &Attrs, operands: &[ValueId], out: &TensorType) -> Result<(Generic, Vec<ValueId>), String> {
    let mut g = all_parallel(out, kind);
    let mut reads = Vec::new();
    let mut args = Vec::new();
    for &v in operands {
        if let Some((value, dtype)) = splat(f, v) {
            g.body.push(Scalar::Const { value, dtype });
        } else {
            g.maps.push(broadcast_map(&tensor(f, v)?, &out.shape)?);
            g.body.push(Scalar::Operand(reads.len()));
            reads.push(v);
        }
        args.push(g.body.len() - 1);
    }
    g.body.push(Scalar::Op { kind, attrs: attrs.clone(), args });
    g.result = g.body.len() - 1;
    Ok((g, reads))
}

/// An empty all-parallel kernel producing `out`.
fn all_parallel(out: &TensorType, kind: OpKind) -> Generic {
    Generic {
        reduction: vec![false; out.rank()],
        sizes: sizes_of(out),
        maps: Vec::new(),
        out_map: AffineMap::identity(out.rank()),
        dtype: out.dtype,
        init: 0.0,
        padded: Vec::new(),
        pad: 0.0,
        fused: vec![kind.name().to_string()],
        body: Vec::new(),
        result: 0,
        extra: Vec::new(),
    }
}

/// A copy of operand 0 through `map`: broadcasts, transposes, slices.
fn movement(kind: OpKind, x: ValueId, map: AffineMap, out: &TensorType) -> (Generic, Vec<ValueId>) {
    let mut g = all_parallel(out, kind);
    g.maps.push(map);
    g.body.push(Scalar::Operand(0));
    g.result = 0;
    (g, vec![x])
}

/// Reduces the `axes` of `x` (type `t`) with `combine(acc, x)` from `init`;
/// the result drops the axes.
fn reduction(kind: OpKind, x: ValueId, t: &TensorType, axes: &[usize], combine: OpKind, init: f64) -> (Generic, Vec<ValueId>) {
    let n = t.rank();
    let reduction: Vec<bool> = (0..n).map(|k| axes.contains(&k)).collect();
    let kept: Vec<usize> = (0..n).filter(|k| !axes.contains(k)).collect();
    let g = Generic {
        reduction,
        sizes: sizes_of(t),
        maps: vec![AffineMap::identity(n)],
        out_map: AffineMap::projection(n, &kept),
        dtype: t.dtype,
        init,
        padded: Vec::new(),
        pad: 0.0,
        fused: vec![kind.name().to_string()],
        body: vec![Scalar::Operand(0), Scalar::Acc, Scalar::Op { kind: combine, attrs: Attrs::new(), args: vec![1, 0] }],
        result: 2,
        extra: Vec::new(),
    };
    (g, vec![x])
}

/// `dl.cast` to `dtype` as a body node.
fn cast(dtype: DType, arg: usize) -> Scalar {
    let mut attrs = Attrs::new();
    attrs.insert("dtype".into(), Attr::from(dtype));
    Scalar::Op { kind: OpKind::Cast, attrs, args: vec![arg] }
}

/// Makes an f32 sum accumulate in f64 and round once, as the interpreter
/// (the oracle) and the trainer's replays of PyTorch expect: the body casts
/// each term to f64 and the kernel's result is f64 (see [`narrow`]). Sums
/// of tens of thousands of terms (a convolution's bias gradient) would
/// otherwise drift visibly from PyTorch's over a training run.
fn widen_sum(g: &mut Generic) {
    if g.dtype != DType::F32 {
        return;
    }
    let Some(Scalar::Op { kind: OpKind::Add, args, .. }) = g.body.get(g.result).cloned() else { return };
    let acc = g.body.iter().position(|s| *s == Scalar::Acc);
    let Some(term) = args.iter().copied().find(|&a| Some(a) != acc) else { return };
    g.body.truncate(g.result);
    g.body.push(cast(DType::F64, term));
    let wide = g.body.len() - 1;
    g.body.push(Scalar::Op { kind: OpKind::Add, attrs: Attrs::new(), args: vec![acc.expect("a reduction reads its accumulator"), wide] });
    g.result = g.body.len() - 1;
    g.dtype = DType::F64;
}

/// Rounds an f64 sum back to `dtype` (a kernel that fuses into its users).
fn narrow(f: &mut Function, v: ValueId, dtype: DType, kind: OpKind) -> Result<ValueId, String> {
    let t = tensor(f, v)?;
    if t.dtype == dtype {
        return Ok(v);
    }
    let mut g = all_parallel(&TensorType::new(t.shape.clone(), dtype), kind);
    g.maps.push(AffineMap::identity(t.rank()));
    g.body = vec![Scalar::Operand(0), cast(dtype, 0)];
    g.result = 1;
    g.emit(f, &[v])
}

fn emit(f: &mut Function, (g, operands): (Generic, Vec<ValueId>)) -> Result<ValueId, String> {
    g.emit(f, &operands)
}

/// `dl.reshape` of `v` to `shape` (a view: no kernel).
fn reshape(f: &mut Function, v: ValueId, shape: &[Dim]) -> Result<ValueId, String> {
    let dims: Vec<i64> = shape.iter().map(|d| d.as_static().map_or(-1, |n| n as i64)).collect();
    let mut attrs = Attrs::new();
    attrs.insert("shape".into(), Attr::ints(&dims));
    dlc_ir::Builder::at_entry(f).op(OpKind::Reshape, &[v], attrs).map_err(|e| e.to_string())
}

/// A kernel over `x`'s type applying `body` to `x` and the per-row values
/// `rows` (each of `x`'s shape without `axis`).
fn rowwise(kind: OpKind, x: ValueId, t: &TensorType, axis: usize, rows: &[ValueId], body: Vec<Scalar>) -> (Generic, Vec<ValueId>) {
    let n = t.rank();
    let kept: Vec<usize> = (0..n).filter(|&k| k != axis).collect();
    let mut g = all_parallel(t, kind);
    g.maps.push(AffineMap::identity(n));
    for _ in rows {
        g.maps.push(AffineMap::projection(n, &kept));
    }
    g.body = body;
    g.result = g.body.len() - 1;
    let mut operands = vec![x];
    operands.extend(rows);
    (g, operands)
}

fn op(kind: OpKind, args: Vec<usize>) -> Scalar {
    Scalar::Op { kind, attrs: Attrs::new(), args }
}

fn int_pair(view: &AttrView, name: &str) -> Result<[i64; 2], String> {
    match view.ints(name)?.as_slice() {
        &[a, b] => Ok([a, b]),
        other => Err(format!("'{name}' must be two integers, got {other:?}")),
    }
}

/// Lowers one op by appending its replacement; returns the value replacing
/// its result, or `None` to keep the op.
fn lower_op(f: &mut Function, o: OpId) -> Result<Option<ValueId>, String> {
    let data = f.op(o).clone();
    let kind = data.kind;
    let view = AttrView::new(kind, &data.attrs);
    let Some(&result) = data.results.first() else { return Ok(None) };
    let Some(out) = f.ty(result).as_tensor().cloned() else { return Ok(None) };
    let x = data.operands.first().copied();
    let xt = match x {
        Some(x) => Some(tensor(f, x)?),
        None => None,
    };
    let axes = |xt: &TensorType| -> Result<Vec<usize>, String> { dlc_ir::registry::shape::axes(&view.ints("axes")?, xt.rank()) };
    use OpKind as K;
    let v = match kind {
        K::Neg | K::Abs | K::Exp | K::Log | K::Sqrt | K::Rsqrt | K::Tanh | K::Sigmoid | K::Relu | K::LeakyRelu | K::Cast
        | K::Add | K::Sub | K::Mul | K::Div | K::Pow | K::Maximum | K::Minimum | K::Cmp | K::Select => {
            emit(f, elementwise(f, kind, &data.attrs, &data.operands, &out)?)?
        }
        K::BroadcastTo => {
            let (x, xt) = (x.expect("arity"), xt.expect("arity"));
            emit(f, movement(kind, x, broadcast_map(&xt, &out.shape)?, &out))?
        }
        K::Transpose => {
            let perm = view.ints("perm")?;
            let mut results = vec![AffineExpr::default(); perm.len()];
            for (j, &p) in perm.iter().enumerate() {
                *results.get_mut(p as usize).ok_or("perm out of range")? = AffineExpr::dim(j);
            }
            emit(f, movement(kind, x.expect("arity"), AffineMap { dims: out.rank(), results }, &out))?
        }
        K::Slice => {
            let xt = xt.expect("arity");
            let axis = dlc_ir::registry::shape::axis(view.int("axis")?, xt.rank())?;
            let mut map = AffineMap::identity(out.rank());
            map.results[axis] = AffineExpr::default().plus_dim(axis, view.int("step")?).plus(view.int("start")?);
            emit(f, movement(kind, x.expect("arity"), map, &out))?
        }
        K::ReduceSum | K::ReduceMax => {
            let xt = xt.expect("arity");
            let (combine, init) = if kind == K::ReduceSum { (K::Add, 0.0) } else { (K::Maximum, f64::NEG_INFINITY) };
            if !xt.dtype.is_float() {
                return Ok(None);
            }
            let mut kg = reduction(kind, x.expect("arity"), &xt, &axes(&xt)?, combine, init);
            widen_sum(&mut kg.0);
            let r = emit(f, kg)?;
            let r = narrow(f, r, out.dtype, kind)?;
            if tensor(f, r)?.shape == out.shape { r } else { reshape(f, r, &out.shape)? }
        }
        K::ReduceMean => {
            let xt = xt.expect("arity");
            let ax = axes(&xt)?;
            let count: Option<u64> = ax.iter().map(|&k| xt.shape[k].as_static()).product();
            let Some(count) = count.filter(|_| xt.dtype.is_float()) else { return Ok(None) };
            let mut sg = reduction(kind, x.expect("arity"), &xt, &ax, K::Add, 0.0);
            widen_sum(&mut sg.0);
            let sum = emit(f, sg)?;
            let st = tensor(f, sum)?;
            let mut g = all_parallel(&TensorType::new(st.shape.clone(), out.dtype), kind);
            g.maps.push(AffineMap::identity(st.rank()));
            g.body = vec![Scalar::Operand(0), Scalar::Const { value: count as f64, dtype: st.dtype }, op(K::Div, vec![0, 1])];
            g.result = 2;
            if st.dtype != out.dtype {
                g.body.push(cast(out.dtype, 2));
                g.result = 3;
            }
            let mean = g.emit(f, &[sum])?;
            if st.shape == out.shape { mean } else { reshape(f, mean, &out.shape)? }
        }
        K::Softmax | K::LogSoftmax => {
            let (x, xt) = (x.expect("arity"), xt.expect("arity"));
            let axis = dlc_ir::registry::shape::axis(view.int("axis")?, xt.rank())?;
            let m = emit(f, reduction(kind, x, &xt, &[axis], K::Maximum, f64::NEG_INFINITY))?;
            // e = exp(x - m), then s = sum(e) along the axis. e is a kernel
            // of its own: computed in x's type on vectors, while the sum
            // widens to f64 (a body mixing the two runs scalar, `cost.rs`).
            let e = emit(f, rowwise(kind, x, &xt, axis, &[m], vec![Scalar::Operand(0), Scalar::Operand(1), op(K::Sub, vec![0, 1]), op(K::Exp, vec![2])]))?;
            let mut sg = reduction(kind, e, &xt, &[axis], K::Add, 0.0);
            widen_sum(&mut sg.0);
            let wide = sg.0.dtype != xt.dtype;
            let mut s = emit(f, sg)?;
            let log_s = kind == K::LogSoftmax;
            if wide {
                // s (or log s) rounded to x's type once, as a kernel of its
                // own over the rows, so the normalization over every element
                // computes in one float width and runs on vectors.
                let st = tensor(f, s)?;
                let mut g = all_parallel(&TensorType::new(st.shape.clone(), xt.dtype), kind);
                g.maps.push(AffineMap::identity(st.rank()));
                g.body = vec![Scalar::Operand(0)];
                if log_s {
                    g.body.push(op(K::Log, vec![0]));
                }
                g.body.push(cast(xt.dtype, g.body.len() - 1));
                g.result = g.body.len() - 1;
                s = g.emit(f, &[s])?;
            }
            if log_s {
                // (x - m) - log s
                let mut body = vec![Scalar::Operand(0), Scalar::Operand(1), Scalar::Operand(2), op(K::Sub, vec![0, 1])];
                let l = if wide {
                    2
                } else {
                    body.push(op(K::Log, vec![2]));
                    body.len() - 1
                };
                body.push(op(K::Sub, vec![3, l]));
                emit(f, rowwise(kind, x, &xt, axis, &[m, s], body))?
            } else {
                // e / s
                emit(f, rowwise(kind, e, &xt, axis, &[s], vec![Scalar::Operand(0), Scalar::Operand(1), op(K::Div, vec![0, 1])]))?
            }
        }
        K::MaxPool2d | K::AvgPool2d => {
            let (x, xt) = (x.expect("arity"), xt.expect("arity"));
            if !xt.dtype.is_float() || xt.rank() != 4 {
                return Ok(None);
            }
            let (k, s, p) = (int_pair(&view, "kernel")?, int_pair(&view, "stride")?, int_pair(&view, "padding")?);
            let max = kind == K::MaxPool2d;
            let padded = p.iter().any(|&v| v > 0);
            let (combine, init) = if max { (K::Maximum, f64::NEG_INFINITY) } else { (K::Add, 0.0) };
            let taps = (k[0] * k[1]) as usize;
            let pooled = if (1..=MAX_UNROLLED_TAPS).contains(&taps) {
                // A small window, unrolled: one operand per tap, folded in
                // the reduction's order, so the kernel has no reduction
                // loops (2 or 3 iterations of a loop cost more than the
                // tap). `maximum(-inf, t)` is `t` for every `t` (NaN and
                // -0 included), so a max starts from the first tap; a sum
                // starts from its init, exactly as the reduction does.
                let mut g = all_parallel(&out, kind);
                let mut body = Vec::with_capacity(2 * taps + 1);
                let mut acc = if max {
                    None
                } else {
                    body.push(Scalar::Const { value: init, dtype: out.dtype });
                    Some(0)
                };
                for kh in 0..k[0] {
                    for kw in 0..k[1] {
                        let at = |a: usize, t: i64| AffineExpr::default().plus_dim(2 + a, s[a]).plus(t - p[a]);
                        g.maps.push(AffineMap { dims: 4, results: vec![AffineExpr::dim(0), AffineExpr::dim(1), at(0, kh), at(1, kw)] });
                        body.push(Scalar::Operand(g.maps.len() - 1));
                        let t = body.len() - 1;
                        acc = Some(match acc {
                            None => t,
                            Some(a) => {
                                body.push(op(combine, vec![a, t]));
                                body.len() - 1
                            }
                        });
                    }
                }
                g.result = acc.expect("at least one tap");
                g.body = body;
                if padded {
                    g.padded = (0..taps).collect();
                    g.pad = init;
                }
                g.emit(f, &vec![x; taps])?
            } else {
                pool_reduction(f, &out, kind, x, k, s, p, combine, init)?
            };
            if max {
                pooled
            } else {
                let mut g = all_parallel(&out, kind);
                g.maps.push(AffineMap::identity(4));
                g.body = vec![Scalar::Operand(0), Scalar::Const { value: (k[0] * k[1]) as f64, dtype: out.dtype }, op(K::Div, vec![0, 1])];
                g.result = 2;
                g.emit(f, &[pooled])?
            }
        }
        K::Matmul | K::Conv2d => {
            let k = if kind == K::Matmul { K::KernelMatmul } else { K::KernelConv2d };
            let mut b = dlc_ir::Builder::at_entry(f);
            b.op(k, &data.operands, data.attrs.clone()).map_err(|e| e.to_string())?
        }
        K::Concat => {
            // Joining one tensor with constant fills (the zeros that pooling and
            // convolution gradients pad and interleave with) is a padded read.
            let axis = dlc_ir::registry::shape::axis(view.int("axis")?, out.rank())?;
            let fills: Vec<Option<f64>> = data.operands.iter().map(|&v| fill(f, v)).collect();
            let real: Vec<usize> = (0..fills.len()).filter(|&i| fills[i].is_none()).collect();
            let values: Vec<f64> = fills.iter().flatten().copied().collect();
            let &[keep] = real.as_slice() else { return Ok(None) };
            if values.iter().any(|v| v.to_bits() != values[0].to_bits()) || values.is_empty() {
                return Ok(None);
            }
            let mut offset = 0i64;
            for &v in &data.operands[..keep] {
                offset += tensor(f, v)?.shape[axis].as_static().ok_or("a concat piece of batch size")? as i64;
            }
            let x = data.operands[keep];
            let mut map = AffineMap::identity(out.rank());
            map.results[axis] = AffineExpr::dim(axis).plus(-offset);
            let (mut g, ops) = movement(kind, x, map, &out);
            g.padded = vec![0];
            g.pad = values[0];
            emit(f, (g, ops))?
        }
        K::Gather => {
            // Constant indices in arithmetic progression (the kernel flip of a
            // convolution's input gradient, [2, 1, 0]) are a map: start + step·d.
            let Some((start, step)) = progression(f, data.operands[1]) else { return Ok(None) };
            let xt = xt.expect("arity");
            let axis = dlc_ir::registry::shape::axis(view.int("axis")?, xt.rank())?;
            if out.rank() != xt.rank() {
                return Ok(None);
            }
            let mut map = AffineMap::identity(out.rank());
            map.results[axis] = AffineExpr::default().plus_dim(axis, step).plus(start);
            emit(f, movement(kind, x.expect("arity"), map, &out))?
        }
        K::Argmax | K::Reshape | K::OneHot | K::Constant | K::Return | K::Conv2dGradInput | K::Conv2dGradWeight | K::MaxPool2dGrad => return Ok(None),
        K::Generic | K::Yield | K::ScalarConstant | K::KernelMatmul | K::KernelConv2d | K::KernelConv2dGradWeight | K::KernelRoutedConv2dGradInput | K::KernelRoutedConv2dGradWeight => return Ok(None),
    };
    Ok(Some(v))
}

/// Pooling windows up to this many taps are unrolled into one operand per
/// tap; larger ones loop over the window.
const MAX_UNROLLED_TAPS: usize = 16;

/// A pooling window as a reduction over `[n, c, oh, ow, kh, kw]` reading
/// `x[n, c, oh*s + kh - p, …]`, padded with the fold's identity.
#[allow(clippy::too_many_arguments)]
fn pool_reduction(f: &mut Function, out: &TensorType, kind: OpKind, x: ValueId, k: [i64; 2], s: [i64; 2], p: [i64; 2], combine: OpKind, init: f64) -> Result<ValueId, String> {
    let mut sizes = sizes_of(out);
    sizes.extend([Some(k[0] as u64), Some(k[1] as u64)]);
    let window = |a: usize| AffineExpr::default().plus_dim(2 + a, s[a]).plus_dim(4 + a, 1).plus(-p[a]);
    let map = AffineMap { dims: 6, results: vec![AffineExpr::dim(0), AffineExpr::dim(1), window(0), window(1)] };
    let padded = p.iter().any(|&v| v > 0);
    let g = Generic {
        reduction: vec![false, false, false, false, true, true],
        sizes,
        maps: vec![map],
        out_map: AffineMap::projection(6, &[0, 1, 2, 3]),
        dtype: out.dtype,
        init,
        padded: if padded { vec![0] } else { Vec::new() },
        pad: if padded { init } else { 0.0 },
        fused: vec![kind.name().to_string()],
        body: vec![Scalar::Operand(0), Scalar::Acc, op(combine, vec![1, 0])],
        result: 2,
        extra: Vec::new(),
    };
    g.emit(f, &[x])
}
