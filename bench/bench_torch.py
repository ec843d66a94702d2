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
out.copy_(x), isolates the kernel.

The per-call section (--percall-rounds, 0 to skip) measures what the
binding costs on small tensors: quantize(x, E5M2, s) on 64 x 64 and
128 x 256 float32 CPU tensors, with and without requires_grad, as a ratio
to torch's own x * s on the same tensor (which allocates its output and, with
requires_grad, records a graph node too). Each round times --percall-calls
calls of each case in turn; the figure is the median per-call time over the
rounds. Targets: at most 2x without autograd, 3x with it. Not a test: no
thresholds.
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


def _per_call(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def percall(rounds, calls):
    """The per-call cost of quantize on small tensors against x * s."""
    s = 0.5
    print(f"per-call cost: quantize(x, E5M2, {s}) against torch's x * {s}, "
          f"median of {rounds} rounds of {calls} calls, torch threads "
          f"{torch.get_num_threads()}")
    print("(kernel: the C call alone, numpy in, preallocated out: the floor "
          "under the binding)")
    print(f"{'shape':>10s} {'requires_grad':>13s} {'x*s us':>8s} {'quantize us':>11s} "
          f"{'ratio':>6s} {'target':>6s} {'kernel us':>9s} {'ratio':>6s}")
    torch.manual_seed(0)
    for shape in ((64, 64), (128, 256)):
        for grad in (False, True):
            x = torch.randn(*shape, requires_grad=grad)
            xa = x.detach().numpy()
            ya = xa.copy()
            f = E5M2.c_format
            cases = (lambda: x * s, lambda: quantize(x, E5M2, s),
                     lambda: altgrad._C.quantize(xa, f, s, ya))
            for fn in cases:  # warm up
                _per_call(fn, calls)
            times = ([], [], [])
            for _ in range(rounds):  # interleaved: noise hits all alike
                for t, fn in zip(times, cases):
                    t.append(_per_call(fn, calls))
            base, q, k = (statistics.median(t) for t in times)
            print(f"{'x'.join(map(str, shape)):>10s} {str(grad):>13s} {base * 1e6:8.2f} "
                  f"{q * 1e6:11.2f} {q / base:6.2f} {3 if grad else 2:6d} "
                  f"{k * 1e6:9.2f} {k / base:6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="tensor is size x size")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0,
                    help="altgrad threads (0: the library's choice)")
    ap.add_argument("--percall-rounds", type=int, default=31,
                    help="rounds of the per-call section (0: skip it)")
    ap.add_argument("--percall-calls", type=int, default=200,
                    help="calls per case in each per-call round")
    ap.add_argument("--skip-large", action="store_true",
                    help="only the per-call section")
    args = ap.parse_args()
    if args.percall_rounds > 0:
        percall(args.percall_rounds, args.percall_calls)
    if args.skip_large:
        return

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
