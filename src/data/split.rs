//! Held-out splits and the order batches are drawn in.
//!
//! Every order is a pure function of the seed and the epoch, so a run that
//! stops and resumes draws exactly the batches an uninterrupted run would.

use super::{DataError, Dataset, err};
use crate::Tensor;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// A seeded permutation of `0..n`; `stream` separates independent uses.
pub fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut rng);
    v
}

/// The stream used for the train/validation split.
const SPLIT_STREAM: u64 = 0xD1C_5EED;

/// Splits off `fraction` of the rows (rounded) as a validation set, from a
/// seeded shuffle; returns (train, validation) row indices, each sorted.
pub fn by_fraction(n: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>), String> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(format!("the validation fraction must be in [0, 1), got {fraction}"));
    }
    let nval = (n as f64 * fraction).round() as usize;
    let p = permutation(n, seed, SPLIT_STREAM);
    let (mut val, mut train) = (p[..nval].to_vec(), p[nval..].to_vec());
    if train.is_empty() {
        return Err(format!("a validation fraction of {fraction} leaves no training rows out of {n}"));
    }
    train.sort_unstable();
    val.sort_unstable();
    Ok((train, val))
}

/// Like [`by_fraction`], but holds out the same fraction of every class
/// (scikit-learn's `stratify`), so a small validation set keeps the class balance.
pub fn stratified(labels: &[f64], fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>), String> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(format!("the validation fraction must be in [0, 1), got {fraction}"));
    }
    let mut classes: Vec<f64> = labels.to_vec();
    classes.sort_by(f64::total_cmp);
    classes.dedup();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (k, c) in classes.iter().enumerate() {
        let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == *c).collect();
        let nval = (rows.len() as f64 * fraction).round() as usize;
        let p = permutation(rows.len(), seed, SPLIT_STREAM + 1 + k as u64);
        val.extend(p[..nval].iter().map(|&i| rows[i]));
        train.extend(p[nval..].iter().map(|&i| rows[i]));
    }
    if train.is_empty() {
        return Err(format!("a validation fraction of {fraction} leaves no training rows"));
    }
    train.sort_unstable();
    val.sort_unstable();
    Ok((train, val))
}

/// Reads row indices from an integer `.npy` file and checks them against `n` rows.
pub fn read_indices(path: &Path, n: usize) -> Result<Vec<usize>, DataError> {
    let t = crate::io::npy::read(path).map_err(|e| err(path, e.message))?;
    let v: Vec<i64> = match t {
        Tensor::I64(a) => a.iter().copied().collect(),
        Tensor::I32(a) => a.iter().map(|&x| x as i64).collect(),
        other => return Err(err(path, format!("indices must be int32 or int64, got {}", other.dtype()))),
    };
    v.iter()
        .map(|&i| usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| err(path, format!("index {i} is out of range for {n} rows"))))
        .collect()
}

/// Per-epoch batch orders read from an `[epochs, n]` integer `.npy` file, each row
/// a permutation of `0..n` (positions into the training rows).
pub fn read_orders(path: &Path, n: usize) -> Result<Vec<Vec<usize>>, DataError> {
    let t = crate::io::npy::read(path).map_err(|e| err(path, e.message))?;
    let shape = t.shape().to_vec();
    if shape.len() != 2 || shape[1] != n {
        return Err(err(path, format!("batch orders must be [epochs, {n}], got {shape:?}")));
    }
    let flat: Vec<i64> = match t {
        Tensor::I64(a) => a.iter().copied().collect(),
        Tensor::I32(a) => a.iter().map(|&x| x as i64).collect(),
        other => return Err(err(path, format!("batch orders must be int32 or int64, got {}", other.dtype()))),
    };
    let mut orders = Vec::new();
    for (e, row) in flat.chunks(n).enumerate() {
        let mut seen = vec![false; n];
        let mut order = Vec::with_capacity(n);
        for &i in row {
            match usize::try_from(i).ok().filter(|&i| i < n && !seen[i]) {
                Some(i) => {
                    seen[i] = true;
                    order.push(i);
                }
                None => return Err(err(path, format!("epoch {}: row is not a permutation of 0..{n} (bad entry {i})", e + 1))),
            }
        }
        orders.push(order);
    }
    Ok(orders)
}

/// Checks that a data set's rows fit a model input of `width` features.
pub fn check_width(name: &str, d: &Dataset, width: usize) -> Result<(), DataError> {
    if d.width != width {
        return Err(DataError {
            path: name.to_string(),
            message: format!("rows have {} features, the model input takes {width}", d.width),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_seeded_and_complete() {
        let a = permutation(100, 1, 0);
        assert_eq!(a, permutation(100, 1, 0));
        assert_ne!(a, permutation(100, 2, 0));
        assert_ne!(a, permutation(100, 1, 1));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn fraction_split_is_disjoint_and_sized() {
        let (t, v) = by_fraction(10, 0.2, 0).unwrap();
        assert_eq!((t.len(), v.len()), (8, 2));
        assert!(v.iter().all(|i| !t.contains(i)));
        assert!(by_fraction(10, 1.0, 0).is_err());
        assert!(by_fraction(1, 0.6, 0).is_err());
    }

    #[test]
    fn stratified_split_keeps_class_proportions() {
        let labels: Vec<f64> = (0..100).map(|i| if i < 80 { 0.0 } else { 1.0 }).collect();
        let (t, v) = stratified(&labels, 0.25, 5).unwrap();
        assert_eq!((t.len(), v.len()), (75, 25));
        assert_eq!(v.iter().filter(|&&i| labels[i] == 1.0).count(), 5);
        assert!(v.iter().all(|i| !t.contains(i)));
    }
}
