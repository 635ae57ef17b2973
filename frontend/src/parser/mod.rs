//! A hand-written recursive-descent parser that never fails: it returns a tree
//! and the syntax errors it found, recovering at statement and item
//! boundaries so one mistake does not hide the next.
//!
//! Items and statements live here; expressions and types in [`expr`].
//! Nesting is bounded ([`MAX_DEPTH`]) in both recursion and tree depth, so no
//! input can overflow the stack of the parser or of any later tree walk.
//!
//! ```text
//! file     = { model | layer | alias | fn } ;
//! model    = "model" NAME "{" { stmt } "}" ;
//! layer    = "layer" NAME [ "(" params ")" ] "{" { stmt } "}" ;
//! alias    = "layer" NAME "=" NAME ;
//! fn       = "fn" NAME "(" params ")" [ "->" type ] "{" { "let" … } expr "}" ;
//! params   = [ param { "," param } [ "," ] ] ;   param = NAME [ ":" type ] [ "=" expr ] ;
//! stmt     = "input" NAME ":" type
//!          | "output" NAME [ ":" type ] "=" expr
//!          | "let" NAME [ ":" type ] "=" expr
//!          | "param" NAME ":" type "=" expr [ "if" expr ]
//!          | NAME "=" expr                                  (a sub-layer)
//!          | fn
//!          | "train" "{" { NAME ":" expr [ "," | ";" ] } "}" ;
//! type     = "int" | "float" | "bool" | "str" | DTYPE "[" [ dim { "," dim } ] "]" ;
//! dim      = "..." | "_" | "batch" | expr ;              DTYPE = f32 | f64 | i32 | i64 | bool
//! expr     = sum { ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) sum } ;
//! sum      = term { ( "+" | "-" ) term } ;
//! term     = unary { ( "*" | "/" | "@" ) unary } ;
//! unary    = "-" unary | power ;
//! power    = postfix [ "**" unary ] ;
//! postfix  = primary { "(" [ arg { "," arg } [ "," ] ] ")" | "." NAME } ;
//! arg      = [ NAME ":" ] expr ;
//! primary  = INT | FLOAT | STRING | "true" | "false" | NAME
//!          | "(" expr ")" | "(" expr "," [ expr { "," expr } ] ")" | "[" [ expr { "," expr } ] "]" ;
//! ```
//!
//! Statements need no separator (`;` is allowed). A line break ends an
//! expression unless a `(` or `[` is open; comments run from `//` to the end
//! of the line.

mod expr;

pub(crate) use expr::dtype_named;

use crate::ast::*;
use crate::diag::{Diagnostic, codes};
use crate::lexer::{Tok, Token, lex};

/// The deepest expression or block nesting accepted.
pub const MAX_DEPTH: usize = 128;

/// Parses a whole file.
pub fn parse_file(src: &str) -> (File, Vec<Diagnostic>) {
    let (toks, diags) = lex(src);
    let lexed = diags.len();
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        prev_end: 0,
        diags,
        depth: 0,
        too_deep: false,
        last_error: None,
    };
    let file = p.file();
    (file, drop_cascades(src, p.diags, lexed))
}

/// Drops syntax errors that follow a lexical error on the same line: the
/// parser only stumbled over what the lexer already reported.
fn drop_cascades(src: &str, diags: Vec<Diagnostic>, lexed: usize) -> Vec<Diagnostic> {
    let lex_spans: Vec<Span> = diags[..lexed].iter().map(|d| d.span.clone()).collect();
    diags
        .into_iter()
        .enumerate()
        .filter(|(i, d)| {
            *i < lexed
                || !lex_spans
                    .iter()
                    .any(|l| l.start <= d.span.start && src.get(l.end.min(d.span.start)..d.span.start).is_some_and(|gap| !gap.contains('\n')))
        })
        .map(|(_, d)| d)
        .collect()
}

/// A syntax error has been reported; the caller recovers.
pub(crate) struct Failed;

type PResult<T> = Result<T, Failed>;

pub(crate) struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    prev_end: usize,
    diags: Vec<Diagnostic>,
    depth: usize,
    too_deep: bool,
    last_error: Option<usize>,
}

impl<'s> Parser<'s> {
    // ---- the token cursor -------------------------------------------------

    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn nth(&self, n: usize) -> Tok {
        self.toks[(self.pos + n).min(self.toks.len() - 1)].kind
    }

    fn at(&self, k: Tok) -> bool {
        self.peek().kind == k
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != Tok::Eof {
            self.pos += 1;
            self.prev_end = t.span.end;
        }
        t
    }

    fn eat(&mut self, k: Tok) -> Option<Token> {
        if self.at(k) { Some(self.bump()) } else { None }
    }

    fn text(&self, t: &Token) -> &'s str {
        &self.src[t.span.clone()]
    }

    fn expect(&mut self, k: Tok) -> PResult<Token> {
        match self.eat(k) {
            Some(t) => Ok(t),
            None => Err(self.error_expected(k.describe())),
        }
    }

    fn ident(&mut self, what: &str) -> PResult<Ident> {
        if self.at(Tok::Ident) {
            let t = self.bump();
            Ok(Ident {
                name: self.text(&t).to_string(),
                span: t.span,
            })
        } else {
            Err(self.error_expected(what))
        }
    }

    // ---- errors -----------------------------------------------------------

    fn found(&self) -> String {
        let t = self.peek();
        match t.kind {
            Tok::Ident | Tok::Int | Tok::Float | Tok::Str | Tok::UnterminatedStr => {
                let s = self.text(t);
                if s.chars().count() > 24 {
                    format!("`{}…`", s.chars().take(24).collect::<String>())
                } else {
                    format!("`{s}`")
                }
            }
            k => k.describe().to_string(),
        }
    }

    /// Reports "expected …, found …" at the current token (once per token).
    fn error_expected(&mut self, expected: &str) -> Failed {
        if self.last_error == Some(self.pos) {
            return Failed;
        }
        self.last_error = Some(self.pos);
        let t = self.peek().clone();
        let mut d = Diagnostic::new(
            codes::SYNTAX,
            format!("expected {expected}, found {}", self.found()),
            t.span.clone(),
            format!("expected {expected}"),
        );
        if t.nl && expr::infix(t.kind).is_some() {
            d = d.with_help("an expression ends at a line break; to continue it on the next line, wrap it in parentheses");
        }
        self.diags.push(d);
        Failed
    }

    fn error(&mut self, d: Diagnostic) -> Failed {
        self.last_error = Some(self.pos);
        self.diags.push(d);
        Failed
    }

    /// Reports (once per file) that nesting exceeds [`MAX_DEPTH`].
    fn too_deep(&mut self) -> Failed {
        if !self.too_deep {
            self.too_deep = true;
            let s = self.peek().span.clone();
            self.diags.push(
                Diagnostic::new(codes::TOO_DEEP, format!("this nests more than {MAX_DEPTH} levels deep"), s, "too deeply nested")
                    .with_help("split the expression with `let` bindings"),
            );
        }
        Failed
    }

    /// Counts one level of recursion; past [`MAX_DEPTH`] it fails.
    fn enter(&mut self) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.too_deep());
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Skips to where a statement (or a train entry, with `commas`) can start:
    /// a `;`, a line that begins with a statement keyword or `name =`, or the
    /// `}` closing the current block. Bracketed and braced groups are skipped whole.
    fn recover(&mut self, stmt_start: usize, commas: bool) {
        let (mut braces, mut parens) = (0usize, 0usize);
        loop {
            let t = self.peek().clone();
            let top = braces == 0 && parens == 0;
            match t.kind {
                Tok::Eof => return,
                Tok::RBrace if braces == 0 => return,
                Tok::RBrace => braces -= 1,
                Tok::LBrace => braces += 1,
                Tok::LParen | Tok::LBracket => parens += 1,
                Tok::RParen | Tok::RBracket => parens = parens.saturating_sub(1),
                Tok::Semi if top => {
                    self.bump();
                    return;
                }
                Tok::Comma if top && commas => {
                    self.bump();
                    return;
                }
                _ => {}
            }
            if t.nl && top && self.pos > stmt_start && t.kind != Tok::RBrace && self.starts_stmt(commas) {
                return;
            }
            self.bump();
        }
    }

    fn starts_stmt(&self, train: bool) -> bool {
        let k = self.peek().kind;
        k.starts_statement() || (k == Tok::Ident && (self.nth(1) == Tok::Assign || (train && self.nth(1) == Tok::Colon)))
    }

    // ---- items ------------------------------------------------------------

    fn file(&mut self) -> File {
        let mut items = Vec::new();
        while !self.at(Tok::Eof) {
            let start = self.pos;
            let item = match self.peek().kind {
                Tok::Model => self.model().map(Item::Model),
                Tok::Layer => self.layer(),
                Tok::Fn => self.fn_def().map(Item::Fn),
                _ => Err(self.error_expected("`model`, `layer` or `fn`")),
            };
            match item {
                Ok(i) => items.push(i),
                Err(Failed) => self.recover_item(),
            }
            if self.pos == start {
                self.bump();
            }
        }
        File { items }
    }

    /// Skips to the next `model`, `layer` or `fn` outside any braces.
    fn recover_item(&mut self) {
        let mut braces = 0usize;
        loop {
            let k = self.peek().kind;
            match k {
                Tok::Eof => return,
                Tok::Model | Tok::Layer | Tok::Fn if braces == 0 => return,
                Tok::LBrace => braces += 1,
                Tok::RBrace => braces = braces.saturating_sub(1),
                _ => {}
            }
            self.bump();
        }
    }

    fn model(&mut self) -> PResult<Model> {
        let start = self.bump().span.start;
        let name = self.ident("a model name")?;
        let body = self.body()?;
        Ok(Model {
            name,
            body,
            span: start..self.prev_end,
        })
    }

    fn layer(&mut self) -> PResult<Item> {
        let start = self.bump().span.start;
        let name = self.ident("a layer name")?;
        if self.eat(Tok::Assign).is_some() {
            let target = self.ident("the name of the layer this one stands for")?;
            return Ok(Item::Alias(Alias {
                name,
                target,
                span: start..self.prev_end,
            }));
        }
        let params = if self.at(Tok::LParen) { self.params()? } else { Vec::new() };
        let body = self.body()?;
        Ok(Item::Layer(Layer {
            name,
            params,
            body,
            span: start..self.prev_end,
        }))
    }

    fn fn_def(&mut self) -> PResult<FnDef> {
        let start = self.bump().span.start;
        let name = self.ident("a function name")?;
        if !self.at(Tok::LParen) {
            return Err(self.error_expected("`(` and the function's parameters"));
        }
        let params = self.params()?;
        let ret = if self.eat(Tok::Arrow).is_some() { Some(self.type_expr()?) } else { None };
        let body = self.block()?;
        Ok(FnDef {
            name,
            params,
            ret,
            body,
            span: start..self.prev_end,
        })
    }

    /// `( name [: type] [= default], … )`
    fn params(&mut self) -> PResult<Vec<Param>> {
        self.expect(Tok::LParen)?;
        let mut params = Vec::new();
        while !self.at(Tok::RParen) {
            let name = self.ident("a parameter name or `)`")?;
            let ty = if self.eat(Tok::Colon).is_some() { Some(self.type_expr()?) } else { None };
            let default = if self.eat(Tok::Assign).is_some() { Some(self.expr()?) } else { None };
            params.push(Param {
                span: name.span.start..self.prev_end,
                name,
                ty,
                default,
            });
            if self.eat(Tok::Comma).is_none() && !self.at(Tok::RParen) {
                return Err(self.error_expected("`,` or `)`"));
            }
        }
        self.bump();
        Ok(params)
    }

    /// `{ stmt* }` of a model or layer.
    fn body(&mut self) -> PResult<Vec<Stmt>> {
        let open = self.expect(Tok::LBrace)?;
        self.enter()?;
        let mut stmts = Vec::new();
        let r = loop {
            while self.eat(Tok::Semi).is_some() {}
            if self.eat(Tok::RBrace).is_some() {
                break Ok(stmts);
            }
            if self.at(Tok::Eof) {
                break Err(self.unclosed(open.span.clone()));
            }
            let start = self.pos;
            match self.stmt() {
                Ok(s) => stmts.push(s),
                Err(Failed) => self.recover(start, false),
            }
            if self.pos == start {
                self.bump();
            }
        };
        self.leave();
        r
    }

    /// `{ let … result }` of a function.
    fn block(&mut self) -> PResult<Block> {
        let open = self.expect(Tok::LBrace)?;
        self.enter()?;
        let mut stmts = Vec::new();
        let mut result = None;
        let errors_before = self.diags.len();
        let r = loop {
            while self.eat(Tok::Semi).is_some() {}
            if self.eat(Tok::RBrace).is_some() {
                if result.is_none() && self.diags.len() == errors_before {
                    let s = self.prev_end.saturating_sub(1)..self.prev_end;
                    self.diags.push(
                        Diagnostic::new(codes::SYNTAX, "this function has no result expression", s, "expected an expression before `}`")
                            .with_help("a function's last line is its value, e.g. `{ relu(x) }`"),
                    );
                }
                break Ok(());
            }
            if self.at(Tok::Eof) {
                break Err(self.unclosed(open.span.clone()));
            }
            let start = self.pos;
            if result.is_some() {
                let _ = self.error_expected("`}` after the function's result expression");
                self.recover(start, false);
                if self.pos == start {
                    self.bump();
                }
                continue;
            }
            if self.starts_stmt(false) {
                match self.stmt() {
                    Ok(s) => stmts.push(s),
                    Err(Failed) => self.recover(start, false),
                }
            } else {
                match self.expr() {
                    Ok(e) => result = Some(e),
                    Err(Failed) => self.recover(start, false),
                }
            }
            if self.pos == start {
                self.bump();
            }
        };
        self.leave();
        r.map(|()| Block {
            stmts,
            result,
            span: open.span.start..self.prev_end,
        })
    }

    fn unclosed(&mut self, open: Span) -> Failed {
        let eof = self.peek().span.clone();
        self.error(Diagnostic::new(codes::SYNTAX, "expected `}`, found end of file", eof, "expected `}`").with_secondary(open, "this `{` is never closed"))
    }

    // ---- statements -------------------------------------------------------

    fn stmt(&mut self) -> PResult<Stmt> {
        let start = self.peek().span.start;
        let kind = match self.peek().kind {
            Tok::Input => {
                self.bump();
                let name = self.ident("the input's name")?;
                if !self.at(Tok::Colon) {
                    return Err(self.error_expected("`:` and the input's type, as in `input x: f32[batch, 784]`"));
                }
                self.bump();
                StmtKind::Input { name, ty: self.type_expr()? }
            }
            Tok::Output | Tok::Let => {
                let is_output = self.bump().kind == Tok::Output;
                let name = self.ident(if is_output { "the output's name" } else { "a name to bind" })?;
                let ty = if self.eat(Tok::Colon).is_some() { Some(self.type_expr()?) } else { None };
                if !self.at(Tok::Assign) {
                    return Err(self.error_expected("`=` and a value"));
                }
                self.bump();
                let value = self.expr()?;
                if is_output {
                    StmtKind::Output { name, ty, value }
                } else {
                    StmtKind::Let { name, ty, value }
                }
            }
            Tok::Param => {
                self.bump();
                let name = self.ident("the parameter's name")?;
                if !self.at(Tok::Colon) {
                    return Err(self.error_expected("`:` and the parameter's type, as in `param w: f32[10, 5] = zeros()`"));
                }
                self.bump();
                let ty = self.type_expr()?;
                if !self.at(Tok::Assign) {
                    return Err(self.error_expected("`=` and an initializer, as in `= zeros()`"));
                }
                self.bump();
                let init = self.expr()?;
                let cond = if self.peek().kind == Tok::If && !self.peek().nl {
                    self.bump();
                    Some(self.expr()?)
                } else {
                    None
                };
                StmtKind::Param { name, ty, init, cond }
            }
            Tok::Fn => StmtKind::Fn(self.fn_def()?),
            Tok::Train => StmtKind::Train(self.train_block()?),
            Tok::Ident if self.nth(1) == Tok::Assign => {
                let name = self.ident("a name")?;
                self.bump();
                StmtKind::Bind { name, value: self.expr()? }
            }
            Tok::Model | Tok::Layer => {
                let t = self.peek().clone();
                let kw = self.text(&t).to_string();
                return Err(self.error(
                    Diagnostic::new(
                        codes::MISPLACED,
                        format!("a `{kw}` cannot be defined inside another block"),
                        t.span,
                        "nested definition",
                    )
                    .with_help(format!("move this `{kw}` to the top level of the file")),
                ));
            }
            _ => return Err(self.error_expected("a statement (`input`, `output`, `let`, `param`, `fn`, `train` or `name = Layer(…)`)")),
        };
        Ok(Stmt {
            kind,
            span: start..self.prev_end,
        })
    }

    fn train_block(&mut self) -> PResult<TrainBlock> {
        let kw = self.bump().span;
        let open = self.expect(Tok::LBrace)?;
        let mut entries = Vec::new();
        loop {
            while self.eat(Tok::Semi).is_some() || self.eat(Tok::Comma).is_some() {}
            if self.eat(Tok::RBrace).is_some() {
                break;
            }
            if self.at(Tok::Eof) {
                return Err(self.unclosed(open.span));
            }
            let start = self.pos;
            match self.train_entry() {
                Ok(e) => entries.push(e),
                Err(Failed) => self.recover(start, true),
            }
            if self.pos == start {
                self.bump();
            }
        }
        Ok(TrainBlock {
            entries,
            keyword: kw.clone(),
            span: kw.start..self.prev_end,
        })
    }

    fn train_entry(&mut self) -> PResult<TrainEntry> {
        let key = self.ident("a train option such as `loss:` or `epochs:`")?;
        if !self.at(Tok::Colon) {
            return Err(self.error_expected(&format!("`:` after `{}`", key.name)));
        }
        self.bump();
        let value = self.expr()?;
        Ok(TrainEntry {
            span: key.span.start..self.prev_end,
            key,
            value,
        })
    }
}

#[cfg(test)]
mod tests;
