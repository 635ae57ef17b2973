"""PyTorch side of the digits benchmark: the reference run of shared/reference
(MLP 64-32-10, Adam lr 1e-3, batch 32, 20 epochs, 1 thread) on dlc's fixtures,
timed as the reference script times it (the 20 epochs only). Prints one JSON line.

Run by `cargo bench --bench digits`; needs `pip install torch numpy safetensors`.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "digits")


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(1)
    raw = np.loadtxt(os.path.join(ROOT, "data", "digits.csv"), delimiter=",", skiprows=1)
    X = (raw[:, :-1] / 16.0).astype(np.float32)
    y = raw[:, -1].astype(np.int64)
    tr = np.load(os.path.join(FIX, "train_idx.npy"))
    perms = torch.from_numpy(np.load(os.path.join(FIX, "perms.npy")))
    init = load_file(os.path.join(FIX, "init.safetensors"))
    Xtr, ytr = torch.from_numpy(X[tr]), torch.from_numpy(y[tr])
    times, last = [], None
    for _ in range(runs):
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        model.load_state_dict({k.removeprefix("net."): torch.from_numpy(v) for k, v in init.items()})
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        n = len(tr)
        t0 = time.perf_counter()
        for epoch in range(20):
            total = 0.0
            for s in range(0, n, 32):
                b = perms[epoch][s:s + 32]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(Xtr[b]), ytr[b])
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            last = total / n
        times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"median_s": times[len(times) // 2], "runs": runs, "final_epoch_loss": last, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
