//! The kernel spec: what one fused elementwise kernel computes, before any
//! machine code exists.
//!
//! A kernel reads N input buffers and writes one output buffer over a
//! rank-`r` iteration space (the output's shape, with adjacent dims that
//! every input indexes alike already collapsed). Its body is a small DAG of
//! scalar ops in SSA order. Each body op is a registry op ([`OpKind`]) with
//! its `dl` attributes, so the ops' names, attribute defaults and dtype rules
//! are the registry's, not a second table here: [`KernelBuilder::op`] types
//! each node by running the op's own shape rule on rank-0 operands.
//!
//! Inputs are indexed by [`Access`] per dim: `Full` dims are the input's own
//! (row-major, contiguous over its full dims), `Broadcast` dims are stretched
//! size-1 dims (stride 0). This is the structured-kernel IR's indexing map
//! restricted to projections, which is all NumPy broadcasting produces, and it
//! tells the code generator at compile time which inputs are contiguous (a
//! vector load) or constant (a splat) along the innermost dim.

pub use crate::dag::{Node, NodeId};
use crate::dag::{Dag, check_dtype};
use crate::error::JitError;
use dlc_ir::{Attrs, DType, OpKind};

/// How an input is indexed along one dim of the iteration space.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// The input has this dim: its index is the output's.
    Full,
    /// The input is stretched along this dim (a size-1 or missing dim): stride 0.
    Broadcast,
}

/// One input buffer of a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// Its element type: f32, f64 or i1 (`bool`).
    pub dtype: DType,
    /// Its access per dim of the iteration space, outermost first.
    pub access: Vec<Access>,
}

impl InputSpec {
    /// Element strides of this input for an iteration shape: row-major over
    /// its `Full` dims, 0 on `Broadcast` dims. Also returns its element count.
    pub fn strides(&self, shape: &[usize]) -> (Vec<usize>, usize) {
        let mut strides = vec![0; shape.len()];
        let mut len = 1usize;
        for (d, (&n, a)) in shape.iter().zip(&self.access).enumerate().rev() {
            if *a == Access::Full {
                strides[d] = len;
                len = len.saturating_mul(n);
            }
        }
        (strides, len)
    }
}

/// A validated fused elementwise kernel: iteration rank, inputs, body and
/// output, every node typed by the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSpec {
    rank: usize,
    inputs: Vec<InputSpec>,
    dag: Dag,
    output: NodeId,
}

impl KernelSpec {
    /// The rank of the iteration space (at least 1).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The input buffers, in call order.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The body, in SSA order.
    pub fn body(&self) -> &[Node] {
        &self.dag.nodes
    }

    /// The element type of a node.
    pub fn dtype(&self, n: NodeId) -> DType {
        self.dag.dtype(n)
    }

    /// The node whose value is written to the output buffer.
    pub fn output(&self) -> NodeId {
        self.output
    }

    /// The output buffer's element type.
    pub fn output_dtype(&self) -> DType {
        self.dtype(self.output)
    }

    pub(crate) fn dag(&self) -> &Dag {
        &self.dag
    }
}

/// Builds a [`KernelSpec`] node by node, checking each node as it is added.
#[derive(Debug)]
pub struct KernelBuilder {
    rank: usize,
    inputs: Vec<InputSpec>,
    dag: Dag,
}

impl KernelBuilder {
    /// An empty kernel over a rank-`rank` iteration space.
    pub fn new(rank: usize) -> Result<Self, JitError> {
        if rank == 0 {
            return Err(JitError::InvalidSpec("the iteration space needs rank >= 1 (use [1] for a scalar)".into()));
        }
        Ok(KernelBuilder { rank, inputs: Vec::new(), dag: Dag::default() })
    }

    /// Adds an input buffer and a node reading it.
    pub fn input(&mut self, dtype: DType, access: &[Access]) -> Result<NodeId, JitError> {
        check_dtype("input", dtype)?;
        if access.len() != self.rank {
            return Err(JitError::InvalidSpec(format!(
                "input {} has {} access entries for a rank-{} iteration space",
                self.inputs.len(),
                access.len(),
                self.rank
            )));
        }
        self.inputs.push(InputSpec { dtype, access: access.to_vec() });
        Ok(self.dag.push(Node::Input(self.inputs.len() - 1), dtype))
    }

    /// Adds a constant.
    pub fn constant(&mut self, value: f64, dtype: DType) -> Result<NodeId, JitError> {
        self.dag.constant(value, dtype)
    }

    /// Adds a registry op on earlier nodes. Its result type comes from the
    /// op's own shape rule applied to rank-0 operands, which also checks the
    /// operand count, the attributes and the dtype rules.
    pub fn op(&mut self, kind: OpKind, args: &[NodeId], attrs: Attrs) -> Result<NodeId, JitError> {
        self.dag.op(kind, args, attrs)
    }

    /// Finishes the kernel with `output` as the value written out.
    pub fn finish(self, output: NodeId) -> Result<KernelSpec, JitError> {
        self.dag.check_node(output, "output")?;
        Ok(KernelSpec { rank: self.rank, inputs: self.inputs, dag: self.dag, output })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::attrs;

    #[test]
    fn nodes_are_typed_by_the_registry() {
        let mut k = KernelBuilder::new(1).unwrap();
        let x = k.input(DType::F32, &[Access::Full]).unwrap();
        let z = k.constant(0.0, DType::F32).unwrap();
        let m = k.op(OpKind::Cmp, &[x, z], attrs! {"predicate" => "gt"}).unwrap();
        let y = k.op(OpKind::Select, &[m, x, z], Attrs::new()).unwrap();
        let spec = k.finish(y).unwrap();
        assert_eq!(spec.dtype(m), DType::I1);
        assert_eq!(spec.output_dtype(), DType::F32);
    }

    #[test]
    fn bad_nodes_are_errors() {
        let mut k = KernelBuilder::new(1).unwrap();
        let x = k.input(DType::F32, &[Access::Full]).unwrap();
        let d = k.input(DType::F64, &[Access::Full]).unwrap();
        assert!(matches!(k.op(OpKind::Add, &[x, d], Attrs::new()), Err(JitError::Registry { .. })));
        assert!(matches!(k.op(OpKind::Cmp, &[x, x], Attrs::new()), Err(JitError::Registry { .. })));
        assert!(matches!(k.op(OpKind::Neg, &[NodeId(9)], Attrs::new()), Err(JitError::InvalidSpec(_))));
        assert!(matches!(k.op(OpKind::Softmax, &[x], Attrs::new()), Err(JitError::Unsupported { .. })));
        assert!(matches!(k.op(OpKind::Cast, &[x], attrs! {"dtype" => DType::I32}), Err(JitError::Unsupported { .. })));
        assert!(matches!(k.input(DType::F32, &[]), Err(JitError::InvalidSpec(_))));
        assert!(KernelBuilder::new(0).is_err());
    }

    #[test]
    fn strides_skip_broadcast_dims() {
        let i = InputSpec { dtype: DType::F32, access: vec![Access::Full, Access::Broadcast, Access::Full] };
        assert_eq!(i.strides(&[2, 3, 4]), (vec![4, 0, 1], 8));
    }
}
