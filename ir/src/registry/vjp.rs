//! Reverse-mode rules: the shape of a VJP rule, and the helpers the rules share.
//!
//! Each differentiable op carries a [`VjpFn`] in its [`OpDef`](super::OpDef),
//! beside its shape rule. Given the op's operands, results, attributes and the
//! cotangent of its first result, the rule builds one cotangent per operand.
//! Rules emit only registry ops, through [`Builder`], so everything they build
//! is shape-checked by the same rules as the forward graph, every backend that
//! runs the forward ops runs the backward ones, and later passes (fusion,
//! optimizer lowering) see gradients as ordinary IR. This is tinygrad's
//! design: autodiff is one table of VJPs over primitives.
//!
//! Conventions every rule keeps:
//! - a gradient has exactly its operand's type; broadcasting ops sum the
//!   cotangent over the broadcast dims ([`unbroadcast`]);
//! - `None` means "no gradient": integer and boolean operands, and operands
//!   an op is not differentiable in (a select's condition, gather's indices);
//! - a `?` dim is the function's one batch size (`-1` in `shape` attributes),
//!   so tensors with a `?` are made by broadcasting, never as constants.
//!
//! The window helpers at the end ([`WindowAxis`], [`place_tap`]) express
//! average-pooling's gradient with zero-interleaving and padding.
//! Convolution's gradients are primitives of their own
//! (`dl.conv2d_grad_input`, `dl.conv2d_grad_weight`, in `contraction.rs`):
//! written with these helpers they took nine slices, a concat, a batched
//! matmul and a batch sum, several times slower than the contraction
//! library's im2col routines. So is max-pooling's (`dl.max_pool2d_grad`,
//! in `nn.rs`): per-tap compares and selects, then a scatter, took about
//! three times as long as one scan per window.

use super::shape::window_out;
use crate::attr::{Attr, Attrs, DenseAttr, DenseData};
use crate::builder::{BuildError, Builder};
use crate::module::ValueId;
use crate::registry::{AttrView, OpKind};
use crate::types::{DType, Dim, TensorType};

/// A VJP rule: builds the cotangent of each operand from the cotangent of the
/// op's first result; `None` for an operand that gets no gradient.
pub type VjpFn = fn(&mut Builder<'_>, &VjpArgs<'_>) -> Result<Vec<Option<ValueId>>, BuildError>;

/// What a VJP rule sees of the op it differentiates.
pub struct VjpArgs<'a> {
    /// The op's operands (forward values, already computed).
    pub operands: &'a [ValueId],
    /// The op's results (forward values; rules reuse them, e.g. `exp`'s).
    pub results: &'a [ValueId],
    /// The op's attributes as written (read them through [`VjpArgs::view`] for defaults).
    pub attrs: &'a Attrs,
    /// d loss / d result 0, of result 0's type.
    pub grad: ValueId,
}

impl<'a> VjpArgs<'a> {
    /// The attributes read through `kind`'s registry defaults.
    pub fn view(&self, kind: OpKind) -> AttrView<'a> {
        AttrView::new(kind, self.attrs)
    }

    /// Operand `i`.
    pub fn x(&self, i: usize) -> ValueId {
        self.operands[i]
    }

    /// Result 0.
    pub fn y(&self) -> ValueId {
        self.results[0]
    }
}

/// A [`BuildError`] for `kind` with `message` (attribute and shape problems
/// found while building a gradient).
pub fn error(kind: OpKind, message: impl Into<String>) -> BuildError {
    BuildError { op: kind.name(), message: message.into() }
}

/// The tensor type of `v`.
pub fn tensor_type(b: &Builder<'_>, v: ValueId) -> Result<TensorType, BuildError> {
    b.func
        .ty(v)
        .as_tensor()
        .cloned()
        .ok_or_else(|| BuildError { op: "vjp", message: format!("expected a tensor, got {}", b.func.ty(v)) })
}

/// True when `v` is a tensor of a float dtype, the only values with gradients.
pub fn is_float(b: &Builder<'_>, v: ValueId) -> bool {
    b.func.ty(v).as_tensor().is_some_and(|t| t.dtype.is_float())
}

/// The rule of a one-operand op: `None` for a non-float operand, else `rule`'s gradient.
pub fn unary_rule(
    b: &mut Builder<'_>,
    a: &VjpArgs<'_>,
    rule: impl FnOnce(&mut Builder<'_>, &VjpArgs<'_>) -> Result<ValueId, BuildError>,
) -> Result<Vec<Option<ValueId>>, BuildError> {
    if !is_float(b, a.x(0)) {
        return Ok(vec![None]);
    }
    Ok(vec![Some(rule(b, a)?)])
}

/// A shape attribute (`-1` for `?`).
pub fn shape_attr(dims: &[Dim]) -> Attr {
    Attr::ints(&dims.iter().map(|d| d.to_attr_int()).collect::<Vec<_>>())
}

/// A rank-0 constant with the dtype of `like`.
pub fn scalar_like(b: &mut Builder<'_>, value: f64, like: ValueId) -> Result<ValueId, BuildError> {
    let d = tensor_type(b, like)?.dtype;
    Ok(b.scalar(value, d))
}

/// A tensor of type `ty` filled with `value`: a splat constant when the type
/// is static, a broadcast rank-0 constant when it has the batch dim `?`.
pub fn full(b: &mut Builder<'_>, ty: &TensorType, value: f64) -> Result<ValueId, BuildError> {
    if !ty.is_static() {
        let s = b.scalar(value, ty.dtype);
        return broadcast_to(b, s, &ty.shape);
    }
    let data = match ty.dtype {
        d if d.is_float() => DenseData::Float(vec![value]),
        DType::I1 => DenseData::Bool(vec![value != 0.0]),
        _ => DenseData::Int(vec![value as i64]),
    };
    b.constant(DenseAttr { ty: ty.clone(), data })
}

/// Zeros of type `ty` (the gradient of an argument the loss does not read).
pub fn zeros(b: &mut Builder<'_>, ty: &TensorType) -> Result<ValueId, BuildError> {
    full(b, ty, 0.0)
}

/// A one-operand op without attributes.
pub fn unary(b: &mut Builder<'_>, kind: OpKind, x: ValueId) -> Result<ValueId, BuildError> {
    b.op(kind, &[x], Attrs::new())
}

/// A two-operand op without attributes.
pub fn binary(b: &mut Builder<'_>, kind: OpKind, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
    b.op(kind, &[x, y], Attrs::new())
}

/// `dl.cmp` with `predicate`.
pub fn cmp(b: &mut Builder<'_>, predicate: &str, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
    b.op(OpKind::Cmp, &[x, y], crate::attrs! {"predicate" => predicate})
}

/// `dl.select`: `c ? x : y`.
pub fn select(b: &mut Builder<'_>, c: ValueId, x: ValueId, y: ValueId) -> Result<ValueId, BuildError> {
    b.op(OpKind::Select, &[c, x, y], Attrs::new())
}

/// `x` reshaped to `dims`, or `x` itself when it already has them.
pub fn reshape(b: &mut Builder<'_>, x: ValueId, dims: &[Dim]) -> Result<ValueId, BuildError> {
    if tensor_type(b, x)?.shape == dims {
        return Ok(x);
    }
    b.op(OpKind::Reshape, &[x], crate::attrs! {"shape" => shape_attr(dims)})
}

/// `x` broadcast to `dims`, or `x` itself when it already has them.
pub fn broadcast_to(b: &mut Builder<'_>, x: ValueId, dims: &[Dim]) -> Result<ValueId, BuildError> {
    if tensor_type(b, x)?.shape == dims {
        return Ok(x);
    }
    b.op(OpKind::BroadcastTo, &[x], crate::attrs! {"shape" => shape_attr(dims)})
}

/// `dl.reduce_sum` over `axes`, or `x` itself when there are none.
pub fn reduce_sum(b: &mut Builder<'_>, x: ValueId, axes: &[usize], keepdims: bool) -> Result<ValueId, BuildError> {
    if axes.is_empty() {
        return Ok(x);
    }
    let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
    b.op(OpKind::ReduceSum, &[x], crate::attrs! {"axes" => Attr::ints(&axes), "keepdims" => keepdims})
}

/// `dl.transpose` by `perm`, or `x` itself for the identity.
pub fn transpose(b: &mut Builder<'_>, x: ValueId, perm: &[usize]) -> Result<ValueId, BuildError> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x);
    }
    let perm: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
    b.op(OpKind::Transpose, &[x], crate::attrs! {"perm" => Attr::ints(&perm)})
}

/// `dl.slice` of `[start, end)` by `step` along `axis`.
pub fn slice(b: &mut Builder<'_>, x: ValueId, axis: usize, start: u64, end: u64, step: u64) -> Result<ValueId, BuildError> {
    let a = crate::attrs! {"axis" => axis as i64, "start" => start as i64, "end" => end as i64, "step" => step as i64};
    b.op(OpKind::Slice, &[x], a)
}

/// `dl.concat` along `axis` (a single part is returned as is).
pub fn concat(b: &mut Builder<'_>, parts: &[ValueId], axis: usize) -> Result<ValueId, BuildError> {
    if let [one] = parts {
        return Ok(*one);
    }
    b.op(OpKind::Concat, parts, crate::attrs! {"axis" => axis as i64})
}

/// `acc + x`, where an empty accumulator is `x`.
pub fn accumulate(b: &mut Builder<'_>, acc: Option<ValueId>, x: ValueId) -> Result<ValueId, BuildError> {
    match acc {
        None => Ok(x),
        Some(a) => binary(b, OpKind::Add, a, x),
    }
}

/// The static size of `axis` of `x` (movement along `?` is not expressible).
pub fn static_dim(b: &Builder<'_>, x: ValueId, axis: usize) -> Result<u64, BuildError> {
    tensor_type(b, x)?.shape[axis]
        .as_static()
        .ok_or_else(|| BuildError { op: "vjp", message: format!("axis {axis} of {} must be static", b.func.ty(x)) })
}

/// Sums `g`, a cotangent of a broadcast result, down to the operand type `to`:
/// over the leading dims `to` lacks and the dims where `to` has size 1, then
/// reshapes to `to`'s dims. The identity when nothing was broadcast.
pub fn unbroadcast(b: &mut Builder<'_>, g: ValueId, to: &TensorType) -> Result<ValueId, BuildError> {
    let gt = tensor_type(b, g)?;
    if gt.shape == to.shape {
        return Ok(g);
    }
    let lead = gt.rank().checked_sub(to.rank());
    let fits = lead.is_some_and(|lead| to.shape.iter().zip(&gt.shape[lead..]).all(|(t, g)| t == g || *t == Dim::Static(1)));
    let (Some(lead), true) = (lead, fits) else {
        return Err(BuildError { op: "vjp", message: format!("cannot unbroadcast {gt} to {to}") });
    };
    let axes: Vec<usize> = (0..gt.rank())
        .filter(|&i| i < lead || (to.shape[i - lead] == Dim::Static(1) && gt.shape[i] != Dim::Static(1)))
        .collect();
    let s = reduce_sum(b, g, &axes, true)?;
    reshape(b, s, &to.shape)
}

/// Broadcasts `g`, the cotangent of a reduction of a `to`-typed value over
/// `axes`, back to `to`'s shape (each input element gets its sum's cotangent).
pub fn expand(b: &mut Builder<'_>, g: ValueId, to: &TensorType, axes: &[usize], keepdims: bool) -> Result<ValueId, BuildError> {
    let g = if keepdims { g } else { reshape(b, g, &kept_dims(&to.shape, axes))? };
    broadcast_to(b, g, &to.shape)
}

/// `dims` with `axes` replaced by 1: a reduction's `keepdims = true` shape.
pub fn kept_dims(dims: &[Dim], axes: &[usize]) -> Vec<Dim> {
    dims.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { Dim::Static(1) } else { d }).collect()
}

/// Pads `axis` of `x` with `before` and `after` elements equal to `value`; a
/// negative amount crops that many elements instead.
pub fn pad_axis(b: &mut Builder<'_>, x: ValueId, axis: usize, before: i64, after: i64, value: f64) -> Result<ValueId, BuildError> {
    let t = tensor_type(b, x)?;
    let n = static_dim(b, x, axis)? as i64;
    let (lo, hi) = (before.min(0).abs(), n - after.min(0).abs());
    if hi < lo {
        return Err(BuildError { op: "vjp", message: format!("cropping {} from {t} along axis {axis} leaves nothing", -before.min(0) - after.min(0)) });
    }
    let core = if lo > 0 || hi < n { slice(b, x, axis, lo as u64, hi as u64, 1)? } else { x };
    let mut parts = Vec::with_capacity(3);
    let pad = |b: &mut Builder<'_>, len: i64| {
        let mut shape = t.shape.clone();
        shape[axis] = Dim::Static(len as u64);
        full(b, &TensorType::new(shape, t.dtype), value)
    };
    if before > 0 {
        parts.push(pad(b, before)?);
    }
    parts.push(core);
    if after > 0 {
        parts.push(pad(b, after)?);
    }
    concat(b, &parts, axis)
}

/// Spreads `axis` of `x` by `s`: element k moves to k·s and the `s - 1` slots
/// after it are zeros, so the axis grows from n to n·s. The adjoint of a
/// strided slice, written as reshape → concat zeros → reshape.
pub fn dilate_axis(b: &mut Builder<'_>, x: ValueId, axis: usize, s: u64) -> Result<ValueId, BuildError> {
    if s == 1 {
        return Ok(x);
    }
    let t = tensor_type(b, x)?;
    let n = static_dim(b, x, axis)?;
    let mut split = t.shape.clone();
    split.insert(axis + 1, Dim::Static(1));
    let x1 = reshape(b, x, &split)?;
    split[axis + 1] = Dim::Static(s - 1);
    let z = zeros(b, &TensorType::new(split, t.dtype))?;
    let spread = concat(b, &[x1, z], axis + 1)?;
    let mut out = t.shape.clone();
    out[axis] = Dim::Static(n * s);
    reshape(b, spread, &out)
}

/// One spatial axis of a window op (convolution or pooling).
#[derive(Copy, Clone, Debug)]
pub struct WindowAxis {
    /// Input size (unpadded).
    pub size: u64,
    /// Kernel size.
    pub kernel: u64,
    /// Stride.
    pub stride: u64,
    /// Zero (or -inf) padding on each side.
    pub pad: u64,
    /// Kernel dilation.
    pub dilation: u64,
    /// Output size.
    pub out: u64,
}

impl WindowAxis {
    /// The geometry of one axis; `kind` names the op in errors.
    pub fn new(kind: OpKind, size: Dim, kernel: Dim, stride: i64, pad: i64, dilation: i64) -> Result<Self, BuildError> {
        let (Some(size), Some(kernel)) = (size.as_static(), kernel.as_static()) else {
            return Err(error(kind, "the gradient needs static spatial and kernel sizes"));
        };
        let [stride, pad, dilation] = [stride, pad, dilation].map(|v| v.max(0) as u64);
        let out = window_out(Dim::Static(size), kernel, stride, pad, dilation).map_err(|m| error(kind, m))?;
        let out = out.as_static().expect("a static size gives a static output");
        Ok(WindowAxis { size, kernel, stride, pad, dilation, out })
    }

    /// The geometry of both spatial axes of an op with `kernel`, `stride`,
    /// `padding` and (for convolutions) `dilation` attributes.
    pub fn both(kind: OpKind, view: &AttrView<'_>, input: &TensorType, kernel: [Dim; 2]) -> Result<[Self; 2], BuildError> {
        let get = |name: &str| -> Result<Vec<i64>, BuildError> {
            match view.get(name) {
                None if name == "dilation" => Ok(vec![1, 1]),
                _ => view.ints(name).map_err(|m| error(kind, m)),
            }
        };
        let (s, p, d) = (get("stride")?, get("padding")?, get("dilation")?);
        let axis = |k: usize| WindowAxis::new(kind, input.shape[2 + k], kernel[k], s[k], p[k], d[k]);
        Ok([axis(0)?, axis(1)?])
    }

    /// Where tap `k` of output 0 reads, in unpadded input coordinates.
    fn offset(&self, k: u64) -> i64 {
        (k * self.dilation) as i64 - self.pad as i64
    }
}

/// The adjoint of tap `k` along one spatial `axis`: output element `o` of `d`
/// goes back to input position `o·stride + k·dilation - pad`, zeros elsewhere;
/// contributions that land in the padding are dropped.
pub fn place_tap(b: &mut Builder<'_>, d: ValueId, axis: usize, w: WindowAxis, k: u64) -> Result<ValueId, BuildError> {
    let spread = dilate_axis(b, d, axis, w.stride)?;
    let before = w.offset(k);
    let after = w.size as i64 - (w.out * w.stride) as i64 - before;
    pad_axis(b, spread, axis, before, after, 0.0)
}

