//! Checking a train block against its model: known keys, losses, optimizers
//! and hyper-parameters (with "did you mean"), values in range (PyTorch's own
//! checks), and a loss whose output and label exist and fit each other.

use super::*;
use crate::ast::{BinOp, Expr, ExprKind, TrainBlock, UnOp};
use crate::diag::{Diagnostic, codes};
use crate::lower::{BindError, bind, bind_diagnostic};
use crate::suggest::did_you_mean;
use crate::value::show_type;
use dlc_ir::{DType, Dim};

/// What the train block may refer to in its model.
pub(crate) struct ModelView {
    /// Declared inputs, with their types when the model lowered.
    pub inputs: Vec<(String, Option<TensorType>)>,
    /// Declared outputs, with their types when the model lowered.
    pub outputs: Vec<(String, Option<TensorType>)>,
}

const KEYS: &[&str] = &["data", "loss", "optimizer", "epochs", "batch_size", "seed", "shuffle"];

/// Checks `block`; the spec is `None` when there were errors.
pub(crate) fn check_train(block: &TrainBlock, model: &ModelView) -> (Option<TrainSpec>, Vec<Diagnostic>) {
    let mut c = Checker { diags: Vec::new() };
    let spec = c.block(block, model);
    let spec = if c.diags.is_empty() { spec } else { None };
    (spec, c.diags)
}

/// A compile-time value in a train block.
#[derive(Clone, Debug)]
pub(super) enum K {
    Num(f64, bool),
    Bool(bool),
    Str(String),
    List(Vec<K>),
}

impl K {
    pub(super) fn describe(&self) -> String {
        match self {
            K::Num(v, _) => format!("the number {v}"),
            K::Bool(b) => format!("`{b}`"),
            K::Str(s) => format!("the string {s:?}"),
            K::List(_) => "a list".into(),
        }
    }
}

pub(super) struct Checker {
    pub(super) diags: Vec<Diagnostic>,
}

fn name_of(e: &Expr) -> Option<&str> {
    if let ExprKind::Name(n) = &e.kind { Some(n) } else { None }
}

/// `kind(args)` or a bare `kind`.
pub(super) fn call_parts(e: &Expr) -> Option<(&str, &Span, &[crate::ast::Arg])> {
    match &e.kind {
        ExprKind::Call(f, args) => name_of(f).map(|n| (n, &f.span, args.as_slice())),
        ExprKind::Name(n) => Some((n, &e.span, &[][..])),
        _ => None,
    }
}

impl Checker {
    pub(super) fn bad(&mut self, message: impl Into<String>, span: &Span, label: impl Into<String>) {
        self.diags.push(Diagnostic::new(codes::BAD_TRAIN_VALUE, message, span.clone(), label));
    }

    pub(super) fn konst(&mut self, e: &Expr) -> Option<K> {
        let r = match &e.kind {
            ExprKind::Int(i) => Some(K::Num(*i as f64, true)),
            ExprKind::Float(f) => Some(K::Num(*f, false)),
            ExprKind::Bool(b) => Some(K::Bool(*b)),
            ExprKind::Str(s) => Some(K::Str(s.clone())),
            ExprKind::List(items) => items.iter().map(|i| self.konst(i)).collect::<Option<Vec<_>>>().map(K::List),
            ExprKind::Unary(UnOp::Neg, x) => match self.konst(x)? {
                K::Num(v, int) => Some(K::Num(-v, int)),
                _ => None,
            },
            ExprKind::Binary(op, a, b) => match (self.konst(a)?, self.konst(b)?) {
                (K::Num(x, xi), K::Num(y, yi)) => {
                    let v = match op {
                        BinOp::Add => x + y,
                        BinOp::Sub => x - y,
                        BinOp::Mul => x * y,
                        BinOp::Div => x / y,
                        BinOp::Pow => x.powf(y),
                        _ => f64::NAN,
                    };
                    let int = xi && yi && matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul);
                    if v.is_finite() { Some(K::Num(v, int)) } else { None }
                }
                _ => None,
            },
            ExprKind::Error => return None,
            _ => None,
        };
        if r.is_none() && !matches!(e.kind, ExprKind::Error) {
            self.bad("expected a constant: a number, string, bool or list", &e.span, "not a constant");
        }
        r
    }

    pub(super) fn number(&mut self, e: &Expr, what: &str) -> Option<f64> {
        match self.konst(e)? {
            K::Num(v, _) => Some(v),
            k => {
                self.bad(format!("`{what}` must be a number, found {}", k.describe()), &e.span, "not a number");
                None
            }
        }
    }

    pub(super) fn count(&mut self, e: &Expr, what: &str, min: i64) -> Option<u64> {
        match self.konst(e)? {
            K::Num(v, true) if v >= min as f64 => Some(v as u64),
            K::Num(v, true) => {
                self.bad(format!("`{what}` must be at least {min}, found {v}"), &e.span, "out of range");
                None
            }
            k => {
                self.bad(format!("`{what}` must be an integer, found {}", k.describe()), &e.span, "not an integer");
                None
            }
        }
    }

    pub(super) fn flag(&mut self, e: &Expr, what: &str) -> Option<bool> {
        match self.konst(e)? {
            K::Bool(b) => Some(b),
            k => {
                self.bad(format!("`{what}` must be `true` or `false`, found {}", k.describe()), &e.span, "not a bool");
                None
            }
        }
    }

    pub(super) fn string(&mut self, e: &Expr, what: &str) -> Option<String> {
        match self.konst(e)? {
            K::Str(s) => Some(s),
            k => {
                self.bad(format!("`{what}` must be a string, found {}", k.describe()), &e.span, "not a string");
                None
            }
        }
    }

    /// Binds `args` to `params`; an unknown keyword is an unknown option.
    pub(super) fn bind_args<'e>(&mut self, callee: &str, params: &[&str], args: &'e [crate::ast::Arg]) -> Option<Vec<Option<&'e Expr>>> {
        let given = args
            .iter()
            .map(|a| (a.name.as_ref().map(|n| (n.name.clone(), n.span.clone())), &a.value, a.span.clone()))
            .collect();
        match bind(params, given) {
            Ok(slots) => Some(slots.into_iter().map(|s| s.map(|(e, _)| e)).collect()),
            Err(BindError::UnknownKeyword { name, span, suggestion }) => {
                let suggestion = suggestion.or_else(|| (name == "learning_rate" && params.contains(&"lr")).then(|| "lr".to_string()));
                let mut d = Diagnostic::new(codes::UNKNOWN_OPTION, format!("`{callee}` has no option `{name}`"), span, "unknown option")
                    .with_note(format!("`{callee}` takes: {}", params.join(", ")));
                if let Some(s) = suggestion {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.diags.push(d);
                None
            }
            Err(e) => {
                self.diags.push(bind_diagnostic(e, callee, &format!("{callee}({})", params.join(", "))));
                None
            }
        }
    }

    fn block(&mut self, block: &TrainBlock, model: &ModelView) -> Option<TrainSpec> {
        let mut seen: Vec<(&str, &Expr, &Span)> = Vec::new();
        // Keys a misspelled key was taken for: not also reported missing.
        let mut meant: Vec<String> = Vec::new();
        for e in &block.entries {
            let key = e.key.name.as_str();
            if !KEYS.contains(&key) {
                let mut d = Diagnostic::new(
                    codes::UNKNOWN_OPTION,
                    format!("unknown train option `{key}`"),
                    e.key.span.clone(),
                    "unknown option",
                )
                .with_note(format!("a train block takes: {}", KEYS.join(", ")));
                if let Some(s) = did_you_mean(key, KEYS.iter().copied()) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                    meant.push(s);
                }
                self.diags.push(d);
            } else if let Some((_, _, first)) = seen.iter().find(|(k, ..)| *k == key) {
                self.diags.push(
                    Diagnostic::new(codes::DUPLICATE, format!("`{key}` is given twice"), e.key.span.clone(), "given again here")
                        .with_secondary((*first).clone(), "first given here"),
                );
            } else {
                seen.push((key, &e.value, &e.key.span));
            }
        }
        let get = |k: &str| seen.iter().find(|(key, ..)| *key == k).map(|(_, e, _)| *e);
        let data = get("data").and_then(|e| self.data(e));
        // A data spec with errors may have named the label column: say nothing more about labels.
        let data_failed = get("data").is_some() && data.is_none();
        let loss = match get("loss") {
            Some(e) => self.loss(e, model, data.as_ref(), data_failed),
            None => {
                if !meant.iter().any(|m| m == "loss") {
                    self.missing(block, "loss", "loss: cross_entropy(logits, label)");
                }
                None
            }
        };
        let optimizer = match get("optimizer") {
            Some(e) => self.optimizer(e),
            None => {
                if !meant.iter().any(|m| m == "optimizer") {
                    self.missing(block, "optimizer", "optimizer: adam(lr: 1e-3)");
                }
                None
            }
        };
        let epochs = get("epochs").map(|e| self.count(e, "epochs", 1)).unwrap_or(Some(1));
        let batch_size = get("batch_size").map(|e| self.count(e, "batch_size", 1)).unwrap_or(Some(32));
        let seed = get("seed").map(|e| self.count(e, "seed", 0)).unwrap_or(Some(0));
        let shuffle = get("shuffle").map(|e| self.flag(e, "shuffle")).unwrap_or(Some(true));
        let (loss, optimizer) = (loss?, optimizer?);
        let features: Vec<String> = model.inputs.iter().map(|(n, _)| n.clone()).filter(|n| *n != loss.label.name).collect();
        if data.is_some() && features.len() != 1 {
            self.diags.push(
                Diagnostic::new(
                    codes::TRAIN_INCOMPLETE,
                    format!(
                        "the data's features feed one model input, but the model has {} besides the label",
                        features.len()
                    ),
                    get("data").map(|e| e.span.clone()).unwrap_or(block.keyword.clone()),
                    "features go to one input",
                )
                .with_note(format!(
                    "feature inputs: {}",
                    if features.is_empty() { "none".into() } else { features.join(", ") }
                )),
            );
            return None;
        }
        Some(TrainSpec {
            loss,
            optimizer,
            epochs: epochs?,
            batch_size: batch_size?,
            seed: seed?,
            shuffle: shuffle?,
            data,
            features,
            span: block.span.clone(),
            entry_spans: block.entries.iter().map(|e| (e.key.name.clone(), e.span.clone())).collect(),
        })
    }

    fn missing(&mut self, block: &TrainBlock, key: &str, example: &str) {
        self.diags.push(
            Diagnostic::new(
                codes::TRAIN_INCOMPLETE,
                format!("the train block has no `{key}`"),
                block.keyword.clone(),
                format!("`{key}` missing"),
            )
            .with_help(format!("add `{example}`")),
        );
    }

    fn loss(&mut self, e: &Expr, model: &ModelView, data: Option<&DataSpec>, data_failed: bool) -> Option<LossSpec> {
        let Some((name, nspan, args)) = call_parts(e) else {
            self.bad("a loss is a call such as `cross_entropy(logits, label)`", &e.span, "not a loss");
            return None;
        };
        let Some(kind) = LossKind::from_name(name) else {
            let names: Vec<&str> = LossKind::ALL.iter().map(|k| k.name()).collect();
            let mut d = Diagnostic::new(codes::UNKNOWN_LOSS, format!("unknown loss `{name}`"), nspan.clone(), "not a loss")
                .with_note(format!("losses: {}", names.join(", ")));
            if let Some(s) = did_you_mean(name, names.iter().copied()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let slots = self.bind_args(name, &["output", "label", "reduction"], args)?;
        let (Some(out_e), Some(label_e)) = (slots[0], slots[1]) else {
            self.diags.push(
                Diagnostic::new(
                    codes::ARITY,
                    format!("`{name}` takes the output it reads and the label it compares with"),
                    e.span.clone(),
                    "missing arguments",
                )
                .with_help(format!("write `{name}(output, label)`")),
            );
            return None;
        };
        let reduction = match slots[2] {
            None => Some(Reduction::Mean),
            Some(r) => match self.string(r, "reduction")?.as_str() {
                "mean" => Some(Reduction::Mean),
                "sum" => Some(Reduction::Sum),
                other => {
                    self.bad(format!("`reduction` is \"mean\" or \"sum\", found {other:?}"), &r.span, "unknown reduction");
                    None
                }
            },
        };
        let output = self.output_ref(out_e, model);
        let out_ty = output
            .as_ref()
            .and_then(|o| model.outputs.iter().find(|(n, _)| n == o))
            .and_then(|(_, t)| t.clone());
        let label = self.label_ref(
            label_e,
            kind,
            model,
            (data, data_failed),
            out_ty.as_ref(),
            output.as_deref().unwrap_or(""),
            name,
        );
        Some(LossSpec {
            kind,
            output: output?,
            label: label?,
            reduction: reduction?,
            span: e.span.clone(),
        })
    }

    fn output_ref(&mut self, e: &Expr, model: &ModelView) -> Option<String> {
        let names: Vec<&str> = model.outputs.iter().map(|(n, _)| n.as_str()).collect();
        let Some(n) = name_of(e) else {
            self.diags.push(
                Diagnostic::new(
                    codes::LOSS_TARGET,
                    "the loss reads a model output by name",
                    e.span.clone(),
                    "not an output name",
                )
                .with_note(format!("outputs: {}", names.join(", "))),
            );
            return None;
        };
        if names.contains(&n) {
            return Some(n.to_string());
        }
        let mut d = Diagnostic::new(
            codes::LOSS_TARGET,
            format!("`{n}` is not an output of the model"),
            e.span.clone(),
            "not an output",
        )
        .with_note(format!("outputs: {}", names.join(", ")));
        if let Some(s) = did_you_mean(n, names.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.diags.push(d);
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn label_ref(
        &mut self,
        e: &Expr,
        kind: LossKind,
        model: &ModelView,
        (data, data_failed): (Option<&DataSpec>, bool),
        out: Option<&TensorType>,
        output: &str,
        loss: &str,
    ) -> Option<Label> {
        let Some(n) = name_of(e) else {
            self.diags.push(Diagnostic::new(
                codes::LOSS_TARGET,
                "the loss names its label: a model input or the data's label column",
                e.span.clone(),
                "not a name",
            ));
            return None;
        };
        if n == output {
            self.diags.push(
                Diagnostic::new(
                    codes::LOSS_TARGET,
                    format!("the loss compares `{n}` with itself"),
                    e.span.clone(),
                    "the output again",
                )
                .with_help("the second argument is the label"),
            );
            return None;
        }
        // The label type the loss implies, from the output's type.
        let implied = out.map(|t| match kind {
            LossKind::CrossEntropy => {
                let mut s = t.shape.clone();
                if s.len() >= 2 {
                    s.remove(1);
                }
                TensorType::new(s, DType::I64)
            }
            _ => t.clone(),
        });
        if let Some(t) = out {
            if !t.dtype.is_float() {
                self.diags.push(Diagnostic::new(
                    codes::DTYPE_MISMATCH,
                    format!("`{loss}` needs a float output, but `{output}` is {}", show_type(t)),
                    e.span.clone(),
                    "label of a non-float output",
                ));
                return None;
            }
            if kind == LossKind::CrossEntropy && t.rank() < 2 {
                self.diags.push(
                    Diagnostic::new(
                        codes::SHAPE_MISMATCH,
                        format!("`cross_entropy` needs class scores [batch, classes], but `{output}` is {}", show_type(t)),
                        e.span.clone(),
                        "label of this output",
                    )
                    .with_help("for one score per example use `bce_with_logits`"),
                );
                return None;
            }
        }
        if let Some((_, ty)) = model.inputs.iter().find(|(i, _)| i == n) {
            if let (Some(ty), Some(want)) = (ty, &implied) {
                let int_ok = kind == LossKind::CrossEntropy && ty.dtype.is_int();
                if ty.shape != want.shape {
                    self.diags.push(
                        Diagnostic::new(
                            codes::SHAPE_MISMATCH,
                            format!(
                                "shape mismatch: `{loss}` of `{output}` needs a label {}, but `{n}` is {}",
                                show_type(want),
                                show_type(ty)
                            ),
                            e.span.clone(),
                            format!("this is {}", show_type(ty)),
                        )
                        .with_note(format!("`{output}` is {}", out.map(show_type).unwrap_or_default())),
                    );
                    return None;
                }
                if ty.dtype != want.dtype && !int_ok {
                    self.diags.push(
                        Diagnostic::new(
                            codes::DTYPE_MISMATCH,
                            format!("dtype mismatch: `{loss}` needs a {} label, but `{n}` is {}", want.dtype, show_type(ty)),
                            e.span.clone(),
                            format!("this is {}", show_type(ty)),
                        )
                        .with_note(if kind == LossKind::CrossEntropy {
                            "cross_entropy takes class indices".to_string()
                        } else {
                            format!("`{loss}` compares values of the output's type")
                        }),
                    );
                    return None;
                }
            }
            let ty = ty.clone().or(implied).unwrap_or_else(|| TensorType::new(vec![Dim::Dynamic], DType::F32));
            return Some(Label {
                name: n.to_string(),
                source: LabelSource::Input,
                ty,
            });
        }
        match data.and_then(|d| d.label.as_deref()) {
            Some(col) if col == n => {
                let ty = implied.unwrap_or_else(|| TensorType::new(vec![Dim::Dynamic], DType::F32));
                Some(Label {
                    name: n.to_string(),
                    source: LabelSource::Column,
                    ty,
                })
            }
            _ if data_failed => None,
            col => {
                let inputs: Vec<&str> = model.inputs.iter().map(|(i, _)| i.as_str()).collect();
                let mut candidates = inputs.clone();
                candidates.extend(col);
                let mut d = Diagnostic::new(
                    codes::LOSS_TARGET,
                    format!("unknown label `{n}`"),
                    e.span.clone(),
                    "neither an input nor the data's label column",
                )
                .with_note(match col {
                    Some(c) => format!("the data's label column is {c:?}"),
                    None => "the data spec names no label column".to_string(),
                });
                d = match did_you_mean(n, candidates.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("declare `input {n}: …` or name the label column with `data: csv(…, label: \"{n}\")`")),
                };
                self.diags.push(d);
                None
            }
        }
    }

}
