//! The shipped examples: each compiles cleanly, verifies, and its AST dump and
//! IR are snapshotted.

mod common;

use common::*;
use dlc_frontend::{dump_ast, parse};

#[test]
fn every_example_compiles_verifies_and_says_what_it_is() {
    for name in EXAMPLES {
        let src = example(name);
        assert!(src.starts_with("// "), "{name}.dl must start with a comment saying what it is");
        let (_, d) = parse(name, &src);
        assert!(d.is_empty(), "{name}: {d:?}");
        let c = compiled(name, &src);
        dlc_ir::verify_module(&c.module).unwrap_or_else(|e| panic!("{name} does not verify: {e:?}"));
        assert_eq!(c.module.functions.len(), 1);
        assert!(c.model.train.is_some(), "{name} has a train block");
    }
}

#[test]
fn ast_dump_of_the_cnn() {
    let (file, _) = parse("mnist_cnn.dl", &example("mnist_cnn"));
    insta::assert_snapshot!("ast_mnist_cnn", dump_ast(&file));
}

#[test]
fn ast_dump_of_the_prelude() {
    let (file, d) = parse("prelude.dl", dlc_frontend::PRELUDE);
    assert!(d.is_empty());
    insta::assert_snapshot!("ast_prelude", dump_ast(&file));
}

#[test]
fn ir_of_every_example() {
    for name in EXAMPLES {
        let c = compiled(name, &example(name));
        insta::assert_snapshot!(format!("ir_{name}"), dlc_ir::print_module(&c.module));
    }
}

#[test]
fn printed_ir_parses_back_to_the_same_text() {
    for name in EXAMPLES {
        let c = compiled(name, &example(name));
        let text = dlc_ir::print_module(&c.module);
        let again = dlc_ir::parse_module(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(dlc_ir::print_module(&again), text, "{name}");
    }
}
