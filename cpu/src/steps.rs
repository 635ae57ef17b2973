//! From one top-level op of a kernel-level function to what runs it.
//!
//! | op | runs as |
//! |---|---|
//! | `kernel.generic` whose maps are NumPy broadcasts (elementwise chains) | a dlc-jit elementwise kernel: dims collapsed, 128-bit vectors |
//! | any other `kernel.generic` (reductions, windows, permuted or strided reads, several results) | a dlc-jit structured kernel (loop nest from the iteration space), one output buffer per result |
//! | `kernel.matmul`, `kernel.conv2d` | dlc-contract's gemm with the bias/ReLU epilogue |
//! | `dl.conv2d_grad_input`, `dl.conv2d_grad_weight` | dlc-contract's `conv2d_grad_input` / `conv2d_grad_weight` (col2im and im2col around gemm) |
//! | `dl.reshape` | a view: an arena value is read in place under the new shape; another buffer is moved (or copied if still in use) |
//! | `dl.concat` | block copies (`movement.rs`), into the arena for f32, f64 and i1 |
//! | anything else (`dl.gather`, `dl.one_hot`, `dl.argmax`, integer kernels, ops left at the `dl` level) | the reference interpreter, one op at a time |
//!
//! A kernel the JIT refuses (an element type it lacks, a rank-0 space) runs
//! on the interpreter too: correct by construction, and visible in
//! [`crate::CpuExecutable::plan_summary`] as `interp[…]`.

use crate::CpuError;
use crate::pool::PoolWindow;
use dlc_contract::{Conv2d, MaxPool2d, Transpose};
use dlc_ir::kernel::{Generic, Scalar};
use dlc_ir::{AttrView, Attrs, Builder, DenseAttr, Dim, Function, OpId, OpKind, TensorType, Type, ValueId};
use dlc_jit::{CompiledGeneric, CompiledKernel, Jit, Lowered};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Kernels already compiled for this function, by what they compute: a
/// training step repeats the same kernel many times (one Adam update per
/// parameter of a shape, the same slice pattern per pooling tap), and each
/// costs a Cranelift compile (0.2–1 ms).
#[derive(Default)]
pub(crate) struct KernelCache {
    elementwise: Mutex<HashMap<String, Elementwise>>,
    structured: Mutex<HashMap<String, Arc<CompiledGeneric>>>,
}

/// A compiled elementwise kernel and how its iteration space maps to its output.
type Elementwise = (Arc<CompiledKernel>, Arc<Lowered>);

/// The cache key of a generic: everything but the names of the ops it fused.
fn key(g: &Generic, types: &[Type]) -> String {
    let mut g = g.clone();
    g.fused.clear();
    format!("{g:?}{types:?}")
}

/// A step ready to run.
pub(crate) enum Exec {
    /// An elementwise `kernel.generic` on the elementwise JIT path.
    Elementwise { kernel: Arc<CompiledKernel>, lowered: Arc<Lowered>, inputs: Vec<ValueId> },
    /// Any other `kernel.generic`, compiled as a loop nest.
    Structured {
        kernel: Arc<CompiledGeneric>,
        generic: Box<Generic>,
        inputs: Vec<ValueId>,
        /// When dim 0 is a sum that can be cut into partial sums
        /// ([`partial_sums`]): per input, whether it is cut along its dim 0.
        partial: Option<Vec<bool>>,
    },
    /// A `kernel.generic` the JIT cannot take, run by the interpreter (the
    /// function holds just that kernel).
    InterpKernel { func: Box<Function>, inputs: Vec<ValueId> },
    /// `kernel.matmul`.
    Matmul { a: ValueId, b: ValueId, t: Transpose, bias: Option<ValueId>, relu: bool },
    /// `kernel.conv2d`.
    Conv2d { x: ValueId, w: ValueId, conv: Conv2d, bias: Option<ValueId>, relu: bool, pool: Option<MaxPool2d> },
    /// `dl.conv2d_grad_input`: the input gradient of a convolution by `w`
    /// whose output gradient is `g` (the step's output shape is the input's).
    Conv2dGradInput { g: ValueId, w: ValueId, conv: Conv2d },
    /// `dl.conv2d_grad_weight`: the weight gradient of a convolution of `x`
    /// whose output gradient is `g` (the step's output shape is the weight's).
    Conv2dGradWeight { x: ValueId, g: ValueId, conv: Conv2d },
    /// `kernel.conv2d_grad_weight`: the weight gradient of a convolution of
    /// `x` by `w` (plus `bias`) max-pooled by `pool`, from the pooled
    /// output's gradient `g`, the convolution recomputed.
    Conv2dPooledGradWeight { x: ValueId, g: ValueId, w: ValueId, bias: Option<ValueId>, conv: Conv2d, pool: MaxPool2d, relu: bool },
    /// `kernel.routed_conv2d_grad_input`: the input gradient of a
    /// convolution by `w` whose output `y` was max-pooled by `pool`, from
    /// the pooled output's gradient `g` (the step's output shape is the
    /// input's).
    RoutedGradInput { y: ValueId, g: ValueId, w: ValueId, conv: Conv2d, pool: MaxPool2d, relu: bool },
    /// `kernel.routed_conv2d_grad_weight`: the weight gradient of a
    /// convolution of `x` whose output `y` was max-pooled by `pool`, from
    /// the pooled output's gradient `g` (the step's output shape is the
    /// weight's).
    RoutedGradWeight { x: ValueId, y: ValueId, g: ValueId, conv: Conv2d, pool: MaxPool2d, relu: bool },
    /// `dl.max_pool2d_grad`: max-pooling's input gradient, from the pooled
    /// input `x` and the output gradient `g` (`pool.rs`).
    MaxPool2dGrad { x: ValueId, g: ValueId, win: PoolWindow, relu: bool },
    /// `dl.reshape`: a view.
    Reshape { input: ValueId, attrs: Attrs },
    /// One op through the interpreter's `eval_op` (`dl.concat`: block copies).
    Interp { kind: OpKind, attrs: Attrs, inputs: Vec<ValueId> },
}

impl Exec {
    /// The values the step reads.
    pub fn inputs(&self) -> Vec<ValueId> {
        match self {
            Exec::Elementwise { inputs, .. } | Exec::Structured { inputs, .. } | Exec::InterpKernel { inputs, .. } | Exec::Interp { inputs, .. } => inputs.clone(),
            Exec::Matmul { a, b, bias, .. } => [Some(*a), Some(*b), *bias].into_iter().flatten().collect(),
            Exec::Conv2d { x, w, bias, .. } => [Some(*x), Some(*w), *bias].into_iter().flatten().collect(),
            Exec::Conv2dPooledGradWeight { x, g, w, bias, .. } => [Some(*x), Some(*g), Some(*w), *bias].into_iter().flatten().collect(),
            Exec::RoutedGradInput { y: a, g: b, w: c, .. } | Exec::RoutedGradWeight { x: a, y: b, g: c, .. } => vec![*a, *b, *c],
            Exec::Conv2dGradInput { g: a, w: b, .. } | Exec::Conv2dGradWeight { x: a, g: b, .. } | Exec::MaxPool2dGrad { x: a, g: b, .. } => vec![*a, *b],
            Exec::Reshape { input, .. } => vec![*input],
        }
    }

    /// The inputs an output of type `out` could be written over, in order:
    /// for an elementwise kernel, each input that every one of its operand
    /// slots reads in full (no broadcast) at the output's dtype. Whether one
    /// dies at this step is the caller's to check (and that its type is the
    /// output's).
    pub fn in_place_candidates(&self, out: &TensorType) -> Vec<ValueId> {
        let Exec::Elementwise { kernel, inputs, .. } = self else { return Vec::new() };
        let specs = kernel.spec().inputs();
        if specs.len() != inputs.len() {
            return Vec::new();
        }
        let mut found: Vec<ValueId> = Vec::new();
        for &v in inputs {
            let full = inputs.iter().zip(specs).filter(|(w, _)| **w == v).all(|(_, s)| s.dtype == out.dtype && s.access.iter().all(|a| *a == dlc_jit::Access::Full));
            if full && !found.contains(&v) {
                found.push(v);
            }
        }
        found
    }

    /// True when the step writes its output into a given `&mut` slice
    /// (JIT kernels, contractions, block-copy concat), so the output can
    /// live in the arena.
    pub fn writes_slice(&self) -> bool {
        match self {
            Exec::Elementwise { .. } | Exec::Structured { .. } | Exec::Matmul { .. } | Exec::Conv2d { .. } => true,
            Exec::Conv2dGradInput { .. } | Exec::Conv2dGradWeight { .. } | Exec::Conv2dPooledGradWeight { .. } | Exec::MaxPool2dGrad { .. } => true,
            Exec::RoutedGradInput { .. } | Exec::RoutedGradWeight { .. } => true,
            Exec::Interp { kind, .. } => *kind == OpKind::Concat,
            Exec::InterpKernel { .. } | Exec::Reshape { .. } => false,
        }
    }
}

/// An op's name without its dialect (`add` for `dl.add`).
pub fn short(name: &str) -> &str {
    name.split_once('.').map_or(name, |(_, s)| s)
}

fn pair(view: &AttrView, name: &str) -> Result<[usize; 2], CpuError> {
    match view.ints(name).map_err(CpuError::Malformed)?.as_slice() {
        &[h, w] if h >= 0 && w >= 0 => Ok([h as usize, w as usize]),
        other => Err(CpuError::Malformed(format!("attribute '{name}' must be two integers, got {other:?}"))),
    }
}

/// A convolution's stride, padding and dilation.
fn window(view: &AttrView) -> Result<Conv2d, CpuError> {
    Ok(Conv2d { stride: pair(view, "stride")?, padding: pair(view, "padding")?, dilation: pair(view, "dilation")?, winograd: true })
}

/// True when `f` differentiates a convolution: a training step, whose
/// convolutions keep direct sums (see `Conv2d::winograd`) so that its
/// trajectory follows PyTorch's.
fn trains_a_convolution(f: &Function) -> bool {
    f.body_ops().iter().any(|&o| matches!(f.op(o).kind, OpKind::Conv2dGradInput | OpKind::Conv2dGradWeight | OpKind::KernelConv2dGradWeight | OpKind::KernelRoutedConv2dGradInput | OpKind::KernelRoutedConv2dGradWeight))
}

/// The max-pool window of a kernel op that requires one (`max_pool`).
fn required_pool(kind: OpKind, view: &AttrView) -> Result<MaxPool2d, CpuError> {
    let Some(p) = dlc_ir::registry::kernel::fused_max_pool(view).map_err(|m| CpuError::Malformed(m.to_string()))? else {
        return Err(CpuError::Malformed(format!("{} needs its max_pool window", kind.name())));
    };
    let p = AttrView::new(OpKind::MaxPool2d, &p);
    Ok(MaxPool2d { kernel: pair(&p, "kernel")?, stride: pair(&p, "stride")?, padding: pair(&p, "padding")? })
}

/// Compiles top-level op `o` of `f`; also returns its description.
pub(crate) fn compile_op(f: &Function, o: OpId, jit: &Jit, cache: &KernelCache) -> Result<(Exec, String), CpuError> {
    let op = f.op(o);
    let view = AttrView::new(op.kind, &op.attrs);
    let mal = CpuError::Malformed;
    Ok(match op.kind {
        OpKind::Generic => {
            let (g, inputs) = Generic::read(f, o).map_err(mal)?;
            let g = long_inner(&g).unwrap_or(g);
            let name = g.fused.iter().map(|s| short(s)).collect::<Vec<_>>().join(",");
            let types: Vec<Type> = inputs.iter().map(|&v| f.ty(v).clone()).collect();
            let k = key(&g, &types);
            let cached = cache.elementwise.lock().expect("no panics while held").get(&k).cloned();
            if let Some((kernel, lowered)) = cached {
                return Ok((Exec::Elementwise { kernel, lowered, inputs }, format!("jit[{name}]")));
            }
            if let Some(dl) = as_elementwise(&g, &types)
                && let Ok(lowered) = dlc_jit::lower_function(&dl)
                && let Ok(kernel) = jit.compile(&lowered.spec)
            {
                let (kernel, lowered) = (Arc::new(kernel), Arc::new(lowered));
                cache.elementwise.lock().expect("no panics while held").insert(k, (kernel.clone(), lowered.clone()));
                return Ok((Exec::Elementwise { kernel, lowered, inputs }, format!("jit[{name}]")));
            }
            let cached = cache.structured.lock().expect("no panics while held").get(&k).cloned();
            let compiled = match cached {
                Some(kernel) => Ok(kernel),
                None => structured(&g, &types, jit).map(|kernel| {
                    let kernel = Arc::new(kernel);
                    cache.structured.lock().expect("no panics while held").insert(k, kernel.clone());
                    kernel
                }),
            };
            match compiled {
                Ok(kernel) => {
                    let partial = partial_sums(&g, &types);
                    // `wide`: it also has 256-bit code (a flat f32 map: an optimizer update).
                    let label = if kernel.is_wide() { format!("wide[{name}]") } else { format!("loops[{name}]") };
                    (Exec::Structured { kernel, generic: Box::new(g), inputs, partial }, label)
                }
                Err(_) => {
                    let mut k = Function::new("kernel");
                    let args: Vec<ValueId> = types.iter().map(|t| k.add_arg(t.clone(), None, Attrs::new())).collect();
                    let rs = g.emit_all(&mut k, &args).map_err(mal)?;
                    Builder::at_entry(&mut k).ret(&rs);
                    k.result_types = rs.iter().map(|&r| k.ty(r).clone()).collect();
                    (Exec::InterpKernel { func: Box::new(k), inputs }, format!("interp[{name}]"))
                }
            }
        }
        OpKind::KernelMatmul => {
            let t = Transpose::new(view.bool("transpose_a").map_err(mal)?, view.bool("transpose_b").map_err(CpuError::Malformed)?);
            let relu = view.bool("relu").map_err(CpuError::Malformed)?;
            let bias = op.operands.get(2).copied();
            let d = format!("matmul{}{}", if bias.is_some() { "+bias" } else { "" }, if relu { "+relu" } else { "" });
            (Exec::Matmul { a: op.operands[0], b: op.operands[1], t, bias, relu }, d)
        }
        OpKind::KernelConv2d => {
            let conv = Conv2d { winograd: !trains_a_convolution(f), ..window(&view)? };
            let relu = view.bool("relu").map_err(mal)?;
            let bias = op.operands.get(2).copied();
            let pool = match dlc_ir::registry::kernel::fused_max_pool(&view).map_err(mal)? {
                Some(p) => {
                    let p = AttrView::new(OpKind::MaxPool2d, &p);
                    Some(MaxPool2d { kernel: pair(&p, "kernel")?, stride: pair(&p, "stride")?, padding: pair(&p, "padding")? })
                }
                None => None,
            };
            let d = format!("conv2d{}{}{}", if bias.is_some() { "+bias" } else { "" }, if relu { "+relu" } else { "" }, if pool.is_some() { "+maxpool" } else { "" });
            (Exec::Conv2d { x: op.operands[0], w: op.operands[1], conv, bias, relu, pool }, d)
        }
        OpKind::Conv2dGradInput => (Exec::Conv2dGradInput { g: op.operands[0], w: op.operands[1], conv: Conv2d { winograd: false, ..window(&view)? } }, "conv2d_grad_input".into()),
        OpKind::Conv2dGradWeight => (Exec::Conv2dGradWeight { x: op.operands[0], g: op.operands[1], conv: window(&view)? }, "conv2d_grad_weight".into()),
        OpKind::KernelConv2dGradWeight => {
            let pool = required_pool(op.kind, &view)?;
            let relu = view.bool("relu").map_err(mal)?;
            let [x, g, w] = [0, 1, 2].map(|i| op.operands[i]);
            let exec = Exec::Conv2dPooledGradWeight { x, g, w, bias: op.operands.get(3).copied(), conv: Conv2d { winograd: false, ..window(&view)? }, pool, relu };
            (exec, format!("conv2d_grad_weight+maxpool{}", if relu { "+relu" } else { "" }))
        }
        OpKind::KernelRoutedConv2dGradInput | OpKind::KernelRoutedConv2dGradWeight => {
            let (pool, relu) = (required_pool(op.kind, &view)?, view.bool("relu").map_err(mal)?);
            let conv = Conv2d { winograd: false, ..window(&view)? };
            let [a, b, c] = [0, 1, 2].map(|i| op.operands[i]);
            let suffix = if relu { "+relu" } else { "" };
            if op.kind == OpKind::KernelRoutedConv2dGradInput {
                (Exec::RoutedGradInput { y: a, g: b, w: c, conv, pool, relu }, format!("conv2d_grad_input+routed{suffix}"))
            } else {
                (Exec::RoutedGradWeight { x: a, y: b, g: c, conv, pool, relu }, format!("conv2d_grad_weight+routed{suffix}"))
            }
        }
        OpKind::MaxPool2dGrad => {
            let win = PoolWindow { kernel: pair(&view, "kernel")?, stride: pair(&view, "stride")?, padding: pair(&view, "padding")? };
            let relu = view.bool("relu").map_err(mal)?;
            (Exec::MaxPool2dGrad { x: op.operands[0], g: op.operands[1], win, relu }, if relu { "max_pool2d_grad+relu" } else { "max_pool2d_grad" }.into())
        }
        OpKind::Reshape => (Exec::Reshape { input: op.operands[0], attrs: op.attrs.clone() }, "reshape".into()),
        OpKind::Concat => (Exec::Interp { kind: OpKind::Concat, attrs: op.attrs.clone(), inputs: op.operands.clone() }, "concat".into()),
        kind => (Exec::Interp { kind, attrs: op.attrs.clone(), inputs: op.operands.clone() }, format!("interp[{}]", short(kind.name()))),
    })
}

/// An all-parallel generic whose innermost dim is too short for a vector
/// and cannot merge with the next one (an operand broadcasts along one of
/// them but not the other, as in the pooling gradient's `[n, c, oh, 2, ow,
/// 2]` scatter), with that dim swapped with the nearest dim of at least 8:
/// the loop order of an all-parallel kernel is free, and the loop-nest JIT
/// runs the long dim on vectors, gathering and scattering the strided
/// operands. Dim 0 stays first, so row splits still apply.
fn long_inner(g: &Generic) -> Option<Generic> {
    let rank = g.rank();
    if g.reduces() || rank < 3 {
        return None;
    }
    let last = rank - 1;
    if g.sizes[last].is_none_or(|n| n >= 4) {
        return None;
    }
    let reads = |m: &dlc_ir::AffineMap, k: usize| m.results.iter().any(|e| e.coefficient(k) != 0);
    if g.maps.iter().all(|m| reads(m, last) == reads(m, last - 1)) {
        return None;
    }
    let k = (1..last).rev().find(|&k| g.sizes[k].is_some_and(|n| n >= 8))?;
    let mut swap = dlc_ir::AffineMap::identity(rank);
    swap.results.swap(k, last);
    let mut p = g.clone();
    p.sizes.swap(k, last);
    p.reduction.swap(k, last);
    p.maps = g.maps.iter().map(|m| m.compose(&swap)).collect();
    p.out_map = g.out_map.compose(&swap);
    for o in &mut p.extra {
        o.map = o.map.compose(&swap);
    }
    Some(p)
}

/// The generic as a `dl` function of elementwise ops, when it is one: no
/// reduction, the identity result map, every operand read by NumPy
/// broadcasting (right-aligned dims, a constant 0 on a size-1 dim).
fn as_elementwise(g: &Generic, types: &[Type]) -> Option<Function> {
    let rank = g.rank();
    if g.reduces() || !g.extra.is_empty() || g.out_map != dlc_ir::AffineMap::identity(rank) || !g.padded.is_empty() {
        return None;
    }
    for (t, m) in types.iter().zip(&g.maps) {
        let t = t.as_tensor()?;
        let lead = rank.checked_sub(t.rank())?;
        for (j, e) in m.results.iter().enumerate() {
            let ok = match e.as_dim() {
                Some(k) => k == lead + j && t.shape[j] == g.dim(k),
                None => *e == dlc_ir::AffineExpr::constant(0) && t.shape[j] == Dim::Static(1),
            };
            if !ok {
                return None;
            }
        }
    }
    let mut f = Function::new("kernel");
    let args: Vec<ValueId> = types.iter().map(|t| f.add_arg(t.clone(), None, Attrs::new())).collect();
    let mut b = Builder::at_entry(&mut f);
    let mut vals: Vec<ValueId> = Vec::with_capacity(g.body.len());
    for s in &g.body {
        let v = match s {
            Scalar::Operand(i) => args[*i],
            Scalar::Acc => return None,
            Scalar::Const { value, dtype } => {
                let data = match dtype {
                    d if d.is_float() => dlc_ir::DenseData::Float(vec![*value]),
                    dlc_ir::DType::I1 => dlc_ir::DenseData::Bool(vec![*value != 0.0]),
                    _ => dlc_ir::DenseData::Int(vec![*value as i64]),
                };
                b.constant(DenseAttr { ty: TensorType::new(Vec::new(), *dtype), data }).ok()?
            }
            Scalar::Op { kind, attrs, args } => {
                let ins: Vec<ValueId> = args.iter().map(|&a| vals[a]).collect();
                b.op(*kind, &ins, attrs.clone()).ok()?
            }
        };
        vals.push(v);
    }
    let r = vals[g.result];
    // A body that ignores its operands' shapes (a constant) would not have the
    // kernel's result type: leave that to the structured path.
    let want: Vec<Dim> = (0..rank).map(|k| g.dim(k)).collect();
    if b.func.ty(r).as_tensor().map(|t| &t.shape) != Some(&want) {
        return None;
    }
    b.ret(&[r]);
    f.result_types = vec![f.ty(r).clone()];
    Some(f)
}

/// When `g`'s dim 0 is a reduction that only adds to the accumulator
/// (`acc + f(inputs)` from 0, a float result) and every input is either
/// indexed by `d0` as its dim 0 or not by `d0` at all, the sum over
/// `0..n` is the sum of the sums over `0..k` and `k..n`, each a call of
/// the same kernel on the inputs' rows `0..k` and `k..n`: returns, per
/// input, whether it is cut that way. (The gradient of a bias sums over the
/// batch this way.)
fn partial_sums(g: &Generic, types: &[Type]) -> Option<Vec<bool>> {
    if g.reduction.first() != Some(&true) || g.init != 0.0 || !g.padded.is_empty() || !g.dtype.is_float() {
        return None;
    }
    let acc: Vec<bool> = g.body.iter().map(|s| matches!(s, Scalar::Acc)).collect();
    let Scalar::Op { kind: OpKind::Add, args, .. } = g.body.get(g.result)? else { return None };
    // The accumulator feeds the final add and nothing else.
    let mut uses = 0;
    for s in &g.body {
        if let Scalar::Op { args, .. } = s {
            uses += args.iter().filter(|&&a| acc[a]).count();
        }
    }
    if uses != 1 || !args.iter().any(|&a| acc[a]) {
        return None;
    }
    g.maps
        .iter()
        .zip(types)
        .map(|(m, t)| {
            let rest_free = m.results.iter().skip(1).all(|e| e.coefficient(0) == 0);
            let t = t.as_tensor()?;
            match m.results.first() {
                Some(e) if e.as_dim() == Some(0) && rest_free && t.rank() == m.results.len() => Some(true),
                Some(e) if e.coefficient(0) == 0 && rest_free => Some(false),
                None => Some(false),
                _ => None,
            }
        })
        .collect()
}

/// Compiles the generic with the JIT's structured-kernel code generator.
fn structured(g: &Generic, types: &[Type], jit: &Jit) -> Result<dlc_jit::CompiledGeneric, CpuError> {
    use dlc_jit::{GenericBuilder, IterKind};
    let iters: Vec<IterKind> = g.reduction.iter().map(|&r| if r { IterKind::Reduction } else { IterKind::Parallel }).collect();
    let mut k = GenericBuilder::new(&iters, g.dtype)?;
    // Operand nodes first, in operand order, as the spec numbers its inputs.
    let mut operand_nodes = Vec::with_capacity(g.maps.len());
    for (i, (m, t)) in g.maps.iter().zip(types).enumerate() {
        let dtype = t.dtype().ok_or_else(|| CpuError::Unsupported("a non-tensor kernel operand".into()))?;
        let pad = g.padded.contains(&i).then_some(g.pad);
        // A padded plain-dim read of a dim smaller than the loop runs past it.
        let shape = t.as_tensor().map(|t| t.shape.clone()).unwrap_or_default();
        let checked: Vec<usize> = match pad {
            Some(_) => (0..m.results.len()).filter(|&j| m.results[j].as_dim().is_some_and(|k| shape.get(j) != Some(&g.dim(k)))).collect(),
            None => Vec::new(),
        };
        operand_nodes.push(k.padded_input(dtype, m.clone(), pad, &checked)?);
    }
    let mut nodes = Vec::with_capacity(g.body.len());
    for s in &g.body {
        let n = match s {
            Scalar::Operand(i) => operand_nodes[*i],
            Scalar::Acc => k.acc()?,
            Scalar::Const { value, dtype } => k.constant(*value, *dtype)?,
            Scalar::Op { kind, attrs, args } => {
                let ins: Vec<_> = args.iter().map(|&a| nodes[a]).collect();
                k.op(*kind, &ins, attrs.clone())?
            }
        };
        nodes.push(n);
    }
    let outs: Vec<_> = g.outputs().into_iter().map(|o| (nodes[o.node], o.map)).collect();
    let spec = k.finish_outputs(&outs, g.reduces().then_some(g.init))?;
    Ok(jit.compile_generic(&spec)?)
}

/// The operands body node `n` reads, nearest first (breadth first).
fn nearest_operands(g: &Generic, n: usize) -> Vec<usize> {
    let mut seen = vec![false; g.body.len()];
    let mut queue = std::collections::VecDeque::from([n]);
    let mut out = Vec::new();
    while let Some(k) = queue.pop_front() {
        if std::mem::replace(&mut seen[k], true) {
            continue;
        }
        match &g.body[k] {
            Scalar::Operand(i) => out.push(*i),
            Scalar::Op { args, .. } => queue.extend(args.iter().copied()),
            Scalar::Acc | Scalar::Const { .. } => {}
        }
    }
    out
}

/// For each result of a structured step with several results, the input
/// whose buffer it may be written over when the run owns that buffer (a
/// donated argument): one of `last_read_here` (inputs no later step reads),
/// of the result's type, read by every operand slot through the result's
/// own map, unpadded, in an all-parallel kernel; each input for one result
/// at most, the one nearest to the result in its body (so Adam's `m'` takes
/// `m`'s buffer, not `v`'s: either is correct, this one reads as intended).
/// The kernel then reads it in place ([`dlc_jit::Source::Output`]).
pub(crate) fn donors(e: &Exec, outs: &[TensorType], types: &dyn Fn(ValueId) -> Option<TensorType>, last_read_here: &dyn Fn(ValueId) -> bool) -> Vec<Option<ValueId>> {
    let Exec::Structured { generic: g, inputs, .. } = e else { return vec![None; outs.len()] };
    if g.reduces() {
        return vec![None; outs.len()];
    }
    let mut taken: Vec<ValueId> = Vec::new();
    g.outputs()
        .iter()
        .zip(outs)
        .map(|(o, t)| {
            let fits = |v: ValueId| {
                let slots: Vec<usize> = (0..inputs.len()).filter(|&i| inputs[i] == v).collect();
                slots.iter().all(|&i| g.maps[i] == o.map && !g.padded.contains(&i)) && types(v).as_ref() == Some(t) && last_read_here(v) && !taken.contains(&v)
            };
            let v = nearest_operands(g, o.node).into_iter().map(|i| inputs[i]).chain(inputs.iter().copied()).find(|&v| fits(v))?;
            taken.push(v);
            Some(v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::AffineMap;

    fn generic(sizes: &[Option<u64>], maps: &[&str]) -> Generic {
        let rank = sizes.len();
        Generic {
            reduction: vec![false; rank],
            sizes: sizes.to_vec(),
            maps: maps.iter().map(|m| AffineMap::parse(m).unwrap()).collect(),
            out_map: AffineMap::identity(rank),
            dtype: dlc_ir::DType::F32,
            init: 0.0,
            padded: Vec::new(),
            pad: 0.0,
            fused: Vec::new(),
            body: vec![Scalar::Operand(0)],
            result: 0,
            extra: Vec::new(),
        }
    }

    #[test]
    fn a_short_unmergeable_innermost_dim_trades_places_with_a_long_one() {
        // The pooling gradient's scatter: [n, c, oh, kh, ow, kw], the code broadcast along kh and kw.
        let g = generic(
            &[None, Some(32), Some(13), Some(2), Some(13), Some(2)],
            &["(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, 0, d4, 0)", "(d0, d1, d2, d3, d4, d5) -> (0, 0, 0, d3, 0, d5)"],
        );
        let p = long_inner(&g).expect("permuted");
        assert_eq!(p.sizes, vec![None, Some(32), Some(13), Some(2), Some(2), Some(13)]);
        assert_eq!(p.maps[0].to_string(), "(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, 0, d5, 0)");
        assert_eq!(p.maps[1].to_string(), "(d0, d1, d2, d3, d4, d5) -> (0, 0, 0, d3, 0, d4)");
        assert_eq!(p.out_map.to_string(), "(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d5, d4)");
        // Dims that merge (the same reads along both), a long innermost dim,
        // a reduction, or no long dim: unchanged.
        let same = generic(&[None, Some(64), Some(3), Some(3)], &["(d0, d1, d2, d3) -> (d0, d1, d2, d3)"]);
        assert!(long_inner(&same).is_none());
        let long = generic(&[None, Some(13), Some(8)], &["(d0, d1, d2) -> (d0, 0, d2)"]);
        assert!(long_inner(&long).is_none());
        let mut sum = generic(&[None, Some(13), Some(2)], &["(d0, d1, d2) -> (d0, d1, 0)"]);
        sum.reduction[1] = true;
        assert!(long_inner(&sum).is_none());
        let short = generic(&[None, Some(5), Some(2)], &["(d0, d1, d2) -> (d0, d1, 0)"]);
        assert!(long_inner(&short).is_none());
    }
}
