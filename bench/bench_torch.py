#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_torch.py — altgrad.quantization.quantize on a float32 tensor
(4096 x 4096 by default) as a ratio to torch.clone of the same tensor in the
same run: the honest yardstick, since both read and write every byte once
and allocate a fresh output. The target for nearest-even is at most 2x.

    make python && PYTHONPATH=python /usr/bin/python3 bench/bench_torch.py

Each measurement is the median of --repeats runs, clone and the candidates
interleaved so that machine noise hits them alike. Both sides of the headline
ratio allocate a fresh 64 MiB output, which can cost more than the copy
itself (page faults); the second ratio, into a preallocated output against
out.copy_(x), isolates the kernel. Not a test: no thresholds.
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
from altgrad.quantization import E4M3, E5M2, quantize  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="tensor is size x size")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0,
                    help="altgrad threads (0: the library's choice)")
    args = ap.parse_args()

    torch.manual_seed(0)
    x = torch.randn(args.size, args.size)
    out = torch.empty_like(x)
    th = args.threads
    cases = {
        "torch.clone": lambda: x.clone(),
        "out.copy_(x) (torch, no alloc)": lambda: out.copy_(x),
        "quantize E4M3 nearest-even": lambda: quantize(x, E4M3, 1.0, threads=th),
        "quantize E5M2 nearest-even": lambda: quantize(x, E5M2, 1.0, threads=th),
        "quantize E4M3 stochastic": lambda: quantize(x, E4M3, 1.0, rounding="stochastic",
                                                     seed=1, threads=th),
        "quantize_array E4M3 into out=": lambda: altgrad.quantize_array(
            x, E4M3, 1.0, out=out, threads=th),
        "quantize bfloat16 nearest-even": lambda: quantize(x, "bfloat16", 1.0, threads=th),
        "x.to(bfloat16).float() (torch)": lambda: x.to(torch.bfloat16).float(),
    }
    times = {k: [] for k in cases}
    for fn in cases.values():  # warm up (page faults, lazy imports)
        fn()
    for _ in range(args.repeats):
        for k, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["torch.clone"]
    mib = x.numel() * 4 / 2**20
    print(f"altgrad {altgrad.__version__}, torch {torch.__version__}, "
          f"{args.size}x{args.size} float32 ({mib:.0f} MiB), torch threads "
          f"{torch.get_num_threads()}, altgrad threads {th or 'auto'}, "
          f"median of {args.repeats}")
    print(f"{'operation':34s} {'ms':>9s} {'x clone':>8s} {'GB/s r+w':>9s}")
    for k, t in med.items():
        gbs = 2 * x.numel() * 4 / t / 1e9
        print(f"{k:34s} {t * 1e3:9.2f} {t / base:8.2f} {gbs:9.2f}")
    ne = med["quantize E4M3 nearest-even"] / base
    ne_out = med["quantize_array E4M3 into out="] / med["out.copy_(x) (torch, no alloc)"]
    print(f"nearest-even quantize / clone = {ne:.2f} (target <= 2)")
    print(f"without allocation: quantize_array(out=) / out.copy_(x) = {ne_out:.2f}")


if __name__ == "__main__":
    main()
