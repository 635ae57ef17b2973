//! What every e-class knows about its value: its type, and its element when
//! the value is a splat constant.
//!
//! The type of an op node is the registry's shape rule applied to its
//! children's types ([`OpKind::infer`]); a leaf's type comes from the pass's
//! leaf table. Every node added to a class must have the class's type:
//! `merge` asserts it, and the rule driver only adds well-typed nodes and
//! only unions a rewrite whose type equals the class's (so a rule that would
//! change a type simply does not fire).
//!
//! Constants fold as in the `fold` pass, through the interpreter's own
//! [`eval_op`]: an elementwise op whose children are all splats is evaluated
//! once on rank-0 tensors, which is bit for bit each element of the
//! broadcast result; a reshape, transpose or broadcast of a splat is the
//! same splat. A class with a known splat gets its canonical form added: the
//! `dl.constant` (free to extract) for a static type, which then is the
//! class's only node, and the rank-0 constant broadcast to the shape for a
//! `?` one; so equal splats of one type share a class.

use super::lang::{AttrKey, Dl, constant_key};
use dlc_backends::{Tensor, eval_op};
use dlc_ir::{Attr, Attrs, DenseAttr, DenseData, OpKind, TensorType, Type};
use egg::{DidMerge, EGraph, Id};

/// The e-graph of the `egraph` pass.
pub type Graph = EGraph<Dl, DlAnalysis>;

/// The analysis: holds the types of the leaves.
#[derive(Clone, Debug, Default)]
pub struct DlAnalysis {
    /// Type of leaf `i`.
    pub leaf_types: Vec<Type>,
}

/// One class's facts.
#[derive(Clone, Debug)]
pub struct Data {
    /// The type every node of the class has.
    pub ty: Type,
    /// The element of every position, when the value is a splat: a rank-0
    /// tensor of the class's dtype, as the run time holds it (an f32
    /// constant's literal rounded to f32).
    pub splat: Option<Tensor>,
}

impl Data {
    /// The splat element as f64 (`i1` as 0 or 1).
    pub fn splat_f64(&self) -> Option<f64> {
        self.splat.as_ref().map(|t| t.to_f64_vec()[0])
    }

    /// The class's tensor type.
    pub fn tensor(&self) -> Option<&TensorType> {
        self.ty.as_tensor()
    }
}

impl egg::Analysis<Dl> for DlAnalysis {
    type Data = Data;

    fn make(egraph: &mut Graph, enode: &Dl) -> Data {
        match enode {
            Dl::Leaf(i) => Data { ty: egraph.analysis.leaf_types[*i as usize].clone(), splat: None },
            Dl::Op { kind, attrs, children } => {
                assert!(!attrs.is_any(), "a {{*}} pattern node entered the e-graph");
                let types: Vec<Type> = children.iter().map(|&c| egraph[c].data.ty.clone()).collect();
                let ty = match kind.infer(&types, attrs.attrs()).as_deref() {
                    Ok([t]) => t.clone(),
                    other => panic!("e-node {enode} does not type-check: {other:?}"),
                };
                let splats: Option<Vec<&Tensor>> = children.iter().map(|&c| egraph[c].data.splat.as_ref()).collect();
                let splat = splat_of(*kind, attrs.attrs(), splats.as_deref());
                Data { ty, splat }
            }
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        assert_eq!(a.ty, b.ty, "the e-graph merged classes of different types");
        match (&a.splat, b.splat) {
            (None, Some(s)) => {
                a.splat = Some(s);
                DidMerge(true, false)
            }
            (Some(_), None) => DidMerge(false, true),
            _ => DidMerge(false, false),
        }
    }

    fn modify(egraph: &mut Graph, id: Id) {
        let data = &egraph[id].data;
        let (Some(splat), Type::Tensor(ty)) = (&data.splat, &data.ty) else { return };
        let (splat, ty) = (splat.clone(), ty.clone());
        if ty.is_static() {
            // The constant is the class: the ops that computed it are pruned,
            // so no rule matches inside a constant (products of constants
            // would otherwise breed new constants without end).
            if !egraph[id].nodes.iter().any(|n| n.kind() == Some(OpKind::Constant)) {
                let value = DenseAttr { ty, data: dense_data(&splat) };
                let c = egraph.add(Dl::op(OpKind::Constant, constant_key(value), Vec::new()));
                egraph.union(id, c);
            }
            let id = egraph.find(id);
            egraph[id].nodes.retain(|n| n.kind() == Some(OpKind::Constant));
            return;
        }
        if egraph[id].nodes.iter().any(|n| n.kind() == Some(OpKind::Constant)) {
            return;
        }
        // A splat of a `?` shape: the rank-0 constant broadcast to it, one
        // canonical form, so equal splats of one type share a class.
        let scalar = DenseAttr { ty: TensorType::fixed(&[], ty.dtype), data: dense_data(&splat) };
        let c = egraph.add(Dl::op(OpKind::Constant, constant_key(scalar), Vec::new()));
        let shape: Vec<i64> = ty.shape.iter().map(|d| d.to_attr_int()).collect();
        let attrs = Attrs::from([("shape".to_string(), Attr::ints(&shape))]);
        let Some(key) = AttrKey::new(OpKind::BroadcastTo, &attrs) else { return };
        let node = Dl::op(OpKind::BroadcastTo, key, vec![c]);
        if egraph[id].nodes.contains(&node) {
            return;
        }
        if OpKind::BroadcastTo.infer(&[egraph[c].data.ty.clone()], &attrs).is_ok_and(|t| t == [Type::Tensor(ty)]) {
            let b = egraph.add(node);
            egraph.union(id, b);
        }
    }
}

/// The splat a node computes, when it computes one.
fn splat_of(kind: OpKind, attrs: &Attrs, children: Option<&[&Tensor]>) -> Option<Tensor> {
    if kind == OpKind::Constant {
        let value = attrs.get("value")?.as_dense()?;
        if !value.is_splat() {
            return None;
        }
        let rank0 = DenseAttr { ty: TensorType::fixed(&[], value.ty.dtype), data: value.data.clone() };
        return eval_op(OpKind::Constant, &Attrs::from([("value".to_string(), Attr::Dense(rank0))]), &[], None).ok();
    }
    let children = children?;
    if kind.is_elementwise() {
        let out = eval_op(kind, attrs, children, None).ok()?;
        return (out.rank() == 0).then_some(out);
    }
    // Movement ops that only rearrange or repeat elements keep a splat.
    match kind {
        OpKind::Reshape | OpKind::Transpose | OpKind::BroadcastTo => children.first().map(|&t| t.clone()),
        _ => None,
    }
}

/// A rank-0 tensor's element as a splat's dense data.
pub fn dense_data(t: &Tensor) -> DenseData {
    match t {
        Tensor::F32(a) => DenseData::Float(a.iter().map(|&x| x as f64).collect()),
        Tensor::F64(a) => DenseData::Float(a.iter().copied().collect()),
        Tensor::I32(a) => DenseData::Int(a.iter().map(|&x| x as i64).collect()),
        Tensor::I64(a) => DenseData::Int(a.iter().copied().collect()),
        Tensor::I1(a) => DenseData::Bool(a.iter().copied().collect()),
    }
}
