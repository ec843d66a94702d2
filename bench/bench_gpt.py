#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_gpt.py — training throughput of the bench's C GPT (`altgrad gpt`)
against its PyTorch twin (altgrad.training.model.GPT, torch.optim.AdamW),
same configuration, float32 and with the FP8 recipe (float8_e4m3fn weights
and inputs, float8_e5m2 output gradients, delayed scaling; the twin
converted with altgrad.integration), both on all cores.

    PYTHONPATH=python /usr/bin/python3 bench/bench_gpt.py [--rounds 5] [--steps 20]

Prints tokens per second (training steps only: forward, backward, optimizer
step; the C figure includes its first, cold step, torch's excludes a
warm-up step), the median of the rounds, with C and torch interleaved in
each round so that load from other processes hits both alike, the ratios
C/torch and quantized/float32, the same from the best round of each (the
one least disturbed by other processes), and the load average before and
after (the figures of a shared machine move with it). Sizes: the bench's default (2 layers x 128, 4 heads,
context 64, batch 16) and a larger one (4 x 256, 8 heads, context 128,
batch 16). The numbers are for this machine only.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from altgrad.integration import quantize_model, recipe
from altgrad.training.model import GPT, GPTConfig

SIZES = {
    "default": dict(n_layer=2, n_head=4, n_embd=128, block_size=64, batch=16),
    "larger": dict(n_layer=4, n_head=8, n_embd=256, block_size=128, batch=16),
}


def torch_tps(size, quantized, steps):
    s = SIZES[size]
    cfg = GPTConfig(n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"],
                    block_size=s["block_size"], vocab_size=256, dropout=0.0)
    model = GPT(cfg, seed=1)
    if quantized:
        quantize_model(model, config=recipe("fp8"))
    model.train()
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.999), "cpu")
    g = torch.Generator().manual_seed(0)
    B, T = s["batch"], s["block_size"]
    data = torch.randint(0, 256, (steps + 2, B, T + 1), generator=g)
    def step(i):
        x, y = data[i, :, :-1].contiguous(), data[i, :, 1:].contiguous()
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        opt.step()
    step(steps + 1)  # warm-up
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * B * T / (time.perf_counter() - t0)


def c_tps(exe, size, quantized, steps, out):
    s = SIZES[size]
    cmd = [exe, "gpt", "--quiet", "--out", out, "--steps", str(steps), "--eval-every", str(steps),
           "--eval-batches", "1", "--layers", str(s["n_layer"]), "--heads", str(s["n_head"]),
           "--embd", str(s["n_embd"]), "--ctx", str(s["block_size"]),
           "--batch", str(s["batch"])]
    if quantized:
        cmd += ["--recipe", "fp8"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = re.search(r"([0-9.]+) tokens/s", out)
    if not m:
        raise SystemExit(f"no tokens/s in the output of {' '.join(cmd)}:\n{out}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--exe", default=os.path.join(os.environ.get("BUILD", "build"), "altgrad"))
    ap.add_argument("--sizes", default="default,larger")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count())  # all cores, as the C side
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{os.cpu_count()} CPUs; median of {a.rounds} rounds of {a.steps} steps; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'size':8} {'setting':8} {'C tok/s':>10} {'torch tok/s':>12} {'C/torch':>8}"
          f"   best of rounds: {'C':>7} {'torch':>7} {'C/torch':>7}")
    for size in a.sizes.split(","):
        res, best = {}, {}
        for q in (0, 1):
            cs, ts = [], []
            for _ in range(a.rounds):
                with tempfile.TemporaryDirectory() as out:
                    cs.append(c_tps(a.exe, size, q, a.steps, out))
                ts.append(torch_tps(size, q, a.steps))
            res[q] = (statistics.median(cs), statistics.median(ts))
            best[q] = (max(cs), max(ts))
            name = "fp8" if q else "fp32"
            print(f"{size:8} {name:8} {res[q][0]:10.0f} {res[q][1]:12.0f} "
                  f"{res[q][0] / res[q][1]:8.2f}   {'':16}{best[q][0]:7.0f} {best[q][1]:7.0f} "
                  f"{best[q][0] / best[q][1]:7.2f}")
        print(f"{size:8} fp8 step / fp32 step: C {res[0][0] / res[1][0]:.2f}x, "
              f"torch {res[0][1] / res[1][1]:.2f}x (medians); best of rounds: "
              f"C {best[0][0] / best[1][0]:.2f}x, torch {best[0][1] / best[1][1]:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
