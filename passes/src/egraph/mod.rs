//! Equality saturation over the `dl` graph, with egg.
//!
//! The entry block becomes an e-graph ([`from_ir`]) in the [`lang::Dl`]
//! language (derived from the op registry) with the [`analysis`] of types
//! and splat constants (which folds constants). Rule sets ([`rules`]) run in
//! [`STAGES`], each an egg `Runner` under hard budgets, on the same e-graph;
//! then [`cost::extract`] picks the cheapest way to compute every needed
//! value and [`to_ir`] writes it back. Extraction and the decision to keep
//! the rewrite both judge a candidate by its kernels fused as [`plan`] would
//! fuse them (an intermediate a fused kernel never writes costs nothing), and
//! the rewrite is kept only when that costs no more than the input's, so the
//! pass never makes code worse by its own measure. The plan of the function
//! it leaves (`Report::plan`) is what the kernel lowering's fusion follows.
//!
//! Deterministic: the e-graph's maps are insertion-ordered (egg's
//! `deterministic` feature), nodes are ordered by kind and attribute text,
//! costs are integers, and runs stop on node and iteration counts only. The
//! time limit is a guard, not a budget: a stage that runs past it fails the
//! pass (the pass manager reports it), so how fast the machine is can make
//! the pass fail loudly but never changes its output.

pub mod analysis;
pub mod cost;
pub mod from_ir;
pub mod lang;
pub mod plan;
pub mod provenance;
pub mod rules;
pub mod to_ir;

use crate::Pass;
use dlc_ir::{Function, OpId};
use egg::{Id, Language, Rewrite, Runner, StopReason};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `egraph` pass: [`optimize`] on every function.
pub struct Egraph;

impl Pass for Egraph {
    fn name(&self) -> &'static str {
        "egraph"
    }

    fn summary(&self) -> &'static str {
        "equality saturation (egg): exact algebra, transposes into matmul flags, stable log-softmax, scalar motion; cheapest form by bytes and FLOPs"
    }

    fn run(&self, f: &mut Function) -> bool {
        optimize(f).unwrap_or_else(|e| panic!("egraph: {e}")).changed
    }

    fn try_run(&self, f: &mut Function) -> Result<bool, String> {
        optimize(f).map(|r| r.changed)
    }
}

/// One stage: rule topics run together until saturation or a budget.
pub struct Stage {
    /// The stage's name.
    pub name: &'static str,
    /// The rule topics it runs (names in [`rules::TOPICS`]).
    pub topics: &'static [&'static str],
}

/// The stages, in order. Layout and scalar motion expose new algebra
/// (`neg(neg x)` once a negation leaves a matmul), so those stages run the
/// algebra rules beside their own. Pooling reads the masked pooling
/// gradients the algebra stage routes by the pre-activation. Fusion groups
/// what the others left: a contraction with its bias and ReLU as one
/// kernel node, which extraction takes when the cost model prefers it.
pub const STAGES: &[Stage] = &[
    Stage { name: "algebra", topics: &["algebra"] },
    Stage { name: "layout", topics: &["layout", "algebra"] },
    Stage { name: "loss", topics: &["loss"] },
    Stage { name: "scalar", topics: &["scalar", "algebra"] },
    Stage { name: "pooling", topics: &["pooling"] },
    Stage { name: "fusion", topics: &["fusion"] },
];

/// A stage stops once the e-graph holds more than `max(NODE_LIMIT,
/// NODES_PER_INPUT_NODE × the input's e-nodes)` e-nodes (Tensat's budget is
/// 50,000 for graphs of a few hundred ops). The example models' train steps
/// start at 6–350 e-nodes and saturate under 1.1× that, so the limit only
/// bounds pathological rule interactions, at a few ms per thousand e-nodes.
pub const NODE_LIMIT: usize = 10_000;
/// See [`NODE_LIMIT`].
pub const NODES_PER_INPUT_NODE: usize = 4;
/// A stage stops after this many iterations (each applies every rule's
/// matches once). The examples' stages saturate in at most 3, the property
/// test's random graphs in at most 10.
pub const ITER_LIMIT: usize = 16;
/// A stage that runs longer than this fails the pass instead of returning a
/// speed-dependent result (see the module docs). The examples' stages take
/// under 5 ms in a release build.
pub const TIME_GUARD: Duration = Duration::from_secs(10);

/// Each stage's egg rewrites, built once per process.
fn stage_rewrites() -> &'static [Vec<Rewrite<lang::Dl, analysis::DlAnalysis>>] {
    static REWRITES: OnceLock<Vec<Vec<Rewrite<lang::Dl, analysis::DlAnalysis>>>> = OnceLock::new();
    REWRITES.get_or_init(|| {
        STAGES
            .iter()
            .map(|stage| {
                let topic = |t: &&str| rules::TOPICS.iter().find(|(n, _)| n == t).unwrap_or_else(|| panic!("stage {} names unknown topic {t}", stage.name)).1;
                stage.topics.iter().flat_map(|t| rules::rewrites(topic(t))).collect()
            })
            .collect()
    })
}

/// What one stage did.
#[derive(Clone, Debug)]
pub struct StageReport {
    /// The stage's name.
    pub name: &'static str,
    /// E-nodes at its end.
    pub nodes: usize,
    /// E-classes at its end.
    pub classes: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Wall time (reported only; never decides anything).
    pub time: Duration,
    /// Why it stopped: `saturated`, `node limit`, `iteration limit`.
    pub stop: String,
}

/// What the pass did to one function.
#[derive(Clone, Debug)]
pub struct Report {
    /// The function's name.
    pub function: String,
    /// Per stage.
    pub stages: Vec<StageReport>,
    /// Times each rule applied (matches that added something new), by rule name.
    pub fired: BTreeMap<String, usize>,
    /// Per op of the rewritten function, the rules it owes its form to (see
    /// [`provenance`]); ops kept as they were are not listed, and nothing
    /// is when the rewrite was not kept. Not printed here: the kernel
    /// report (`kernel::explain_with`) shows it per kernel.
    pub rules: BTreeMap<OpId, Vec<&'static str>>,
    /// Estimated time of the modeled ops before, in nanoseconds (see [`cost`]).
    pub cost_before: f64,
    /// The same after (the input's cost when the rewrite was not kept).
    pub cost_after: f64,
    /// Ops in the entry block before and after.
    pub ops: (usize, usize),
    /// Which kernels of the rewritten function fuse ([`plan`]), by op of
    /// the function as the pass left it: the lowering's fusion follows it
    /// (`kernel::to_kernels_planned`).
    pub plan: plan::FusionPlan,
    /// True when the function changed.
    pub changed: bool,
    /// The whole pass's wall time, conversion and extraction included.
    pub time: Duration,
}

/// `{}` prints the report with wall times; `{:#}` leaves them out (for
/// snapshots: everything else is deterministic).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timed = !f.alternate();
        let ms = |d: Duration| if timed { format!(", {:.2} ms", d.as_secs_f64() * 1e3) } else { String::new() };
        writeln!(
            f,
            "@{}: {} → {} ops, cost {:.1} → {:.1} µs{}",
            self.function,
            self.ops.0,
            self.ops.1,
            self.cost_before / 1e3,
            self.cost_after / 1e3,
            ms(self.time)
        )?;
        for s in &self.stages {
            writeln!(f, "  {:<8} {:>6} e-nodes {:>6} e-classes {:>3} iterations{}  {}", s.name, s.nodes, s.classes, s.iterations, ms(s.time), s.stop)?;
        }
        if !self.fired.is_empty() {
            let fired: Vec<String> = self.fired.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
            writeln!(f, "  fired: {}", fired.join(", "))?;
        }
        writeln!(f, "  {}", self.plan)
    }
}

/// Runs the stages on `f`'s entry block and writes back the cheapest
/// equivalent; `Err` when a stage runs past [`TIME_GUARD`] or the extracted
/// terms cannot be ordered (in which case `f` is unchanged). The report's
/// [`Report::rules`] is left empty: see [`optimize_explained`].
pub fn optimize(f: &mut Function) -> Result<Report, String> {
    run(f, false)
}

/// [`optimize`], also logging which rules each op of the result owes its
/// form to ([`Report::rules`], for `--explain-fusion`). The log costs time
/// and memory on every rule application, so plain compiles do without it;
/// the rewritten function is the same either way.
pub fn optimize_explained(f: &mut Function) -> Result<Report, String> {
    run(f, true)
}

fn run(f: &mut Function, explain: bool) -> Result<Report, String> {
    let start = Instant::now();
    let ops_before = f.body_ops().len();
    let (mut g, mapping) = from_ir::build(f);
    let node_limit = NODE_LIMIT.max(NODES_PER_INPUT_NODE * g.total_number_of_nodes());
    let mut stages = Vec::new();
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    let recording = explain.then(provenance::Recording::start);
    for (stage_index, stage) in STAGES.iter().enumerate() {
        let rewrites = &stage_rewrites()[stage_index];
        let t = Instant::now();
        let runner = Runner::default().with_egraph(g).with_node_limit(node_limit).with_iter_limit(ITER_LIMIT).with_time_limit(TIME_GUARD).run(rewrites);
        let stop = match &runner.stop_reason {
            Some(StopReason::Saturated) => "saturated".to_string(),
            Some(StopReason::NodeLimit(_)) => "node limit".to_string(),
            Some(StopReason::IterationLimit(_)) => "iteration limit".to_string(),
            Some(StopReason::TimeLimit(s)) => {
                return Err(format!("@{}: stage '{}' ran past its {s} s time guard (the output must not depend on speed)", f.name, stage.name));
            }
            other => format!("{other:?}"),
        };
        for it in &runner.iterations {
            for (name, n) in &it.applied {
                if *n > 0 {
                    *fired.entry(rules::rule_of(name.as_str()).to_string()).or_default() += n;
                }
            }
        }
        g = runner.egraph;
        stages.push(StageReport { name: stage.name, nodes: g.total_number_of_nodes(), classes: g.number_of_classes(), iterations: runner.iterations.len(), time: t.elapsed(), stop });
    }

    let log = recording.map(provenance::Recording::finish);
    let original: HashSet<lang::Dl> = mapping.modeled.iter().map(|(_, n)| n.clone().map_children(|c| g.find(c))).collect();
    let roots: Vec<Id> = roots(f, &g, &mapping);
    let choice = cost::extract(&g, &roots, &original);
    let cost_before: u128 = mapping.modeled.iter().map(|(o, _)| u128::from(cost::ir_op_cost(f, *o))).sum();
    let mut after = f.clone();
    let rebuilt = to_ir::rebuild(&mut after, &g, &mapping, &choice).map_err(|e| format!("@{}: {e}", f.name))?;
    after.set_block_ops(after.entry(), rebuilt.ops.clone());
    // Kept when its kernels, fused as planned, cost no more than the input's.
    let (plan_before, plan_after) = (plan::plan(f), plan::plan(&after));
    let keep = rebuilt.changed && plan_after.after.time_ns() <= plan_before.after.time_ns();
    let mut rules = BTreeMap::new();
    if keep {
        if let Some(log) = &log {
            rules = provenance::resolve(log, &g, &mapping, &choice, &original, f, &after, &rebuilt.emitted);
        }
        *f = after;
    }
    let plan = if keep { plan_after } else { plan_before };
    Ok(Report {
        plan,
        function: f.name.clone(),
        stages,
        fired,
        rules,
        cost_before: cost_before as f64 / 1e3,
        cost_after: if keep { rebuilt.cost } else { cost_before } as f64 / 1e3,
        ops: (ops_before, f.body_ops().len()),
        changed: keep,
        time: start.elapsed(),
    })
}

/// The classes the function's kept ops read: the operands of `func.return`
/// and of every op the e-graph does not model (their regions' captures too).
fn roots(f: &Function, g: &analysis::Graph, m: &from_ir::Mapping) -> Vec<Id> {
    let modeled: HashSet<dlc_ir::OpId> = m.modeled.iter().map(|(o, _)| *o).collect();
    let mut out: Vec<Id> = Vec::new();
    for &o in f.body_ops() {
        if !modeled.contains(&o) {
            out.extend(to_ir::reads(f, o).into_iter().filter_map(|v| m.class(g, v)));
        }
    }
    out
}
