//! The `optimizer:` entry of a train block: PyTorch's optimizers, their
//! hyper-parameters and defaults.

use super::check::{Checker, K, call_parts};
use super::*;
use crate::ast::Expr;
use crate::diag::{Diagnostic, codes};
use crate::suggest::did_you_mean;

impl Checker {
    pub(super) fn optimizer(&mut self, e: &Expr) -> Option<OptimizerSpec> {
        const OPTS: [(&str, &[&str]); 5] = [
            ("sgd", &["lr", "momentum", "dampening", "nesterov", "weight_decay"]),
            ("adagrad", &["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"]),
            ("rmsprop", &["lr", "alpha", "eps", "weight_decay", "momentum", "centered"]),
            ("adam", &["lr", "betas", "eps", "weight_decay", "amsgrad"]),
            ("adamw", &["lr", "betas", "eps", "weight_decay", "amsgrad"]),
        ];
        let Some((name, nspan, args)) = call_parts(e) else {
            self.bad("an optimizer is a call such as `adam(lr: 1e-3)`", &e.span, "not an optimizer");
            return None;
        };
        let Some((_, params)) = OPTS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = OPTS.iter().map(|(n, _)| *n).collect();
            let mut d = Diagnostic::new(
                codes::UNKNOWN_OPTIMIZER,
                format!("unknown optimizer `{name}`"),
                nspan.clone(),
                "not an optimizer",
            )
            .with_note(format!("optimizers: {}", names.join(", ")));
            let lower = name.to_ascii_lowercase();
            if let Some(s) = names
                .iter()
                .find(|n| **n == lower)
                .map(|n| n.to_string())
                .or_else(|| did_you_mean(name, names.iter().copied()))
            {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let slots = self.bind_args(name, params, args)?;
        let errors = self.diags.len();
        let num = |c: &mut Self, key: &str, default: f64, min: f64| -> f64 {
            let Some(i) = params.iter().position(|p| *p == key) else { return default };
            let Some(x) = slots[i] else { return default };
            match c.number(x, key) {
                Some(v) if v >= min => v,
                Some(v) => {
                    c.bad(format!("`{key}` must be at least {min}, found {v}"), &x.span, "out of range");
                    default
                }
                None => default,
            }
        };
        let boolean = |c: &mut Self, key: &str| -> bool {
            let i = params.iter().position(|p| *p == key).unwrap_or(0);
            slots[i].and_then(|x| c.flag(x, key)).unwrap_or(false)
        };
        let lr_default = if matches!(name, "adagrad" | "rmsprop") { 1e-2 } else { 1e-3 };
        let lr = num(self, "lr", lr_default, 0.0);
        let kind = match name {
            "sgd" => {
                let (momentum, dampening, weight_decay) = (
                    num(self, "momentum", 0.0, 0.0),
                    num(self, "dampening", 0.0, f64::MIN),
                    num(self, "weight_decay", 0.0, 0.0),
                );
                let nesterov = boolean(self, "nesterov");
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    self.bad(
                        "Nesterov momentum needs `momentum` > 0 and `dampening: 0`",
                        &e.span,
                        "nesterov without momentum",
                    );
                }
                Optimizer::Sgd {
                    lr,
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay,
                }
            }
            "adagrad" => Optimizer::Adagrad {
                lr,
                lr_decay: num(self, "lr_decay", 0.0, 0.0),
                weight_decay: num(self, "weight_decay", 0.0, 0.0),
                initial_accumulator_value: num(self, "initial_accumulator_value", 0.0, 0.0),
                eps: num(self, "eps", 1e-10, 0.0),
            },
            "rmsprop" => Optimizer::RmsProp {
                lr,
                alpha: num(self, "alpha", 0.99, 0.0),
                eps: num(self, "eps", 1e-8, 0.0),
                weight_decay: num(self, "weight_decay", 0.0, 0.0),
                momentum: num(self, "momentum", 0.0, 0.0),
                centered: boolean(self, "centered"),
            },
            _ => {
                let (beta1, beta2) = self.betas(slots[1]);
                let eps = num(self, "eps", 1e-8, 0.0);
                let weight_decay = num(self, "weight_decay", if name == "adamw" { 1e-2 } else { 0.0 }, 0.0);
                let amsgrad = boolean(self, "amsgrad");
                if name == "adamw" {
                    Optimizer::AdamW {
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                        amsgrad,
                    }
                } else {
                    Optimizer::Adam {
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                        amsgrad,
                    }
                }
            }
        };
        (self.diags.len() == errors).then(|| OptimizerSpec { kind, span: e.span.clone() })
    }

    fn betas(&mut self, e: Option<&Expr>) -> (f64, f64) {
        let Some(e) = e else { return (0.9, 0.999) };
        match self.konst(e) {
            Some(K::List(v)) if v.len() == 2 => match (&v[0], &v[1]) {
                (K::Num(a, _), K::Num(b, _)) if (0.0..1.0).contains(a) && (0.0..1.0).contains(b) => (*a, *b),
                _ => {
                    self.bad("`betas` must be two numbers in [0, 1)", &e.span, "out of range");
                    (0.9, 0.999)
                }
            },
            Some(k) => {
                self.bad(format!("`betas` is a pair such as (0.9, 0.999), found {}", k.describe()), &e.span, "not a pair");
                (0.9, 0.999)
            }
            None => (0.9, 0.999),
        }
    }
}
