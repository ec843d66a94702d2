#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_optim.py — altgrad.training's optimizers on a 10M-parameter model
(CPU, float32) as ratios to torch.optim.AdamW.step() on the same parameters
in the same run: ManifoldAdamW plain, in both preconditioning modes (AltGrad's
stiffness and a format's), with and without the format's counters, and
GridOptim. Target: at most 1.0 (no slower than torch's own AdamW).

    make python && PYTHONPATH=python /usr/bin/python3 bench/bench_optim.py

Each figure is the median over --rounds rounds; every round times torch's
AdamW and then each candidate once (--steps steps each), so machine noise
hits them alike. Not a test: no thresholds.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import torch  # noqa: E402

from altgrad.training import GridOptim, ManifoldAdamW  # noqa: E402


def model():
    torch.manual_seed(0)
    # 2 x 2048^2 + 2048 x 768 weights and the biases: 10.0M parameters
    return torch.nn.Sequential(torch.nn.Linear(2048, 2048), torch.nn.Linear(2048, 2048),
                               torch.nn.Linear(2048, 768))


def with_grads(m):
    g = torch.Generator().manual_seed(1)
    for p in m.parameters():
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    return m


def timed(opt, steps):
    opt.step()  # warm: state allocation
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    base = with_grads(model())
    n = sum(p.numel() for p in base.parameters())
    cands = {
        "ManifoldAdamW manifold_aware=False": lambda ps: ManifoldAdamW(ps, manifold_aware=False),
        "ManifoldAdamW grad (AltGrad, M=2)": lambda ps: ManifoldAdamW(ps),
        "ManifoldAdamW grad, format=E4M3": lambda ps: ManifoldAdamW(ps, format="E4M3", scale=0.01),
        "ManifoldAdamW update, format=E4M3": lambda ps: ManifoldAdamW(
            ps, format="E4M3", scale=0.01, precondition="update"),
        "GridOptim (float8_e4m3fn)": lambda ps: GridOptim(ps),
    }
    models = {k: with_grads(model()) for k in ["torch"] + list(cands)}
    opts = {"torch": torch.optim.AdamW(models["torch"].parameters())}
    for k, make in cands.items():
        opts[k] = make(models[k].parameters())
    times = {k: [] for k in opts}
    ratios = {k: [] for k in cands}
    for _ in range(a.rounds):
        tt = timed(opts["torch"], a.steps)
        times["torch"].append(tt)
        for k in cands:
            t = timed(opts[k], a.steps)
            times[k].append(t)
            ratios[k].append(t / tt)
    print(f"bench_optim: {n / 1e6:.1f}M parameters, float32 CPU, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), median of {a.rounds} rounds x {a.steps} steps")
    print(f"  {'optimizer':40s} {'ms/step':>8s} {'/torch AdamW':>13s}")
    print(f"  {'torch.optim.AdamW (default)':40s} {statistics.median(times['torch']) * 1e3:8.1f}"
          f" {1.0:13.2f}")
    for k in cands:
        print(f"  {k:40s} {statistics.median(times[k]) * 1e3:8.1f} "
              f"{statistics.median(ratios[k]):13.2f}")
    print("  (ManifoldAdamW with format= also counts updates/flips/stalls and keeps "
          "bit_position in the same pass)")


if __name__ == "__main__":
    main()
