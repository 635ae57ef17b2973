//! The scalar body both kernel forms share: a DAG of registry ops in SSA
//! order, every node typed when it is added.
//!
//! Elementwise kernels ([`crate::KernelSpec`]) and structured kernels
//! ([`crate::GenericSpec`]) differ in how they index memory, not in what
//! they compute per element, so the body, its typing, its plan
//! (`plan.rs`) and its emission (`body.rs`) are written once, here and
//! there. Each op node is a registry op ([`OpKind`]) with its `dl`
//! attributes: its name, attribute defaults and dtype rules are the
//! registry's, not a second table here.

use crate::error::JitError;
use dlc_ir::{Attrs, DType, OpKind, TensorType, Type};

/// A node of a kernel body; its index is its [`NodeId`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// One scalar computation of a kernel body.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// The element of input buffer `i` at the current index.
    Input(usize),
    /// The output element's current value: the accumulator of a structured
    /// kernel with a reduction iterator (never in elementwise kernels).
    Acc,
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

/// A body under construction or finished: nodes and their types.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Dag {
    pub nodes: Vec<Node>,
    pub types: Vec<DType>,
}

/// True for the element types the JIT computes with; integers are future
/// work, but for i64 inputs of a structured kernel (`supported_input`).
pub(crate) fn supported(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::I1)
}

/// True for the element types a structured kernel reads: also i64, which
/// its body may only compare (`dl.cmp`, to i1) or cast to a float or i1,
/// in scalar loops (an accuracy count: an argmax against the labels).
pub(crate) fn supported_input(d: DType) -> bool {
    supported(d) || d == DType::I64
}

/// `d` if the JIT handles it, else the error naming `what` needed it.
pub(crate) fn check_dtype(what: &str, d: DType) -> Result<DType, JitError> {
    if supported(d) {
        Ok(d)
    } else {
        Err(JitError::unsupported(what, format!("element type {d} (the JIT handles f32, f64 and i1)")))
    }
}

impl Dag {
    /// The element type of a node.
    pub fn dtype(&self, n: NodeId) -> DType {
        self.types[n.0 as usize]
    }

    /// Appends a node of a known type.
    pub fn push(&mut self, node: Node, dtype: DType) -> NodeId {
        self.nodes.push(node);
        self.types.push(dtype);
        NodeId(self.nodes.len() as u32 - 1)
    }

    /// Appends a constant.
    pub fn constant(&mut self, value: f64, dtype: DType) -> Result<NodeId, JitError> {
        check_dtype("constant", dtype)?;
        Ok(self.push(Node::Const { value, dtype }, dtype))
    }

    /// Appends a registry op on earlier nodes. Its result type comes from
    /// the op's own shape rule applied to rank-0 operands, which also checks
    /// the operand count, the attributes and the dtype rules.
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
        if args.iter().any(|a| self.types[a.0 as usize] == DType::I64) && !matches!(kind, OpKind::Cmp | OpKind::Cast) {
            return Err(JitError::unsupported(kind.name(), "an i64 operand (i64 values are only compared or cast)"));
        }
        let out = kind.infer(&operands, &attrs).map_err(|message| JitError::Registry { op: kind.name(), message })?;
        let dtype = match out.as_slice() {
            [t] => t.dtype().ok_or_else(|| JitError::unsupported(kind.name(), "its result is not a tensor"))?,
            _ => return Err(JitError::unsupported(kind.name(), "it has more than one result")),
        };
        check_dtype(kind.name(), dtype)?;
        Ok(self.push(Node::Op { kind, attrs, args: args.to_vec() }, dtype))
    }

    /// Checks that `n` names a node.
    pub fn check_node(&self, n: NodeId, what: &str) -> Result<(), JitError> {
        if (n.0 as usize) < self.nodes.len() {
            Ok(())
        } else {
            Err(JitError::InvalidSpec(format!("{what} node {} does not exist", n.0)))
        }
    }
}
