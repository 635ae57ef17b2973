//! Attributes: the compile-time constants attached to ops, arguments and functions.

use crate::affine::AffineMap;
use crate::types::{DType, TensorType, Type};
use std::collections::BTreeMap;

/// An attribute dictionary, ordered by name so printing is deterministic.
pub type Attrs = BTreeMap<String, Attr>;

/// One attribute value, in the subset of MLIR's builtin attributes that dlc uses.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// An integer (`3`; MLIR reads it as `i64`).
    Int(i64),
    /// A float (`0.5`; MLIR reads it as `f64`).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string (`"lt"`).
    Str(String),
    /// A type (`f32`, `tensor<3xf32>`).
    Type(Type),
    /// An array (`[1, 1]`).
    Array(Vec<Attr>),
    /// A nested dictionary (`{low = -0.1, high = 0.1}`).
    Dict(Attrs),
    /// A dense tensor constant (`dense<[1.0, 2.0]> : tensor<2xf32>`).
    Dense(DenseAttr),
    /// An affine map (`affine_map<(d0, d1) -> (d1)>`), a structured kernel's
    /// indexing of one operand.
    Map(AffineMap),
}

/// The elements of a dense constant; one element means a splat.
#[derive(Clone, Debug, PartialEq)]
pub enum DenseData {
    /// Float elements (for f32 and f64 tensors).
    Float(Vec<f64>),
    /// Integer elements (for i32 and i64 tensors).
    Int(Vec<i64>),
    /// Boolean elements (for i1 tensors).
    Bool(Vec<bool>),
}

impl DenseData {
    /// Number of stored elements (1 for a splat).
    pub fn len(&self) -> usize {
        match self {
            DenseData::Float(v) => v.len(),
            DenseData::Int(v) => v.len(),
            DenseData::Bool(v) => v.len(),
        }
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f64, expanding splats.
    pub fn get_f64(&self, i: usize) -> f64 {
        let pick = |n: usize| if n == 1 { 0 } else { i };
        match self {
            DenseData::Float(v) => v[pick(v.len())],
            DenseData::Int(v) => v[pick(v.len())] as f64,
            DenseData::Bool(v) => v[pick(v.len())] as u8 as f64,
        }
    }
}

/// A dense tensor constant: static type plus elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseAttr {
    /// The constant's type (always static).
    pub ty: TensorType,
    /// Row-major elements, or a single splat element.
    pub data: DenseData,
}

impl DenseAttr {
    /// A splat of one float value.
    pub fn splat_f(ty: TensorType, v: f64) -> Self {
        DenseAttr { ty, data: DenseData::Float(vec![v]) }
    }

    /// True when one element stands for all.
    pub fn is_splat(&self) -> bool {
        self.data.len() == 1
    }

    /// Checks that the elements fit the type: kind matches the dtype and the
    /// count is 1 (splat) or the static element count.
    pub fn check(&self) -> Result<(), String> {
        let n = self
            .ty
            .num_elements()
            .ok_or_else(|| format!("dense constant needs a static type, got {}", self.ty))?;
        let kind_ok = match (&self.data, self.ty.dtype) {
            (DenseData::Float(_), d) => d.is_float(),
            (DenseData::Int(_), d) => d.is_int(),
            (DenseData::Bool(_), d) => d == DType::I1,
        };
        if !kind_ok {
            return Err(format!("dense elements do not match element type {}", self.ty.dtype));
        }
        let len = self.data.len() as u64;
        if len != 1 && len != n {
            return Err(format!("dense constant of type {} has {len} elements, expected {n}", self.ty));
        }
        Ok(())
    }
}

impl Attr {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Attr::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The float, if this is one.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Attr::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Attr::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attr::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The array of integers, if this is one.
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            Attr::Array(v) => v.iter().map(Attr::as_int).collect(),
            _ => None,
        }
    }

    /// The scalar type, if this is one (`f32`).
    pub fn as_dtype(&self) -> Option<DType> {
        match self {
            Attr::Type(Type::Scalar(d)) => Some(*d),
            _ => None,
        }
    }

    /// The dense constant, if this is one.
    pub fn as_dense(&self) -> Option<&DenseAttr> {
        match self {
            Attr::Dense(d) => Some(d),
            _ => None,
        }
    }

    /// The affine map, if this is one.
    pub fn as_map(&self) -> Option<&AffineMap> {
        match self {
            Attr::Map(m) => Some(m),
            _ => None,
        }
    }

    /// An array of integers.
    pub fn ints(v: &[i64]) -> Attr {
        Attr::Array(v.iter().map(|&x| Attr::Int(x)).collect())
    }

    /// A short description of the attribute's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Attr::Int(_) => "integer",
            Attr::Float(_) => "float",
            Attr::Bool(_) => "bool",
            Attr::Str(_) => "string",
            Attr::Type(_) => "type",
            Attr::Array(_) => "array",
            Attr::Dict(_) => "dictionary",
            Attr::Dense(_) => "dense constant",
            Attr::Map(_) => "affine map",
        }
    }
}

impl From<i64> for Attr {
    fn from(v: i64) -> Self {
        Attr::Int(v)
    }
}
impl From<f64> for Attr {
    fn from(v: f64) -> Self {
        Attr::Float(v)
    }
}
impl From<bool> for Attr {
    fn from(v: bool) -> Self {
        Attr::Bool(v)
    }
}
impl From<&str> for Attr {
    fn from(v: &str) -> Self {
        Attr::Str(v.to_string())
    }
}
impl From<DType> for Attr {
    fn from(v: DType) -> Self {
        Attr::Type(Type::Scalar(v))
    }
}

/// Builds an [`Attrs`] map: `attrs! { "axis" => 1i64, "keepdims" => true }`.
#[macro_export]
macro_rules! attrs {
    () => { $crate::Attrs::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {{
        let mut m = $crate::Attrs::new();
        $( m.insert(($k).to_string(), $crate::Attr::from($v)); )+
        m
    }};
}
