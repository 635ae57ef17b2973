//! Every parse error says where, what was expected and what was found.

use dlc_ir::parse_module;

/// Parses `src`, expecting the error rendered as `line:col: message`.
fn err(src: &str) -> String {
    match parse_module(src) {
        Ok(m) => panic!("expected an error, parsed {} function(s) from:\n{src}", m.functions.len()),
        Err(e) => e.to_string(),
    }
}

fn func(body: &str) -> String {
    format!("func.func @f(%x: tensor<4xf32>, %w: tensor<3x4xf32>) -> tensor<4xf32> {{\n{body}\n  return %x : tensor<4xf32>\n}}\n")
}

#[test]
fn syntax_errors_name_what_was_expected_and_found() {
    let cases = [
        (func(r#"  %0 = "dl.neg"(%x) -> tensor<4xf32>"#), "2:21: expected ':' after operand list, found '->'"),
        (func(r#"  %0 = "dl.neg"(%x : (tensor<4xf32>) -> tensor<4xf32>"#), "2:20: expected ',' or ')' in the operand list, found ':'"),
        (func(r#"  %0 = "dl.neg"(%x) : (tensor<4xf32>) tensor<4xf32>"#), "2:39: expected '->' after the operand types, found 'tensor'"),
        (func(r#"  %0 "dl.neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#), "2:6: expected '=' after the op's result names, found string \"dl.neg\""),
        (func(r#"  %0 = dl.neg(%x) : (tensor<4xf32>) -> tensor<4xf32>"#), "2:8: expected an op (a quoted name like \"dl.add\", or 'return'), found 'dl.neg'"),
        (func(r#"  %0 = "dl.neg"(%x) : (tensor<4xf33>) -> tensor<4xf32>"#), "2:33: unsupported element type 'f33' (expected f32, f64, i32, i64 or i1)"),
        (func(r#"  %0 = "dl.neg"(%x) : (tensor<4xf32) -> tensor<4xf32>"#), "2:36: expected '>' after the tensor's element type"),
        (func(r#"  %0 = "dl.neg"(%x) : (tensor<4,f32>) -> tensor<4xf32>"#), "2:32: expected 'x' after a tensor dimension"),
        (func(r#"  %0 = "dl.neg"(%x) : (tensor<*xf32>) -> tensor<4xf32>"#), "2:31: unranked tensors are not supported"),
        (func(r#"  %0 = "dl.neg"(%x) : (bf16) -> tensor<4xf32>"#), "2:24: unsupported type 'bf16' (expected tensor<…>, f32, f64, i32, i64, i1 or index)"),
        (func(r#"  %0 = "dl.neg"(%x) {alpha} : (tensor<4xf32>) -> tensor<4xf32>"#), "2:27: expected '=' after attribute name 'alpha', found '}' (unit attributes are not supported)"),
        (func(r#"  %0 = "dl.neg"(%x) {a = 1, a = 2} : (tensor<4xf32>) -> tensor<4xf32>"#), "2:29: duplicate attribute 'a'"),
        (func(r#"  %0 = "dl.neg"(%x) {a = "open} : (tensor<4xf32>) -> tensor<4xf32>"#), "2:26: unterminated string literal"),
        (func(r#"  %0 = "dl.neg"(%x) {a = "\q"} : (tensor<4xf32>) -> tensor<4xf32>"#), "2:27: unknown escape in string (use \\\", \\\\, \\n, \\t or \\XX)"),
        (func(r#"  %0 = "dl.neg"(%x) {a = "\FF"} : (tensor<4xf32>) -> tensor<4xf32>"#), "2:26: string literal is not valid UTF-8 after unescaping"),
        (func(r#"  %0 = "dl.neg"(%x) {a = @s} : (tensor<4xf32>) -> tensor<4xf32>"#), "2:26: expected an attribute value, found symbol '@s'"),
        (func(r#"  %0 = "dl.neg"(%x) [^bb1] : (tensor<4xf32>) -> tensor<4xf32>"#), "2:21: successor blocks are not supported"),
        (func("  %0 = \"dl.neg\"(%x) : (tensor<4xf32>) -> tensor<4xf32> £"), "2:56: unexpected character '£'"),
        ("func.func private @f() {\n  return\n}".into(), "1:11: symbol visibility ('private') is not supported"),
        ("func.func f() {\n  return\n}".into(), "1:11: expected the function's name ('@name') after 'func.func'"),
        ("module {\n  func.func @f() {\n    return\n  }\n".into(), "5:1: expected 'func.func' or '}' closing the module, found end of input"),
        ("module {\n}\n}".into(), "3:1: expected end of input after the module, found '}'"),
        ("func.func @f() {\n  return\n".into(), "3:1: expected '}' closing the function body, found end of input"),
        ("func.func @f() {\n^bb0:\n  return\n}".into(), "2:1: a function body is one unlabeled block; block labels are only supported in nested regions"),
        ("func.func @f() -> (f32 {a = 1}) {\n  return\n}".into(), "1:24: result attributes are not supported"),
        ("%0 = \"dl.neg\"() : () -> f32".into(), "1:1: expected 'func.func' or end of input, found '%0'"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(src, want)| err(src) != *want)
        .map(|(src, want)| format!("for:\n{src}\n  want: {want}\n   got: {}", err(src)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn ssa_errors_point_at_the_value() {
    assert_eq!(err(&func(r#"  %0 = "dl.neg"(%nope) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:17: use of undefined value %nope");
    assert_eq!(
        err(&func("  %a = \"dl.neg\"(%x) : (tensor<4xf32>) -> tensor<4xf32>\n  %a = \"dl.neg\"(%x) : (tensor<4xf32>) -> tensor<4xf32>")),
        "3:3: redefinition of %a (first defined at 2:3)"
    );
    assert_eq!(err(&func(r#"  %x = "dl.neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:3: redefinition of %x (first defined at 1:14)");
    // A value of one region is not visible in the next.
    let src = func(
        "  %0 = \"dl.neg\"(%x) ({\n  ^bb0(%a: f32):\n    %1 = \"dl.neg\"(%x) : (tensor<4xf32>) -> tensor<4xf32>\n  }, {\n    %2 = \"dl.neg\"(%1) : (tensor<4xf32>) -> tensor<4xf32>\n  }) : (tensor<4xf32>) -> tensor<4xf32>",
    );
    assert_eq!(err(&src), "6:19: %1 is defined in another block or region and is not visible here");
    // An op's own results are not visible in its regions.
    let src = func("  %0 = \"dl.neg\"(%x) ({\n    %1 = \"dl.neg\"(%0) : (tensor<4xf32>) -> tensor<4xf32>\n  }) : (tensor<4xf32>) -> tensor<4xf32>");
    assert_eq!(err(&src), "3:19: use of undefined value %0");
    assert_eq!(err(&func(r#"  %0 = "dl.neg"(%x#1) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:17: %x is a single value; #1 is out of range");
    assert_eq!(
        err(&func("  %r:2 = \"dl.neg\"(%x) : (tensor<4xf32>) -> (f32, f32)\n  %1 = \"dl.neg\"(%r) : (f32) -> f32")),
        "3:17: %r names 2 results; use %r#0 … %r#1"
    );
    assert_eq!(err(&func(r#"  %0#1 = "dl.neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:3: a definition cannot have a result number ('%0#…')");
    assert_eq!(err(&func(r#"  %a, %b = "dl.neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:12: 'dl.neg' names 2 result(s) but its type lists 1");
    assert_eq!(err(&func(r#"  %a:0 = "dl.neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:6: expected a result count (1 to 4096) after ':'");
}

#[test]
fn written_operand_types_must_match_the_values() {
    assert_eq!(
        err(&func(r#"  %0 = "dl.neg"(%x) : (tensor<3x4xf32>) -> tensor<4xf32>"#)),
        "2:23: operand #0 has type tensor<4xf32>, but the op's type says tensor<3x4xf32>"
    );
    assert_eq!(err(&func(r#"  %0 = "dl.add"(%x, %x) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:27: the op has 2 operand(s) but its type lists 1");
    assert_eq!(
        err("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n  return %x : tensor<4xi32>\n}"),
        "2:13: operand #0 has type tensor<4xf32>, but the op's type says tensor<4xi32>"
    );
    assert_eq!(err("func.func @f(%x: f32) {\n  return %x, %x : f32\n}"), "2:17: the op has 2 operand(s) but its type lists 1");
}

#[test]
fn unknown_ops_suggest_a_registered_one() {
    assert_eq!(err(&func(r#"  %0 = "dl.matmull"(%x, %w) : (tensor<4xf32>, tensor<3x4xf32>) -> tensor<4xf32>"#)), "2:8: unknown op 'dl.matmull'; did you mean 'dl.matmul'?");
    assert_eq!(err(&func(r#"  %0 = "neg"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:8: unknown op 'neg'; did you mean 'dl.neg'?");
    assert_eq!(err(&func(r#"  %0 = "tosa.whatever"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#)), "2:8: unknown op 'tosa.whatever'");
}

#[test]
fn numbers_are_range_checked_not_wrapped() {
    let attr = |a: &str| err(&format!("func.func @f() attributes {{a = {a}}} {{\n  return\n}}"));
    assert_eq!(attr("9223372036854775808"), "1:32: integer 9223372036854775808 does not fit in i64");
    assert_eq!(attr("-9223372036854775809"), "1:33: integer 9223372036854775809 does not fit in i64");
    assert_eq!(attr("99999999999999999999999999"), "1:32: integer 99999999999999999999999999 does not fit in i64");
    assert_eq!(attr("1.0e999"), "1:32: float 1.0e999 is out of range for f64");
    assert_eq!(attr("0x1FFFFFFFFFFFFFFFF : f64"), "1:32: hex literal 0x1FFFFFFFFFFFFFFFF does not fit in 64 bits");
    assert_eq!(attr("1.5 : f32"), "1:38: expected f64 after ':' (dlc's integer attributes are i64 and its floats f64), found 'f32'");
    assert_eq!(attr("1.0e"), "1:36: expected digits in the float's exponent");
    let c = |lit: &str, ty: &str| err(&format!("func.func @f() attributes {{a = dense<{lit}> : {ty}}} {{\n  return\n}}"));
    assert_eq!(c("[2147483648]", "tensor<1xi32>"), "1:39: integer 2147483648 does not fit in i32");
    assert_eq!(c("1.0e39", "tensor<f32>"), "1:38: 1.0e39 is out of range for f32");
    assert_eq!(c("1", "tensor<f32>"), "1:38: expected a floating-point element, found integer 1 (write 1.0)");
    assert_eq!(c("0x7F80000000", "tensor<f32>"), "1:38: hex literal 0x7F80000000 is not a bit pattern of f32");
    assert_eq!(c("[1.0, 2.0]", "tensor<3xf32>"), "1:38: dense literal has shape [2] but its type is tensor<3xf32>");
    assert_eq!(c("[[1.0], [2.0, 3.0]]", "tensor<2x2xf32>"), "1:38: dense literal is not rectangular: its lists differ in shape");
    assert_eq!(c("", "tensor<2xf32>"), "1:38: empty dense<> needs a type with no elements, got tensor<2xf32>");
    assert_eq!(c("1.0", "tensor<?xf32>"), "1:45: a dense constant needs a static tensor type, got tensor<?xf32>");
    assert_eq!(c("2", "tensor<i1>"), "1:38: expected true or false for an i1 element");
    let ty = |t: &str| err(&format!("func.func @f(%a: {t}) {{\n  return\n}}"));
    assert_eq!(ty("tensor<99999999999999999999xf32>"), "1:25: dimension 99999999999999999999 is too large");
    assert_eq!(ty("tensor<4294967296x4294967296xf32>"), "1:18: tensor type is too large: the product of its dimensions overflows 64 bits");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [65, 10_000, 200_000] {
        let arrays = format!("func.func @f() attributes {{a = {}{}}} {{ return }}", "[".repeat(depth), "]".repeat(depth));
        assert!(err(&arrays).ends_with("nesting is deeper than 64 levels"), "{depth}");
        let dicts = format!("func.func @f() attributes {{a = {}1{}}} {{ return }}", "{a = ".repeat(depth), "}".repeat(depth));
        assert!(err(&dicts).ends_with("nesting is deeper than 64 levels"));
        let dense = format!("func.func @f() attributes {{a = dense<{}1.0{}> : tensor<f32>}} {{ return }}", "[".repeat(depth), "]".repeat(depth));
        assert!(err(&dense).ends_with("nesting is deeper than 64 levels"));
        let op = "\"dl.neg\"(%x) ({\n";
        let regions = format!("func.func @f(%x: f32) {{\n{}", op.repeat(depth));
        assert!(err(&regions).ends_with("nesting is deeper than 64 levels"));
    }
    // 64 levels are fine.
    let ok = format!("func.func @f() attributes {{a = {}{}}} {{ return }}", "[".repeat(63), "]".repeat(63));
    parse_module(&ok).unwrap();
}

/// `func.func @f() attributes {m = MAP}`: the map starts at column 32.
fn map_attr(map: &str) -> String {
    format!("func.func @f() attributes {{m = {map}}} {{\n  return\n}}")
}

#[test]
fn bad_affine_maps_say_where_and_what() {
    let cases = [
        ("affine_map<(d0) -> (d0 * d0)>", "1:32: 'd0 * d0' is not affine (a product of dims)"),
        ("affine_map<(x) -> (x)>", "1:32: affine map dims must be named d0, d1, … in order, found 'x'"),
        ("affine_map<(d0, d2) -> (d0)>", "1:32: affine map dims must be named d0, d1, … in order, found 'd2'"),
        ("affine_map<(d0) -> (d1)>", "1:32: d1 is not one of the map's 1 dims"),
        ("affine_map<(d0) (d0)>", "1:32: an affine map needs '->'"),
        ("affine_map<>", "1:32: an affine map needs '->'"),
        ("affine_map<(d0) -> d0>", "1:32: expected a parenthesized list, found 'd0'"),
        ("affine_map<(d0) -> (d0 +)>", "1:32: empty term in affine expression 'd0 +'"),
        ("affine_map<(d0) -> (d0 * 99999999999999999999)>", "1:32: '99999999999999999999' is neither a dim nor an integer"),
        ("affine_map (d0) -> (d0)>", "1:43: expected '<' after 'affine_map', found '('"),
        ("affine_map<(d0) -> (d0 / 2)>", "1:55: unexpected '/' in an affine map"),
        // Unterminated: the map runs into the dictionary's '}'.
        ("affine_map<(d0) -> (d0)", "1:55: unexpected '}' in an affine map"),
        ("affine_map<(d0) -> (d0)>>", "1:56: expected ',' or '}' in the attribute dictionary, found '>'"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(map, want)| err(&map_attr(map)) != *want)
        .map(|(map, want)| format!("{map}\n  want: {want}\n   got: {}", err(&map_attr(map))))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // At the end of the input.
    assert_eq!(err("func.func @f() attributes {m = affine_map<(d0) -> (d0)"), "1:43: unterminated affine_map<…>");
}

/// Affine coefficients and constants are i64: a sum that leaves i64 is an
/// error like an integer literal that does not fit, not an overflow.
#[test]
fn affine_sums_are_range_checked() {
    for map in [
        "affine_map<(d0) -> (9223372036854775807 + 1)>",
        "affine_map<(d0) -> (-9223372036854775807 - 2)>",
        "affine_map<(d0) -> (d0 * 9223372036854775807 + d0)>",
    ] {
        assert!(err(&map_attr(map)).starts_with("1:32: "), "{map}");
    }
}
