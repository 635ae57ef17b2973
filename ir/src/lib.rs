//! dlc's intermediate representation.
//!
//! A [`Module`] holds [`Function`]s; a function owns arenas of SSA values, ops
//! and blocks. Every op is described once, in the [`registry`]: its name,
//! operands, attributes, shape rule and category. The textual form is MLIR's
//! generic op syntax, so upstream `mlir-opt --allow-unregistered-dialect`
//! reads what dlc prints, and [`parse_module`] reads it back exactly.
#![deny(missing_docs)]

pub mod affine;
pub mod attr;
pub mod builder;
pub mod inline;
pub mod kernel;
pub mod module;
pub mod parse;
pub mod print;
pub mod registry;
pub mod signature;
pub mod train;
pub mod types;
pub mod verify;

pub use affine::{AffineExpr, AffineMap};
pub use attr::{Attr, Attrs, DenseAttr, DenseData};
pub use builder::{BuildError, Builder};
pub use parse::{ParseError, parse_attr_dict, parse_module};
pub use print::{ValueNames, print_attr, print_function, print_module};
pub use module::{BlockData, BlockId, Function, Module, OpData, OpId, Region, ValueData, ValueDef, ValueId};
pub use registry::{AttrView, Category, OpDef, OpKind};
pub use signature::{Arg, Init, Role, Signature};
pub use types::{DType, Dim, TensorType, Type};
pub use verify::{VerifyError, verify_function, verify_module};
