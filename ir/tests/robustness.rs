//! The parser and verifier never panic, loop or overflow the stack, whatever
//! text they are given: mutated valid modules, every truncation of one,
//! token soup and random strings. Whatever parses also reprints stably:
//! print(parse(print(parse(s)))) == print(parse(s)).

mod common;

use dlc_ir::{parse_module, print_module, verify_module};
use proptest::prelude::*;
use proptest::sample::select;
use std::sync::OnceLock;

fn printed() -> &'static [String] {
    static P: OnceLock<Vec<String>> = OnceLock::new();
    P.get_or_init(|| common::cases().iter().map(|c| print_module(&c.module)).collect())
}

/// Parses; on success verifies and checks that printing is a fixed point.
fn check(src: &str) {
    let Ok(m) = parse_module(src) else { return };
    let _ = verify_module(&m);
    let once = print_module(&m);
    let reparsed = parse_module(&once).unwrap_or_else(|e| panic!("printed text does not parse: {e}\ninput:\n{src}\nprinted:\n{once}"));
    assert_eq!(print_module(&reparsed), once, "printing is not stable for input:\n{src}");
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize),
    Insert(usize, String),
    Swap(usize, usize),
    /// Copies the chars at `from..from+len` to `to`.
    Duplicate { from: usize, len: usize, to: usize },
    Truncate(usize),
}

const FRAGMENTS: &[&str] = &[
    "%", "%0", "%x#1", "%r:2", "\"", "\\", "{", "}", "(", ")", "[", "]", "<", ">", ":", ",", "=", "->", "-", "?", "x", "#",
    "^bb0:", "^bb1(%z: f32):", "@", "0", "9", "99999999999999999999", ".", "e", "1.0e", "0x7F800000", "0xFFFFFFFFFFFFFFFFF",
    "\n", " ", "é", "\u{0}", "dense<", "tensor<", "tensor<?x", "func.func", "module", "return", "({", "})", "\"dl.add\"",
    "\"dl.yield\"", "\"func.return\"", "true", "index", "f32", "i1", "//", "attributes", ": f64", "[[", "]]",
    "affine_map<", "affine_map<(d0, d1) -> (d1 * 2 + d0 - 1)>", "(d0)", "d1", " * ", " + ", "-> ()", "\"kernel.generic\"",
    "\"kernel.yield\"", "\"kernel.constant\"", "^bb0(%a: f32, %b: f32):", "\"parallel\"", "\"reduction\"", "padded = [0]",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let text = prop_oneof![3 => select(FRAGMENTS).prop_map(str::to_string), 1 => any::<char>().prop_map(String::from)];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), text).prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        (any::<usize>(), 1..40usize, any::<usize>()).prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Applies mutations on chars, so the result is always a valid `&str`.
fn apply(src: &str, muts: &[Mutation]) -> String {
    let mut cs: Vec<char> = src.chars().collect();
    for m in muts {
        let n = cs.len().max(1);
        match m {
            Mutation::Delete(i) if !cs.is_empty() => {
                cs.remove(i % cs.len());
            }
            Mutation::Insert(i, s) => {
                let at = i % (cs.len() + 1);
                cs.splice(at..at, s.chars());
            }
            Mutation::Swap(i, j) if !cs.is_empty() => cs.swap(i % n, j % n),
            Mutation::Duplicate { from, len, to } if !cs.is_empty() => {
                let from = from % cs.len();
                let piece: Vec<char> = cs[from..(from + len).min(cs.len())].to_vec();
                let at = to % (cs.len() + 1);
                cs.splice(at..at, piece);
            }
            Mutation::Truncate(i) => cs.truncate(i % (cs.len() + 1)),
            _ => {}
        }
    }
    cs.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_modules_never_panic(case in 0..6usize, muts in prop::collection::vec(mutation(), 1..6)) {
        let src = &printed()[case % printed().len()];
        check(&apply(src, &muts));
    }

    #[test]
    fn token_soup_never_panics(toks in prop::collection::vec(select(FRAGMENTS), 0..60)) {
        check(&toks.concat());
        check(&format!("func.func @f(%x: f32) {{\n{}\n}}", toks.join(" ")));
    }

    /// Digit changes mostly keep the text parseable, so they reach the
    /// verifier and the shape rules with odd sizes, zeros and huge numbers.
    #[test]
    fn changed_numbers_reach_the_verifier(case in 0..6usize, edits in prop::collection::vec((any::<usize>(), select(&["0", "1", "2", "7", "9999999999", "4611686018427387904"][..])), 1..5)) {
        let mut src = printed()[case % printed().len()].clone();
        for (i, digits) in edits {
            let positions: Vec<usize> = src.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(p, _)| p).collect();
            if let Some(&p) = positions.get(i % positions.len().max(1)) {
                src.replace_range(p..p + 1, digits);
            }
        }
        check(&src);
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,120}") {
        check(&s);
    }
}

#[test]
fn every_truncation_of_a_module_is_handled() {
    for src in [&printed()[1], &printed()[2], &printed()[3]] {
        for (i, _) in src.char_indices() {
            check(&src[..i]);
        }
    }
}

#[test]
fn the_deepest_accepted_nesting_is_verified_and_prints() {
    // 63 nested regions, each a one-op block; the 64th level would be refused.
    // dl ops take no regions (only kernel.generic has one, a flat scalar
    // body), so each level is an error; the verifier walks them all.
    let depth = 63;
    let mut src = String::from("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n");
    for i in 0..depth {
        src.push_str(&format!("%v{i} = \"dl.neg\"(%x) ({{\n"));
    }
    src.push_str("%leaf = \"dl.neg\"(%x) : (tensor<4xf32>) -> tensor<4xf32>\n");
    for _ in 0..depth {
        src.push_str("}) : (tensor<4xf32>) -> tensor<4xf32>\n");
    }
    src.push_str("return %x : tensor<4xf32>\n}\n");
    let m = parse_module(&src).unwrap();
    let errors = verify_module(&m).unwrap_err();
    assert_eq!(errors.len(), depth);
    for (i, e) in errors.iter().enumerate() {
        assert_eq!(e.to_string(), format!(r#"in @f, op '%v{i} = "dl.neg"': 'dl.neg' takes no regions"#));
    }
    check(&src);
}
