//! Print → parse → print is byte-identical, parsing gives back the same
//! module, and what verified before still verifies.

mod common;

use common::{assert_same, cases, every_op};
use dlc_ir::{OpKind, parse_module, print_module, verify_module};
use std::collections::HashSet;

#[test]
fn every_case_round_trips_exactly() {
    for case in cases() {
        if case.verifies {
            verify_module(&case.module).unwrap_or_else(|e| panic!("{}: built module does not verify: {e:?}", case.name));
        }
        let text = print_module(&case.module);
        let parsed = parse_module(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", case.name));
        assert_same(&case.module, &parsed);
        let again = print_module(&parsed);
        assert_eq!(text, again, "{}: second print differs", case.name);
        if case.verifies {
            verify_module(&parsed).unwrap_or_else(|e| panic!("{}: parsed module does not verify: {e:?}", case.name));
        }
    }
}

/// A new op must get a round-trip case: this fails until `every_op` uses it.
#[test]
fn every_registered_op_is_covered() {
    let f = every_op();
    let used: HashSet<OpKind> = f.walk().into_iter().map(|o| f.op(o).kind).collect();
    let missing: Vec<&str> = OpKind::ALL.iter().filter(|k| !used.contains(k)).map(|k| k.name()).collect();
    assert!(missing.is_empty(), "add these ops to every_op() in tests/common/mod.rs: {missing:?}");
}

#[test]
fn the_readme_example_prints_as_documented() {
    let text = print_module(&dlc_ir::Module { functions: vec![common::mlp()] });
    let expected = r#"module {
  func.func @forward(%x: tensor<?x784xf32> {dl.role = "input"}, %fc1.weight: tensor<256x784xf32> {dl.init = {high = 0.0357, kind = "uniform", low = -0.0357}, dl.role = "param"}, %fc1.bias: tensor<256xf32> {dl.init = {kind = "zeros"}, dl.role = "param"}) -> (tensor<?x256xf32>, tensor<?x256xf32>) attributes {dl.outputs = ["logits", "probs"]} {
    %0 = "dl.matmul"(%x, %fc1.weight) {transpose_b = true} : (tensor<?x784xf32>, tensor<256x784xf32>) -> tensor<?x256xf32>
    %1 = "dl.add"(%0, %fc1.bias) : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>
    %logits = "dl.relu"(%1) : (tensor<?x256xf32>) -> tensor<?x256xf32>
    %2 = "dl.softmax"(%logits) {axis = 1} : (tensor<?x256xf32>) -> tensor<?x256xf32>
    return %logits, %2 : tensor<?x256xf32>, tensor<?x256xf32>
  }
}
"#;
    assert_eq!(text, expected);
}

#[test]
fn regions_and_multi_results_print_in_mlir_form() {
    let m = dlc_ir::Module { functions: vec![common::regions(), common::multi_result()] };
    let text = print_module(&m);
    for line in [
        "    %1 = \"dl.tanh\"(%0) ({",
        "    ^bb0(%a: tensor<4xf32>):",
        "      %2 = \"dl.add\"(%a, %0) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>",
        "    ^bb1(%4: index, %s: f64):",
        "    }, {",
        "      %inner.exp = \"dl.exp\"(%0) ({",
        "      ^bb0(%6: tensor<4xf32>):",
        "    }) : (tensor<4xf32>) -> tensor<4xf32>",
        "    %0:2 = \"dl.neg\"(%x) : (tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)",
        "    %p, %1, %q = \"dl.add\"(%0#1, %0#0)",
        "    %named.group:2 = \"dl.abs\"(%q)",
        "    return %1, %named.group#1 : tensor<4xf32>, tensor<4xf32>",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "missing line {line:?} in\n{text}");
    }
}

#[test]
fn bare_functions_parse_without_the_module_wrapper() {
    let m = parse_module("func.func @f(%a: tensor<2xf32>) -> tensor<2xf32> {\n  return %a : tensor<2xf32>\n}\n// trailing comment\n").unwrap();
    assert_eq!(m.functions.len(), 1);
    verify_module(&m).unwrap();
    assert_eq!(dlc_ir::print_function(&m.functions[0]), "func.func @f(%a: tensor<2xf32>) -> tensor<2xf32> {\n  return %a : tensor<2xf32>\n}\n");
}

#[test]
fn the_generic_return_form_is_accepted() {
    let m = parse_module("func.func @f(%a: tensor<2xf32>) -> tensor<2xf32> {\n  \"func.return\"(%a) : (tensor<2xf32>) -> ()\n}").unwrap();
    verify_module(&m).unwrap();
    assert!(print_module(&m).contains("    return %a : tensor<2xf32>\n"));
}
