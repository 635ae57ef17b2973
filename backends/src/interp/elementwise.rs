//! Elementwise ops: unary maps, broadcasting binary maps, comparison, select
//! and cast. Each is computed in the operands' own dtype (f32 in f32), as
//! PyTorch does, with the per-dtype rules of [`super::scalar`].

use super::error::InterpError;
use super::scalar::{Elem, Num, Real};
use crate::tensor::{Tensor, map_pair, with_array, with_pair};
use dlc_ir::DType;
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

/// A float-only unary function.
#[derive(Copy, Clone, Debug)]
pub enum FloatFn {
    /// `e^x`.
    Exp,
    /// `ln x` (`-inf` at 0, NaN below).
    Log,
    /// `sqrt x`.
    Sqrt,
    /// `1 / sqrt x` (`inf` at 0).
    Rsqrt,
    /// `tanh x`.
    Tanh,
    /// `1 / (1 + e^-x)`, in the form that never overflows.
    Sigmoid,
    /// `max(x, 0)`, NaN passing through.
    Relu,
    /// `x` if `x > 0`, else `alpha * x`.
    LeakyRelu(f64),
}

impl FloatFn {
    fn apply<T: Real>(self, x: T) -> T {
        let zero = T::ZERO;
        match self {
            FloatFn::Exp => x.exp(),
            FloatFn::Log => x.ln(),
            FloatFn::Sqrt => x.sqrt(),
            FloatFn::Rsqrt => T::ONE / x.sqrt(),
            FloatFn::Tanh => x.tanh(),
            // For x < 0, e^-x may overflow; e^x / (1 + e^x) is the same
            // value without it. NaN takes the second branch and stays NaN.
            FloatFn::Sigmoid if x >= zero => T::ONE / (T::ONE + (-x).exp()),
            FloatFn::Sigmoid => {
                let e = x.exp();
                e / (T::ONE + e)
            }
            // x < 0 is false for NaN and for -0.0, which pass through as in torch.relu.
            FloatFn::Relu if x < zero => zero,
            FloatFn::Relu => x,
            FloatFn::LeakyRelu(_) if x > zero => x,
            FloatFn::LeakyRelu(alpha) => x * T::of(alpha),
        }
    }
}

/// Applies a float function to every element.
pub fn map_float(op: &str, x: &Tensor, f: FloatFn) -> Result<Tensor, InterpError> {
    match x {
        Tensor::F32(a) => Ok(Tensor::F32(a.mapv(|v| f.apply(v)))),
        Tensor::F64(a) => Ok(Tensor::F64(a.mapv(|v| f.apply(v)))),
        other => Err(InterpError::unsupported(op, format!("needs a float tensor, got {}", other.describe()))),
    }
}

/// A unary function of any numeric dtype.
#[derive(Copy, Clone, Debug)]
pub enum NumFn {
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
}

fn num_map<T: Num>(a: &ArrayD<T>, f: NumFn) -> ArrayD<T> {
    match f {
        NumFn::Neg => a.mapv(Num::neg),
        NumFn::Abs => a.mapv(Num::abs),
    }
}

/// Applies a numeric function to every element (not `i1`).
pub fn map_num(op: &str, x: &Tensor, f: NumFn) -> Result<Tensor, InterpError> {
    match x {
        Tensor::F32(a) => Ok(Tensor::F32(num_map(a, f))),
        Tensor::F64(a) => Ok(Tensor::F64(num_map(a, f))),
        Tensor::I32(a) => Ok(Tensor::I32(num_map(a, f))),
        Tensor::I64(a) => Ok(Tensor::I64(num_map(a, f))),
        Tensor::I1(_) => Err(InterpError::unsupported(op, format!("needs a numeric tensor, got {}", x.describe()))),
    }
}

/// Converts every element to `to` with `dl.cast` semantics (see [`Elem`]).
pub fn cast(x: &Tensor, to: DType) -> Tensor {
    with_array!(x, a => match to {
        DType::F32 => Tensor::F32(a.mapv(|v| v.as_f32())),
        DType::F64 => Tensor::F64(a.mapv(|v| v.as_f64())),
        DType::I32 => Tensor::I32(a.mapv(|v| v.as_i32())),
        DType::I64 => Tensor::I64(a.mapv(|v| v.as_i64())),
        DType::I1 => Tensor::I1(a.mapv(|v| v.as_bool())),
    })
}

/// NumPy broadcasting of run-time shapes: align at the right, a 1 or a
/// missing dim stretches.
pub fn broadcast_shapes(op: &str, shapes: &[&[usize]]) -> Result<Vec<usize>, InterpError> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                let all: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
                return Err(InterpError::malformed(op, format!("shapes {} do not broadcast", all.join(" and "))));
            }
        }
    }
    Ok(out)
}

/// A view of `a` stretched to `shape` (which [`broadcast_shapes`] produced).
pub fn stretch<'a, T>(op: &str, a: &'a ArrayD<T>, shape: &[usize]) -> Result<ArrayViewD<'a, T>, InterpError> {
    a.broadcast(IxDyn(shape))
        .ok_or_else(|| InterpError::malformed(op, format!("{:?} does not broadcast to {shape:?}", a.shape())))
}

fn zip2<A: Copy, B: Copy, C>(
    op: &str,
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    mut f: impl FnMut(A, B) -> C,
) -> Result<ArrayD<C>, InterpError> {
    let shape = broadcast_shapes(op, &[a.shape(), b.shape()])?;
    let (av, bv) = (stretch(op, a, &shape)?, stretch(op, b, &shape)?);
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

/// A broadcasting binary arithmetic op.
#[derive(Copy, Clone, Debug)]
pub enum BinFn {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// NaN-propagating max.
    Maximum,
    /// NaN-propagating min.
    Minimum,
}

fn num_binary<T: Num>(op: &str, a: &ArrayD<T>, b: &ArrayD<T>, f: BinFn) -> Result<ArrayD<T>, InterpError> {
    match f {
        BinFn::Add => zip2(op, a, b, Num::add),
        BinFn::Sub => zip2(op, a, b, Num::sub),
        BinFn::Mul => zip2(op, a, b, Num::mul),
        BinFn::Maximum => zip2(op, a, b, Num::nan_max),
        BinFn::Minimum => zip2(op, a, b, Num::nan_min),
        BinFn::Div => {
            let mut by_zero = false;
            let out = zip2(op, a, b, |x, y| {
                x.div(y).unwrap_or_else(|| {
                    by_zero = true;
                    T::ZERO
                })
            })?;
            if by_zero {
                return Err(InterpError::DivisionByZero { op: op.to_string() });
            }
            Ok(out)
        }
    }
}

fn dtype_mismatch(op: &str, a: &Tensor, b: &Tensor) -> InterpError {
    InterpError::unsupported(op, format!("operands must have one dtype, got {} and {}", a.describe(), b.describe()))
}

/// Applies a broadcasting arithmetic op to two numeric tensors of one dtype.
pub fn binary(op: &str, a: &Tensor, b: &Tensor, f: BinFn) -> Result<Tensor, InterpError> {
    Ok(match (a, b) {
        (Tensor::F32(x), Tensor::F32(y)) => Tensor::F32(num_binary(op, x, y, f)?),
        (Tensor::F64(x), Tensor::F64(y)) => Tensor::F64(num_binary(op, x, y, f)?),
        (Tensor::I32(x), Tensor::I32(y)) => Tensor::I32(num_binary(op, x, y, f)?),
        (Tensor::I64(x), Tensor::I64(y)) => Tensor::I64(num_binary(op, x, y, f)?),
        (Tensor::I1(_), Tensor::I1(_)) => {
            return Err(InterpError::unsupported(op, format!("needs numeric operands, got {}", a.describe())));
        }
        _ => return Err(dtype_mismatch(op, a, b)),
    })
}

/// `a ^ b`, broadcasting, for floats (as `f32::powf`).
pub fn pow(op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor, InterpError> {
    match (a, b) {
        (Tensor::F32(x), Tensor::F32(y)) => Ok(Tensor::F32(zip2(op, x, y, Real::powf)?)),
        (Tensor::F64(x), Tensor::F64(y)) => Ok(Tensor::F64(zip2(op, x, y, Real::powf)?)),
        _ if a.dtype() == b.dtype() => {
            Err(InterpError::unsupported(op, format!("needs float operands, got {}", a.describe())))
        }
        _ => Err(dtype_mismatch(op, a, b)),
    }
}

#[derive(Copy, Clone)]
enum Predicate {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Compares two tensors of one dtype with `predicate` (IEEE: every
/// comparison with NaN is false except `ne`), giving `i1`.
pub fn cmp(op: &str, a: &Tensor, b: &Tensor, predicate: &str) -> Result<Tensor, InterpError> {
    fn test<T: PartialOrd>(p: Predicate, x: T, y: T) -> bool {
        match p {
            Predicate::Eq => x == y,
            Predicate::Ne => x != y,
            Predicate::Lt => x < y,
            Predicate::Le => x <= y,
            Predicate::Gt => x > y,
            Predicate::Ge => x >= y,
        }
    }
    let predicate = match predicate {
        "eq" => Predicate::Eq,
        "ne" => Predicate::Ne,
        "lt" => Predicate::Lt,
        "le" => Predicate::Le,
        "gt" => Predicate::Gt,
        "ge" => Predicate::Ge,
        other => return Err(InterpError::malformed(op, format!("unknown predicate \"{other}\""))),
    };
    with_pair!(a, b, x, y => Ok(Tensor::I1(zip2(op, x, y, |p, q| test(predicate, p, q))?)),
        else Err(dtype_mismatch(op, a, b)))
}

/// `cond ? a : b`, broadcasting all three.
pub fn select(op: &str, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor, InterpError> {
    let Tensor::I1(c) = cond else {
        return Err(InterpError::unsupported(op, format!("condition must be i1, got {}", cond.describe())));
    };
    fn pick<T: Copy>(op: &str, c: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<T>, InterpError> {
        let shape = broadcast_shapes(op, &[c.shape(), x.shape(), y.shape()])?;
        let (cv, xv, yv) = (stretch(op, c, &shape)?, stretch(op, x, &shape)?, stretch(op, y, &shape)?);
        Ok(Zip::from(&cv).and(&xv).and(&yv).map_collect(|&k, &p, &q| if k { p } else { q }))
    }
    Ok(map_pair!(a, b, x, y => pick(op, c, x, y)?, else return Err(dtype_mismatch(op, a, b))))
}
