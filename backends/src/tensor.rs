//! Run-time tensors: an n-dimensional array of one of dlc's five element types.
//!
//! The interpreter, the JIT and the host API all exchange [`Tensor`]s, so this
//! type is deliberately plain: an `ndarray` array per dtype, no strides or
//! devices of its own. Comparison helpers ([`Tensor::allclose`],
//! [`Tensor::max_abs_diff`]) live here because every backend test needs them.

use dlc_ir::DType;
use ndarray::{ArrayD, IxDyn};

/// A tensor value: one `ndarray` array, tagged by its element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 64-bit floats.
    F64(ArrayD<f64>),
    /// 32-bit signed integers.
    I32(ArrayD<i32>),
    /// 64-bit signed integers.
    I64(ArrayD<i64>),
    /// Booleans (dlc's `i1`).
    I1(ArrayD<bool>),
}

/// A tensor could not be made from the given shape and elements.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// The element count does not match the shape.
    #[error("shape {shape:?} holds {expected} elements, got {found}")]
    LenMismatch {
        /// The requested shape.
        shape: Vec<usize>,
        /// Its element count.
        expected: usize,
        /// The number of elements given.
        found: usize,
    },
}

/// Applies `$body` to the array inside any variant, bound as `$a`. The body is
/// expanded once per dtype, so it may call generic functions.
macro_rules! with_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $body,
            $crate::tensor::Tensor::F64($a) => $body,
            $crate::tensor::Tensor::I32($a) => $body,
            $crate::tensor::Tensor::I64($a) => $body,
            $crate::tensor::Tensor::I1($a) => $body,
        }
    };
}

/// Like [`with_array!`], but wraps the body's array back into the same variant:
/// for dtype-preserving ops (movement, negation, …).
macro_rules! map_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $crate::tensor::Tensor::F32($body),
            $crate::tensor::Tensor::F64($a) => $crate::tensor::Tensor::F64($body),
            $crate::tensor::Tensor::I32($a) => $crate::tensor::Tensor::I32($body),
            $crate::tensor::Tensor::I64($a) => $crate::tensor::Tensor::I64($body),
            $crate::tensor::Tensor::I1($a) => $crate::tensor::Tensor::I1($body),
        }
    };
}

/// Applies `$body` to two tensors of the same dtype, bound as `$a` and `$b`;
/// evaluates `$mismatch` when their dtypes differ.
macro_rules! with_pair {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr, else $mismatch:expr) => {
        match ($x, $y) {
            ($crate::tensor::Tensor::F32($a), $crate::tensor::Tensor::F32($b)) => $body,
            ($crate::tensor::Tensor::F64($a), $crate::tensor::Tensor::F64($b)) => $body,
            ($crate::tensor::Tensor::I32($a), $crate::tensor::Tensor::I32($b)) => $body,
            ($crate::tensor::Tensor::I64($a), $crate::tensor::Tensor::I64($b)) => $body,
            ($crate::tensor::Tensor::I1($a), $crate::tensor::Tensor::I1($b)) => $body,
            _ => $mismatch,
        }
    };
}

/// Like [`with_pair!`], wrapping the body's array into the operands' variant.
macro_rules! map_pair {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr, else $mismatch:expr) => {
        match ($x, $y) {
            ($crate::tensor::Tensor::F32($a), $crate::tensor::Tensor::F32($b)) => $crate::tensor::Tensor::F32($body),
            ($crate::tensor::Tensor::F64($a), $crate::tensor::Tensor::F64($b)) => $crate::tensor::Tensor::F64($body),
            ($crate::tensor::Tensor::I32($a), $crate::tensor::Tensor::I32($b)) => $crate::tensor::Tensor::I32($body),
            ($crate::tensor::Tensor::I64($a), $crate::tensor::Tensor::I64($b)) => $crate::tensor::Tensor::I64($body),
            ($crate::tensor::Tensor::I1($a), $crate::tensor::Tensor::I1($b)) => $crate::tensor::Tensor::I1($body),
            _ => $mismatch,
        }
    };
}

pub(crate) use {map_array, map_pair, with_array, with_pair};

fn checked<T>(shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, TensorError> {
    let expected: usize = shape.iter().product();
    if data.len() != expected {
        return Err(TensorError::LenMismatch { shape: shape.to_vec(), expected, found: data.len() });
    }
    Ok(ArrayD::from_shape_vec(IxDyn(shape), data).expect("length checked above"))
}

impl Tensor {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I32(_) => DType::I32,
            Tensor::I64(_) => DType::I64,
            Tensor::I1(_) => DType::I1,
        }
    }

    /// The dims, outermost first.
    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    /// The number of dims.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        with_array!(self, a => a.len())
    }

    /// True when some dim is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A tensor of zeros (`false` for `i1`).
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        let s = IxDyn(shape);
        match dtype {
            DType::F32 => Tensor::F32(ArrayD::zeros(s)),
            DType::F64 => Tensor::F64(ArrayD::zeros(s)),
            DType::I32 => Tensor::I32(ArrayD::zeros(s)),
            DType::I64 => Tensor::I64(ArrayD::zeros(s)),
            DType::I1 => Tensor::I1(ArrayD::from_elem(s, false)),
        }
    }

    /// An f32 tensor from row-major elements.
    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> Result<Tensor, TensorError> {
        checked(shape, data).map(Tensor::F32)
    }

    /// An f64 tensor from row-major elements.
    pub fn from_f64(shape: &[usize], data: Vec<f64>) -> Result<Tensor, TensorError> {
        checked(shape, data).map(Tensor::F64)
    }

    /// An i32 tensor from row-major elements.
    pub fn from_i32(shape: &[usize], data: Vec<i32>) -> Result<Tensor, TensorError> {
        checked(shape, data).map(Tensor::I32)
    }

    /// An i64 tensor from row-major elements.
    pub fn from_i64(shape: &[usize], data: Vec<i64>) -> Result<Tensor, TensorError> {
        checked(shape, data).map(Tensor::I64)
    }

    /// An i1 tensor from row-major elements.
    pub fn from_bool(shape: &[usize], data: Vec<bool>) -> Result<Tensor, TensorError> {
        checked(shape, data).map(Tensor::I1)
    }

    /// A tensor of `dtype` from f64 values, converted as `dl.cast` converts
    /// (truncation toward zero for integers, nonzero is true). Handy in tests,
    /// where every value is written as a float literal.
    pub fn from_f64_values(shape: &[usize], data: &[f64], dtype: DType) -> Result<Tensor, TensorError> {
        let t = checked(shape, data.to_vec())?;
        Ok(crate::interp::elementwise::cast(&Tensor::F64(t), dtype))
    }

    /// Every element as f64, in row-major order (`i1` as 0 or 1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        use crate::interp::scalar::Elem;
        with_array!(self, a => a.iter().map(|x| x.to_f64()).collect())
    }

    /// The f32 array, if this is one.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    /// The f64 array, if this is one.
    pub fn as_f64(&self) -> Option<&ArrayD<f64>> {
        match self {
            Tensor::F64(a) => Some(a),
            _ => None,
        }
    }

    /// The i32 array, if this is one.
    pub fn as_i32(&self) -> Option<&ArrayD<i32>> {
        match self {
            Tensor::I32(a) => Some(a),
            _ => None,
        }
    }

    /// The i64 array, if this is one.
    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match self {
            Tensor::I64(a) => Some(a),
            _ => None,
        }
    }

    /// The boolean array, if this is one.
    pub fn as_bool(&self) -> Option<&ArrayD<bool>> {
        match self {
            Tensor::I1(a) => Some(a),
            _ => None,
        }
    }

    /// Describes dtype and shape for error messages: `f32[32, 784]`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.shape().iter().map(|d| d.to_string()).collect();
        format!("{}[{}]", self.dtype(), dims.join(", "))
    }

    /// The largest `|a - b|` over all elements, or `None` when dtypes or
    /// shapes differ. Positions where both are NaN, or both the same infinity,
    /// count as 0; a NaN or infinity against anything else gives infinity.
    pub fn max_abs_diff(&self, other: &Tensor) -> Option<f64> {
        if self.dtype() != other.dtype() || self.shape() != other.shape() {
            return None;
        }
        let (a, b) = (self.to_f64_vec(), other.to_f64_vec());
        Some(a.iter().zip(&b).map(|(&x, &y)| elem_diff(x, y)).fold(0.0, f64::max))
    }

    /// NumPy's `allclose` with `equal_nan = true`: same dtype and shape, and
    /// every element satisfies `|a - b| <= atol + rtol * |b|` (`other` is the
    /// reference). NaN matches only NaN; an infinity only the same infinity.
    pub fn allclose(&self, other: &Tensor, rtol: f64, atol: f64) -> bool {
        if self.dtype() != other.dtype() || self.shape() != other.shape() {
            return false;
        }
        let (a, b) = (self.to_f64_vec(), other.to_f64_vec());
        // The reference's magnitude is capped so that an infinite reference
        // cannot excuse a finite value (inf <= inf would hold).
        a.iter().zip(&b).all(|(&x, &y)| elem_diff(x, y) <= atol + rtol * y.abs().min(f64::MAX))
    }
}

/// `|x - y|`, with matching NaNs and matching infinities counted as equal.
fn elem_diff(x: f64, y: f64) -> f64 {
    if (x.is_nan() && y.is_nan()) || x == y {
        0.0
    } else if x.is_finite() && y.is_finite() {
        (x - y).abs()
    } else {
        f64::INFINITY
    }
}

impl From<ArrayD<f32>> for Tensor {
    fn from(a: ArrayD<f32>) -> Self {
        Tensor::F32(a)
    }
}
impl From<ArrayD<f64>> for Tensor {
    fn from(a: ArrayD<f64>) -> Self {
        Tensor::F64(a)
    }
}
impl From<ArrayD<i32>> for Tensor {
    fn from(a: ArrayD<i32>) -> Self {
        Tensor::I32(a)
    }
}
impl From<ArrayD<i64>> for Tensor {
    fn from(a: ArrayD<i64>) -> Self {
        Tensor::I64(a)
    }
}
impl From<ArrayD<bool>> for Tensor {
    fn from(a: ArrayD<bool>) -> Self {
        Tensor::I1(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_check_the_element_count() {
        let t = Tensor::from_f32(&[2, 3], vec![0.0; 6]).unwrap();
        assert_eq!((t.dtype(), t.shape(), t.len()), (DType::F32, &[2usize, 3][..], 6));
        let e = Tensor::from_f32(&[2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(e.to_string(), "shape [2, 3] holds 6 elements, got 5");
        assert_eq!(Tensor::zeros(&[], DType::I1).to_f64_vec(), vec![0.0]);
        assert_eq!(Tensor::zeros(&[2, 0], DType::I64).len(), 0);
    }

    #[test]
    fn allclose_matches_nans_and_infinities_only_with_themselves() {
        let a = Tensor::from_f64(&[4], vec![1.0, f64::NAN, f64::INFINITY, 0.0]).unwrap();
        let b = Tensor::from_f64(&[4], vec![1.0 + 1e-9, f64::NAN, f64::INFINITY, 1e-7]).unwrap();
        assert!(a.allclose(&b, 1e-6, 1e-6));
        assert!(!a.allclose(&b, 1e-12, 1e-12));
        let c = Tensor::from_f64(&[4], vec![1.0, 0.0, f64::INFINITY, 0.0]).unwrap();
        assert!(!a.allclose(&c, 1.0, 1.0));
        assert_eq!(a.max_abs_diff(&c), Some(f64::INFINITY));
        let d = Tensor::from_f64(&[4], vec![1.0, f64::NAN, f64::NEG_INFINITY, 0.0]).unwrap();
        assert!(!a.allclose(&d, 1.0, 1.0));
        assert_eq!(a.max_abs_diff(&a), Some(0.0));
        assert_eq!(a.max_abs_diff(&Tensor::zeros(&[4], DType::F32)), None);
    }

    #[test]
    fn values_convert_like_cast() {
        let t = Tensor::from_f64_values(&[3], &[-1.7, 0.0, 2.9], DType::I32).unwrap();
        assert_eq!(t, Tensor::from_i32(&[3], vec![-1, 0, 2]).unwrap());
        let b = Tensor::from_f64_values(&[2], &[0.0, -0.5], DType::I1).unwrap();
        assert_eq!(b.to_f64_vec(), vec![0.0, 1.0]);
        assert_eq!(b.describe(), "i1[2]");
    }
}
