//! Helpers shared by the interpreter's integration tests: tensor literals and
//! one-op functions built through the registry (so every test also exercises
//! the shape rules the interpreter checks its results against).
#![allow(dead_code)]

use dlc_backends::{InterpError, Tensor, run};
use dlc_ir::{Attrs, Builder, DType, Dim, Function, OpKind, TensorType};

/// An f32 tensor literal.
pub fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

/// An f64 tensor literal.
pub fn f64t(shape: &[usize], v: &[f64]) -> Tensor {
    Tensor::from_f64(shape, v.to_vec()).unwrap()
}

/// An i32 tensor literal.
pub fn i32t(shape: &[usize], v: &[i32]) -> Tensor {
    Tensor::from_i32(shape, v.to_vec()).unwrap()
}

/// An i64 tensor literal.
pub fn i64t(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_i64(shape, v.to_vec()).unwrap()
}

/// An i1 tensor literal from 0/1.
pub fn bt(shape: &[usize], v: &[u8]) -> Tensor {
    Tensor::from_bool(shape, v.iter().map(|&b| b != 0).collect()).unwrap()
}

/// The static type of a tensor.
pub fn type_of(t: &Tensor) -> TensorType {
    TensorType::fixed(&t.shape().iter().map(|&n| n as u64).collect::<Vec<_>>(), t.dtype())
}

/// A function `@f` applying one op to arguments of the given types.
pub fn one_op_fn(kind: OpKind, attrs: Attrs, types: &[TensorType]) -> Function {
    let mut f = Function::new("f");
    let args: Vec<_> = types
        .iter()
        .enumerate()
        .map(|(i, t)| f.add_arg(t.clone().into(), Some(&format!("x{i}")), Attrs::new()))
        .collect();
    let mut b = Builder::at_entry(&mut f);
    let y = b.op(kind, &args, attrs).unwrap_or_else(|e| panic!("building {}: {e}", kind.name()));
    b.ret(&[y]);
    f
}

/// Runs one op on static-typed inputs.
pub fn run_op(kind: OpKind, attrs: Attrs, inputs: &[Tensor]) -> Result<Tensor, InterpError> {
    let types: Vec<TensorType> = inputs.iter().map(type_of).collect();
    let f = one_op_fn(kind, attrs, &types);
    run(&f, inputs).map(|mut v| v.remove(0))
}

/// The type `shape` with `?` where `dims` is -1.
pub fn ty(dims: &[i64], dtype: DType) -> TensorType {
    TensorType::new(dims.iter().map(|&d| Dim::from_attr_int(d).unwrap()).collect(), dtype)
}

/// Asserts two tensors agree: exactly for integers and booleans, within
/// `1e-6` (relative and absolute) for floats, NaN matching NaN.
#[track_caller]
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    let ok = if want.dtype().is_float() { got.allclose(want, 1e-6, 1e-6) } else { got == want };
    assert!(ok, "{what}:\n  got  {} {:?}\n  want {} {:?}", got.describe(), got.to_f64_vec(), want.describe(), want.to_f64_vec());
}
