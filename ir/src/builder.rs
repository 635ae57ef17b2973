//! Building IR with types inferred by the registry.

use crate::attr::{Attrs, DenseAttr, DenseData};
use crate::module::{BlockId, Function, OpId, ValueId};
use crate::registry::OpKind;
use crate::types::{DType, TensorType, Type};
use std::fmt;

/// An op could not be built: its operands or attributes break its shape rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    /// The op's name.
    pub op: &'static str,
    /// What is wrong, from the op's shape rule.
    pub message: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' {}", self.op, self.message)
    }
}

impl std::error::Error for BuildError {}

/// Appends ops to one block of a function, inferring result types through the
/// registry, so that what it builds verifies by construction.
pub struct Builder<'f> {
    /// The function being built.
    pub func: &'f mut Function,
    block: BlockId,
}

impl<'f> Builder<'f> {
    /// A builder appending to `block`.
    pub fn new(func: &'f mut Function, block: BlockId) -> Self {
        Builder { func, block }
    }

    /// A builder appending to the function's entry block.
    pub fn at_entry(func: &'f mut Function) -> Self {
        let b = func.entry();
        Builder { func, block: b }
    }

    /// The block ops are appended to.
    pub fn block(&self) -> BlockId {
        self.block
    }

    /// Appends an op, returning all its results.
    pub fn build(&mut self, kind: OpKind, operands: &[ValueId], attrs: Attrs) -> Result<Vec<ValueId>, BuildError> {
        let types: Vec<Type> = operands.iter().map(|&v| self.func.ty(v).clone()).collect();
        let results = kind.infer(&types, &attrs).map_err(|message| BuildError { op: kind.name(), message })?;
        let op = self.func.append_op(self.block, kind, operands.to_vec(), attrs, results, Vec::new());
        Ok(self.func.op(op).results.clone())
    }

    /// Appends a single-result op and returns its result.
    pub fn op(&mut self, kind: OpKind, operands: &[ValueId], attrs: Attrs) -> Result<ValueId, BuildError> {
        let r = self.build(kind, operands, attrs)?;
        Ok(r[0])
    }

    /// A rank-0 float constant of `dtype`.
    pub fn scalar(&mut self, v: f64, dtype: DType) -> ValueId {
        let data = if dtype.is_float() {
            DenseData::Float(vec![v])
        } else if dtype == DType::I1 {
            DenseData::Bool(vec![v != 0.0])
        } else {
            DenseData::Int(vec![v as i64])
        };
        self.constant(DenseAttr { ty: TensorType::fixed(&[], dtype), data })
            .expect("a rank-0 constant always matches its type")
    }

    /// A dense constant.
    pub fn constant(&mut self, value: DenseAttr) -> Result<ValueId, BuildError> {
        let mut a = Attrs::new();
        a.insert("value".into(), crate::Attr::Dense(value));
        self.op(OpKind::Constant, &[], a)
    }

    /// Ends the function with `func.return`, setting its result types.
    pub fn ret(&mut self, values: &[ValueId]) -> OpId {
        self.func.result_types = values.iter().map(|&v| self.func.ty(v).clone()).collect();
        self.func.append_op(self.block, OpKind::Return, values.to_vec(), Attrs::new(), Vec::new(), Vec::new())
    }

    /// Names a value (see [`Function::set_name`]).
    pub fn name(&mut self, v: ValueId, name: &str) -> ValueId {
        self.func.set_name(v, name);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs;
    use crate::types::Dim;

    #[test]
    fn builds_a_linear_layer_with_inferred_types() {
        let mut f = Function::new("forward");
        let x = f.add_arg(TensorType::new(vec![Dim::Dynamic, Dim::Static(784)], DType::F32).into(), Some("x"), Attrs::new());
        let w = f.add_arg(TensorType::fixed(&[256, 784], DType::F32).into(), Some("fc1.weight"), Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let y = b.op(OpKind::Matmul, &[x, w], attrs! {"transpose_b" => true}).unwrap();
        assert_eq!(b.func.ty(y).to_string(), "tensor<?x256xf32>");
        let err = b.op(OpKind::Matmul, &[x, w], Attrs::new()).unwrap_err();
        assert_eq!(err.to_string(), "'dl.matmul' contracted dims differ: tensor<?x784xf32> has 784, tensor<256x784xf32> has 256");
    }
}
