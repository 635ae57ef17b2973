//! Constants and the function terminator.

use super::{Arity, AttrKind, AttrSpec, AttrView, Category, Default, Grad, OpDef};
use crate::types::Type;

fn constant(_: &[Type], a: &AttrView) -> Result<Vec<Type>, String> {
    let d = a.dense("value")?;
    d.check()?;
    Ok(vec![Type::Tensor(d.ty)])
}

/// `dl.constant`: a dense or splat tensor from its attribute.
pub const CONSTANT: OpDef = OpDef {
    name: "dl.constant",
    summary: "A tensor constant, dense or splat; scalars are rank-0 tensors.",
    example: r#"%c = "dl.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>"#,
    category: Category::Source,
    operands: Arity::Exact(0),
    attrs: &[AttrSpec { name: "value", kind: AttrKind::Dense, default: Default::Required, doc: "the elements and their static type" }],
    infer: constant,
    grad: Grad::No,
    commutative: false,
    region: None,
};

fn ret(_: &[Type], _: &AttrView) -> Result<Vec<Type>, String> {
    Ok(vec![])
}

/// `func.return`: ends a function; its operands are the results.
pub const RETURN: OpDef = OpDef {
    name: "func.return",
    summary: "Returns its operands from the function; must end the body and match the declared result types.",
    example: "func.return %logits : tensor<?x10xf32>",
    category: Category::Terminator,
    operands: Arity::AtLeast(0),
    attrs: &[],
    infer: ret,
    grad: Grad::No,
    commutative: false,
    region: None,
};
