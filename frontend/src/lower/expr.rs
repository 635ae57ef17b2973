//! Expressions: names, literals, operators, fields and call dispatch.
//!
//! Arithmetic on two compile-time numbers is evaluated here with Python's
//! rules (ints stay ints, `/` gives a float), so `1 / sqrt(in)` in an
//! initializer or `in * kernel * kernel` in a shape never reaches the IR.
//! Anything involving a tensor becomes the operator's builtin (see
//! [`crate::builtins`]).

use super::args::ArgVal;
use super::layers::CallCtx;
use super::{Lowerer, R, Reported};
use crate::ast::{BinOp, Expr, ExprKind, Ident, Span, UnOp};
use crate::builtins;
use crate::diag::codes;
use crate::suggest::did_you_mean;
use crate::value::{FnRef, Value};
use std::rc::Rc;

/// Why compile-time arithmetic failed.
#[derive(Debug, PartialEq)]
pub(crate) enum ConstError {
    /// The operands are not numbers of the right kind.
    Kind(String),
    /// The arithmetic itself failed (division by zero, overflow).
    Eval(String),
}

/// `a op b` on compile-time values; `None` when either is not a constant.
pub(crate) fn const_binop(op: BinOp, a: &Value, b: &Value) -> Option<Result<Value<'static>, ConstError>> {
    use BinOp::*;
    let is_const = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Str(_));
    if !is_const(a) || !is_const(b) {
        return None;
    }
    let cmp = |o: std::cmp::Ordering| -> Value<'static> {
        Value::Bool(match op {
            Eq => o.is_eq(),
            Ne => o.is_ne(),
            Lt => o.is_lt(),
            Le => o.is_le(),
            Gt => o.is_gt(),
            _ => o.is_ge(),
        })
    };
    let overflow = || ConstError::Eval(format!("integer overflow in `{}`", op.symbol()));
    Some(match (a, b) {
        (Value::Int(x), Value::Int(y)) => match op {
            Add => x.checked_add(*y).map(Value::Int).ok_or_else(overflow),
            Sub => x.checked_sub(*y).map(Value::Int).ok_or_else(overflow),
            Mul => x.checked_mul(*y).map(Value::Int).ok_or_else(overflow),
            Div if *y == 0 => Err(ConstError::Eval("division by zero".into())),
            Div => Ok(Value::Float(*x as f64 / *y as f64)),
            Pow if *y >= 0 => u32::try_from(*y).ok().and_then(|e| x.checked_pow(e)).map(Value::Int).ok_or_else(overflow),
            Pow => finite((*x as f64).powf(*y as f64), op),
            MatMul => Err(ConstError::Kind("`@` multiplies tensors, not numbers".into())),
            Eq | Ne | Lt | Le | Gt | Ge => Ok(cmp(x.cmp(y))),
        },
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            match op {
                Add => finite(x + y, op),
                Sub => finite(x - y, op),
                Mul => finite(x * y, op),
                Div if y == 0.0 => Err(ConstError::Eval("division by zero".into())),
                Div => finite(x / y, op),
                Pow => finite(x.powf(y), op),
                MatMul => Err(ConstError::Kind("`@` multiplies tensors, not numbers".into())),
                Eq | Ne | Lt | Le | Gt | Ge => match x.partial_cmp(&y) {
                    Some(o) => Ok(cmp(o)),
                    None => Ok(Value::Bool(op == Ne)),
                },
            }
        }
        (Value::Bool(x), Value::Bool(y)) if matches!(op, Eq | Ne) => Ok(cmp(x.cmp(y))),
        (Value::Str(x), Value::Str(y)) if matches!(op, Eq | Ne) => Ok(cmp(x.cmp(y))),
        _ => Err(ConstError::Kind(format!("`{}` does not apply to these values", op.symbol()))),
    })
}

fn finite(v: f64, op: BinOp) -> Result<Value<'static>, ConstError> {
    if v.is_finite() {
        Ok(Value::Float(v))
    } else {
        Err(ConstError::Eval(format!("`{}` gives {v}, not a finite number", op.symbol())))
    }
}

impl<'a> Lowerer<'a> {
    /// Evaluates an expression in the running code.
    pub(crate) fn eval(&mut self, e: &'a Expr) -> R<Value<'a>> {
        match &e.kind {
            ExprKind::Int(v) => Ok(Value::Int(*v)),
            ExprKind::Float(v) => Ok(Value::Float(*v)),
            ExprKind::Bool(v) => Ok(Value::Bool(*v)),
            ExprKind::Str(s) => Ok(Value::Str(s.as_str().into())),
            ExprKind::Name(n) => match self.lookup(n) {
                Some(Value::Poison) => Err(Reported),
                Some(v) => Ok(v),
                None => Err(self.unknown_name(n, &e.span)),
            },
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i)?);
                }
                Ok(Value::List(Rc::new(out)))
            }
            ExprKind::Unary(UnOp::Neg, x) => {
                let v = self.eval(x)?;
                self.negate(v, &x.span, &e.span)
            }
            ExprKind::Binary(BinOp::MatMul, a, b) => self.matmul(a, b, &e.span),
            ExprKind::Binary(op, a, b) => {
                let va = self.eval(a)?;
                let vb = self.eval(b)?;
                self.binary(*op, (va, &a.span), (vb, &b.span), &e.span)
            }
            ExprKind::Call(f, args) => {
                let callee = self.eval(f)?;
                self.call_value(callee, f, args, &e.span)
            }
            ExprKind::Field(base, field) => self.field(base, field, &e.span),
            ExprKind::Error => Err(Reported),
        }
    }

    fn negate(&mut self, v: Value<'a>, operand: &Span, span: &Span) -> R<Value<'a>> {
        match v {
            Value::Int(i) => match i.checked_neg() {
                Some(n) => Ok(Value::Int(n)),
                None => Err(self.const_error(ConstError::Eval("integer overflow in `-`".into()), span)),
            },
            Value::Float(f) => Ok(Value::Float(-f)),
            Value::Absent(n) => Ok(Value::Absent(n)),
            v @ Value::Tensor(_) => {
                let arg = self.arg(v, operand);
                self.apply_builtin(builtins::lookup("neg").expect("neg is a builtin"), "`-`", vec![arg], vec![false], span)
            }
            other => {
                let d = self.err(
                    codes::WRONG_KIND,
                    format!("cannot negate {}", other.describe(&self.func)),
                    operand,
                    "not a number or tensor",
                );
                Err(self.emit(d))
            }
        }
    }

    /// An argument value with the user span of `span`.
    pub(crate) fn arg(&self, value: Value<'a>, span: &Span) -> ArgVal<'a> {
        ArgVal {
            name: None,
            value,
            span: self.user_span(span),
        }
    }

    /// `a op b` for every operator but `@`.
    pub(crate) fn binary(&mut self, op: BinOp, a: (Value<'a>, &Span), b: (Value<'a>, &Span), span: &Span) -> R<Value<'a>> {
        use BinOp::*;
        match (&a.0, &b.0) {
            // An absent optional parameter contributes nothing (`x @ w.T + bias` without a bias).
            (Value::Absent(_), Value::Absent(_)) => return Ok(a.0),
            (_, Value::Absent(_)) if matches!(op, Add | Sub | Mul | Div) => return Ok(a.0),
            (Value::Absent(_), _) if matches!(op, Add | Mul) => return Ok(b.0),
            (Value::Absent(n), _) | (_, Value::Absent(n)) => {
                let d = self
                    .err(
                        codes::WRONG_KIND,
                        format!("`{n}` is absent here, and `{}` needs both operands", op.symbol()),
                        span,
                        format!("`{n}` is absent"),
                    )
                    .with_note("an optional parameter whose `if` is false can only be added (or multiplied) away");
                return Err(self.emit(d));
            }
            _ => {}
        }
        if let Some(r) = const_binop(op, &a.0, &b.0) {
            return r.map_err(|e| self.const_error(e, span));
        }
        let b_name = op.builtin();
        let args = vec![self.arg(a.0, a.1), self.arg(b.0, b.1)];
        self.apply_builtin(
            builtins::lookup(b_name).expect("every operator has a builtin"),
            &format!("`{}`", op.symbol()),
            args,
            vec![false, false],
            span,
        )
    }

    pub(crate) fn const_error(&mut self, e: ConstError, span: &Span) -> Reported {
        let d = match e {
            ConstError::Kind(m) => self.err(codes::WRONG_KIND, m, span, "here"),
            ConstError::Eval(m) => self.err(codes::CONST_EVAL, format!("cannot evaluate this at compile time: {m}"), span, m),
        };
        self.emit(d)
    }

    /// `base.field`: `x.T` transposes; `fc1.weight` reads a layer member.
    fn field(&mut self, base: &'a Expr, field: &Ident, span: &Span) -> R<Value<'a>> {
        let v = self.eval(base)?;
        if field.name == "T" {
            return match v {
                Value::Tensor(_) => {
                    let arg = self.arg(v, &base.span);
                    self.apply_builtin(
                        builtins::lookup("transpose").expect("transpose is a builtin"),
                        "`.T`",
                        vec![arg],
                        vec![false],
                        span,
                    )
                }
                Value::Absent(n) => Ok(Value::Absent(n)),
                other => {
                    let d = self.err(
                        codes::WRONG_KIND,
                        format!("`.T` transposes a tensor, but this is {}", other.describe(&self.func)),
                        &base.span,
                        "not a tensor",
                    );
                    Err(self.emit(d))
                }
            };
        }
        match &v {
            Value::Layer(inst) if inst.layer.is_some() => match inst.member(&field.name) {
                Some(Value::Poison) => Err(Reported),
                Some(Value::Func(fr)) if fr.owner.is_none() => Ok(Value::Func(FnRef {
                    owner: Some(inst.clone()),
                    ..fr.clone()
                })),
                Some(m) => Ok(m.clone()),
                None => {
                    let mut names: Vec<&str> = Vec::new();
                    for (n, _) in &inst.members {
                        if !names.contains(&n.as_str()) {
                            names.push(n);
                        }
                    }
                    let mut d = self
                        .err(
                            codes::UNKNOWN_FIELD,
                            format!("layer `{}` has no member `{}`", inst.layer_name, field.name),
                            &field.span,
                            "unknown member",
                        )
                        .with_note(format!("its members are: {}", names.join(", ")));
                    if let Some(s) = did_you_mean(&field.name, names.iter().copied()) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    Err(self.emit(d))
                }
            },
            other => {
                let mut d = self.err(
                    codes::UNKNOWN_FIELD,
                    format!("{} has no field `{}`", other.describe(&self.func), field.name),
                    &field.span,
                    "unknown field",
                );
                if matches!(other, Value::Tensor(_)) {
                    d = d.with_help("a tensor's only field is `.T` (its last two dims swapped)");
                }
                Err(self.emit(d))
            }
        }
    }

    /// Calls an evaluated callee with the arguments of a call expression.
    pub(crate) fn call_value(&mut self, callee: Value<'a>, f: &'a Expr, args: &'a [crate::ast::Arg], span: &Span) -> R<Value<'a>> {
        match callee {
            Value::Builtin(b) => self.call_builtin(b, args, span),
            Value::Func(fr) => {
                let vals = self.eval_args(args)?;
                let ctx = CallCtx {
                    call: self.user_span(span),
                    extra: Vec::new(),
                    instance: None,
                    callee: fr.def.name.name.clone(),
                };
                self.call_fn(&fr, vals, &ctx)
            }
            Value::LayerDef(l) => self.instantiate(l, args, None, span).map(Value::Layer),
            Value::Sequential => self.sequential(args, None, span).map(Value::Layer),
            Value::Layer(inst) => {
                let vals = self.eval_args(args)?;
                let ctx = CallCtx {
                    call: self.user_span(span),
                    extra: Vec::new(),
                    instance: Some(inst.clone()),
                    callee: inst.layer_name.clone(),
                };
                self.call_instance(&inst, vals, &ctx)
            }
            Value::Poison => Err(Reported),
            other => {
                let d = self.err(
                    codes::WRONG_KIND,
                    format!("`{}` is {}, which cannot be called", crate::dump::inline(f), other.describe(&self.func)),
                    &f.span,
                    "not a function or layer",
                );
                Err(self.emit(d))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(op: BinOp, a: Value<'static>, b: Value<'static>) -> Result<Value<'static>, ConstError> {
        const_binop(op, &a, &b).unwrap()
    }

    fn num(v: Result<Value<'static>, ConstError>) -> String {
        match v {
            Ok(Value::Int(i)) => format!("int {i}"),
            Ok(Value::Float(f)) => format!("float {f}"),
            Ok(Value::Bool(b)) => format!("bool {b}"),
            Ok(_) => "other".into(),
            Err(e) => format!("{e:?}"),
        }
    }

    #[test]
    fn python_arithmetic() {
        use BinOp::*;
        assert_eq!(num(eval(Add, Value::Int(2), Value::Int(3))), "int 5");
        assert_eq!(num(eval(Div, Value::Int(1), Value::Int(4))), "float 0.25");
        assert_eq!(num(eval(Pow, Value::Int(2), Value::Int(10))), "int 1024");
        assert_eq!(num(eval(Pow, Value::Int(2), Value::Int(-1))), "float 0.5");
        assert_eq!(num(eval(Mul, Value::Int(3), Value::Float(0.5))), "float 1.5");
        assert_eq!(num(eval(Lt, Value::Int(3), Value::Float(3.5))), "bool true");
        assert!(matches!(eval(Div, Value::Int(1), Value::Int(0)), Err(ConstError::Eval(_))));
        assert!(matches!(eval(Mul, Value::Int(i64::MAX), Value::Int(2)), Err(ConstError::Eval(_))));
        assert!(matches!(eval(Pow, Value::Float(-8.0), Value::Float(0.5)), Err(ConstError::Eval(_))));
        assert!(matches!(eval(Add, Value::Bool(true), Value::Int(1)), Err(ConstError::Kind(_))));
        assert!(const_binop(Add, &Value::Tensor(dlc_ir::ValueId(0)), &Value::Int(1)).is_none());
    }
}
