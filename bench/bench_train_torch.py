#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_train_torch.py — one epoch of the training bench in C vs the same
model in PyTorch, on this machine, in the same run.

    PYTHONPATH=python /usr/bin/python3 bench/bench_train_torch.py \
        [--altgrad build/altgrad] [--formats fp32,E3M4] [--data DIR]
        [--torch-threads N] [--train-limit N]

For each format: `altgrad train --format F --epochs 1` (the C bench:
OpenBLAS, the altgrad library's quantizers), then the same 784-256-256-10
MLP in torch (nn.Linear, ReLU, cross-entropy, AdamW lr 1e-3 wd 1e-4,
batch 128), with altgrad.quantization.DelayedScaler (straight-through quantize with
delayed scaling from a 16-long amax window, the library's ag_scaler) on
the weights and inputs of every linear layer, as the C bench does. Prints the wall time of one
training epoch of each (test evaluation excluded from the torch figure,
included in the C one, which makes the comparison conservative) and the
ratio. torch runs with its own thread count unless --torch-threads is given
(on a busy 2-core machine, forcing 2 threads made torch ~10x slower).
"""
import argparse
import gzip
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch


def load_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data_dir, stem):
    for suffix in ("", ".gz"):
        p = os.path.join(data_dir, stem + suffix)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{data_dir}/{stem}(.gz): not found")


class Quantizer:
    """A tensor's fake quantizer with delayed scaling: the library's
    DelayedScaler (16-long amax window; an empty window uses the tensor's
    own amax, as the C bench), or nothing for fp32."""

    def __init__(self, spec, hist_len=16):
        self.scaler = None
        if spec != "fp32":
            from altgrad.quantization import DelayedScaler
            self.scaler = DelayedScaler(spec, hist_len, first="current")

    def __call__(self, t):
        return t if self.scaler is None else self.scaler.quantize(t)


def torch_epoch(fmt, x, y, batch=128, seed=1):
    torch.manual_seed(seed)
    dims = [784, 256, 256, 10]
    layers = [torch.nn.Linear(dims[i], dims[i + 1]) for i in range(3)]
    for lin in layers:
        torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        torch.nn.init.zeros_(lin.bias)
    qs = [(Quantizer(fmt), Quantizer(fmt)) for _ in layers]
    params = [p for lin in layers for p in lin.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    n = x.shape[0] // batch
    perm = torch.randperm(x.shape[0])
    t0 = time.perf_counter()
    loss = None
    for s in range(n):
        idx = perm[s * batch:(s + 1) * batch]
        h = x[idx]
        for i, (lin, (qw, qx)) in enumerate(zip(layers, qs)):
            h = torch.nn.functional.linear(qx(h), qw(lin.weight), lin.bias)
            if i < 2:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0, float(loss)


def c_epoch(altgrad, fmt, data, limit):
    with tempfile.TemporaryDirectory() as out:
        cmd = [altgrad, "train", "--format", fmt, "--epochs", "1", "--quiet",
               "--data", data, "--out", out]
        if limit:
            cmd += ["--train-limit", str(limit)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
        # the table row: name loss acc ... s/epoch status
        for line in r.stdout.splitlines():
            m = re.match(r"^\S+\s+([0-9.]+)\s+([0-9.]+)%.*\s([0-9.]+)\s+ok$", line)
            if m:
                return float(m.group(3)), float(m.group(1))
    raise SystemExit("could not read the C bench's time from its table")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--altgrad", default="build/altgrad")
    ap.add_argument("--formats", default="fp32,E3M4")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch threads (default: torch's choice)")
    ap.add_argument("--train-limit", type=int, default=0)
    a = ap.parse_args()
    if a.torch_threads:
        torch.set_num_threads(a.torch_threads)
    x = load_idx(find(a.data, "train-images-idx3-ubyte"))
    y = load_idx(find(a.data, "train-labels-idx1-ubyte"))
    if a.train_limit:
        x, y = x[:a.train_limit], y[:a.train_limit]
    x = torch.from_numpy(x.reshape(x.shape[0], -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(y.astype(np.int64))
    print(f"one training epoch, {x.shape[0]} images, batch 128, AdamW; "
          f"torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
          f"C bench with single-threaded OpenBLAS")
    print(f"{'format':<8} {'C bench s':>10} {'torch s':>10} {'torch/C':>8}")
    for fmt in a.formats.split(","):
        c_s, _ = c_epoch(a.altgrad, fmt, a.data, a.train_limit)
        t_s, _ = torch_epoch(fmt, x, y)
        print(f"{fmt:<8} {c_s:>10.2f} {t_s:>10.2f} {t_s / c_s:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
