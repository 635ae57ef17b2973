//! Element types, dimensions and value types.
//!
//! A function has at most one symbolic size, the batch: every `?` in its types
//! stands for that same runtime size. This keeps shape rules decidable at compile
//! time (a `?` only ever meets another `?` or a broadcast 1) while letting one
//! compiled function serve any batch.

use std::fmt;

/// Scalar element type of a tensor (or the type of a kernel-body scalar).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// Boolean (MLIR's `i1`).
    I1,
}

impl DType {
    /// Every dtype, in a fixed order.
    pub const ALL: [DType; 5] = [DType::F32, DType::F64, DType::I32, DType::I64, DType::I1];

    /// The MLIR spelling (`f32`, `i1`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::I1 => "i1",
        }
    }

    /// Parses the MLIR spelling.
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// True for f32 and f64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for i32 and i64 (not i1).
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }

    /// Size of one element in bytes (i1 is stored as a byte).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::I1 => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension of a tensor type.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known at compile time.
    Static(u64),
    /// The function's symbolic batch size, printed `?`.
    Dynamic,
}

impl Dim {
    /// The static size, if known.
    pub fn as_static(self) -> Option<u64> {
        match self {
            Dim::Static(n) => Some(n),
            Dim::Dynamic => None,
        }
    }

    /// Encodes the dim as an attribute integer: `-1` for `?`.
    pub fn to_attr_int(self) -> i64 {
        match self {
            Dim::Static(n) => n as i64,
            Dim::Dynamic => -1,
        }
    }

    /// Decodes an attribute integer (`-1` is `?`); other negatives are rejected.
    pub fn from_attr_int(n: i64) -> Option<Dim> {
        match n {
            -1 => Some(Dim::Dynamic),
            n if n >= 0 => Some(Dim::Static(n as u64)),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Static(n) => write!(f, "{n}"),
            Dim::Dynamic => f.write_str("?"),
        }
    }
}

/// A ranked tensor type: `tensor<?x784xf32>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Dimensions, outermost first.
    pub shape: Vec<Dim>,
    /// Element type.
    pub dtype: DType,
}

impl TensorType {
    /// A tensor type from dims and dtype.
    pub fn new(shape: Vec<Dim>, dtype: DType) -> Self {
        TensorType { shape, dtype }
    }

    /// A fully static tensor type.
    pub fn fixed(shape: &[u64], dtype: DType) -> Self {
        TensorType { shape: shape.iter().map(|&n| Dim::Static(n)).collect(), dtype }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The static element count, or `None` when a dim is `?`.
    pub fn num_elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |acc, d| d.as_static().map(|n| acc * n))
    }

    /// True when no dim is `?`.
    pub fn is_static(&self) -> bool {
        self.shape.iter().all(|d| matches!(d, Dim::Static(_)))
    }

    /// The same shape with another dtype.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        TensorType { shape: self.shape.clone(), dtype }
    }

    /// Writes the shape as `?x784` (empty for rank 0).
    pub fn shape_string(&self) -> String {
        self.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor<")?;
        for d in &self.shape {
            write!(f, "{d}x")?;
        }
        write!(f, "{}>", self.dtype)
    }
}

/// The type of an SSA value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// A ranked tensor.
    Tensor(TensorType),
    /// A scalar, as used inside kernel bodies.
    Scalar(DType),
    /// A loop index inside kernel bodies (MLIR's `index`).
    Index,
}

impl Type {
    /// The tensor type, if this is one.
    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            Type::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The element type of a tensor or scalar.
    pub fn dtype(&self) -> Option<DType> {
        match self {
            Type::Tensor(t) => Some(t.dtype),
            Type::Scalar(d) => Some(*d),
            Type::Index => None,
        }
    }
}

impl From<TensorType> for Type {
    fn from(t: TensorType) -> Self {
        Type::Tensor(t)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Tensor(t) => t.fmt(f),
            Type::Scalar(d) => d.fmt(f),
            Type::Index => f.write_str("index"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_types_print_in_mlir_syntax() {
        let t = TensorType::new(vec![Dim::Dynamic, Dim::Static(784)], DType::F32);
        assert_eq!(t.to_string(), "tensor<?x784xf32>");
        assert_eq!(TensorType::fixed(&[], DType::I1).to_string(), "tensor<i1>");
        assert_eq!(t.num_elements(), None);
        assert_eq!(TensorType::fixed(&[2, 3], DType::F64).num_elements(), Some(6));
    }

    #[test]
    fn dims_round_trip_through_attr_ints() {
        for d in [Dim::Dynamic, Dim::Static(0), Dim::Static(7)] {
            assert_eq!(Dim::from_attr_int(d.to_attr_int()), Some(d));
        }
        assert_eq!(Dim::from_attr_int(-2), None);
    }
}
