//! Model weights in safetensors files: parameter name → tensor, by the names
//! the IR gives parameters (`fc1.weight`, `net.0.bias`), which are PyTorch's
//! `state_dict` names, so weights move between the two without renaming.

use dlc_backends::Tensor;
use dlc_ir::{DType, Signature};
use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// Why weights could not be read, written or matched to a model.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct WeightsError {
    /// The weights file.
    pub path: String,
    /// What went wrong, and what was expected.
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> WeightsError {
    WeightsError { path: path.display().to_string(), message: message.into() }
}

fn decode(name: &str, v: &TensorView<'_>) -> Result<Tensor, String> {
    let shape = IxDyn(v.shape());
    let data = v.data();
    macro_rules! le {
        ($t:ty, $n:expr, $variant:ident) => {{
            let vals: Vec<$t> = data.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size"))).collect();
            Tensor::$variant(ArrayD::from_shape_vec(shape, vals).map_err(|e| format!("tensor '{name}': {e}"))?)
        }};
    }
    Ok(match v.dtype() {
        Dtype::F32 => le!(f32, 4, F32),
        Dtype::F64 => le!(f64, 8, F64),
        Dtype::I32 => le!(i32, 4, I32),
        Dtype::I64 => le!(i64, 8, I64),
        Dtype::BOOL => Tensor::I1(ArrayD::from_shape_vec(shape, data.iter().map(|&b| b != 0).collect()).map_err(|e| format!("tensor '{name}': {e}"))?),
        other => return Err(format!("tensor '{name}' has dtype {other:?}; expected F32, F64, I32, I64 or BOOL")),
    })
}

/// Parses safetensors bytes into named tensors, sorted by name.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, WeightsError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| err(path, format!("not a valid safetensors file ({e})")))?;
    st.iter().map(|(name, v)| Ok((name.to_string(), decode(name, &v).map_err(|m| err(path, m))?))).collect()
}

/// Reads a safetensors file.
pub fn read(path: &Path) -> Result<BTreeMap<String, Tensor>, WeightsError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    parse(path, &bytes)
}

fn raw(t: &Tensor) -> (Dtype, Vec<u8>) {
    match t {
        Tensor::F32(a) => (Dtype::F32, a.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Tensor::F64(a) => (Dtype::F64, a.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Tensor::I32(a) => (Dtype::I32, a.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Tensor::I64(a) => (Dtype::I64, a.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Tensor::I1(a) => (Dtype::BOOL, a.iter().map(|&x| x as u8).collect()),
    }
}

/// Encodes named tensors as safetensors bytes (with optional string metadata).
pub fn to_bytes(tensors: &[(String, Tensor)], metadata: Option<std::collections::HashMap<String, String>>) -> Vec<u8> {
    let raws: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(n, t)| { let (d, b) = raw(t); (n.clone(), d, t.shape().to_vec(), b) }).collect();
    let views = raws
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), TensorView::new(*d, s.clone(), b).expect("shape and byte length agree by construction")));
    safetensors::serialize(views, metadata).expect("serializing in-memory tensors cannot fail")
}

/// Writes named tensors to a safetensors file atomically.
pub fn write(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), WeightsError> {
    super::write_atomic(path, &to_bytes(tensors, None)).map_err(|e| err(path, format!("cannot write: {e}")))
}

fn describe(dtype: DType, shape: &[usize]) -> String {
    format!("{dtype}[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// Picks each parameter of `sig` out of `weights`, in argument order, checking
/// names, dtypes and shapes. Missing and unexpected names are both errors: a
/// file with other names is most likely another model's.
pub fn bind(path: &Path, sig: &Signature, mut weights: BTreeMap<String, Tensor>) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (arg, _) in sig.params() {
        let Some(t) = weights.remove(&arg.name) else {
            missing.push(arg.name.clone());
            continue;
        };
        let want: Vec<usize> = arg.ty.shape.iter().map(|d| d.as_static().unwrap_or(0) as usize).collect();
        if t.dtype() != arg.ty.dtype || t.shape() != want.as_slice() {
            return Err(err(
                path,
                format!("parameter '{}' is {} in the file, the model expects {}", arg.name, describe(t.dtype(), t.shape()), describe(arg.ty.dtype, &want)),
            ));
        }
        out.push((arg.name.clone(), t));
    }
    if !missing.is_empty() {
        return Err(err(path, format!("missing parameter(s): {}", missing.join(", "))));
    }
    if !weights.is_empty() {
        let extra: Vec<_> = weights.keys().cloned().collect();
        return Err(err(path, format!("tensor(s) the model does not have: {} (weights of another model?)", extra.join(", "))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t = vec![
            ("a.weight".to_string(), Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, 2.0, 3.0, -4.0]).unwrap())),
            ("b".to_string(), Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[1]), vec![9]).unwrap())),
        ];
        let back = parse(Path::new("w"), &to_bytes(&t, None)).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(to_bytes(&back.into_iter().collect::<Vec<_>>(), None), to_bytes(&t, None));
        let e = parse(Path::new("w.safetensors"), b"\x05\0\0\0\0\0\0\0{}").unwrap_err().to_string();
        assert!(e.starts_with("w.safetensors: not a valid safetensors file"), "{e}");
    }
}
