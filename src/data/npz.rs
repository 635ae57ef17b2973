//! NumPy `.npz` archives holding a features array (any shape, rows first) and a
//! labels array (one label per row), `x` and `y` unless the model names others.

use super::{Dataset, DataError, err};
use crate::Tensor;
use std::io::Read;
use std::path::Path;

fn to_f64(t: &Tensor) -> Vec<f64> {
    match t {
        Tensor::F32(a) => a.iter().map(|&v| v as f64).collect(),
        Tensor::F64(a) => a.iter().copied().collect(),
        Tensor::I32(a) => a.iter().map(|&v| v as f64).collect(),
        Tensor::I64(a) => a.iter().map(|&v| v as f64).collect(),
        Tensor::I1(a) => a.iter().map(|&v| v as u8 as f64).collect(),
    }
}

fn array(path: &Path, zip: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Result<Tensor, DataError> {
    let names: Vec<String> = zip.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect();
    let mut f = zip.by_name(&format!("{name}.npy")).map_err(|_| {
        err(path, format!("no array '{name}' (the archive holds: {})", names.join(", ")))
    })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| err(path, format!("cannot read array '{name}': {e}")))?;
    crate::io::npy::parse(&path.join(format!("{name}.npy")), &bytes).map_err(|e| err(path, e.message))
}

/// Reads features and labels (arrays named `xs` and `ys`) from an `.npz` file.
pub fn read(path: &Path, xs: &str, ys: &str) -> Result<Dataset, DataError> {
    let f = std::fs::File::open(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| err(path, format!("not a valid .npz file ({e})")))?;
    let (x, y) = (array(path, &mut zip, xs)?, array(path, &mut zip, ys)?);
    let rows = *x.shape().first().ok_or_else(|| err(path, "x must have a row dimension"))?;
    if y.shape().iter().product::<usize>() != rows {
        return Err(err(path, format!("y has {} values for {rows} rows of x (one label per row expected)", y.shape().iter().product::<usize>())));
    }
    let width = x.shape()[1..].iter().product();
    Ok(Dataset { x: to_f64(&x).into_iter().map(|v| v as f32).collect(), width, y: to_f64(&y) })
}
