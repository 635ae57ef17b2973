//! No input makes the frontend panic: mutated and truncated examples, token
//! soups, and soups inside a valid model skeleton (so they reach lowering).
//! Whatever compiles must also verify; whatever fails must say why, and never
//! with an internal error.

mod common;

use common::*;
use dlc_frontend::{codes, compile, parse};
use proptest::prelude::*;
use proptest::sample::{Index, select};

const VOCAB: &[&str] = &[
    "model",
    "layer",
    "fn",
    "let",
    "param",
    "input",
    "output",
    "train",
    "if",
    "true",
    "false",
    "x",
    "y",
    "h",
    "fc",
    "net",
    "w",
    "Linear",
    "Dense",
    "Conv2d",
    "Sequential",
    "ReLU",
    "Flatten",
    "MaxPool2d",
    "AvgPool2d",
    "Embedding",
    "Softmax",
    "relu",
    "softmax",
    "matmul",
    "reshape",
    "flatten",
    "transpose",
    "sum",
    "mean",
    "argmax",
    "concat",
    "slice",
    "cast",
    "where",
    "conv2d",
    "max_pool2d",
    "one_hot",
    "gather",
    "batch",
    "f32",
    "i64",
    "bool",
    "int",
    "float",
    "zeros",
    "ones",
    "kaiming_uniform",
    "xavier_normal",
    "uniform",
    "normal",
    "adam",
    "sgd",
    "rmsprop",
    "cross_entropy",
    "mse",
    "bce",
    "data",
    "csv",
    "label",
    "loss",
    "optimizer",
    "epochs",
    "batch_size",
    "lr",
    "axis",
    "kernel",
    "0",
    "1",
    "2",
    "3",
    "784",
    "-1",
    "1e-3",
    "0.5",
    "1e400",
    "99999999999999999999",
    "\"s\"",
    "\"label\"",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ";",
    ".",
    ".T",
    "...",
    "->",
    "=",
    "+",
    "-",
    "*",
    "**",
    "/",
    "@",
    "==",
    "<",
    ">=",
    "_",
    "\n",
    "\n",
    " ",
    "//c\n",
    "$",
    "\"",
    "€",
    "é",
];

fn check(src: &str) {
    let _ = parse("fuzz.dl", src);
    match compile("fuzz.dl", src) {
        Ok(c) => {
            if let Err(e) = dlc_ir::verify_module(&c.module) {
                panic!("compiled IR does not verify: {e:?}\n--- source ---\n{src}");
            }
            let _ = dlc_ir::print_module(&c.module);
        }
        Err(d) => {
            assert!(!d.items.is_empty(), "an error without diagnostics for:\n{src}");
            let text = d.render(false);
            assert!(d.items.iter().all(|i| i.code != codes::INTERNAL), "{text}\n--- source ---\n{src}");
            assert!(text.contains("error["));
        }
    }
}

fn char_boundary(s: &str, i: Index) -> usize {
    let mut at = i.index(s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn soup(tokens: &[&str]) -> String {
    tokens.join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn truncated_examples(which in 0..EXAMPLES.len(), cut in any::<Index>()) {
        let src = example(EXAMPLES[which]);
        let at = char_boundary(&src, cut);
        check(&src[..at]);
    }

    #[test]
    fn mutated_examples(which in 0..EXAMPLES.len(), edits in prop::collection::vec((any::<Index>(), 0..4u8, select(VOCAB)), 1..6)) {
        let mut src = example(EXAMPLES[which]);
        for (pos, kind, tok) in edits {
            let at = char_boundary(&src, pos);
            match kind {
                // Insert a token.
                0 => src.insert_str(at, tok),
                // Delete a few characters.
                1 => {
                    let mut end = (at + 1 + tok.len() % 7).min(src.len());
                    while !src.is_char_boundary(end) {
                        end += 1;
                    }
                    src.replace_range(at..end, "");
                }
                // Replace a run of characters by a token.
                2 => {
                    let mut end = (at + tok.len()).min(src.len());
                    while !src.is_char_boundary(end) {
                        end += 1;
                    }
                    src.replace_range(at..end, tok);
                }
                // Duplicate a slice (repeated lines, repeated definitions).
                _ => {
                    let mut end = (at + 40).min(src.len());
                    while !src.is_char_boundary(end) {
                        end += 1;
                    }
                    let piece = src[at..end].to_string();
                    src.insert_str(at, &piece);
                }
            }
        }
        check(&src);
    }

    #[test]
    fn token_soups(tokens in prop::collection::vec(select(VOCAB), 0..80)) {
        check(&soup(&tokens));
    }

    #[test]
    fn soups_inside_a_model(tokens in prop::collection::vec(select(VOCAB), 0..30), place in 0..4u8) {
        let s = soup(&tokens);
        let src = match place {
            0 => format!("model M {{\n input x: f32[batch, 4]\n fc = Linear(4, 3)\n output y = {s}\n}}"),
            1 => format!("model M {{\n input x: f32[batch, 1, 8, 8]\n net = Sequential({s})\n output y = net(x)\n}}"),
            2 => format!("layer L(n: int) {{\n {s}\n fn forward(x) {{ x }}\n}}\nmodel M {{\n input x: f32[batch, 4]\n l = L(4)\n output y = l(x)\n}}"),
            _ => format!("model M {{\n input x: f32[batch, 4]\n output y = x\n train {{\n {s}\n }}\n}}"),
        };
        check(&src);
    }

    #[test]
    fn expressions_over_valid_names(tokens in prop::collection::vec(select(&["x", "w", "2", "0.5", "+", "-", "*", "/", "@", "**", ".T", "(", ")", "relu(", "sum(", "softmax(", "reshape(", "[", "]", ",", "axis:", "-1", "1", "4", "transpose(", "matmul(", "fc(", "fc.weight", "flatten(", "where(", "x > 0", "cast(", "i64", "f32"][..]), 1..25)) {
        let s: String = tokens.concat();
        check(&format!("model M {{\n input x: f32[batch, 4]\n param w: f32[4, 4] = zeros()\n fc = Linear(4, 4)\n output y = {s}\n}}"));
    }
}

#[test]
fn pathological_inputs() {
    for src in [
        String::new(),
        "\u{0}".into(),
        "model".into(),
        "model M".into(),
        "model M {".into(),
        "}".repeat(1000),
        "(".repeat(100_000),
        "[".repeat(100_000),
        "-".repeat(100_000),
        format!("model M {{ input x: f32[batch, 4]\n output y = x{} }}", " + x".repeat(5_000)),
        format!("model M {{ input x: f32[batch, 4]\n output y = {}x }}", "relu(".repeat(5_000)),
        "layer L { fn forward(x) { x } }\nmodel M { input x: f32[batch, 4]\n l = L\n output y = l(l(l(x))) }".into(),
        "fn f(x) { g(x) }\nfn g(x) { f(x) }\nmodel M { input x: f32[batch, 4]\n output y = f(x) }".into(),
        "layer A { b = B\n fn forward(x) { x } }\nlayer B { a = A\n fn forward(x) { x } }\nmodel M { input x: f32[batch, 4]\n a = A\n output y = a(x) }".into(),
        "model M { input x: f32[batch, 99999999999]\n output y = x }".into(),
        "model M { input x: f32[batch, 4]\n param w: f32[4000000000000, 4000000000000] = zeros()\n output y = x }".into(),
        "model M { input x: f32[batch, 4]\n output y = reshape(x, [-1, -1]) }".into(),
        "model M { input x: f32[batch, 4]\n output y = x ** 99999999999 }".into(),
        "model M { input x: f32[batch, 4]\n output y = x * (9223372036854775807 + 1) }".into(),
        "model M { input x: f32[batch, 4]\n output y = slice(x, axis: 9, end: -5) }".into(),
        "model M { input x: f32[batch, 4]\n output y = concat([], axis: 0) }".into(),
        "model M { input x: f32[batch, 4]\n output y = x.T.T.T }".into(),
        "model M { input x: f32[] \n output y = x.T }".into(),
        "model M { input x: f32[batch, 4]\n output y = Sequential()(x) }".into(),
        // Exponential expansion: each level calls the next twice.
        format!("{}fn f0(x) {{ x + 1 }}\nmodel M {{ input x: f32[batch, 4]\n output y = f40(x) }}", (1..=40).map(|i| format!("fn f{i}(x) {{ f{}(f{}(x)) }}\n", i - 1, i - 1)).collect::<String>()),
        format!("{}fn g0(n) {{ n + 1 }}\nmodel M {{ input x: f32[batch, 4]\n output y = x * g40(1) }}", (1..=40).map(|i| format!("fn g{i}(n) {{ g{}(n) + g{}(n) }}\n", i - 1, i - 1)).collect::<String>()),
        // Sizes whose products overflow 64 bits.
        "model M { input x: f32[batch, 4]\n param w: f32[2, 99999999999, 99999999999, 99999999999] = kaiming_uniform()\n output y = x }".into(),
        "model M { input x: f32[9999999999, 9999999999, 9999999999]\n output y = reshape(x, [-1]) }".into(),
        "model M { input x: f32[3000000000, 3000000000]\n output y = flatten(x, start: 0) + reshape(x, [4294967296, 4294967296, 4294967296]) }".into(),
        "model M { input x: f32[batch, 1, 8, 8]\n output y = max_pool2d(x, 2, padding: 4611686018427387904) }".into(),
        "model M { input x: f32[batch, 1, 8, 8]\n param w: f32[1, 1, 3, 3] = zeros()\n output y = conv2d(x, w, padding: 9223372036854775807, stride: 9223372036854775807) }".into(),
        "model M { input x: f32[batch, 8]\n output y = slice(x, axis: 1, start: 1, end: 8, step: 9223372036854775807) }".into(),
        "model M { input x: i64[batch]\n output y = one_hot(x, num_classes: 9223372036854775807) }".into(),
        "model M { input x: f32[batch, 4]\n output y = x }\nmodel N { input x: f32[batch, 4]\n output y = x }".into(),
    ] {
        check(&src);
    }
}
