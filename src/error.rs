//! The one error type of the facade and the CLI: every failure a user can
//! cause, each with the file it concerns and what was expected.

use crate::io::{npy::NpyError, weights::WeightsError};
use dlc_frontend::Diagnostics;

/// Anything that can go wrong between reading a model and writing its outputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `.dl` source has errors (rendered with source lines and carets).
    #[error("{}", .0.render(false))]
    Diagnostics(Box<Diagnostics>),
    /// IR text that does not parse.
    #[error("{path}:{error}")]
    IrParse {
        /// The file.
        path: String,
        /// Where and why.
        error: dlc_ir::parse::ParseError,
    },
    /// IR that parses but does not verify.
    #[error("{path}: the IR does not verify:\n{}", .errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Verify {
        /// The file.
        path: String,
        /// Every problem found.
        errors: Vec<dlc_ir::verify::VerifyError>,
    },
    /// A bad `.npy` file.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A bad or mismatched weights file.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A data file that cannot be read or does not fit the model.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A bad command-line input (name, shape, dtype).
    #[error("{0}")]
    Input(String),
    /// The model failed at run time (e.g. an index out of range).
    #[error("{0}")]
    Run(#[from] dlc_backends::InterpError),
}

impl Error {
    /// Renders the error for a terminal: diagnostics in color when `color`.
    pub fn render(&self, color: bool) -> String {
        match self {
            Error::Diagnostics(d) => d.render(color),
            other => format!("error: {other}\n"),
        }
    }
}
