//! Rewrite rules as named data, grouped by topic.
//!
//! A [`Rule`] is a name, a left-hand side in egg's pattern syntax over the
//! [`Dl`] language, and a right-hand side: a term over the left side's
//! variables (optionally under a condition on the match), or a builder in
//! code when the result needs computed attributes (a composed permutation, a
//! flipped transpose flag). Left sides write `{*}` for "any attributes"; the
//! builder reads the attributes the match actually had with
//! [`Match::attrs`].
//!
//! The driver ([`RuleApplier`]) keeps every rule honest: it adds only nodes
//! that type-check through the registry, and unions a rewrite with the
//! matched class only when both have the same type, so a rule never changes
//! a result type (as in `canonicalize`), and skips a match that binds a
//! variable to the matched class itself. Where the root op of a left side (or
//! any op in it) `is_commutative()`, the swapped forms are matched too
//! (`x * 1` and `1 * x`); no rule commutes or reassociates otherwise.
//!
//! Discipline, as in `canonicalize`: `algebra`, `layout` and `fusion` hold
//! identities that are exact in IEEE arithmetic; `loss`, `scalar` and
//! `pooling` hold identities that agree within float rounding, each saying
//! so in its comment.

pub mod algebra;
pub mod fusion;
pub mod layout;
pub mod loss;
pub mod pooling;
pub mod scalar;

use super::analysis::{Data, DlAnalysis, Graph};
use super::lang::{AttrKey, Dl, constant_key};
use dlc_ir::{Attrs, AttrView, DType, DenseAttr, DenseData, OpKind, TensorType, Type};
use egg::{Applier, ENodeOrVar, Id, Language, Pattern, PatternAst, RecExpr, Rewrite, Subst, Symbol, Var};

/// One rewrite rule.
pub struct Rule {
    /// Its name, as reports and tests refer to it.
    pub name: &'static str,
    /// The term it rewrites, in egg's pattern syntax.
    pub lhs: &'static str,
    /// What the term equals.
    pub rhs: Rhs,
}

/// A rule's right-hand side.
pub enum Rhs {
    /// A term over the left side's variables (`"?x"`, `"(add ?a ?b)"`).
    Term(&'static str),
    /// A term, where the condition holds of the match.
    TermIf(&'static str, fn(&Match<'_>) -> bool),
    /// Built in code; `None` when the match does not qualify.
    Build(fn(&mut Match<'_>) -> Option<Id>),
}

/// One match of a rule's left side, as its right side sees it.
pub struct Match<'a> {
    /// The e-graph.
    pub egraph: &'a mut Graph,
    /// The matched class.
    pub root: Id,
    subst: &'a Subst,
    /// The attributes of the left side's op nodes as matched, in pre-order.
    attrs: Vec<AttrKey>,
}

impl Match<'_> {
    /// The class bound to variable `name` (`"?x"`).
    pub fn var(&self, name: &str) -> Id {
        let v: Var = name.parse().unwrap_or_else(|_| panic!("'{name}' is not a pattern variable"));
        self.egraph.find(self.subst[v])
    }

    /// What the class of variable `name` knows.
    pub fn data(&self, name: &str) -> &Data {
        &self.egraph[self.var(name)].data
    }

    /// The type of variable `name`.
    pub fn ty(&self, name: &str) -> &Type {
        &self.data(name).ty
    }

    /// The splat element of variable `name`, when it is a constant splat.
    pub fn splat(&self, name: &str) -> Option<f64> {
        self.data(name).splat_f64()
    }

    /// What the matched class knows.
    pub fn root_data(&self) -> &Data {
        &self.egraph[self.root].data
    }

    /// The attributes of the `i`-th op node of the left side, in pre-order
    /// (the root is 0), registry defaults left out.
    pub fn attrs(&self, i: usize) -> &Attrs {
        self.attrs[i].attrs()
    }

    /// The attributes of the `i`-th op node read through the registry's
    /// defaults, for an op of `kind`.
    pub fn view(&self, i: usize, kind: OpKind) -> AttrView<'_> {
        AttrView::new(kind, self.attrs(i))
    }

    /// Adds `kind(children)` with `attrs` when it type-checks.
    pub fn add(&mut self, kind: OpKind, attrs: &Attrs, children: &[Id]) -> Option<Id> {
        add_checked(self.egraph, kind, AttrKey::new(kind, attrs)?, children.to_vec())
    }

    /// Adds the term `rhs` (a pattern over the left side's variables).
    pub fn term(&mut self, rhs: &PatternAst<Dl>) -> Option<Id> {
        instantiate(self.egraph, rhs, Id::from(rhs.as_ref().len() - 1), self.subst)
    }

    /// The class of `kind(children)` with `attrs` when the e-graph holds it
    /// (either operand order for a commutative binary op); adds nothing. For
    /// a rule whose left side would be too large as a pattern: a composite
    /// checked piece by piece from the classes the pattern did bind.
    pub fn lookup(&self, kind: OpKind, attrs: &Attrs, children: &[Id]) -> Option<Id> {
        let key = AttrKey::new(kind, attrs)?;
        let find = |cs: Vec<Id>| self.egraph.lookup(Dl::op(kind, key.clone(), cs));
        let swapped = || (kind.is_commutative() && children.len() == 2).then(|| find(vec![children[1], children[0]])).flatten();
        find(children.to_vec()).or_else(swapped)
    }

    /// The class of the rank-0 constant `v` of `dtype` when the e-graph
    /// holds it.
    pub fn lookup_scalar(&self, dtype: DType, v: f64) -> Option<Id> {
        let data = if dtype.is_float() { DenseData::Float(vec![v]) } else { DenseData::Int(vec![v as i64]) };
        let value = DenseAttr { ty: TensorType::fixed(&[], dtype), data };
        self.egraph.lookup(Dl::op(OpKind::Constant, constant_key(value), Vec::new()))
    }
}

/// Adds `kind(children)` when the registry's shape rule accepts it.
pub fn add_checked(egraph: &mut Graph, kind: OpKind, attrs: AttrKey, children: Vec<Id>) -> Option<Id> {
    let types: Vec<Type> = children.iter().map(|&c| egraph[c].data.ty.clone()).collect();
    match kind.infer(&types, attrs.attrs()).as_deref() {
        Ok([_]) => {
            let node = Dl::op(kind, attrs, children);
            if super::provenance::recording() && egraph.lookup(node.clone()).is_none() {
                super::provenance::added(&node);
            }
            Some(egraph.add(node))
        }
        _ => None,
    }
}

fn instantiate(egraph: &mut Graph, ast: &PatternAst<Dl>, at: Id, subst: &Subst) -> Option<Id> {
    match &ast[at] {
        ENodeOrVar::Var(v) => Some(egraph.find(subst[*v])),
        ENodeOrVar::ENode(Dl::Op { kind, attrs, children }) => {
            let ids = children.iter().map(|&c| instantiate(egraph, ast, c, subst)).collect::<Option<Vec<Id>>>()?;
            add_checked(egraph, *kind, attrs.clone(), ids)
        }
        ENodeOrVar::ENode(Dl::Leaf(_)) => None,
    }
}

/// Every op-node assignment of the left side `ast` (rooted at `at`) that
/// matches class `class` under `subst`: each a list of attribute keys in
/// pre-order. A `{*}` pattern node may match several nodes of the class.
fn rematch(egraph: &Graph, ast: &PatternAst<Dl>, at: Id, class: Id, subst: &Subst) -> Vec<Vec<AttrKey>> {
    match &ast[at] {
        ENodeOrVar::Var(v) => {
            if egraph.find(subst[*v]) == egraph.find(class) { vec![Vec::new()] } else { Vec::new() }
        }
        ENodeOrVar::ENode(p) => {
            let mut out = Vec::new();
            // A node whose child disagrees with a variable the match bound
            // is no assignment: checked first, as it is only a class
            // comparison (a class of a saturated e-graph may hold hundreds
            // of nodes, each met once per match of that class).
            let binds = |n: &Dl| {
                p.children().iter().zip(n.children()).all(|(&pc, &nc)| match &ast[pc] {
                    ENodeOrVar::Var(v) => egraph.find(subst[*v]) == egraph.find(nc),
                    ENodeOrVar::ENode(_) => true,
                })
            };
            for n in egraph[class].nodes.iter().filter(|n| p.matches(n) && binds(n)) {
                let Dl::Op { attrs, .. } = n else { continue };
                let mut partial = vec![vec![attrs.clone()]];
                for (&pc, &nc) in p.children().iter().zip(n.children()) {
                    let subs = rematch(egraph, ast, pc, nc, subst);
                    partial = partial.iter().flat_map(|head| subs.iter().map(move |s| [head.as_slice(), s].concat())).collect();
                }
                out.extend(partial);
            }
            out.dedup();
            out
        }
    }
}

/// The op nodes of class `class` (and below) that the left side `ast`
/// (rooted at `at`) matched under `subst` with the attribute assignment
/// `attrs` (pre-order, as [`rematch`] lists them): the first such nodes, in
/// pre-order. For the provenance log only.
fn matched_nodes(egraph: &Graph, ast: &PatternAst<Dl>, at: Id, class: Id, subst: &Subst, attrs: &[AttrKey]) -> Option<Vec<Dl>> {
    match &ast[at] {
        ENodeOrVar::Var(v) => (egraph.find(subst[*v]) == egraph.find(class)).then(Vec::new),
        ENodeOrVar::ENode(p) => {
            let (head, mut rest) = attrs.split_first()?;
            'nodes: for n in egraph[class].nodes.iter().filter(|n| p.matches(n)) {
                let Dl::Op { attrs: a, .. } = n else { continue };
                if a != head {
                    continue;
                }
                let mut out = vec![n.clone()];
                for (&pc, &nc) in p.children().iter().zip(n.children()) {
                    let k = preorder_attrs(ast, pc).len();
                    let Some(sub) = rest.get(..k).and_then(|a| matched_nodes(egraph, ast, pc, nc, subst, a)) else { continue 'nodes };
                    out.extend(sub);
                    rest = &rest[k..];
                }
                return Some(out);
            }
            None
        }
    }
}

/// The attributes of a pattern's op nodes in pre-order, as [`rematch`]
/// lists them.
fn preorder_attrs(ast: &PatternAst<Dl>, at: Id) -> Vec<AttrKey> {
    match &ast[at] {
        ENodeOrVar::ENode(Dl::Op { attrs, children, .. }) => {
            let mut out = vec![attrs.clone()];
            for &c in children {
                out.extend(preorder_attrs(ast, c));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Applies one rule's right side to every match of one of its left sides.
pub struct RuleApplier {
    lhs: PatternAst<Dl>,
    /// True when the left side has a `{*}`.
    wildcard: bool,
    rhs: RhsImpl,
}

enum RhsImpl {
    Term(PatternAst<Dl>, Option<fn(&Match<'_>) -> bool>),
    Build(fn(&mut Match<'_>) -> Option<Id>),
}

impl Applier<Dl, DlAnalysis> for RuleApplier {
    fn apply_one(&self, egraph: &mut Graph, eclass: Id, subst: &Subst, _: Option<&PatternAst<Dl>>, rule_name: Symbol) -> Vec<Id> {
        let root = egraph.find(eclass);
        // A match that binds a variable to the matched class itself lives in
        // a cycle (`x = x * 4` once `x` is a zero): rewriting it only grows
        // towers like `x * 4 * 4 …`, so it is skipped.
        if self.lhs.as_ref().iter().any(|n| matches!(n, ENodeOrVar::Var(v) if egraph.find(subst[*v]) == root)) {
            return Vec::new();
        }
        // Only a `{*}` needs the matched nodes' attributes looked up.
        let assignments = if self.wildcard {
            rematch(egraph, &self.lhs, Id::from(self.lhs.as_ref().len() - 1), root, subst)
        } else {
            vec![preorder_attrs(&self.lhs, Id::from(self.lhs.as_ref().len() - 1))]
        };
        let mut changed = Vec::new();
        let recording = super::provenance::recording();
        let top = Id::from(self.lhs.as_ref().len() - 1);
        for attrs in assignments {
            let mut m = Match { egraph: &mut *egraph, root, subst, attrs };
            if let RhsImpl::Term(_, Some(cond)) = &self.rhs
                && !cond(&m)
            {
                continue;
            }
            // What the match went through, read before the right side
            // changes the e-graph.
            let matched = if recording {
                super::provenance::begin(rule_of(rule_name.as_str()));
                matched_nodes(m.egraph, &self.lhs, top, root, subst, &m.attrs).unwrap_or_default()
            } else {
                Vec::new()
            };
            let new = match &self.rhs {
                RhsImpl::Term(t, _) => m.term(t),
                RhsImpl::Build(f) => f(&mut m),
            };
            let joined = new.is_some_and(|new| egraph[new].data.ty == egraph[root].data.ty && egraph.union(root, new));
            if recording {
                super::provenance::end(root, matched, joined);
            }
            if joined {
                changed.push(root);
            }
        }
        changed
    }
}

/// The left side's forms: as written, and with the operands of each
/// commutative binary op swapped (every combination).
fn variants(lhs: &RecExpr<ENodeOrVar<Dl>>) -> Vec<RecExpr<ENodeOrVar<Dl>>> {
    let swappable: Vec<usize> = lhs
        .as_ref()
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n, ENodeOrVar::ENode(Dl::Op { kind, children, .. }) if kind.is_commutative() && children.len() == 2 && children[0] != children[1]))
        .map(|(i, _)| i)
        .collect();
    let mut out: Vec<RecExpr<ENodeOrVar<Dl>>> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for mask in 0..1usize << swappable.len() {
        let nodes: Vec<ENodeOrVar<Dl>> = lhs
            .as_ref()
            .iter()
            .enumerate()
            .map(|(i, n)| match (swappable.iter().position(|&s| s == i), n) {
                (Some(bit), ENodeOrVar::ENode(Dl::Op { kind, attrs, children })) if mask >> bit & 1 == 1 => {
                    ENodeOrVar::ENode(Dl::op(*kind, attrs.clone(), vec![children[1], children[0]]))
                }
                _ => n.clone(),
            })
            .collect();
        let v = RecExpr::from(nodes);
        let text = super::lang::term(&v);
        if !seen.contains(&text) {
            seen.push(text);
            out.push(v);
        }
    }
    out
}

/// The egg rewrites of a rule set: one per left-side form, named
/// `rule` for the form as written and `rule/N` for its swapped forms.
pub fn rewrites(rules: &[Rule]) -> Vec<Rewrite<Dl, DlAnalysis>> {
    let mut out = Vec::new();
    for r in rules {
        let lhs: PatternAst<Dl> = r.lhs.parse().unwrap_or_else(|e| panic!("rule {}: left side {}: {e}", r.name, r.lhs));
        let parse_rhs = |t: &str| -> PatternAst<Dl> {
            let ast: PatternAst<Dl> = t.parse().unwrap_or_else(|e| panic!("rule {}: right side {t}: {e}", r.name));
            assert!(ast.as_ref().iter().all(|n| !matches!(n, ENodeOrVar::ENode(Dl::Op { attrs, .. }) if attrs.is_any())), "rule {}: {{*}} on the right side", r.name);
            ast
        };
        for (i, form) in variants(&lhs).into_iter().enumerate() {
            let name = if i == 0 { r.name.to_string() } else { format!("{}/{i}", r.name) };
            let rhs = match &r.rhs {
                Rhs::Term(t) => RhsImpl::Term(parse_rhs(t), None),
                Rhs::TermIf(t, c) => RhsImpl::Term(parse_rhs(t), Some(*c)),
                Rhs::Build(f) => RhsImpl::Build(*f),
            };
            let searcher = Pattern::new(form.clone());
            let wildcard = form.as_ref().iter().any(|n| matches!(n, ENodeOrVar::ENode(Dl::Op { attrs, .. }) if attrs.is_any()));
            let applier = RuleApplier { lhs: form, wildcard, rhs };
            out.push(Rewrite::new(name.as_str(), searcher, applier).unwrap_or_else(|e| panic!("rule {name}: {e}")));
        }
    }
    out
}

/// The rule name of an egg rewrite name (`mul_one/1` → `mul_one`).
pub fn rule_of(rewrite_name: &str) -> &str {
    rewrite_name.split('/').next().unwrap_or(rewrite_name)
}

/// Every topic's rules, in stage order.
pub const TOPICS: &[(&str, &[Rule])] = &[("algebra", algebra::RULES), ("layout", layout::RULES), ("loss", loss::RULES), ("scalar", scalar::RULES), ("pooling", pooling::RULES), ("fusion", fusion::RULES)];

// --- conditions shared by the topics ---------------------------------------

/// The splat of `name` is exactly `v` (an f32 splat as the run time reads it).
pub fn splat_is(m: &Match<'_>, name: &str, v: f64) -> bool {
    m.splat(name) == Some(v)
}

/// `name` holds a float dtype.
pub fn is_float(m: &Match<'_>, name: &str) -> bool {
    m.ty(name).dtype().is_some_and(|d| d.is_float())
}

/// `name` is one number: a rank-0 value, or a splat constant.
pub fn is_scalar(m: &Match<'_>, name: &str) -> bool {
    m.data(name).splat.is_some() || m.data(name).tensor().is_some_and(|t| t.rank() == 0)
}
