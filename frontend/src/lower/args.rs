//! Binding call arguments to parameters, with Python's rules: positional
//! arguments fill parameters in order, keywords fill them by name, nothing is
//! given twice. One binder serves layers, functions, builtins and initializers,
//! so every callee reports arity and keyword mistakes the same way.

use super::{Lowerer, R, Reported};
use crate::ast::{self, Span};
use crate::diag::{Diagnostic, codes};
use crate::suggest::did_you_mean;
use crate::value::Value;

/// An evaluated argument; spans are in the user's file.
pub(crate) struct ArgVal<'a> {
    /// The keyword and its span, if any.
    pub name: Option<(String, Span)>,
    /// The value.
    pub value: Value<'a>,
    /// The value's span.
    pub span: Span,
}

/// What is wrong with a call's arguments.
pub(crate) enum BindError {
    TooMany { max: usize, given: usize, span: Span },
    UnknownKeyword { name: String, span: Span, suggestion: Option<String> },
    Twice { name: String, span: Span, first: Span },
    PositionalAfterKeyword { span: Span },
}

/// An argument to bind: its keyword (with span), its value, its span.
pub(crate) type Given<T> = (Option<(String, Span)>, T, Span);

/// One slot per parameter: the argument bound to it, or `None`.
pub(crate) fn bind<T>(params: &[&str], args: Vec<Given<T>>) -> Result<Vec<Option<(T, Span)>>, BindError> {
    let mut slots: Vec<Option<(T, Span)>> = params.iter().map(|_| None).collect();
    let mut next = 0;
    let mut seen_keyword = false;
    let given = args.len();
    for (name, value, span) in args {
        let i = match name {
            None => {
                if seen_keyword {
                    return Err(BindError::PositionalAfterKeyword { span });
                }
                if next >= params.len() {
                    return Err(BindError::TooMany {
                        max: params.len(),
                        given,
                        span,
                    });
                }
                next += 1;
                next - 1
            }
            Some((n, nspan)) => {
                seen_keyword = true;
                match params.iter().position(|p| *p == n) {
                    Some(i) => i,
                    None => {
                        let suggestion = did_you_mean(&n, params.iter().copied());
                        return Err(BindError::UnknownKeyword {
                            name: n,
                            span: nspan,
                            suggestion,
                        });
                    }
                }
            }
        };
        if let Some((_, first)) = &slots[i] {
            return Err(BindError::Twice {
                name: params[i].to_string(),
                span,
                first: first.clone(),
            });
        }
        slots[i] = Some((value, span));
    }
    Ok(slots)
}

impl<'a> Lowerer<'a> {
    /// Evaluates call arguments in the running code.
    pub(crate) fn eval_args(&mut self, args: &'a [ast::Arg]) -> R<Vec<ArgVal<'a>>> {
        let mut out = Vec::with_capacity(args.len());
        let mut failed = false;
        for a in args {
            match self.eval(&a.value) {
                Ok(Value::Poison) | Err(Reported) => failed = true,
                Ok(value) => out.push(ArgVal {
                    name: a.name.as_ref().map(|n| (n.name.clone(), self.user_span(&n.span))),
                    value,
                    span: self.user_span(&a.value.span),
                }),
            }
        }
        if failed { Err(Reported) } else { Ok(out) }
    }

    /// Reports a binding error for a call of `callee` (spans are the user's).
    pub(crate) fn bind_error(&mut self, e: BindError, callee: &str, signature: &str) -> Reported {
        let d = bind_diagnostic(e, callee, signature);
        self.emit(d)
    }

    /// Reports a missing required argument at `call` (a user span).
    pub(crate) fn missing_arg(&mut self, callee: &str, param: &str, signature: &str, call: &Span) -> Reported {
        let d = Diagnostic::new(
            codes::ARITY,
            format!("`{callee}` is missing its argument `{param}`"),
            call.clone(),
            format!("`{param}` is not given"),
        )
        .with_note(format!("`{callee}` is `{signature}`"));
        self.emit(d)
    }
}

/// The diagnostic for a binding error in a call of `callee`.
pub(crate) fn bind_diagnostic(e: BindError, callee: &str, signature: &str) -> Diagnostic {
    let sig = format!("`{callee}` is `{signature}`");
    match e {
        BindError::TooMany { max, given, span } => Diagnostic::new(
            codes::ARITY,
            format!("`{callee}` takes {max} argument{}, but {given} were given", if max == 1 { "" } else { "s" }),
            span,
            "unexpected argument",
        )
        .with_note(sig),
        BindError::UnknownKeyword { name, span, suggestion } => {
            let d = Diagnostic::new(codes::UNKNOWN_KEYWORD, format!("`{callee}` has no parameter `{name}`"), span, "unknown keyword").with_note(sig);
            match suggestion {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d,
            }
        }
        BindError::Twice { name, span, first } => Diagnostic::new(
            codes::DUPLICATE_ARG,
            format!("argument `{name}` of `{callee}` is given twice"),
            span,
            "given again here",
        )
        .with_secondary(first, "first given here")
        .with_note(sig),
        BindError::PositionalAfterKeyword { span } => Diagnostic::new(
            codes::ARITY,
            format!("positional argument after keyword arguments in a call of `{callee}`"),
            span,
            "positional argument",
        )
        .with_help("put positional arguments first, as in `Conv2d(1, 32, kernel: 3)`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(n: &str) -> Option<(String, Span)> {
        Some((n.to_string(), 0..0))
    }

    #[test]
    fn positional_then_keyword() {
        let s = bind(&["in", "out", "bias"], vec![(None, 1, 0..1), (kw("bias"), 3, 2..3)]).ok().unwrap();
        assert_eq!(s.iter().map(|x| x.as_ref().map(|(v, _)| *v)).collect::<Vec<_>>(), [Some(1), None, Some(3)]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            bind(&["a"], vec![(None, 1, 0..1), (None, 2, 1..2)]),
            Err(BindError::TooMany { max: 1, given: 2, .. })
        ));
        assert!(matches!(
            bind(&["kernel"], vec![(kw("kernal"), 1, 0..1)]),
            Err(BindError::UnknownKeyword { suggestion: Some(_), .. })
        ));
        assert!(matches!(bind(&["a"], vec![(None, 1, 0..1), (kw("a"), 2, 1..2)]), Err(BindError::Twice { .. })));
        assert!(matches!(
            bind(&["a", "b"], vec![(kw("a"), 1, 0..1), (None, 2, 1..2)]),
            Err(BindError::PositionalAfterKeyword { .. })
        ));
    }
}
