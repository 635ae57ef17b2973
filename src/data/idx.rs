//! MNIST's idx format: a big-endian header (magic, dimension sizes) followed by
//! unsigned bytes. Images are `0x00000803` (n × rows × cols), labels `0x00000801`.

use super::{Dataset, DataError, err};
use std::io::Read;
use std::path::Path;

fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::new();
    super::open(path)?.read_to_end(&mut bytes).map_err(|e| err(path, format!("cannot read: {e}")))?;
    Ok(bytes)
}

/// Parses an idx file of unsigned bytes; returns its dims and data.
fn parse(path: &Path, bytes: &[u8], want_rank: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(path, "not an idx file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(err(path, format!("idx element type 0x{:02x} is not supported; expected unsigned bytes (0x08)", bytes[2])));
    }
    let rank = bytes[3] as usize;
    if rank != want_rank {
        return Err(err(path, format!("idx file has {rank} dimensions, expected {want_rank}")));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(err(path, "idx header is truncated"));
    }
    let dims: Vec<usize> = (0..rank).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize).collect();
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| err(path, "idx dimensions overflow"))?;
    let data = &bytes[header..];
    if data.len() != n {
        return Err(err(path, format!("idx data has {} bytes, the header promises {n}", data.len())));
    }
    Ok((dims, data.to_vec()))
}

/// Reads an images file and its labels file.
pub fn read(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let (idims, pixels) = parse(images, &read_all(images)?, 3)?;
    let (ldims, classes) = parse(labels, &read_all(labels)?, 1)?;
    if idims[0] != ldims[0] {
        return Err(err(labels, format!("{} labels for {} images", ldims[0], idims[0])));
    }
    Ok(Dataset { x: pixels.iter().map(|&p| p as f32).collect(), width: idims[1] * idims[2], y: classes.iter().map(|&c| c as f64).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic3: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, magic3];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    #[test]
    fn reads_images_with_labels_and_rejects_mismatches() {
        let dir = std::env::temp_dir().join(format!("dlc-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (im, lb) = (dir.join("images-idx3-ubyte"), dir.join("labels-idx1-ubyte"));
        std::fs::write(&im, idx(3, &[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 255])).unwrap();
        std::fs::write(&lb, idx(1, &[2], &[7, 3])).unwrap();
        let d = read(&im, &lb).unwrap();
        assert_eq!((d.width, d.y.clone(), d.x[7]), (4, vec![7.0, 3.0], 255.0));
        std::fs::write(&lb, idx(1, &[3], &[7, 3, 1])).unwrap();
        assert!(read(&im, &lb).unwrap_err().to_string().contains("3 labels for 2 images"));
        std::fs::write(&im, idx(3, &[2, 2, 2], &[0, 1, 2])).unwrap();
        assert!(read(&im, &lb).unwrap_err().to_string().contains("data has 3 bytes, the header promises 8"));
        std::fs::write(&im, b"PK").unwrap();
        assert!(read(&im, &lb).unwrap_err().to_string().contains("not an idx file"));
    }
}
