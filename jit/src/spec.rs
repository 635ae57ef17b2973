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

use crate::error::JitError;
use dlc_ir::{Attrs, DType, OpKind, TensorType, Type};

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

/// A node of a kernel body; its index is its [`NodeId`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// One scalar computation of a kernel body.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// The element of input buffer `i` at the current index.
    Input(usize),
    /// A constant, rounded to `dtype` (nonzero is true for i1).
    Const {
        /// Its value.
        value: f64,
        /// Its element type.
        dtype: DType,
    },
    /// A registry op (elementwise: unary or binary category) on earlier nodes.
    Op {
        /// Which op.
        kind: OpKind,
        /// Its `dl` attributes (defaults come from the registry).
        attrs: Attrs,
        /// Its operands, all defined earlier in the body.
        args: Vec<NodeId>,
    },
}

/// A validated fused elementwise kernel: iteration rank, inputs, body and
/// output, every node typed by the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSpec {
    rank: usize,
    inputs: Vec<InputSpec>,
    body: Vec<Node>,
    types: Vec<DType>,
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
        &self.body
    }

    /// The element type of a node.
    pub fn dtype(&self, n: NodeId) -> DType {
        self.types[n.0 as usize]
    }

    /// The node whose value is written to the output buffer.
    pub fn output(&self) -> NodeId {
        self.output
    }

    /// The output buffer's element type.
    pub fn output_dtype(&self) -> DType {
        self.dtype(self.output)
    }
}

/// True for the element types the JIT handles; integers are future work.
pub(crate) fn supported(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::I1)
}

fn check_dtype(op: &str, d: DType) -> Result<DType, JitError> {
    if supported(d) {
        Ok(d)
    } else {
        Err(JitError::unsupported(op, format!("element type {d} (the JIT handles f32, f64 and i1)")))
    }
}

/// Builds a [`KernelSpec`] node by node, checking each node as it is added.
#[derive(Debug)]
pub struct KernelBuilder {
    rank: usize,
    inputs: Vec<InputSpec>,
    body: Vec<Node>,
    types: Vec<DType>,
}

impl KernelBuilder {
    /// An empty kernel over a rank-`rank` iteration space.
    pub fn new(rank: usize) -> Result<Self, JitError> {
        if rank == 0 {
            return Err(JitError::InvalidSpec("the iteration space needs rank >= 1 (use [1] for a scalar)".into()));
        }
        Ok(KernelBuilder { rank, inputs: Vec::new(), body: Vec::new(), types: Vec::new() })
    }

    fn push(&mut self, node: Node, dtype: DType) -> NodeId {
        self.body.push(node);
        self.types.push(dtype);
        NodeId(self.body.len() as u32 - 1)
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
        Ok(self.push(Node::Input(self.inputs.len() - 1), dtype))
    }

    /// Adds a constant.
    pub fn constant(&mut self, value: f64, dtype: DType) -> Result<NodeId, JitError> {
        check_dtype("constant", dtype)?;
        Ok(self.push(Node::Const { value, dtype }, dtype))
    }

    /// Adds a registry op on earlier nodes. Its result type comes from the
    /// op's own shape rule applied to rank-0 operands, which also checks the
    /// operand count, the attributes and the dtype rules.
    pub fn op(&mut self, kind: OpKind, args: &[NodeId], attrs: Attrs) -> Result<NodeId, JitError> {
        if !kind.is_elementwise() {
            return Err(JitError::unsupported(kind.name(), format!("its category is {:?}, not elementwise", kind.category())));
        }
        let mut operands = Vec::with_capacity(args.len());
        for a in args {
            let t = self.types.get(a.0 as usize).ok_or_else(|| {
                JitError::InvalidSpec(format!("'{}' uses node {} before it is defined", kind.name(), a.0))
            })?;
            operands.push(Type::Tensor(TensorType::new(Vec::new(), *t)));
        }
        let out = kind.infer(&operands, &attrs).map_err(|message| JitError::Registry { op: kind.name(), message })?;
        let dtype = match out.as_slice() {
            [t] => t.dtype().ok_or_else(|| JitError::unsupported(kind.name(), "its result is not a tensor"))?,
            _ => return Err(JitError::unsupported(kind.name(), "it has more than one result")),
        };
        check_dtype(kind.name(), dtype)?;
        Ok(self.push(Node::Op { kind, attrs, args: args.to_vec() }, dtype))
    }

    /// Finishes the kernel with `output` as the value written out.
    pub fn finish(self, output: NodeId) -> Result<KernelSpec, JitError> {
        if output.0 as usize >= self.body.len() {
            return Err(JitError::InvalidSpec(format!("output node {} does not exist", output.0)));
        }
        Ok(KernelSpec { rank: self.rank, inputs: self.inputs, body: self.body, types: self.types, output })
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
