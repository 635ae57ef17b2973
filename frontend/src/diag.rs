//! Diagnostics: what went wrong, where, and how to fix it, rendered the way
//! rustc does (through codespan-reporting) so a user reads them without a
//! manual. Every diagnostic has a stable code from [`codes`], one primary span
//! with a label, optional secondary spans, notes and a help line.

use crate::ast::Span;
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Chars, Config};
use std::fmt;

/// The diagnostic codes, one per kind of mistake.
pub mod codes {
    /// A character that starts no token.
    pub const INVALID_CHAR: &str = "E0001";
    /// A string without its closing quote.
    pub const UNTERMINATED_STRING: &str = "E0002";
    /// The parser expected one thing and found another.
    pub const SYNTAX: &str = "E0003";
    /// Expressions or calls nest deeper than the compiler allows.
    pub const TOO_DEEP: &str = "E0004";
    /// An integer literal does not fit 64 bits.
    pub const NUMBER_RANGE: &str = "E0005";
    /// A name that nothing defines.
    pub const UNKNOWN_NAME: &str = "E0101";
    /// Two definitions of one name in one scope.
    pub const DUPLICATE: &str = "E0102";
    /// Too many or too few arguments.
    pub const ARITY: &str = "E0103";
    /// A keyword argument the callee does not take.
    pub const UNKNOWN_KEYWORD: &str = "E0104";
    /// An argument given twice.
    pub const DUPLICATE_ARG: &str = "E0105";
    /// A value used as something it is not (calling a tensor, adding a layer).
    pub const WRONG_KIND: &str = "E0106";
    /// A statement where it cannot appear (`input` in a layer).
    pub const MISPLACED: &str = "E0107";
    /// No model, or more than one, in the file.
    pub const MODEL_COUNT: &str = "E0108";
    /// `a.b` where `a` has no `b`.
    pub const UNKNOWN_FIELD: &str = "E0109";
    /// A layer with parameters used without a name for them.
    pub const UNNAMED_LAYER: &str = "E0110";
    /// A model without outputs.
    pub const MODEL_INCOMPLETE: &str = "E0111";
    /// Inlining expands the model past the compiler's budget.
    pub const TOO_LARGE: &str = "E0112";
    /// A declared shape differs from the inferred one.
    pub const SHAPE_MISMATCH: &str = "E0201";
    /// A declared element type differs from the inferred one.
    pub const DTYPE_MISMATCH: &str = "E0202";
    /// An op's shape rule rejects its operands (the registry's message).
    pub const OP_SHAPE: &str = "E0203";
    /// An argument that must be a compile-time value of some kind is not.
    pub const BAD_ARGUMENT: &str = "E0204";
    /// Compile-time arithmetic failed (division by zero, overflow).
    pub const CONST_EVAL: &str = "E0205";
    /// An initializer that does not exist.
    pub const UNKNOWN_INIT: &str = "E0301";
    /// An initializer's arguments are wrong.
    pub const BAD_INIT: &str = "E0302";
    /// fan_in / fan_out cannot be computed from the parameter's shape.
    pub const INIT_FAN: &str = "E0303";
    /// A loss that does not exist.
    pub const UNKNOWN_LOSS: &str = "E0401";
    /// An optimizer that does not exist.
    pub const UNKNOWN_OPTIMIZER: &str = "E0402";
    /// A train option or hyper-parameter that does not exist.
    pub const UNKNOWN_OPTION: &str = "E0403";
    /// A train value out of range (batch_size: 0, lr: -1).
    pub const BAD_TRAIN_VALUE: &str = "E0404";
    /// The loss names an output or label that does not exist.
    pub const LOSS_TARGET: &str = "E0405";
    /// The train block lacks something training needs.
    pub const TRAIN_INCOMPLETE: &str = "E0406";
    /// A bug in the compiler, not in the model.
    pub const INTERNAL: &str = "E0999";

    /// Every code with a one-line description, in order.
    pub const ALL: &[(&str, &str)] = &[
        (INVALID_CHAR, "a character that starts no token"),
        (UNTERMINATED_STRING, "a string without its closing quote"),
        (SYNTAX, "the parser expected one thing and found another"),
        (TOO_DEEP, "expressions or calls nest too deeply"),
        (NUMBER_RANGE, "an integer literal does not fit 64 bits"),
        (UNKNOWN_NAME, "a name that nothing defines"),
        (DUPLICATE, "two definitions of one name in one scope"),
        (ARITY, "too many or too few arguments"),
        (UNKNOWN_KEYWORD, "a keyword argument the callee does not take"),
        (DUPLICATE_ARG, "an argument given twice"),
        (WRONG_KIND, "a value used as something it is not"),
        (MISPLACED, "a statement where it cannot appear"),
        (MODEL_COUNT, "no model, or more than one, in a file"),
        (UNKNOWN_FIELD, "a field that the value does not have"),
        (UNNAMED_LAYER, "a layer with parameters used without a name"),
        (MODEL_INCOMPLETE, "a model without outputs"),
        (TOO_LARGE, "inlining expands the model past the compiler's budget"),
        (SHAPE_MISMATCH, "a declared shape differs from the inferred one"),
        (DTYPE_MISMATCH, "a declared element type differs from the inferred one"),
        (OP_SHAPE, "an op's shape rule rejects its operands"),
        (BAD_ARGUMENT, "an argument of the wrong kind or value"),
        (CONST_EVAL, "compile-time arithmetic failed"),
        (UNKNOWN_INIT, "an initializer that does not exist"),
        (BAD_INIT, "an initializer's arguments are wrong"),
        (INIT_FAN, "fan_in/fan_out cannot be computed from the shape"),
        (UNKNOWN_LOSS, "a loss that does not exist"),
        (UNKNOWN_OPTIMIZER, "an optimizer that does not exist"),
        (UNKNOWN_OPTION, "a train option or hyper-parameter that does not exist"),
        (BAD_TRAIN_VALUE, "a train value out of range"),
        (LOSS_TARGET, "the loss names an output or label that does not exist"),
        (TRAIN_INCOMPLETE, "the train block lacks something training needs"),
        (INTERNAL, "a bug in the compiler"),
    ];
}

/// One error, located in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Its code from [`codes`].
    pub code: &'static str,
    /// The headline.
    pub message: String,
    /// The primary location.
    pub span: Span,
    /// What the caret under the primary location says.
    pub label: String,
    /// Other locations that explain it.
    pub secondary: Vec<(Span, String)>,
    /// Background facts (`= note: …`).
    pub notes: Vec<String>,
    /// How to fix it (`= help: …`).
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with no secondary spans, notes or help yet.
    pub fn new(code: &'static str, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span,
            label: label.into(),
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds a secondary location.
    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every diagnostic of one file, with the file so they can be rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostics {
    /// The file's name as shown in `--> name:line:col`.
    pub file_name: String,
    /// The file's text.
    pub source: String,
    /// The diagnostics in the order found.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Renders every diagnostic rustc-style; `color` adds ANSI colors.
    pub fn render(&self, color: bool) -> String {
        let file = SimpleFile::new(self.file_name.as_str(), self.source.as_str());
        let config = Config {
            chars: Chars::ascii(),
            ..Config::default()
        };
        let mut out = String::new();
        for d in &self.items {
            let cs = self.to_codespan(d);
            let rendered = if color {
                let mut buf = term::termcolor::Buffer::ansi();
                term::emit_to_write_style(&mut buf, &config, &file, &cs).map(|_| String::from_utf8_lossy(buf.as_slice()).into_owned())
            } else {
                term::emit_into_string(&config, &file, &cs)
            };
            match rendered {
                Ok(s) => out.push_str(&s),
                // Spans are clamped to the source, so this is not expected;
                // still, a diagnostic must never be lost to a rendering error.
                Err(_) => out.push_str(&format!("error[{}]: {}\n --> {}\n\n", d.code, d.message, self.file_name)),
            }
        }
        out
    }

    fn clamp(&self, s: &Span) -> Span {
        let src = &self.source;
        let mut start = s.start.min(src.len());
        let mut end = s.end.min(src.len()).max(start);
        while !src.is_char_boundary(start) {
            start -= 1;
        }
        while !src.is_char_boundary(end) {
            end += 1;
        }
        start..end
    }

    fn to_codespan(&self, d: &Diagnostic) -> CsDiagnostic<()> {
        let mut labels = vec![Label::primary((), self.clamp(&d.span)).with_message(&d.label)];
        for (s, l) in &d.secondary {
            labels.push(Label::secondary((), self.clamp(s)).with_message(l));
        }
        let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
        if let Some(h) = &d.help {
            notes.push(format!("help: {h}"));
        }
        CsDiagnostic::error()
            .with_code(d.code)
            .with_message(&d.message)
            .with_labels(labels)
            .with_notes(notes)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}

/// The 1-based line of byte `pos` in `src`, for notes that cite the prelude.
pub fn line_of(src: &str, pos: usize) -> usize {
    src.as_bytes()[..pos.min(src.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for (c, d) in codes::ALL {
            assert!(seen.insert(*c), "duplicate code {c}");
            assert!(c.len() == 5 && c.starts_with('E') && !d.is_empty());
        }
    }

    #[test]
    fn renders_rustc_style_and_survives_bad_spans() {
        let ds = Diagnostics {
            file_name: "m.dl".into(),
            source: "let x = é\n".into(),
            items: vec![
                Diagnostic::new("E0101", "unknown name `y`", 4..5, "not found").with_note("n").with_help("h"),
                Diagnostic::new("E0003", "past the end", 9..400, "here"),
                Diagnostic::new("E0003", "inside a char", 9..9, "here"),
            ],
        };
        let s = ds.render(false);
        assert!(s.contains("error[E0101]: unknown name `y`"), "{s}");
        assert!(s.contains("--> m.dl:1:5"), "{s}");
        assert!(s.contains("= note: n") && s.contains("= help: h"), "{s}");
        assert_eq!(s.matches("error[").count(), 3);
        assert!(ds.render(true).contains("\u{1b}["));
    }
}
