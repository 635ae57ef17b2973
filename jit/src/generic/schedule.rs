//! What the code generator decides about a structured kernel before it
//! emits anything: how each operand's address moves along each loop dim
//! (as far as compile time can know without shapes), which reads need a
//! bounds check, where the accumulator lives, which adjacent dims a call may
//! merge, and how the innermost loop runs.
//!
//! The address of an operand is affine in the loop indices (its map is
//! affine and its layout row-major), so one stride per loop dim and one
//! offset describe it; their values depend on the shapes and are computed
//! per call (`launch.rs`). What the code needs at compile time is only their
//! shape: a stride that is 0 (the operand does not depend on the dim) or 1
//! (the dim indexes the operand's last dim with coefficient 1: contiguous)
//! is known without shapes, and those are the two that vectorize.

use crate::dag::{Node, NodeId};
use crate::generic::spec::{GenericSpec, IterKind};
use crate::plan::{Fused, Plan};
use cranelift_codegen::ir::Type;
use dlc_ir::{AffineMap, OpKind};

/// How an operand's address moves along one loop dim.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Not at all: the operand does not depend on the dim.
    Zero,
    /// By one element: the dim indexes the operand's last dim, coefficient 1.
    One,
    /// By a stride only a call knows.
    Runtime,
}

/// A bounds check: one map result of a padded input that is not a plain
/// dim, or is one listed in its `checked_dims`. Other plain dims are checked
/// per call instead, like unpadded reads.
#[derive(Clone, Debug)]
pub(crate) struct Check {
    /// The input operand.
    pub input: usize,
    /// Which of its map's results (its dim).
    pub result: usize,
    /// The result's coefficient on each loop dim.
    pub coeffs: Vec<i64>,
}

/// The accumulation a vector reduction performs lane by lane.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fold {
    /// `acc + f(…)`.
    Add,
    /// `maximum(acc, f(…))`.
    Max,
    /// `minimum(acc, f(…))`.
    Min,
}

impl Fold {
    /// The value each lane starts from: folding it in changes nothing
    /// (`-0.0 + x` is `x` for every `x`, -0 included).
    pub fn identity(self) -> f64 {
        match self {
            Fold::Add => -0.0,
            Fold::Max => f64::NEG_INFINITY,
            Fold::Min => f64::INFINITY,
        }
    }
}

/// How the innermost loop runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Inner {
    /// One element per iteration.
    Scalar,
    /// A parallel dim on vectors of this type, then a scalar tail; inputs
    /// with a run-time stride along it are gathered lane by lane, and an
    /// output with one is scattered.
    Map(Type),
    /// A reduction dim folded into one vector of partial accumulators,
    /// combined into the accumulator after the loop, then a scalar tail.
    Reduce(Type, Fold),
    /// An f32 term summed into an f64 accumulator (`acc + cast(t)`, the
    /// widened sums of `lower-kernels`): the term on `f32x4`, its halves
    /// promoted into two `f64x2` partial sums, then a scalar tail.
    ReduceWiden(NodeId),
    /// The same sum along a parallel innermost dim, the reduction outside
    /// it (a bias gradient: a column sum over the batch): the term on
    /// `f32x4`, its halves promoted and added to two `f64x2` vectors of
    /// four consecutive output elements, then a scalar tail. Each element
    /// still takes its terms one at a time in the reduction's order, so the
    /// sums are the scalar loop's, bit for bit.
    MapWiden(NodeId),
}

/// The compile-time decisions for one spec.
#[derive(Debug)]
pub(crate) struct Schedule {
    /// Liveness, fma contraction and the body's vector type.
    pub plan: Plan,
    /// Per input: read by the live body.
    pub live: Vec<bool>,
    /// Per operand (the inputs, then the outputs) and loop dim.
    pub steps: Vec<Vec<Step>>,
    /// The bounds checks of live inputs.
    pub checks: Vec<Check>,
    /// Per adjacent pair `(k, k+1)`: a call may merge the two loops when
    /// the strides allow (same iterator kind, no check reads their indices).
    pub mergeable: Vec<bool>,
    /// The first dim of the trailing run of reduction dims (the rank when
    /// the last dim is parallel): the accumulator lives in a register over
    /// the loops from there in.
    pub trailing: usize,
    /// A reduction dim comes before a parallel one, so output elements are
    /// revisited between other elements' updates: the call fills the output
    /// with `init` first and the loops read-modify-write it.
    pub prefill: bool,
    /// The body reads the accumulator.
    pub acc_live: bool,
    /// The innermost loop.
    pub inner: Inner,
    /// Per input: its map indexes its last (contiguous) dim with twice the
    /// innermost loop's index, and nothing else of it moves along that dim
    /// (a 2×2 stride-2 pooling tap): its run-time stride is two elements,
    /// so a vector of it is two vector loads and one shuffle (the even
    /// elements) rather than a load per lane. Unpadded inputs only.
    pub pairs: Vec<bool>,
}

/// Whether `map` moves along dim `k` by two elements of its last dim alone.
fn by_pairs(map: &AffineMap, k: usize) -> bool {
    let users: Vec<(usize, i64)> = map.results.iter().enumerate().map(|(j, e)| (j, e.coefficient(k))).filter(|&(_, c)| c != 0).collect();
    matches!(users.as_slice(), [(j, 2)] if *j + 1 == map.results.len())
}

/// How `map` moves along dim `k`.
fn step_of(map: &AffineMap, k: usize) -> Step {
    let users: Vec<(usize, i64)> = map.results.iter().enumerate().map(|(j, e)| (j, e.coefficient(k))).filter(|&(_, c)| c != 0).collect();
    match users.as_slice() {
        [] => Step::Zero,
        [(j, 1)] if *j + 1 == map.results.len() => Step::One,
        _ => Step::Runtime,
    }
}

impl Schedule {
    /// Decides for `spec`; `fma` as in [`Plan::new`].
    pub fn new(spec: &GenericSpec, fma: bool) -> Schedule {
        let dag = spec.dag();
        let outputs: Vec<NodeId> = spec.outputs().iter().map(|o| o.node).collect();
        let plan = Plan::for_outputs(dag, &outputs, fma);
        let rank = spec.rank();
        let n_in = spec.inputs().len();
        let mut live = vec![false; n_in];
        let mut acc_live = false;
        for (i, node) in dag.nodes.iter().enumerate() {
            match (plan.live[i], node) {
                (true, Node::Input(k)) => live[*k] = true,
                (true, Node::Acc) => acc_live = true,
                _ => {}
            }
        }
        let maps = spec.inputs().iter().map(|i| &i.map).chain(spec.outputs().iter().map(|o| &o.map));
        let steps: Vec<Vec<Step>> = maps.map(|m| (0..rank).map(|k| step_of(m, k)).collect()).collect();
        let mut checks = Vec::new();
        for (i, input) in spec.inputs().iter().enumerate() {
            if !live[i] || input.pad.is_none() {
                continue;
            }
            for (j, e) in input.map.results.iter().enumerate() {
                if e.as_dim().is_none() || input.checked_dims.contains(&j) {
                    checks.push(Check { input: i, result: j, coeffs: (0..rank).map(|k| e.coefficient(k)).collect() });
                }
            }
        }
        let iters = spec.iterators();
        let mergeable = (0..rank - 1)
            .map(|k| iters[k] == iters[k + 1] && checks.iter().all(|c| c.coeffs[k] == 0 && c.coeffs[k + 1] == 0))
            .collect();
        let mut trailing = rank;
        while trailing > 0 && iters[trailing - 1] == IterKind::Reduction {
            trailing -= 1;
        }
        let prefill = iters[..trailing].contains(&IterKind::Reduction);
        let k = rank - 1;
        let contiguous = (0..n_in).all(|i| !live[i] || steps[i][k] != Step::Runtime);
        // An input strided along the innermost parallel dim (a pooling tap,
        // a transposed read) is gathered lane by lane into a vector, which
        // pays when the body computes something (vector ops on 4 lanes for
        // the price of one): a plain copy stays scalar.
        let computes = dag.nodes.iter().enumerate().any(|(i, n)| plan.live[i] && matches!(n, Node::Op { .. }));
        let gatherable = (0..n_in).all(|i| !live[i] || steps[i][k] != Step::Runtime || spec.inputs()[i].dtype.is_float());
        let unchecked = checks.iter().all(|c| c.coeffs[k] == 0);
        // A strided output (a loop order chosen for a long innermost dim,
        // writing every other element) is scattered lane by lane, likewise.
        let out_ok = spec.outputs().iter().enumerate().all(|(r, o)| {
            let step = steps[n_in + r][k];
            step == Step::One || computes && !spec.has_reduction() && o.dtype.is_float() && step == Step::Runtime
        });
        let inner = match (plan.vector, unchecked, iters[k]) {
            (Some(v), true, IterKind::Parallel) if out_ok && (contiguous || computes && gatherable) => Inner::Map(v),
            (Some(v), true, IterKind::Reduction) if contiguous => match fold(spec, &plan) {
                Some(f) => Inner::Reduce(v, f),
                None => Inner::Scalar,
            },
            (None, true, IterKind::Reduction) if contiguous => widened_term(spec, &plan, fma).map_or(Inner::Scalar, Inner::ReduceWiden),
            (None, true, IterKind::Parallel) if contiguous && steps[n_in][k] == Step::One => widened_term(spec, &plan, fma).map_or(Inner::Scalar, Inner::MapWiden),
            _ => Inner::Scalar,
        };
        let pairs = spec.inputs().iter().map(|i| i.pad.is_none() && i.dtype.is_float() && by_pairs(&i.map, k)).collect();
        Schedule { plan, live, steps, checks, mergeable, trailing, prefill, acc_live, inner, pairs }
    }

    /// Lanes of the innermost loop's vectors, 1 when it runs scalar.
    pub fn lanes(&self) -> u32 {
        match self.inner {
            Inner::Scalar => 1,
            Inner::Map(v) | Inner::Reduce(v, _) => v.lane_count(),
            Inner::ReduceWiden(_) | Inner::MapWiden(_) => 4,
        }
    }
}

/// The f32 term `t` when the body is `acc + cast_f64(t)` into an f64
/// accumulator, the accumulator read nowhere else, and `t` computed from
/// f32 values alone (so it vectorizes as `f32x4`).
fn widened_term(spec: &GenericSpec, plan: &Plan, fma: bool) -> Option<NodeId> {
    let dag = spec.dag();
    let root = spec.result();
    if spec.out_dtype() != dlc_ir::DType::F64 || plan.fused[root.0 as usize].is_some() {
        return None;
    }
    let Node::Op { kind: OpKind::Add, args, .. } = &dag.nodes[root.0 as usize] else { return None };
    let acc = dag.nodes.iter().position(|n| *n == Node::Acc).map(|i| NodeId(i as u32))?;
    if plan.uses[acc.0 as usize] != 1 || !args.contains(&acc) {
        return None;
    }
    let c = *args.iter().find(|&&a| a != acc)?;
    let Node::Op { kind: OpKind::Cast, args: cargs, .. } = &dag.nodes[c.0 as usize] else { return None };
    let t = *cargs.first()?;
    let term = Plan::new(dag, t, fma);
    (dag.dtype(t) == dlc_ir::DType::F32 && term.vector == Some(cranelift_codegen::ir::types::F32X4)).then_some(t)
}

/// The fold when the body is `acc ⊕ f(inputs)` with ⊕ an add, maximum or
/// minimum and the accumulator read nowhere else: then lanes can fold
/// separate partial results and combine them at the end (reassociating
/// the sum, which is the documented difference from the sequential order).
fn fold(spec: &GenericSpec, plan: &Plan) -> Option<Fold> {
    let dag = spec.dag();
    let root = spec.result();
    let Node::Op { kind, args, .. } = &dag.nodes[root.0 as usize] else { return None };
    let acc = dag.nodes.iter().position(|n| *n == Node::Acc).map(|i| NodeId(i as u32))?;
    if plan.uses[acc.0 as usize] != 1 {
        return None;
    }
    let fold = match kind {
        OpKind::Add => Fold::Add,
        OpKind::Maximum => Fold::Max,
        OpKind::Minimum => Fold::Min,
        _ => return None,
    };
    match plan.fused[root.0 as usize] {
        // `a·b + acc` as one fma: still a sum of per-lane terms.
        Some(Fused { c, neg_product: false, neg_addend: false, .. }) => (c == acc).then_some(fold),
        Some(_) => None,
        None => args.contains(&acc).then_some(fold),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generic::spec::GenericBuilder;
    use IterKind::{Parallel as P, Reduction as R};
    use dlc_ir::{Attrs, DType};

    fn map(text: &str) -> AffineMap {
        AffineMap::parse(text).unwrap()
    }

    #[test]
    fn steps_follow_the_maps() {
        let m = map("(d0, d1, d2) -> (d2, d0 * 2 + d1)");
        assert_eq!((0..3).map(|k| step_of(&m, k)).collect::<Vec<_>>(), vec![Step::Runtime, Step::One, Step::Runtime]);
        let m = map("(d0, d1) -> (d0, 0)");
        assert_eq!(step_of(&m, 1), Step::Zero);
    }

    #[test]
    fn stride_two_taps_are_read_as_pairs() {
        // A 2×2 stride-2 max-pool's taps (d3 the output column).
        let mut g = GenericBuilder::new(&[P, P, P, P], DType::F32).unwrap();
        let even = g.input(DType::F32, map("(d0, d1, d2, d3) -> (d0, d1, d2 * 2, d3 * 2)"), None).unwrap();
        let odd = g.input(DType::F32, map("(d0, d1, d2, d3) -> (d0, d1, d2 * 2 + 1, d3 * 2 + 1)"), None).unwrap();
        // Not pairs: stride 3, a column index also used elsewhere, a padded tap.
        let three = g.input(DType::F32, map("(d0, d1, d2, d3) -> (d0, d1, d2, d3 * 3)"), None).unwrap();
        let twice = g.input(DType::F32, map("(d0, d1, d2, d3) -> (d0, d3, d2, d3 * 2)"), None).unwrap();
        let padded = g.input(DType::F32, map("(d0, d1, d2, d3) -> (d0, d1, d2, d3 * 2)"), Some(0.0)).unwrap();
        let mut m = g.op(OpKind::Maximum, &[even, odd], Attrs::new()).unwrap();
        for x in [three, twice, padded] {
            m = g.op(OpKind::Maximum, &[m, x], Attrs::new()).unwrap();
        }
        let spec = g.finish(m, map("(d0, d1, d2, d3) -> (d0, d1, d2, d3)"), None).unwrap();
        let s = Schedule::new(&spec, true);
        assert_eq!(s.pairs, vec![true, true, false, false, false]);
    }

    #[test]
    fn the_bias_gradient_sums_contiguous_rows_on_vectors() {
        let mut g = GenericBuilder::new(&[R, P, R, R], DType::F32).unwrap();
        let x = g.input(DType::F32, map("(d0, d1, d2, d3) -> (d0, d1, d2, d3)"), None).unwrap();
        let acc = g.acc().unwrap();
        let s = g.op(OpKind::Add, &[acc, x], Attrs::new()).unwrap();
        let spec = g.finish(s, map("(d0, d1, d2, d3) -> (d1)"), Some(0.0)).unwrap();
        let s = Schedule::new(&spec, true);
        assert_eq!((s.trailing, s.prefill), (2, true));
        assert_eq!(s.mergeable, vec![false, false, true]);
        assert!(matches!(s.inner, Inner::Reduce(_, Fold::Add)));
    }

    #[test]
    fn padded_windows_are_checked_and_run_scalar() {
        let mut g = GenericBuilder::new(&[P, P, R], DType::F32).unwrap();
        let x = g.input(DType::F32, map("(d0, d1, d2) -> (d0, d1 + d2 - 1)"), Some(f64::NEG_INFINITY)).unwrap();
        let acc = g.acc().unwrap();
        let m = g.op(OpKind::Maximum, &[acc, x], Attrs::new()).unwrap();
        let spec = g.finish(m, map("(d0, d1, d2) -> (d0, d1)"), Some(f64::NEG_INFINITY)).unwrap();
        let s = Schedule::new(&spec, true);
        assert_eq!(s.checks.len(), 1);
        assert_eq!(s.checks[0].coeffs, vec![0, 1, 1]);
        assert_eq!(s.mergeable, vec![false, false]);
        assert_eq!(s.inner, Inner::Scalar);
        assert!(!s.prefill);
    }
}
