//! Decisions taken before emitting code: which nodes are live, which
//! multiplies fold into an add as one `fma`, and whether the innermost loop
//! runs on 128-bit vectors.

use crate::dag::{Dag, Node, NodeId};
use cranelift_codegen::ir::{Type, types};
use dlc_ir::{DType, OpKind};

/// An add or sub that absorbs a multiply: `±(a·b) ± c` as one `fma`.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Fused {
    /// The multiply's operands.
    pub a: NodeId,
    /// The multiply's operands.
    pub b: NodeId,
    /// The addend.
    pub c: NodeId,
    /// `c - a·b`: the product is negated.
    pub neg_product: bool,
    /// `a·b - c`: the addend is negated.
    pub neg_addend: bool,
}

/// What to emit for one spec.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Reachable from the outputs.
    pub live: Vec<bool>,
    /// A multiply folded into its only user's `fma`: not emitted itself.
    pub absorbed: Vec<bool>,
    /// For adds and subs: the multiply they absorb.
    pub fused: Vec<Option<Fused>>,
    /// The vector type of the innermost loop, if the body's types allow
    /// one (the loop nest may still run scalar, for its own reasons).
    pub vector: Option<Type>,
    /// How many live ops (and outputs) use each node.
    pub uses: Vec<usize>,
}

impl Plan {
    /// Plans the body `dag` computing `output`; `fma` says whether the CPU
    /// has fused multiply-add (without it, contracting would change nothing
    /// but the rounding).
    pub fn new(dag: &Dag, output: NodeId, fma: bool) -> Plan {
        Plan::for_outputs(dag, &[output], fma)
    }

    /// [`Plan::new`] for a body computing several outputs. An output counts
    /// as a use, so a multiply that is also written out is not folded away.
    pub fn for_outputs(dag: &Dag, outputs: &[NodeId], fma: bool) -> Plan {
        let n = dag.nodes.len();
        let mut live = vec![false; n];
        let mut uses = vec![0usize; n];
        for o in outputs {
            live[o.0 as usize] = true;
            uses[o.0 as usize] += 1;
        }
        for i in (0..n).rev() {
            if let (true, Node::Op { args, .. }) = (live[i], &dag.nodes[i]) {
                for a in args {
                    live[a.0 as usize] = true;
                    uses[a.0 as usize] += 1;
                }
            }
        }
        let mut absorbed = vec![false; n];
        let mut fused = vec![None; n];
        if fma {
            for i in 0..n {
                let Node::Op { kind: kind @ (OpKind::Add | OpKind::Sub), args, .. } = &dag.nodes[i] else { continue };
                if !live[i] {
                    continue;
                }
                let single_mul = |x: NodeId| {
                    let k = x.0 as usize;
                    match &dag.nodes[k] {
                        Node::Op { kind: OpKind::Mul, args, .. } if uses[k] == 1 && !absorbed[k] => Some((args[0], args[1])),
                        _ => None,
                    }
                };
                let plan = match (single_mul(args[0]), single_mul(args[1])) {
                    (Some((a, b)), _) => Some((args[0], Fused { a, b, c: args[1], neg_product: false, neg_addend: *kind == OpKind::Sub })),
                    (None, Some((a, b))) => Some((args[1], Fused { a, b, c: args[0], neg_product: *kind == OpKind::Sub, neg_addend: false })),
                    (None, None) => None,
                };
                if let Some((mul, f)) = plan {
                    absorbed[mul.0 as usize] = true;
                    fused[i] = Some(f);
                }
            }
        }
        Plan { vector: vector_type(dag, outputs, &live), live, absorbed, fused, uses }
    }

    /// True when node `i` is emitted.
    pub fn emitted(&self, i: usize) -> bool {
        self.live[i] && !self.absorbed[i]
    }
}

/// The innermost loop is vectorized when every live float value has one
/// width (lanes of mixed widths would need 64-bit vectors Cranelift lacks)
/// and no i1 buffer is read or written (bytes would need widening).
fn vector_type(dag: &Dag, outputs: &[NodeId], live: &[bool]) -> Option<Type> {
    let mut width = None;
    for (i, node) in dag.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let d = dag.dtype(NodeId(i as u32));
        // i1 and i64 inputs run scalar (no vector loads of them).
        if let Node::Input(_) = node
            && matches!(d, DType::I1 | DType::I64)
        {
            return None;
        }
        if d == DType::I1 {
            continue;
        }
        if *width.get_or_insert(d) != d {
            return None;
        }
    }
    if outputs.iter().any(|&o| dag.dtype(o) == DType::I1) {
        return None;
    }
    match width? {
        DType::F32 => Some(types::F32X4),
        _ => Some(types::F64X2),
    }
}
