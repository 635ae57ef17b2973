//! Functions the e-graph tests build in more than one file.

use dlc_ir::{Attrs, Builder, DType, Dim, Function, Module, OpKind, TensorType};
use dlc_passes::train::{LossKind, LossSpec, Reduction, build_loss};
use dlc_passes::{Options, PassManager, gradient};

/// `mean(bce(sigmoid(z), t))` and its gradient with respect to `z`, as the
/// trainer builds them: `build_loss`, autodiff, the default pipeline.
pub fn bce_of_sigmoid_with_gradient() -> Function {
    let mut f = Function::new("bce");
    let ty = TensorType::new(vec![Dim::Dynamic, Dim::Static(1)], DType::F32);
    let z = f.add_arg(ty.clone().into(), Some("z"), Attrs::new());
    let t = f.add_arg(ty.into(), Some("t"), Attrs::new());
    let mut b = Builder::at_entry(&mut f);
    let p = b.op(OpKind::Sigmoid, &[z], Attrs::new()).unwrap();
    let loss = build_loss(&mut b, &LossSpec { kind: LossKind::Bce, reduction: Reduction::Mean }, p, t).unwrap();
    b.ret(&[loss]);
    let mut m = Module { functions: vec![gradient(&f, 0, &[0]).unwrap()] };
    PassManager::default_pipeline(Options::default()).run(&mut m, &mut std::io::sink()).unwrap();
    m.functions.pop().unwrap()
}
