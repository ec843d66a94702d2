#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_convert.py — the cost of converting a model: one training step
(forward + backward + AdamW) of altgrad's GPT (n_layer=4, n_head=4,
n_embd=128, block_size=128, batch 16 by default) with every Linear
converted (float8_e4m3fn weights and inputs, float8_e5m2 output gradients,
delayed scaling: the "fp8" recipe) as a ratio to the same step of the
unconverted model in the same run; then the same converted step with the
per-layer counters read (altgrad.integration.stats) after every step, as a
ratio to the converted step without reading them, and the time of one
read alone (the median of 200) as a share of a converted step.

    make python && PYTHONPATH=python /usr/bin/python3 bench/bench_convert.py

Each round times --steps steps of every variant, the variants interleaved
so that machine noise hits them alike; the ratios are medians over
--rounds rounds. The target for the conversion is at most 1.3x. Not a test:
no thresholds.
"""
import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import torch  # noqa: E402

from altgrad.integration import quantize_model, stats  # noqa: E402
from altgrad.training.model import GPT, GPTConfig  # noqa: E402


def make(cfg, convert):
    m = GPT(cfg, seed=0)
    if convert:
        quantize_model(m, config="fp8")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    return m, opt


def run(model, opt, batches, read_stats):
    t0 = time.perf_counter()
    for idx in batches:
        _, loss = model(idx, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if read_stats:
            stats(model)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2, help="steps per variant and round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                    block_size=args.block_size, vocab_size=args.vocab_size)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, cfg.block_size), generator=g)
               for _ in range(args.steps)]
    plain = make(cfg, False)
    conv = make(cfg, True)
    conv_read = make(cfg, True)
    for m, o in (plain, conv, conv_read):  # warm-up
        run(m, o, batches[:1], False)
    r_conv, r_read, t_plain, t_conv = [], [], [], []
    for _ in range(args.rounds):
        tp = run(*plain, batches, False)
        tc = run(*conv, batches, False)
        tr = run(*conv_read, batches, True)
        r_conv.append(tc / tp)
        r_read.append(tr / tc)
        t_plain.append(tp / args.steps)
        t_conv.append(tc / args.steps)
    # the read itself, timed alone: stats(model) of the converted model
    t_stats = []
    for _ in range(200):
        t0 = time.perf_counter()
        stats(conv[0])
        t_stats.append(time.perf_counter() - t0)
    n_lin = len(stats(conv[0]))
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"# GPT n_layer={cfg.n_layer} n_head={cfg.n_head} n_embd={cfg.n_embd} "
          f"block_size={cfg.block_size} vocab={cfg.vocab_size}, batch {args.batch}; "
          f"{n_lin} Linear converted (fp8 recipe); {args.rounds} rounds of {args.steps} steps")
    print(f"unconverted step (median)                 {statistics.median(t_plain) * 1e3:8.1f} ms")
    print(f"converted step (median)                   {statistics.median(t_conv) * 1e3:8.1f} ms")
    print(f"converted / unconverted                   median {statistics.median(r_conv):.3f}  "
          f"range {min(r_conv):.3f}-{max(r_conv):.3f}")
    print(f"counters read every step / not read       median {statistics.median(r_read):.3f}  "
          f"range {min(r_read):.3f}-{max(r_read):.3f}")
    ts = statistics.median(t_stats)
    print(f"one stats(model) read                     {ts * 1e6:8.1f} us  "
          f"= {ts / statistics.median(t_conv):.5f} of a converted step")


if __name__ == "__main__":
    main()
