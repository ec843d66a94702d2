# SPDX-License-Identifier: MIT
"""Utilities of AltGrad's training stack: :mod:`.reproducibility`."""
from .reproducibility import (
    create_reproducible_dataloader,
    get_rng_state,
    seed_worker,
    set_rng_state,
    set_seed_for_reproducibility,
)

__all__ = ["set_seed_for_reproducibility", "seed_worker", "create_reproducible_dataloader",
           "get_rng_state", "set_rng_state"]
