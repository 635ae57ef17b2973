//! Contractions: matmul and convolution, the ops that do nearly all the FLOPs.

use super::shape::{broadcast, float_tensor, non_negative, one, positive, same_dtype, window_out};
use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef};
use crate::types::{Dim, TensorType, Type};

fn matmul(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let (x, y) = (float_tensor(ops, 0)?, float_tensor(ops, 1)?);
    let d = same_dtype(&[x, y])?;
    if x.rank() < 2 || y.rank() < 2 {
        return Err(format!("matmul operands need rank >= 2, got {x} and {y}"));
    }
    let (xr, yr) = (x.rank(), y.rank());
    let (mut m, mut k1) = (x.shape[xr - 2], x.shape[xr - 1]);
    if a.bool("transpose_a")? {
        std::mem::swap(&mut m, &mut k1);
    }
    let (mut k2, mut n) = (y.shape[yr - 2], y.shape[yr - 1]);
    if a.bool("transpose_b")? {
        std::mem::swap(&mut k2, &mut n);
    }
    if k1 != k2 {
        return Err(format!("contracted dims differ: {x} has {k1}, {y} has {k2}"));
    }
    let mut shape = broadcast(&x.shape[..xr - 2], &y.shape[..yr - 2])
        .map_err(|e| format!("batch dims: {e}"))?;
    shape.extend([m, n]);
    one(TensorType::new(shape, d))
}

/// `dl.matmul`: batched matrix product with optional transposes of the last two dims.
pub const MATMUL: OpDef = OpDef {
    name: "dl.matmul",
    summary: "Batched matrix product a[..., m, k] @ b[..., k, n]; transpose flags swap the last two dims; leading dims broadcast.",
    example: r#"%y = "dl.matmul"(%x, %w) {transpose_b = true} : (tensor<?x784xf32>, tensor<256x784xf32>) -> tensor<?x256xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(2),
    attrs: &[
        AttrSpec { name: "transpose_a", kind: AttrKind::Bool, default: Default::Bool(false), doc: "use a's last two dims swapped" },
        AttrSpec { name: "transpose_b", kind: AttrKind::Bool, default: Default::Bool(false), doc: "use b's last two dims swapped" },
    ],
    infer: matmul,
    grad: Grad::Yes,
    commutative: false,
};

fn conv2d(ops: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let (x, w) = (float_tensor(ops, 0)?, float_tensor(ops, 1)?);
    let d = same_dtype(&[x, w])?;
    if x.rank() != 4 || w.rank() != 4 {
        return Err(format!("conv2d takes input [N, C, H, W] and weight [O, C, KH, KW], got {x} and {w}"));
    }
    let stride = positive("stride", &a.ints("stride")?, 2)?;
    let pad = non_negative("padding", &a.ints("padding")?, 2)?;
    let dil = positive("dilation", &a.ints("dilation")?, 2)?;
    let (Some(kh), Some(kw)) = (w.shape[2].as_static(), w.shape[3].as_static()) else {
        return Err(format!("conv2d weight must have a static kernel size, got {w}"));
    };
    if x.shape[1] != w.shape[1] {
        return Err(format!("input has {} channels but the weight expects {}", x.shape[1], w.shape[1]));
    }
    if matches!(w.shape[0], Dim::Dynamic) || matches!(x.shape[1], Dim::Dynamic) {
        return Err("conv2d channel counts must be static".into());
    }
    let oh = window_out(x.shape[2], kh, stride[0], pad[0], dil[0])?;
    let ow = window_out(x.shape[3], kw, stride[1], pad[1], dil[1])?;
    one(TensorType::new(vec![x.shape[0], w.shape[0], oh, ow], d))
}

/// `dl.conv2d`: 2-D cross-correlation, NCHW input, OIHW weight, groups = 1.
pub const CONV2D: OpDef = OpDef {
    name: "dl.conv2d",
    summary: "2-D cross-correlation as PyTorch's conv2d: input [N,C,H,W], weight [O,C,KH,KW], no bias (add it), groups = 1.",
    example: r#"%y = "dl.conv2d"(%x, %w) {padding = [1, 1]} : (tensor<?x1x28x28xf32>, tensor<32x1x3x3xf32>) -> tensor<?x32x28x28xf32>"#,
    category: Category::Contraction,
    operands: Arity::Exact(2),
    attrs: &[
        AttrSpec { name: "stride", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[sh, sw]" },
        AttrSpec { name: "padding", kind: AttrKind::Ints, default: Default::Ints(&[0, 0]), doc: "zero padding [ph, pw] on each side" },
        AttrSpec { name: "dilation", kind: AttrKind::Ints, default: Default::Ints(&[1, 1]), doc: "[dh, dw]" },
    ],
    infer: conv2d,
    grad: Grad::Yes,
    commutative: false,
};
