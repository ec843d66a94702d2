# SPDX-License-Identifier: MIT
"""Helpers shared by :mod:`.scaling` and :mod:`.diagnostics` (issue 5):
reading inputs, allocating outputs of the input's kind, the matrix view
(rows, cols) of a tensor, and the rounding options dict of the C calls.

Input rules (as the rest of the package, see :mod:`altgrad._arrays`): a
float32 CPU torch tensor or numpy array, read in place when C-contiguous and
copied once when not; another dtype is a TypeError, another device a
ValueError. Diagnostics only read their inputs, so tensors that require grad
are accepted (nothing is recorded, no graph is cut).
"""
import math
import sys

import numpy as np

from .. import _arrays
from .. import format as _as_format

_OPTION_KEYS = ("rounding", "overflow", "seed", "stream", "offset", "threads", "kernel")


def is_tensor(x):
    return _arrays._is_tensor(x)


def read(x, name, dtypes=("float32",)):
    """A C-contiguous numpy view (or copy) of a tensor / array input."""
    if is_tensor(x):
        v = _arrays.tensor_view(x, name, dtypes, allow_grad=True)
    elif isinstance(x, np.ndarray):
        v = _arrays.array_view(x, name, dtypes)
    else:
        raise TypeError(
            f"{name} must be a {' or '.join(dtypes)} torch.Tensor or numpy "
            f"array, not {type(x).__name__}"
        )
    if v.dtype == np.int16:
        v = v.view(np.uint16)  # 16-bit codes in a torch.int16 tensor
    return v


def new(like_tensor, shape, np_dtype):
    """(result, writable numpy view): a torch tensor when ``like_tensor``,
    else a numpy array."""
    shape = tuple(int(s) for s in shape)
    if like_tensor:
        torch = sys.modules["torch"]
        tdt = {np.dtype(np.float32): torch.float32, np.dtype(np.uint8): torch.uint8,
               np.dtype(np.int32): torch.int32}[np.dtype(np_dtype)]
        t = torch.empty(shape, dtype=tdt)
        return t, t.numpy()
    a = np.empty(shape, dtype=np_dtype)
    return a, a


def matrix(shape):
    """(rows, cols) of a tensor cut along its last axis: rows = product of
    the leading dimensions, cols = the last one; a 0-d tensor is 1 x 1."""
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def fmt(format):
    """The C format of an FP8Format, altgrad.Format or spec string."""
    return _as_format(format)


def options(rounding="nearest_even", overflow="saturate", seed=0, stream=0,
            offset=0, threads=0, kernel="auto", *, draw_seed=False):
    """The options dict of the C calls. ``seed=None`` with stochastic
    rounding and ``draw_seed``: a fresh seed from torch's generator (as
    :func:`altgrad.quantization.quantize`)."""
    if seed is None:
        if draw_seed and rounding == "stochastic":
            torch = sys.modules.get("torch")
            if torch is not None:
                seed = int(torch.randint(0, 2**62, ()).item())
            else:  # pragma: no cover - the package imports torch
                seed = int(np.random.default_rng().integers(0, 2**62))
        else:
            seed = 0
    return {"rounding": rounding, "overflow": overflow, "seed": seed,
            "stream": stream, "offset": offset, "threads": threads,
            "kernel": kernel}


def scale_arg(scale):
    """A per-tensor scale (number or one-element tensor/array) as a float."""
    return _arrays.scale_value(scale)
