//! Helpers shared by the integration tests.
#![allow(dead_code)]

use dlc_frontend::{Compiled, compile};
use dlc_ir::{Attr, Function, OpKind};

/// The example files, by name.
pub const EXAMPLES: [&str; 6] = ["mlp", "mnist_cnn", "digits_mlp", "logistic", "keras_dense", "fcn"];

/// The text of `examples/<name>.dl`.
pub fn example(name: &str) -> String {
    let path = format!("{}/../examples/{name}.dl", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Compiles (and verifies) or panics with the rendered diagnostics.
pub fn compiled(name: &str, src: &str) -> Compiled {
    let c = compile(name, src).unwrap_or_else(|d| panic!("{name} does not compile:\n{}", d.render(false)));
    dlc_ir::verify_module(&c.module).unwrap_or_else(|e| panic!("{name}: the IR does not verify: {e:?}"));
    c
}

/// The rendered diagnostics of a source that must not compile.
pub fn rendered(src: &str) -> String {
    match compile("model.dl", src) {
        Ok(_) => panic!("expected diagnostics for:\n{src}"),
        Err(d) => d.render(false),
    }
}

/// The diagnostic codes of a source that must not compile.
pub fn codes(src: &str) -> Vec<&'static str> {
    match compile("model.dl", src) {
        Ok(_) => panic!("expected diagnostics for:\n{src}"),
        Err(d) => d.items.iter().map(|i| i.code).collect(),
    }
}

/// The ops of `@forward` in order, as registry kinds.
pub fn kinds(f: &Function) -> Vec<OpKind> {
    f.body_ops().iter().map(|&o| f.op(o).kind).collect()
}

/// The function of a compiled model.
pub fn forward(c: &Compiled) -> &Function {
    c.module.function("forward").expect("@forward")
}

/// The value of a bool attribute of op `i` of kind `k`.
pub fn bool_attr(f: &Function, k: OpKind, i: usize, name: &str) -> Option<bool> {
    let op = f.body_ops().iter().map(|&o| f.op(o)).filter(|o| o.kind == k).nth(i)?;
    op.attrs.get(name).and_then(Attr::as_bool)
}
