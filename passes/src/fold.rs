//! Constant folding: an op whose operands are all constants is evaluated at
//! compile time and becomes a `dl.constant`.
//!
//! The op is evaluated by the reference interpreter's own single-op
//! evaluator, [`dlc_backends::eval_op`], so a folded value is bit for bit what
//! the op would have computed at run time; this pass knows no op's semantics.
//! Only static results of at most [`Fold::max_elements`] elements are folded
//! (a `?` dim is never folded: its size is known only at run time), so the
//! IR text does not grow by big literal tensors. A result whose elements are
//! all equal becomes a splat. An op the interpreter rejects (an index out of
//! range, say) is left alone, to fail at run time as it would have.
//!
//! The op is turned into the constant in place: its result keeps its id, name
//! and position, so no use needs rewriting.

use crate::Pass;
use crate::rewrite::constant_of;
use dlc_backends::{Tensor, eval_op};
use dlc_ir::{Attr, Attrs, Category, DenseAttr, DenseData, Function, OpId, OpKind, Region, Type};

/// The constant-folding pass.
pub struct Fold {
    /// The largest result, in elements, that is folded.
    pub max_elements: u64,
}

impl Default for Fold {
    fn default() -> Self {
        Fold { max_elements: 4096 }
    }
}

impl Pass for Fold {
    fn name(&self) -> &'static str {
        "fold"
    }

    fn summary(&self) -> &'static str {
        "evaluate small static ops whose operands are all constants into one dl.constant"
    }

    fn run(&self, f: &mut Function) -> bool {
        let body = f.body.clone();
        let mut changed = false;
        self.region(f, &body, &mut changed);
        changed
    }
}

impl Fold {
    fn region(&self, f: &mut Function, r: &Region, changed: &mut bool) {
        for &b in &r.blocks {
            for o in f.block(b).ops.clone() {
                for sub in f.op(o).regions.clone() {
                    self.region(f, &sub, changed);
                }
                if let Some(value) = self.fold(f, o) {
                    let op = f.op_mut(o);
                    op.kind = OpKind::Constant;
                    op.operands.clear();
                    op.attrs = Attrs::from([("value".to_string(), Attr::Dense(value))]);
                    *changed = true;
                }
            }
        }
    }

    /// The op's value, when it can and should be folded.
    fn fold(&self, f: &Function, o: OpId) -> Option<DenseAttr> {
        let op = f.op(o);
        if matches!(op.kind.category(), Category::Source | Category::Terminator) || !op.regions.is_empty() {
            return None;
        }
        let [result] = op.results[..] else { return None };
        let Type::Tensor(ty) = f.ty(result) else { return None };
        if ty.num_elements().is_none_or(|n| n > self.max_elements) {
            return None;
        }
        let constants = op.operands.iter().map(|&v| constant_of(f, v)).collect::<Option<Vec<DenseAttr>>>()?;
        let inputs = constants.iter().map(|c| eval_op(OpKind::Constant, &constant_attrs(c), &[], None)).collect::<Result<Vec<Tensor>, _>>().ok()?;
        let out = eval_op(op.kind, &op.attrs, &inputs.iter().collect::<Vec<_>>(), None).ok()?;
        let shape_ok = out.shape().iter().zip(&ty.shape).all(|(&n, d)| d.as_static() == Some(n as u64));
        if out.dtype() != ty.dtype || out.rank() != ty.rank() || !shape_ok {
            return None;
        }
        let value = DenseAttr { ty: ty.clone(), data: splat_if_uniform(dense_data(&out)) };
        value.check().is_ok().then_some(value)
    }
}

fn constant_attrs(c: &DenseAttr) -> Attrs {
    Attrs::from([("value".to_string(), Attr::Dense(c.clone()))])
}

/// A tensor's elements as a dense attribute stores them.
fn dense_data(t: &Tensor) -> DenseData {
    match t {
        Tensor::F32(a) => DenseData::Float(a.iter().map(|&x| x as f64).collect()),
        Tensor::F64(a) => DenseData::Float(a.iter().copied().collect()),
        Tensor::I32(a) => DenseData::Int(a.iter().map(|&x| x as i64).collect()),
        Tensor::I64(a) => DenseData::Int(a.iter().copied().collect()),
        Tensor::I1(a) => DenseData::Bool(a.iter().copied().collect()),
    }
}

/// One element when all are equal (floats by their bits, so `-0.0` and `0.0`
/// or two NaNs with different payloads stay apart).
fn splat_if_uniform(d: DenseData) -> DenseData {
    fn uniform<T: Copy, K: PartialEq>(v: &[T], key: impl Fn(T) -> K) -> bool {
        v.len() > 1 && v.iter().all(|&x| key(x) == key(v[0]))
    }
    match d {
        DenseData::Float(v) if uniform(&v, f64::to_bits) => DenseData::Float(vec![v[0]]),
        DenseData::Int(v) if uniform(&v, |x| x) => DenseData::Int(vec![v[0]]),
        DenseData::Bool(v) if uniform(&v, |x| x) => DenseData::Bool(vec![v[0]]),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Builder, DType, Dim, TensorType, attrs, print_function};

    fn kinds(f: &Function) -> Vec<OpKind> {
        f.walk().iter().map(|&o| f.op(o).kind).collect()
    }

    #[test]
    fn chains_of_constant_ops_fold_to_one_constant() {
        let mut f = Function::new("f");
        let mut b = Builder::at_entry(&mut f);
        let two = b.scalar(2.0, DType::F32);
        let v = b.constant(DenseAttr { ty: TensorType::fixed(&[3], DType::F32), data: DenseData::Float(vec![1.0, 2.0, 3.0]) }).unwrap();
        let m = b.op(OpKind::Mul, &[v, two], Attrs::new()).unwrap();
        let s = b.op(OpKind::ReduceSum, &[m], attrs! {"axes" => Attr::ints(&[0])}).unwrap();
        let z = b.op(OpKind::BroadcastTo, &[two], attrs! {"shape" => Attr::ints(&[2, 2])}).unwrap();
        b.ret(&[m, s, z]);
        assert!(Fold::default().run(&mut f));
        dlc_ir::verify_function(&f).unwrap();
        let text = print_function(&f);
        assert!(text.contains("dense<[2.0, 4.0, 6.0]> : tensor<3xf32>"), "{text}");
        assert!(text.contains("dense<12.0> : tensor<f32>"), "{text}");
        assert!(text.contains("dense<2.0> : tensor<2x2xf32>"), "a uniform result is a splat: {text}");
        assert_eq!(kinds(&f).iter().filter(|&&k| k != OpKind::Constant).count(), 1, "only the return is left");
        assert!(!Fold::default().run(&mut f));
    }

    #[test]
    fn dynamic_big_and_non_constant_ops_stay() {
        let mut f = Function::new("f");
        let x = f.add_arg(TensorType::new(vec![Dim::Dynamic, Dim::Static(2)], DType::F32).into(), Some("x"), Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let one = b.scalar(1.0, DType::F32);
        let dynamic = b.op(OpKind::BroadcastTo, &[one], attrs! {"shape" => Attr::ints(&[-1, 2])}).unwrap();
        let big = b.op(OpKind::BroadcastTo, &[one], attrs! {"shape" => Attr::ints(&[65, 64])}).unwrap();
        let mixed = b.op(OpKind::Add, &[x, one], Attrs::new()).unwrap();
        b.ret(&[dynamic, big, mixed]);
        assert!(!Fold::default().run(&mut f));
        assert!(Fold { max_elements: 65 * 64 }.run(&mut f), "within a raised limit it folds");
    }

    #[test]
    fn integer_and_boolean_results_keep_their_dtype() {
        let mut f = Function::new("f");
        let mut b = Builder::at_entry(&mut f);
        let v = b.constant(DenseAttr { ty: TensorType::fixed(&[3], DType::I32), data: DenseData::Int(vec![3, -1, 7]) }).unwrap();
        let am = b.op(OpKind::Argmax, &[v], attrs! {"axis" => 0i64}).unwrap();
        let zero = b.scalar(0.0, DType::I32);
        let pos = b.op(OpKind::Cmp, &[v, zero], attrs! {"predicate" => "gt"}).unwrap();
        b.ret(&[am, pos]);
        assert!(Fold::default().run(&mut f));
        dlc_ir::verify_function(&f).unwrap();
        let text = print_function(&f);
        assert!(text.contains("dense<2> : tensor<i64>"), "{text}");
        assert!(text.contains("dense<[true, false, true]> : tensor<3xi1>"), "{text}");
    }
}
