//! Affine maps: how a structured kernel indexes each operand.
//!
//! A structured kernel (`kernel.generic`) iterates over an N-dim space
//! `(d0, …, dN-1)`; each operand carries a map from that space to the
//! operand's own indices. dlc's maps are MLIR's `affine_map`s restricted to
//! sums of `coefficient * dim` plus a constant per result, which covers every
//! access a `dl` op makes: identities and permutations (elementwise,
//! transpose), constant `0` results (broadcast of a size-1 dim), dropped dims
//! (reductions), offsets and strides (slice, concat pieces) and window sums
//! like `d2 * 2 + d4 - 1` (pooling with stride 2 and padding 1). They print
//! as MLIR does, `affine_map<(d0, d1) -> (d1, 0)>`, so `mlir-opt` reads them.
//!
//! Because every result is affine, an operand's element address is affine in
//! the loop indices: a code generator needs one stride per loop dim and one
//! offset per operand, computed once per call from the operand's shape.

use std::fmt;

/// One result of an affine map: `sum(coefficient * d_k) + constant`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AffineExpr {
    /// `(dim, coefficient)` pairs, by increasing dim, no zero coefficients.
    pub terms: Vec<(usize, i64)>,
    /// The constant term.
    pub constant: i64,
}

impl AffineExpr {
    /// The plain dim `d_k`.
    pub fn dim(k: usize) -> Self {
        AffineExpr { terms: vec![(k, 1)], constant: 0 }
    }

    /// The constant `c`.
    pub fn constant(c: i64) -> Self {
        AffineExpr { terms: Vec::new(), constant: c }
    }

    /// `self + c * d_k`, keeping the terms sorted and nonzero.
    pub fn plus_dim(mut self, k: usize, c: i64) -> Self {
        match self.terms.iter().position(|&(d, _)| d >= k) {
            Some(i) if self.terms[i].0 == k => {
                self.terms[i].1 = self.terms[i].1.saturating_add(c);
                if self.terms[i].1 == 0 {
                    self.terms.remove(i);
                }
            }
            Some(i) if c != 0 => self.terms.insert(i, (k, c)),
            None if c != 0 => self.terms.push((k, c)),
            _ => {}
        }
        self
    }

    /// `self + c`.
    pub fn plus(mut self, c: i64) -> Self {
        self.constant = self.constant.saturating_add(c);
        self
    }

    /// `Some(k)` when the expression is exactly `d_k`.
    pub fn as_dim(&self) -> Option<usize> {
        match self.terms.as_slice() {
            [(k, 1)] if self.constant == 0 => Some(*k),
            _ => None,
        }
    }

    /// The coefficient of `d_k`.
    pub fn coefficient(&self, k: usize) -> i64 {
        self.terms.iter().find(|t| t.0 == k).map_or(0, |t| t.1)
    }

    /// The smallest and largest value over `0 <= d_k < sizes[k]`, or `None`
    /// for an empty space.
    pub fn range(&self, sizes: &[usize]) -> Option<(i64, i64)> {
        let (mut lo, mut hi) = (self.constant, self.constant);
        for &(k, c) in &self.terms {
            let n = *sizes.get(k)?;
            if n == 0 {
                return None;
            }
            let span = c.saturating_mul(n as i64 - 1);
            if span < 0 {
                lo = lo.saturating_add(span);
            } else {
                hi = hi.saturating_add(span);
            }
        }
        Some((lo, hi))
    }

    /// The value at the loop indices `idx`, saturating at the ends of i64
    /// (such an index is out of bounds of any operand either way).
    pub fn eval(&self, idx: &[usize]) -> i64 {
        let v: i128 = self.terms.iter().map(|&(k, c)| c as i128 * idx[k] as i128).sum::<i128>() + self.constant as i128;
        v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Substitutes `exprs[k]` for each `d_k` (composition with an inner map).
    pub fn compose(&self, exprs: &[AffineExpr]) -> AffineExpr {
        let mut out = AffineExpr::constant(self.constant);
        for &(k, c) in &self.terms {
            let inner = &exprs[k];
            out.constant = out.constant.saturating_add(c.saturating_mul(inner.constant));
            for &(j, ci) in &inner.terms {
                out = out.plus_dim(j, c.saturating_mul(ci));
            }
        }
        out
    }
}

impl fmt::Display for AffineExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for &(k, c) in &self.terms {
            let (sign, mag) = if c < 0 { ("-", -c) } else { ("+", c) };
            match (first, sign) {
                (true, "-") => write!(f, "-")?,
                (true, _) => {}
                (false, s) => write!(f, " {s} ")?,
            }
            if mag == 1 {
                write!(f, "d{k}")?;
            } else {
                write!(f, "d{k} * {mag}")?;
            }
            first = false;
        }
        match (first, self.constant) {
            (true, c) => write!(f, "{c}"),
            (false, 0) => Ok(()),
            (false, c) if c < 0 => write!(f, " - {}", -c),
            (false, c) => write!(f, " + {c}"),
        }
    }
}

/// An affine map from an N-dim iteration space to an operand's indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AffineMap {
    /// N, the number of iteration dims.
    pub dims: usize,
    /// One expression per operand dim.
    pub results: Vec<AffineExpr>,
}

impl AffineMap {
    /// `(d0, …, dN-1) -> (d0, …, dN-1)`.
    pub fn identity(n: usize) -> Self {
        AffineMap { dims: n, results: (0..n).map(AffineExpr::dim).collect() }
    }

    /// `(d0, …) -> (d_k for k in dims)`.
    pub fn projection(n: usize, dims: &[usize]) -> Self {
        AffineMap { dims: n, results: dims.iter().map(|&k| AffineExpr::dim(k)).collect() }
    }

    /// True when every result is a plain dim, each at most once.
    pub fn is_projection(&self) -> bool {
        let mut seen = vec![false; self.dims];
        self.results.iter().all(|e| e.as_dim().is_some_and(|k| k < self.dims && !std::mem::replace(&mut seen[k], true)))
    }

    /// The map's results applied to the results of `inner` (`self ∘ inner`).
    pub fn compose(&self, inner: &AffineMap) -> AffineMap {
        AffineMap { dims: inner.dims, results: self.results.iter().map(|e| e.compose(&inner.results)).collect() }
    }

    /// Checks that every term names a dim below `dims`.
    pub fn check(&self) -> Result<(), String> {
        for e in &self.results {
            if let Some(&(k, _)) = e.terms.iter().find(|t| t.0 >= self.dims) {
                return Err(format!("affine map {self} uses d{k} but has {} dims", self.dims));
            }
        }
        Ok(())
    }

    /// Parses MLIR's form without the `affine_map<…>` wrapper:
    /// `(d0, d1) -> (d1 * 2 + d0 - 1, 0)`.
    pub fn parse(text: &str) -> Result<AffineMap, String> {
        let (lhs, rhs) = text.split_once("->").ok_or("an affine map needs '->'")?;
        let names: Vec<String> = parens(lhs)?.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        for (i, n) in names.iter().enumerate() {
            if n != &format!("d{i}") {
                return Err(format!("affine map dims must be named d0, d1, … in order, found '{n}'"));
            }
        }
        let body = parens(rhs)?;
        let results = if body.trim().is_empty() { Vec::new() } else { body.split(',').map(|e| expr(e, names.len())).collect::<Result<_, _>>()? };
        Ok(AffineMap { dims: names.len(), results })
    }
}

fn parens(s: &str) -> Result<&str, String> {
    let s = s.trim();
    s.strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(|| format!("expected a parenthesized list, found '{s}'"))
}

/// `d1 * 2 + d0 - 1`: a sum of terms, each `dK`, `dK * C`, `C * dK` or `C`.
fn expr(text: &str, dims: usize) -> Result<AffineExpr, String> {
    let mut out = AffineExpr::default();
    let mut sign = 1i64;
    let mut pending = String::new();
    let flush = |term: &str, sign: i64, out: &mut AffineExpr| -> Result<(), String> {
        let term = term.trim();
        if term.is_empty() {
            return Err(format!("empty term in affine expression '{}'", text.trim()));
        }
        let mut coef = sign;
        let mut dim = None;
        let before = (out.constant, out.terms.clone());
        for factor in term.split('*').map(str::trim) {
            if let Some(k) = factor.strip_prefix('d').filter(|k| k == &"0" || !k.starts_with('0')).and_then(|k| k.parse::<usize>().ok()) {
                if dim.replace(k).is_some() {
                    return Err(format!("'{term}' is not affine (a product of dims)"));
                }
                if k >= dims {
                    return Err(format!("d{k} is not one of the map's {dims} dims"));
                }
            } else {
                if factor.is_empty() {
                    return Err(format!("a factor is missing in '{term}' (write a negative coefficient as '- d0 * 2')"));
                }
                let c: i64 = factor.parse().map_err(|_| format!("'{factor}' is neither a dim nor an integer"))?;
                coef = coef.checked_mul(c).ok_or("affine coefficient overflows")?;
            }
        }
        let (constant, terms) = before;
        let overflows = match dim {
            Some(k) => terms.iter().find(|t| t.0 == k).is_some_and(|t| t.1.checked_add(coef).is_none()),
            None => constant.checked_add(coef).is_none(),
        };
        if overflows {
            return Err(format!("affine expression '{}' overflows 64 bits", text.trim()));
        }
        *out = match dim {
            Some(k) => std::mem::take(out).plus_dim(k, coef),
            None => std::mem::take(out).plus(coef),
        };
        Ok(())
    };
    for ch in text.chars() {
        match ch {
            '+' | '-' if !pending.trim().is_empty() => {
                flush(&pending, sign, &mut out)?;
                pending.clear();
                sign = if ch == '-' { -1 } else { 1 };
            }
            '-' => sign = -sign,
            '+' => {}
            c => pending.push(c),
        }
    }
    flush(&pending, sign, &mut out)?;
    Ok(out)
}

impl fmt::Display for AffineMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = (0..self.dims).map(|k| format!("d{k}")).collect();
        let results: Vec<String> = self.results.iter().map(|e| e.to_string()).collect();
        write!(f, "({}) -> ({})", dims.join(", "), results.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_print_as_mlir_and_parse_back() {
        for text in ["(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1, 0)", "(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 * 2 + d4 - 1, d3 * 2 + d5)", "(d0) -> ()", "() -> (0)", "(d0, d1) -> (-d1 + 3)"] {
            let m = AffineMap::parse(text).unwrap();
            assert_eq!(m.to_string(), text);
        }
        let m = AffineMap::parse("(d0, d1) -> (2 * d1 + d0 + d1 - 1)").unwrap();
        assert_eq!(m.to_string(), "(d0, d1) -> (d0 + d1 * 3 - 1)");
        assert!(AffineMap::parse("(d0) -> (d0 * d0)").is_err());
        assert!(AffineMap::parse("(d0) -> (d1)").is_err());
        assert!(AffineMap::parse("(x) -> (x)").is_err());
        assert!(AffineMap::parse("(d0) (d0)").is_err());
    }

    #[test]
    fn ranges_composition_and_projections() {
        let e = AffineMap::parse("(d0, d1) -> (d0 * 2 + d1 - 1)").unwrap().results[0].clone();
        assert_eq!(e.range(&[3, 3]), Some((-1, 5)));
        assert_eq!(e.eval(&[2, 1]), 4);
        let outer = AffineMap::parse("(d0, d1) -> (d1, d0)").unwrap();
        let inner = AffineMap::parse("(d0, d1, d2) -> (d2 + 1, d0)").unwrap();
        assert_eq!(outer.compose(&inner).to_string(), "(d0, d1, d2) -> (d0, d2 + 1)");
        assert!(AffineMap::identity(3).is_projection());
        assert!(!AffineMap::parse("(d0, d1) -> (d0, d0)").unwrap().is_projection());
    }
}
