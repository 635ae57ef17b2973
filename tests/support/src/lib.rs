//! What dlc's random-graph property tests share: `cpu/tests/differential.rs`
//! (the CPU backend against the interpreter) and `passes/tests/egraph_prop.rs`
//! (the e-graph pass preserves values) build random `dl` functions from
//! "recipes" — op kinds and operand picks that proptest can shrink — and
//! both need the same small vocabulary to turn a recipe into IR. Each test
//! keeps its own op mix: they look for different things.
#![deny(missing_docs)]

use dlc_ir::{Builder, Dim, ValueId};

/// Shapes in a recipe use 0 for the batch dim `?`.
pub fn dims(s: &[u64]) -> Vec<Dim> {
    s.iter().map(|&d| if d == 0 { Dim::Dynamic } else { Dim::Static(d) }).collect()
}

/// The shape of a tensor value built so far.
pub fn shape_of(b: &Builder<'_>, v: ValueId) -> Vec<Dim> {
    b.func.ty(v).as_tensor().expect("tensor").shape.clone()
}

/// The `k`-th permutation of `0..n` (Lehmer code), as `transpose`'s `perm`.
pub fn permutation(n: usize, mut k: usize) -> Vec<i64> {
    let mut pool: Vec<i64> = (0..n as i64).collect();
    let mut out = Vec::new();
    for i in (1..=n).rev() {
        let fact: usize = (1..i).product();
        let idx = (k / fact) % i;
        k %= fact.max(1);
        out.push(pool.remove(idx));
    }
    out
}

/// An operand for a recipe's pick `i` (the top bit is free for flags):
/// even picks take one of the three newest values, for deep chains (more
/// for fusion and the rules to find), odd picks any value built so far.
pub fn pick(vals: &[ValueId], i: u16) -> ValueId {
    let i = (i & 0x7fff) as usize;
    if i & 1 == 0 { vals[vals.len() - 1 - (i >> 1) % vals.len().min(3)] } else { vals[(i >> 1) % vals.len()] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_distinct_and_complete() {
        let all: std::collections::BTreeSet<Vec<i64>> = (0..24).map(|k| permutation(4, k)).collect();
        assert_eq!(all.len(), 24);
        assert!(all.iter().all(|p| { let mut s = p.clone(); s.sort(); s == [0, 1, 2, 3] }));
        assert_eq!(permutation(3, 0), [0, 1, 2]);
        assert_eq!(permutation(3, 5), [2, 1, 0]);
    }

    #[test]
    fn dims_map_zero_to_the_batch() {
        assert_eq!(dims(&[0, 4]), [Dim::Dynamic, Dim::Static(4)]);
    }
}
