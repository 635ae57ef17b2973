//! The e-graph language of the `dl` dialect, derived from the op registry.
//!
//! There is no second op list here: an e-node is an [`OpKind`] (whatever the
//! registry holds) with its attributes and children, or an opaque
//! [`Dl::Leaf`]. Attributes are part of the node's identity through an
//! [`AttrKey`], the canonical text of the attributes that differ from the
//! registry's defaults, so `matmul` and `matmul{transpose_b=true}` are
//! different operators while `matmul{transpose_a=false}` is plain `matmul`.
//!
//! The text form is egg's s-expressions with the op's short name, so rules
//! and tests read like egg's own: `(relu (add ?a ?b))`,
//! `(matmul{transpose_b=true} %0 %1)`, `constant{value=dense<1.0>:tensor<f32>}`.
//! `%N` is leaf `N`. In a rule's left-hand side, `{*}` matches any attributes
//! (`(exp (log_softmax{*} ?x))`); the rule's applier then reads the matched
//! node's attributes (see `rules`). A `{*}` never enters an e-graph.

use dlc_ir::print::print_attr_dict;
use dlc_ir::{Attr, Attrs, AttrView, Category, Function, OpData, OpKind, parse_attr_dict};
use egg::{FromOp, Id, Language};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An op's attributes as part of its e-node: the canonical text (only the
/// attributes that differ from the registry defaults, whitespace removed)
/// and the parsed dictionary, so nothing is parsed twice. Equality, order and
/// hash are the text's.
#[derive(Clone)]
pub struct AttrKey(Arc<(String, Attrs)>);

/// The text of the pattern-only wildcard key.
const ANY: &str = "{*}";

/// The empty key, shared (most ops have no attributes beyond the
/// defaults, and equal keys that share an allocation compare by pointer).
static NONE_KEY: std::sync::LazyLock<AttrKey> = std::sync::LazyLock::new(|| AttrKey(Arc::new((String::new(), Attrs::new()))));

/// The wildcard key, shared.
static ANY_KEY: std::sync::LazyLock<AttrKey> = std::sync::LazyLock::new(|| AttrKey(Arc::new((ANY.to_string(), Attrs::new()))));

impl AttrKey {
    /// No attributes beyond the defaults.
    pub fn none() -> AttrKey {
        NONE_KEY.clone()
    }

    /// The wildcard of rule left-hand sides: matches any attributes. One
    /// shared allocation, so [`AttrKey::is_any`] compares a pointer.
    pub fn any() -> AttrKey {
        ANY_KEY.clone()
    }

    /// The key of `attrs` on an op of `kind`, or `None` when the text could
    /// not be an s-expression atom (a string attribute with a space or a
    /// parenthesis in it): such an op stays opaque.
    pub fn new(kind: OpKind, attrs: &Attrs) -> Option<AttrKey> {
        let defaults = Attrs::new();
        let defaults = AttrView::new(kind, &defaults);
        let kept: Attrs = attrs.iter().filter(|(k, v)| defaults.get(k).as_ref() != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if kept.is_empty() {
            return Some(AttrKey::none());
        }
        let text = strip_spaces(&print_attr_dict(&kept))?;
        (text != ANY).then(|| AttrKey(Arc::new((text, kept))))
    }

    /// Reads the attributes of an op of `kind` from text
    /// (`{transpose_b=true}`, or empty) into their canonical key, so
    /// `{transpose_a=false}` is the empty key.
    pub fn parse(kind: OpKind, text: &str) -> Result<AttrKey, String> {
        match text {
            "" => Ok(AttrKey::none()),
            ANY => Ok(AttrKey::any()),
            _ => {
                let attrs = parse_attr_dict(text).map_err(|e| format!("attributes {text}: {e}"))?;
                for (name, a) in &attrs {
                    let spec = kind.def().attrs.iter().find(|s| s.name == name).ok_or_else(|| format!("{} has no attribute '{name}'", kind.name()))?;
                    if !spec.kind.accepts(a) {
                        return Err(format!("{}: attribute '{name}' must be {}", kind.name(), spec.kind.describe()));
                    }
                }
                AttrKey::new(kind, &attrs).ok_or_else(|| format!("attributes {text} have no atom form"))
            }
        }
    }

    /// The canonical text.
    pub fn text(&self) -> &str {
        &self.0.0
    }

    /// The attributes (registry defaults left out).
    pub fn attrs(&self) -> &Attrs {
        &self.0.1
    }

    /// True for the wildcard `{*}` (which only [`AttrKey::any`] makes).
    pub fn is_any(&self) -> bool {
        Arc::ptr_eq(&self.0, &ANY_KEY.0)
    }
}

/// `print_attr_dict`'s text without whitespace outside string literals; `None`
/// when a string literal holds whitespace or a parenthesis.
fn strip_spaces(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_string = false;
    for c in s.chars() {
        if c == '"' {
            in_string = !in_string;
        }
        if in_string && (c.is_whitespace() || c == '(' || c == ')') {
            return None;
        }
        if !c.is_whitespace() || in_string {
            out.push(c);
        }
    }
    Some(out)
}

impl PartialEq for AttrKey {
    fn eq(&self, o: &Self) -> bool {
        // Keys are cloned far more often than built: most comparisons meet
        // the same allocation.
        Arc::ptr_eq(&self.0, &o.0) || self.text() == o.text()
    }
}
impl Eq for AttrKey {}
impl PartialOrd for AttrKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for AttrKey {
    fn cmp(&self, o: &Self) -> Ordering {
        self.text().cmp(o.text())
    }
}
impl Hash for AttrKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.text().hash(h)
    }
}
impl fmt::Debug for AttrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// One e-node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dl {
    /// A registry op with one result and no regions: a pure function of its
    /// children and attributes.
    Op {
        /// Which op.
        kind: OpKind,
        /// Its non-default attributes.
        attrs: AttrKey,
        /// Its operands' classes, in order.
        children: Vec<Id>,
    },
    /// A value the e-graph does not look into: a function argument, a result
    /// of an op with regions or several results, a non-splat constant. The
    /// number indexes the pass's leaf table.
    Leaf(u32),
}

/// What identifies an operator regardless of attributes: e-matching looks up
/// candidate nodes by it, so a `{*}` pattern finds every node of its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Discriminant {
    /// An op of this kind.
    Op(OpKind),
    /// A leaf.
    Leaf(u32),
}

impl Dl {
    /// An op node.
    pub fn op(kind: OpKind, attrs: AttrKey, children: Vec<Id>) -> Dl {
        Dl::Op { kind, attrs, children }
    }

    /// The op kind, for op nodes.
    pub fn kind(&self) -> Option<OpKind> {
        match self {
            Dl::Op { kind, .. } => Some(*kind),
            Dl::Leaf(_) => None,
        }
    }
}

impl Language for Dl {
    type Discriminant = Discriminant;

    fn discriminant(&self) -> Discriminant {
        match self {
            Dl::Op { kind, .. } => Discriminant::Op(*kind),
            Dl::Leaf(i) => Discriminant::Leaf(*i),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (Dl::Op { kind: k1, attrs: a1, children: c1 }, Dl::Op { kind: k2, attrs: a2, children: c2 }) => {
                k1 == k2 && c1.len() == c2.len() && (a1.is_any() || a2.is_any() || a1 == a2)
            }
            (Dl::Leaf(a), Dl::Leaf(b)) => a == b,
            _ => false,
        }
    }

    fn children(&self) -> &[Id] {
        match self {
            Dl::Op { children, .. } => children,
            Dl::Leaf(_) => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Dl::Op { children, .. } => children,
            Dl::Leaf(_) => &mut [],
        }
    }
}

/// The op's name in terms: `add` for `dl.add`; other dialects keep theirs.
pub fn short_name(kind: OpKind) -> &'static str {
    kind.name().strip_prefix("dl.").unwrap_or(kind.name())
}

impl fmt::Display for Dl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dl::Op { kind, attrs, .. } => write!(f, "{}{}", short_name(*kind), attrs.text()),
            Dl::Leaf(i) => write!(f, "%{i}"),
        }
    }
}

impl FromOp for Dl {
    type Error = String;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, String> {
        if let Some(i) = op.strip_prefix('%') {
            let i = i.parse().map_err(|_| format!("bad leaf '{op}'"))?;
            return if children.is_empty() { Ok(Dl::Leaf(i)) } else { Err(format!("leaf '{op}' takes no children")) };
        }
        let (name, key) = op.find('{').map_or((op, ""), |i| op.split_at(i));
        let kind = OpKind::from_name(&format!("dl.{name}")).or_else(|| OpKind::from_name(name)).ok_or_else(|| format!("unknown op '{name}'"))?;
        if !kind.def().operands.accepts(children.len()) {
            return Err(format!("'{name}' does not take {} operand(s)", children.len()));
        }
        Ok(Dl::op(kind, AttrKey::parse(kind, key)?, children))
    }
}

/// A term as rules and tests write it, `(matmul{transpose_b=true} %0 %1)`:
/// egg's own `Display` quotes every atom with a brace or a `%`.
pub fn term<L: Language + fmt::Display>(e: &egg::RecExpr<L>) -> String {
    fn go<L: Language + fmt::Display>(e: &egg::RecExpr<L>, at: Id, out: &mut String) {
        let n = &e[at];
        if n.is_leaf() {
            out.push_str(&n.to_string());
            return;
        }
        out.push('(');
        out.push_str(&n.to_string());
        for &c in n.children() {
            out.push(' ');
            go(e, c, out);
        }
        out.push(')');
    }
    let mut out = String::new();
    if !e.as_ref().is_empty() {
        go(e, Id::from(e.as_ref().len() - 1), &mut out);
    }
    out
}

/// The node an op of `f` becomes when the e-graph models it, with its
/// operands' classes still to fill in; `None` for an op that stays opaque
/// (its results become leaves): ops with regions or other than one result,
/// terminators, non-splat constants, attributes that have no atom form.
pub fn model(f: &Function, op: &OpData) -> Option<(OpKind, AttrKey)> {
    if op.results.len() != 1 || !op.regions.is_empty() || op.kind.category() == Category::Terminator {
        return None;
    }
    if op.kind.category() == Category::Source {
        let value = AttrView::new(op.kind, &op.attrs).dense("value").ok()?;
        if !value.is_splat() {
            return None;
        }
    }
    // The op must also type-check as the registry says, so every node's
    // class type is its inferred type.
    let types: Vec<_> = op.operands.iter().map(|&v| f.ty(v).clone()).collect();
    if op.kind.infer(&types, &op.attrs).ok()? != [f.ty(op.results[0]).clone()] {
        return None;
    }
    Some((op.kind, AttrKey::new(op.kind, &op.attrs)?))
}

/// The key of a splat constant of `value`.
pub fn constant_key(value: dlc_ir::DenseAttr) -> AttrKey {
    let attrs = Attrs::from([("value".to_string(), Attr::Dense(value))]);
    AttrKey::new(OpKind::Constant, &attrs).expect("a dense constant prints without spaces once stripped")
}
