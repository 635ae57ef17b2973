//! What one `dl` op's lowering looks like from outside: the summary the
//! e-graph pass's fusion plan (`egraph::plan`) decides with.
//!
//! The summary comes from the real lowering of the op alone (a one-op
//! function through [`super::lower::lower_traced`]), so the planner holds no
//! op knowledge of its own: how many kernels an op becomes, how many points
//! each iterates and how often it reads each operand are the lowering's.

use crate::Pass;
use super::cost::{Cost, SCALAR_FACTOR, float_widths, generic_cost, mixes_float_widths, op_cost, points};
use dlc_ir::kernel::{Generic, Scalar};
use dlc_ir::{Attrs, Builder, Function, OpKind, Type, ValueId};

/// An operand of the op to summarize.
#[derive(Clone, Debug)]
pub enum Operand<'a> {
    /// A value of this type computed elsewhere.
    Value(&'a Type),
    /// A splat `dl.constant` with these attributes (the lowering folds it
    /// into the kernel body, so it is not read from memory).
    Splat(&'a Attrs),
}

/// One op's lowering, summarized.
#[derive(Clone, Debug, PartialEq)]
pub struct OpNest {
    /// The cost of its kernels, each on its own (what fusion starts from).
    pub cost: Cost,
    /// When the lowering is one all-parallel `kernel.generic` with one
    /// result (a producer fusion can inline into its consumers): its points
    /// and its FLOPs per point.
    pub single: Option<(f64, f64)>,
    /// The float widths of that one kernel's values, `[f32, f64]`: a
    /// kernel holding both runs without vectors (`cost::SCALAR_FACTOR`),
    /// so inlining a producer of the other width makes it slower.
    pub widths: [bool; 2],
    /// Per operand: how many times the op's kernels would evaluate a
    /// producer's body inlined at that operand (points × reads per point,
    /// summed over the kernels that read it, a kernel mixing float widths
    /// counted [`SCALAR_FACTOR`] times); `None` when a kernel other than a
    /// generic reads it (a contraction), which cannot absorb a producer.
    pub evals: Vec<Option<f64>>,
    /// Per operand: how many of the op's kernels read it.
    pub readers: Vec<usize>,
    /// Per operand: true when the op is [`OpNest::single`] and reads the
    /// operand's whole value once per point (a permutation of its dims),
    /// so a producer can instead be computed in it as an extra result.
    pub whole: Vec<bool>,
}

/// The summary of `kind` with `attrs` over `operands` producing `out`;
/// `None` when the op does not build (wrong types), does not lower, or
/// lowers to nothing that costs (a view, a constant).
pub fn nest_of(kind: OpKind, attrs: &Attrs, operands: &[Operand<'_>], out: &Type) -> Option<OpNest> {
    let mut f = Function::new("nest");
    let mut args: Vec<Option<ValueId>> = Vec::new();
    let mut values = Vec::new();
    for o in operands {
        match o {
            Operand::Value(t) => {
                let v = f.add_arg((*t).clone(), None, Attrs::new());
                args.push(Some(v));
                values.push(v);
            }
            Operand::Splat(a) => {
                let v = Builder::at_entry(&mut f).op(OpKind::Constant, &[], (*a).clone()).ok()?;
                args.push(None);
                values.push(v);
            }
        }
    }
    let r = Builder::at_entry(&mut f).op(kind, &values, attrs.clone()).ok()?;
    if f.ty(r) != out {
        return None;
    }
    Builder::at_entry(&mut f).ret(&[r]);
    super::lower::lower_traced(&mut f).ok()?;
    crate::Dce.run(&mut f);
    let position = |v: ValueId| -> Vec<usize> { (0..args.len()).filter(|&i| args[i] == Some(v)).collect() };
    let mut cost = Cost::default();
    let mut evals = vec![Some(0.0); operands.len()];
    let mut readers = vec![0usize; operands.len()];
    let mut whole = vec![false; operands.len()];
    let mut generics = Vec::new();
    for &o in f.body_ops() {
        let c = op_cost(&f, o);
        if c.kernels == 0 {
            continue;
        }
        cost = cost + c;
        let op = f.op(o);
        let read: Vec<usize> = op.operands.iter().flat_map(|&v| position(v)).collect();
        if op.kind != OpKind::Generic {
            for i in read {
                evals[i] = None;
                readers[i] += 1;
            }
            continue;
        }
        let (g, ops) = Generic::read(&f, o).ok()?;
        let factor = if mixes_float_widths(&f, &g, &ops) { SCALAR_FACTOR } else { 1.0 };
        let live = g.live();
        for (i, slot) in args.iter().enumerate() {
            let Some(v) = slot else { continue };
            let reads = g.body.iter().enumerate().filter(|(n, s)| live[*n] && matches!(s, Scalar::Operand(k) if ops[*k] == *v)).count();
            if reads > 0 {
                readers[i] += 1;
                evals[i] = evals[i].map(|e| e + points(&g) * reads as f64 * factor);
            }
        }
        generics.push((g, ops));
    }
    if cost.kernels == 0 {
        return None;
    }
    let mut single = None;
    let mut widths = [false; 2];
    if let [(g, ops)] = generics.as_slice()
        && cost.kernels == 1
        && !g.reduces()
        && g.extra.is_empty()
    {
        let outs = [f.ty(r_of(&f)).clone()];
        let c = generic_cost(&f, g, ops, &outs);
        single = Some((points(g), c.flops / points(g).max(1.0)));
        widths = float_widths(&f, g, ops);
        for (i, slot) in args.iter().enumerate() {
            let Some(v) = slot else { continue };
            whole[i] = ops.iter().zip(&g.maps).any(|(o, m)| o == v && is_permutation(m, g.rank()) && f.ty(*v).as_tensor().is_some_and(|t| t.rank() == g.rank()));
        }
    }
    Some(OpNest { cost, single, widths, evals, readers, whole })
}

/// The value the one-op function returns.
fn r_of(f: &Function) -> ValueId {
    f.returned_values()[0]
}

/// True when `m` reads each of `rank` dims exactly once, nothing else.
fn is_permutation(m: &dlc_ir::AffineMap, rank: usize) -> bool {
    let mut dims: Vec<usize> = m.results.iter().filter_map(|e| e.as_dim()).collect();
    dims.sort_unstable();
    m.results.len() == rank && dims == (0..rank).collect::<Vec<_>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{DType, TensorType};

    fn t(shape: &[u64]) -> Type {
        Type::Tensor(TensorType::fixed(shape, DType::F32))
    }

    #[test]
    fn an_elementwise_op_is_one_kernel_that_reads_each_operand_once_per_point() {
        let (a, b) = (t(&[4, 8]), t(&[8]));
        let n = nest_of(OpKind::Add, &Attrs::new(), &[Operand::Value(&a), Operand::Value(&b)], &a).unwrap();
        assert_eq!(n.single, Some((32.0, 1.0)));
        assert_eq!(n.evals, vec![Some(32.0), Some(32.0)]);
        assert_eq!(n.readers, vec![1, 1]);
        assert_eq!(n.whole, vec![true, false], "the [8] operand is broadcast, not read whole");
        assert_eq!(n.cost.bytes, (32.0 + 8.0 + 32.0) * 4.0);
    }

    #[test]
    fn a_softmax_reads_its_input_in_two_kernels_and_absorbs_a_producer_in_both() {
        let x = t(&[4, 8]);
        let attrs = Attrs::from([("axis".to_string(), dlc_ir::Attr::Int(1))]);
        let n = nest_of(OpKind::Softmax, &attrs, &[Operand::Value(&x)], &x).unwrap();
        assert!(n.single.is_none());
        assert_eq!(n.readers, vec![2], "the row max and exp(x - max) read x");
        assert_eq!(n.evals, vec![Some(64.0)]);
    }

    #[test]
    fn a_contraction_cannot_absorb_and_a_splat_is_not_read() {
        let (a, w) = (t(&[4, 8]), t(&[8, 3]));
        let n = nest_of(OpKind::Matmul, &Attrs::new(), &[Operand::Value(&a), Operand::Value(&w)], &t(&[4, 3])).unwrap();
        assert_eq!(n.evals, vec![None, None]);
        let c = Attrs::from([("value".to_string(), dlc_ir::Attr::Dense(dlc_ir::DenseAttr { ty: TensorType::fixed(&[], DType::F32), data: dlc_ir::DenseData::Float(vec![2.0]) }))]);
        let m = nest_of(OpKind::Mul, &Attrs::new(), &[Operand::Value(&a), Operand::Splat(&c)], &a).unwrap();
        assert_eq!(m.readers, vec![1, 0]);
        assert_eq!(m.cost.bytes, 64.0 * 4.0);
    }
}
