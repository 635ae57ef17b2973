"""Reference side of the model benchmark: PyTorch eager, torch.compile and
onnxruntime on the MLP (784-256-128-10) and the Keras MNIST CNN, inference
(softmax probabilities) and an Adam train step (zero_grad, forward, cross-entropy,
backward, step), as in shared/PERF.md; the CNN under eager also channels-last
("torch.channels_last"). Prints one JSON line per measurement:
{"workload", "framework", "threads", "ms"} — medians of 3 runs of >= 20 calls.

Run by `cargo bench --bench models`; needs `pip install torch numpy onnx onnxruntime`.
Flags: --threads N (default 1), --no-compile (skip torch.compile: its first
compile takes 10-20 s per model).
"""
import argparse
import io
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))


WORKLOADS = [("mlp", mlp, (784,), 64), ("mlp", mlp, (784,), 256), ("cnn", cnn, (1, 28, 28), 64)]


def median_ms(fn, calls=20, runs=3):
    for _ in range(3):
        fn()
    meds = []
    for _ in range(runs):
        ts = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        ts.sort()
        meds.append(ts[len(ts) // 2])
    meds.sort()
    return meds[len(meds) // 2] * 1e3


def emit(workload, framework, threads, ms):
    print(json.dumps({"workload": workload, "framework": framework, "threads": threads, "ms": round(ms, 4)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name, make, shape, batch in WORKLOADS:
        torch.manual_seed(0)
        x = torch.randn(batch, *shape)
        y = torch.randint(0, 10, (batch,))
        variants = [("torch", None, False)]
        if len(shape) == 3:
            # PERF.md's CNN eager figures are fastest channels-last (NHWC).
            variants.append(("torch.channels_last", None, True))
        if not a.no_compile:
            variants.append(("torch.compile", torch.compile, False))
        for fw, wrap, nhwc in variants:
            m = make()
            xv = x
            if nhwc:
                m = m.to(memory_format=torch.channels_last)
                xv = x.contiguous(memory_format=torch.channels_last)
            opt = torch.optim.Adam(m.parameters(), lr=1e-3)
            f = wrap(m) if wrap else m

            def infer():
                with torch.no_grad():
                    F.softmax(f(xv), dim=1)

            def step():
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(f(xv), y).backward()
                opt.step()

            emit(f"{name}_b{batch}_infer", fw, a.threads, median_ms(infer))
            emit(f"{name}_b{batch}_train", fw, a.threads, median_ms(step))
        try:
            import onnxruntime as ort
            m = nn.Sequential(make(), nn.Softmax(dim=1)).eval()
            buf = io.BytesIO()
            torch.onnx.export(m, (x,), buf, input_names=["x"], output_names=["p"], dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = a.threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
            xn = x.numpy()
            emit(f"{name}_b{batch}_infer", "onnxruntime", a.threads, median_ms(lambda: sess.run(None, {"x": xn})))
        except Exception as e:  # onnxruntime missing or export failed: say so, keep going
            print(json.dumps({"workload": f"{name}_b{batch}_infer", "framework": "onnxruntime", "threads": a.threads, "error": str(e)[:200]}), flush=True)


if __name__ == "__main__":
    main()
