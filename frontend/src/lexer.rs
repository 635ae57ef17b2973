//! Tokens of the `.dl` language, produced by a logos DFA.
//!
//! Newlines are not tokens: statements are mostly started by keywords, so the
//! grammar needs line breaks in only one place, to end an expression (Python's
//! rule). Each token therefore records whether a line break precedes it while
//! no `(` or `[` is open; inside brackets a line break is plain whitespace, so
//! long calls and `Sequential(...)` lists can span lines freely.

use crate::ast::Span;
use crate::diag::{Diagnostic, codes};
use logos::Logos;

/// One token kind.
#[derive(Logos, Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Tok {
    /// `model`
    #[token("model")]
    Model,
    /// `layer`
    #[token("layer")]
    Layer,
    /// `fn`
    #[token("fn")]
    Fn,
    /// `let`
    #[token("let")]
    Let,
    /// `param`
    #[token("param")]
    Param,
    /// `input`
    #[token("input")]
    Input,
    /// `output`
    #[token("output")]
    Output,
    /// `train`
    #[token("train")]
    Train,
    /// `if`
    #[token("if")]
    If,
    /// `true`
    #[token("true")]
    True,
    /// `false`
    #[token("false")]
    False,
    /// A name: `fc1`, `Linear`, `_`.
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    /// An integer literal: `784`, `1_000`.
    #[regex(r"[0-9][0-9_]*")]
    Int,
    /// A float literal: `0.5`, `1e-3`, `2.5E+4`.
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9]+)?")]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9]+")]
    Float,
    /// A string literal: `"data/mnist.csv"`.
    #[regex(r#""([^"\\\n]|\\[^\n])*""#)]
    Str,
    /// A string literal missing its closing quote on the same line.
    #[regex(r#""([^"\\\n]|\\[^\n])*"#)]
    UnterminatedStr,
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `{`
    #[token("{")]
    LBrace,
    /// `}`
    #[token("}")]
    RBrace,
    /// `,`
    #[token(",")]
    Comma,
    /// `;`
    #[token(";")]
    Semi,
    /// `:`
    #[token(":")]
    Colon,
    /// `.`
    #[token(".")]
    Dot,
    /// `...`
    #[token("...")]
    Ellipsis,
    /// `->`
    #[token("->")]
    Arrow,
    /// `=`
    #[token("=")]
    Assign,
    /// `+`
    #[token("+")]
    Plus,
    /// `-`
    #[token("-")]
    Minus,
    /// `*`
    #[token("*")]
    Star,
    /// `**`
    #[token("**")]
    StarStar,
    /// `/`
    #[token("/")]
    Slash,
    /// `@`
    #[token("@")]
    At,
    /// `==`
    #[token("==")]
    EqEq,
    /// `!=`
    #[token("!=")]
    NotEq,
    /// `<`
    #[token("<")]
    Lt,
    /// `<=`
    #[token("<=")]
    Le,
    /// `>`
    #[token(">")]
    Gt,
    /// `>=`
    #[token(">=")]
    Ge,
    /// End of input (never produced by the DFA; appended by [`lex`]).
    Eof,
}

impl Tok {
    /// How the token is named in "expected …, found …" messages.
    pub fn describe(self) -> &'static str {
        match self {
            Tok::Model => "`model`",
            Tok::Layer => "`layer`",
            Tok::Fn => "`fn`",
            Tok::Let => "`let`",
            Tok::Param => "`param`",
            Tok::Input => "`input`",
            Tok::Output => "`output`",
            Tok::Train => "`train`",
            Tok::If => "`if`",
            Tok::True => "`true`",
            Tok::False => "`false`",
            Tok::Ident => "a name",
            Tok::Int => "an integer",
            Tok::Float => "a number",
            Tok::Str | Tok::UnterminatedStr => "a string",
            Tok::LParen => "`(`",
            Tok::RParen => "`)`",
            Tok::LBracket => "`[`",
            Tok::RBracket => "`]`",
            Tok::LBrace => "`{`",
            Tok::RBrace => "`}`",
            Tok::Comma => "`,`",
            Tok::Semi => "`;`",
            Tok::Colon => "`:`",
            Tok::Dot => "`.`",
            Tok::Ellipsis => "`...`",
            Tok::Arrow => "`->`",
            Tok::Assign => "`=`",
            Tok::Plus => "`+`",
            Tok::Minus => "`-`",
            Tok::Star => "`*`",
            Tok::StarStar => "`**`",
            Tok::Slash => "`/`",
            Tok::At => "`@`",
            Tok::EqEq => "`==`",
            Tok::NotEq => "`!=`",
            Tok::Lt => "`<`",
            Tok::Le => "`<=`",
            Tok::Gt => "`>`",
            Tok::Ge => "`>=`",
            Tok::Eof => "end of file",
        }
    }

    /// True for the keywords that begin a statement or an item.
    pub fn starts_statement(self) -> bool {
        matches!(
            self,
            Tok::Model | Tok::Layer | Tok::Fn | Tok::Let | Tok::Param | Tok::Input | Tok::Output | Tok::Train
        )
    }
}

/// A token with its byte range and line-break flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Its kind.
    pub kind: Tok,
    /// Its bytes in the source.
    pub span: Span,
    /// A line break precedes it and no `(` or `[` is open: an expression
    /// cannot continue across it.
    pub nl: bool,
}

/// Splits `src` into tokens ending with [`Tok::Eof`]; characters that start
/// no token become diagnostics and are skipped.
pub fn lex(src: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut toks = Vec::new();
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut lexer = Tok::lexer(src);
    let mut prev_end = 0usize;
    let mut depth = 0usize;
    let mut bad: Option<Span> = None;
    let flush_bad = |bad: &mut Option<Span>, diags: &mut Vec<Diagnostic>| {
        if let Some(s) = bad.take() {
            let text = &src[s.clone()];
            let what = if text.chars().count() == 1 { "character" } else { "characters" };
            diags.push(
                Diagnostic::new(
                    codes::INVALID_CHAR,
                    format!("unexpected {what} `{}`", text.escape_debug()),
                    s,
                    "not part of the language",
                )
                .with_help("names use letters, digits and `_`; comments start with `//`"),
            );
        }
    };
    while let Some(res) = lexer.next() {
        let span = lexer.span();
        let kind = match res {
            Ok(k) => k,
            Err(()) => {
                bad = Some(match bad.take() {
                    Some(b) if b.end == span.start => b.start..span.end,
                    Some(b) => {
                        let mut keep = Some(b);
                        flush_bad(&mut keep, &mut diags);
                        span.clone()
                    }
                    None => span.clone(),
                });
                continue;
            }
        };
        flush_bad(&mut bad, &mut diags);
        let gap = &src[prev_end.min(span.start)..span.start];
        let nl = depth == 0 && gap.contains('\n');
        prev_end = span.end;
        match kind {
            Tok::LParen | Tok::LBracket => depth += 1,
            Tok::RParen | Tok::RBracket => depth = depth.saturating_sub(1),
            // Braces only open blocks; an unbalanced bracket before one must
            // not make the rest of the file newline-blind.
            Tok::LBrace | Tok::RBrace => depth = 0,
            Tok::UnterminatedStr => {
                diags.push(
                    Diagnostic::new(
                        codes::UNTERMINATED_STRING,
                        "unterminated string",
                        span.clone(),
                        "this string has no closing `\"`",
                    )
                    .with_help("strings end on the line they start"),
                );
                // The quote was most likely forgotten before the closing
                // brackets that end the line: give those back to the parser.
                let text = &src[span.clone()];
                let keep = text.trim_end_matches([')', ']', '}', ',', ';', ' ', '\t', '\r']).len().max(1);
                toks.push(Token {
                    kind,
                    span: span.start..span.start + keep,
                    nl,
                });
                for (i, c) in text[keep..].char_indices() {
                    let k = match c {
                        ')' => Tok::RParen,
                        ']' => Tok::RBracket,
                        '}' => Tok::RBrace,
                        ',' => Tok::Comma,
                        ';' => Tok::Semi,
                        _ => continue,
                    };
                    depth = if k == Tok::RBrace {
                        0
                    } else {
                        depth.saturating_sub(usize::from(matches!(k, Tok::RParen | Tok::RBracket)))
                    };
                    let at = span.start + keep + i;
                    toks.push(Token {
                        kind: k,
                        span: at..at + 1,
                        nl: false,
                    });
                }
                continue;
            }
            _ => {}
        }
        toks.push(Token { kind, span, nl });
    }
    flush_bad(&mut bad, &mut diags);
    let nl = src[prev_end.min(src.len())..].contains('\n');
    toks.push(Token {
        kind: Tok::Eof,
        span: src.len()..src.len(),
        nl,
    });
    (toks, diags)
}

/// The value of a string literal's text (with its quotes): `\n`, `\t`, `\\`
/// and `\"` are escapes; any other backslash is kept as written.
pub fn unescape(lit: &str) -> String {
    let inner = lit.strip_prefix('"').unwrap_or(lit);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex(src).0.into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn numbers_dots_and_ellipses_split_as_expected() {
        use Tok::*;
        assert_eq!(
            kinds("1e-3 0.5 784 x.T f32[..., in]"),
            [Float, Float, Int, Ident, Dot, Ident, Ident, LBracket, Ellipsis, Comma, Ident, RBracket, Eof]
        );
        assert_eq!(kinds("a ** b * c"), [Ident, StarStar, Ident, Star, Ident, Eof]);
        assert_eq!(kinds("x // comment\n-> y"), [Ident, Arrow, Ident, Eof]);
    }

    #[test]
    fn line_breaks_count_only_outside_brackets() {
        let (t, _) = lex("a\nb (\nc\n) d");
        let nl: Vec<bool> = t.iter().map(|t| t.nl).collect();
        assert_eq!(nl, [false, true, false, false, false, false, false]);
    }

    #[test]
    fn bad_characters_are_reported_once_per_run() {
        let (t, d) = lex("a $$ b # c");
        assert_eq!(t.iter().filter(|t| t.kind == Tok::Ident).count(), 3);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].message, "unexpected characters `$$`");
        assert_eq!(d[0].span, 2..4);
    }

    #[test]
    fn strings_unescape_and_unterminated_ones_are_errors() {
        assert_eq!(unescape(r#""a\"b\n""#), "a\"b\n");
        let (t, d) = lex("\"abc\nx");
        assert_eq!(t[0].kind, Tok::UnterminatedStr);
        assert_eq!(d[0].code, codes::UNTERMINATED_STRING);
        let (t, _) = lex("f(\"a.csv) }\n");
        let k: Vec<Tok> = t.iter().map(|t| t.kind).collect();
        assert_eq!(k, [Tok::Ident, Tok::LParen, Tok::UnterminatedStr, Tok::RParen, Tok::RBrace, Tok::Eof]);
        assert_eq!(t[2].span, 2..8);
    }
}
