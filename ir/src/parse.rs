//! Reads the textual IR that [`crate::print`] writes (MLIR's generic op syntax)
//! back into a [`Module`].
//!
//! Types in the text are authoritative: ops are built with the written result
//! types, not inferred ones, so that a wrong type survives parsing and the
//! verifier ([`crate::verify`]) can report it with its shape rule's reason. The
//! parser itself checks only what the text alone decides: syntax, that every
//! used value is defined and visible, that an op's written operand types are
//! its operands' types, and that op names are registered.
//!
//! The parser stops at the first error. It never panics: numbers are range
//! checked, nesting is limited to [`MAX_DEPTH`], and every loop consumes a
//! token or fails.

mod attr;
mod lexer;

use crate::attr::Attrs;
use crate::module::{BlockId, Function, Module, Region, ValueId};
use crate::registry::OpKind;
use crate::types::Type;
use lexer::{Lexer, Tok};
use std::collections::HashMap;
use std::fmt;

/// How deeply regions, attributes and dense literals may nest. Deep enough
/// for any real model, shallow enough that recursion cannot exhaust a
/// thread's stack on adversarial input.
pub const MAX_DEPTH: usize = 64;

/// The first problem found in the text, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the source.
    pub offset: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What was expected and what was found.
    pub message: String,
}

impl ParseError {
    fn at(src: &str, offset: usize, message: String) -> Self {
        let offset = offset.min(src.len());
        let before = src.get(..offset).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ParseError { offset, line: line as u32, column: column as u32, message }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses an attribute dictionary on its own, `{transpose_b = true}` (the
/// form [`crate::print::print_attr_dict`] writes; whitespace is optional).
pub fn parse_attr_dict(src: &str) -> Result<crate::attr::Attrs, ParseError> {
    let mut p = Parser::new(src)?;
    let attrs = p.attr_dict()?;
    if p.tok != Tok::Eof {
        return Err(p.error(format!("unexpected {} after the attribute dictionary", p.tok.describe())));
    }
    Ok(attrs)
}

/// Parses a module: `module { func.func … }`, or bare `func.func`s without the
/// wrapper (convenient for hand-written tests).
pub fn parse_module(src: &str) -> Result<Module, ParseError> {
    let mut p = Parser::new(src)?;
    let mut m = Module::new();
    let wrapped = p.tok == Tok::BareId("module");
    if wrapped {
        p.bump()?;
        if matches!(p.tok, Tok::Symbol(_)) || p.tok == Tok::BareId("attributes") {
            return Err(p.error("named modules and module attributes are not supported"));
        }
        p.expect('{', "after 'module'")?;
    }
    loop {
        match &p.tok {
            Tok::Punct('}') if wrapped => {
                p.bump()?;
                break;
            }
            Tok::Eof if !wrapped => break,
            Tok::BareId("func.func") => m.functions.push(p.function()?),
            _ => {
                let end = if wrapped { "'}' closing the module" } else { "end of input" };
                return Err(p.error(format!("expected 'func.func' or {end}, found {}", p.tok.describe())));
            }
        }
    }
    if p.tok != Tok::Eof {
        return Err(p.error(format!("expected end of input after the module, found {}", p.tok.describe())));
    }
    Ok(m)
}

/// A name in the text and the values it defines (several for `%r:2`).
struct Def {
    values: Vec<ValueId>,
    offset: usize,
    /// False once the block that defined it has ended.
    visible: bool,
}

/// Per-function state: the function being built and its SSA names.
struct FuncState {
    f: Function,
    defs: HashMap<String, Def>,
    /// Names defined in each open block, innermost last.
    scopes: Vec<Vec<String>>,
}

struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Tok<'a>,
    /// Byte offset of `tok`.
    start: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, ParseError> {
        let mut lex = Lexer::new(src);
        let (tok, start) = lex.next()?;
        Ok(Parser { lex, tok, start, depth: 0 })
    }

    fn bump(&mut self) -> Result<Tok<'a>, ParseError> {
        let (tok, start) = self.lex.next()?;
        self.start = start;
        Ok(std::mem::replace(&mut self.tok, tok))
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.lex.error(self.start, message)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        self.lex.error(offset, message)
    }

    /// Consumes punctuation `c` or fails saying what it should follow.
    fn expect(&mut self, c: char, context: &str) -> Result<(), ParseError> {
        if self.tok != Tok::Punct(c) {
            return Err(self.error(format!("expected '{c}' {context}, found {}", self.tok.describe())));
        }
        self.bump()?;
        Ok(())
    }

    fn eat(&mut self, c: char) -> Result<bool, ParseError> {
        let hit = self.tok == Tok::Punct(c);
        if hit {
            self.bump()?;
        }
        Ok(hit)
    }

    /// Guards recursion; pair with `self.depth -= 1`.
    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("nesting is deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        Ok(())
    }

    /// Parses a comma-separated list closed by `close`; the opener is already consumed.
    fn list<T>(&mut self, close: char, what: &str, mut item: impl FnMut(&mut Self) -> Result<T, ParseError>) -> Result<Vec<T>, ParseError> {
        let mut out = Vec::new();
        if self.eat(close)? {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(close)? {
                return Ok(out);
            }
            if !self.eat(',')? {
                return Err(self.error(format!("expected ',' or '{close}' in {what}, found {}", self.tok.describe())));
            }
        }
    }

    /// `func.func @name(%a: T {attrs}, …) -> (T, …) attributes {…} { body }`.
    fn function(&mut self) -> Result<Function, ParseError> {
        self.bump()?;
        if let Tok::BareId(v @ ("private" | "public" | "nested")) = self.tok {
            return Err(self.error(format!("symbol visibility ('{v}') is not supported")));
        }
        let at = self.start;
        let Tok::Symbol(name) = self.bump()? else {
            return Err(self.error_at(at, "expected the function's name ('@name') after 'func.func'"));
        };
        let mut st = FuncState { f: Function::new(name), defs: HashMap::new(), scopes: vec![Vec::new()] };
        self.expect('(', "to open the argument list")?;
        let args = self.list(')', "the argument list", |p| {
            let (key, offset) = p.def_name()?;
            p.expect(':', "after the argument's name")?;
            let ty = p.parse_type()?;
            let attrs = if p.tok == Tok::Punct('{') { p.attr_dict()? } else { Attrs::new() };
            Ok((key, offset, ty, attrs))
        })?;
        for (key, offset, ty, attrs) in args {
            let v = st.f.add_arg(ty, None, attrs);
            self.define(&mut st, key, offset, vec![v])?;
        }
        if self.tok == Tok::Arrow {
            self.bump()?;
            st.f.result_types = if self.eat('(')? {
                self.list(')', "the result types", |p| {
                    let t = p.parse_type()?;
                    if p.tok == Tok::Punct('{') {
                        return Err(p.error("result attributes are not supported"));
                    }
                    Ok(t)
                })?
            } else {
                vec![self.parse_type()?]
            };
        }
        if self.tok == Tok::BareId("attributes") {
            self.bump()?;
            st.f.attrs = self.attr_dict()?;
        }
        self.expect('{', "to open the function body")?;
        if matches!(self.tok, Tok::Caret(_)) {
            return Err(self.error("a function body is one unlabeled block; block labels are only supported in nested regions"));
        }
        let entry = st.f.entry();
        while !matches!(self.tok, Tok::Punct('}') | Tok::Caret(_) | Tok::Eof) {
            self.op(&mut st, entry)?;
        }
        if matches!(self.tok, Tok::Caret(_)) {
            return Err(self.error("a function body is one block; further blocks are not supported"));
        }
        self.expect('}', "closing the function body")?;
        Ok(st.f)
    }

    /// A value name at a definition: `%x` (no `#n`). Numeric names give `None`
    /// later, so values print renumbered exactly as written by the printer.
    fn def_name(&mut self) -> Result<(String, usize), ParseError> {
        let offset = self.start;
        match self.bump()? {
            Tok::Value { name, number: None } => Ok((name.to_string(), offset)),
            Tok::Value { name, number: Some(_) } => Err(self.error_at(offset, format!("a definition cannot have a result number ('%{name}#…')"))),
            t => Err(self.error_at(offset, format!("expected a value name ('%name'), found {}", t.describe()))),
        }
    }

    /// Binds `key` to `values` in the innermost scope, naming them.
    fn define(&self, st: &mut FuncState, key: String, offset: usize, values: Vec<ValueId>) -> Result<(), ParseError> {
        if let Some(d) = st.defs.get(&key) {
            let first = ParseError::at(self.lex.src, d.offset, String::new());
            return Err(self.error_at(offset, format!("redefinition of %{key} (first defined at {}:{})", first.line, first.column)));
        }
        if !key.starts_with(|c: char| c.is_ascii_digit())
            && let Some(&v) = values.first()
        {
            st.f.set_name_unchecked(v, key.clone());
        }
        if let Some(scope) = st.scopes.last_mut() {
            scope.push(key.clone());
        }
        st.defs.insert(key, Def { values, offset, visible: true });
        Ok(())
    }

    /// A value use: `%x` or `%r#1`, which must be defined and visible.
    fn use_value(&mut self, st: &FuncState) -> Result<ValueId, ParseError> {
        let offset = self.start;
        let (name, number) = match self.bump()? {
            Tok::Value { name, number } => (name, number),
            t => return Err(self.error_at(offset, format!("expected a value ('%name'), found {}", t.describe()))),
        };
        let Some(def) = st.defs.get(name) else {
            return Err(self.error_at(offset, format!("use of undefined value %{name}")));
        };
        if !def.visible {
            return Err(self.error_at(offset, format!("%{name} is defined in another block or region and is not visible here")));
        }
        let n = def.values.len();
        let index = match number {
            None if n == 1 => 0,
            None => return Err(self.error_at(offset, format!("%{name} names {n} results; use %{name}#0 … %{name}#{}", n - 1))),
            Some(k) => match k.parse::<usize>() {
                Ok(i) if i < n => i,
                _ if n == 1 => return Err(self.error_at(offset, format!("%{name} is a single value; #{k} is out of range"))),
                _ => return Err(self.error_at(offset, format!("%{name} has {n} results; #{k} is out of range"))),
            },
        };
        Ok(def.values[index])
    }

    /// One op, appended to `block`: generic `"dl.add"(…) … : (…) -> …`, or the
    /// custom `return %a : T` form of `func.return`.
    fn op(&mut self, st: &mut FuncState, block: BlockId) -> Result<(), ParseError> {
        let mut names = Vec::new();
        if matches!(self.tok, Tok::Value { .. }) {
            loop {
                let (key, offset) = self.def_name()?;
                let mut count = 1;
                if self.eat(':')? {
                    let at = self.start;
                    count = match self.bump()? {
                        Tok::Int(s) => s.parse::<usize>().ok().filter(|&c| (1..=4096).contains(&c)),
                        _ => None,
                    }
                    .ok_or_else(|| self.error_at(at, "expected a result count (1 to 4096) after ':'"))?;
                }
                names.push((key, offset, count));
                if !self.eat(',')? {
                    break;
                }
            }
            self.expect('=', "after the op's result names")?;
        }
        let op_start = self.start;
        let name = match self.bump()? {
            Tok::Str(s) => s,
            Tok::BareId("return" | "func.return") => {
                if !names.is_empty() {
                    return Err(self.error_at(op_start, "'func.return' has no results"));
                }
                return self.custom_return(st, block);
            }
            t => {
                return Err(self.error_at(op_start, format!("expected an op (a quoted name like \"dl.add\", or 'return'), found {}", t.describe())));
            }
        };
        let kind = OpKind::from_name(&name).ok_or_else(|| self.error_at(op_start, unknown_op(&name)))?;
        self.expect('(', "to open the operand list")?;
        let operands = self.list(')', "the operand list", |p| p.use_value(st))?;
        match self.tok {
            Tok::Punct('[') => return Err(self.error("successor blocks are not supported")),
            Tok::Punct('<') => return Err(self.error("op properties ('<{…}>') are not supported")),
            _ => {}
        }
        let regions = if self.eat('(')? { self.list(')', "the region list", |p| p.region(st))? } else { Vec::new() };
        let attrs = if self.tok == Tok::Punct('{') { self.attr_dict()? } else { Attrs::new() };
        self.expect(':', "after operand list")?;
        let types_at = self.start;
        self.expect('(', "to open the op's operand types")?;
        let operand_types = self.list(')', "the operand types", Self::parse_type)?;
        if self.tok != Tok::Arrow {
            return Err(self.error(format!("expected '->' after the operand types, found {}", self.tok.describe())));
        }
        self.bump()?;
        let result_types = if self.eat('(')? { self.list(')', "the result types", Self::parse_type)? } else { vec![self.parse_type()?] };
        self.check_operand_types(st, &operands, &operand_types, types_at)?;
        let named: usize = names.iter().map(|n| n.2).sum();
        if !names.is_empty() && named != result_types.len() {
            return Err(self.error_at(op_start, format!("'{name}' names {named} result(s) but its type lists {}", result_types.len())));
        }
        let op = st.f.append_op(block, kind, operands, attrs, result_types, regions);
        let mut results = st.f.op(op).results.clone().into_iter();
        for (key, offset, count) in names {
            let vs: Vec<ValueId> = results.by_ref().take(count).collect();
            self.define(st, key, offset, vs)?;
        }
        Ok(())
    }

    fn check_operand_types(&self, st: &FuncState, operands: &[ValueId], types: &[Type], at: usize) -> Result<(), ParseError> {
        if operands.len() != types.len() {
            return Err(self.error_at(at, format!("the op has {} operand(s) but its type lists {}", operands.len(), types.len())));
        }
        for (i, (&v, t)) in operands.iter().zip(types).enumerate() {
            let actual = st.f.ty(v);
            if actual != t {
                return Err(self.error_at(at, format!("operand #{i} has type {actual}, but the op's type says {t}")));
            }
        }
        Ok(())
    }

    /// `return` or `return %a, %b : T1, T2` (the keyword is consumed).
    fn custom_return(&mut self, st: &mut FuncState, block: BlockId) -> Result<(), ParseError> {
        let mut operands = Vec::new();
        if matches!(self.tok, Tok::Value { .. }) {
            loop {
                operands.push(self.use_value(st)?);
                if !self.eat(',')? {
                    break;
                }
            }
            let at = self.start;
            self.expect(':', "after the returned values")?;
            let mut types = vec![self.parse_type()?];
            while types.len() < operands.len() && self.eat(',')? {
                types.push(self.parse_type()?);
            }
            self.check_operand_types(st, &operands, &types, at)?;
        }
        st.f.append_op(block, OpKind::Return, operands, Attrs::new(), Vec::new(), Vec::new());
        Ok(())
    }

    /// A nested region: `{` then blocks, each `^label(%a: T, …):` and its ops, then `}`.
    /// The first block may omit its label when it has no arguments.
    fn region(&mut self, st: &mut FuncState) -> Result<Region, ParseError> {
        self.enter()?;
        self.expect('{', "to open a region")?;
        let mut region = Region::default();
        let mut labels: HashMap<&str, usize> = HashMap::new();
        while !self.eat('}')? {
            let block = st.f.new_block();
            let mut args = Vec::new();
            if let Tok::Caret(label) = self.tok {
                if let Some(first) = labels.insert(label, self.start) {
                    let f = ParseError::at(self.lex.src, first, String::new());
                    return Err(self.error(format!("block label ^{label} is already used in this region (at {}:{})", f.line, f.column)));
                }
                self.bump()?;
                if self.eat('(')? {
                    args = self.list(')', "the block's arguments", |p| {
                        let (key, offset) = p.def_name()?;
                        p.expect(':', "after the block argument's name")?;
                        Ok((key, offset, p.parse_type()?))
                    })?;
                }
                self.expect(':', "after the block label")?;
            } else if !region.blocks.is_empty() {
                return Err(self.error(format!("expected a block label or '}}', found {}", self.tok.describe())));
            }
            st.scopes.push(Vec::new());
            for (key, offset, ty) in args {
                let v = st.f.add_block_arg(block, ty, None);
                self.define(st, key, offset, vec![v])?;
            }
            while !matches!(self.tok, Tok::Punct('}') | Tok::Caret(_) | Tok::Eof) {
                self.op(st, block)?;
            }
            if self.tok == Tok::Eof {
                return Err(self.error("expected '}' closing the region, found end of input"));
            }
            for key in st.scopes.pop().unwrap_or_default() {
                if let Some(d) = st.defs.get_mut(&key) {
                    d.visible = false;
                }
            }
            region.blocks.push(block);
        }
        self.depth -= 1;
        Ok(region)
    }
}

/// "unknown op 'dl.matmull'; did you mean 'dl.matmul'?"
fn unknown_op(name: &str) -> String {
    let mut msg = format!("unknown op '{name}'");
    let prefixed = format!("dl.{name}");
    let guess = if OpKind::from_name(&prefixed).is_some() {
        Some(prefixed.as_str())
    } else if name.len() <= 64 {
        OpKind::ALL
            .iter()
            .map(|k| (edit_distance(name, k.name()), k.name()))
            .min()
            .filter(|&(d, _)| d <= 2 || d * 3 <= name.len())
            .map(|(_, n)| n)
    } else {
        None
    };
    if let Some(g) = guess {
        msg.push_str(&format!("; did you mean '{g}'?"));
    }
    msg
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_positions_are_one_based_lines_and_char_columns() {
        let e = ParseError::at("ab\ncdé f", 8, "x".into());
        assert_eq!((e.line, e.column, e.to_string()), (2, 5, "2:5: x".to_string()));
    }

    #[test]
    fn unknown_ops_suggest_the_closest_registered_name() {
        assert_eq!(unknown_op("dl.matmull"), "unknown op 'dl.matmull'; did you mean 'dl.matmul'?");
        assert_eq!(unknown_op("relu"), "unknown op 'relu'; did you mean 'dl.relu'?");
        assert_eq!(unknown_op("dl.frobnicate"), "unknown op 'dl.frobnicate'");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
