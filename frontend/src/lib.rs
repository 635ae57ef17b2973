//! dlc's model language: the `.dl` files a person writes.
//!
//! ```text
//! source ──lexer──▶ tokens ──parser──▶ ast::File ──resolve──▶ names checked
//!        ──lower──▶ dl-dialect `@forward` (+ ModelInfo)  ──train──▶ TrainSpec
//! ```
//!
//! - [`parse`] never fails: it returns a tree and the syntax errors, recovering
//!   so that several mistakes are reported at once.
//! - [`compile`] checks names, shapes and dtypes and lowers the model. The
//!   standard layers (`Linear`, `Conv2d`, …) are written in the language
//!   itself ([`PRELUDE`]); builtins map to registry ops through one table
//!   ([`builtins`]); shape rules are the registry's, reported at the source.
//! - Every diagnostic has a code ([`codes`]) and renders rustc-style.
//!
//! Invariants: no input makes the frontend panic or overflow its stack
//! (nesting is bounded, and lowering runs on its own large stack); the IR it
//! builds passes the registry's shape rules by construction.
#![deny(missing_docs)]

pub mod ast;
pub mod builtins;
pub mod diag;
mod dump;
pub mod init;
pub mod lexer;
mod lower;
mod parser;
mod resolve;
mod suggest;
pub mod train;
mod value;

pub use diag::{Diagnostic, Diagnostics, codes};
pub use dump::dump_ast;
pub use parser::MAX_DEPTH;
pub use train::{DataFormat, DataSpec, Label, LabelSource, LossKind, LossSpec, Optimizer, OptimizerSpec, Reduction, TrainSpec};

use dlc_ir::{Init, Module, Signature, TensorType};
use std::sync::OnceLock;

/// The standard layers, in the language itself.
pub const PRELUDE: &str = include_str!("prelude.dl");

/// The stack lowering runs on: inlining nests calls inside expressions, and a
/// reserved stack costs address space only.
const STACK_BYTES: usize = 256 << 20;

/// A compiled model: its syntax tree, its IR and what a runner needs to know.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The parsed file.
    pub ast: ast::File,
    /// One function, `@forward`: inputs then parameters in, outputs out.
    pub module: Module,
    /// The model's interface and training setup.
    pub model: ModelInfo,
}

/// A model's interface.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The model's name.
    pub name: String,
    /// Inputs in declaration order (the batch dim is `Dim::Dynamic`).
    pub inputs: Vec<(String, TensorType)>,
    /// Parameters in definition order, named like PyTorch's state dict.
    pub params: Vec<(String, TensorType, Init)>,
    /// Outputs in declaration order.
    pub outputs: Vec<(String, TensorType)>,
    /// The checked `train` block, if the model has one.
    pub train: Option<TrainSpec>,
}

/// Parses a `.dl` file; never fails and never panics. Diagnostics carry
/// spans only; wrap them in [`Diagnostics`] with `file_name` to render them.
pub fn parse(file_name: &str, src: &str) -> (ast::File, Vec<Diagnostic>) {
    let _ = file_name;
    parser::parse_file(src)
}

/// Parses, checks and lowers a `.dl` file.
pub fn compile(file_name: &str, src: &str) -> Result<Compiled, Diagnostics> {
    let outcome = std::thread::scope(|s| {
        let worker = std::thread::Builder::new().name("dlc-frontend".into()).stack_size(STACK_BYTES);
        worker.spawn_scoped(s, || compile_here(file_name, src)).ok().map(|h| h.join())
    });
    match outcome {
        Some(Ok(result)) => result,
        Some(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(internal_error(file_name, src, format!("the frontend panicked: {what}")))
        }
        // No thread available: run here.
        None => compile_here(file_name, src),
    }
}

fn internal_error(file_name: &str, src: &str, message: String) -> Diagnostics {
    Diagnostics {
        file_name: file_name.into(),
        source: src.into(),
        items: vec![
            Diagnostic::new(
                codes::INTERNAL,
                format!("internal compiler error: {message}"),
                0..0,
                "while compiling this file",
            )
            .with_note("this is a bug in dlc, not in the model"),
        ],
    }
}

/// The prelude's syntax tree, parsed once.
fn prelude() -> Result<&'static ast::File, String> {
    static PRELUDE_AST: OnceLock<Result<ast::File, String>> = OnceLock::new();
    PRELUDE_AST
        .get_or_init(|| {
            let (file, diags) = parser::parse_file(PRELUDE);
            if diags.is_empty() {
                Ok(file)
            } else {
                Err(format!("the prelude does not parse: {}", diags[0].message))
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn compile_here(file_name: &str, src: &str) -> Result<Compiled, Diagnostics> {
    let fail = |items: Vec<Diagnostic>| Diagnostics {
        file_name: file_name.into(),
        source: src.into(),
        items,
    };
    let (file, diags) = parser::parse_file(src);
    if !diags.is_empty() {
        return Err(fail(diags));
    }
    let prelude = prelude().map_err(|m| internal_error(file_name, src, m))?;
    let resolved = resolve::resolve(&file, prelude);
    let Some(model) = file.items.iter().find_map(|i| if let ast::Item::Model(m) = i { Some(m) } else { None }) else {
        return Err(fail(resolved));
    };
    // Lowering needs every name resolved; the train block is checked either
    // way (it names outputs and inputs only), so its mistakes show up too.
    let mut diags = Vec::new();
    let lowered = if resolved.is_empty() {
        lower::lower_model(&file, model, prelude, src, PRELUDE).map_err(|d| diags.extend(d)).ok()
    } else {
        diags.extend(resolved);
        None
    };
    let view = train::ModelView {
        inputs: model_names(
            model,
            |s| if let ast::StmtKind::Input { name, .. } = s { Some(name) } else { None },
            lowered.as_ref().map(|l| &l.inputs),
        ),
        outputs: model_names(
            model,
            |s| if let ast::StmtKind::Output { name, .. } = s { Some(name) } else { None },
            lowered.as_ref().map(|l| &l.outputs),
        ),
    };
    let mut spec = None;
    if let Some(block) = model
        .body
        .iter()
        .find_map(|s| if let ast::StmtKind::Train(t) = &s.kind { Some(t) } else { None })
    {
        let (s, d) = train::check_train(block, &view);
        spec = s;
        diags.extend(d);
    }
    let Some(lowered) = lowered.filter(|_| diags.is_empty()) else {
        return Err(fail(diags));
    };
    if let Err(e) = Signature::of(&lowered.func) {
        return Err(internal_error(
            file_name,
            src,
            format!("the lowered function breaks the signature conventions: {e}"),
        ));
    }
    let mut module = Module::new();
    module.functions.push(lowered.func);
    let model = ModelInfo {
        name: model.name.name.clone(),
        inputs: lowered.inputs,
        params: lowered.params,
        outputs: lowered.outputs,
        train: spec,
    };
    Ok(Compiled { ast: file, module, model })
}

/// The names a model declares with one kind of statement, with types if lowered.
fn model_names(
    model: &ast::Model,
    pick: impl Fn(&ast::StmtKind) -> Option<&ast::Ident>,
    typed: Option<&Vec<(String, TensorType)>>,
) -> Vec<(String, Option<TensorType>)> {
    model
        .body
        .iter()
        .filter_map(|s| pick(&s.kind))
        .map(|n| (n.name.clone(), typed.and_then(|t| t.iter().find(|(m, _)| *m == n.name)).map(|(_, t)| t.clone())))
        .collect()
}
