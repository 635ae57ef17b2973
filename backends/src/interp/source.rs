//! Sources: `dl.constant`, a tensor from its dense attribute.

use super::error::InterpError;
use super::scalar::Elem;
use crate::tensor::Tensor;
use dlc_ir::{DType, DenseAttr, DenseData};
use ndarray::{ArrayD, IxDyn};

fn shaped<T>(op: &str, shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, InterpError> {
    let n = data.len();
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|_| InterpError::malformed(op, format!("cannot arrange {n} elements as {shape:?}")))
}

/// `dl.constant`: the dense attribute's elements, a splat expanded.
pub fn constant(op: &str, value: &DenseAttr) -> Result<Tensor, InterpError> {
    value.check().map_err(|m| InterpError::malformed(op, m))?;
    let Some(shape) = value.ty.shape.iter().map(|d| d.as_static().map(|n| n as usize)).collect::<Option<Vec<_>>>() else {
        return Err(InterpError::malformed(op, format!("a constant needs a static type, got {}", value.ty)));
    };
    let count: usize = shape.iter().product();
    fn expand<T: Copy>(v: &[T], count: usize) -> Vec<T> {
        if v.len() == 1 { vec![v[0]; count] } else { v.to_vec() }
    }
    let out_of_range = |v: i64| InterpError::malformed(op, format!("constant element {v} does not fit {}", value.ty.dtype));
    Ok(match (&value.data, value.ty.dtype) {
        (DenseData::Float(v), DType::F32) => Tensor::F32(shaped(op, &shape, expand(v, count).iter().map(|x| x.as_f32()).collect())?),
        (DenseData::Float(v), _) => Tensor::F64(shaped(op, &shape, expand(v, count))?),
        (DenseData::Int(v), DType::I32) => {
            let v: Vec<i32> = v.iter().map(|&x| i32::try_from(x).map_err(|_| out_of_range(x))).collect::<Result<_, _>>()?;
            Tensor::I32(shaped(op, &shape, expand(&v, count))?)
        }
        (DenseData::Int(v), _) => Tensor::I64(shaped(op, &shape, expand(v, count))?),
        (DenseData::Bool(v), _) => Tensor::I1(shaped(op, &shape, expand(v, count))?),
    })
}
