//! Expressions (a Pratt parser) and types.
//!
//! Precedence, loosest first, as in Python: comparisons; `+ -`; `* / @`;
//! prefix `-`; `**` (right-associative, so `-x ** 2` is `-(x ** 2)`); then
//! calls `f(…)` and fields `a.b`. A line break outside brackets ends an
//! expression (see [`crate::lexer`]).
//!
//! Every function returns the tree depth of what it built next to it, so a
//! long left-leaning chain (`a + a + … + a`) is bounded exactly like nested
//! parentheses: later tree walks recurse, and must not overflow.

use super::{MAX_DEPTH, PResult, Parser};
use crate::ast::*;
use crate::diag::{Diagnostic, codes};
use crate::lexer::{Tok, unescape};
use dlc_ir::DType;

/// The infix operator of a token with its left and right binding powers.
pub(super) fn infix(k: Tok) -> Option<(BinOp, u8, u8)> {
    Some(match k {
        Tok::EqEq => (BinOp::Eq, 1, 2),
        Tok::NotEq => (BinOp::Ne, 1, 2),
        Tok::Lt => (BinOp::Lt, 1, 2),
        Tok::Le => (BinOp::Le, 1, 2),
        Tok::Gt => (BinOp::Gt, 1, 2),
        Tok::Ge => (BinOp::Ge, 1, 2),
        Tok::Plus => (BinOp::Add, 3, 4),
        Tok::Minus => (BinOp::Sub, 3, 4),
        Tok::Star => (BinOp::Mul, 5, 6),
        Tok::Slash => (BinOp::Div, 5, 6),
        Tok::At => (BinOp::MatMul, 5, 6),
        Tok::StarStar => (BinOp::Pow, 9, 8),
        _ => return None,
    })
}

/// The binding power of prefix `-`: tighter than `*`, looser than `**`.
const PREFIX_BP: u8 = 7;

/// The element types a tensor type may name.
pub(crate) fn dtype_named(name: &str) -> Option<DType> {
    match name {
        "f32" => Some(DType::F32),
        "f64" => Some(DType::F64),
        "i32" => Some(DType::I32),
        "i64" => Some(DType::I64),
        "bool" | "i1" => Some(DType::I1),
        _ => None,
    }
}

impl Parser<'_> {
    /// Parses an expression.
    pub(super) fn expr(&mut self) -> PResult<Expr> {
        self.expr_bp(0).map(|(e, _)| e)
    }

    fn node(&mut self, kind: ExprKind, span: Span, depth: usize) -> PResult<(Expr, usize)> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok((Expr { kind, span }, depth))
    }

    fn expr_bp(&mut self, min: u8) -> PResult<(Expr, usize)> {
        self.enter()?;
        let r = self.expr_bp_inner(min);
        self.leave();
        r
    }

    fn expr_bp_inner(&mut self, min: u8) -> PResult<(Expr, usize)> {
        let (mut lhs, mut d) = self.prefix()?;
        loop {
            let t = self.peek();
            if t.nl {
                break;
            }
            let Some((op, l, r)) = infix(t.kind) else { break };
            if l < min {
                break;
            }
            self.bump();
            let (rhs, rd) = self.expr_bp(r)?;
            let span = lhs.span.start..rhs.span.end;
            (lhs, d) = self.node(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span, d.max(rd) + 1)?;
        }
        Ok((lhs, d))
    }

    fn prefix(&mut self) -> PResult<(Expr, usize)> {
        if self.at(Tok::Minus) {
            let start = self.bump().span.start;
            let (e, d) = self.expr_bp(PREFIX_BP)?;
            let span = start..e.span.end;
            return self.node(ExprKind::Unary(UnOp::Neg, Box::new(e)), span, d + 1);
        }
        let (mut e, mut d) = self.primary()?;
        loop {
            let t = self.peek();
            if t.nl {
                break;
            }
            match t.kind {
                Tok::LParen => {
                    let (args, ad) = self.args()?;
                    let span = e.span.start..self.prev_end;
                    (e, d) = self.node(ExprKind::Call(Box::new(e), args), span, d.max(ad) + 1)?;
                }
                Tok::Dot => {
                    self.bump();
                    let field = self.ident("a field name after `.`")?;
                    let span = e.span.start..field.span.end;
                    (e, d) = self.node(ExprKind::Field(Box::new(e), field), span, d + 1)?;
                }
                _ => break,
            }
        }
        Ok((e, d))
    }

    fn primary(&mut self) -> PResult<(Expr, usize)> {
        let t = self.peek().clone();
        let text = self.text(&t);
        let kind = match t.kind {
            Tok::Int => {
                self.bump();
                match text.replace('_', "").parse::<i64>() {
                    Ok(v) => ExprKind::Int(v),
                    Err(_) => {
                        self.diags.push(Diagnostic::new(
                            codes::NUMBER_RANGE,
                            format!("integer `{text}` does not fit in 64 bits"),
                            t.span.clone(),
                            "too large",
                        ));
                        ExprKind::Error
                    }
                }
            }
            Tok::Float => {
                self.bump();
                match text.replace('_', "").parse::<f64>() {
                    Ok(v) if v.is_finite() => ExprKind::Float(v),
                    _ => {
                        self.diags.push(Diagnostic::new(
                            codes::NUMBER_RANGE,
                            format!("number `{text}` is too large for a 64-bit float"),
                            t.span.clone(),
                            "too large",
                        ));
                        ExprKind::Error
                    }
                }
            }
            Tok::Str | Tok::UnterminatedStr => {
                self.bump();
                ExprKind::Str(unescape(text))
            }
            Tok::True | Tok::False => {
                self.bump();
                ExprKind::Bool(t.kind == Tok::True)
            }
            Tok::Ident => {
                self.bump();
                ExprKind::Name(text.to_string())
            }
            Tok::LParen => return self.paren(),
            Tok::LBracket => {
                self.bump();
                let (items, d) = self.list_items(Tok::RBracket)?;
                return self.node(ExprKind::List(items), t.span.start..self.prev_end, d + 1);
            }
            _ => return Err(self.error_expected("an expression")),
        };
        Ok((Expr { kind, span: t.span }, 1))
    }

    /// `(e)` is `e` (its span widened to the parentheses); `(a, b)` and `(a,)` are lists.
    fn paren(&mut self) -> PResult<(Expr, usize)> {
        let start = self.bump().span.start;
        if self.at(Tok::RParen) {
            return Err(self.error_expected("an expression"));
        }
        let (first, d) = self.expr_bp(0)?;
        if self.eat(Tok::Comma).is_some() {
            let (mut rest, rd) = self.list_items(Tok::RParen)?;
            rest.insert(0, first);
            return self.node(ExprKind::List(rest), start..self.prev_end, d.max(rd) + 1);
        }
        self.expect(Tok::RParen)?;
        Ok((
            Expr {
                kind: first.kind,
                span: start..self.prev_end,
            },
            d,
        ))
    }

    /// Comma-separated expressions up to and including `close`.
    fn list_items(&mut self, close: Tok) -> PResult<(Vec<Expr>, usize)> {
        let mut items = Vec::new();
        let mut depth = 0;
        while !self.at(close) {
            let (e, d) = self.expr_bp(0)?;
            depth = depth.max(d);
            items.push(e);
            if self.eat(Tok::Comma).is_none() && !self.at(close) {
                return Err(self.error_expected(&format!("`,` or {}", close.describe())));
            }
        }
        self.bump();
        Ok((items, depth))
    }

    /// "expected `,` or `)`", pointing also at the `(` when the call has run
    /// on past the end of its line (the likely mistake: a missing `)`).
    fn unclosed_paren(&mut self, open: Span) -> super::Failed {
        let next_line = self.src.get(self.prev_end..self.peek().span.start).is_some_and(|gap| gap.contains('\n'));
        let f = self.error_expected("`,` or `)`");
        if next_line && let Some(d) = self.diags.last_mut().filter(|d| d.code == codes::SYNTAX && d.span == self.toks[self.pos].span) {
            d.secondary.push((open, "this `(` is not closed".into()));
        }
        f
    }

    /// `( arg, name: arg, … )`
    fn args(&mut self) -> PResult<(Vec<Arg>, usize)> {
        let open = self.bump().span;
        let mut args = Vec::new();
        let mut depth = 0;
        while !self.at(Tok::RParen) {
            let start = self.peek().span.start;
            let name = if self.at(Tok::Ident) && self.nth(1) == Tok::Colon {
                let n = self.ident("a keyword")?;
                self.bump();
                Some(n)
            } else if self.at(Tok::Ident) && self.nth(1) == Tok::Assign {
                let t = self.peek().clone();
                let name = self.text(&t).to_string();
                return Err(self.error(
                    Diagnostic::new(
                        codes::SYNTAX,
                        "keyword arguments use `:`, not `=`",
                        t.span.start..self.toks[self.pos + 1].span.end,
                        "expected `:`",
                    )
                    .with_help(format!("write `{name}: …`, as in `Conv2d(1, 32, kernel: 3)`")),
                ));
            } else {
                None
            };
            let (value, d) = self.expr_bp(0)?;
            depth = depth.max(d);
            args.push(Arg {
                name,
                value,
                span: start..self.prev_end,
            });
            if self.eat(Tok::Comma).is_none() && !self.at(Tok::RParen) {
                return Err(self.unclosed_paren(open));
            }
        }
        self.bump();
        Ok((args, depth))
    }

    /// A type: `int`, `float`, `bool`, `str`, or `dtype[dims]`.
    pub(super) fn type_expr(&mut self) -> PResult<TypeExpr> {
        const WHAT: &str = "a type such as `f32[batch, 784]` or `int`";
        if !self.at(Tok::Ident) {
            return Err(self.error_expected(WHAT));
        }
        let t = self.peek().clone();
        let name = self.text(&t);
        if self.nth(1) == Tok::LBracket {
            let Some(dtype) = dtype_named(name) else {
                return Err(self.error(
                    Diagnostic::new(
                        codes::SYNTAX,
                        format!("expected an element type, found `{name}`"),
                        t.span,
                        "not an element type",
                    )
                    .with_help("element types are f32, f64, i32, i64 and bool"),
                ));
            };
            self.bump();
            self.bump();
            let mut dims = Vec::new();
            while !self.at(Tok::RBracket) {
                dims.push(self.dim()?);
                if self.eat(Tok::Comma).is_none() && !self.at(Tok::RBracket) {
                    return Err(self.error_expected("`,` or `]`"));
                }
            }
            self.bump();
            return Ok(TypeExpr::Tensor(TensorTypeExpr {
                dtype,
                dims,
                span: t.span.start..self.prev_end,
            }));
        }
        let scalar = match name {
            "int" => ScalarType::Int,
            "float" => ScalarType::Float,
            "bool" => ScalarType::Bool,
            "str" => ScalarType::Str,
            _ if dtype_named(name).is_some() => {
                return Err(self.error(
                    Diagnostic::new(
                        codes::SYNTAX,
                        format!("the tensor type `{name}` needs its dims"),
                        t.span,
                        "expected `[` after this",
                    )
                    .with_help(format!("write the shape, as in `{name}[batch, 10]`; use `{name}[]` for a scalar tensor")),
                ));
            }
            _ => return Err(self.error_expected(WHAT)),
        };
        self.bump();
        Ok(TypeExpr::Scalar(scalar, t.span))
    }

    fn dim(&mut self) -> PResult<DimExpr> {
        let t = self.peek().clone();
        let closes = matches!(self.nth(1), Tok::Comma | Tok::RBracket);
        match t.kind {
            Tok::Ellipsis => {
                self.bump();
                Ok(DimExpr::Ellipsis(t.span))
            }
            Tok::Ident if closes && self.text(&t) == "_" => {
                self.bump();
                Ok(DimExpr::Wildcard(t.span))
            }
            Tok::Ident if closes && self.text(&t) == "batch" => {
                self.bump();
                Ok(DimExpr::Batch(t.span))
            }
            _ => self.expr().map(DimExpr::Expr),
        }
    }
}
