//! What the rewriting passes share: reading a value's constant, and the
//! substitution map that redirects uses of a removed op's results.

use dlc_ir::{AttrView, Category, DenseAttr, DenseData, DType, Function, OpId, ValueDef, ValueId};

/// The dense value of `v` when a constant (a [`Category::Source`] op) defines it.
pub(crate) fn constant_of(f: &Function, v: ValueId) -> Option<DenseAttr> {
    let ValueDef::OpResult { op, .. } = f.value(v).def else { return None };
    let data = f.op(op);
    if data.kind.category() != Category::Source || !data.regions.is_empty() {
        return None;
    }
    AttrView::new(data.kind, &data.attrs).dense("value").ok()
}

/// True when the constant has elements and every one satisfies `pred`, read
/// as the run time reads it: an f32 tensor's elements rounded to f32 first.
pub(crate) fn all_elements(d: &DenseAttr, pred: impl Fn(Elem) -> bool) -> bool {
    let f32 = d.ty.dtype == DType::F32;
    !d.data.is_empty()
        && match &d.data {
            DenseData::Float(v) => v.iter().all(|&x| pred(Elem::Float(if f32 { x as f32 as f64 } else { x }))),
            DenseData::Int(v) => v.iter().all(|&x| pred(Elem::Int(x))),
            DenseData::Bool(v) => v.iter().all(|&x| pred(Elem::Bool(x))),
        }
}

/// One element of a constant.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Elem {
    Float(f64),
    Int(i64),
    Bool(bool),
}

/// Where uses of removed values go: `from → to`, followed transitively.
pub(crate) struct Subst(Vec<Option<ValueId>>);

impl Subst {
    pub(crate) fn new(f: &Function) -> Self {
        Subst(vec![None; f.num_values()])
    }

    pub(crate) fn set(&mut self, from: ValueId, to: ValueId) {
        self.0[from.0 as usize] = Some(to);
    }

    pub(crate) fn get(&self, mut v: ValueId) -> ValueId {
        while let Some(to) = self.0.get(v.0 as usize).copied().flatten() {
            v = to;
        }
        v
    }

    /// Points `op`'s operands at their replacements.
    pub(crate) fn apply(&self, f: &mut Function, op: OpId) {
        let resolved: Vec<ValueId> = f.op(op).operands.iter().map(|&v| self.get(v)).collect();
        f.op_mut(op).operands = resolved;
    }
}
