#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/device/run.sh [PYTHON] — the device check of the torch path: on a
# machine with a CUDA GPU, the bit-exact comparisons of
# python/tests/test_torch_path.py and test_torch_dispatch.py with the torch
# path's tensors on CUDA (the C core on the CPU is the reference), then the
# throughput of quantize on a 4096 x 4096 CUDA tensor as a ratio to
# torch.clone. Prints one "device check: PASS|FAIL|SKIP ..." line. Without
# CUDA it skips with a message (exit 0). Builds the extension first when it
# is missing. Run from anywhere.
set -u
py=${1:-/usr/bin/python3}
cd "$(dirname "$0")/../.." || exit 1
if ! ls python/altgrad/_C*.so >/dev/null 2>&1; then
    make python >/dev/null || { echo "device check: FAIL (make python failed)"; exit 1; }
fi
PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}" exec "$py" tests/device/check_device.py "$@"
