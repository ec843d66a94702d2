# SPDX-License-Identifier: MIT
"""The device check (run by tests/device/run.sh): on a CUDA machine, the
torch path's bit-exact comparisons with the C core with their tensors on
CUDA, then quantize's throughput on a 4096 x 4096 CUDA tensor as a ratio to
torch.clone of it (median of 10 timed rounds each, CUDA events). Prints one
plain line "device check: PASS|FAIL|SKIP ..." last; exit status 0 for PASS
and SKIP, 1 for FAIL."""
import os
import statistics
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TESTS = ["python/tests/test_torch_path.py", "python/tests/test_torch_dispatch.py"]


def cuda_ms(fn, rounds=10):
    """Median milliseconds of fn() on the current CUDA stream."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def throughput():
    from altgrad.quantization import E4M3, quantize

    x = torch.randn(4096, 4096, device="cuda")
    with torch.no_grad():
        clone = cuda_ms(lambda: x.clone())
        rows = [("quantize E4M3 nearest-even", lambda: quantize(x, E4M3, 0.3)),
                ("quantize E4M3 stochastic",
                 lambda: quantize(x, E4M3, 0.3, rounding="stochastic", seed=1)),
                ("quantize bfloat16 nearest-even", lambda: quantize(x, "bfloat16", 1.0))]
        print(f"4096 x 4096 float32 on {torch.cuda.get_device_name()}: torch.clone "
              f"{clone:.3f} ms")
        ratios = []
        for name, fn in rows:
            t = cuda_ms(fn)
            ratios.append(t / clone)
            print(f"  {name:32s} {t:8.3f} ms  {t / clone:7.1f} x clone")
    return ratios


def main():
    if not torch.cuda.is_available():
        print("device check: SKIP (no CUDA device: torch.cuda.is_available() is False; "
              "the CPU suite covers the torch path through backend='torch')")
        return 0
    env = dict(os.environ, ALTGRAD_TEST_DEVICE="cuda")
    tests = [t for t in TESTS if os.path.exists(os.path.join(ROOT, t))]
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *tests], cwd=ROOT, env=env)
    try:
        ratios = throughput()
        tp_line = f"quantize/clone {ratios[0]:.1f}x nearest-even, {ratios[1]:.1f}x stochastic"
    except Exception as e:  # the comparisons decide PASS; say why timing failed
        rc = rc or 1
        tp_line = f"throughput failed: {type(e).__name__}: {e}"
    status = "PASS" if rc == 0 else "FAIL"
    print(f"device check: {status} (bit-exact suite on cuda: pytest exit {rc}; {tp_line})")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
