//! From `dl` ops to a [`KernelSpec`]: a function whose body is elementwise
//! ops (and splat constants) returning one value becomes one fused kernel.
//!
//! Every function argument becomes an input buffer, in order. Its access per
//! output dim follows NumPy broadcasting from the types alone: a dim equal to
//! the output's (`?` to `?` included) is `Full`, a size-1 or missing dim
//! is `Broadcast`. Output dims of static size 1 are dropped, and adjacent
//! dims that every input accesses alike are collapsed into one, so a
//! `[batch, 256]` chain of same-shape operands is a rank-1 kernel and the
//! innermost loop is as long as it can be. Op knowledge stays in the
//! registry: ops go into the body by their [`OpKind`] with their attributes,
//! and [`KernelBuilder::op`] types them with the registry's shape rules.

use crate::error::JitError;
use crate::spec::{Access, KernelBuilder, KernelSpec, NodeId};
use dlc_ir::{DType, DenseData, Dim, Function, OpKind, TensorType, ValueId};
use std::collections::HashMap;

/// A lowered function: the kernel, and how its iteration space maps to the
/// output's shape.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The kernel.
    pub spec: KernelSpec,
    /// For each kernel dim, the output dims it covers (dropped size-1 dims are in none).
    pub groups: Vec<Vec<usize>>,
    /// The output's type.
    pub output: TensorType,
}

impl Lowered {
    /// The output's run-time shape, `?` taking `batch`; `None` if the type
    /// has a `?` and no batch is given.
    pub fn output_shape(&self, batch: Option<usize>) -> Option<Vec<usize>> {
        self.output.shape.iter().map(|d| d.as_static().map(|n| n as usize).or(batch)).collect()
    }

    /// The kernel's iteration shape for a run-time output shape.
    pub fn iteration_shape(&self, out_shape: &[usize]) -> Result<Vec<usize>, JitError> {
        let fits = out_shape.len() == self.output.rank()
            && self.output.shape.iter().zip(out_shape).all(|(d, &n)| d.as_static().is_none_or(|s| s == n as u64));
        if !fits {
            return Err(JitError::InvalidSpec(format!("shape {out_shape:?} does not fit the output type {}", self.output)));
        }
        if self.groups.is_empty() {
            return Ok(vec![1]);
        }
        Ok(self.groups.iter().map(|g| g.iter().map(|&d| out_shape[d]).product()).collect())
    }
}

fn tensor_type(func: &Function, v: ValueId) -> Result<TensorType, JitError> {
    func.ty(v)
        .as_tensor()
        .cloned()
        .ok_or_else(|| JitError::unsupported("func.func", format!("value %{} is not a tensor", v.0)))
}

/// Access of a value of type `t` along each dim of `out` (NumPy broadcasting).
fn accesses(t: &TensorType, out: &TensorType) -> Result<Vec<Access>, JitError> {
    let lead = out.rank().checked_sub(t.rank()).ok_or_else(|| {
        JitError::InvalidSpec(format!("{t} has more dims than the output {out}"))
    })?;
    (0..out.rank())
        .map(|d| match d.checked_sub(lead).map(|k| t.shape[k]) {
            None => Ok(Access::Broadcast),
            Some(a) if a == out.shape[d] => Ok(Access::Full),
            Some(Dim::Static(1)) => Ok(Access::Broadcast),
            Some(_) => Err(JitError::InvalidSpec(format!("{t} does not broadcast to the output {out}"))),
        })
        .collect()
}

/// Lowers `func` (elementwise ops and splat constants, one returned value)
/// to a kernel whose inputs are the function's arguments, in order.
pub fn lower_function(func: &Function) -> Result<Lowered, JitError> {
    let ret = func.returned_values();
    let &[result] = ret.as_slice() else {
        return Err(JitError::unsupported("func.return", format!("a kernel returns one value, @{} returns {}", func.name, ret.len())));
    };
    let output = tensor_type(func, result)?;
    let arg_access: Vec<Vec<Access>> =
        func.args().iter().map(|&a| accesses(&tensor_type(func, a)?, &output)).collect::<Result<_, _>>()?;

    // Keep the dims whose output size is not a static 1; merge neighbours
    // that every input accesses alike.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut columns: Vec<Vec<Access>> = Vec::new();
    for d in 0..output.rank() {
        if output.shape[d] == Dim::Static(1) {
            continue;
        }
        let col: Vec<Access> = arg_access.iter().map(|a| a[d]).collect();
        match columns.last() {
            Some(last) if *last == col => groups.last_mut().expect("a group per column").push(d),
            _ => {
                groups.push(vec![d]);
                columns.push(col);
            }
        }
    }
    let rank = columns.len().max(1);
    let mut k = KernelBuilder::new(rank)?;
    let mut nodes: HashMap<ValueId, NodeId> = HashMap::new();
    for (i, &a) in func.args().iter().enumerate() {
        let access: Vec<Access> = if columns.is_empty() { vec![Access::Full] } else { columns.iter().map(|c| c[i]).collect() };
        nodes.insert(a, k.input(tensor_type(func, a)?.dtype, &access)?);
    }
    for &o in func.body_ops() {
        let op = func.op(o);
        if op.kind == OpKind::Return {
            break;
        }
        let &[r] = op.results.as_slice() else {
            return Err(JitError::unsupported(op.kind.name(), "a kernel op has one result"));
        };
        let node = if op.kind == OpKind::Constant {
            constant(&mut k, func, op)?
        } else {
            let args = op
                .operands
                .iter()
                .map(|v| nodes.get(v).copied().ok_or_else(|| JitError::InvalidSpec(format!("%{} is used before it is defined", v.0))))
                .collect::<Result<Vec<_>, _>>()?;
            k.op(op.kind, &args, op.attrs.clone())?
        };
        nodes.insert(r, node);
    }
    let out = nodes.get(&result).copied().ok_or_else(|| JitError::InvalidSpec("the returned value is not defined".into()))?;
    Ok(Lowered { spec: k.finish(out)?, groups, output })
}

/// A splat `dl.constant` as a body constant (a non-splat one would be a buffer).
fn constant(k: &mut KernelBuilder, func: &Function, op: &dlc_ir::OpData) -> Result<NodeId, JitError> {
    let name = op.kind.name();
    let dense = dlc_ir::AttrView::new(op.kind, &op.attrs).dense("value").map_err(|message| JitError::Registry { op: name, message })?;
    if !dense.is_splat() {
        return Err(JitError::unsupported(name, "only splat constants fuse into a kernel body"));
    }
    let dtype: DType = dense.ty.dtype;
    let value = match &dense.data {
        DenseData::Float(v) => v[0],
        DenseData::Bool(v) => v[0] as u8 as f64,
        DenseData::Int(_) => return Err(JitError::unsupported(name, format!("integer constant in @{}", func.name))),
    };
    k.constant(value, dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Attrs, Builder, Type};

    fn arg(f: &mut Function, shape: Vec<Dim>) -> ValueId {
        f.add_arg(Type::Tensor(TensorType::new(shape, DType::F32)), None, Attrs::new())
    }

    #[test]
    fn same_shape_chains_collapse_to_rank_one_and_bias_rows_do_not() {
        let mut f = Function::new("k");
        let x = arg(&mut f, vec![Dim::Dynamic, Dim::Static(256)]);
        let y = arg(&mut f, vec![Dim::Dynamic, Dim::Static(256)]);
        let bias = arg(&mut f, vec![Dim::Static(256)]);
        let mut b = Builder::at_entry(&mut f);
        let s = b.op(OpKind::Add, &[x, y], Attrs::new()).unwrap();
        let t = b.op(OpKind::Add, &[s, bias], Attrs::new()).unwrap();
        b.ret(&[t]);
        let l = lower_function(&f).unwrap();
        assert_eq!(l.spec.rank(), 2);
        assert_eq!(l.spec.inputs()[2].access, vec![Access::Broadcast, Access::Full]);
        assert_eq!(l.iteration_shape(&[3, 256]).unwrap(), vec![3, 256]);
        assert!(l.iteration_shape(&[3, 255]).is_err());
    }

    #[test]
    fn channel_bias_merges_spatial_dims_and_drops_unit_dims() {
        let mut f = Function::new("k");
        let x = arg(&mut f, vec![Dim::Dynamic, Dim::Static(1), Dim::Static(8), Dim::Static(5), Dim::Static(5)]);
        let c = arg(&mut f, vec![Dim::Static(8), Dim::Static(1), Dim::Static(1)]);
        let mut b = Builder::at_entry(&mut f);
        let t = b.op(OpKind::Mul, &[x, c], Attrs::new()).unwrap();
        b.ret(&[t]);
        let l = lower_function(&f).unwrap();
        assert_eq!(l.groups, vec![vec![0], vec![2], vec![3, 4]]);
        assert_eq!(l.iteration_shape(&[2, 1, 8, 5, 5]).unwrap(), vec![2, 8, 25]);
    }
}
