//! Optimizer updates as IR: one step of one parameter, equal to PyTorch's
//! single-tensor (`foreach=False`) implementations in `torch/optim/*.py`.
//!
//! An update is a pure function `(param, grad, state…, step) → (param',
//! state'…)`: the optimizer's state (momentum buffers, running averages) is
//! passed in and returned as values, in `Optimizer::state_slots` order, so
//! a training step is one SSA function a backend can compile and run in a
//! loop, feeding each step's outputs back as the next step's inputs.
//!
//! PyTorch's operation order is kept so that results agree to rounding:
//! `p.add_(g, alpha=a)` is `p + a·g`, `addcmul_(t1, t2, value=v)` is
//! `self + (v·t1)·t2`, `addcdiv_(t1, t2, value=v)` is `self + (v·t1)/t2` (the
//! order of ATen's CPU kernels), and `lerp_(end, w)` is `self + w·(end - self)`
//! for `|w| < 0.5`, else `end - (end - self)·(1 - w)`. ATen fuses some of
//! these into fused multiply-adds, which dlc has no op for: f32 results can
//! differ in the last bit or two per step, f64 results agree to ~1e-15.

use super::emit::Emit;
use dlc_ir::train::Optimizer;
use dlc_ir::{BuildError, Builder, DType, ValueId};

/// Appending an optimizer's update to IR: implemented for
/// [`dlc_ir::train::Optimizer`], whose data (hyper-parameters, state slots)
/// lives in the IR crate where the frontend shares it.
pub trait BuildUpdate {
    /// Appends one update step of one parameter and returns `(new_param,
    /// new_state)`, the state in [`Optimizer::state_slots`] order.
    ///
    /// `grad` and every state value have `param`'s type (f32 or f64); `step`
    /// is a rank-0 value of the same dtype holding the 1-based count t of
    /// this update (PyTorch's `state["step"]` after its `+= 1`), used for
    /// SGD's first step, Adagrad's `lr_decay` and Adam's bias corrections.
    /// The formulas are in the doc of each builder below.
    fn build_update(&self, b: &mut Builder, param: ValueId, grad: ValueId, state: &[ValueId], step: ValueId) -> Result<(ValueId, Vec<ValueId>), BuildError>;
}

impl BuildUpdate for Optimizer {
    fn build_update(&self, b: &mut Builder, param: ValueId, grad: ValueId, state: &[ValueId], step: ValueId) -> Result<(ValueId, Vec<ValueId>), BuildError> {
        let op = self.name();
        let err = |message: String| BuildError { op, message };
        self.validate().map_err(err)?;
        let dtype = check_operands(self, b, param, grad, state, step).map_err(err)?;
        let mut e = Emit::new(b, dtype);
        match *self {
            Optimizer::Sgd { lr, momentum, dampening, nesterov, weight_decay } => {
                sgd(&mut e, [lr, momentum, dampening, weight_decay], nesterov, param, grad, state, step)
            }
            Optimizer::Adagrad { lr, lr_decay, weight_decay, eps, .. } => adagrad(&mut e, [lr, lr_decay, weight_decay, eps], param, grad, state[0], step),
            Optimizer::RmsProp { lr, alpha, eps, weight_decay, momentum, centered } => {
                rmsprop(&mut e, [lr, alpha, eps, weight_decay, momentum], centered, param, grad, state)
            }
            Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, amsgrad } => {
                adam(&mut e, [lr, beta1, beta2, eps, weight_decay], amsgrad, false, param, grad, state, step)
            }
            Optimizer::AdamW { lr, beta1, beta2, eps, weight_decay, amsgrad } => {
                adam(&mut e, [lr, beta1, beta2, eps, weight_decay], amsgrad, true, param, grad, state, step)
            }
        }
    }
}

/// Checks the operand types; returns the parameter's dtype.
fn check_operands(opt: &Optimizer, b: &Builder, param: ValueId, grad: ValueId, state: &[ValueId], step: ValueId) -> Result<DType, String> {
    let f = &*b.func;
    let pt = f.ty(param).as_tensor().filter(|t| t.dtype.is_float()).ok_or_else(|| format!("parameter must be an f32 or f64 tensor, got {}", f.ty(param)))?;
    if f.ty(grad) != f.ty(param) {
        return Err(format!("gradient must have the parameter's type {pt}, got {}", f.ty(grad)));
    }
    let slots = opt.state_slots();
    if state.len() != slots.len() {
        let names: Vec<_> = slots.iter().map(|s| s.0).collect();
        return Err(format!("expects {} state value(s) [{}], got {}", slots.len(), names.join(", "), state.len()));
    }
    for (&(name, _), &s) in slots.iter().zip(state) {
        if f.ty(s) != f.ty(param) {
            return Err(format!("state '{name}' must have the parameter's type {pt}, got {}", f.ty(s)));
        }
    }
    let st = f.ty(step).as_tensor();
    if st.is_none_or(|t| t.rank() != 0 || t.dtype != pt.dtype) {
        return Err(format!("step must be a rank-0 {} tensor holding the 1-based step count, got {}", pt.dtype, f.ty(step)));
    }
    Ok(pt.dtype)
}

/// `p.add_(g, alpha=a)` and `g.add(p, alpha=wd)`: `x + a·y`.
fn add_scaled(e: &mut Emit, x: ValueId, y: ValueId, a: f64) -> Result<ValueId, BuildError> {
    let a = e.c(a);
    let ay = e.mul(y, a)?;
    e.add(x, ay)
}

/// `grad.add(param, alpha=weight_decay)` when the decay is nonzero.
fn coupled_decay(e: &mut Emit, grad: ValueId, param: ValueId, weight_decay: f64) -> Result<ValueId, BuildError> {
    if weight_decay != 0.0 { add_scaled(e, grad, param, weight_decay) } else { Ok(grad) }
}

/// `x.lerp_(end, w)` as ATen computes it: `x + w·(end - x)` for `|w| < 0.5`,
/// else `end - (end - x)·(1 - w)`, the weight rounded to the tensor's dtype.
fn lerp(e: &mut Emit, x: ValueId, end: ValueId, w: f64) -> Result<ValueId, BuildError> {
    let small = if e.dtype == DType::F32 { (w as f32).abs() < 0.5 } else { w.abs() < 0.5 };
    let wc = e.c(w);
    let diff = e.sub(end, x)?;
    if small {
        let t = e.mul(wc, diff)?;
        e.add(x, t)
    } else {
        let one = e.c(1.0);
        let omw = e.sub(one, wc)?;
        let t = e.mul(diff, omw)?;
        e.sub(end, t)
    }
}

/// `x.addcmul_(t, t, value=v)`: `x + (v·t)·t`.
fn add_square(e: &mut Emit, x: ValueId, t: ValueId, v: f64) -> Result<ValueId, BuildError> {
    let vt = if v == 1.0 {
        t
    } else {
        let v = e.c(v);
        e.mul(v, t)?
    };
    let sq = e.mul(vt, t)?;
    e.add(x, sq)
}

/// `x.addcdiv_(t1, t2, value=v)` with `v` a value already in the tensor's dtype: `x + (v·t1)/t2`.
fn add_quotient(e: &mut Emit, x: ValueId, v: ValueId, t1: ValueId, t2: ValueId) -> Result<ValueId, BuildError> {
    let vt = e.mul(v, t1)?;
    let q = e.div(vt, t2)?;
    e.add(x, q)
}

/// A coefficient computed in f64 (Python's floats), rounded to the tensor dtype.
fn to_tensor_dtype(e: &mut Emit, v: ValueId) -> Result<ValueId, BuildError> {
    let d = e.dtype;
    e.cast(v, d)
}

/// `torch.optim.SGD` (`_single_tensor_sgd`):
/// ```text
/// g = g + wd·p                                   (if wd ≠ 0)
/// buf = g                            at t = 1    (if momentum ≠ 0)
/// buf = momentum·buf + (1 - dampening)·g   after
/// g = g + momentum·buf  (nesterov)  or  g = buf
/// p = p - lr·g
/// ```
/// PyTorch's buffer is `None` before the first step and then becomes a copy
/// of the gradient, undampened; here the slot starts at zeros and a
/// `select` on `t == 1` picks the gradient, so the IR has no control flow.
fn sgd(e: &mut Emit, hp: [f64; 4], nesterov: bool, p: ValueId, g: ValueId, state: &[ValueId], step: ValueId) -> Result<(ValueId, Vec<ValueId>), BuildError> {
    let [lr, momentum, dampening, wd] = hp;
    let mut g = coupled_decay(e, g, p, wd)?;
    let mut new_state = Vec::new();
    if momentum != 0.0 {
        let m = e.c(momentum);
        let kept = e.mul(state[0], m)?;
        let decayed = add_scaled(e, kept, g, 1.0 - dampening)?;
        let one = e.c(1.0);
        let first = e.cmp("eq", step, one)?;
        let buf = e.select(first, g, decayed)?;
        new_state.push(buf);
        g = if nesterov { add_scaled(e, g, buf, momentum)? } else { buf };
    }
    Ok((add_scaled(e, p, g, -lr)?, new_state))
}

/// `torch.optim.Adagrad` (`_single_tensor_adagrad`):
/// ```text
/// g = g + wd·p                                   (if wd ≠ 0)
/// clr = lr / (1 + (t - 1)·lr_decay)              (Python floats: f64)
/// sum = sum + g·g
/// p = p + (-clr·g) / (sqrt(sum) + eps)
/// ```
fn adagrad(e: &mut Emit, hp: [f64; 4], p: ValueId, g: ValueId, sum: ValueId, step: ValueId) -> Result<(ValueId, Vec<ValueId>), BuildError> {
    let [lr, lr_decay, wd, eps] = hp;
    let g = coupled_decay(e, g, p, wd)?;
    let neg_clr = if lr_decay == 0.0 {
        // lr / (1 + (t - 1)·0) is exactly lr.
        e.c(-lr)
    } else {
        let t = e.cast(step, DType::F64)?;
        let one = e.c64(1.0);
        let tm1 = e.sub(t, one)?;
        let d = e.c64(lr_decay);
        let decay = e.mul(tm1, d)?;
        let denom = e.add(one, decay)?;
        let lr = e.c64(lr);
        let clr = e.div(lr, denom)?;
        let neg = e.neg(clr)?;
        to_tensor_dtype(e, neg)?
    };
    let sum = add_square(e, sum, g, 1.0)?;
    let root = e.sqrt(sum)?;
    let eps = e.c(eps);
    let std = e.add(root, eps)?;
    Ok((add_quotient(e, p, neg_clr, g, std)?, vec![sum]))
}

/// `torch.optim.RMSprop` (`_single_tensor_rmsprop`):
/// ```text
/// g = g + wd·p                                   (if wd ≠ 0)
/// square_avg = alpha·square_avg + (1 - alpha)·g·g
/// centered:  grad_avg = lerp(grad_avg, g, 1 - alpha)
///            avg = sqrt(square_avg - grad_avg²) + eps
/// else:      avg = sqrt(square_avg) + eps
/// momentum > 0:  buf = momentum·buf + g / avg;  p = p - lr·buf
/// else:          p = p + (-lr·g) / avg
/// ```
fn rmsprop(e: &mut Emit, hp: [f64; 5], centered: bool, p: ValueId, g: ValueId, state: &[ValueId]) -> Result<(ValueId, Vec<ValueId>), BuildError> {
    let [lr, alpha, eps, wd, momentum] = hp;
    let buf_in = (momentum > 0.0).then(|| state[1]);
    let grad_avg_in = centered.then(|| state[state.len() - 1]);
    let g = coupled_decay(e, g, p, wd)?;
    let a = e.c(alpha);
    let kept = e.mul(state[0], a)?;
    let square_avg = add_square(e, kept, g, 1.0 - alpha)?;
    let (root, grad_avg) = match grad_avg_in {
        Some(ga) => {
            let ga = lerp(e, ga, g, 1.0 - alpha)?;
            // square_avg.addcmul(grad_avg, grad_avg, value=-1): the -1 is exact.
            let sq = e.mul(ga, ga)?;
            let var = e.sub(square_avg, sq)?;
            (e.sqrt(var)?, Some(ga))
        }
        None => (e.sqrt(square_avg)?, None),
    };
    let eps = e.c(eps);
    let avg = e.add(root, eps)?;
    let (new_p, buf) = match buf_in {
        Some(buf) => {
            // buf.mul_(momentum).addcdiv_(g, avg); p.add_(buf, alpha=-lr)
            let m = e.c(momentum);
            let kept = e.mul(buf, m)?;
            let q = e.div(g, avg)?;
            let buf = e.add(kept, q)?;
            (add_scaled(e, p, buf, -lr)?, Some(buf))
        }
        None => {
            let neg_lr = e.c(-lr);
            (add_quotient(e, p, neg_lr, g, avg)?, None)
        }
    };
    Ok((new_p, [Some(square_avg), buf, grad_avg].into_iter().flatten().collect()))
}

/// `torch.optim.Adam` and `AdamW` (`_single_tensor_adam`, not capturable):
/// ```text
/// AdamW:  p = p·(1 - lr·wd)        Adam:  g = g + wd·p       (if wd ≠ 0)
/// m = lerp(m, g, 1 - beta1)
/// v = beta2·v + (1 - beta2)·g·g
/// bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t                     (Python floats: f64)
/// step_size = lr / bc1
/// amsgrad:  vmax = max(vmax, v), and vmax replaces v below
/// denom = sqrt(v) / sqrt(bc2) + eps
/// p = p + (-step_size·m) / denom
/// ```
/// The bias correction of v divides `sqrt(v)` by `sqrt(bc2)` before `eps`
/// is added, as PyTorch does (not `sqrt(v / bc2)`, not eps inside the root);
/// since PyTorch 2, amsgrad stores the maximum into the state and then uses it.
#[allow(clippy::too_many_arguments)]
fn adam(e: &mut Emit, hp: [f64; 5], amsgrad: bool, decoupled: bool, p: ValueId, g: ValueId, state: &[ValueId], step: ValueId) -> Result<(ValueId, Vec<ValueId>), BuildError> {
    let [lr, beta1, beta2, eps, wd] = hp;
    let (mut p, mut g) = (p, g);
    if wd != 0.0 {
        if decoupled {
            let k = e.c(1.0 - lr * wd);
            p = e.mul(p, k)?;
        } else {
            g = add_scaled(e, g, p, wd)?;
        }
    }
    let m = lerp(e, state[0], g, 1.0 - beta1)?;
    let b2 = e.c(beta2);
    let kept = e.mul(state[1], b2)?;
    let v = add_square(e, kept, g, 1.0 - beta2)?;
    // Step-dependent coefficients, in f64 like PyTorch's Python floats.
    let t = e.cast(step, DType::F64)?;
    let one = e.c64(1.0);
    let bc = |e: &mut Emit, beta: f64| -> Result<ValueId, BuildError> {
        let b = e.c64(beta);
        let pw = e.pow(b, t)?;
        e.sub(one, pw)
    };
    let (bc1, bc2) = (bc(e, beta1)?, bc(e, beta2)?);
    let lr = e.c64(lr);
    let step_size = e.div(lr, bc1)?;
    let neg_step = e.neg(step_size)?;
    let neg_step = to_tensor_dtype(e, neg_step)?;
    let bc2_sqrt = e.sqrt(bc2)?;
    let bc2_sqrt = to_tensor_dtype(e, bc2_sqrt)?;
    let mut new_state = vec![m, v];
    let second = if amsgrad {
        let vmax = e.maximum(state[2], v)?;
        new_state.push(vmax);
        vmax
    } else {
        v
    };
    let root = e.sqrt(second)?;
    let scaled = e.div(root, bc2_sqrt)?;
    let eps = e.c(eps);
    let denom = e.add(scaled, eps)?;
    Ok((add_quotient(e, p, neg_step, m, denom)?, new_state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlc_ir::{Attrs, Function, Init, TensorType, Type};

    fn all_kinds() -> Vec<Optimizer> {
        vec![
            Optimizer::sgd(0.1),
            Optimizer::Sgd { lr: 0.1, momentum: 0.9, dampening: 0.0, nesterov: true, weight_decay: 0.1 },
            Optimizer::Adagrad { lr: 0.1, lr_decay: 0.1, weight_decay: 0.1, initial_accumulator_value: 0.5, eps: 1e-10 },
            Optimizer::RmsProp { lr: 0.1, alpha: 0.9, eps: 1e-8, weight_decay: 0.1, momentum: 0.9, centered: true },
            Optimizer::Adam { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, amsgrad: true },
            Optimizer::AdamW { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, amsgrad: true },
        ]
    }

    /// Builds `(param, grad, state…, step) -> (param', state'…)`.
    fn step_fn(opt: &Optimizer, dtype: DType, n_state: usize, step_ty: Type) -> Result<Function, BuildError> {
        let ty: Type = TensorType::fixed(&[3, 5], dtype).into();
        let mut f = Function::new("step");
        let p = f.add_arg(ty.clone(), Some("param"), Attrs::new());
        let g = f.add_arg(ty.clone(), Some("grad"), Attrs::new());
        let s: Vec<_> = (0..n_state).map(|_| f.add_arg(ty.clone(), Some("state"), Attrs::new())).collect();
        let t = f.add_arg(step_ty, Some("step"), Attrs::new());
        let mut b = Builder::at_entry(&mut f);
        let (p2, s2) = opt.build_update(&mut b, p, g, &s, t)?;
        b.ret(&[vec![p2], s2].concat());
        Ok(f)
    }

    #[test]
    fn state_slots_follow_pytorch_state_keys() {
        let names = |o: Optimizer| o.state_slots().into_iter().map(|s| s.0).collect::<Vec<_>>();
        assert!(names(Optimizer::sgd(0.1)).is_empty());
        assert_eq!(names(Optimizer::Sgd { lr: 0.1, momentum: 0.9, dampening: 0.0, nesterov: false, weight_decay: 0.0 }), ["momentum_buffer"]);
        let ada = Optimizer::Adagrad { lr: 0.1, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.25, eps: 1e-10 };
        assert_eq!(ada.state_slots(), [("sum", Init::Constant(0.25))]);
        assert_eq!(names(Optimizer::rmsprop(0.01)), ["square_avg"]);
        let rms = |momentum, centered| Optimizer::RmsProp { lr: 0.01, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum, centered };
        assert_eq!(names(rms(0.9, false)), ["square_avg", "momentum_buffer"]);
        assert_eq!(names(rms(0.0, true)), ["square_avg", "grad_avg"]);
        assert_eq!(names(rms(0.9, true)), ["square_avg", "momentum_buffer", "grad_avg"]);
        assert_eq!(names(Optimizer::adam(1e-3)), ["exp_avg", "exp_avg_sq"]);
        assert_eq!(names(Optimizer::AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, amsgrad: true }), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
        for o in all_kinds() {
            if !matches!(o, Optimizer::Adagrad { .. }) {
                assert!(o.state_slots().iter().all(|s| s.1 == Init::Zeros), "{o:?}");
            }
        }
    }

    #[test]
    fn constructors_use_pytorch_defaults() {
        assert_eq!(Optimizer::adamw(1e-3), Optimizer::AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, amsgrad: false });
        assert_eq!(Optimizer::adagrad(1e-2), Optimizer::Adagrad { lr: 1e-2, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 });
        assert_eq!(Optimizer::rmsprop(1e-2).name(), "rmsprop");
    }

    #[test]
    fn every_update_verifies_in_f32_and_f64() {
        for o in all_kinds() {
            for dtype in [DType::F32, DType::F64] {
                let n = o.state_slots().len();
                let f = step_fn(&o, dtype, n, TensorType::fixed(&[], dtype).into()).unwrap();
                dlc_ir::verify_function(&f).unwrap_or_else(|e| panic!("{o:?}: {e:?}"));
                assert_eq!(f.result_types.len(), 1 + n);
                assert!(f.result_types.iter().all(|t| t.to_string() == format!("tensor<3x5x{dtype}>")));
            }
        }
    }

    #[test]
    fn bad_operands_and_hyper_parameters_are_refused() {
        let scalar = |d| -> Type { TensorType::fixed(&[], d).into() };
        let adam = Optimizer::adam(1e-3);
        let e = step_fn(&adam, DType::F32, 1, scalar(DType::F32)).unwrap_err();
        assert_eq!(e.to_string(), "'adam' expects 2 state value(s) [exp_avg, exp_avg_sq], got 1");
        let e = step_fn(&adam, DType::F32, 2, scalar(DType::F64)).unwrap_err();
        assert!(e.message.starts_with("step must be a rank-0 f32 tensor"), "{e}");
        let e = step_fn(&adam, DType::I64, 2, scalar(DType::I64)).unwrap_err();
        assert!(e.message.starts_with("parameter must be an f32 or f64 tensor"), "{e}");
        let nesterov = Optimizer::Sgd { lr: 0.1, momentum: 0.0, dampening: 0.0, nesterov: true, weight_decay: 0.0 };
        let e = step_fn(&nesterov, DType::F32, 0, scalar(DType::F32)).unwrap_err();
        assert_eq!(e.to_string(), "'sgd' Nesterov momentum requires a momentum and zero dampening");
        let e = step_fn(&Optimizer::adam(f64::NAN), DType::F32, 2, scalar(DType::F32)).unwrap_err();
        assert!(e.message.contains("invalid learning rate"), "{e}");
        let e = step_fn(&Optimizer::Adam { lr: 1e-3, beta1: 0.9, beta2: 1.0, eps: 1e-8, weight_decay: 0.0, amsgrad: false }, DType::F32, 2, scalar(DType::F32)).unwrap_err();
        assert!(e.message.contains("invalid beta2"), "{e}");
    }
}
