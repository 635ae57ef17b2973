//! Loss functions as IR: PyTorch's `torch.nn.functional` losses, composed of
//! registry ops so that autodiff, fusion and every backend handle them with
//! no loss-specific code.

use super::emit::Emit;
use dlc_ir::registry::shape::dims_str;
use dlc_ir::train::{LossKind, LossSpec, Reduction};
use dlc_ir::{BuildError, Builder, DType, Dim, OpKind, TensorType, ValueId, attrs};

/// Appends the loss of `pred` against `target` and returns a rank-0 value of
/// `pred`'s dtype.
///
/// - `Mse`: `mean((pred - target)²)` (`F.mse_loss`); `L1`: `mean(|pred - target|)`
///   (`F.l1_loss`). `target` has `pred`'s exact type. PyTorch broadcasts a
///   `[N]` target against a `[N, 1]` prediction into `[N, N]` with only a
///   warning, a classic silent bug; dlc refuses and names the right shape.
/// - `CrossEntropy`: `pred` is logits `[N, C]` (`N` may be `?`), `target`
///   class indices `[N]` (i64 or i32). `-Σ_c one_hot(t)_c · log_softmax(x)_c`
///   per sample, then the mean over N: `F.cross_entropy`, which is
///   `nll_loss(log_softmax(x, 1), t)`. The fused `dl.log_softmax` keeps
///   large logits finite. PyTorch's `ignore_index` (-100) is not offered:
///   every index must be in `[0, C)`, else `dl.one_hot` fails at run time.
/// - `Bce`: `pred` holds probabilities; per element
///   `(t - 1) · max(log1p(-x), -100) - t · max(log(x), -100)`, PyTorch's CPU
///   kernel, whose clamp at -100 keeps `x = 0` or `1` finite.
/// - `BceWithLogits`: `max(x, 0) - x·t + log1p(exp(-|x|))`, the stable form:
///   `exp` never sees a positive argument, so ±50 (or ±1000) logits neither
///   overflow nor lose the loss to `log(0)`. PyTorch evaluates the same
///   value as `(1 - t)·x - log_sigmoid(x)`; where that cancels (a negative
///   logit with `t = 0`) this form is the more accurate one.
pub fn build_loss(b: &mut Builder, spec: &LossSpec, pred: ValueId, target: ValueId) -> Result<ValueId, BuildError> {
    let op = spec.kind.torch_name();
    let err = |message: String| BuildError { op, message };
    let pt = b.func.ty(pred).as_tensor().cloned().ok_or_else(|| err(format!("prediction must be a tensor, got {}", b.func.ty(pred))))?;
    let tt = b.func.ty(target).as_tensor().cloned().ok_or_else(|| err(format!("target must be a tensor, got {}", b.func.ty(target))))?;
    if !pt.dtype.is_float() {
        return Err(err(format!("prediction must be f32 or f64, got {pt}")));
    }
    let mut e = Emit::new(b, pt.dtype);
    let per_elem = match spec.kind {
        LossKind::CrossEntropy => {
            let classes = check_cross_entropy(&pt, &tt).map_err(err)?;
            let logp = e.b.op(OpKind::LogSoftmax, &[pred], attrs! {"axis" => 1i64})?;
            let hot = e.b.op(OpKind::OneHot, &[target], attrs! {"num_classes" => classes as i64, "dtype" => pt.dtype})?;
            let picked = e.mul(hot, logp)?;
            let per_sample = e.reduce(OpKind::ReduceSum, picked, &[1])?;
            e.neg(per_sample)?
        }
        kind => {
            check_same_type(&pt, &tt).map_err(err)?;
            elementwise(&mut e, kind, pred, target)?
        }
    };
    let rank = e.b.func.ty(per_elem).as_tensor().map_or(0, TensorType::rank);
    let axes: Vec<i64> = (0..rank as i64).collect();
    let reduce = match spec.reduction {
        Reduction::Mean => OpKind::ReduceMean,
        Reduction::Sum => OpKind::ReduceSum,
    };
    e.reduce(reduce, per_elem, &axes)
}

/// The unreduced loss of the elementwise kinds.
fn elementwise(e: &mut Emit, kind: LossKind, x: ValueId, t: ValueId) -> Result<ValueId, BuildError> {
    match kind {
        LossKind::Mse => {
            // PyTorch: (input - target).pow(2), and pow(·, 2) is x·x.
            let d = e.sub(x, t)?;
            e.mul(d, d)
        }
        LossKind::L1 => {
            let d = e.sub(x, t)?;
            e.abs(d)
        }
        LossKind::Bce => {
            // (t - 1) * max(log1p(-x), -100) - t * max(log(x), -100)
            // The logs only see arguments in their domain (x > 0, x < 1); outside
            // it the -100 floor is selected directly. The clamp alone would keep
            // the value finite but not the gradient (0 · ∞ at x = 0 or 1, where an
            // f32 sigmoid lands for logits past ±17).
            let (zero, one, floor) = (e.c(0.0), e.c(1.0), e.c(-100.0));
            let neg_x = e.neg(x)?;
            let below_one = e.cmp("lt", x, one)?;
            let safe_neg_x = e.select(below_one, neg_x, zero)?;
            let log_1mx = e.log1p(safe_neg_x)?;
            let log_1mx = e.select(below_one, log_1mx, floor)?;
            let log_1mx = e.maximum(log_1mx, floor)?;
            let above_zero = e.cmp("gt", x, zero)?;
            let safe_x = e.select(above_zero, x, one)?;
            let log_x = e.log(safe_x)?;
            let log_x = e.select(above_zero, log_x, floor)?;
            let log_x = e.maximum(log_x, floor)?;
            let tm1 = e.sub(t, one)?;
            let a = e.mul(tm1, log_1mx)?;
            let b = e.mul(t, log_x)?;
            e.sub(a, b)
        }
        LossKind::BceWithLogits => {
            // max(x, 0) - x * t + log1p(exp(-|x|))
            let pos = e.relu(x)?;
            let xt = e.mul(x, t)?;
            let abs = e.abs(x)?;
            let neg_abs = e.neg(abs)?;
            let ex = e.exp(neg_abs)?;
            let soft = e.log1p(ex)?;
            let m = e.sub(pos, xt)?;
            e.add(m, soft)
        }
        LossKind::CrossEntropy => unreachable!("cross-entropy is built by build_loss"),
    }
}

/// The elementwise losses take a target of the prediction's exact type.
fn check_same_type(pred: &TensorType, target: &TensorType) -> Result<(), String> {
    if target.dtype != pred.dtype {
        return Err(format!("target must have the prediction's element type {}, got {target} (cast it first)", pred.dtype));
    }
    if target.shape == pred.shape {
        return Ok(());
    }
    let mut msg = format!("target shape [{}] does not match prediction shape [{}]", dims_str(&target.shape), dims_str(&pred.shape));
    // The classic slip: a [N] target against a [N, 1] prediction, which
    // PyTorch broadcasts to [N, N] (with only a warning). When the two differ
    // only in size-1 dims, a reshape is the fix.
    let squeeze = |s: &[Dim]| s.iter().copied().filter(|&d| d != Dim::Static(1)).collect::<Vec<_>>();
    if squeeze(&pred.shape) == squeeze(&target.shape) {
        msg += &format!(
            "; reshape the target to [{}] (PyTorch would broadcast the two to a larger shape with only a warning, which is almost never intended)",
            dims_str(&pred.shape)
        );
    }
    Err(msg)
}

/// Checks logits `[N, C]` against indices `[N]`; returns the class count C.
fn check_cross_entropy(pred: &TensorType, target: &TensorType) -> Result<u64, String> {
    if pred.rank() != 2 {
        return Err(format!("logits must be [N, C], got {pred}"));
    }
    let Some(classes) = pred.shape[1].as_static() else {
        return Err(format!("the class dim of the logits must be static, got {pred}"));
    };
    if !matches!(target.dtype, DType::I64 | DType::I32) {
        return Err(format!(
            "target must hold class indices (i64 or i32) of shape [{}], got {target}; probabilities as targets are not supported",
            dims_str(&pred.shape[..1])
        ));
    }
    if target.shape != pred.shape[..1] {
        return Err(format!(
            "target shape [{}] does not match the logits' batch: expected class indices of shape [{}] for logits {pred}",
            dims_str(&target.shape),
            dims_str(&pred.shape[..1])
        ));
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Attrs, Function};

    fn build(kind: LossKind, pred: TensorType, target: TensorType) -> Result<Function, BuildError> {
        let mut f = Function::new("loss");
        let p = f.add_arg(pred.into(), Some("pred"), Attrs::new());
        let t = f.add_arg(target.into(), Some("target"), Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let l = build_loss(&mut b, &LossSpec { kind, reduction: Reduction::Mean }, p, t)?;
        b.ret(&[l]);
        Ok(f)
    }

    fn dyn_ty(dims: &[Option<u64>], dtype: DType) -> TensorType {
        TensorType::new(dims.iter().map(|d| d.map_or(Dim::Dynamic, Dim::Static)).collect(), dtype)
    }

    #[test]
    fn every_loss_verifies_and_returns_a_scalar_of_the_prediction_dtype() {
        for kind in LossKind::ALL {
            for dtype in [DType::F32, DType::F64] {
                let pred = dyn_ty(&[None, Some(4)], dtype);
                let target = if kind == LossKind::CrossEntropy { dyn_ty(&[None], DType::I64) } else { pred.clone() };
                let f = build(kind, pred, target).unwrap();
                dlc_ir::verify_function(&f).unwrap();
                assert_eq!(f.result_types[0].to_string(), format!("tensor<{dtype}>"), "{kind:?}");
            }
        }
    }

    #[test]
    fn a_column_prediction_against_a_flat_target_is_refused_with_the_fix() {
        let e = build(LossKind::Mse, dyn_ty(&[None, Some(1)], DType::F32), dyn_ty(&[None], DType::F32)).unwrap_err();
        assert_eq!(e.op, "mse_loss");
        assert!(e.message.starts_with("target shape [?] does not match prediction shape [?, 1]; reshape the target to [?, 1]"), "{e}");
        let e = build(LossKind::L1, TensorType::fixed(&[4, 3], DType::F64), TensorType::fixed(&[3, 4], DType::F64)).unwrap_err();
        assert_eq!(e.to_string(), "'l1_loss' target shape [3, 4] does not match prediction shape [4, 3]");
    }

    #[test]
    fn bad_targets_get_clear_errors() {
        let f32_ = |d: &[u64]| TensorType::fixed(d, DType::F32);
        let e = build(LossKind::Bce, f32_(&[2, 3]), TensorType::fixed(&[2, 3], DType::F64)).unwrap_err();
        assert!(e.message.contains("must have the prediction's element type f32"), "{e}");
        let e = build(LossKind::CrossEntropy, f32_(&[8, 10]), f32_(&[8, 10])).unwrap_err();
        assert!(e.message.contains("class indices (i64 or i32) of shape [8]"), "{e}");
        let e = build(LossKind::CrossEntropy, f32_(&[8, 10]), TensorType::fixed(&[7], DType::I64)).unwrap_err();
        assert_eq!(e.to_string(), "'cross_entropy' target shape [7] does not match the logits' batch: expected class indices of shape [8] for logits tensor<8x10xf32>");
        let e = build(LossKind::CrossEntropy, f32_(&[8]), TensorType::fixed(&[8], DType::I64)).unwrap_err();
        assert!(e.message.contains("logits must be [N, C]"), "{e}");
        let e = build(LossKind::Mse, TensorType::fixed(&[3], DType::I64), TensorType::fixed(&[3], DType::I64)).unwrap_err();
        assert!(e.message.contains("must be f32 or f64"), "{e}");
    }
}
