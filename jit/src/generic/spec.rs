//! The structured kernel spec: an iteration space with an iterator kind per
//! dim, an affine indexing map per operand, and a scalar body, as in MLIR's
//! `linalg.generic` (and dlc's `kernel.generic`, which lowers to it).
//!
//! Semantics, the reference the tests hold the machine code to: without a
//! reduction iterator, for every point `p` of the iteration space,
//! `out[out_map(p)] = body(in_i[map_i(p)]…)`. With one, `out` is first
//! filled with `init`, then the points are visited in row-major order (d0
//! outermost) and `out[out_map(p)] = body(in_i[map_i(p)]…, acc =
//! out[out_map(p)])`. An input with a `pad` value reads it wherever its map
//! leaves its bounds; every other access must stay in bounds, which each
//! call checks before any machine code runs.
//!
//! A kernel without reduction iterators may have several outputs, each
//! with its own node, element type and map: `out_r[out_map_r(p)] =
//! node_r(in_i[map_i(p)]…)`, the body evaluated once per point for all of
//! them.
//!
//! The output map is a projection holding every parallel dim and no
//! reduction dim, so each output element is written by exactly the points
//! that share its parallel indices, and distinct parallel indices never
//! write the same element: that is what lets the code keep an accumulator in
//! a register and lets callers split dim 0 over threads.

use crate::dag::{Dag, Node, NodeId, check_dtype};
use crate::error::JitError;
use dlc_ir::{AffineMap, Attrs, DType, OpKind};

/// The kind of one dim of the iteration space.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum IterKind {
    /// Every index writes its own output elements.
    Parallel,
    /// Indices fold into the same output element through the accumulator.
    Reduction,
}

/// One input operand of a structured kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct GenericInput {
    /// Its element type: f32, f64 or i1 (`bool`).
    pub dtype: DType,
    /// Where it is read: `map(p)` is the multi-index of its element for
    /// iteration point `p`.
    pub map: AffineMap,
    /// The value read where `map(p)` is outside its shape; `None` when every
    /// access must be in bounds.
    pub pad: Option<f64>,
    /// With `pad`: map results that are plain dims but may still run past
    /// the operand (a concatenation with fills reads a smaller tensor), so
    /// they are checked per element too. Other plain dims must stay in
    /// bounds, which each call checks once.
    pub checked_dims: Vec<usize>,
}

/// One output of a structured kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct GenericOutput {
    /// The body node written to it.
    pub node: NodeId,
    /// Its element type (the node's).
    pub dtype: DType,
    /// Where it is written: a projection of the parallel dims.
    pub map: AffineMap,
}

/// A validated structured kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct GenericSpec {
    iterators: Vec<IterKind>,
    inputs: Vec<GenericInput>,
    dag: Dag,
    /// At least one; several only without reduction iterators.
    outputs: Vec<GenericOutput>,
    init: Option<f64>,
}

impl GenericSpec {
    /// The iterator kind of each dim, d0 first.
    pub fn iterators(&self) -> &[IterKind] {
        &self.iterators
    }

    /// The rank of the iteration space (at least 1).
    pub fn rank(&self) -> usize {
        self.iterators.len()
    }

    /// True when some dim is a reduction (the body may read the accumulator).
    pub fn has_reduction(&self) -> bool {
        self.iterators.contains(&IterKind::Reduction)
    }

    /// The input operands, in call order.
    pub fn inputs(&self) -> &[GenericInput] {
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

    /// The node whose value is written to the (first) output element.
    pub fn result(&self) -> NodeId {
        self.outputs[0].node
    }

    /// The (first) output's element type.
    pub fn out_dtype(&self) -> DType {
        self.outputs[0].dtype
    }

    /// Where the (first) output is written: a projection of the parallel dims.
    pub fn out_map(&self) -> &AffineMap {
        &self.outputs[0].map
    }

    /// Every output, in call order.
    pub fn outputs(&self) -> &[GenericOutput] {
        &self.outputs
    }

    /// The accumulator's starting value (kernels with a reduction only).
    pub fn init(&self) -> Option<f64> {
        self.init
    }

    pub(crate) fn dag(&self) -> &Dag {
        &self.dag
    }
}

/// Builds a [`GenericSpec`], checking each operand and node as it is added.
#[derive(Debug)]
pub struct GenericBuilder {
    iterators: Vec<IterKind>,
    out_dtype: DType,
    inputs: Vec<GenericInput>,
    dag: Dag,
    acc: Option<NodeId>,
}

impl GenericBuilder {
    /// An empty kernel over an iteration space with these iterator kinds,
    /// writing elements of `out_dtype` (known up front because the
    /// accumulator, an output element, may be read before the body ends).
    pub fn new(iterators: &[IterKind], out_dtype: DType) -> Result<Self, JitError> {
        if iterators.is_empty() {
            return Err(JitError::InvalidSpec("the iteration space needs rank >= 1 (use [1] for a scalar)".into()));
        }
        check_dtype("output", out_dtype)?;
        Ok(GenericBuilder { iterators: iterators.to_vec(), out_dtype, inputs: Vec::new(), dag: Dag::default(), acc: None })
    }

    fn check_map(&self, what: &str, map: &AffineMap) -> Result<(), JitError> {
        if map.dims != self.iterators.len() {
            return Err(JitError::InvalidSpec(format!("{what}'s map {map} has {} dims for a rank-{} iteration space", map.dims, self.iterators.len())));
        }
        map.check().map_err(|m| JitError::InvalidSpec(format!("{what}: {m}")))
    }

    /// Adds an input operand read at `map(p)` and a node reading it. With
    /// `pad`, accesses outside the operand read `pad` (rounded to `dtype`;
    /// nonzero is true for i1); without, every access must be in bounds,
    /// which each call checks before running.
    pub fn input(&mut self, dtype: DType, map: AffineMap, pad: Option<f64>) -> Result<NodeId, JitError> {
        self.padded_input(dtype, map, pad, &[])
    }

    /// Like [`GenericBuilder::input`], also checking per element the plain-dim
    /// map results listed in `checked_dims` (results that may run past the
    /// operand even though they are a loop index). Needs `pad`.
    pub fn padded_input(&mut self, dtype: DType, map: AffineMap, pad: Option<f64>, checked_dims: &[usize]) -> Result<NodeId, JitError> {
        if !crate::dag::supported_input(dtype) {
            check_dtype("input", dtype)?;
        }
        if dtype == DType::I64 && pad.is_some() {
            return Err(JitError::unsupported("input", "a padded i64 input"));
        }
        self.check_map(&format!("input {}", self.inputs.len()), &map)?;
        if !checked_dims.is_empty() && pad.is_none() {
            return Err(JitError::InvalidSpec("checked dims need a pad value".into()));
        }
        if let Some(j) = checked_dims.iter().find(|&&j| j >= map.results.len()) {
            return Err(JitError::InvalidSpec(format!("checked dim {j} is not a result of {map}")));
        }
        self.inputs.push(GenericInput { dtype, map, pad, checked_dims: checked_dims.to_vec() });
        Ok(self.dag.push(Node::Input(self.inputs.len() - 1), dtype))
    }

    /// The accumulator: the output element's current value, of the output
    /// dtype. Only kernels with a reduction iterator have one.
    pub fn acc(&mut self) -> Result<NodeId, JitError> {
        if !self.iterators.contains(&IterKind::Reduction) {
            return Err(JitError::InvalidSpec("only a kernel with a reduction iterator reads the accumulator".into()));
        }
        if let Some(a) = self.acc {
            return Ok(a);
        }
        let a = self.dag.push(Node::Acc, self.out_dtype);
        self.acc = Some(a);
        Ok(a)
    }

    /// Adds a constant.
    pub fn constant(&mut self, value: f64, dtype: DType) -> Result<NodeId, JitError> {
        self.dag.constant(value, dtype)
    }

    /// Adds a registry op (elementwise categories) on earlier nodes, typed
    /// by the op's own shape rule as in [`crate::KernelBuilder::op`].
    pub fn op(&mut self, kind: OpKind, args: &[NodeId], attrs: Attrs) -> Result<NodeId, JitError> {
        self.dag.op(kind, args, attrs)
    }

    /// Finishes the kernel: `result` is written to `out[out_map(p)]`.
    /// `out_map` must be a projection holding every parallel dim and no
    /// reduction dim; `init` is the accumulator's starting value, required
    /// exactly when there is a reduction iterator.
    pub fn finish(self, result: NodeId, out_map: AffineMap, init: Option<f64>) -> Result<GenericSpec, JitError> {
        self.finish_outputs(&[(result, out_map)], init)
    }

    /// Finishes a kernel with one or more outputs: node `outs[r].0` is
    /// written to output `r` at `outs[r].1(p)`, each map as in
    /// [`GenericBuilder::finish`]. The first output holds the dtype given to
    /// [`GenericBuilder::new`], the others their node's; several outputs
    /// need a kernel without reduction iterators.
    pub fn finish_outputs(self, outs: &[(NodeId, AffineMap)], init: Option<f64>) -> Result<GenericSpec, JitError> {
        if outs.is_empty() {
            return Err(JitError::InvalidSpec("a kernel needs at least one output".into()));
        }
        if outs.len() > 1 && self.iterators.contains(&IterKind::Reduction) {
            return Err(JitError::InvalidSpec(format!("a kernel with a reduction iterator has one output, not {}", outs.len())));
        }
        let mut outputs = Vec::with_capacity(outs.len());
        for (r, (node, map)) in outs.iter().enumerate() {
            self.dag.check_node(*node, "result")?;
            let found = self.dag.dtype(*node);
            if r == 0 && found != self.out_dtype {
                return Err(JitError::InvalidSpec(format!("the result is {found} but the output holds {}", self.out_dtype)));
            }
            check_dtype("output", found)?;
            self.check_output_map(map)?;
            outputs.push(GenericOutput { node: *node, dtype: found, map: map.clone() });
        }
        let reduces = self.iterators.contains(&IterKind::Reduction);
        match (reduces, init) {
            (true, None) => return Err(JitError::InvalidSpec("a kernel with a reduction iterator needs an init value".into())),
            (false, Some(_)) => return Err(JitError::InvalidSpec("init is only for kernels with a reduction iterator".into())),
            _ => {}
        }
        Ok(GenericSpec { iterators: self.iterators, inputs: self.inputs, dag: self.dag, outputs, init })
    }

    /// Checks an output map: a projection holding every parallel dim and no
    /// reduction dim.
    fn check_output_map(&self, out_map: &AffineMap) -> Result<(), JitError> {
        self.check_map("the output", out_map)?;
        if !out_map.is_projection() {
            return Err(JitError::InvalidSpec(format!("the output map {out_map} must be a projection (plain dims, each at most once)")));
        }
        for (d, kind) in self.iterators.iter().enumerate() {
            let written = out_map.results.iter().any(|e| e.as_dim() == Some(d));
            match (kind, written) {
                (IterKind::Parallel, false) => {
                    return Err(JitError::InvalidSpec(format!("the output map {out_map} must hold the parallel dim d{d}")));
                }
                (IterKind::Reduction, true) => {
                    return Err(JitError::InvalidSpec(format!("the output map {out_map} must not hold the reduction dim d{d}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IterKind::{Parallel as P, Reduction as R};

    fn map(text: &str) -> AffineMap {
        AffineMap::parse(text).unwrap()
    }

    #[test]
    fn a_sum_over_the_last_dim_builds() {
        let mut g = GenericBuilder::new(&[P, R], DType::F32).unwrap();
        let x = g.input(DType::F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
        let acc = g.acc().unwrap();
        assert_eq!(g.acc().unwrap(), acc, "one accumulator");
        let s = g.op(OpKind::Add, &[acc, x], Attrs::new()).unwrap();
        let spec = g.finish(s, map("(d0, d1) -> (d0)"), Some(0.0)).unwrap();
        assert!(spec.has_reduction());
        assert_eq!(spec.dtype(acc), DType::F32);
    }

    #[test]
    fn malformed_kernels_are_errors() {
        assert!(GenericBuilder::new(&[], DType::F32).is_err());
        assert!(GenericBuilder::new(&[P], DType::I32).is_err());
        let mut g = GenericBuilder::new(&[P, P], DType::F32).unwrap();
        assert!(g.acc().is_err(), "no reduction, no accumulator");
        assert!(g.input(DType::F32, map("(d0) -> (d0)"), None).is_err(), "wrong dim count");
        let x = g.input(DType::F32, map("(d0, d1) -> (d1, d0)"), None).unwrap();
        let bad = |out: &str, init: Option<f64>| {
            let mut g = GenericBuilder::new(&[P, R], DType::F32).unwrap();
            let x = g.input(DType::F32, map("(d0, d1) -> (d0, d1)"), None).unwrap();
            g.finish(x, map(out), init).is_err()
        };
        assert!(bad("(d0, d1) -> (d0)", None), "a reduction needs init");
        assert!(bad("(d0, d1) -> (d0, d1)", Some(0.0)), "the output holds a reduction dim");
        assert!(bad("(d0, d1) -> (d0 + 1)", Some(0.0)), "not a projection");
        assert!(bad("(d0, d1) -> ()", Some(0.0)), "the parallel dim is missing");
        let mut g2 = GenericBuilder::new(&[P], DType::F64).unwrap();
        let y = g2.input(DType::F32, map("(d0) -> (d0)"), None).unwrap();
        assert!(g2.finish(y, map("(d0) -> (d0)"), None).is_err(), "f32 result for an f64 output");
        assert!(g.finish(x, map("(d0, d1) -> (d0, d1)"), Some(1.0)).is_err(), "init without a reduction");
    }
}
