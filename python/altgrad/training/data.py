# SPDX-License-Identifier: MIT
"""Token files in AltGrad's layout and random batches from them.

A data directory holds ``train.bin`` and ``val.bin`` (flat little-endian
uint16 token ids, as nanoGPT and AltGrad write them) and, when this
project's preparation command wrote them (:mod:`altgrad.training.prepare`),
``meta.json`` with the tokenizer and its ``vocab_size``.

:func:`get_batch` draws ``batch_size`` windows of ``block_size + 1`` tokens
at uniformly random starts: ``x`` the first ``block_size``, ``y`` the same
shifted by one. Differences from AltGrad (ALTGRAD_API.md 21.8): every start
``0 .. len - block_size - 1`` can be drawn (AltGrad excluded the last one and
failed when exactly one window fits), a file too short for one window is a
:class:`DataError`, a split other than ``"train"`` / ``"val"`` is an error
(AltGrad read val.bin for any other string), and the random stream can be
an explicit ``torch.Generator`` (default: torch's global one, as AltGrad).
"""
import json
import os

import numpy as np
import torch

__all__ = ["get_batch", "load_meta", "check_vocab", "token_file", "DataError", "SPLITS"]

SPLITS = ("train", "val")


class DataError(ValueError):
    """Missing or unusable token files (the message says which and how to
    make them)."""


def token_file(data_dir, split):
    """The path of `split`'s token file; DataError for an unknown split or a
    missing file (naming the preparation command)."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, not {split!r}")
    path = os.path.join(os.fspath(data_dir), f"{split}.bin")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such token file; make one with "
                        f"`python3 -m altgrad.training.prepare --out {data_dir}`")
    return path


def load_meta(data_dir):
    """``meta.json`` of a data directory as a dict, or None when there is
    none (token files from elsewhere). DataError when it cannot be read."""
    path = os.path.join(os.fspath(data_dir), "meta.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("vocab_size"), int):
        raise DataError(f"{path}: expected an object with an integer vocab_size")
    return meta


def check_vocab(data_dir, vocab_size):
    """DataError when the data directory's tokenizer does not match a model
    with `vocab_size` outputs: ids at or above it could not be predicted
    (data vocabulary larger), or the config names a different tokenizer's
    vocabulary (e.g. GPT-2's 50257 against byte-level data's 256). Returns
    the meta dict (None when the directory has none)."""
    meta = load_meta(data_dir)
    if meta is not None and meta["vocab_size"] != vocab_size:
        raise DataError(
            f"vocab_size {vocab_size} in the config, but the data in {data_dir} was "
            f"tokenized with {meta.get('tokenizer', '?')!r} (vocab_size {meta['vocab_size']}). "
            f"Set vocab_size: {meta['vocab_size']} (or run with --quick, which takes the data's "
            f"vocabulary), or prepare the data with a matching tokenizer "
            f"(--tokenizer gpt2 for 50257, needs tiktoken)")
    return meta


def get_batch(split, data_dir, block_size, batch_size, device="cpu", generator=None):
    """``(x, y)``, int64 tensors of shape (batch_size, block_size) on
    `device`: random windows of `split`'s token file, ``y`` = ``x`` shifted
    by one token. Starts come from ``torch.randint`` with `generator` (or the
    global torch RNG), so the same seed gives the same batch. DataError for a
    missing file, an unknown split, or a file shorter than block_size + 1
    tokens; ValueError for block_size or batch_size < 1."""
    if int(block_size) < 1 or int(batch_size) < 1:
        raise ValueError(f"block_size and batch_size must be >= 1, got {block_size}, {batch_size}")
    path = token_file(data_dir, split)
    if os.path.getsize(path) % 2:
        raise DataError(f"{path}: odd size: not a uint16 token file")
    data = np.memmap(path, dtype=np.uint16, mode="r")
    n_starts = len(data) - block_size
    if n_starts < 1:
        raise DataError(f"{path}: {len(data)} tokens, fewer than block_size + 1 = "
                        f"{block_size + 1}")
    ix = torch.randint(n_starts, (batch_size,), generator=generator).tolist()
    win = np.stack([np.asarray(data[i:i + block_size + 1], dtype=np.int64) for i in ix])
    x = torch.from_numpy(win[:, :-1].copy())
    y = torch.from_numpy(win[:, 1:].copy())
    return x.to(device), y.to(device)
