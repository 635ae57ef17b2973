//! Types, attributes and dense literals.
//!
//! Numbers are checked, never wrapped: an integer that does not fit its type,
//! or a float literal that overflows to infinity, is an error (MLIR would
//! silently wrap or round). Non-finite floats are written as their bit
//! pattern in hex, which reads back exactly, NaN payloads included.

use super::lexer::Tok;
use super::{ParseError, Parser};
use crate::attr::{Attr, Attrs, DenseAttr, DenseData};
use crate::types::{DType, Dim, TensorType, Type};

/// One element of a dense literal, as written.
#[derive(Clone, Copy)]
enum Elem<'a> {
    Int { neg: bool, text: &'a str },
    Float { neg: bool, text: &'a str },
    Bool(bool),
}

impl<'a> Parser<'a> {
    /// `tensor<?x784xf32>`, `f32`, `f64`, `i32`, `i64`, `i1` or `index`.
    pub(super) fn parse_type(&mut self) -> Result<Type, ParseError> {
        let at = self.start;
        let ty = match self.tok {
            Tok::BareId("tensor") => {
                self.bump()?;
                if self.tok != Tok::Punct('<') {
                    return Err(self.error(format!("expected '<' after 'tensor', found {}", self.tok.describe())));
                }
                // The lexer stands just past '<': read the shape from raw text.
                let (shape, dtype) = self.lex.scan_shape()?;
                let mut elements: u64 = 1;
                for d in &shape {
                    if let Dim::Static(n) = d {
                        elements = elements.checked_mul(*n).ok_or_else(|| {
                            self.error_at(at, "tensor type is too large: the product of its dimensions overflows 64 bits")
                        })?;
                    }
                }
                Type::Tensor(TensorType::new(shape, dtype))
            }
            Tok::BareId("index") => Type::Index,
            Tok::BareId(s) => match DType::from_name(s) {
                Some(d) => Type::Scalar(d),
                None => return Err(self.error(format!("unsupported type '{s}' (expected tensor<…>, f32, f64, i32, i64, i1 or index)"))),
            },
            _ => return Err(self.error(format!("expected a type, found {}", self.tok.describe()))),
        };
        self.bump()?;
        Ok(ty)
    }

    /// `{name = value, "quoted-name" = value}`.
    pub(super) fn attr_dict(&mut self) -> Result<Attrs, ParseError> {
        self.enter()?;
        self.expect('{', "to open an attribute dictionary")?;
        let entries = self.list('}', "the attribute dictionary", |p| {
            let at = p.start;
            let key = match p.bump()? {
                Tok::BareId(s) => s.to_string(),
                Tok::Str(s) if !s.is_empty() => s,
                Tok::Str(_) => return Err(p.error_at(at, "attribute names must not be empty")),
                t => return Err(p.error_at(at, format!("expected an attribute name, found {}", t.describe()))),
            };
            if p.tok != Tok::Punct('=') {
                return Err(p.error(format!(
                    "expected '=' after attribute name '{key}', found {} (unit attributes are not supported)",
                    p.tok.describe()
                )));
            }
            p.bump()?;
            Ok((key, at, p.attr()?))
        })?;
        let mut attrs = Attrs::new();
        for (key, at, value) in entries {
            if attrs.contains_key(&key) {
                return Err(self.error_at(at, format!("duplicate attribute '{key}'")));
            }
            attrs.insert(key, value);
        }
        self.depth -= 1;
        Ok(attrs)
    }

    /// One attribute value.
    fn attr(&mut self) -> Result<Attr, ParseError> {
        self.enter()?;
        let a = match self.tok {
            Tok::Punct('-') | Tok::Int(_) | Tok::Float(_) => self.number_attr()?,
            Tok::BareId("true") | Tok::BareId("false") => Attr::Bool(self.bump()? == Tok::BareId("true")),
            Tok::Str(_) => {
                let Tok::Str(s) = self.bump()? else { return Err(self.error("expected a string")) };
                Attr::Str(s)
            }
            Tok::Punct('[') => {
                self.bump()?;
                Attr::Array(self.list(']', "the array", Self::attr)?)
            }
            Tok::Punct('{') => Attr::Dict(self.attr_dict()?),
            Tok::BareId("dense") => Attr::Dense(self.dense()?),
            Tok::BareId("affine_map") => {
                let at = self.start;
                self.bump()?;
                if self.tok != Tok::Punct('<') {
                    return Err(self.error(format!("expected '<' after 'affine_map', found {}", self.tok.describe())));
                }
                // The lexer stands just past '<': read the map from raw text.
                let text = self.lex.scan_affine_map()?;
                let map = crate::affine::AffineMap::parse(text).map_err(|m| self.error_at(at, m))?;
                self.bump()?;
                Attr::Map(map)
            }
            Tok::BareId("tensor" | "index" | "f32" | "f64" | "i32" | "i64" | "i1") => Attr::Type(self.parse_type()?),
            _ => return Err(self.error(format!("expected an attribute value, found {}", self.tok.describe()))),
        };
        self.depth -= 1;
        Ok(a)
    }

    /// `3`, `-1`, `0.5`, `1.0e-8`, `0x7FF0000000000000 : f64`; an optional
    /// `: i64` / `: f64` suffix is accepted since MLIR prints it.
    fn number_attr(&mut self) -> Result<Attr, ParseError> {
        let neg = self.eat('-')?;
        let at = self.start;
        match self.bump()? {
            Tok::Int(text) if is_hex(text) => {
                let bits = parse_hex(text).ok_or_else(|| self.error_at(at, format!("hex literal {text} does not fit in 64 bits")))?;
                if self.eat(':')? && self.type_suffix(&["f64", "i64"])? == "f64" {
                    if neg {
                        return Err(self.error_at(at, "a hex float literal cannot be negated"));
                    }
                    return Ok(Attr::Float(f64::from_bits(bits)));
                }
                Ok(Attr::Int(signed(bits, neg).ok_or_else(|| self.error_at(at, format!("integer {text} does not fit in i64")))?))
            }
            Tok::Int(text) => {
                let v = int_value(text, neg).ok_or_else(|| self.error_at(at, format!("integer {text} does not fit in i64")))?;
                if self.eat(':')? {
                    self.type_suffix(&["i64"])?;
                }
                Ok(Attr::Int(v))
            }
            Tok::Float(text) => {
                let v = float_value(text, neg).ok_or_else(|| self.error_at(at, format!("float {text} is out of range for f64")))?;
                if self.eat(':')? {
                    self.type_suffix(&["f64"])?;
                }
                Ok(Attr::Float(v))
            }
            t => Err(self.error_at(at, format!("expected a number after '-', found {}", t.describe()))),
        }
    }

    /// The type after a number's `:`, which must be one of `allowed`.
    fn type_suffix(&mut self, allowed: &[&'static str]) -> Result<&'static str, ParseError> {
        let found = allowed.iter().copied().find(|a| self.tok == Tok::BareId(a));
        let Some(t) = found else {
            return Err(self.error(format!(
                "expected {} after ':' (dlc's integer attributes are i64 and its floats f64), found {}",
                allowed.join(" or "),
                self.tok.describe()
            )));
        };
        self.bump()?;
        Ok(t)
    }

    /// `dense<…> : tensor<…>`: a splat element, nested lists shaped like the
    /// type, or `dense<>` for a tensor with no elements.
    fn dense(&mut self) -> Result<DenseAttr, ParseError> {
        self.bump()?;
        self.expect('<', "after 'dense'")?;
        let lit_at = self.start;
        let mut elems = Vec::new();
        let shape = match self.tok {
            Tok::Punct('>') => None,
            Tok::Punct('[') => Some(self.dense_list(&mut elems)?),
            _ => {
                elems.push(self.dense_elem()?);
                None
            }
        };
        self.expect('>', "closing the dense literal")?;
        self.expect(':', "and the constant's type after 'dense<…>'")?;
        let ty_at = self.start;
        let ty = match self.parse_type()? {
            Type::Tensor(t) if t.is_static() => t,
            t => return Err(self.error_at(ty_at, format!("a dense constant needs a static tensor type, got {t}"))),
        };
        let n = ty.num_elements().unwrap_or(0);
        match &shape {
            None if elems.is_empty() && n != 0 => {
                return Err(self.error_at(lit_at, format!("empty dense<> needs a type with no elements, got {ty}")));
            }
            Some(s) if *s != ty.shape.iter().filter_map(|d| d.as_static()).collect::<Vec<_>>() => {
                let s: Vec<String> = s.iter().map(u64::to_string).collect();
                return Err(self.error_at(lit_at, format!("dense literal has shape [{}] but its type is {ty}", s.join(", "))));
            }
            _ => {}
        }
        let data = match ty.dtype {
            DType::F32 | DType::F64 => DenseData::Float(elems.iter().map(|&(e, at)| self.float_elem(e, at, ty.dtype)).collect::<Result<_, _>>()?),
            DType::I32 | DType::I64 => DenseData::Int(elems.iter().map(|&(e, at)| self.int_elem(e, at, ty.dtype)).collect::<Result<_, _>>()?),
            DType::I1 => DenseData::Bool(elems.iter().map(|&(e, at)| self.bool_elem(e, at)).collect::<Result<_, _>>()?),
        };
        Ok(DenseAttr { ty, data })
    }

    /// `[…]` of elements or of equally shaped lists; returns the list's shape.
    fn dense_list(&mut self, out: &mut Vec<(Elem<'a>, usize)>) -> Result<Vec<u64>, ParseError> {
        self.enter()?;
        let at = self.start;
        self.bump()?;
        let subs = self.list(']', "the dense literal", |p| {
            if p.tok == Tok::Punct('[') {
                p.dense_list(out)
            } else {
                out.push(p.dense_elem()?);
                Ok(Vec::new())
            }
        })?;
        if subs.iter().any(|s| *s != subs[0]) {
            return Err(self.error_at(at, "dense literal is not rectangular: its lists differ in shape"));
        }
        let mut shape = vec![subs.len() as u64];
        shape.extend(subs.first().cloned().unwrap_or_default());
        self.depth -= 1;
        Ok(shape)
    }

    fn dense_elem(&mut self) -> Result<(Elem<'a>, usize), ParseError> {
        let neg = self.eat('-')?;
        let at = self.start;
        let e = match self.bump()? {
            Tok::Int(text) => Elem::Int { neg, text },
            Tok::Float(text) => Elem::Float { neg, text },
            Tok::BareId("true") if !neg => Elem::Bool(true),
            Tok::BareId("false") if !neg => Elem::Bool(false),
            t => return Err(self.error_at(at, format!("expected a dense element (a number, true or false), found {}", t.describe()))),
        };
        Ok((e, at))
    }

    /// A float element; f32 values are rounded to f32 so that the stored
    /// value is the one the tensor holds, and reprints identically.
    fn float_elem(&self, e: Elem, at: usize, dtype: DType) -> Result<f64, ParseError> {
        match e {
            Elem::Float { neg, text } => {
                let v = float_value(text, neg).ok_or_else(|| self.error_at(at, format!("{text} is out of range for f64")))?;
                if dtype == DType::F32 {
                    let f = v as f32;
                    if !f.is_finite() {
                        return Err(self.error_at(at, format!("{text} is out of range for f32")));
                    }
                    return Ok(f as f64);
                }
                Ok(v)
            }
            Elem::Int { neg: false, text } if is_hex(text) => {
                let bits = parse_hex(text);
                match (dtype, bits) {
                    (DType::F32, Some(b)) if b <= u32::MAX as u64 => Ok(f32::from_bits(b as u32) as f64),
                    (DType::F64, Some(b)) => Ok(f64::from_bits(b)),
                    _ => Err(self.error_at(at, format!("hex literal {text} is not a bit pattern of {dtype}"))),
                }
            }
            Elem::Int { text, .. } => Err(self.error_at(at, format!("expected a floating-point element, found integer {text} (write {text}.0)"))),
            Elem::Bool(_) => Err(self.error_at(at, format!("expected a floating-point element for {dtype}, found a bool"))),
        }
    }

    fn int_elem(&self, e: Elem, at: usize, dtype: DType) -> Result<i64, ParseError> {
        let Elem::Int { neg, text } = e else {
            return Err(self.error_at(at, format!("expected an integer element for {dtype}")));
        };
        let v = if is_hex(text) { parse_hex(text).and_then(|b| signed(b, neg)) } else { int_value(text, neg) };
        let fits = |v: i64| dtype == DType::I64 || i32::try_from(v).is_ok();
        v.filter(|&v| fits(v)).ok_or_else(|| {
            let sign = if neg { "-" } else { "" };
            self.error_at(at, format!("integer {sign}{text} does not fit in {dtype}"))
        })
    }

    fn bool_elem(&self, e: Elem, at: usize) -> Result<bool, ParseError> {
        match e {
            Elem::Bool(b) => Ok(b),
            Elem::Int { neg: false, text: "0" } => Ok(false),
            Elem::Int { neg: false, text: "1" } => Ok(true),
            _ => Err(self.error_at(at, "expected true or false for an i1 element")),
        }
    }
}

fn is_hex(text: &str) -> bool {
    text.starts_with("0x")
}

fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.get(2..)?, 16).ok()
}

/// `bits` (a magnitude) with a sign, if it fits in i64.
fn signed(bits: u64, neg: bool) -> Option<i64> {
    let v = if neg { -(bits as i128) } else { bits as i128 };
    i64::try_from(v).ok()
}

/// A decimal integer literal with a sign, if it fits in i64.
fn int_value(text: &str, neg: bool) -> Option<i64> {
    signed(text.parse::<u64>().ok()?, neg)
}

/// A float literal with a sign, if it is finite in f64.
fn float_value(text: &str, neg: bool) -> Option<f64> {
    let v: f64 = text.parse().ok()?;
    v.is_finite().then_some(if neg { -v } else { v })
}
