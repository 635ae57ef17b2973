//! CSV data: a header row, one label column named by the model, every other
//! column a numeric feature.

use super::{Dataset, DataError, err};
use std::path::Path;

/// Reads `path` (optionally gzipped); `label` names the label column.
pub fn read(path: &Path, label: &str) -> Result<Dataset, DataError> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(super::open(path)?);
    let headers = r.headers().map_err(|e| err(path, format!("cannot read the header row: {e}")))?.clone();
    let Some(li) = headers.iter().position(|h| h.trim() == label) else {
        let cols: Vec<&str> = headers.iter().take(6).collect();
        return Err(err(path, format!("no label column '{label}' (columns: {}{})", cols.join(", "), if headers.len() > 6 { ", …" } else { "" })));
    };
    let width = headers.len() - 1;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (row, rec) in r.records().enumerate() {
        let line = row + 2;
        let rec = rec.map_err(|e| err(path, format!("line {line}: {e}")))?;
        if rec.len() != headers.len() {
            return Err(err(path, format!("line {line}: {} fields, the header has {}", rec.len(), headers.len())));
        }
        for (i, field) in rec.iter().enumerate() {
            let v: f64 = field.trim().parse().map_err(|_| {
                err(path, format!("line {line}, column '{}': '{field}' is not a number", &headers[i]))
            })?;
            if i == li {
                y.push(v);
            } else {
                x.push(v as f32);
            }
        }
    }
    Ok(Dataset { x, width, y })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("dlc-csv-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_features_and_labels_by_column_name() {
        let p = write("ok.csv", "a,label,b\n1,0,2\n3.5,1,-4\n");
        let d = read(&p, "label").unwrap();
        assert_eq!((d.width, d.x, d.y), (2, vec![1.0, 2.0, 3.5, -4.0], vec![0.0, 1.0]));
    }

    #[test]
    fn bad_files_name_the_line_and_column() {
        let p = write("bad.csv", "a,label\n1,0\nx,1\n");
        assert!(read(&p, "label").unwrap_err().to_string().ends_with("line 3, column 'a': 'x' is not a number"));
        assert!(read(&p, "target").unwrap_err().to_string().contains("no label column 'target' (columns: a, label)"));
        let p = write("short.csv", "a,label\n1,0\n2\n");
        assert!(read(&p, "label").unwrap_err().to_string().contains("line 3"));
    }
}
