//! Which rules each op of the rewritten function owes its form to, for
//! `dlc compile --explain-fusion`.
//!
//! Counting applications per rule ([`super::Report::fired`]) says what the
//! pass did to the function, not where: a rule may fire on a term that
//! extraction then leaves out. So while [`optimize`](super::optimize) runs,
//! the rule driver keeps a [`RuleLog`]: every application that changed the
//! e-graph, with the nodes its left side matched, and every node a right
//! side added. The log is the running thread's ([`Recording`]): egg applies
//! rules on the caller's thread, so passes on other threads never share one,
//! and the analysis (which tests build by hand) stays as it is. After
//! extraction,
//! [`resolve`] reads two kinds of provenance off it:
//!
//! - **Derivation.** An extracted node that is not one of the input's own
//!   nodes was added by a rule; the rules of its derivation are that rule
//!   and, recursively, the rules that added the nodes its match went
//!   through (`kernel.matmul {relu}` came from `matmul_bias_relu` matching a
//!   `kernel.matmul` that `matmul_bias` added). The op emitted for it gets
//!   them.
//! - **Rerouting.** A rule whose right side is a class that already exists
//!   (`neg(neg x) → x`, `x * 1 → x`) adds no node: it makes a class
//!   computable by another class's node. An op of the input that now reads a
//!   different value than before gets the rerouting rules logged on the
//!   class of what it read. This errs on the side of listing: every
//!   rerouting rule that joined that class is named, even one whose join the
//!   extraction did not need.
//!
//! Everything here is ordered (insertion order, ids, sorted names), so the
//! result is as deterministic as the pass.

use super::analysis::Graph;
use super::cost::Choice;
use super::from_ir::Mapping;
use super::lang::Dl;
use dlc_ir::{Function, OpId};
use egg::{Id, Language};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

thread_local! {
    static LOG: RefCell<Option<RuleLog>> = const { RefCell::new(None) };
}

/// Rule applications on this thread are logged while this lives; a pass
/// that panics midway still stops the logging (`Drop`).
pub struct Recording(());

impl Recording {
    /// Starts a fresh log.
    pub fn start() -> Recording {
        LOG.with(|l| *l.borrow_mut() = Some(RuleLog::default()));
        Recording(())
    }

    /// Stops logging and returns the log.
    pub fn finish(self) -> RuleLog {
        LOG.with(|l| l.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        LOG.with(|l| *l.borrow_mut() = None);
    }
}

/// True while a [`Recording`] lives on this thread (the driver skips the
/// work of logging otherwise).
pub fn recording() -> bool {
    LOG.with(|l| l.borrow().is_some())
}

/// Runs `f` on this thread's log, when one is recording.
fn with_log(f: impl FnOnce(&mut RuleLog)) {
    LOG.with(|l| {
        if let Some(log) = l.borrow_mut().as_mut() {
            f(log);
        }
    });
}

/// Starts logging one application of `rule`.
pub fn begin(rule: &'static str) {
    with_log(|l| l.open = Some((rule, l.created.len())));
}

/// Notes a node the open application's right side added (outside an
/// application, e.g. constant folding in the analysis: nothing).
pub fn added(node: &Dl) {
    with_log(|l| {
        if l.open.is_some() {
            l.created.push((node.clone(), l.applications.len()));
        }
    });
}

/// Ends the open application at class `root`, which matched `matched` (the
/// left side's op nodes in pre-order); `joined` says whether its union
/// changed the e-graph. An application that neither added a node nor joined
/// classes is forgotten.
pub fn end(root: Id, matched: Vec<Dl>, joined: bool) {
    with_log(|l| {
        let Some((rule, start)) = l.open.take() else { return };
        let added = l.created.len() > start;
        if added || joined {
            l.applications.push(Application { rule, root, matched, added });
        }
    });
}

/// What the rules did to one e-graph, in order.
#[derive(Clone, Debug, Default)]
pub struct RuleLog {
    applications: Vec<Application>,
    /// Nodes a right side added, with the index of the application.
    created: Vec<(Dl, usize)>,
    /// The application being applied: its rule, and `created.len()` when it began.
    open: Option<(&'static str, usize)>,
}

#[derive(Clone, Debug)]
struct Application {
    rule: &'static str,
    /// The matched class.
    root: Id,
    /// The left side's op nodes as matched, in pre-order.
    matched: Vec<Dl>,
    /// True when the right side added a node (false: it only joined classes).
    added: bool,
}

/// Per op of `after` (the rebuilt function), the rules it owes its form to,
/// sorted; ops that are as the input had them are left out. `emitted` lists
/// the ops the rebuild emitted for classes, `original` the input's nodes
/// (canonical), and `input` is the function before the rebuild.
#[allow(clippy::too_many_arguments)]
pub fn resolve(
    log: &RuleLog,
    g: &Graph,
    m: &Mapping,
    choice: &Choice,
    original: &HashSet<Dl>,
    input: &Function,
    after: &Function,
    emitted: &[(OpId, Id)],
) -> BTreeMap<OpId, Vec<&'static str>> {
    let canon = |n: &Dl| n.clone().map_children(|c| g.find(c));
    let mut first: HashMap<Dl, usize> = HashMap::new();
    for (n, a) in &log.created {
        let e = first.entry(canon(n)).or_insert(*a);
        *e = (*e).min(*a);
    }
    let mut memo: HashMap<usize, BTreeSet<&'static str>> = HashMap::new();
    let mut out: BTreeMap<OpId, BTreeSet<&'static str>> = BTreeMap::new();
    for &(o, c) in emitted {
        let n = canon(choice.node(g, c));
        if let (Dl::Op { .. }, false, Some(&a)) = (&n, original.contains(&n), first.get(&n)) {
            let rules = derivation(log, &first, original, a, &mut memo, &canon);
            out.entry(o).or_default().extend(rules);
        }
    }
    // Rerouting: rules that joined a class without adding a node, by class.
    let mut rerouting: BTreeMap<Id, BTreeSet<&'static str>> = BTreeMap::new();
    for a in log.applications.iter().filter(|a| !a.added) {
        rerouting.entry(g.find(a.root)).or_default().insert(a.rule);
    }
    let input_ops: HashSet<OpId> = input.body_ops().iter().copied().collect();
    for &o in after.body_ops().iter().filter(|o| input_ops.contains(o)) {
        let (was, is) = (super::to_ir::reads(input, o), super::to_ir::reads(after, o));
        for (old, new) in was.iter().zip(&is) {
            if old == new {
                continue;
            }
            if let Some(rules) = m.class(g, *old).and_then(|c| rerouting.get(&c)) {
                out.entry(o).or_default().extend(rules.iter().copied());
            }
        }
    }
    out.into_iter().map(|(o, rules)| (o, rules.into_iter().collect())).collect()
}

/// The rules of application `a`'s derivation: its rule, and those of every
/// node its match went through that a rule added. Each followed node was
/// added before `a` (it was matched), so the recursion ends.
fn derivation(
    log: &RuleLog,
    first: &HashMap<Dl, usize>,
    original: &HashSet<Dl>,
    a: usize,
    memo: &mut HashMap<usize, BTreeSet<&'static str>>,
    canon: &dyn Fn(&Dl) -> Dl,
) -> BTreeSet<&'static str> {
    if let Some(r) = memo.get(&a) {
        return r.clone();
    }
    let app = &log.applications[a];
    let mut rules = BTreeSet::from([app.rule]);
    for n in &app.matched {
        let n = canon(n);
        if original.contains(&n) {
            continue;
        }
        if let Some(&b) = first.get(&n).filter(|&&b| b < a) {
            rules.extend(derivation(log, first, original, b, memo, canon));
        }
    }
    memo.insert(a, rules.clone());
    rules
}
