//! One case per verifier check, asserting the rendered message.

mod common;

use common::{t, tt};
use dlc_ir::*;

/// Verifies the module parsed from `src`, expecting exactly these errors.
fn errors_of(src: &str) -> Vec<String> {
    let m = parse_module(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    errors(&m)
}

fn errors(m: &Module) -> Vec<String> {
    match verify_module(m) {
        Ok(()) => Vec::new(),
        Err(es) => es.iter().map(ToString::to_string).collect(),
    }
}

fn one_fn(f: Function) -> Module {
    Module { functions: vec![f] }
}

const MATMUL: &str = r#"func.func @forward(%x: tensor<?x784xf32>, %w: tensor<256x784xf32>) -> tensor<?xRxf32> {
  %0 = "dl.matmul"(%x, %w) ATTRS : (tensor<?x784xf32>, tensor<256x784xf32>) -> tensor<?xRxf32>
  return %0 : tensor<?xRxf32>
}"#;

#[test]
fn shape_rule_errors_come_from_the_registry() {
    let src = MATMUL.replace("ATTRS ", "").replace('R', "256");
    assert_eq!(
        errors_of(&src),
        [r#"in @forward, op '%0 = "dl.matmul"': contracted dims differ: tensor<?x784xf32> has 784, tensor<256x784xf32> has 256"#]
    );
    assert!(errors_of(&MATMUL.replace("ATTRS", "{transpose_b = true}").replace('R', "256")).is_empty());
}

#[test]
fn result_types_must_equal_the_inferred_ones() {
    let src = MATMUL.replace("ATTRS", "{transpose_b = true}").replace('R', "10");
    assert_eq!(
        errors_of(&src),
        [r#"in @forward, op '%0 = "dl.matmul"': result type tensor<?x10xf32> does not match the inferred tensor<?x256xf32>"#]
    );
}

fn body(ops: &str) -> String {
    format!("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {{\n{ops}\n  return %x : tensor<4xf32>\n}}")
}

#[test]
fn operand_counts_and_attributes_are_checked() {
    assert_eq!(
        errors_of(&body(r#"  %y = "dl.neg"(%x, %x) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>"#)),
        [r#"in @f, op '%y = "dl.neg"': expects 1 operand(s), got 2"#]
    );
    assert_eq!(
        errors_of(&body(r#"  %y = "dl.relu"(%x) {bogus = 1} : (tensor<4xf32>) -> tensor<4xf32>"#)),
        [r#"in @f, op '%y = "dl.relu"': takes no attributes, got 'bogus'"#]
    );
    assert_eq!(
        errors_of(&body(r#"  %y = "dl.softmax"(%x) : (tensor<4xf32>) -> tensor<4xf32>"#)),
        [r#"in @f, op '%y = "dl.softmax"': missing required attribute 'axis' (the axis to normalize over)"#]
    );
    assert_eq!(
        errors_of(&body(r#"  %y = "dl.softmax"(%x) {axis = "one"} : (tensor<4xf32>) -> tensor<4xf32>"#)),
        [r#"in @f, op '%y = "dl.softmax"': attribute 'axis' must be an integer"#]
    );
}

#[test]
fn all_problems_are_collected_in_program_order() {
    let src = body(
        "  %0 = \"dl.neg\"(%x) : (tensor<4xf32>) -> tensor<3xf32>\n  %1 = \"dl.softmax\"(%x) : (tensor<4xf32>) -> tensor<4xf32>",
    );
    assert_eq!(
        errors_of(&src),
        [
            r#"in @f, op '%0 = "dl.neg"': result type tensor<3xf32> does not match the inferred tensor<4xf32>"#,
            r#"in @f, op '%1 = "dl.softmax"': missing required attribute 'axis' (the axis to normalize over)"#,
        ]
    );
}

/// `%a` (entry), `%b = neg %a`, `%c = exp %a`, return `%c`, all f32[4].
fn chain() -> (Function, [ValueId; 3]) {
    let mut f = Function::new("f");
    let a = f.add_arg(t(&[4], DType::F32), Some("a"), Attrs::new());
    let mut bld = Builder::at_entry(&mut f);
    let b = bld.op(OpKind::Neg, &[a], Attrs::new()).unwrap();
    let c = bld.op(OpKind::Exp, &[a], Attrs::new()).unwrap();
    bld.ret(&[c]);
    (f, [a, b, c])
}

#[test]
fn uses_must_be_dominated_by_their_definition() {
    // The neg now uses the exp's result, which comes after it.
    let (mut f, [a, _, c]) = chain();
    let neg = f.body_ops()[0];
    f.op_mut(neg).operands = vec![c];
    assert_eq!(errors(&one_fn(f.clone())), [r#"in @f, op '%0 = "dl.neg"': operand #0 (%1) is used before its definition"#]);
    // A value of an op that was removed.
    let exp = f.body_ops()[1];
    f.op_mut(neg).operands = vec![a];
    f.remove_op(exp);
    assert_eq!(
        errors(&one_fn(f)),
        ["in @f, op 'return': operand #0 (value #2) is not defined in this function (was its op removed?)"]
    );
    // A value id outside the function.
    let (mut f, _) = chain();
    let neg = f.body_ops()[0];
    f.op_mut(neg).operands.push(ValueId(99));
    assert_eq!(
        errors(&one_fn(f)),
        [r#"in @f, op '%0 = "dl.neg"': operand #1 (value #99) does not exist"#]
    );
}

#[test]
fn values_of_one_region_are_not_visible_in_another() {
    let (mut f, _) = chain();
    let ty = t(&[4], DType::F32);
    let b0 = f.new_block();
    let inner = f.add_block_arg(b0, ty.clone(), Some("inner"));
    f.append_op(b0, OpKind::Neg, vec![inner], Attrs::new(), vec![ty.clone()], vec![]);
    let b1 = f.new_block();
    f.append_op(b1, OpKind::Neg, vec![inner], Attrs::new(), vec![ty.clone()], vec![]);
    let neg = f.body_ops()[0];
    f.op_mut(neg).regions = vec![Region { blocks: vec![b0] }, Region { blocks: vec![b1] }];
    assert_eq!(
        errors(&one_fn(f)),
        [
            r#"in @f, op '%0 = "dl.neg"': 'dl.neg' takes no regions"#,
            r#"in @f, op '%2 = "dl.neg"': operand #0 (%inner) is not visible here: it is defined in another block or region"#
        ]
    );
}

#[test]
fn blocks_and_ops_are_linked_once() {
    let (mut f, _) = chain();
    let ty = t(&[4], DType::F32);
    let b0 = f.new_block();
    f.add_block_arg(b0, ty.clone(), None);
    f.append_op(b0, OpKind::Constant, vec![], Attrs::new(), vec![], vec![]);
    let neg = f.body_ops()[0];
    f.op_mut(neg).regions = vec![Region { blocks: vec![b0, b0] }];
    let errs = errors(&one_fn(f));
    assert_eq!(errs[0], r#"in @f, op '%0 = "dl.neg"': 'dl.neg' takes no regions"#);
    assert_eq!(errs[1], r#"in @f, op '"dl.constant"': missing required attribute 'value' (the elements and their static type)"#);
    assert_eq!(errs[2], r#"in @f, op '%0 = "dl.neg"': block #1 is listed in more than one region"#);
    let (mut f, _) = chain();
    let neg = f.body_ops()[0];
    f.op_mut(neg).parent = BlockId(7);
    assert_eq!(errors(&one_fn(f)), [r#"in @f, op '%0 = "dl.neg"': the op records block #7 as its parent, but block #0 holds it"#]);
}

#[test]
fn nested_blocks_must_not_be_empty() {
    let src = body("  %y = \"dl.neg\"(%x) ({\n  ^bb0:\n  }) : (tensor<4xf32>) -> tensor<4xf32>");
    assert_eq!(
        errors_of(&src),
        [
            r#"in @f, op '%y = "dl.neg"': 'dl.neg' takes no regions"#,
            r#"in @f, op '%y = "dl.neg"': block ^bb0 of a region is empty; MLIR requires at least one op in every block"#
        ]
    );
}

#[test]
fn the_body_ends_with_exactly_one_return() {
    let mut f = Function::new("f");
    assert_eq!(errors(&one_fn(f.clone())), ["in @f: the function body is empty; it must end with 'return'"]);
    let x = f.add_arg(t(&[4], DType::F32), Some("x"), Attrs::new());
    Builder::at_entry(&mut f).op(OpKind::Neg, &[x], Attrs::new()).unwrap();
    assert_eq!(errors(&one_fn(f)), [r#"in @f, op '%0 = "dl.neg"': the function body must end with 'return'"#]);
    assert_eq!(
        errors_of("func.func @f() {\n  return\n  return\n}"),
        ["in @f, op 'return': 'return' must be the last op of the function body"]
    );
    let src = body("  %y = \"dl.neg\"(%x) ({\n    return %x : tensor<4xf32>\n  }) : (tensor<4xf32>) -> tensor<4xf32>");
    assert_eq!(
        errors_of(&src),
        [r#"in @f, op '%y = "dl.neg"': 'dl.neg' takes no regions"#, "in @f, op 'return': 'return' is only allowed at the end of the function body"]
    );
    let (mut f, _) = chain();
    let extra = f.new_block();
    f.body.blocks.push(extra);
    assert_eq!(errors(&one_fn(f)), ["in @f: the function body has 2 blocks; only a single block is supported"]);
    let (mut f, _) = chain();
    f.body.blocks.clear();
    assert_eq!(errors(&one_fn(f)), ["in @f: the function has no body block"]);
}

#[test]
fn returned_types_must_match_the_declared_results() {
    assert_eq!(
        errors_of("func.func @f(%x: tensor<4xi32>) -> tensor<4xf32> {\n  return %x : tensor<4xi32>\n}"),
        ["in @f, op 'return': returned value #0 (%x) has type tensor<4xi32>, but the function declares tensor<4xf32>"]
    );
    assert_eq!(
        errors_of("func.func @f(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {\n  return %x : tensor<4xf32>\n}"),
        ["in @f, op 'return': returns 1 value(s), but the function declares 2 result(s)"]
    );
}

#[test]
fn signature_conventions_are_checked() {
    let (mut f, _) = chain();
    f.arg_attrs.push(Attrs::new());
    assert_eq!(errors(&one_fn(f)), ["in @f: has 2 argument attribute dictionaries for 1 arguments"]);
    let sig = |arg_attrs: &str, fn_attrs: &str| {
        errors_of(&format!("func.func @f(%x: tensor<4xf32> {arg_attrs}) -> tensor<4xf32> {fn_attrs} {{\n  return %x : tensor<4xf32>\n}}"))
    };
    assert_eq!(sig(r#"{dl.role = "weird"}"#, ""), [r#"in @f: argument %x: dl.role must be "input", "param" or "state""#]);
    assert_eq!(sig(r#"{dl.role = "param"}"#, ""), ["in @f: parameter %x has no dl.init"]);
    assert_eq!(sig(r#"{dl.role = "state"}"#, ""), ["in @f: optimizer state %x has no dl.init"]);
    assert_eq!(sig("", r#"attributes {dl.outputs = ["a", "b"]}"#), ["in @f: dl.outputs names 2 results, the function returns 1"]);
    assert!(sig(r#"{dl.init = {kind = "zeros"}, dl.role = "param"}"#, r#"attributes {dl.outputs = ["y"]}"#).is_empty());
    assert_eq!(
        errors_of("func.func @f(%s: f32) {\n  return\n}"),
        ["in @f: argument %s must be a tensor, got f32"]
    );
}

#[test]
fn function_names_are_unique_in_a_module() {
    let src = "func.func @f() {\n  return\n}\nfunc.func @g() {\n  return\n}\nfunc.func @f() {\n  return\n}";
    assert_eq!(errors_of(src), ["in @f: function @f is defined more than once"]);
}

#[test]
fn dense_integers_must_fit_their_element_type() {
    let mut f = Function::new("f");
    let mut b = Builder::at_entry(&mut f);
    let c = b.constant(DenseAttr { ty: tt(&[2], DType::I32), data: DenseData::Int(vec![1, 1 << 40]) }).unwrap();
    b.ret(&[c]);
    assert_eq!(errors(&one_fn(f)), [r#"in @f, op '%0 = "dl.constant"': attribute 'value': dense element 1099511627776 does not fit in i32"#]);
}

#[test]
fn verify_error_fields_and_display() {
    let e = VerifyError { function: "forward".into(), op: Some(r#"%3 = "dl.matmul""#.into()), message: "m".into() };
    assert_eq!(e.to_string(), r#"in @forward, op '%3 = "dl.matmul"': m"#);
    let e = VerifyError { op: None, ..e };
    assert_eq!(e.to_string(), "in @forward: m");
}

/// Parsed text can hold any number; the shape rules must answer, not overflow.
#[test]
fn shape_rules_survive_extreme_numbers() {
    let op = |ops: &str| errors_of(&format!("func.func @f(%x: tensor<1x1x8x8xf32>, %k: tensor<1x1x0x3xf32>, %v: tensor<9223372036854775807xf32>) {{\n{ops}\n  return\n}}"));
    let big = i64::MAX;
    assert_eq!(
        op(&format!(r#"  %0 = "dl.slice"(%x) {{axis = 3, end = 8, start = 0, step = {big}}} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x1xf32>"#)),
        Vec::<String>::new()
    );
    assert_eq!(
        op(&format!(r#"  %0 = "dl.max_pool2d"(%x) {{kernel = [2, 2], padding = [{big}, 0], stride = [1, 1]}} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>"#)),
        [format!(r#"in @f, op '%0 = "dl.max_pool2d"': padding [{big}, 0] must be at most half the kernel [2, 2]"#)]
    );
    assert_eq!(
        op(r#"  %0 = "dl.conv2d"(%x, %k) : (tensor<1x1x8x8xf32>, tensor<1x1x0x3xf32>) -> tensor<1x1x8x8xf32>"#),
        [r#"in @f, op '%0 = "dl.conv2d"': window size 0 and stride 1 must be positive"#]
    );
    assert_eq!(
        op(&format!(r#"  %0 = "dl.conv2d"(%x, %x) {{dilation = [{big}, 1]}} : (tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>"#)),
        [format!(r#"in @f, op '%0 = "dl.conv2d"': window 8 with dilation {big} and padding 0 overflows 64 bits"#)]
    );
    assert_eq!(
        op(r#"  %0 = "dl.reshape"(%x) {shape = [4294967296, 4294967296]} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>"#),
        [r#"in @f, op '%0 = "dl.reshape"': cannot reshape [1, 1, 8, 8] into [4294967296, 4294967296]: element counts differ"#]
    );
    assert_eq!(
        op(r#"  %0 = "dl.concat"(%v, %v, %v) {axis = 0} : (tensor<9223372036854775807xf32>, tensor<9223372036854775807xf32>, tensor<9223372036854775807xf32>) -> tensor<1xf32>"#),
        [r#"in @f, op '%0 = "dl.concat"': the concatenated size overflows 64 bits"#]
    );
}

// ---- the structured-kernel level ----

/// A valid `kernel.generic`: the matrix-vector product `y[i] = sum_j x[i, j] * v[j]`.
const GEMV: &str = r#"func.func @f(%x: tensor<2x3xf32>, %v: tensor<3xf32>) -> tensor<2xf32> {
  %y = "kernel.generic"(%x, %v) ({
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %s = "dl.mul"(%a, %b) : (f32, f32) -> f32
    %t = "dl.add"(%acc, %s) : (f32, f32) -> f32
    "kernel.yield"(%t) : (f32) -> ()
  }) {dtype = f32, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0)>], iterators = ["parallel", "reduction"], sizes = [2, 3]} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2xf32>
  return %y : tensor<2xf32>
}"#;

/// The errors of `GEMV` with each `(from, to)` replaced (each must occur).
/// A bad attribute is reported by the shape rule and again by the body
/// check; repeats are dropped here, so each case lists what is wrong once.
fn gemv_errors(edits: &[(&str, &str)]) -> Vec<String> {
    let mut src = GEMV.to_string();
    for (from, to) in edits {
        assert!(src.contains(from), "{from:?} is not in the kernel");
        src = src.replace(from, to);
    }
    let mut errs = errors_of(&src);
    errs.dedup();
    errs
}

const GENERIC: &str = r#"in @f, op '%y = "kernel.generic"': "#;

fn on_generic(messages: &[&str]) -> Vec<String> {
    messages.iter().map(|m| format!("{GENERIC}{m}")).collect()
}

#[test]
fn a_well_formed_kernel_verifies() {
    assert_eq!(gemv_errors(&[]), Vec::<String>::new());
    // Constants and i1 values in a body; an operand padded where its map leaves it.
    let relu = r#"%s = "dl.mul"(%a, %b) : (f32, f32) -> f32
    %z = "kernel.constant"() {dtype = f32, value = 0.0} : () -> f32
    %p = "dl.cmp"(%s, %z) {predicate = "gt"} : (f32, f32) -> i1
    %r = "dl.select"(%p, %s, %z) : (i1, f32, f32) -> f32"#;
    let edits = [
        (r#"%s = "dl.mul"(%a, %b) : (f32, f32) -> f32"#, relu),
        (r#""dl.add"(%acc, %s)"#, r#""dl.add"(%acc, %r)"#),
        ("(d0, d1) -> (d1)>", "(d0, d1) -> (d1 * 2 - 1)>"),
        ("sizes = [2, 3]}", "pad = 0.0, padded = [1], sizes = [2, 3]}"),
    ];
    assert_eq!(gemv_errors(&edits), Vec::<String>::new());
}

#[test]
fn kernel_bodies_take_one_scalar_per_operand_then_the_accumulator() {
    assert_eq!(
        gemv_errors(&[("%acc: f32)", "%acc: f32, %extra: f32)")]),
        on_generic(&["the body's arguments are (f32, f32, f32, f32), expected (f32, f32, f32): one element per operand, then the accumulator"])
    );
    assert_eq!(
        gemv_errors(&[("%b: f32", "%b: f64"), ("(%a, %b) : (f32, f32)", "(%a, %a) : (f32, f32)")]),
        on_generic(&["the body's arguments are (f32, f64, f32), expected (f32, f32, f32): one element per operand, then the accumulator"])
    );
    assert_eq!(
        gemv_errors(&[("%a: f32", "%a: tensor<f32>"), ("(%a, %b) : (f32, f32)", "(%b, %b) : (f32, f32)")]),
        on_generic(&["the body's arguments are (tensor<f32>, f32, f32), expected (f32, f32, f32): one element per operand, then the accumulator"])
    );
    // Without reduction iterators there is no accumulator.
    assert_eq!(
        gemv_errors(&[(r#""reduction"]"#, r#""parallel"]"#), ("-> (d0)>]", "-> (d0, d1)>]"), ("-> tensor<2xf32>", "-> tensor<2x3xf32>"), (": tensor<2xf32>", ": tensor<2x3xf32>")]),
        on_generic(&["the body's arguments are (f32, f32, f32), expected (f32, f32): one element per operand"])
    );
}

#[test]
fn kernel_bodies_end_with_one_yield_of_the_result_type() {
    let yield_t = "    \"kernel.yield\"(%t) : (f32) -> ()\n";
    assert_eq!(gemv_errors(&[(yield_t, "")]), on_generic(&["the body must end with kernel.yield, not 'dl.add'"]));
    assert_eq!(
        gemv_errors(&[(yield_t, "    \"kernel.yield\"(%t) : (f32) -> ()\n    %u = \"dl.neg\"(%t) : (f32) -> f32\n")]),
        on_generic(&["kernel.yield must be the last op of the body"])
    );
    assert_eq!(
        gemv_errors(&[(yield_t, "    %c = \"dl.cmp\"(%t, %acc) {predicate = \"lt\"} : (f32, f32) -> i1\n    \"kernel.yield\"(%c) : (i1) -> ()\n")]),
        on_generic(&["kernel.yield gives i1, the result's element type is f32"])
    );
    assert_eq!(
        gemv_errors(&[(yield_t, "    \"kernel.yield\"(%t, %t) : (f32, f32) -> ()\n")]),
        on_generic(&["kernel.yield gives 2 value(s), one per result: expected 1"])
    );
    // Several results need `dtypes`, one map each, and no reduction.
    assert_eq!(
        gemv_errors(&[(yield_t, "    \"kernel.yield\"(%t, %t) : (f32, f32) -> ()\n"), ("{dtype = f32, indexing", "{dtype = f32, dtypes = [f32, f32], indexing")]),
        on_generic(&["a kernel with reduction iterators has one result, not 2"])
    );
    assert_eq!(gemv_errors(&[("{dtype = f32, indexing", "{dtype = f32, dtypes = [f64, f32], indexing")]), on_generic(&["'dtypes' starts with f64, but 'dtype' is f32: the first result's type is both"]));
    let body = "    %s = \"dl.mul\"(%a, %b) : (f32, f32) -> f32\n    %t = \"dl.add\"(%acc, %s) : (f32, f32) -> f32\n";
    assert_eq!(
        gemv_errors(&[(body, ""), (yield_t, "")]),
        on_generic(&["the body is empty; it must end with kernel.yield", "block ^bb0 of a region is empty; MLIR requires at least one op in every block"])
    );
}

#[test]
fn kernel_bodies_hold_only_elementwise_ops_and_constants() {
    assert_eq!(
        gemv_errors(&[(r#"%s = "dl.mul"(%a, %b) : (f32, f32) -> f32"#, r#"%s = "dl.softmax"(%a) {axis = 0} : (f32) -> f32"#)]),
        [
            format!("{GENERIC}'dl.softmax' is not allowed in a kernel body (elementwise ops and kernel.constant only)"),
            r#"in @f, op '%s = "dl.softmax"': operand #0 must be a tensor, got f32"#.to_string(),
        ]
    );
    assert_eq!(
        gemv_errors(&[(r#"%s = "dl.mul"(%a, %b) : (f32, f32) -> f32"#, r#"%s = "kernel.matmul"(%a, %b) : (f32, f32) -> f32"#)]),
        [
            format!("{GENERIC}'kernel.matmul' is not allowed in a kernel body (elementwise ops and kernel.constant only)"),
            r#"in @f, op '%s = "kernel.matmul"': operand #0 must be a tensor, got f32"#.to_string(),
        ]
    );
}

#[test]
fn kernel_maps_fit_the_iteration_space() {
    assert_eq!(
        gemv_errors(&[("-> (d0)>]", "-> (d0, d1)>]")]),
        on_generic(&["a reduction dim must not index the result: d1 in (d0, d1) -> (d0, d1)"])
    );
    assert_eq!(gemv_errors(&[("-> (d0)>]", "-> ()>]")]), on_generic(&["every parallel dim must index the result: d0 in (d0, d1) -> ()"]));
    assert_eq!(gemv_errors(&[("-> (d0)>]", "-> (d0 + 1)>]")]), on_generic(&["the result's map (d0, d1) -> (d0 + 1) must pick distinct dims"]));
    assert_eq!(
        gemv_errors(&[("affine_map<(d0, d1) -> (d1)>", "affine_map<(d0) -> (d0)>")]),
        on_generic(&["indexing map (d0) -> (d0) has 1 dims, the iteration space 2"])
    );
    assert_eq!(
        gemv_errors(&[(", affine_map<(d0, d1) -> (d1)>", "")]),
        on_generic(&["2 indexing maps for 2 operand(s) and one result: expected 3"])
    );
    assert_eq!(gemv_errors(&[(r#""reduction"]"#, r#""bogus"]"#)]), on_generic(&[r#"iterator 'bogus' must be "parallel" or "reduction""#]));
    assert_eq!(gemv_errors(&[("sizes = [2, 3]", "sizes = [2]")]), on_generic(&["1 sizes for 2 iterators"]));
    assert_eq!(
        gemv_errors(&[("affine_map<(d0, d1) -> (d0, d1)>", "affine_map<(d0, d1) -> (d1, d0)>")]),
        on_generic(&["operand #0 tensor<2x3xf32>: dim 0 is 2, but its map reads it with d1 of size 3"])
    );
}

#[test]
fn unpadded_reads_stay_in_bounds() {
    assert_eq!(
        gemv_errors(&[("(d0, d1) -> (d1)>", "(d0, d1) -> (d1 + 1)>")]),
        on_generic(&["operand #1 tensor<3xf32>: its map's result 0 (d1 + 1) ranges over [1, 3], outside [0, 3)"])
    );
    assert_eq!(
        gemv_errors(&[("(d0, d1) -> (d1)>", "(d0, d1) -> (d1 * 2 - 1)>")]),
        on_generic(&["operand #1 tensor<3xf32>: its map's result 0 (d1 * 2 - 1) ranges over [-1, 3], outside [0, 3)"])
    );
    // Padded, the same reads are fine; only existing operands can be padded.
    assert_eq!(gemv_errors(&[("(d0, d1) -> (d1)>", "(d0, d1) -> (d1 * 2 - 1)>"), ("sizes = [2, 3]}", "padded = [1], sizes = [2, 3]}")]), Vec::<String>::new());
    assert_eq!(gemv_errors(&[("sizes = [2, 3]}", "padded = [2], sizes = [2, 3]}")]), on_generic(&["padded operand #2 does not exist"]));
}

#[test]
fn kernel_yield_only_ends_a_kernel_body() {
    assert_eq!(
        gemv_errors(&[("  return %y", "  \"kernel.yield\"(%y) : (tensor<2xf32>) -> ()\n  return %y")]),
        [r#"in @f, op '"kernel.yield"': 'kernel.yield' is only allowed at the end of a kernel.generic body"#]
    );
}

#[test]
fn only_kernel_generic_takes_a_region_of_one_block() {
    let matmul = "  %m = \"kernel.matmul\"(%x, %x) ({\n    \"kernel.yield\"(%x) : (tensor<2x3xf32>) -> ()\n  }) {transpose_b = true} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x2xf32>\n  return %y";
    assert_eq!(gemv_errors(&[("  return %y", matmul)]), [r#"in @f, op '%m = "kernel.matmul"': 'kernel.matmul' takes no regions"#]);
    // No body, two bodies, a body of two blocks.
    let close = "  }) {dtype";
    let no_body = r#"func.func @f(%x: tensor<2x3xf32>, %v: tensor<3xf32>) -> tensor<2xf32> {
  %y = "kernel.generic"(%x, %v) {dtype = f32, indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0)>], iterators = ["parallel", "reduction"], sizes = [2, 3]} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2xf32>
  return %y : tensor<2xf32>
}"#;
    assert_eq!(errors_of(no_body), on_generic(&["kernel.generic has one body region, found 0"]));
    assert_eq!(
        gemv_errors(&[(close, "  }, {\n    \"kernel.yield\"(%x) : (tensor<2x3xf32>) -> ()\n  }) {dtype")]),
        on_generic(&["kernel.generic has one body region, found 2"])
    );
    assert_eq!(
        gemv_errors(&[(close, "  ^bb1(%c: f32):\n    \"kernel.yield\"(%c) : (f32) -> ()\n  }) {dtype")]),
        on_generic(&["the body region has one block, found 2"])
    );
}

#[test]
fn kernel_contractions_take_one_bias_value_per_channel() {
    let mm = |ops: &str, types: &str| {
        let src = format!(
            "func.func @f(%x: tensor<?x4xf32>, %w: tensor<3x4xf32>, %b: tensor<3xf32>, %c: tensor<4xf32>, %d: tensor<1x3xf32>) {{\n  %m = \"kernel.matmul\"({ops}) {{relu = true, transpose_b = true}} : ({types}) -> tensor<?x3xf32>\n  return\n}}"
        );
        errors_of(&src)
    };
    assert_eq!(mm("%x, %w, %b", "tensor<?x4xf32>, tensor<3x4xf32>, tensor<3xf32>"), Vec::<String>::new());
    assert_eq!(mm("%x, %w, %d", "tensor<?x4xf32>, tensor<3x4xf32>, tensor<1x3xf32>"), Vec::<String>::new());
    assert_eq!(
        mm("%x, %w, %c", "tensor<?x4xf32>, tensor<3x4xf32>, tensor<4xf32>"),
        [r#"in @f, op '%m = "kernel.matmul"': the bias tensor<4xf32> must hold one f32 per channel of the result tensor<?x3xf32> (dim 1)"#]
    );
    assert_eq!(
        mm("%x, %w, %b, %b", "tensor<?x4xf32>, tensor<3x4xf32>, tensor<3xf32>, tensor<3xf32>"),
        [r#"in @f, op '%m = "kernel.matmul"': takes 2 operands and an optional bias, got 4"#]
    );
    let conv = |bias: &str| {
        errors_of(&format!(
            "func.func @f(%x: tensor<?x1x5x5xf32>, %w: tensor<2x1x3x3xf32>, %b: {bias}) {{\n  %y = \"kernel.conv2d\"(%x, %w, %b) {{relu = true}} : (tensor<?x1x5x5xf32>, tensor<2x1x3x3xf32>, {bias}) -> tensor<?x2x3x3xf32>\n  return\n}}"
        ))
    };
    assert_eq!(conv("tensor<2x1x1xf32>"), Vec::<String>::new());
    assert_eq!(conv("tensor<1x2x1x1xf32>"), Vec::<String>::new());
    assert_eq!(
        conv("tensor<2xf32>"),
        [r#"in @f, op '%y = "kernel.conv2d"': the bias tensor<2xf32> must hold one f32 per channel of the result tensor<?x2x3x3xf32> (dim 1)"#]
    );
}

/// `kernel.constant` is a scalar: like a scalar argument, it has no place
/// at the function level.
#[test]
fn kernel_constant_only_appears_in_a_kernel_body() {
    let errs = gemv_errors(&[("  return %y", "  %k = \"kernel.constant\"() {dtype = f32, value = 1.0} : () -> f32\n  return %y")]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("kernel.constant"), "{errs:?}");
}

/// Built in memory, a kernel can name values and blocks that do not exist;
/// the verifier says so for every other op (see the tests above).
#[test]
fn kernels_with_dangling_ids_are_errors_not_panics() {
    let m = parse_module(GEMV).unwrap();
    let f = &m.functions[0];
    let g = f.body_ops()[0];
    let body = f.op(g).regions[0].blocks[0];
    let yield_op = *f.block(body).ops.last().unwrap();
    let mut cases = Vec::new();
    // An operand that does not exist (with a map for it, so the attributes read).
    let mut h = f.clone();
    h.op_mut(g).operands.push(ValueId(99));
    let mut maps = h.op(g).attrs["indexing_maps"].clone();
    if let Attr::Array(v) = &mut maps {
        v.insert(0, v[1].clone());
    }
    h.op_mut(g).attrs.insert("indexing_maps".into(), maps);
    cases.push(h);
    // A body block that does not exist.
    let mut h = f.clone();
    h.op_mut(g).regions[0].blocks[0] = BlockId(42);
    cases.push(h);
    // A yielded value that does not exist.
    let mut h = f.clone();
    h.op_mut(yield_op).operands = vec![ValueId(77)];
    cases.push(h);
    for h in cases {
        let errs = errors(&one_fn(h));
        assert!(errs.iter().any(|e| e.contains("does not exist")), "{errs:?}");
    }
}
