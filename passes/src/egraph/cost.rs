//! The extraction cost model, and extraction: which node each needed class
//! is computed by.
//!
//! A node costs its estimated time, in picoseconds, from the kernel level's
//! analytic model (`kernel::cost`): bytes moved (each distinct operand read
//! once, the result written once) at [`BYTES_PER_NS`], plus FLOPs at
//! [`FLOPS_PER_NS`], with a `?` batch counted as [`NOMINAL_BATCH`]. Per op:
//! - elementwise ops: their operation count per result element
//!   (`op_flops`: a transcendental function weighs 12, a division 4);
//! - `matmul`: `2·M·N·K`; `conv2d`: `2 · output elements · C·KH·KW`, and
//!   its two gradients the same multiply-adds; a fused `kernel.matmul` /
//!   `kernel.conv2d` also its epilogue, as the bias `add` and `relu` count;
//! - reductions: one operation per input element; `softmax`: a max, a
//!   subtraction, an exp, a sum and a division per element;
//!   `log_softmax`: the same without the division, plus one log per row;
//! - other movement (transpose, broadcast, slice, gather …): its bytes only;
//! - `reshape` (a view) and splat constants: free; leaves: free (their ops
//!   are kept as they are whatever is extracted).
//!
//! Costs are integers, so sums and comparisons are exact and the choice is
//! the same on every machine. Extraction first picks, per class, the node
//! with the least tree cost (a node plus its children's best costs), ties
//! broken by fewer ops, then by preferring a node of the input IR, then by
//! the node order; tree costs count a shared operand once per use and every
//! op as a kernel of its own, so a second step re-chooses the input's own
//! node for each class where that lowers the cost of the whole extracted
//! DAG with its kernels fused as the fusion plan would fuse them
//! ([`planned_cost`]: a value needed elsewhere anyway is free to reuse, an
//! intermediate a fused kernel never writes costs no bytes). That cost is
//! computed in `f64` in a fixed order and rounded to picoseconds, so it too
//! is the same on every machine.

use super::analysis::Graph;
use super::lang::Dl;
use crate::kernel::cost::{BYTES_PER_NS, FLOPS_PER_NS, NOMINAL_BATCH, bytes, elements, op_flops};
use dlc_ir::{Attrs, AttrView, Category, Dim, Function, OpId, OpKind, Type};
use egg::{Id, Language};
use super::plan;
use crate::kernel::nest::{OpNest, Operand, nest_of};
use std::collections::{HashMap, HashSet};

/// The estimated time of `kind` with `attrs` reading `operands` (in the
/// op's order: a contraction's FLOPs read its weight by position) and
/// producing `out`, in picoseconds; `distinct` says which operands are
/// distinct values (each read once: `x * x` reads `x` once).
pub fn op_cost(kind: OpKind, attrs: &Attrs, operands: &[&Type], distinct: &[bool], out: &Type) -> u64 {
    let dims = |t: &Type| -> Vec<f64> {
        t.as_tensor().map_or(Vec::new(), |t| t.shape.iter().map(|d| match d {
            Dim::Static(n) => *n as f64,
            Dim::Dynamic => NOMINAL_BATCH as f64,
        }).collect())
    };
    let n_out = out.as_tensor().map_or(1.0, elements);
    // A fused convolution's own result, before its max-pooling.
    let pool = if kind == OpKind::KernelConv2d { dlc_ir::registry::kernel::fused_max_pool(&AttrView::new(kind, attrs)).ok().flatten() } else { None };
    let n_conv = match &pool {
        Some(_) => {
            let types: Vec<Type> = operands.iter().map(|t| (*t).clone()).collect();
            dlc_ir::registry::kernel::conv2d_unpooled(&types, &AttrView::new(kind, attrs)).ok().as_ref().and_then(|t| t.as_tensor()).map_or(n_out, elements)
        }
        None => n_out,
    };
    let n_in = operands.first().and_then(|t| t.as_tensor()).map_or(1.0, elements);
    let io = operands.iter().zip(distinct).filter(|(_, d)| **d).map(|(t, _)| bytes(t)).sum::<f64>() + bytes(out);
    let view = AttrView::new(kind, attrs);
    let flops = match kind {
        OpKind::Constant | OpKind::Reshape => return 0,
        OpKind::Matmul | OpKind::KernelMatmul => {
            let a = operands.first().map(|t| dims(t)).unwrap_or_default();
            let ta = view.bool("transpose_a").unwrap_or(false);
            let k = match a.len() {
                r if r >= 2 => a[if ta { r - 2 } else { r - 1 }],
                _ => 1.0,
            };
            2.0 * n_out * k
        }
        OpKind::Conv2d | OpKind::KernelConv2d => {
            let w = operands.get(1).map(|t| dims(t)).unwrap_or_default();
            2.0 * n_conv * w.iter().skip(1).product::<f64>()
        }
        // The convolution's multiply-adds, from the output gradient `g`:
        // each of its elements meets C·KH·KW weights (input gradient,
        // `(g, w)`), or every element of one output channel's slice of the
        // result (weight gradient, `(x, g)`: C·KH·KW per element of g).
        OpKind::Conv2dGradInput => {
            let (g, w) = (operands.first().map(|t| dims(t)).unwrap_or_default(), operands.get(1).map(|t| dims(t)).unwrap_or_default());
            2.0 * g.iter().product::<f64>() * w.iter().skip(1).product::<f64>()
        }
        OpKind::Conv2dGradWeight => {
            let g = operands.get(1).map(|t| dims(t)).unwrap_or_default();
            2.0 * g.iter().product::<f64>() * dims(out).iter().skip(1).product::<f64>()
        }
        // The convolution, recomputed, and its weight gradient: twice its
        // multiply-adds.
        OpKind::KernelConv2dGradWeight => 2.0 * 2.0 * recomputed(operands, &view) * dims(out).iter().skip(1).product::<f64>(),
        // Routed: the windows' gradients (the pooled gradient's elements)
        // times C·KH·KW; a shape not run routed multiplies the full-size
        // gradient (y's elements).
        OpKind::KernelRoutedConv2dGradInput | OpKind::KernelRoutedConv2dGradWeight => {
            let (g, taps) = match kind {
                OpKind::KernelRoutedConv2dGradInput => (operands.get(1), operands.get(2).map(|w| dims(w).iter().skip(1).product::<f64>())),
                _ => (operands.get(2), Some(dims(out).iter().skip(1).product::<f64>())),
            };
            let y = operands.get(if kind == OpKind::KernelRoutedConv2dGradInput { 0 } else { 1 });
            let multiplied = if routed_serves(kind, operands, &view) { g } else { y };
            2.0 * multiplied.map_or(0.0, |t| dims(t).iter().product::<f64>()) * taps.unwrap_or(0.0)
        }
        OpKind::Softmax => n_out * (op_flops(OpKind::Exp) + op_flops(OpKind::Div) + 3.0),
        OpKind::LogSoftmax => {
            let d = dims(out);
            let axis = view.int("axis").unwrap_or(-1);
            let axis = if axis < 0 { axis + d.len() as i64 } else { axis };
            let row = d.get(axis as usize).copied().unwrap_or(1.0).max(1.0);
            n_out * (op_flops(OpKind::Exp) + 3.0) + n_out / row * op_flops(OpKind::Log)
        }
        k if k.is_elementwise() => n_out * op_flops(k),
        k if k.category() == Category::Reduction => n_in,
        _ => 0.0,
    };
    // A fused contraction's epilogue: its bias add and ReLU per element,
    // as the separate ops would count them.
    let epilogue = match kind {
        OpKind::KernelMatmul | OpKind::KernelConv2d => {
            let bias = if operands.len() > 2 { op_flops(OpKind::Add) } else { 0.0 };
            let relu = if view.bool("relu").unwrap_or(false) { op_flops(OpKind::Relu) } else { 0.0 };
            // A fused max-pool: one maximum per tap of each window.
            let taps = pool.as_ref().map_or(0.0, |p| AttrView::new(OpKind::MaxPool2d, p).ints("kernel").map_or(0.0, |k| k.iter().product::<i64>() as f64));
            n_conv * (bias + relu) + n_out * taps * op_flops(OpKind::Maximum)
        }
        // The recomputed convolution's bias, and a comparison per tap of
        // each window.
        OpKind::KernelConv2dGradWeight => {
            let bias = if operands.len() > 3 { op_flops(OpKind::Add) } else { 0.0 };
            recomputed(operands, &view) * (bias + op_flops(OpKind::Maximum))
        }
        _ => 0.0,
    };
    // A shape not run in one pass writes and reads the convolution's output
    // and its gradient after all.
    let io = match kind {
        OpKind::KernelConv2dGradWeight if !one_pass(operands, &view) => io + 4.0 * recomputed(operands, &view) * out.as_tensor().map_or(4.0, |t| t.dtype.size_bytes() as f64),
        // ... and a shape not run routed writes and reads the full-size
        // gradient (y's size).
        OpKind::KernelRoutedConv2dGradInput | OpKind::KernelRoutedConv2dGradWeight if !routed_serves(kind, operands, &view) => {
            io + 2.0 * operands.get(if kind == OpKind::KernelRoutedConv2dGradInput { 0 } else { 1 }).map_or(0.0, |t| bytes(t))
        }
        _ => io,
    };
    (1000.0 * (io / BYTES_PER_NS + (flops + epilogue) / FLOPS_PER_NS)).round() as u64
}

/// The elements of the convolution a `kernel.conv2d_grad_weight`
/// recomputes (`x` and `w` are its operands 0 and 2).
fn recomputed(operands: &[&Type], view: &AttrView) -> f64 {
    match (operands.first(), operands.get(2)) {
        (Some(&x), Some(&w)) => dlc_ir::registry::kernel::conv2d_unpooled(&[x.clone(), w.clone()], view).ok().as_ref().and_then(|t| t.as_tensor()).map_or(0.0, elements),
        _ => 0.0,
    }
}

/// Whether a `kernel.conv2d_grad_weight` of these operands runs in one pass.
fn one_pass(operands: &[&Type], view: &AttrView) -> bool {
    let types: Vec<Type> = operands.iter().map(|t| (*t).clone()).collect();
    dlc_ir::registry::kernel::pooled_grad_weight_in_one_pass(&types, view)
}

/// Whether a routed gradient op of these operands runs routed.
fn routed_serves(kind: OpKind, operands: &[&Type], view: &AttrView) -> bool {
    let types: Vec<Type> = operands.iter().map(|t| (*t).clone()).collect();
    dlc_ir::registry::kernel::routed_op_serves(kind, &types, view)
}

/// The cost of op `o` of `f`, as [`op_cost`] counts it.
pub fn ir_op_cost(f: &Function, o: OpId) -> u64 {
    let op = f.op(o);
    let types: Vec<&Type> = op.operands.iter().map(|&v| f.ty(v)).collect();
    let distinct = first_uses(&op.operands);
    op.results.first().map_or(0, |&r| op_cost(op.kind, &op.attrs, &types, &distinct, f.ty(r)))
}

/// Per operand: true at its first occurrence in `xs`.
pub fn first_uses<T: PartialEq>(xs: &[T]) -> Vec<bool> {
    xs.iter().enumerate().map(|(i, x)| !xs[..i].contains(x)).collect()
}

/// The cost of one e-node of `g`.
pub fn node_cost(g: &Graph, class: Id, node: &Dl) -> u64 {
    match node {
        Dl::Leaf(_) => 0,
        Dl::Op { kind, attrs, children } => {
            let classes: Vec<Id> = children.iter().map(|&c| g.find(c)).collect();
            let types: Vec<&Type> = classes.iter().map(|&c| &g[c].data.ty).collect();
            op_cost(*kind, attrs.attrs(), &types, &first_uses(&classes), &g[class].data.ty)
        }
    }
}

/// The chosen node of every class that has one, by canonical class id.
pub struct Choice {
    nodes: Vec<Option<Dl>>,
}

impl Choice {
    /// The node that computes `class`.
    pub fn node(&self, g: &Graph, class: Id) -> &Dl {
        self.nodes[usize::from(g.find(class))].as_ref().expect("every class reachable from a root has a choice")
    }
}

/// A node's rank in tree extraction: its tree cost, its tree's op count,
/// then 0 for a node of the input IR and 1 for a new one.
type TreeKey = (u128, u64, u8);

/// Picks a node per class for the values `roots`; `original` holds the
/// input IR's nodes (canonical), which win ties.
pub fn extract(g: &Graph, roots: &[Id], original: &HashSet<Dl>) -> Choice {
    let n = g.classes().map(|c| usize::from(c.id)).max().map_or(0, |m| m + 1);
    let mut best: Vec<Option<(TreeKey, Dl)>> = vec![None; n];
    loop {
        let mut changed = false;
        for class in g.classes() {
            for node in &class.nodes {
                let mut key = (u128::from(node_cost(g, class.id, node)), u64::from(node.kind().is_some()), u8::from(!original.contains(node)));
                let mut complete = true;
                for &c in node.children() {
                    match &best[usize::from(g.find(c))] {
                        Some(((cc, co, _), _)) => key = (key.0.saturating_add(*cc), key.1.saturating_add(*co), key.2),
                        None => complete = false,
                    }
                }
                let slot = &mut best[usize::from(class.id)];
                if complete && slot.as_ref().is_none_or(|(k, _)| key < *k) {
                    *slot = Some((key, node.clone()));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut choice = Choice { nodes: best.into_iter().map(|b| b.map(|(_, n)| n)).collect() };
    refine(g, roots, original, &mut choice);
    choice
}

/// The classes the choice computes from `roots`, each once, operands
/// before their users; `None` when the choice is cyclic.
fn post_order(g: &Graph, roots: &[Id], choice: &Choice) -> Option<Vec<Id>> {
    let mut state = vec![0u8; choice.nodes.len()]; // 0 new, 1 on the stack, 2 done
    let mut order: Vec<Id> = Vec::new();
    // Iterative DFS: (class, children visited).
    for &r in roots {
        let mut stack = vec![(g.find(r), false)];
        while let Some((c, expanded)) = stack.pop() {
            let i = usize::from(c);
            if expanded {
                state[i] = 2;
                order.push(c);
                continue;
            }
            match state[i] {
                2 => continue,
                1 => return None,
                _ => {}
            }
            state[i] = 1;
            stack.push((c, true));
            for &ch in choice.nodes[i].as_ref()?.children() {
                let ch = g.find(ch);
                match state[usize::from(ch)] {
                    1 => return None,
                    0 => stack.push((ch, false)),
                    _ => {}
                }
            }
        }
    }
    Some(order)
}

/// E-nodes' lowering summaries, by class and node: what [`planned_cost`]
/// reads, built once per extraction.
pub type NestCache = HashMap<(Id, Dl), Option<OpNest>>;

/// The estimated time of the DAG the choice computes from `roots`, in
/// picoseconds, with its ops' kernels fused as the fusion plan
/// ([`super::plan`]) would fuse them: an intermediate that a fused kernel
/// keeps in registers costs no bytes. `None` when the choice is cyclic.
pub fn planned_cost(g: &Graph, roots: &[Id], choice: &Choice, cache: &mut NestCache) -> Option<u128> {
    let order = post_order(g, roots, choice)?;
    let mut graph = plan::Graph::default();
    let mut keys: Vec<(Id, Dl)> = Vec::new();
    for &c in &order {
        let node = choice.node(g, c);
        let Dl::Op { kind, attrs, children } = node else { continue };
        if *kind == OpKind::Constant {
            continue;
        }
        let operands = children
            .iter()
            .map(|&ch| {
                let ch = g.find(ch);
                let operand = match choice.node(g, ch) {
                    Dl::Op { kind: OpKind::Constant, attrs, .. } if plan::is_rank0_splat(attrs.attrs()) => Operand::Splat(attrs.attrs()),
                    _ => Operand::Value(&g[ch].data.ty),
                };
                (usize::from(ch), operand)
            })
            .collect();
        graph.items.push(plan::Item { kind: *kind, attrs: attrs.attrs(), operands, result: usize::from(c), out: &g[c].data.ty });
        keys.push((c, node.clone()));
    }
    graph.outside = roots.iter().map(|&r| (usize::from(g.find(r)), graph.items.len())).collect();
    let planned = plan::plan_graph(&graph, &mut |i| {
        let it = &graph.items[i];
        cache
            .entry(keys[i].clone())
            .or_insert_with(|| {
                let operands: Vec<Operand<'_>> = it.operands.iter().map(|(_, o)| o.clone()).collect();
                nest_of(it.kind, it.attrs, &operands, it.out)
            })
            .clone()
    });
    Some((planned.after.time_ns() * 1000.0).round() as u128)
}

/// The classes the choice computes from `roots` (by index).
fn reachable(g: &Graph, roots: &[Id], choice: &Choice) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut todo: Vec<Id> = roots.iter().map(|&r| g.find(r)).collect();
    while let Some(c) = todo.pop() {
        if seen.insert(usize::from(c))
            && let Some(n) = &choice.nodes[usize::from(c)]
        {
            todo.extend(n.children().iter().map(|&ch| g.find(ch)));
        }
    }
    seen
}

/// Where a class's tree-cheapest node is not the input's, tries the input's
/// node instead (with the input's nodes below it where the choice left
/// them) and keeps it when the whole DAG, fused as planned
/// ([`planned_cost`]), gets cheaper.
fn refine(g: &Graph, roots: &[Id], original: &HashSet<Dl>, choice: &mut Choice) {
    let mut cache = NestCache::new();
    let Some(mut cost) = planned_cost(g, roots, choice, &mut cache) else { return };
    for _ in 0..2 {
        let mut improved = false;
        for class in g.classes() {
            let i = usize::from(class.id);
            if choice.nodes[i].as_ref().is_none_or(|n| original.contains(n)) {
                continue;
            }
            for node in class.nodes.iter().filter(|n| original.contains(*n)) {
                // The input's node, and below it the input's nodes for the
                // classes nothing computes yet: a fused node that duplicates
                // work (a pooled convolution beside the convolution it pools)
                // is undone only with what the input computed under it.
                let computed = reachable(g, roots, choice);
                let mut previous = vec![(i, choice.nodes[i].replace(node.clone()))];
                let mut todo: Vec<Id> = node.children().to_vec();
                while let Some(ch) = todo.pop() {
                    let k = usize::from(g.find(ch));
                    if computed.contains(&k) || previous.iter().any(|(j, _)| *j == k) || choice.nodes[k].as_ref().is_none_or(|n| original.contains(n)) {
                        continue;
                    }
                    if let Some(o) = g[g.find(ch)].nodes.iter().find(|n| original.contains(*n)) {
                        todo.extend(o.children().iter().copied());
                        previous.push((k, choice.nodes[k].replace(o.clone())));
                    }
                }
                match planned_cost(g, roots, choice, &mut cache) {
                    Some(c) if c < cost => {
                        cost = c;
                        improved = true;
                        break;
                    }
                    _ => {
                        for (k, p) in previous.into_iter().rev() {
                            choice.nodes[k] = p;
                        }
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
}
