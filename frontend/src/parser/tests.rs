use super::*;
use crate::dump::inline;

fn parse_ok(src: &str) -> File {
    let (f, d) = parse_file(src);
    assert!(d.is_empty(), "{d:#?}");
    f
}

fn expr_of(src: &str) -> String {
    let f = parse_ok(&format!("fn f() {{ {src} }}"));
    let Item::Fn(f) = &f.items[0] else { panic!() };
    inline(f.body.result.as_ref().unwrap())
}

#[test]
fn precedence_follows_python() {
    assert_eq!(expr_of("x @ w.T + b"), "((x @ w.T) + b)");
    assert_eq!(expr_of("-x ** 2"), "(-(x ** 2))");
    assert_eq!(expr_of("a ** b ** c"), "(a ** (b ** c))");
    assert_eq!(expr_of("a - b - c"), "((a - b) - c)");
    assert_eq!(expr_of("a + b * c < d"), "((a + (b * c)) < d)");
    assert_eq!(expr_of("-1 / sqrt(in)"), "((-1) / sqrt(in))");
    assert_eq!(expr_of("f(a, k: [1, 2], t: (0.9, 0.999))"), "f(a, k: [1, 2], t: [0.9, 0.999])");
    assert_eq!(expr_of("(a + b) * c"), "((a + b) * c)");
}

#[test]
fn line_breaks_end_expressions_outside_brackets() {
    let f = parse_ok("fn f(x) {\n  let y = x\n  -y\n}");
    let Item::Fn(f) = &f.items[0] else { panic!() };
    assert_eq!(f.body.stmts.len(), 1);
    assert_eq!(inline(f.body.result.as_ref().unwrap()), "(-y)");
    assert_eq!(expr_of("g(a,\n b)\n"), "g(a, b)");
}

#[test]
fn statements_and_items() {
    let f = parse_ok(
        "layer L(in: int, bias: bool = true) {\n param w: f32[in, 2] = zeros() if bias\n fn forward(x: f32[..., in]) -> f32[_, batch] { x }\n}\nlayer D = L\nmodel M {\n input x: f32[batch, 3]\n l = L(3)\n let h: f32[batch, 2] = l(x)\n output y = h\n train { epochs: 2, loss: mse(y, t) }\n}",
    );
    assert_eq!(f.items.len(), 3);
    let Item::Model(m) = &f.items[2] else { panic!() };
    let kinds: Vec<&str> = m.body.iter().map(|s| s.kind.keyword()).collect();
    assert_eq!(kinds, ["input", "layer binding", "let", "output", "train"]);
}

#[test]
fn errors_say_what_was_expected_and_recover() {
    let (f, d) = parse_file("model M {\n input x f32[batch, 3]\n let = 3\n output y = x +\n output z = x\n}");
    let msgs: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(msgs[0].starts_with("expected `:` and the input's type"), "{msgs:?}");
    assert_eq!(msgs[1], "expected a name to bind, found `=`");
    assert_eq!(msgs[2], "expected an expression, found `output`");
    let Item::Model(m) = &f.items[0] else { panic!() };
    assert_eq!(m.body.last().unwrap().kind.defines().unwrap().name, "z");
}

#[test]
fn keyword_arguments_with_equals_get_a_hint() {
    let (_, d) = parse_file("fn f() { g(kernel = 3) }");
    assert_eq!(d[0].message, "keyword arguments use `:`, not `=`");
    assert!(d[0].help.as_deref().unwrap().contains("kernel: …"));
}

#[test]
fn unclosed_braces_and_stray_tokens() {
    let (_, d) = parse_file("model M {\n input x: f32[batch, 3]\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].secondary[0].1, "this `{` is never closed");
    let (f, d) = parse_file(") ) model M { }");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(f.items.len(), 1);
}

#[test]
fn nesting_is_bounded_in_recursion_and_in_tree_depth() {
    for src in [
        format!("fn f() {{ {}x{} }}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("fn f() {{ {}x }}", "-".repeat(10_000)),
        format!("fn f() {{ x{} }}", " + x".repeat(10_000)),
        format!("fn f() {{ x{} }}", ".a".repeat(10_000)),
        format!("fn f() {{ x{} }}", "()".repeat(10_000)),
        format!("fn f() {{ {}x{} }}", "[".repeat(10_000), "]".repeat(10_000)),
        format!("layer L {{ {}", "fn f() { ".repeat(5_000)),
    ] {
        let (_, d) = parse_file(&src);
        assert_eq!(d.iter().filter(|d| d.code == codes::TOO_DEEP).count(), 1, "{}", &src[..40]);
    }
    // Just under the limit is fine.
    let ok = format!("fn f() {{ {}x{} }}", "(".repeat(MAX_DEPTH - 8), ")".repeat(MAX_DEPTH - 8));
    assert!(parse_file(&ok).1.is_empty());
}

#[test]
fn numbers_out_of_range() {
    let (_, d) = parse_file("fn f() { 99999999999999999999 }");
    assert_eq!(d[0].code, codes::NUMBER_RANGE);
}

#[test]
fn types() {
    let f = parse_ok("fn f(a: int, b: float, c: str, d: bool, e: bool[batch], g: i64[], h: f64[2, n * 2]) { a }");
    let Item::Fn(f) = &f.items[0] else { panic!() };
    let tys: Vec<String> = f.params.iter().map(|p| crate::dump::ty(p.ty.as_ref().unwrap())).collect();
    assert_eq!(tys, ["int", "float", "str", "bool", "bool[batch]", "i64[]", "f64[2, (n * 2)]"]);
    let (_, d) = parse_file("fn f(a: f32) { a }");
    assert_eq!(d[0].message, "the tensor type `f32` needs its dims");
    let (_, d) = parse_file("fn f(a: f33[2]) { a }");
    assert_eq!(d[0].message, "expected an element type, found `f33`");
}
