//! The fusion plan: which `dl` ops' kernels fuse into which, decided on the
//! graph the extraction wrote back, by the cost model, and followed by
//! `fuse-kernels` (`kernel::to_kernels_planned`).
//!
//! Each op is summarized by its own lowering ([`crate::kernel::nest`]): the
//! cost of its kernels, whether it is one all-parallel kernel (a producer
//! that can be inlined), and how often its kernels would evaluate a producer
//! inlined at each operand. Two decisions, in the order `fuse-kernels` runs
//! them, each swept from the last op to the first until nothing changes:
//!
//! 1. **Inline** a one-kernel all-parallel op into every op that reads its
//!    result, when the estimated time of the consumers with its body inlined
//!    (its operands read instead of its result, its FLOPs once per
//!    evaluation) is not above that of the op and its consumers apart. A
//!    returned result, or one a contraction reads, is never inlined away.
//!    An elementwise chain, a reduction's prologue, a pooling window's
//!    activation and a normalization's input so become one kernel.
//! 2. **Merge** a one-kernel all-parallel op whose result is needed
//!    elsewhere too (returned, or read by a contraction) into its one
//!    consumer that can absorb it, when that consumer is one all-parallel
//!    kernel over the same points reading the whole result once per point
//!    and every other reader comes after it: the consumer computes the value
//!    as an extra result. A parameter's optimizer update so becomes one
//!    kernel writing the parameter and its state.
//!
//! Ops whose lowering is several kernels (softmax, mean) are one node here:
//! the edges between their own kernels, and from their kernels to others,
//! are left to `fuse-kernels`' own cost gate, as is every fusion when no
//! plan is given (`dlc opt --fuse-kernels`, `--pipeline kernel`).

use crate::kernel::cost::{Cost, SCALAR_FACTOR, bytes};
use crate::kernel::nest::{OpNest, Operand, nest_of};
use dlc_ir::{AttrView, Attrs, Category, Function, OpId, OpKind, Type, ValueDef, ValueId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub use crate::kernel::fuse::Fuse;

/// The plan for one function: a decision for each op the plan covers
/// (`None`: a kernel of its own), and the estimated cost before and after.
#[derive(Clone, Debug, Default)]
pub struct FusionPlan {
    /// The one-kernel ops the plan covers, by op id of the function it was
    /// made for. Ops not listed are left to `fuse-kernels`' cost gate.
    pub ops: BTreeMap<OpId, Option<Fuse>>,
    /// Every op's kernels on their own.
    pub before: Cost,
    /// After the plan.
    pub after: Cost,
}

impl FusionPlan {
    /// How many ops are inlined and merged.
    pub fn counts(&self) -> (usize, usize) {
        let n = |d: Fuse| self.ops.values().filter(|x| **x == Some(d)).count();
        (n(Fuse::Inline), n(Fuse::Merge))
    }
}

impl fmt::Display for FusionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (inline, merge) = self.counts();
        write!(
            f,
            "plan by dl op: {} inlined into their consumers, {} merged as extra results; {} kernels -> {}, est. {:.1} -> {:.1} us",
            inline,
            merge,
            self.before.kernels,
            self.after.kernels,
            self.before.time_ns() / 1e3,
            self.after.time_ns() / 1e3
        )
    }
}

/// A value of a graph to plan: a number the caller chooses (a `ValueId`'s,
/// an e-class id).
pub type Value = usize;

/// One op of a graph to plan.
#[derive(Clone, Debug)]
pub struct Item<'a> {
    /// Which op.
    pub kind: OpKind,
    /// Its attributes.
    pub attrs: &'a Attrs,
    /// Its operands: each value, and its type or the splat constant it is.
    pub operands: Vec<(Value, Operand<'a>)>,
    /// The value it computes.
    pub result: Value,
    /// Its type.
    pub out: &'a Type,
}

/// A graph to plan: its ops in the order they run, and the values read by
/// whatever is not one of them (the return, an op that does not lower),
/// each with the number of ops that run before that reader.
#[derive(Clone, Debug, Default)]
pub struct Graph<'a> {
    /// The ops, in order.
    pub items: Vec<Item<'a>>,
    /// Values read elsewhere, and where.
    pub outside: Vec<(Value, usize)>,
}

/// A graph's plan.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Per item: `None` when the plan does not cover it (its lowering is
    /// not one all-parallel kernel, or it does not lower), else its decision.
    pub decisions: Vec<Option<Option<Fuse>>>,
    /// Every item's kernels on their own.
    pub before: Cost,
    /// After the plan.
    pub after: Cost,
}

/// One value an op's kernels read.
#[derive(Clone, Debug)]
struct Read {
    value: Value,
    /// Evaluations of a producer inlined here (`None`: cannot absorb).
    evals: Option<f64>,
    /// Kernels reading it.
    readers: usize,
    /// Read whole, once per point (see `OpNest::whole`).
    whole: bool,
}

/// One op's state while planning.
#[derive(Clone, Debug)]
struct Node {
    item: usize,
    result: Value,
    cost: Cost,
    /// Points and FLOPs per point of its one all-parallel kernel.
    single: Option<(f64, f64)>,
    /// That kernel's float widths (see `OpNest::widths`).
    widths: [bool; 2],
    reads: Vec<Read>,
    /// Has extra results (cannot be inlined any more).
    multi: bool,
    gone: bool,
}

impl Node {
    fn read(&self, v: Value) -> Option<&Read> {
        self.reads.iter().find(|r| r.value == v)
    }
}

/// The planner's state over one graph.
struct State<'g> {
    nodes: Vec<Node>,
    /// The nodes that read each value (some may be gone or no longer read it).
    readers: HashMap<Value, Vec<usize>>,
    /// Where each value is read outside the nodes (see [`Graph::outside`]).
    outside: HashMap<Value, Vec<usize>>,
    types: HashMap<Value, &'g Type>,
}

impl State<'_> {
    fn bytes(&self, v: Value) -> f64 {
        self.types.get(&v).map_or(0.0, |t| bytes(t))
    }

    /// The live nodes reading `v`, by index, in order.
    fn consumers(&self, v: Value) -> Vec<usize> {
        let mut out: Vec<usize> = self.readers.get(&v).map_or(Vec::new(), |r| r.iter().copied().filter(|&i| !self.nodes[i].gone && self.nodes[i].read(v).is_some()).collect());
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Plans `f`'s entry block.
pub fn plan(f: &Function) -> FusionPlan {
    let mut cache: HashMap<String, Option<OpNest>> = HashMap::new();
    let mut graph = Graph::default();
    let mut ops: Vec<OpId> = Vec::new();
    for &o in f.body_ops() {
        match item(f, o) {
            Some(it) => {
                graph.items.push(it);
                ops.push(o);
            }
            None => graph.outside.extend(super::to_ir::reads(f, o).into_iter().map(|v| (v.0 as usize, ops.len()))),
        }
    }
    let planned = plan_graph(&graph, &mut |i| {
        let it = &graph.items[i];
        let operands: Vec<Operand<'_>> = it.operands.iter().map(|(_, o)| o.clone()).collect();
        let key = format!("{}{:?}{:?}{:?}", it.kind.name(), it.attrs, operands, it.out);
        cache.entry(key).or_insert_with(|| nest_of(it.kind, it.attrs, &operands, it.out)).clone()
    });
    let decisions = ops.iter().zip(&planned.decisions).filter_map(|(o, d)| d.map(|d| (*o, d))).collect();
    FusionPlan { ops: decisions, before: planned.before, after: planned.after }
}

/// Op `o` of `f` as an item, or `None` for an op that cannot lower to
/// kernels of its own (a constant, the return, an op with regions).
fn item(f: &Function, o: OpId) -> Option<Item<'_>> {
    let op = f.op(o);
    if op.results.len() != 1 || !op.regions.is_empty() || matches!(op.kind.category(), Category::Terminator | Category::Source) {
        return None;
    }
    let operands = op.operands.iter().map(|&v| (v.0 as usize, splat(f, v).map_or(Operand::Value(f.ty(v)), Operand::Splat))).collect();
    Some(Item { kind: op.kind, attrs: &op.attrs, operands, result: op.results[0].0 as usize, out: f.ty(op.results[0]) })
}

/// The attributes of `v`'s defining constant, when it is a rank-0 splat
/// (which the lowering folds into a kernel's body).
fn splat(f: &Function, v: ValueId) -> Option<&Attrs> {
    let ValueDef::OpResult { op: d, .. } = f.value(v).def else { return None };
    let d = f.op(d);
    (d.kind == OpKind::Constant && is_rank0_splat(&d.attrs)).then_some(&d.attrs)
}

/// True when a `dl.constant`'s attributes hold a rank-0 value.
pub fn is_rank0_splat(attrs: &Attrs) -> bool {
    AttrView::new(OpKind::Constant, attrs).dense("value").is_ok_and(|x| x.is_splat() && x.ty.rank() == 0)
}

/// Plans a graph; `nest` summarizes item `i`'s lowering (`None`: it does
/// not lower to kernels, and its operands count as read outside).
pub fn plan_graph(g: &Graph<'_>, nest: &mut dyn FnMut(usize) -> Option<OpNest>) -> Planned {
    let mut st = State { nodes: Vec::new(), readers: HashMap::new(), outside: HashMap::new(), types: HashMap::new() };
    for &(v, at) in &g.outside {
        st.outside.entry(v).or_default().push(at);
    }
    for (i, it) in g.items.iter().enumerate() {
        st.types.insert(it.result, it.out);
        for (v, o) in &it.operands {
            if let Operand::Value(t) = o {
                st.types.insert(*v, t);
            }
        }
        match nest(i) {
            Some(n) => {
                let k = st.nodes.len();
                let node = node(i, it, &n);
                for r in &node.reads {
                    st.readers.entry(r.value).or_default().push(k);
                }
                st.nodes.push(node);
            }
            None => {
                for (v, _) in &it.operands {
                    st.outside.entry(*v).or_default().push(i);
                }
            }
        }
    }
    let before: Cost = st.nodes.iter().map(|n| n.cost).sum();
    let mut decisions: Vec<Option<Option<Fuse>>> = vec![None; g.items.len()];
    for n in st.nodes.iter().filter(|n| n.single.is_some()) {
        decisions[n.item] = Some(None);
    }
    for decision in [Fuse::Inline, Fuse::Merge] {
        loop {
            let mut changed = false;
            for i in (0..st.nodes.len()).rev() {
                let taken = !st.nodes[i].gone
                    && match decision {
                        Fuse::Inline => inline(&mut st, i),
                        Fuse::Merge => merge(&mut st, i),
                    };
                if taken {
                    decisions[st.nodes[i].item] = Some(Some(decision));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
    let after = st.nodes.iter().filter(|n| !n.gone).map(|n| n.cost).sum();
    Planned { decisions, before, after }
}

/// The planning node of item `i`.
fn node(i: usize, it: &Item<'_>, nest: &OpNest) -> Node {
    let mut reads: Vec<Read> = Vec::new();
    for (k, (v, operand)) in it.operands.iter().enumerate() {
        if matches!(operand, Operand::Splat(_)) {
            continue;
        }
        match reads.iter_mut().find(|r| r.value == *v) {
            Some(r) => {
                r.evals = r.evals.zip(nest.evals[k]).map(|(a, b)| a.max(b));
                r.readers = r.readers.max(nest.readers[k]);
                r.whole &= nest.whole[k];
            }
            None => reads.push(Read { value: *v, evals: nest.evals[k], readers: nest.readers[k], whole: nest.whole[k] }),
        }
    }
    Node { item: i, result: it.result, cost: nest.cost, single: nest.single, widths: nest.widths, reads, multi: false, gone: false }
}

/// Consumer `c` with producer `p`'s body in place of its read `r` of p's
/// result: its new cost and reads.
fn absorbed(st: &State<'_>, p: &Node, c: &Node, r: &Read) -> (Cost, Vec<Read>) {
    let (points, per_point) = p.single.expect("a producer is one all-parallel kernel");
    let readers = r.readers as f64;
    let mut cost = c.cost;
    cost.bytes -= readers * st.bytes(p.result);
    let mut reads: Vec<Read> = c.reads.iter().filter(|x| x.value != p.result).cloned().collect();
    for q in &p.reads {
        let per = q.evals.map(|e| e / points.max(1.0));
        let evals = r.evals.zip(per).map(|(a, b)| a * b);
        match reads.iter_mut().find(|x| x.value == q.value) {
            Some(x) => {
                x.evals = x.evals.zip(evals).map(|(a, b)| a.max(b));
                x.readers = x.readers.max(r.readers);
                x.whole &= r.whole && q.whole;
            }
            None => {
                cost.bytes += readers * st.bytes(q.value);
                reads.push(Read { value: q.value, evals, readers: r.readers, whole: r.whole && q.whole });
            }
        }
    }
    cost.flops += r.evals.unwrap_or(0.0) * per_point;
    // A kernel that comes to hold both float widths runs without vectors.
    let mixed = |w: [bool; 2]| w == [true, true];
    if !mixed(c.widths) && mixed([c.widths[0] || p.widths[0], c.widths[1] || p.widths[1]]) {
        cost.flops *= SCALAR_FACTOR;
    }
    (cost, reads)
}

/// Node `c` takes `p`'s body (and, for a merge, its result).
fn absorb(st: &mut State<'_>, p: usize, c: usize, cost: Cost, reads: Vec<Read>, per_point: f64) {
    for r in &reads {
        let list = st.readers.entry(r.value).or_default();
        if !list.contains(&c) {
            list.push(c);
        }
    }
    let w = st.nodes[p].widths;
    let n = &mut st.nodes[c];
    if let Some((_, pp)) = n.single.as_mut() {
        *pp += per_point;
    }
    n.cost = cost;
    n.reads = reads;
    n.widths = [n.widths[0] || w[0], n.widths[1] || w[1]];
    st.nodes[p].gone = true;
}

/// Decision 1 of the module docs for node `i`; true when taken.
fn inline(st: &mut State<'_>, i: usize) -> bool {
    let p = &st.nodes[i];
    let Some((_, per_point)) = p.single else { return false };
    if p.multi || st.outside.contains_key(&p.result) {
        return false;
    }
    let cs = st.consumers(p.result);
    if cs.is_empty() || cs.iter().any(|&c| st.nodes[c].read(p.result).is_none_or(|r| r.evals.is_none())) {
        return false;
    }
    let mut before = p.cost;
    let mut after = Cost::default();
    let mut new = Vec::new();
    for &c in &cs {
        let r = st.nodes[c].read(p.result).expect("a consumer");
        let (cost, reads) = absorbed(st, p, &st.nodes[c], r);
        let points = st.nodes[c].single.map_or(1.0, |(n, _)| n.max(1.0));
        before = before + st.nodes[c].cost;
        after = after + cost;
        new.push((c, cost, reads, r.evals.unwrap_or(0.0) / points * per_point));
    }
    if after.time_ns() > before.time_ns() {
        return false;
    }
    for (c, cost, reads, added) in new {
        absorb(st, i, c, cost, reads, added);
    }
    true
}

/// Decision 2 of the module docs for node `i`; true when taken.
fn merge(st: &mut State<'_>, i: usize) -> bool {
    let p = &st.nodes[i];
    let Some((points, per_point)) = p.single else { return false };
    if p.multi {
        return false;
    }
    let cs = st.consumers(p.result);
    let absorbing: Vec<usize> = cs.iter().copied().filter(|&c| st.nodes[c].read(p.result).is_some_and(|r| r.evals.is_some())).collect();
    let &[c] = absorbing.as_slice() else { return false };
    let elsewhere = st.outside.get(&p.result);
    if elsewhere.is_none() && cs.len() < 2 {
        return false;
    }
    let r = st.nodes[c].read(p.result).expect("a consumer").clone();
    if !r.whole || st.nodes[c].single.is_none_or(|(n, _)| n != points) {
        return false;
    }
    // Every other reader comes after the consumer, where the merged kernel goes.
    let at = st.nodes[c].item;
    if cs.iter().any(|&o| o != c && st.nodes[o].item < at) || elsewhere.is_some_and(|w| w.iter().any(|&k| k <= at)) {
        return false;
    }
    let (mut cost, reads) = absorbed(st, p, &st.nodes[c], &r);
    cost.bytes += st.bytes(p.result);
    if cost.time_ns() > (p.cost + st.nodes[c].cost).time_ns() {
        return false;
    }
    absorb(st, i, c, cost, reads, per_point);
    st.nodes[c].multi = true;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{to_kernels_planned, to_kernels_with};
    use dlc_backends::Tensor;

    fn parsed(body: &str, args: &str, ret: &str) -> Function {
        let text = format!("module {{\n  func.func @f({args}) -> ({ret}) {{\n{body}\n  }}\n}}");
        dlc_ir::parse_module(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}")).functions.remove(0)
    }

    fn decision(f: &Function, p: &FusionPlan, name: &str) -> Option<Fuse> {
        let o = f.body_ops().iter().copied().find(|&o| f.op(o).results.first().and_then(|&r| f.value(r).name.clone()).as_deref() == Some(name)).unwrap();
        *p.ops.get(&o).unwrap_or_else(|| panic!("{name} is not planned"))
    }

    fn generics(k: &Function) -> Vec<Vec<String>> {
        k.body_ops().iter().filter(|&&o| k.op(o).kind == OpKind::Generic).map(|&o| dlc_ir::kernel::Generic::read(k, o).unwrap().0.fused).collect()
    }

    fn values(n: usize, shape: &[usize]) -> Vec<Tensor> {
        let len: usize = shape.iter().product();
        (0..n).map(|a| Tensor::from_f64_values(shape, &(0..len).map(|i| ((i * 5 + a * 3) % 13) as f64 / 7.0 - 0.8).collect::<Vec<_>>(), dlc_ir::DType::F32).unwrap()).collect()
    }

    /// `exp(x + y) * x`: the add and the exp inline into the multiply.
    const CHAIN: &str = r#"    %a = "dl.add"(%x, %y) : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    %b = "dl.exp"(%a) : (tensor<8x16xf32>) -> tensor<8x16xf32>
    %c = "dl.mul"(%b, %x) : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    return %c : tensor<8x16xf32>"#;

    #[test]
    fn an_elementwise_chain_is_planned_as_one_kernel() {
        let f = parsed(CHAIN, "%x: tensor<8x16xf32>, %y: tensor<8x16xf32>", "tensor<8x16xf32>");
        let p = plan(&f);
        assert_eq!((decision(&f, &p, "a"), decision(&f, &p, "b"), decision(&f, &p, "c")), (Some(Fuse::Inline), Some(Fuse::Inline), None));
        assert_eq!((p.before.kernels, p.after.kernels), (3, 1));
        // Read x and y, write c: the two intermediates' round trips are gone.
        assert_eq!(p.after.bytes, 3.0 * 128.0 * 4.0);
        assert!(p.after.time_ns() < p.before.time_ns());
    }

    /// A small value that a much larger consumer reads through a broadcast
    /// is not recomputed at every point of the consumer when its body is
    /// expensive.
    #[test]
    fn an_expensive_producer_is_not_recomputed_under_a_broadcast() {
        let body = r#"    %e = "dl.exp"(%x) : (tensor<64xf32>) -> tensor<64xf32>
    %t = "dl.tanh"(%e) : (tensor<64xf32>) -> tensor<64xf32>
    %s = "dl.add"(%t, %z) : (tensor<64xf32>, tensor<512x64xf32>) -> tensor<512x64xf32>
    return %s : tensor<512x64xf32>"#;
        let f = parsed(body, "%x: tensor<64xf32>, %z: tensor<512x64xf32>", "tensor<512x64xf32>");
        let p = plan(&f);
        assert_eq!(decision(&f, &p, "e"), Some(Fuse::Inline), "exp into tanh: same points");
        assert_eq!(decision(&f, &p, "t"), None, "exp(tanh) 512 times per element costs more than 64 floats' round trip");
    }

    /// Adam's moment, returned and read by the parameter's update, is
    /// computed by the update's kernel as an extra result.
    #[test]
    fn a_returned_value_merges_into_its_one_consumer() {
        let body = r#"    %b1 = "dl.constant"() {value = dense<0.1> : tensor<f32>} : () -> tensor<f32>
    %d = "dl.sub"(%g, %m) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %s = "dl.mul"(%b1, %d) : (tensor<f32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %m2 = "dl.add"(%m, %s) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    %u = "dl.mul"(%m2, %b1) : (tensor<5x7xf32>, tensor<f32>) -> tensor<5x7xf32>
    %p2 = "dl.sub"(%p, %u) : (tensor<5x7xf32>, tensor<5x7xf32>) -> tensor<5x7xf32>
    return %p2, %m2 : tensor<5x7xf32>, tensor<5x7xf32>"#;
        let f = parsed(body, "%p: tensor<5x7xf32>, %g: tensor<5x7xf32>, %m: tensor<5x7xf32>", "tensor<5x7xf32>, tensor<5x7xf32>");
        let p = plan(&f);
        assert_eq!(decision(&f, &p, "m2"), Some(Fuse::Merge));
        assert_eq!((decision(&f, &p, "d"), decision(&f, &p, "s"), decision(&f, &p, "u")), (Some(Fuse::Inline), Some(Fuse::Inline), Some(Fuse::Inline)));
        assert_eq!(p.after.kernels, 1);
        let mut k = f.clone();
        to_kernels_planned(&mut k, true, Some(&p)).unwrap();
        assert_eq!(generics(&k).len(), 1);
        assert_eq!(dlc_backends::run(&k, &values(3, &[5, 7])).unwrap(), dlc_backends::run(&f, &values(3, &[5, 7])).unwrap());
    }

    /// `fuse-kernels` does what the plan says, not what its own cost gate
    /// would: a decision to keep a kernel keeps it, a decision to inline
    /// inlines it, and without a plan the cost gate decides.
    #[test]
    fn the_kernel_level_follows_the_plan() {
        let f = parsed(CHAIN, "%x: tensor<8x16xf32>, %y: tensor<8x16xf32>", "tensor<8x16xf32>");
        let mut p = plan(&f);
        let b = f.body_ops()[1];
        p.ops.insert(b, None);
        let mut k = f.clone();
        to_kernels_planned(&mut k, true, Some(&p)).unwrap();
        assert_eq!(generics(&k), vec![vec!["dl.add".to_string(), "dl.exp".into()], vec!["dl.mul".into()]], "{}", dlc_ir::print_function(&k));
        let mut gated = f.clone();
        to_kernels_with(&mut gated, true).unwrap();
        assert_eq!(generics(&gated).len(), 1);
        let args = values(2, &[8, 16]);
        assert_eq!(dlc_backends::run(&k, &args).unwrap(), dlc_backends::run(&f, &args).unwrap());

        // The broadcast case the plan refuses: forced, it fuses.
        let body = r#"    %t = "dl.tanh"(%x) : (tensor<64xf32>) -> tensor<64xf32>
    %s = "dl.add"(%t, %z) : (tensor<64xf32>, tensor<512x64xf32>) -> tensor<512x64xf32>
    return %s : tensor<512x64xf32>"#;
        let f = parsed(body, "%x: tensor<64xf32>, %z: tensor<512x64xf32>", "tensor<512x64xf32>");
        let mut p = plan(&f);
        let t = f.body_ops()[0];
        assert_eq!(p.ops.get(&t), Some(&None));
        let mut kept = f.clone();
        to_kernels_planned(&mut kept, true, Some(&p)).unwrap();
        assert_eq!(generics(&kept).len(), 2);
        p.ops.insert(t, Some(Fuse::Inline));
        let mut forced = f.clone();
        to_kernels_planned(&mut forced, true, Some(&p)).unwrap();
        assert_eq!(generics(&forced).len(), 1);
    }

    /// The e-graph pass plans the function it leaves, deterministically.
    #[test]
    fn the_pass_reports_its_plan() {
        let mut f = parsed(CHAIN, "%x: tensor<8x16xf32>, %y: tensor<8x16xf32>", "tensor<8x16xf32>");
        let r = super::super::optimize(&mut f).unwrap();
        assert_eq!(r.plan.counts(), (2, 0));
        assert_eq!(r.plan.ops, plan(&f).ops);
    }

    /// Extraction judges a form by its kernels as they will be fused. Moving
    /// the scale out of the matmul (`matmul_scale_a`) scales 1024 outputs
    /// instead of 2048 inputs, and op by op that is cheaper; but the scale
    /// of the input rides along in exp's kernel for one FLOP per element,
    /// while the scale of the returned output is a kernel of its own that
    /// reads and writes it. The input's form stays.
    #[test]
    fn extraction_keeps_a_form_that_fuses_over_one_that_is_cheaper_op_by_op() {
        let body = r#"    %s = "dl.constant"() {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
    %e = "dl.exp"(%x) : (tensor<64x32xf32>) -> tensor<64x32xf32>
    %a = "dl.mul"(%e, %s) : (tensor<64x32xf32>, tensor<f32>) -> tensor<64x32xf32>
    %y = "dl.matmul"(%a, %b) : (tensor<64x32xf32>, tensor<32x16xf32>) -> tensor<64x16xf32>
    return %y : tensor<64x16xf32>"#;
        let f = parsed(body, "%x: tensor<64x32xf32>, %b: tensor<32x16xf32>", "tensor<64x16xf32>");
        let mut g = f.clone();
        let r = super::super::optimize(&mut g).unwrap();
        assert!(r.fired.contains_key("matmul_scale_a"), "{r}");
        let kinds: Vec<OpKind> = g.body_ops().iter().map(|&o| g.op(o).kind).collect();
        assert!(kinds.iter().position(|&k| k == OpKind::Mul) < kinds.iter().position(|&k| k == OpKind::Matmul), "the scale stays before the matmul:\n{}", dlc_ir::print_function(&g));
        assert_eq!(r.plan.counts(), (1, 0), "exp inlines into the scale: one kernel");
        // Op by op, the moved form would be the cheaper one.
        let moved = r#"    %s = "dl.constant"() {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
    %e = "dl.exp"(%x) : (tensor<64x32xf32>) -> tensor<64x32xf32>
    %m = "dl.matmul"(%e, %b) : (tensor<64x32xf32>, tensor<32x16xf32>) -> tensor<64x16xf32>
    %y = "dl.mul"(%m, %s) : (tensor<64x16xf32>, tensor<f32>) -> tensor<64x16xf32>
    return %y : tensor<64x16xf32>"#;
        let m = parsed(moved, "%x: tensor<64x32xf32>, %b: tensor<32x16xf32>", "tensor<64x16xf32>");
        let per_op = |f: &Function| f.body_ops().iter().map(|&o| super::super::cost::ir_op_cost(f, o)).sum::<u64>();
        assert!(per_op(&m) < per_op(&f));
        assert!(plan(&m).after.time_ns() > plan(&f).after.time_ns());
    }
}
