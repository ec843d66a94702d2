# SPDX-License-Identifier: MIT
"""Run AltGrad's experiments: ``python3 -m altgrad.experiments``
(``run``, ``matrix``, ``prepare``); see :mod:`altgrad.experiments.cli`."""
from .cli import main, matrix_configs, results_table

__all__ = ["main", "matrix_configs", "results_table"]
