//! The `train { … }` block, checked: what to minimize, how, on which data.
//!
//! The block is not lowered to IR here (autodiff and the optimizer update are
//! passes); the frontend checks it against the model and hands the result to
//! the trainer as a [`TrainSpec`] with PyTorch's defaults filled in and spans
//! kept, so a later failure (a missing data file) can still point at the source.
//!
//! ```text
//! train {
//!     data: csv("data/digits.csv", label: "label", test: 0.2, scale: 1 / 16)
//!     loss: cross_entropy(logits, label)       // output, then label
//!     optimizer: adam(lr: 1e-3)
//!     epochs: 20, batch_size: 32, seed: 0, shuffle: true
//! }
//! ```
//!
//! The loss's label is either a declared model input (`input y: f32[batch, 1]`)
//! or the data's label column, named as in `data: csv(…, label: "label")`;
//! in the second case its type follows from the loss (class indices `i64`
//! for `cross_entropy`, the output's own type otherwise).

mod check;
mod data;
mod optim;

pub(crate) use check::{ModelView, check_train};

use crate::ast::Span;
pub use dlc_ir::train::{LossKind, Optimizer, Reduction};
use dlc_ir::TensorType;

/// A checked train block.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSpec {
    /// The loss.
    pub loss: LossSpec,
    /// The optimizer with every hyper-parameter.
    pub optimizer: OptimizerSpec,
    /// Passes over the training data (default 1).
    pub epochs: u64,
    /// Examples per step (default 32; the last batch may be smaller).
    pub batch_size: u64,
    /// Seed for initialization and shuffling (default 0).
    pub seed: u64,
    /// Reshuffle the training data every epoch (default true).
    pub shuffle: bool,
    /// Where the data comes from, if the block says.
    pub data: Option<DataSpec>,
    /// The model inputs the data's features feed: every input but the label.
    pub features: Vec<String>,
    /// The whole block.
    pub span: Span,
    /// Each entry's key and span, in source order.
    pub entry_spans: Vec<(String, Span)>,
}

/// A loss: `cross_entropy(logits, label, reduction: "mean")`.
#[derive(Clone, Debug, PartialEq)]
pub struct LossSpec {
    /// Which loss.
    pub kind: LossKind,
    /// The model output it reads.
    pub output: String,
    /// The target it compares with.
    pub label: Label,
    /// Mean or sum over the batch.
    pub reduction: Reduction,
    /// The loss expression.
    pub span: Span,
}

/// The target of a loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// Its name: a model input, or the data's label column.
    pub name: String,
    /// Where its values come from.
    pub source: LabelSource,
    /// Its type (declared, or implied by the loss for a column).
    pub ty: TensorType,
}

/// Where label values come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LabelSource {
    /// A declared model input.
    Input,
    /// The data's label column (`data: csv(…, label: "…")`).
    Column,
}

/// An optimizer and where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerSpec {
    /// The optimizer with its hyper-parameters.
    pub kind: Optimizer,
    /// The optimizer expression.
    pub span: Span,
}

/// Where training data comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    /// The file format.
    pub format: DataFormat,
    /// The file (relative paths are relative to the working directory).
    pub path: String,
    /// The path literal, for "cannot read" diagnostics.
    pub path_span: Span,
    /// csv: the label column; npz: the labels array; idx: the labels file.
    pub label: Option<String>,
    /// npz: the features array.
    pub features: Option<String>,
    /// The fraction of rows used for training; the rest is held out for
    /// testing (`split: 0.8`, or `test: 0.2`). `None`: no held-out set.
    pub split: Option<f64>,
    /// Split each class in the same proportion (scikit-learn's `stratify`).
    pub stratify: bool,
    /// Every feature is multiplied by this (`scale: 1 / 255` for 0..255 pixels).
    pub scale: Option<f64>,
    /// Standardize each feature to mean 0, std 1 (statistics of the training rows).
    pub standardize: bool,
    /// Every label is multiplied by this (regression targets far from unit scale).
    pub label_scale: Option<f64>,
    /// The data expression.
    pub span: Span,
}

/// Data file formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DataFormat {
    /// CSV with a header row (optionally gzip-compressed, `.csv.gz`).
    Csv,
    /// NumPy `.npz` archive.
    Npz,
    /// MNIST's IDX files (images, with `label:` naming the labels file).
    Idx,
}
