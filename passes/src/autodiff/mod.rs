//! Reverse-mode automatic differentiation: from a function computing a loss,
//! a function computing the loss and its gradients.
//!
//! The pass knows no op: each op's vector-Jacobian product is the
//! [`VjpFn`](dlc_ir::registry::vjp::VjpFn) in its registry entry ([`Grad::Vjp`]), which builds the
//! backward ops from registry ops. The pass only orders the work:
//!
//! 1. *activity*: a forward sweep marks the float values that depend on an
//!    argument in `wrt` (nothing else can carry a gradient to them);
//! 2. *reverse sweep*: seeded with `d loss / d loss = 1`, ops are visited in
//!    reverse program order; an op whose result received a cotangent has its
//!    rule applied, and operand cotangents are summed with `dl.add` when a
//!    value feeds several ops. Reverse order over a single block guarantees a
//!    value's cotangent is complete before its defining op is visited;
//! 3. *cleanup*: rules build a cotangent for every float operand, including
//!    inactive ones; [`Dce`](crate::Dce) removes what nobody returns.
//!
//! The result is one straight-line function with the forward and backward
//! computations side by side, so later passes (fusion, optimizer lowering)
//! see a training step as one program.

mod error;

pub use error::AutodiffError;

use crate::{Dce, Pass};
use dlc_ir::registry::Grad;
use dlc_ir::registry::vjp::{VjpArgs, zeros};
use dlc_ir::signature::set_output_names;
use dlc_ir::{Builder, Function, OpId, Signature, ValueId, ValueNames, verify_function};

/// Builds `@<name>_grad`: the same arguments as `f` (names and attributes),
/// returning `f`'s results followed by `d result[of] / d arg[i]` for each `i`
/// in `wrt`, in order.
///
/// The loss `result[of]` must be a rank-0 float tensor. An argument the loss
/// does not depend on gets a zeros gradient of its type. The output names
/// (`dl.outputs`) are `f`'s, then `grad.<argname>` for each gradient.
pub fn gradient(f: &Function, of: usize, wrt: &[usize]) -> Result<Function, AutodiffError> {
    verify_function(f).map_err(AutodiffError::Invalid)?;
    let results = f.returned_values();
    let loss = *results.get(of).ok_or(AutodiffError::ResultOutOfRange { index: of, count: results.len() })?;
    let loss_ty = f.ty(loss).as_tensor().filter(|t| t.rank() == 0 && t.dtype.is_float());
    let Some(loss_dtype) = loss_ty.map(|t| t.dtype) else {
        return Err(AutodiffError::NotScalarLoss { index: of, ty: f.ty(loss).clone() });
    };
    let sig = Signature::of(f).map_err(|message| AutodiffError::Invalid(vec![dlc_ir::VerifyError { function: f.name.clone(), op: None, message }]))?;
    let args = f.args();
    for &i in wrt {
        let &a = args.get(i).ok_or(AutodiffError::ArgOutOfRange { index: i, count: args.len() })?;
        if !f.ty(a).as_tensor().is_some_and(|t| t.dtype.is_float()) {
            return Err(AutodiffError::NotFloatArg { name: sig.args[i].name.clone(), ty: f.ty(a).clone() });
        }
    }

    let body: Vec<OpId> = f.body_ops().iter().copied().filter(|&o| Some(o) != f.return_op()).collect();
    let active = activity(f, &body, wrt);
    let mut g = f.clone();
    g.name = format!("{}_grad", f.name);
    if let Some(r) = g.return_op() {
        g.remove_op(r);
    }
    let mut cot: Vec<Option<ValueId>> = vec![None; f.num_values()];
    let mut b = Builder::at_entry(&mut g);
    if active[loss.0 as usize] {
        cot[loss.0 as usize] = Some(b.scalar(1.0, loss_dtype));
    }
    let names = ValueNames::new(f);
    for &o in body.iter().rev() {
        let op = f.op(o);
        let label = || format!("{} = \"{}\"", names.results(&op.results), op.kind.name());
        if op.results.iter().skip(1).any(|r| cot[r.0 as usize].is_some()) {
            let error = dlc_ir::BuildError { op: op.kind.name(), message: "only the first result may carry a gradient".into() };
            return Err(AutodiffError::Rule { op: label(), error });
        }
        let Some(grad) = op.results.first().and_then(|r| cot[r.0 as usize]) else { continue };
        let Grad::Vjp(rule) = op.kind.def().grad else {
            return Err(AutodiffError::NoVjp { op: label() });
        };
        let grads = rule(&mut b, &VjpArgs { operands: &op.operands, results: &op.results, attrs: &op.attrs, grad })
            .map_err(|error| AutodiffError::Rule { op: label(), error })?;
        if grads.len() != op.operands.len() {
            let message = format!("returned {} gradient(s) for {} operand(s)", grads.len(), op.operands.len());
            return Err(AutodiffError::Rule { op: label(), error: dlc_ir::BuildError { op: op.kind.name(), message } });
        }
        for (&x, dx) in op.operands.iter().zip(grads) {
            let Some(dx) = dx.filter(|_| active[x.0 as usize]) else { continue };
            if b.func.ty(dx) != f.ty(x) {
                let message = format!("gave a gradient of type {} for an operand of type {}", b.func.ty(dx), f.ty(x));
                return Err(AutodiffError::Rule { op: label(), error: dlc_ir::BuildError { op: op.kind.name(), message } });
            }
            let slot = &mut cot[x.0 as usize];
            *slot = Some(match *slot {
                None => dx,
                Some(prev) => b.op(dlc_ir::OpKind::Add, &[prev, dx], dlc_ir::Attrs::new()).map_err(|error| AutodiffError::Rule { op: label(), error })?,
            });
        }
    }

    let mut outputs = results.clone();
    let mut output_names: Vec<String> = sig.outputs.iter().map(|(n, _)| n.clone()).collect();
    for &i in wrt {
        let a = args[i];
        let da = match cot[a.0 as usize] {
            Some(d) => d,
            None => {
                let ty = f.ty(a).as_tensor().expect("checked to be a float tensor").clone();
                zeros(&mut b, &ty).map_err(|error| AutodiffError::Rule { op: format!("zeros for %{}", sig.args[i].name), error })?
            }
        };
        let name = format!("grad.{}", sig.args[i].name);
        if b.func.value(da).name.is_none() {
            b.name(da, &name);
        }
        outputs.push(da);
        output_names.push(name);
    }
    b.ret(&outputs);
    let refs: Vec<&str> = output_names.iter().map(String::as_str).collect();
    set_output_names(&mut g, &refs);
    Dce.run(&mut g);
    verify_function(&g).map_err(AutodiffError::Internal)?;
    Ok(g)
}

/// Marks the float values that depend on an argument in `wrt`; only they
/// can carry a gradient back to one.
fn activity(f: &Function, body: &[OpId], wrt: &[usize]) -> Vec<bool> {
    let mut active = vec![false; f.num_values()];
    for &i in wrt {
        active[f.args()[i].0 as usize] = true;
    }
    for &o in body {
        let op = f.op(o);
        if op.operands.iter().any(|v| active[v.0 as usize]) {
            for &r in &op.results {
                active[r.0 as usize] = f.ty(r).as_tensor().is_some_and(|t| t.dtype.is_float());
            }
        }
    }
    active
}
