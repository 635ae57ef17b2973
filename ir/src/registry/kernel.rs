//! The structured-kernel level: what `dl` ops become before code generation
//! (`dlc compile --emit kernel`).
//!
//! Elementwise chains, broadcasts, transposes, slices, reductions, softmax
//! and pooling all take one form, `kernel.generic`, in the spirit of MLIR's
//! `linalg.generic`: an iteration space (`sizes`, `-1` for the batch `?`),
//! an iterator kind per dim (`parallel` or `reduction`), an affine
//! indexing map per operand and one for the result, and a scalar body region
//! whose block arguments are the operands' elements (plus the accumulator,
//! for reductions) and which ends in `kernel.yield`. The body holds the
//! registry's elementwise `dl` ops on scalars and `kernel.constant`s, so the
//! ops' meaning stays in one place. Contractions keep named structured ops
//! (`kernel.matmul`, `kernel.conv2d`) with an optional bias operand and ReLU
//! epilogue: they run on the contraction fast path, not on loop nests.
//!
//! One form makes fusion one operation (inline the producer's body, compose
//! its indexing maps with the consumer's) and code generation one loop-nest
//! builder. Semantics, for every point `p` of the iteration space in
//! row-major order: without reduction iterators, `out[out_map(p)] =
//! body(in_i[map_i(p)]…)`; with them, `out` starts filled with `init` and
//! `out[out_map(p)] = body(in_i[map_i(p)]…, out[out_map(p)])`. Operands
//! listed in `padded` read `pad` where their map leaves their bounds
//! (pooling windows over padding); every other access must stay in bounds.
//!
//! **Several results.** A kernel without reduction iterators may compute
//! several tensors in one loop nest: `indexing_maps` then ends with one map
//! per result, `dtypes` lists each result's element type (`dtype` is the
//! first's), and `kernel.yield` takes one value per result, in order:
//! `out_r[out_map_r(p)] = body_r(in_i[map_i(p)]…)`. Fusion builds these
//! where a value is needed both as a result of its own (a function result,
//! an operand of a contraction) and inside another kernel over the same
//! points (an optimizer's new moments and the parameter they update), so
//! the shared operands are read once and each result written once. One
//! result prints exactly as before: no `dtypes`, one result map.

use super::contraction;
use super::shape::{float_tensor, one, tensor};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef, OpKind};
use crate::affine::AffineMap;
use crate::module::{Function, OpId};
use crate::types::{DType, Dim, TensorType, Type};

/// The iterator kinds, as written in `iterators`.
pub const PARALLEL: &str = "parallel";
/// See [`PARALLEL`].
pub const REDUCTION: &str = "reduction";

/// A `kernel.generic`'s attributes, read and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct GenericAttrs {
    /// True for each reduction dim of the iteration space.
    pub reduction: Vec<bool>,
    /// One map per operand, then one per result.
    pub maps: Vec<AffineMap>,
    /// The iteration space; `None` for the batch `?`.
    pub sizes: Vec<Option<u64>>,
    /// The (first) result's element type.
    pub dtype: DType,
    /// Every result's element type, the first being `dtype`.
    pub dtypes: Vec<DType>,
    /// The accumulator's starting value (reductions).
    pub init: f64,
    /// Operands read with `pad` outside their bounds.
    pub padded: Vec<usize>,
    /// The value read there.
    pub pad: f64,
}

impl GenericAttrs {
    /// Reads the attributes of a `kernel.generic` with `operands` operands.
    pub fn read(view: &AttrView, operands: usize) -> Result<GenericAttrs, String> {
        let iters = view.strings("iterators")?;
        let reduction = iters
            .iter()
            .map(|s| match s.as_str() {
                PARALLEL => Ok(false),
                REDUCTION => Ok(true),
                other => Err(format!("iterator '{other}' must be \"{PARALLEL}\" or \"{REDUCTION}\"")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = reduction.len();
        let sizes = view
            .ints("sizes")?
            .into_iter()
            .map(|s| match s {
                -1 => Ok(None),
                s if s >= 0 => Ok(Some(s as u64)),
                s => Err(format!("size {s} must be >= 0, or -1 for the batch")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if sizes.len() != n {
            return Err(format!("{} sizes for {n} iterators", sizes.len()));
        }
        let dtype = view.dtype("dtype")?;
        let dtypes = match view.dtypes("dtypes")? {
            d if d.is_empty() => vec![dtype],
            d if d.len() == 1 => return Err("'dtypes' is for kernels with several results; one result has 'dtype' only".into()),
            d if d[0] != dtype => return Err(format!("'dtypes' starts with {}, but 'dtype' is {dtype}: the first result's type is both", d[0])),
            d => d,
        };
        let results = dtypes.len();
        if results > 1 && reduction.contains(&true) {
            return Err(format!("a kernel with reduction iterators has one result, not {results}"));
        }
        let maps = view.maps("indexing_maps")?;
        if maps.len() != operands + results {
            let what = if results == 1 { "one result".to_string() } else { format!("{results} results") };
            return Err(format!("{} indexing maps for {operands} operand(s) and {what}: expected {}", maps.len(), operands + results));
        }
        for m in &maps {
            if m.dims != n {
                return Err(format!("indexing map {m} has {} dims, the iteration space {n}", m.dims));
            }
            m.check()?;
        }
        for out in &maps[operands..] {
            if !out.is_projection() {
                return Err(format!("the result's map {out} must pick distinct dims"));
            }
            for (k, &red) in reduction.iter().enumerate() {
                let in_out = out.results.iter().any(|e| e.as_dim() == Some(k));
                if red == in_out {
                    let what = if red { "a reduction dim must not index the result" } else { "every parallel dim must index the result" };
                    return Err(format!("{what}: d{k} in {out}"));
                }
            }
        }
        let padded: Vec<usize> = view.ints("padded")?.into_iter().map(|i| i as usize).collect();
        if let Some(i) = padded.iter().find(|&&i| i >= operands) {
            return Err(format!("padded operand #{i} does not exist"));
        }
        Ok(GenericAttrs { reduction, maps, sizes, dtype, dtypes, init: view.float("init")?, padded, pad: view.float("pad")? })
    }

    /// True when some dim is a reduction.
    pub fn reduces(&self) -> bool {
        self.reduction.contains(&true)
    }

    /// How many results the kernel has.
    pub fn results(&self) -> usize {
        self.dtypes.len()
    }

    /// Result `r`'s map.
    pub fn result_map(&self, r: usize) -> &AffineMap {
        &self.maps[self.maps.len() - self.results() + r]
    }

    /// Result `r`'s shape: its map applied to the sizes.
    pub fn result_shape(&self, r: usize) -> Vec<Dim> {
        self.result_map(r).results.iter().map(|e| self.dim(e.as_dim().expect("a projection"))).collect()
    }

    /// Size `k` as a type dim.
    pub fn dim(&self, k: usize) -> Dim {
        self.sizes[k].map_or(Dim::Dynamic, Dim::Static)
    }
}

fn generic(ops: &[Type], view: &AttrView) -> Result<Vec<Type>, String> {
    let g = GenericAttrs::read(view, ops.len())?;
    for (i, (t, map)) in ops.iter().zip(&g.maps).enumerate() {
        let t = tensor(ops, i).map_err(|_| format!("operand #{i} must be a tensor, got {t}"))?;
        if t.rank() != map.results.len() {
            return Err(format!("operand #{i} {t} has rank {}, its map {map} gives {}", t.rank(), map.results.len()));
        }
        for (j, e) in map.results.iter().enumerate() {
            if let Some(k) = e.as_dim() {
                // A plain dim reads a prefix of the operand's dim (all of it, usually).
                let fits = match (t.shape[j], g.dim(k)) {
                    (Dim::Static(_), Dim::Static(_)) if g.padded.contains(&i) => true,
                    (Dim::Static(n), Dim::Static(s)) => s <= n,
                    (a, b) => a == b,
                };
                if !fits {
                    return Err(format!("operand #{i} {t}: dim {j} is {}, but its map reads it with d{k} of size {}", t.shape[j], g.dim(k)));
                }
                continue;
            }
            // Offsets, strides and windows: in bounds unless padded.
            let sizes: Option<Vec<usize>> = g.sizes.iter().map(|s| s.map(|s| s as usize)).collect();
            let (Some(sizes), Dim::Static(n)) = (sizes, t.shape[j]) else { continue };
            if g.padded.contains(&i) {
                continue;
            }
            if let Some((lo, hi)) = e.range(&sizes)
                && (lo < 0 || hi >= n as i64)
            {
                return Err(format!("operand #{i} {t}: its map's result {j} ({e}) ranges over [{lo}, {hi}], outside [0, {n})"));
            }
        }
    }
    if g.results() == 1 {
        return one(TensorType::new(g.result_shape(0), g.dtype));
    }
    Ok((0..g.results()).map(|r| Type::Tensor(TensorType::new(g.result_shape(r), g.dtypes[r]))).collect())
}

/// The body: one block whose arguments are one scalar per operand (its
/// element type) and, for reductions, the accumulator; elementwise ops and
/// scalar constants; `kernel.yield` of one scalar per result, of its element
/// type, last.
fn generic_region(f: &Function, o: OpId) -> Result<(), String> {
    let op = f.op(o);
    let g = GenericAttrs::read(&AttrView::new(op.kind, &op.attrs), op.operands.len())?;
    let [region] = op.regions.as_slice() else {
        return Err(format!("kernel.generic has one body region, found {}", op.regions.len()));
    };
    let [block] = region.blocks.as_slice() else {
        return Err(format!("the body region has one block, found {}", region.blocks.len()));
    };
    // Ids are checked here too: this runs before the verifier walks the body.
    if block.0 as usize >= f.num_blocks() {
        return Err(format!("the body lists block #{}, which does not exist", block.0));
    }
    let block = f.block(*block);
    let exists = |v: &crate::module::ValueId| (v.0 as usize) < f.num_values();
    let ops_exist = block.ops.iter().all(|o| (o.0 as usize) < f.num_ops());
    if !op.operands.iter().all(exists) || !block.args.iter().all(exists) || !ops_exist || !block.ops.iter().all(|&o| f.op(o).operands.iter().chain(&f.op(o).results).all(exists)) {
        return Err("the kernel refers to values or ops that do not exist".into());
    }
    let mut want: Vec<Type> = op.operands.iter().map(|&v| f.ty(v).dtype().map_or(Type::Index, Type::Scalar)).collect();
    if g.reduces() {
        want.push(Type::Scalar(g.dtype));
    }
    let have: Vec<Type> = block.args.iter().map(|&a| f.ty(a).clone()).collect();
    if have != want {
        let show = |ts: &[Type]| ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
        let acc = if g.reduces() { ", then the accumulator" } else { "" };
        return Err(format!("the body's arguments are ({}), expected ({}): one element per operand{acc}", show(&have), show(&want)));
    }
    let Some((&last, body)) = block.ops.split_last() else {
        return Err("the body is empty; it must end with kernel.yield".into());
    };
    for &b in body {
        let k = f.op(b).kind;
        if k == OpKind::Yield {
            return Err("kernel.yield must be the last op of the body".into());
        }
        if !(k.is_elementwise() || k == OpKind::ScalarConstant) || !f.op(b).regions.is_empty() {
            return Err(format!("'{}' is not allowed in a kernel body (elementwise ops and kernel.constant only)", k.name()));
        }
    }
    let y = f.op(last);
    if y.kind != OpKind::Yield {
        return Err(format!("the body must end with kernel.yield, not '{}'", y.kind.name()));
    }
    if y.operands.len() != g.results() {
        return Err(format!("kernel.yield gives {} value(s), one per result: expected {}", y.operands.len(), g.results()));
    }
    for (v, d) in y.operands.iter().zip(&g.dtypes) {
        if *f.ty(*v) != Type::Scalar(*d) {
            return Err(format!("kernel.yield gives {}, the result's element type is {d}", f.ty(*v)));
        }
    }
    Ok(())
}

/// `kernel.generic`: a loop nest over an iteration space with a scalar body.
pub const GENERIC: OpDef = OpDef {
    name: "kernel.generic",
    summary: "A structured kernel (linalg.generic's form): iteration space, parallel/reduction iterators, an affine map per operand and result, a scalar body.",
    example: r#"%y = "kernel.generic"(%x, %b) ({
^bb0(%a: f32, %c: f32):
  %s = "dl.add"(%a, %c) : (f32, f32) -> f32
  "kernel.yield"(%s) : (f32) -> ()
}) {dtype = f32, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterators = ["parallel", "parallel"], sizes = [-1, 256]} : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>"#,
    category: Category::Structured,
    operands: Arity::AtLeast(0),
    attrs: &[
        AttrSpec { name: "iterators", kind: AttrKind::Strings, default: Default::Required, doc: "\"parallel\" or \"reduction\" per dim of the iteration space" },
        AttrSpec { name: "indexing_maps", kind: AttrKind::Maps, default: Default::Required, doc: "one affine map per operand, then one per result" },
        AttrSpec { name: "sizes", kind: AttrKind::Ints, default: Default::Required, doc: "the iteration space, -1 for the batch" },
        AttrSpec { name: "dtype", kind: AttrKind::DType, default: Default::Required, doc: "the (first) result's element type" },
        AttrSpec { name: "dtypes", kind: AttrKind::DTypes, default: Default::Ints(&[]), doc: "every result's element type, for a kernel with several results" },
        AttrSpec { name: "init", kind: AttrKind::Float, default: Default::Float(0.0), doc: "the accumulator's starting value (reductions)" },
        AttrSpec { name: "padded", kind: AttrKind::Ints, default: Default::Ints(&[]), doc: "operands that read `pad` outside their bounds" },
        AttrSpec { name: "pad", kind: AttrKind::Float, default: Default::Float(0.0), doc: "the value read outside a padded operand" },
        AttrSpec { name: "fused", kind: AttrKind::Strings, default: Default::Ints(&[]), doc: "the dl ops this kernel computes, for readers" },
    ],
    infer: generic,
    grad: Grad::No,
    commutative: false,
    region: Some(generic_region),
};

fn no_results(_: &[Type], _: &AttrView) -> Result<Vec<Type>, String> {
    Ok(vec![])
}

/// `kernel.yield`: ends a kernel body with the element it computes.
pub const YIELD: OpDef = OpDef {
    name: "kernel.yield",
    summary: "Ends a kernel.generic body; its operands are the result elements, one per result (or the new accumulator).",
    example: r#""kernel.yield"(%s) : (f32) -> ()"#,
    category: Category::Terminator,
    operands: Arity::AtLeast(1),
    attrs: &[],
    infer: no_results,
    grad: Grad::No,
    commutative: false,
    region: None,
};

fn scalar_constant(_: &[Type], view: &AttrView) -> Result<Vec<Type>, String> {
    view.float("value")?;
    Ok(vec![Type::Scalar(view.dtype("dtype")?)])
}

/// `kernel.constant`: a scalar constant inside a kernel body.
pub const CONSTANT: OpDef = OpDef {
    name: "kernel.constant",
    summary: "A scalar constant in a kernel body (a splat dl.constant fused into the kernel); nonzero is true for i1.",
    example: r#"%c = "kernel.constant"() {dtype = f32, value = 0.5} : () -> f32"#,
    category: Category::Source,
    operands: Arity::Exact(0),
    attrs: &[
        AttrSpec { name: "value", kind: AttrKind::Float, default: Default::Required, doc: "the value" },
        AttrSpec { name: "dtype", kind: AttrKind::DType, default: Default::Required, doc: "its element type" },
    ],
    infer: scalar_constant,
    grad: Grad::No,
    commutative: false,
    region: None,
};

/// Checks the optional third operand, a bias with one value per output
/// channel `n` of the contraction's result.
fn bias(ops: &[Type], out: &TensorType, channel: usize) -> Result<(), String> {
    match ops.len() {
        2 => Ok(()),
        3 => {
            let b = float_tensor(ops, 2)?;
            let ones_but = |k: usize| b.shape.iter().enumerate().all(|(i, d)| i == k || *d == Dim::Static(1));
            let k = b.rank().checked_sub(out.rank() - channel).filter(|&k| b.rank() >= 1 && ones_but(k));
            match k {
                Some(k) if b.dtype == out.dtype && b.shape[k] == out.shape[channel] && matches!(out.shape[channel], Dim::Static(_)) => Ok(()),
                _ => Err(format!("the bias {b} must hold one {} per channel of the result {out} (dim {channel})", out.dtype)),
            }
        }
        n => Err(format!("takes 2 operands and an optional bias, got {n}")),
    }
}

fn matmul(ops: &[Type], view: &AttrView) -> Result<Vec<Type>, String> {
    let out = contraction::matmul(&ops[..2.min(ops.len())], view)?;
    let t = out[0].as_tensor().expect("matmul gives a tensor").clone();
    bias(ops, &t, t.rank() - 1)?;
    Ok(out)
}

fn conv2d(ops: &[Type], view: &AttrView) -> Result<Vec<Type>, String> {
    let out = contraction::conv2d(&ops[..2.min(ops.len())], view)?;
    let t = out[0].as_tensor().expect("conv2d gives a tensor").clone();
    bias(ops, &t, 1)?;
    match fused_max_pool(view)? {
        Some(pool) => super::nn::pool(&out, &AttrView::new(OpKind::MaxPool2d, &pool)),
        None => Ok(out),
    }
}

/// `kernel.conv2d_grad_weight`: x, the pooled gradient, w and an
/// optional bias; the result is w's type.
fn conv2d_grad_weight(ops: &[Type], view: &AttrView) -> Result<Vec<Type>, String> {
    if !(3..=4).contains(&ops.len()) {
        return Err(format!("takes x, the pooled output's gradient, w and an optional bias, got {} operands", ops.len()));
    }
    let mut forward = vec![ops[0].clone(), ops[2].clone()];
    forward.extend(ops.get(3).cloned());
    let y = contraction::conv2d(&forward[..2], view)?;
    bias(&forward, y[0].as_tensor().expect("conv2d gives a tensor"), 1)?;
    let Some(pool) = fused_max_pool(view)? else {
        return Err("max_pool is required: the gradient is of the pooled output".into());
    };
    let pooled = super::nn::pool(&y, &AttrView::new(OpKind::MaxPool2d, &pool))?;
    if pooled[0] != ops[1] {
        return Err(format!("the gradient {} must have the pooled output's type {}", ops[1], pooled[0]));
    }
    Ok(vec![ops[2].clone()])
}

/// The max-pool window of a routed gradient op (its required `max_pool`)
/// and a check that `g` is `y` pooled by it.
fn routed_window(y: &Type, g: &Type, view: &AttrView) -> Result<(), String> {
    let Some(pool) = fused_max_pool(view)? else {
        return Err("max_pool is required: the gradient is of the pooled output".into());
    };
    let pooled = super::nn::pool(std::slice::from_ref(y), &AttrView::new(OpKind::MaxPool2d, &pool))?;
    if pooled[0] != *g {
        return Err(format!("the gradient {g} must have the type {} of y pooled by max_pool", pooled[0]));
    }
    Ok(())
}

/// `kernel.routed_conv2d_grad_input`: y, the pooled gradient and w; the
/// result is dl.conv2d_grad_input's of (y, w).
fn routed_grad_input(ops: &[Type], view: &AttrView) -> Result<Vec<Type>, String> {
    let [y, g, w] = ops else {
        return Err(format!("takes y, the pooled output's gradient and w, got {} operands", ops.len()));
    };
    routed_window(y, g, view)?;
    contraction::conv2d_grad_input(&[y.clone(), w.clone()], view)
}

/// `kernel.routed_conv2d_grad_weight`: x, y and the pooled gradient; the
/// result is dl.conv2d_grad_weight's of (x, y).
fn routed_grad_weight(ops: &[Type], view: &AttrView) -> Result<Vec<Type>, String> {
    let [x, y, g] = ops else {
        return Err(format!("takes x, y and the pooled output's gradient, got {} operands", ops.len()));
    };
    routed_window(y, g, view)?;
    contraction::conv2d_grad_weight(&[x.clone(), y.clone()], view)
}

/// Whether the routed gradients of a convolution with `dtype`, `channels`
/// input channels and a `kernel` window, with the conv and pooling
/// attributes of `view`, have the shape backends run routed: f32, a 3×3
/// kernel at stride and dilation 1, input channels a multiple of 16, a
/// 2×2 stride-2 unpadded window. The fusion rules add the routed ops for
/// these shapes only (elsewhere the CPU backend would materialize the
/// pooling gradient after all). The same on every machine (the CPU
/// backend's kernels are fastest on AVX-512 and portable elsewhere).
pub fn routed_grads_serve(dtype: crate::DType, channels: &Dim, kernel: [&Dim; 2], view: &AttrView) -> bool {
    let window = view.ints("max_pool").is_ok_and(|p| p == [2, 2, 2, 2, 0, 0]);
    let unit = |name: &str| view.ints(name).is_ok_and(|v| v == [1, 1]);
    let channels = channels.as_static().is_some_and(|c| c > 0 && c % 16 == 0);
    dtype == crate::DType::F32 && kernel == [&Dim::Static(3), &Dim::Static(3)] && channels && window && unit("stride") && unit("dilation")
}

/// [`routed_grads_serve`] for a `kernel.routed_conv2d_grad_input` or
/// `kernel.routed_conv2d_grad_weight` of these operand types (the weight
/// `w`, or the input `x` and the `kernel` attribute).
pub fn routed_op_serves(kind: OpKind, ops: &[Type], view: &AttrView) -> bool {
    let tensor = |i: usize| ops.get(i).and_then(|t| t.as_tensor()).filter(|t| t.rank() == 4);
    match kind {
        OpKind::KernelRoutedConv2dGradInput => tensor(2).is_some_and(|w| routed_grads_serve(w.dtype, &w.shape[1], [&w.shape[2], &w.shape[3]], view)),
        OpKind::KernelRoutedConv2dGradWeight => match (tensor(0), view.ints("kernel").ok().as_deref()) {
            (Some(x), Some(&[kh, kw])) => routed_grads_serve(x.dtype, &x.shape[1], [&Dim::Static(kh as u64), &Dim::Static(kw as u64)], view),
            _ => false,
        },
        _ => false,
    }
}

/// Whether a `kernel.conv2d_grad_weight` of these operand types has the
/// shape backends run in one pass, the convolution's output and its
/// gradient never stored: f32, one input channel, a 3×3 kernel at stride
/// and dilation 1, a 2×2 stride-2 unpadded window that tiles the
/// convolution's (static, even-sized) output. Cost models charge any other
/// shape for writing and reading both full-size tensors, as the CPU
/// backend then runs the convolution, the pooling gradient and the weight
/// gradient in turn. The same on every machine (a backend may still lack
/// the one-pass kernel: the CPU backend's needs AVX-512).
pub fn pooled_grad_weight_in_one_pass(ops: &[Type], view: &AttrView) -> bool {
    let (Some(x), Some(w)) = (ops.first().and_then(|t| t.as_tensor()), ops.get(2).and_then(|t| t.as_tensor())) else { return false };
    let fixed = |d: &Dim, n: u64| *d == Dim::Static(n);
    let window = view.ints("max_pool").is_ok_and(|p| p == [2, 2, 2, 2, 0, 0]);
    let unit = |name: &str| view.ints(name).is_ok_and(|v| v == [1, 1]);
    let even = conv2d_unpooled(&[ops[0].clone(), ops[2].clone()], view).ok().and_then(|y| y.as_tensor().map(|t| t.shape[2..].iter().all(|d| d.as_static().is_some_and(|n| n % 2 == 0))));
    x.dtype == crate::DType::F32 && x.rank() == 4 && fixed(&x.shape[1], 1) && w.rank() == 4 && fixed(&w.shape[2], 3) && fixed(&w.shape[3], 3) && window && unit("stride") && unit("dilation") && even == Some(true)
}

/// A `kernel.conv2d`'s convolution result before any `max_pool` (what its
/// multiply-adds and epilogue run over), from its operands' types.
pub fn conv2d_unpooled(ops: &[Type], view: &AttrView) -> Result<Type, String> {
    Ok(contraction::conv2d(&ops[..2.min(ops.len())], view)?.remove(0))
}

/// The `dl.max_pool2d` attributes (`kernel`, `stride`, `padding`) that a
/// `kernel.conv2d`'s `max_pool` attribute stands for, or `None` when it
/// has none.
pub fn fused_max_pool(view: &AttrView) -> Result<Option<crate::Attrs>, String> {
    use crate::Attr;
    match view.ints("max_pool")?.as_slice() {
        [] => Ok(None),
        &[kh, kw, sh, sw, ph, pw] => Ok(Some(crate::Attrs::from([
            ("kernel".to_string(), Attr::ints(&[kh, kw])),
            ("stride".to_string(), Attr::ints(&[sh, sw])),
            ("padding".to_string(), Attr::ints(&[ph, pw])),
        ]))),
        other => Err(format!("max_pool takes [kh, kw, sh, sw, ph, pw] or nothing, got {other:?}")),
    }
}

/// `dl.max_pool2d`'s attributes as a `kernel.conv2d`'s `max_pool` value.
pub fn max_pool_attr(pool: &AttrView) -> Result<crate::Attr, String> {
    let (k, s, p) = (pool.ints("kernel")?, pool.ints("stride")?, pool.ints("padding")?);
    if k.len() != 2 || s.len() != 2 || p.len() != 2 {
        return Err(format!("a pooling window is [h, w] pairs, got {k:?}, {s:?}, {p:?}"));
    }
    Ok(crate::Attr::ints(&[k[0], k[1], s[0], s[1], p[0], p[1]]))
}

const RELU: AttrSpec = AttrSpec { name: "relu", kind: AttrKind::Bool, default: Default::Bool(false), doc: "apply ReLU after the bias (the fused epilogue)" };

/// `kernel.matmul`: `dl.matmul` on the contraction fast path, with its epilogue.
pub const MATMUL: OpDef = OpDef {
    name: "kernel.matmul",
    summary: "dl.matmul on the contraction fast path (packed gemm), with an optional bias operand and ReLU applied to each block while it is in cache.",
    example: r#"%y = "kernel.matmul"(%x, %w, %b) {relu = true, transpose_b = true} : (tensor<?x784xf32>, tensor<256x784xf32>, tensor<256xf32>) -> tensor<?x256xf32>"#,
    category: Category::Contraction,
    operands: Arity::AtLeast(2),
    attrs: &[
        AttrSpec { name: "transpose_a", kind: AttrKind::Bool, default: Default::Bool(false), doc: "use a's last two dims swapped" },
        AttrSpec { name: "transpose_b", kind: AttrKind::Bool, default: Default::Bool(false), doc: "use b's last two dims swapped" },
        RELU,
    ],
    infer: matmul,
    grad: Grad::No,
    commutative: false,
    region: None,
};

/// `kernel.conv2d`: `dl.conv2d` on the contraction fast path, with its epilogue.
pub const CONV2D: OpDef = OpDef {
    name: "kernel.conv2d",
    summary: "dl.conv2d on the contraction fast path (im2col + gemm), with an optional channel bias and ReLU epilogue, and optionally max-pooled before it is written.",
    example: r#"%y = "kernel.conv2d"(%x, %w, %b) {relu = true} : (tensor<?x1x28x28xf32>, tensor<32x1x3x3xf32>, tensor<32x1x1xf32>) -> tensor<?x32x26x26xf32>"#,
    category: Category::Contraction,
    operands: Arity::AtLeast(2),
    attrs: &[
        AttrSpec { name: "stride", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[sh, sw]" },
        AttrSpec { name: "padding", kind: AttrKind::Ints, default: Default::Ints(&[0, 0]), doc: "zero padding [ph, pw] on each side" },
        AttrSpec { name: "dilation", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[dh, dw]" },
        RELU,
        AttrSpec {
            name: "max_pool",
            kind: AttrKind::Ints,
            default: Default::Ints(&[]),
            doc: "[kh, kw, sh, sw, ph, pw]: the result is dl.max_pool2d (that kernel, stride and padding) of the epilogue's, which is never written; empty: no pooling",
        },
    ],
    infer: conv2d,
    grad: Grad::No,
    commutative: false,
    region: None,
};

/// `kernel.conv2d_grad_weight`: the weight gradient of a max-pooled
/// convolution, from the pooled output's gradient, with the convolution
/// recomputed rather than stored.
pub const CONV2D_GRAD_WEIGHT: OpDef = OpDef {
    name: "kernel.conv2d_grad_weight",
    summary: "dl.conv2d_grad_weight(x, dl.max_pool2d_grad(y, g)) with y = conv2d(x, w) + bias recomputed inside instead of read from memory (relu: dl.max_pool2d_grad {relu}): the forward pass can then pool its convolution before writing it (kernel.conv2d {max_pool}).",
    example: r#"%dw = "kernel.conv2d_grad_weight"(%x, %g, %w, %b) {max_pool = [2, 2, 2, 2, 0, 0], relu = true} : (tensor<?x1x28x28xf32>, tensor<?x32x13x13xf32>, tensor<32x1x3x3xf32>, tensor<32x1x1xf32>) -> tensor<32x1x3x3xf32>"#,
    category: Category::Contraction,
    operands: Arity::AtLeast(3),
    attrs: &POOLED_GRAD_ATTRS,
    infer: conv2d_grad_weight,
    grad: Grad::No,
    commutative: false,
    region: None,
};

/// The conv window and pooling attributes the gradient ops through a
/// max-pool's gradient share.
const POOLED_GRAD_ATTRS: [AttrSpec; 5] = [
    AttrSpec { name: "stride", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "the convolution's [sh, sw]" },
    AttrSpec { name: "padding", kind: AttrKind::Ints, default: Default::Ints(&[0, 0]), doc: "the convolution's zero padding [ph, pw] on each side" },
    AttrSpec { name: "dilation", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "the convolution's [dh, dw]" },
    AttrSpec { name: "relu", kind: AttrKind::Bool, default: Default::Bool(false), doc: "keep each window's gradient only where y > 0 at its argmax (ReLU's gradient mask)" },
    AttrSpec { name: "max_pool", kind: AttrKind::Ints, default: Default::Ints(&[]), doc: "[kh, kw, sh, sw, ph, pw]: the max-pool window of y that g is the gradient of (required)" },
];

/// `kernel.routed_conv2d_grad_input`: the input gradient of a convolution
/// whose output `y` was max-pooled, from the pooled output's gradient.
pub const ROUTED_CONV2D_GRAD_INPUT: OpDef = OpDef {
    name: "kernel.routed_conv2d_grad_input",
    summary: "dl.conv2d_grad_input(dl.max_pool2d_grad(y, g), w) with each window's gradient routed to its argmax inside instead of written as a full-size tensor that is three quarters zeros (relu: dl.max_pool2d_grad {relu}): only the windows' gradients are multiplied.",
    example: r#"%dx = "kernel.routed_conv2d_grad_input"(%y, %g, %w) {input_size = [13, 13], max_pool = [2, 2, 2, 2, 0, 0], relu = true} : (tensor<?x64x11x11xf32>, tensor<?x64x5x5xf32>, tensor<64x32x3x3xf32>) -> tensor<?x32x13x13xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(3),
    attrs: &[
        POOLED_GRAD_ATTRS[0],
        POOLED_GRAD_ATTRS[1],
        POOLED_GRAD_ATTRS[2],
        AttrSpec { name: "input_size", kind: AttrKind::Ints, default: Default::Required, doc: "the convolution input's [H, W]" },
        POOLED_GRAD_ATTRS[3],
        POOLED_GRAD_ATTRS[4],
    ],
    infer: routed_grad_input,
    grad: Grad::No,
    commutative: false,
    region: None,
};

/// `kernel.routed_conv2d_grad_weight`: the weight gradient of a
/// convolution of `x` whose output `y` was max-pooled, from the pooled
/// output's gradient.
pub const ROUTED_CONV2D_GRAD_WEIGHT: OpDef = OpDef {
    name: "kernel.routed_conv2d_grad_weight",
    summary: "dl.conv2d_grad_weight(x, dl.max_pool2d_grad(y, g)) with each window's gradient routed to its argmax inside instead of written as a full-size tensor that is three quarters zeros (relu: dl.max_pool2d_grad {relu}): only the windows' gradients are multiplied.",
    example: r#"%dw = "kernel.routed_conv2d_grad_weight"(%x, %y, %g) {kernel = [3, 3], max_pool = [2, 2, 2, 2, 0, 0], relu = true} : (tensor<?x32x13x13xf32>, tensor<?x64x11x11xf32>, tensor<?x64x5x5xf32>) -> tensor<64x32x3x3xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(3),
    attrs: &[
        POOLED_GRAD_ATTRS[0],
        POOLED_GRAD_ATTRS[1],
        POOLED_GRAD_ATTRS[2],
        AttrSpec { name: "kernel", kind: AttrKind::Ints, default: Default::Required, doc: "the weight's [KH, KW]" },
        POOLED_GRAD_ATTRS[3],
        POOLED_GRAD_ATTRS[4],
    ],
    infer: routed_grad_weight,
    grad: Grad::No,
    commutative: false,
    region: None,
};
