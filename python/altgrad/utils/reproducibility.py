# SPDX-License-Identifier: MIT
"""Seeding and RNG state (ALTGRAD_API.md section 18).

One RNG-state schema for the whole stack (checkpoints use it too; AltGrad
had two, D-CKPT-4): ``{"python": ..., "numpy": ..., "torch_cpu": ...,
["torch_cuda": [...]]}``, made of plain values and tensors only, so that a
checkpoint can hold it without pickling arbitrary objects: numpy's
MT19937 state is stored as ``("MT19937", [624 ints], pos, has_gauss,
cached_gaussian)``.

Differences from AltGrad: ``set_seed_for_reproducibility`` turns on
deterministic algorithms with ``warn_only=True`` (AltGrad's ``True`` made
later non-deterministic CUDA ops raise, and its try/except guarded nothing,
D-REPRO-2) and can leave them off (``deterministic=False``);
``CUBLAS_WORKSPACE_CONFIG`` only takes effect when set before CUDA starts,
so it is set with ``setdefault`` and the function says so (D-REPRO-1).
"""
import os
import random

import numpy as np
import torch

__all__ = ["set_seed_for_reproducibility", "seed_worker", "create_reproducible_dataloader",
           "get_rng_state", "set_rng_state", "RNG_KEYS"]

RNG_KEYS = ("python", "numpy", "torch_cpu")


def set_seed_for_reproducibility(seed, deterministic=True):
    """Seed Python's ``random``, numpy's global RNG and torch (every CUDA
    device too). With `deterministic`: cuDNN deterministic and not
    benchmarking, ``torch.use_deterministic_algorithms(True,
    warn_only=True)``, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless already
    set (effective only before the first CUDA call: set it in the
    environment of the process for CUDA runs). Global, persistent effects."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def seed_worker(worker_id):
    """DataLoader ``worker_init_fn``: seeds numpy and random from torch's
    per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def create_reproducible_dataloader(dataset, batch_size, seed, shuffle=True, num_workers=0,
                                   **kwargs):
    """A DataLoader whose order depends only on `seed` (its own
    torch.Generator, given when shuffling); workers seeded by
    :func:`seed_worker`. Other keyword arguments go to DataLoader."""
    if shuffle:
        g = torch.Generator()
        g.manual_seed(int(seed))
        kwargs["generator"] = g
    if num_workers > 0:
        kwargs.setdefault("worker_init_fn", seed_worker)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers, **kwargs)


def get_rng_state():
    """The state of every global RNG in the schema of the module docstring."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": (kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)),
        "torch_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _tuples(x):
    # a state that went through a container conversion may hold lists
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def set_rng_state(state):
    """Restore :func:`get_rng_state`'s result. KeyError naming the missing
    key when one of python / numpy / torch_cpu is absent; the CUDA states
    only when saved and CUDA is available."""
    missing = [k for k in RNG_KEYS if k not in state]
    if missing:
        raise KeyError(f"RNG state lacks {', '.join(missing)}")
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss),
                         float(cached)))
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
