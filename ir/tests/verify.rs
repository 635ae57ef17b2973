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
        [r#"in @f, op '%2 = "dl.neg"': operand #0 (%inner) is not visible here: it is defined in another block or region"#]
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
    assert_eq!(errs[0], r#"in @f, op '"dl.constant"': missing required attribute 'value' (the elements and their static type)"#);
    assert_eq!(errs[1], r#"in @f, op '%0 = "dl.neg"': block #1 is listed in more than one region"#);
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
        [r#"in @f, op '%y = "dl.neg"': block ^bb0 of a region is empty; MLIR requires at least one op in every block"#]
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
    assert_eq!(errors_of(&src), ["in @f, op 'return': 'return' is only allowed at the end of the function body"]);
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
