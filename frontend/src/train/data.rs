//! The `data:` entry of a train block: reader, path and reading options.

use super::check::{Checker, call_parts};
use super::*;
use crate::ast::Expr;
use crate::diag::{Diagnostic, codes};
use crate::suggest::did_you_mean;

impl Checker {
    pub(super) fn data(&mut self, e: &Expr) -> Option<DataSpec> {
        const FORMATS: [(&str, DataFormat); 3] = [("csv", DataFormat::Csv), ("npz", DataFormat::Npz), ("idx", DataFormat::Idx)];
        const OPTS: &[&str] = &["path", "label", "features", "split", "test", "stratify", "scale", "standardize", "label_scale"];
        let Some((name, nspan, args)) = call_parts(e) else {
            self.bad(
                "`data` is a reader call such as `csv(\"train.csv\", label: \"label\")`",
                &e.span,
                "not a data reader",
            );
            return None;
        };
        let Some(format) = FORMATS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f) else {
            let mut d = Diagnostic::new(
                codes::BAD_TRAIN_VALUE,
                format!("unknown data format `{name}`"),
                nspan.clone(),
                "not a data format",
            )
            .with_note("formats: csv, npz, idx");
            if let Some(s) = did_you_mean(name, FORMATS.iter().map(|(n, _)| *n)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let slots = self.bind_args(name, OPTS, args)?;
        let errors = self.diags.len();
        let Some(path_e) = slots[0] else {
            self.diags.push(
                Diagnostic::new(codes::ARITY, format!("`{name}` needs the data file's path"), e.span.clone(), "no path")
                    .with_help(format!("`{name}(\"data/train.{name}\")`")),
            );
            return None;
        };
        let path = self.string(path_e, "path")?;
        if path.is_empty() {
            self.bad("the data path is empty", &path_e.span, "empty path");
        }
        let label = slots[1].and_then(|x| self.string(x, "label"));
        let features = slots[2].and_then(|x| self.string(x, "features"));
        let fraction = |c: &mut Self, x: &Expr, what: &str| -> Option<f64> {
            let v = c.number(x, what)?;
            if v > 0.0 && v < 1.0 {
                Some(v)
            } else {
                c.bad(format!("`{what}` is a fraction strictly between 0 and 1, found {v}"), &x.span, "out of range");
                None
            }
        };
        let split = match (slots[3], slots[4]) {
            (Some(s), Some(t)) => {
                self.diags.push(
                    Diagnostic::new(
                        codes::BAD_TRAIN_VALUE,
                        "give either `split` (the training fraction) or `test` (the held-out fraction), not both",
                        t.span.clone(),
                        "second split",
                    )
                    .with_secondary(s.span.clone(), "first split"),
                );
                None
            }
            (Some(s), None) => fraction(self, s, "split"),
            (None, Some(t)) => fraction(self, t, "test").map(|t| 1.0 - t),
            (None, None) => None,
        };
        let stratify = slots[5].map(|x| self.flag(x, "stratify")).unwrap_or(Some(false));
        let scale = match slots[6] {
            Some(x) => match self.number(x, "scale") {
                Some(v) if v != 0.0 => Some(v),
                Some(_) => {
                    self.bad("`scale` must not be 0", &x.span, "zero scale");
                    None
                }
                None => None,
            },
            None => None,
        };
        let standardize = slots[7].map(|x| self.flag(x, "standardize")).unwrap_or(Some(false));
        let label_scale = match slots[8] {
            Some(x) => match self.number(x, "label_scale") {
                Some(v) if v != 0.0 && v.is_finite() => Some(v),
                Some(_) => {
                    self.bad("`label_scale` must be a finite, nonzero number", &x.span, "bad scale");
                    None
                }
                None => None,
            },
            None => None,
        };
        if self.diags.len() > errors {
            return None;
        }
        Some(DataSpec {
            format,
            path,
            path_span: path_e.span.clone(),
            label,
            features,
            split,
            stratify: stratify?,
            scale,
            standardize: standardize?,
            label_scale,
            span: e.span.clone(),
        })
    }
}
