//! Tokens of MLIR's generic syntax, the subset dlc prints.
//!
//! Hand-written rather than generated because two spots of MLIR's grammar are
//! context-sensitive: `tensor<0x3xf32>` is not a hex literal, and `%r#1`
//! fuses a name and a result number. The parser asks for a shape explicitly
//! ([`Lexer::scan_shape`]) right after `tensor<`; everything else is context
//! free. Every function here advances by at least one character or fails, so
//! the lexer cannot loop, and it never indexes past a char boundary.

use super::ParseError;
use crate::types::{DType, Dim};

/// One token. Borrowed slices point into the source; strings are unescaped.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok<'a> {
    /// End of input.
    Eof,
    /// A punctuation mark: `( ) { } [ ] < > : , = ? -`.
    Punct(char),
    /// `->`.
    Arrow,
    /// `[A-Za-z_][A-Za-z0-9_$.]*`: keywords, types, attribute names, `func.func`.
    BareId(&'a str),
    /// `%name` or `%name#3` (a result of a multi-result op).
    Value { name: &'a str, number: Option<&'a str> },
    /// `^bb0`.
    Caret(&'a str),
    /// `@name` or `@"any name"`.
    Symbol(String),
    /// `"…"`, unescaped.
    Str(String),
    /// Decimal digits, or `0x` and hex digits (the text, unsigned).
    Int(&'a str),
    /// `1.5`, `1.0e-8` (the text, unsigned).
    Float(&'a str),
}

impl Tok<'_> {
    /// The token as error messages quote it.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Eof => "end of input".into(),
            Tok::Punct(c) => format!("'{c}'"),
            Tok::Arrow => "'->'".into(),
            Tok::BareId(s) => format!("'{s}'"),
            Tok::Value { name, number: None } => format!("'%{name}'"),
            Tok::Value { name, number: Some(n) } => format!("'%{name}#{n}'"),
            Tok::Caret(s) => format!("'^{s}'"),
            Tok::Symbol(s) => format!("symbol '@{s}'"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int(s) | Tok::Float(s) => format!("number {s}"),
        }
    }
}

/// A cursor over the source text.
pub(super) struct Lexer<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
}

fn is_suffix_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "$._-".contains(c)
}

fn is_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_$.".contains(c)
}

impl<'a> Lexer<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        &self.src[start..self.pos]
    }

    pub(super) fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.src, offset, message.into())
    }

    fn skip_trivia(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek2() == Some('/') => {
                    self.take_while(|c| c != '\n');
                }
                _ => return,
            }
        }
    }

    /// The next token and the byte offset where it starts.
    pub(super) fn next(&mut self) -> Result<(Tok<'a>, usize), ParseError> {
        self.skip_trivia();
        let start = self.pos;
        let Some(c) = self.bump() else { return Ok((Tok::Eof, start)) };
        let tok = match c {
            '-' if self.peek() == Some('>') => {
                self.bump();
                Tok::Arrow
            }
            '(' | ')' | '{' | '}' | '[' | ']' | '<' | '>' | ':' | ',' | '=' | '?' | '-' => Tok::Punct(c),
            '%' => {
                let name = self.suffix_id(start, "a value name after '%'")?;
                let number = if self.peek() == Some('#') {
                    self.bump();
                    let n = self.take_while(|c| c.is_ascii_digit());
                    if n.is_empty() {
                        return Err(self.error(self.pos, format!("expected a result number after '%{name}#'")));
                    }
                    Some(n)
                } else {
                    None
                };
                Tok::Value { name, number }
            }
            '^' => Tok::Caret(self.suffix_id(start, "a block label after '^'")?),
            '@' => {
                if self.peek() == Some('"') {
                    self.bump();
                    Tok::Symbol(self.string(start)?)
                } else {
                    Tok::Symbol(self.suffix_id(start, "a symbol name after '@'")?.to_string())
                }
            }
            '"' => Tok::Str(self.string(start)?),
            '0'..='9' => self.number(start, c)?,
            c if c.is_ascii_alphabetic() || c == '_' => {
                self.take_while(is_bare_char);
                Tok::BareId(&self.src[start..self.pos])
            }
            c => return Err(self.error(start, format!("unexpected character {c:?}"))),
        };
        Ok((tok, start))
    }

    /// `digits` or `[A-Za-z$._-][A-Za-z0-9$._-]*`, MLIR's suffix-id.
    fn suffix_id(&mut self, start: usize, what: &str) -> Result<&'a str, ParseError> {
        let s = match self.peek() {
            Some(c) if c.is_ascii_digit() => self.take_while(|c| c.is_ascii_digit()),
            Some(c) if is_suffix_char(c) => self.take_while(is_suffix_char),
            _ => "",
        };
        if s.is_empty() {
            return Err(self.error(start, format!("expected {what}")));
        }
        Ok(s)
    }

    fn number(&mut self, start: usize, first: char) -> Result<Tok<'a>, ParseError> {
        if first == '0' && self.peek() == Some('x') && self.peek2().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.bump();
            self.take_while(|c| c.is_ascii_hexdigit());
            return Ok(Tok::Int(&self.src[start..self.pos]));
        }
        self.take_while(|c| c.is_ascii_digit());
        if self.peek() != Some('.') {
            return Ok(Tok::Int(&self.src[start..self.pos]));
        }
        self.bump();
        self.take_while(|c| c.is_ascii_digit());
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if self.take_while(|c| c.is_ascii_digit()).is_empty() {
                return Err(self.error(self.pos, "expected digits in the float's exponent"));
            }
        }
        Ok(Tok::Float(&self.src[start..self.pos]))
    }

    /// The rest of a string literal after its opening quote, unescaped.
    /// MLIR's escapes: `\"`, `\\`, `\n`, `\t` and `\XX` (a byte in hex).
    fn string(&mut self, start: usize) -> Result<String, ParseError> {
        let mut bytes = Vec::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None | Some('\n') => return Err(self.error(start, "unterminated string literal")),
                Some('"') => break,
                Some('\\') => match self.bump() {
                    Some('"') => bytes.push(b'"'),
                    Some('\\') => bytes.push(b'\\'),
                    Some('n') => bytes.push(b'\n'),
                    Some('t') => bytes.push(b'\t'),
                    Some(h) if h.is_ascii_hexdigit() => {
                        let lo = self.bump().and_then(|c| c.to_digit(16));
                        let (Some(hi), Some(lo)) = (h.to_digit(16), lo) else {
                            return Err(self.error(at, "expected two hex digits after '\\' in string"));
                        };
                        bytes.push((hi * 16 + lo) as u8);
                    }
                    _ => return Err(self.error(at, "unknown escape in string (use \\\", \\\\, \\n, \\t or \\XX)")),
                },
                Some(c) => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(bytes).map_err(|_| self.error(start, "string literal is not valid UTF-8 after unescaping"))
    }

    /// Reads `?x784xf32>` right after `tensor<`: the dims and the element type.
    /// Done on raw characters because `0x3` inside a shape is not a hex number.
    /// The raw text of an affine map, read right after `affine_map<` up to
    /// its closing `>` (the one not part of `->`), which is consumed.
    pub(super) fn scan_affine_map(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        let mut prev = ' ';
        while let Some(c) = self.peek() {
            if c == '>' && prev != '-' {
                let text = &self.src[start..self.pos];
                self.bump();
                return Ok(text);
            }
            if !(c.is_ascii_alphanumeric() || " \t\n(),+-*>".contains(c)) {
                return Err(self.error(self.pos, format!("unexpected '{c}' in an affine map")));
            }
            prev = c;
            self.bump();
        }
        Err(self.error(start, "unterminated affine_map<…>"))
    }

    pub(super) fn scan_shape(&mut self) -> Result<(Vec<Dim>, DType), ParseError> {
        let mut shape = Vec::new();
        loop {
            let at = self.pos;
            match self.peek() {
                Some('?') => {
                    self.bump();
                    shape.push(Dim::Dynamic);
                }
                Some(c) if c.is_ascii_digit() => {
                    let digits = self.take_while(|c| c.is_ascii_digit());
                    let n = digits
                        .parse::<u64>()
                        .ok()
                        .filter(|&n| n <= i64::MAX as u64)
                        .ok_or_else(|| self.error(at, format!("dimension {digits} is too large")))?;
                    shape.push(Dim::Static(n));
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                    let dtype = DType::from_name(name).ok_or_else(|| {
                        self.error(at, format!("unsupported element type '{name}' (expected f32, f64, i32, i64 or i1)"))
                    })?;
                    if self.peek() != Some('>') {
                        return Err(self.error(self.pos, "expected '>' after the tensor's element type"));
                    }
                    self.bump();
                    return Ok((shape, dtype));
                }
                Some('*') => return Err(self.error(at, "unranked tensors are not supported")),
                _ => return Err(self.error(at, "expected a dimension ('?' or a size) or an element type in tensor<…>")),
            }
            if self.peek() != Some('x') {
                return Err(self.error(self.pos, "expected 'x' after a tensor dimension"));
            }
            self.bump();
        }
    }
}
