//! `.npy` files ↔ [`Tensor`]s, with errors that say what was expected.

use dlc_backends::Tensor;
use ndarray::{ArrayD, IxDyn};
use npyz::{NpyFile, Order, WriterBuilder};
use std::path::Path;

/// Why an `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct NpyError {
    /// The file.
    pub path: String,
    /// What went wrong, and what was expected.
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> NpyError {
    NpyError { path: path.display().to_string(), message: message.into() }
}

/// Reads an `.npy` file of f32, f64, i32, i64 or bool in C order.
pub fn read(path: &Path) -> Result<Tensor, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    parse(path, &bytes)
}

/// Parses `.npy` bytes (`path` only names the source in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Tensor, NpyError> {
    let npy = NpyFile::new(bytes).map_err(|e| err(path, format!("not a valid .npy file ({e})")))?;
    if npy.order() != Order::C {
        return Err(err(path, "Fortran-ordered arrays are not supported; save with np.ascontiguousarray"));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr();
    let short = |e: std::io::Error| err(path, format!("data is truncated or unreadable ({e}); expected {} elements of {descr}", shape.iter().product::<usize>()));
    macro_rules! read_as {
        ($t:ty, $variant:ident) => {{
            let v: Vec<$t> = npy.into_vec().map_err(short)?;
            let a = ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| err(path, format!("shape mismatch: {e}")))?;
            Ok(Tensor::$variant(a))
        }};
    }
    match descr.as_str() {
        "'<f4'" => read_as!(f32, F32),
        "'<f8'" => read_as!(f64, F64),
        "'<i4'" => read_as!(i32, I32),
        "'<i8'" => read_as!(i64, I64),
        "'|b1'" => read_as!(bool, I1),
        other => Err(err(path, format!("unsupported dtype {other}; expected float32, float64, int32, int64 or bool (little-endian)"))),
    }
}

/// Encodes a tensor as `.npy` bytes.
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    fn write<T: npyz::AutoSerialize + Clone>(a: &ArrayD<T>) -> Vec<u8> {
        let mut out = Vec::new();
        let shape: Vec<u64> = a.shape().iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut out)
            .begin_nd()
            .expect("writing to a Vec cannot fail");
        w.extend(a.iter().cloned()).expect("writing to a Vec cannot fail");
        w.finish().expect("writing to a Vec cannot fail");
        out
    }
    match t {
        Tensor::F32(a) => write(a),
        Tensor::F64(a) => write(a),
        Tensor::I32(a) => write(a),
        Tensor::I64(a) => write(a),
        Tensor::I1(a) => write(a),
    }
}

/// Writes a tensor to an `.npy` file atomically.
pub fn write(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    super::write_atomic(path, &to_bytes(t)).map_err(|e| err(path, format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        let p = Path::new("t.npy");
        let cases = [
            Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, -2.5, 3.0, 0.0, f32::NAN, 6.0]).unwrap()),
            Tensor::F64(ArrayD::from_shape_vec(IxDyn(&[]), vec![0.1]).unwrap()),
            Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1, -2, 3]).unwrap()),
            Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![7, 8]).unwrap()),
            Tensor::I1(ArrayD::from_shape_vec(IxDyn(&[2]), vec![true, false]).unwrap()),
        ];
        for t in cases {
            let back = parse(p, &to_bytes(&t)).unwrap();
            assert_eq!(back.dtype(), t.dtype());
            assert_eq!(back.shape(), t.shape());
            assert_eq!(to_bytes(&back), to_bytes(&t));
        }
    }

    #[test]
    fn bad_files_get_clear_errors() {
        let p = Path::new("x.npy");
        let e = parse(p, b"hello").unwrap_err().to_string();
        assert!(e.starts_with("x.npy: not a valid .npy file"), "{e}");
        let good = to_bytes(&Tensor::F32(ArrayD::zeros(IxDyn(&[4, 4]))));
        let e = parse(p, &good[..good.len() - 3]).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("16 elements"), "{e}");
        // A little-endian u8 array is a dtype we do not take.
        let mut u8file = to_bytes(&Tensor::I1(ArrayD::from_elem(IxDyn(&[2]), true)));
        let pos = u8file.windows(3).position(|w| w == b"|b1").unwrap();
        u8file[pos..pos + 3].copy_from_slice(b"|u1");
        let e = parse(p, &u8file).unwrap_err().to_string();
        assert!(e.contains("unsupported dtype '|u1'"), "{e}");
    }
}
