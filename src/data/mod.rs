//! Training data: loading data sets (CSV, `.npz`, MNIST idx), splitting them,
//! and cutting them into batches in a given or seeded order.
//!
//! A [`Dataset`] is rows of f32 features and one label value per row. Labels are
//! kept as f64 and only become class indices or float targets when a batch is
//! made for a particular loss, so one file serves classification and regression.

mod csv;
mod idx;
mod npz;
pub mod split;

use std::path::{Path, PathBuf};

/// Why data could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DataError {
    /// The file (or the data set's name).
    pub path: String,
    /// What went wrong, and what was expected.
    pub message: String,
}

pub(crate) fn err(path: &Path, message: impl Into<String>) -> DataError {
    DataError { path: path.display().to_string(), message: message.into() }
}

/// The file formats dlc reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row; `.csv` or `.csv.gz`.
    Csv,
    /// NumPy `.npz` holding arrays `x` (features) and `y` (labels).
    Npz,
    /// MNIST idx files: images (`…-idx3-ubyte`) with a labels file beside them.
    Idx,
}

/// Where data comes from and how to read it.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    /// The data file (for idx: the images file).
    pub path: PathBuf,
    /// Its format; `None` picks it from the file name.
    pub format: Option<Format>,
    /// The CSV label column (default `label`).
    pub label: String,
    /// For idx: the labels file.
    pub labels_path: Option<PathBuf>,
    /// Multiply every feature by this (e.g. 1/255 for pixels).
    pub scale: Option<f64>,
    /// For npz: the features and labels array names (default `x`, `y`).
    pub arrays: (String, String),
    /// Multiply every label by this (regression targets far from unit scale).
    pub label_scale: Option<f64>,
}

impl DataSpec {
    /// A spec for `path` with the format picked from its name and no scaling.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataSpec { path: path.into(), format: None, label: "label".into(), labels_path: None, scale: None, arrays: ("x".into(), "y".into()), label_scale: None }
    }

    /// The format, from the spec or the file name.
    pub fn format(&self) -> Result<Format, DataError> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        let name = self.path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            Ok(Format::Csv)
        } else if name.ends_with(".npz") {
            Ok(Format::Npz)
        } else if name.contains("idx") || name.ends_with("-ubyte") || name.ends_with("-ubyte.gz") {
            Ok(Format::Idx)
        } else {
            Err(err(&self.path, "cannot tell the data format from the file name; expected .csv, .csv.gz, .npz or an MNIST idx file"))
        }
    }
}

/// Rows of features with one label each.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Features, row-major: `len × width`.
    pub x: Vec<f32>,
    /// Features per row.
    pub width: usize,
    /// One label (class index or target value) per row.
    pub y: Vec<f64>,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Per-feature mean and standard deviation (population, as scikit-learn's
    /// StandardScaler); a constant feature gets a deviation of 1.
    pub fn moments(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.len().max(1) as f64;
        let mut mean = vec![0.0; self.width];
        for row in self.x.chunks(self.width) {
            row.iter().zip(&mut mean).for_each(|(&v, m)| *m += v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; self.width];
        for row in self.x.chunks(self.width) {
            row.iter().zip(&mean).zip(&mut var).for_each(|((&v, m), s)| *s += (v as f64 - m).powi(2));
        }
        let std = var.iter().map(|s| (s / n).sqrt()).map(|s| if s > 0.0 { s } else { 1.0 }).collect();
        (mean, std)
    }

    /// Applies `(x - mean) / std` per feature.
    pub fn standardize(&mut self, mean: &[f64], std: &[f64]) {
        for row in self.x.chunks_mut(self.width) {
            for ((v, m), s) in row.iter_mut().zip(mean).zip(std) {
                *v = ((*v as f64 - m) / s) as f32;
            }
        }
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(indices.len() * self.width);
        for &i in indices {
            x.extend_from_slice(&self.x[i * self.width..(i + 1) * self.width]);
        }
        Dataset { x, width: self.width, y: indices.iter().map(|&i| self.y[i]).collect() }
    }
}

/// Loads a data set; an empty one is an error.
pub fn load(spec: &DataSpec) -> Result<Dataset, DataError> {
    let mut d = match spec.format()? {
        Format::Csv => csv::read(&spec.path, &spec.label)?,
        Format::Npz => npz::read(&spec.path, &spec.arrays.0, &spec.arrays.1)?,
        Format::Idx => {
            let labels = spec.labels_path.as_ref().ok_or_else(|| err(&spec.path, "idx images need a labels file"))?;
            idx::read(&spec.path, labels)?
        }
    };
    if d.is_empty() {
        return Err(err(&spec.path, "the data set is empty"));
    }
    if let Some(s) = spec.scale {
        let s = s as f32;
        d.x.iter_mut().for_each(|v| *v *= s);
    }
    if let Some(s) = spec.label_scale {
        d.y.iter_mut().for_each(|v| *v *= s);
    }
    Ok(d)
}

/// Opens a file for reading, through gzip when its name ends in `.gz`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn std::io::Read>, DataError> {
    let f = std::fs::File::open(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let r = std::io::BufReader::new(f);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::GzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}
