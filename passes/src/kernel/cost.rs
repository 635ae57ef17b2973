//! The cost model fusion decides with: bytes moved and FLOPs per kernel,
//! turned into one estimated time.
//!
//! A kernel reads each distinct operand value once and writes its result
//! once (`bytes`); its body runs once per point of its iteration space
//! (`flops`, transcendental functions weighted by their polynomial's length).
//! The estimate is `bytes / BYTES_PER_NS + flops / FLOPS_PER_NS`: one core
//! streaming from memory, and its 128-bit FMA units. It is analytic on
//! purpose — the same decisions on every machine and in CI — and it needs
//! only to rank alternatives, not to predict times. A `?` batch counts as
//! [`NOMINAL_BATCH`]: every kernel of a function scales with the same batch,
//! so the choice rarely depends on it.
//!
//! One rule about the code generator: a kernel whose body computes in both
//! f32 and f64 (a sum widened to f64 next to f32 arithmetic) runs without
//! vectors, one element per operation, so its FLOPs count [`SCALAR_FACTOR`]
//! times. Fusing an f64 row statistic into an f32 kernel that calls `exp`
//! (softmax's normalization) would otherwise look free and make the kernel
//! several times slower.

use dlc_ir::kernel::{Generic, Scalar};
use dlc_ir::{Dim, Function, OpId, OpKind, TensorType, Type, ValueId};

/// The batch size a `?` stands for in estimates.
pub const NOMINAL_BATCH: u64 = 64;
/// Bytes one core moves per nanosecond when streaming (≈ 8 GB/s).
pub const BYTES_PER_NS: f64 = 8.0;
/// f32 operations one core retires per nanosecond on 4-lane vectors.
pub const FLOPS_PER_NS: f64 = 16.0;

/// How much more a FLOP costs in a kernel that runs scalar (the f32 vector
/// width): see the module docs.
pub const SCALAR_FACTOR: f64 = 4.0;

/// What one kernel (or a set of kernels) costs.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Cost {
    /// Bytes read and written.
    pub bytes: f64,
    /// Arithmetic operations.
    pub flops: f64,
    /// Kernel launches (each a pass over memory and a call).
    pub kernels: usize,
}

impl Cost {
    /// The estimated time in nanoseconds.
    pub fn time_ns(&self) -> f64 {
        self.bytes / BYTES_PER_NS + self.flops / FLOPS_PER_NS
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost { bytes: self.bytes + o.bytes, flops: self.flops + o.flops, kernels: self.kernels + o.kernels }
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(it: I) -> Cost {
        it.fold(Cost::default(), |a, b| a + b)
    }
}

/// Elements of a tensor type (`?` as the nominal batch).
pub fn elements(t: &TensorType) -> f64 {
    t.shape.iter().map(|d| match d {
        Dim::Static(n) => *n as f64,
        Dim::Dynamic => NOMINAL_BATCH as f64,
    }).product()
}

/// Bytes of a value of type `t`.
pub fn bytes(t: &Type) -> f64 {
    match t {
        Type::Tensor(t) => elements(t) * t.dtype.size_bytes() as f64,
        _ => 0.0,
    }
}

/// Operations one evaluation of `kind` costs, relative to an add.
pub fn op_flops(kind: OpKind) -> f64 {
    match kind {
        OpKind::Exp | OpKind::Log | OpKind::Tanh | OpKind::Sigmoid | OpKind::Pow => 12.0,
        OpKind::Sqrt | OpKind::Rsqrt | OpKind::Div => 4.0,
        _ => 1.0,
    }
}

/// Points of a kernel's iteration space.
pub fn points(g: &Generic) -> f64 {
    g.sizes.iter().map(|s| s.unwrap_or(NOMINAL_BATCH) as f64).product()
}

/// The cost of a generic kernel reading `operands` of `f` and producing
/// results of types `outs` (each written once: a kernel with several results
/// pays for every one of them, and reads a shared operand once).
pub fn generic_cost(f: &Function, g: &Generic, operands: &[ValueId], outs: &[Type]) -> Cost {
    let live = g.live();
    let per_point: f64 = g.body.iter().enumerate().filter(|(i, _)| live[*i]).map(|(_, s)| match s {
        Scalar::Op { kind, .. } => op_flops(*kind),
        _ => 0.0,
    }).sum();
    let per_point = if mixes_float_widths(f, g, operands) { per_point * SCALAR_FACTOR } else { per_point };
    let mut seen: Vec<ValueId> = Vec::new();
    let mut read = 0.0;
    for &v in operands {
        if !seen.contains(&v) {
            seen.push(v);
            read += bytes(f.ty(v));
        }
    }
    Cost { bytes: read + outs.iter().map(bytes).sum::<f64>(), flops: per_point * points(g), kernels: 1 }
}

/// True when `g`'s live body has both f32 and f64 values (its operands',
/// constants', casts' and result's element types).
pub(crate) fn mixes_float_widths(f: &Function, g: &Generic, operands: &[ValueId]) -> bool {
    float_widths(f, g, operands) == [true, true]
}

/// Whether `g`'s live body has f32 values, and f64 values (see
/// [`mixes_float_widths`]).
pub(crate) fn float_widths(f: &Function, g: &Generic, operands: &[ValueId]) -> [bool; 2] {
    use dlc_ir::{AttrView, DType};
    let live = g.live();
    let mut widths = [false; 2];
    let mut note = |d: DType| match d {
        DType::F32 => widths[0] = true,
        DType::F64 => widths[1] = true,
        _ => {}
    };
    for o in g.outputs() {
        note(o.dtype);
    }
    for (_, s) in g.body.iter().enumerate().filter(|(i, _)| live[*i]) {
        match s {
            Scalar::Operand(k) => {
                if let Some(t) = operands.get(*k).and_then(|&v| f.ty(v).as_tensor()) {
                    note(t.dtype);
                }
            }
            Scalar::Const { dtype, .. } => note(*dtype),
            Scalar::Op { kind: OpKind::Cast, attrs, .. } => {
                if let Ok(d) = AttrView::new(OpKind::Cast, attrs).dtype("dtype") {
                    note(d);
                }
            }
            _ => {}
        }
    }
    widths
}

/// The cost of any top-level op of a kernel-level function: generics by
/// [`generic_cost`], contractions by their multiply-adds and operands, views
/// (`dl.reshape`) and constants free, anything else as one pass over its
/// operands and result.
pub fn op_cost(f: &Function, o: OpId) -> Cost {
    let op = f.op(o);
    let out = op.results.first().map(|&r| f.ty(r).clone());
    let io: f64 = op.operands.iter().map(|&v| bytes(f.ty(v))).sum::<f64>() + out.as_ref().map_or(0.0, bytes);
    match op.kind {
        OpKind::Generic => match Generic::read(f, o) {
            Ok((g, operands)) => generic_cost(f, &g, &operands, &op.results.iter().map(|&r| f.ty(r).clone()).collect::<Vec<_>>()),
            Err(_) => Cost::default(),
        },
        OpKind::KernelMatmul | OpKind::KernelConv2d | OpKind::Matmul | OpKind::Conv2d | OpKind::Conv2dGradInput | OpKind::Conv2dGradWeight => {
            // 2·M·N·K for matmul; for conv2d the output elements times
            // C·KH·KW, and as many for either of its gradients (the output
            // gradient's elements times the weight's C·KH·KW).
            let w = op.operands.get(1).and_then(|&v| f.ty(v).as_tensor().cloned());
            let y = out.as_ref().and_then(|t| t.as_tensor().cloned());
            let taps = |w: &TensorType| w.shape[1..].iter().map(|d| d.as_static().unwrap_or(1) as f64).product::<f64>();
            let macs = match (w, y) {
                (Some(w), Some(y)) if matches!(op.kind, OpKind::KernelConv2d | OpKind::Conv2d) => {
                    // The convolution's own result, before a fused max-pool.
                    let types: Vec<Type> = op.operands.iter().map(|&v| f.ty(v).clone()).collect();
                    let conv = dlc_ir::registry::kernel::conv2d_unpooled(&types, &dlc_ir::AttrView::new(op.kind, &op.attrs)).ok();
                    conv.as_ref().and_then(|t| t.as_tensor()).map_or(elements(&y), elements) * taps(&w)
                }
                (Some(w), Some(_)) if op.kind == OpKind::Conv2dGradInput => f.ty(op.operands[0]).as_tensor().map_or(0.0, elements) * taps(&w),
                (Some(g), Some(dw)) if op.kind == OpKind::Conv2dGradWeight => elements(&g) * taps(&dw),
                (Some(_), Some(y)) => {
                    let a = f.ty(op.operands[0]).as_tensor().cloned();
                    let k = a.map_or(1.0, |a| {
                        let ta = dlc_ir::AttrView::new(op.kind, &op.attrs).bool("transpose_a").unwrap_or(false);
                        let r = a.rank();
                        match a.shape[if ta { r - 2 } else { r - 1 }] {
                            Dim::Static(n) => n as f64,
                            Dim::Dynamic => NOMINAL_BATCH as f64,
                        }
                    });
                    elements(&y) * k
                }
                _ => 0.0,
            };
            Cost { bytes: io, flops: 2.0 * macs, kernels: 1 }
        }
        OpKind::KernelConv2dGradWeight => {
            // The convolution recomputed (operands x and w), then its
            // weight gradient: twice its multiply-adds.
            let types: Vec<Type> = op.operands.iter().map(|&v| f.ty(v).clone()).collect();
            let conv = types.get(2).and_then(|w| dlc_ir::registry::kernel::conv2d_unpooled(&[types[0].clone(), w.clone()], &dlc_ir::AttrView::new(op.kind, &op.attrs)).ok());
            let taps = types.get(2).and_then(|w| w.as_tensor()).map_or(0.0, |w| w.shape[1..].iter().map(|d| d.as_static().unwrap_or(1) as f64).product::<f64>());
            let y = conv.as_ref().and_then(|t| t.as_tensor()).cloned();
            let macs = 2.0 * y.as_ref().map_or(0.0, elements) * taps;
            // A shape not run in one pass writes and reads the convolution's
            // output and its gradient after all.
            let view = dlc_ir::AttrView::new(op.kind, &op.attrs);
            let spilled = if dlc_ir::registry::kernel::pooled_grad_weight_in_one_pass(&types, &view) { 0.0 } else { y.map_or(0.0, |y| 4.0 * bytes(&y.into())) };
            Cost { bytes: io + spilled, flops: 2.0 * macs, kernels: 1 }
        }
        OpKind::KernelRoutedConv2dGradInput | OpKind::KernelRoutedConv2dGradWeight => {
            // The windows' gradients (the pooled gradient's elements) times
            // C·KH·KW; a shape not run routed multiplies, writes and reads
            // the full-size gradient (y's size).
            let types: Vec<Type> = op.operands.iter().map(|&v| f.ty(v).clone()).collect();
            let input = op.kind == OpKind::KernelRoutedConv2dGradInput;
            let (y, g) = if input { (types.first(), types.get(1)) } else { (types.get(1), types.get(2)) };
            let per = if input { types.get(2).cloned() } else { out.clone() };
            let taps = per.as_ref().and_then(|t| t.as_tensor()).map_or(0.0, |t| t.shape[1..].iter().map(|d| d.as_static().unwrap_or(1) as f64).product::<f64>());
            let elems = |t: Option<&Type>| t.and_then(|t| t.as_tensor()).map_or(0.0, elements);
            let view = dlc_ir::AttrView::new(op.kind, &op.attrs);
            if dlc_ir::registry::kernel::routed_op_serves(op.kind, &types, &view) {
                Cost { bytes: io, flops: 2.0 * elems(g) * taps, kernels: 1 }
            } else {
                Cost { bytes: io + 2.0 * y.map_or(0.0, bytes), flops: 2.0 * elems(y) * taps, kernels: 1 }
            }
        }
        OpKind::Reshape | OpKind::Constant | OpKind::Return => Cost::default(),
        _ => Cost { bytes: io, flops: 0.0, kernels: 1 },
    }
}

/// The cost of a whole function: the sum over its top-level ops.
pub fn function_cost(f: &Function) -> Cost {
    f.body_ops().iter().map(|&o| op_cost(f, o)).sum()
}
