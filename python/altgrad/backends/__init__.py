# SPDX-License-Identifier: MIT
"""Where a quantizer runs: the C core or the device-generic torch path.

- ``"c"``: the C library (``altgrad._C``), zero-copy on CPU tensors and numpy
  arrays, GIL released. CPU only.
- ``"torch"``: :mod:`altgrad.backends.torch_path`, the same rounding core
  written in torch tensor operations on the float32 bit pattern, run on the
  tensor's own device (CUDA or any other); the same bits as the C core,
  stochastic rounding included.
- ``"auto"`` (the default of every public function): the C core for CPU
  tensors and numpy arrays, the torch path for tensors on another device.

Forcing ``backend="torch"`` on CPU tensors is how the torch path is tested
on machines without a GPU.
"""
import sys

__all__ = ["BACKENDS", "select", "use_torch"]

#: The accepted values of a ``backend=`` keyword.
BACKENDS = ("auto", "c", "torch")


def _device_of(x):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.device.type
    return None


def select(backend, *arrays):
    """``"c"`` or ``"torch"``: where a call on ``arrays`` (tensors, numpy
    arrays, or None for absent arguments) runs under ``backend``.

    ``"auto"`` picks the torch path when any tensor is on a non-CPU device,
    else the C core. A tensor on the ``meta`` device (shapes without values)
    is a ValueError under every backend. ``"c"`` with a non-CPU tensor is a ValueError (the C
    core reads host memory; move it with ``.cpu()``); ``"torch"`` with a
    numpy array is a TypeError (the torch path takes tensors). An unknown
    name is a ValueError listing the valid ones.
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r} (expected one of: {', '.join(BACKENDS)})"
        )
    devices = [_device_of(a) for a in arrays if a is not None]
    if "meta" in devices:
        raise ValueError(
            "a tensor is on device 'meta', which holds no values: altgrad quantizes "
            "values, on the CPU (the C core) or on a device with memory (the torch path)"
        )
    on_device = [d for d in devices if d is not None and d != "cpu"]
    if backend == "c":
        if on_device:
            raise ValueError(
                f"backend='c' runs on the CPU, but a tensor is on device "
                f"'{on_device[0]}' (move it with .cpu(), or use backend='auto')"
            )
        return "c"
    if backend == "torch":
        other = [a for a in arrays if a is not None and _device_of(a) is None]
        if other:
            raise TypeError(f"backend='torch' takes torch tensors, not "
                            f"{type(other[0]).__name__} (numpy arrays go to the C core)")
        return "torch"
    return "torch" if on_device else "c"


def use_torch(backend, *arrays):
    """True when a call on ``arrays`` runs on the torch path
    (``select(backend, *arrays) == "torch"``); the default case, ``"auto"``
    with every tensor on the CPU, is decided without building anything."""
    if backend == "auto" and not any(
            _device_of(a) not in (None, "cpu") for a in arrays if a is not None):
        return False
    return select(backend, *arrays) == "torch"
