//! Training checkpoints: parameters, optimizer state and the position in the
//! run, in one safetensors file written atomically.
//!
//! The position (epoch, batch within it, global step) plus the seed is all the
//! run's state: batch orders are pure functions of (seed, epoch), so resuming
//! from a checkpoint repeats exactly what an uninterrupted run would do.

use crate::Tensor;
use crate::io::weights;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const FORMAT: &str = "dlc-checkpoint-1";

/// Where a run stood when a checkpoint was taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    /// Completed epochs.
    pub epoch: usize,
    /// Batches completed in the current (not yet completed) epoch.
    pub batch: usize,
    /// Optimizer steps taken in total.
    pub step: u64,
    /// The current epoch's loss so far (weighted as the epoch mean needs) and
    /// its row count, so an epoch resumed halfway reports the same mean.
    pub partial: (f64, u64),
}

/// A checkpoint's contents.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Where the run stood.
    pub position: Position,
    /// The run's seed.
    pub seed: u64,
    /// Identifies the model and optimizer (see [`fingerprint`]).
    pub fingerprint: String,
    /// Parameters and optimizer state, by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Per-epoch metrics so far, as CSV rows (so a resumed run's metrics file is whole).
    pub history: String,
}

/// A stable fingerprint of named tensor types and the optimizer: FNV-1a over
/// `name:dtype[shape];…|optimizer`. A checkpoint from another model has another one.
pub fn fingerprint(tensors: &[(String, String)], optimizer: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (n, t) in tensors {
        feed(n);
        feed(":");
        feed(t);
        feed(";");
    }
    feed("|");
    feed(optimizer);
    format!("{h:016x}")
}

/// The file name of a checkpoint at `p`: sortable by position.
pub fn file_name(p: &Position) -> String {
    format!("ckpt-e{:04}-b{:06}.safetensors", p.epoch, p.batch)
}

/// Writes a checkpoint into `dir` atomically and returns its path.
pub fn save(dir: &Path, c: &Checkpoint) -> Result<PathBuf, weights::WeightsError> {
    std::fs::create_dir_all(dir).map_err(|e| weights::WeightsError { path: dir.display().to_string(), message: format!("cannot create: {e}") })?;
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("epoch", c.position.epoch.to_string()),
        ("batch", c.position.batch.to_string()),
        ("step", c.position.step.to_string()),
        ("partial_loss_bits", c.position.partial.0.to_bits().to_string()),
        ("partial_rows", c.position.partial.1.to_string()),
        ("seed", c.seed.to_string()),
        ("fingerprint", c.fingerprint.clone()),
        ("history", c.history.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let tensors: Vec<(String, Tensor)> = c.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let path = dir.join(file_name(&c.position));
    crate::io::write_atomic(&path, &weights::to_bytes(&tensors, Some(meta)))
        .map_err(|e| weights::WeightsError { path: path.display().to_string(), message: format!("cannot write: {e}") })?;
    Ok(path)
}

/// Reads a checkpoint file.
pub fn load(path: &Path) -> Result<Checkpoint, weights::WeightsError> {
    let e = |m: String| weights::WeightsError { path: path.display().to_string(), message: m };
    let bytes = std::fs::read(path).map_err(|x| e(format!("cannot read: {x}")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|x| e(format!("not a valid safetensors file ({x})")))?;
    let m = meta.metadata().clone().unwrap_or_default();
    if m.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(e("not a dlc checkpoint (no dlc-checkpoint-1 metadata)".into()));
    }
    let num = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| e(format!("checkpoint metadata '{k}' is missing or not a number")));
    Ok(Checkpoint {
        position: Position {
            epoch: num("epoch")? as usize,
            batch: num("batch")? as usize,
            step: num("step")?,
            partial: (f64::from_bits(num("partial_loss_bits")?), num("partial_rows")?),
        },
        seed: num("seed")?,
        fingerprint: m.get("fingerprint").cloned().unwrap_or_default(),
        tensors: weights::parse(path, &bytes)?,
        history: m.get("history").cloned().unwrap_or_default(),
    })
}

/// The checkpoint in `dir` furthest into the run, if any.
pub fn newest(dir: &Path) -> Result<Option<PathBuf>, weights::WeightsError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(weights::WeightsError { path: dir.display().to_string(), message: format!("cannot read: {e}") }),
    };
    let mut names: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-e") && n.ends_with(".safetensors")))
        .collect();
    names.sort();
    Ok(names.pop())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn save_load_and_find_the_newest() {
        let dir = std::env::temp_dir().join(format!("dlc-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(newest(&dir).unwrap(), None);
        let t = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.5, -2.0]).unwrap());
        let mut c = Checkpoint {
            position: Position { epoch: 1, batch: 0, step: 45, partial: (0.0, 0) },
            seed: 3,
            fingerprint: fingerprint(&[("w".into(), "f32[2]".into())], "adam"),
            tensors: [("w".to_string(), t)].into_iter().collect(),
            history: "1,0.5,,,0.1\n".into(),
        };
        save(&dir, &c).unwrap();
        c.position = Position { epoch: 10, batch: 3, step: 453, partial: (1.25, 96) };
        let p = save(&dir, &c).unwrap();
        assert_eq!(newest(&dir).unwrap(), Some(p.clone()));
        let back = load(&p).unwrap();
        assert_eq!((back.position, back.seed, back.history), (c.position.clone(), 3, c.history.clone()));
        assert_eq!(back.fingerprint, c.fingerprint);
        assert_ne!(c.fingerprint, fingerprint(&[("w".into(), "f32[3]".into())], "adam"));
        let plain = dir.join("plain.safetensors");
        weights::write(&plain, &[]).unwrap();
        assert!(load(&plain).unwrap_err().to_string().contains("not a dlc checkpoint"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
