# SPDX-License-Identifier: MIT
"""AltGrad's training stack on the altgrad C library.

Importing this package loads nothing heavy: each name is imported from its
submodule on first use (``from altgrad.training import ManifoldAdamW``
imports :mod:`.optimizer` only), so no submodule's dependencies are needed
by another's users.
"""
import importlib

# name -> submodule that defines it; submodules add their names here
_LAZY = {
    "ManifoldAdamW": "optimizer",
    "GridOptim": "optimizer",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'altgrad.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{mod}", __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
