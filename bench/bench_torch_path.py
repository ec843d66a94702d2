#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_torch_path.py — the device-generic torch path (altgrad.backends.
torch_path, what CUDA tensors run) forced on CPU tensors, against the C core
on the same tensor in the same run: the ratio time(torch path) / time(C
core), and both against torch.clone as the memory yardstick.

    make python && PYTHONPATH=python /usr/bin/python3 bench/bench_torch_path.py

On CPU the torch path only has to be correct: it is a chain of a couple of
hundred tensor operations on int32 lanes (more for stochastic rounding:
ARS-7 as seven rounds of table lookups), each a pass over memory, where the
C core makes one pass. With --device cuda (where a GPU is present) the same cases
run on the GPU against torch.clone there (the C core column is then the CPU
figure, for scale). Each figure is the median of --repeats interleaved runs.
Not a test: no thresholds.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import torch  # noqa: E402

import altgrad  # noqa: E402
from altgrad.backends import torch_path as tp  # noqa: E402


def timed(fn, sync):
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 20, help="elements (default 2^20)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    xc = torch.randn(args.n) * 10
    xd = xc.to(dev)
    rows = 1024 if args.n % 1024 == 0 else 1
    e4m3 = altgrad.format("E4M3")
    cases = [
        ("quantize E4M3 nearest-even",
         lambda: tp.quantize(xd, e4m3, 0.3),
         lambda: altgrad.quantize_array(xc, e4m3, 0.3)),
        ("quantize E4M3 stochastic",
         lambda: tp.quantize(xd, e4m3, 0.3, rounding="stochastic", seed=1),
         lambda: altgrad.quantize_array(xc, e4m3, 0.3, rounding="stochastic", seed=1)),
        ("quantize bfloat16 nearest-even",
         lambda: tp.quantize(xd, "bfloat16", 1.0),
         lambda: altgrad.quantize_array(xc, "bfloat16", 1.0)),
        ("encode E5M2",
         lambda: tp.encode(xd, "E5M2", 1.0),
         lambda: altgrad.encode(xc, "E5M2", 1.0)),
        ("mx_quantize float8_e4m3fn",
         lambda: tp.mx_quantize(xd.view(rows, -1), "float8_e4m3fn"),
         lambda: _mx_c(xc.view(rows, -1))),
    ]
    clone_t, res = [], {name: ([], []) for name, _, _ in cases}
    for _, ft, fc in cases:  # warm up
        ft()
        fc()
    for _ in range(args.repeats):
        clone_t.append(timed(lambda: xd.clone(), sync))
        for name, ft, fc in cases:
            res[name][0].append(timed(ft, sync))
            res[name][1].append(timed(fc, lambda: None))
    clone = statistics.median(clone_t)
    print(f"# n = {args.n} float32, torch path on {dev}, C core on cpu "
          f"(torch threads {torch.get_num_threads()}); median of {args.repeats}")
    print(f"# torch.clone on {dev}: {clone * 1e3:.2f} ms")
    print(f"{'case':34s} {'torch path ms':>13s} {'C core ms':>10s} {'torch/C':>8s} "
          f"{'torch/clone':>11s}")
    for name, _, _ in cases:
        t = statistics.median(res[name][0])
        c = statistics.median(res[name][1])
        print(f"{name:34s} {t * 1e3:13.2f} {c * 1e3:10.2f} {t / c:8.1f} {t / clone:11.1f}")


def _mx_c(x):
    from altgrad.quantization import mx_quantize

    return mx_quantize(x, "float8_e4m3fn")


if __name__ == "__main__":
    main()
