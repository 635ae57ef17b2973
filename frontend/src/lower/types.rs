//! Written types: evaluating them (dims are compile-time expressions) and
//! checking values against them. A tensor type in a function signature is a
//! pattern: `...` matches any run of dims, `_` any one dim, `batch` the
//! symbolic batch dim; a mismatch is reported with both types written out in
//! full, the pattern's `...` and `_` filled in from the value.

use super::{Lowerer, R};
use crate::ast::{DimExpr, ExprKind, ScalarType, Span, TensorTypeExpr, TypeExpr};
use crate::diag::codes;
use crate::value::{Value, show_type};
use dlc_ir::{DType, Dim, TensorType};

/// One dim of an evaluated tensor pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PDim {
    /// A known size, with the name it was written as (`in`), if any.
    Fixed(u64, Option<String>),
    /// The batch dim `?`.
    Batch,
    /// `_`
    Any,
    /// `...`
    Rest,
}

/// An evaluated tensor type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pattern {
    pub dtype: DType,
    pub dims: Vec<PDim>,
}

/// How a value differs from its declared type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Mismatch {
    /// Not even the right kind of value.
    Kind { expected: String, found: String },
    /// Wrong shape; `named` is the first wrong dim written as a name, with the size found there.
    Shape {
        expected: String,
        found: String,
        named: Option<(String, u64)>,
        bindings: Vec<(String, u64)>,
    },
    /// Right shape, wrong element type.
    DType { expected: String, found: String, want: DType },
}

fn dtype_name(d: DType) -> &'static str {
    if d == DType::I1 { "bool" } else { d.name() }
}

/// Matches `t` against `p`.
pub(crate) fn match_pattern(p: &Pattern, t: &TensorType) -> Result<(), Mismatch> {
    let rest = p.dims.iter().position(|d| *d == PDim::Rest);
    let fixed = p.dims.len() - usize::from(rest.is_some());
    let rank_ok = if rest.is_some() { t.rank() >= fixed } else { t.rank() == fixed };
    let mut shown = Vec::new();
    let mut named = None;
    let mut ok = rank_ok;
    let bindings: Vec<(String, u64)> = p
        .dims
        .iter()
        .filter_map(|d| if let PDim::Fixed(n, Some(s)) = d { Some((s.clone(), *n)) } else { None })
        .collect();
    if rank_ok {
        let covered = t.rank() - fixed;
        let mut j = 0;
        for d in &p.dims {
            match d {
                PDim::Rest => {
                    shown.extend(t.shape[j..j + covered].iter().map(Dim::to_string));
                    j += covered;
                    continue;
                }
                PDim::Any => shown.push(t.shape[j].to_string()),
                PDim::Batch => {
                    shown.push("?".into());
                    ok &= t.shape[j] == Dim::Dynamic;
                }
                PDim::Fixed(n, name) => {
                    shown.push(n.to_string());
                    if t.shape[j] != Dim::Static(*n) {
                        ok = false;
                        if named.is_none()
                            && let (Some(s), Dim::Static(found)) = (name, t.shape[j])
                        {
                            named = Some((s.clone(), found));
                        }
                    }
                }
            }
            j += 1;
        }
    } else {
        for d in &p.dims {
            shown.push(match d {
                PDim::Rest => "...".into(),
                PDim::Any => "_".into(),
                PDim::Batch => "?".into(),
                PDim::Fixed(n, _) => n.to_string(),
            });
        }
    }
    let expected = format!("{}[{}]", dtype_name(p.dtype), shown.join(", "));
    if !ok {
        return Err(Mismatch::Shape {
            expected,
            found: show_type(t),
            named,
            bindings,
        });
    }
    if t.dtype != p.dtype {
        return Err(Mismatch::DType {
            expected,
            found: show_type(t),
            want: p.dtype,
        });
    }
    Ok(())
}

impl<'a> Lowerer<'a> {
    /// Evaluates a tensor type in the running code.
    pub(crate) fn pattern(&mut self, t: &'a TensorTypeExpr) -> R<Pattern> {
        let mut dims = Vec::with_capacity(t.dims.len());
        for d in &t.dims {
            dims.push(match d {
                DimExpr::Ellipsis(s) => {
                    if dims.contains(&PDim::Rest) {
                        let d = self.err(codes::BAD_ARGUMENT, "a type can have only one `...`", s, "second `...`");
                        return Err(self.emit(d));
                    }
                    PDim::Rest
                }
                DimExpr::Wildcard(_) => PDim::Any,
                DimExpr::Batch(_) => PDim::Batch,
                DimExpr::Expr(e) => match self.eval(e)? {
                    Value::Int(n) if n >= 0 => PDim::Fixed(n as u64, if let ExprKind::Name(s) = &e.kind { Some(s.clone()) } else { None }),
                    other => {
                        let d = self.err(
                            codes::BAD_ARGUMENT,
                            format!("a dim must be a non-negative integer, found {}", other.describe(&self.func)),
                            &e.span,
                            "not a size",
                        );
                        return Err(self.emit(d));
                    }
                },
            });
        }
        Ok(Pattern { dtype: t.dtype, dims })
    }

    /// A fully known type: model inputs (`batch` allowed) and parameters (not).
    pub(crate) fn concrete_type(&mut self, t: &'a TypeExpr, what: &str, batch_ok: bool) -> R<TensorType> {
        let TypeExpr::Tensor(tt) = t else {
            let d = self
                .err(codes::BAD_ARGUMENT, format!("{what} must have a tensor type"), &t.span(), "not a tensor type")
                .with_help("write a tensor type such as `f32[batch, 784]`");
            return Err(self.emit(d));
        };
        let p = self.pattern(tt)?;
        let mut shape = Vec::with_capacity(p.dims.len());
        for d in &p.dims {
            shape.push(match d {
                PDim::Fixed(n, _) => Dim::Static(*n),
                PDim::Batch if batch_ok => Dim::Dynamic,
                _ => {
                    let (msg, help) = if batch_ok {
                        (format!("{what} must have a known shape"), "use numbers and `batch` (the batch size)")
                    } else {
                        (
                            format!("{what} must have a static shape"),
                            "a parameter's size cannot depend on the batch; use numbers",
                        )
                    };
                    let d = self.err(codes::BAD_ARGUMENT, msg, &tt.span, "not fully known").with_help(help);
                    return Err(self.emit(d));
                }
            });
        }
        if shape
            .iter()
            .filter_map(|d| d.as_static())
            .try_fold(1u64, |a, d| a.checked_mul(d).filter(|&n| n <= i64::MAX as u64))
            .is_none()
        {
            let d = self.err(
                codes::BAD_ARGUMENT,
                format!("{what} is too large: more than 2^63 elements"),
                &tt.span,
                "too many elements",
            );
            return Err(self.emit(d));
        }
        Ok(TensorType::new(shape, p.dtype))
    }

    /// Checks `v` against `t` in the running code; `Ok(Err(_))` is a mismatch
    /// for the caller to report where it belongs.
    pub(crate) fn conform(&mut self, v: Value<'a>, t: &'a TypeExpr) -> R<Result<Value<'a>, Mismatch>> {
        match t {
            TypeExpr::Scalar(s, _) => Ok(match (s, v) {
                (ScalarType::Int, v @ Value::Int(_)) => Ok(v),
                (ScalarType::Float, Value::Int(i)) => Ok(Value::Float(i as f64)),
                (ScalarType::Float, v @ Value::Float(_)) => Ok(v),
                (ScalarType::Bool, v @ Value::Bool(_)) => Ok(v),
                (ScalarType::Str, v @ Value::Str(_)) => Ok(v),
                (s, v) => Err(Mismatch::Kind {
                    expected: format!("{} ({})", s.name(), scalar_phrase(*s)),
                    found: v.describe(&self.func),
                }),
            }),
            TypeExpr::Tensor(tt) => {
                let p = self.pattern(tt)?;
                Ok(match v {
                    Value::Tensor(id) => match match_pattern(&p, &self.tensor_type(id)) {
                        Ok(()) => Ok(v),
                        Err(m) => Err(m),
                    },
                    other => Err(Mismatch::Kind {
                        expected: format!("a tensor {}", crate::dump::ty(t)),
                        found: other.describe(&self.func),
                    }),
                })
            }
        }
    }

    /// `let x: T = v`, `output y: T = v`: a mismatch is reported at the value.
    pub(crate) fn check_annotation(&mut self, v: Value<'a>, t: &'a TypeExpr, span: &Span, what: &str) -> R<Value<'a>> {
        match self.conform(v, t)? {
            Ok(v) => Ok(v),
            Err(m) => {
                let d = match m {
                    Mismatch::Shape { expected, found, .. } => self
                        .err(
                            codes::SHAPE_MISMATCH,
                            format!("shape mismatch: {what} is declared {expected}, but its value is {found}"),
                            span,
                            format!("this is {found}"),
                        )
                        .with_secondary(t.span(), "declared here"),
                    Mismatch::DType { expected, found, want } => self
                        .err(
                            codes::DTYPE_MISMATCH,
                            format!("dtype mismatch: {what} is declared {expected}, but its value is {found}"),
                            span,
                            format!("this is {found}"),
                        )
                        .with_help(format!("convert it with `cast(…, {})`", dtype_name(want))),
                    Mismatch::Kind { expected, found } => self.err(
                        codes::BAD_ARGUMENT,
                        format!("{what} is declared {expected}, but its value is {found}"),
                        span,
                        "wrong kind of value",
                    ),
                };
                let d = if self.frame().file == crate::value::FileId::User {
                    d
                } else {
                    crate::diag::Diagnostic { secondary: Vec::new(), ..d }
                };
                Err(self.emit(d))
            }
        }
    }
}

fn scalar_phrase(s: ScalarType) -> &'static str {
    match s {
        ScalarType::Int => "an integer",
        ScalarType::Float => "a number",
        ScalarType::Bool => "`true` or `false`",
        ScalarType::Str => "a string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[Option<u64>]) -> TensorType {
        TensorType::new(dims.iter().map(|d| d.map(Dim::Static).unwrap_or(Dim::Dynamic)).collect(), DType::F32)
    }

    #[test]
    fn ellipsis_wildcards_and_names() {
        let p = Pattern {
            dtype: DType::F32,
            dims: vec![PDim::Rest, PDim::Fixed(500, Some("in".into()))],
        };
        assert_eq!(match_pattern(&p, &t(&[None, Some(500)])), Ok(()));
        assert_eq!(match_pattern(&p, &t(&[Some(500)])), Ok(()));
        let m = match_pattern(&p, &t(&[None, Some(576)])).unwrap_err();
        assert_eq!(
            m,
            Mismatch::Shape {
                expected: "f32[?, 500]".into(),
                found: "f32[?, 576]".into(),
                named: Some(("in".into(), 576)),
                bindings: vec![("in".into(), 500)]
            }
        );
        let conv = Pattern {
            dtype: DType::F32,
            dims: vec![PDim::Batch, PDim::Fixed(1, None), PDim::Any, PDim::Any],
        };
        assert_eq!(match_pattern(&conv, &t(&[None, Some(1), Some(28), Some(28)])), Ok(()));
        let Err(Mismatch::Shape { expected, .. }) = match_pattern(&conv, &t(&[None, Some(784)])) else {
            panic!()
        };
        assert_eq!(expected, "f32[?, 1, _, _]");
        let Err(Mismatch::Shape { .. }) = match_pattern(&conv, &t(&[Some(2), Some(1), Some(3), Some(3)])) else {
            panic!("batch must be ?")
        };
        let i = Pattern {
            dtype: DType::I64,
            dims: vec![PDim::Rest],
        };
        assert!(matches!(match_pattern(&i, &t(&[None])), Err(Mismatch::DType { .. })));
    }
}
