//! Calls of builtins: the table in [`crate::builtins`] says where each argument
//! goes; this file binds them, folds calls on numbers, turns numbers into
//! rank-0 constants next to tensors, and builds the op. A shape error is the
//! registry's message, placed at the call.

use super::args::{ArgVal, bind};
use super::{Lowerer, R, Reported};
use crate::ast::{Arg, Expr, ExprKind, Span};
use crate::builtins::{self, ArgValue, Builtin, Dflt, Fold, Slot, computed_default, convert};
use crate::diag::codes;
use crate::value::{Value, show_type};
use dlc_ir::registry::AttrView;
use dlc_ir::{Attr, Attrs, Builder, Category, DType, OpKind, ValueId};

impl<'a> Lowerer<'a> {
    /// `name(args…)` written in the source.
    pub(crate) fn call_builtin(&mut self, b: &'static Builtin, args: &'a [Arg], span: &Span) -> R<Value<'a>> {
        let mut vals = Vec::with_capacity(args.len());
        let mut flags = Vec::with_capacity(args.len());
        let mut failed = false;
        for a in args {
            match self.operand_maybe_transposed(b.op, &a.value) {
                Ok((v, t)) => {
                    vals.push(ArgVal {
                        name: a.name.as_ref().map(|n| (n.name.clone(), self.user_span(&n.span))),
                        value: v,
                        span: self.user_span(&a.value.span),
                    });
                    flags.push(t);
                }
                Err(Reported) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        self.apply_builtin(b, &format!("`{}`", b.name), vals, flags, span)
    }

    /// `a @ b`.
    pub(crate) fn matmul(&mut self, a: &'a Expr, b: &'a Expr, span: &Span) -> R<Value<'a>> {
        let (va, ta) = self.operand_maybe_transposed(OpKind::Matmul, a)?;
        let (vb, tb) = self.operand_maybe_transposed(OpKind::Matmul, b)?;
        let args = vec![self.arg(va, &a.span), self.arg(vb, &b.span)];
        self.apply_builtin(builtins::lookup("matmul").expect("matmul is a builtin"), "`@`", args, vec![ta, tb], span)
    }

    /// A matmul operand written `w.T` is `w` with the op's transpose flag set,
    /// not a transpose op: the contraction reads either layout.
    fn operand_maybe_transposed(&mut self, op: OpKind, e: &'a Expr) -> R<(Value<'a>, bool)> {
        if op == OpKind::Matmul
            && let ExprKind::Field(base, f) = &e.kind
            && f.name == "T"
        {
            let v = self.eval(base)?;
            if matches!(v, Value::Tensor(_)) {
                return Ok((v, true));
            }
        }
        Ok((self.eval(e)?, false))
    }

    /// Applies a builtin to evaluated arguments; `shown` names it in messages
    /// (`` `+` `` for an operator), `transposed` flags matmul operands.
    pub(crate) fn apply_builtin(&mut self, b: &'static Builtin, shown: &str, args: Vec<ArgVal<'a>>, transposed: Vec<bool>, span: &Span) -> R<Value<'a>> {
        let names: Vec<&str> = b.params.iter().map(|p| p.name).collect();
        let call = self.user_span(span);
        let slots = bind(&names, args.into_iter().zip(transposed).map(|(a, t)| (a.name, (a.value, t), a.span)).collect())
            .map_err(|e| self.bind_error(e, b.name, &b.signature()))?;

        // Operands, in operand order.
        let mut operands: Vec<(Value<'a>, Span, bool)> = Vec::new();
        let place = |i: usize, v: (Value<'a>, Span, bool), ops: &mut Vec<(Value<'a>, Span, bool)>| {
            while ops.len() <= i {
                ops.push((Value::Poison, call.clone(), false));
            }
            ops[i] = v;
        };
        for (p, slot) in b.params.iter().zip(&slots) {
            match (p.slot, slot) {
                (Slot::Operand(i), Some(((v, t), s))) => place(i, (v.clone(), s.clone(), *t), &mut operands),
                (Slot::Operand(_), None) => return Err(self.missing_arg(b.name, p.name, &b.signature(), &call)),
                (Slot::Operands, Some(((Value::List(items), _), s))) => {
                    for v in items.iter() {
                        operands.push((v.clone(), s.clone(), false));
                    }
                }
                (Slot::Operands, Some(((v, _), s))) => {
                    let d = self.err(
                        codes::BAD_ARGUMENT,
                        format!("`{}` takes a list of tensors, found {}", b.name, v.describe(&self.func)),
                        span,
                        "expected a list such as `[a, b]`",
                    );
                    let d = if s != &call { d.with_secondary(s.clone(), "this one") } else { d };
                    return Err(self.emit(d));
                }
                (Slot::Operands, None) => return Err(self.missing_arg(b.name, p.name, &b.signature(), &call)),
                (Slot::Attr(..), _) => {}
            }
        }

        if let Some((Value::Absent(n), ..)) = operands.iter().find(|(v, ..)| matches!(v, Value::Absent(_))) {
            return Ok(Value::Absent(n.clone()));
        }
        if operands.iter().all(|(v, ..)| matches!(v, Value::Int(_) | Value::Float(_) | Value::Bool(_)))
            && !operands.is_empty()
            && let Some(v) = self.fold(b, &operands, span)?
        {
            return Ok(v);
        }
        self.check_op_budget(span)?;
        let ids = self.tensor_operands(b, shown, &operands, span)?;

        // Attributes.
        let first = ids.first().map(|&v| self.tensor_type(v));
        let mut attrs = Attrs::new();
        for (p, slot) in b.params.iter().zip(&slots) {
            let Slot::Attr(attr, conv) = p.slot else { continue };
            let (value, at) = match slot {
                Some(((v, _), s)) => (Some(self.arg_value(v)), s.clone()),
                None => (self.default_value(b, p.default, &slots, first.as_ref(), &call)?, call.clone()),
            };
            let Some(value) = value else { continue };
            let a = convert(conv, p.name, &value, first.as_ref()).map_err(|m| {
                let d = dlc_diag(codes::BAD_ARGUMENT, format!("invalid `{}` for `{}`: {m}", p.name, b.name), at.clone(), m);
                self.emit(d)
            })?;
            if AttrView::new(b.op, &Attrs::new()).get(attr).as_ref() != Some(&a) {
                attrs.insert(attr.to_string(), a);
            }
        }
        for (k, v) in b.fixed {
            attrs.insert(k.to_string(), Attr::Str(v.to_string()));
        }
        for (i, name) in ["transpose_a", "transpose_b"].iter().enumerate() {
            if operands.get(i).is_some_and(|o| o.2) {
                attrs.insert(name.to_string(), Attr::Bool(true));
            }
        }
        match Builder::at_entry(&mut self.func).op(b.op, &ids, attrs) {
            Ok(v) => Ok(Value::Tensor(v)),
            Err(e) => {
                let types: Vec<String> = ids.iter().map(|&v| show_type(&self.tensor_type(v))).collect();
                let d = self
                    .err(
                        codes::OP_SHAPE,
                        format!("invalid operands for {shown}: {}", e.message),
                        span,
                        format!("operand types: {}", types.join(", ")),
                    )
                    .with_note(format!("the shape rule of `{}` rejects them", b.op.name()));
                Err(self.emit(d))
            }
        }
    }

    fn fold(&mut self, b: &'static Builtin, operands: &[(Value<'a>, Span, bool)], span: &Span) -> R<Option<Value<'a>>> {
        let n = |i: usize| operands.get(i).and_then(|(v, ..)| v.as_f64());
        let r = match (b.fold, operands.len()) {
            (Fold::Unary(f), 1) => n(0).map(f),
            (Fold::Binary(f), 2) => n(0).zip(n(1)).map(|(x, y)| f(x, y)),
            (Fold::Arith(op), 2) => {
                return match super::expr::const_binop(op, &operands[0].0, &operands[1].0) {
                    Some(Ok(v)) => Ok(Some(v)),
                    Some(Err(e)) => Err(self.const_error(e, span)),
                    None => Ok(None),
                };
            }
            (Fold::Neg, 1) => {
                return Ok(match &operands[0].0 {
                    Value::Int(i) => i.checked_neg().map(Value::Int),
                    Value::Float(f) => Some(Value::Float(-f)),
                    _ => None,
                });
            }
            _ => None,
        };
        match r {
            Some(v) if v.is_finite() => Ok(Some(Value::Float(v))),
            Some(v) => {
                let d = self.err(
                    codes::CONST_EVAL,
                    format!("`{}` gives {v} here, not a finite number", b.name),
                    span,
                    "evaluated at compile time",
                );
                Err(self.emit(d))
            }
            None => Ok(None),
        }
    }

    /// The operands as SSA values: numbers become rank-0 constants of the
    /// tensors' element type; tensors must agree on it for elementwise ops.
    fn tensor_operands(&mut self, b: &'static Builtin, shown: &str, operands: &[(Value<'a>, Span, bool)], span: &Span) -> R<Vec<ValueId>> {
        for (v, s, _) in operands {
            if !matches!(v, Value::Tensor(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_)) {
                let mut d = dlc_diag(
                    codes::WRONG_KIND,
                    format!("{shown} takes tensors, found {}", v.describe(&self.func)),
                    s.clone(),
                    "not a tensor",
                );
                if matches!(v, Value::Layer(_) | Value::LayerDef(_)) {
                    d = d.with_help("a layer is applied by calling it: `fc(x)`");
                }
                return Err(self.emit(d));
            }
        }
        let tensor_dtypes: Vec<(usize, DType)> = operands
            .iter()
            .enumerate()
            .filter_map(|(i, (v, ..))| match v {
                Value::Tensor(t) => Some((i, self.tensor_type(*t).dtype)),
                _ => None,
            })
            .collect();
        let is_select_cond = |i: usize| b.op == OpKind::Select && i == 0;
        let dtype = tensor_dtypes
            .iter()
            .find(|(i, d)| !is_select_cond(*i) && *d != DType::I1)
            .or(tensor_dtypes.iter().find(|(i, _)| !is_select_cond(*i)))
            .map(|(_, d)| *d);
        if tensor_dtypes.is_empty() {
            let d = self
                .err(codes::BAD_ARGUMENT, format!("{shown} needs a tensor operand"), span, "no tensor here")
                .with_note(format!("`{}`", b.signature()));
            return Err(self.emit(d));
        }
        if b.op.category() == Category::Binary {
            let mut seen: Option<(usize, DType)> = None;
            for &(i, d) in &tensor_dtypes {
                if is_select_cond(i) {
                    continue;
                }
                match seen {
                    Some((j, e)) if e != d => {
                        let (ti, tj) = (self.describe_operand(&operands[i].0), self.describe_operand(&operands[j].0));
                        let d = self
                            .err(
                                codes::DTYPE_MISMATCH,
                                format!("dtype mismatch: {shown} of {tj} and {ti}"),
                                span,
                                format!("{} and {} differ", e, d),
                            )
                            .with_help(format!("convert one side first, e.g. `cast(x, {e})`"));
                        return Err(self.emit(d));
                    }
                    None => seen = Some((i, d)),
                    _ => {}
                }
            }
        }
        let mut ids = Vec::with_capacity(operands.len());
        for (i, (v, s, _)) in operands.iter().enumerate() {
            let want = if is_select_cond(i) { DType::I1 } else { dtype.unwrap_or(DType::F32) };
            let id = match v {
                Value::Tensor(t) => *t,
                Value::Int(n) if want != DType::I1 => self.scalar(*n as f64, want),
                Value::Float(f) if want.is_float() => self.scalar(*f, want),
                Value::Float(f) if want.is_int() && f.fract() == 0.0 => self.scalar(*f, want),
                Value::Bool(x) if want == DType::I1 => self.scalar(if *x { 1.0 } else { 0.0 }, want),
                Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                    let d = dlc_diag(
                        codes::DTYPE_MISMATCH,
                        format!("dtype mismatch: {} cannot be used with {want} tensors", v.describe(&self.func)),
                        s.clone(),
                        format!("cannot be {want}"),
                    )
                    .with_help(format!("the other operands of {shown} are {want}"));
                    return Err(self.emit(d));
                }
                other => {
                    let d = dlc_diag(
                        codes::WRONG_KIND,
                        format!("{shown} takes tensors, found {}", other.describe(&self.func)),
                        s.clone(),
                        "not a tensor",
                    );
                    return Err(self.emit(d));
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    fn describe_operand(&self, v: &Value<'a>) -> String {
        match v {
            Value::Tensor(t) => show_type(&self.tensor_type(*t)),
            o => o.describe(&self.func),
        }
    }

    /// A left-out attribute parameter's value, or `None` to omit the attribute.
    fn default_value(
        &mut self,
        b: &'static Builtin,
        d: Dflt,
        slots: &[Option<((Value<'a>, bool), Span)>],
        first: Option<&dlc_ir::TensorType>,
        call: &Span,
    ) -> R<Option<ArgValue>> {
        match d {
            Dflt::Required => {
                let name = b
                    .params
                    .iter()
                    .zip(slots)
                    .find(|(p, s)| p.default == Dflt::Required && s.is_none())
                    .map(|(p, _)| p.name)
                    .unwrap_or("?");
                Err(self.missing_arg(b.name, name, &b.signature(), call))
            }
            Dflt::SameAs(other) => {
                let i = b.params.iter().position(|p| p.name == other).unwrap_or(0);
                match &slots[i] {
                    Some(((v, _), _)) => Ok(Some(self.arg_value(v))),
                    None => self.default_value(b, b.params[i].default, slots, first, call),
                }
            }
            d => computed_default(d, first).map_err(|m| {
                let diag = dlc_diag(codes::BAD_ARGUMENT, format!("`{}`: {m}", b.name), call.clone(), m);
                self.emit(diag)
            }),
        }
    }

    /// A compile-time value as the attribute conversions see it.
    pub(crate) fn arg_value(&self, v: &Value<'a>) -> ArgValue {
        match v {
            Value::Int(i) => ArgValue::Int(*i),
            Value::Float(f) => ArgValue::Float(*f),
            Value::Bool(b) => ArgValue::Bool(*b),
            Value::DType(d) => ArgValue::DType(*d),
            Value::List(items) => ArgValue::List(items.iter().map(|i| self.arg_value(i)).collect()),
            other => ArgValue::Other(other.describe(&self.func)),
        }
    }
}

/// A diagnostic at a span already in the user's file.
fn dlc_diag(code: &'static str, message: String, span: Span, label: impl Into<String>) -> crate::diag::Diagnostic {
    crate::diag::Diagnostic::new(code, message, span, label)
}
