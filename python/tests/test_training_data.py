# SPDX-License-Identifier: MIT
"""get_batch over token files, and the preparation command (byte-level,
--input, the default Bible corpus, errors)."""
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch

from altgrad.training import data as D
from altgrad.training import prepare as P


def write_bins(d, train, val):
    os.makedirs(d, exist_ok=True)
    np.asarray(train, dtype=np.uint16).tofile(os.path.join(d, "train.bin"))
    np.asarray(val, dtype=np.uint16).tofile(os.path.join(d, "val.bin"))


def test_get_batch_windows_and_shift(tmp_path):
    write_bins(tmp_path, np.arange(1000) % 60000, np.arange(100))
    torch.manual_seed(0)
    x, y = D.get_batch("train", tmp_path, 16, 4, "cpu")
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    for row_x, row_y in zip(x, y):
        start = int(row_x[0])
        assert torch.equal(row_x, torch.arange(start, start + 16))
        assert torch.equal(row_y, row_x + 1)
    torch.manual_seed(0)
    x2, _ = D.get_batch("train", tmp_path, 16, 4, "cpu")
    assert torch.equal(x, x2)  # global RNG, AltGrad's semantics
    g = torch.Generator().manual_seed(5)
    xg, _ = D.get_batch("train", tmp_path, 16, 4, "cpu", generator=g)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(xg, D.get_batch("train", tmp_path, 16, 4, "cpu", generator=g)[0])


def test_every_start_reachable_including_single_window(tmp_path):
    write_bins(tmp_path, np.arange(9), np.arange(5))
    x, y = D.get_batch("train", tmp_path, 8, 3)  # exactly one window (AltGrad: error)
    assert torch.equal(x[0], torch.arange(8)) and torch.equal(y[0], torch.arange(1, 9))
    write_bins(tmp_path, np.arange(10), np.arange(5))
    starts = {int(D.get_batch("train", tmp_path, 8, 64)[0][i, 0]) for i in range(64)}
    assert starts == {0, 1}  # the last start (1) is drawn too


def test_get_batch_errors(tmp_path):
    write_bins(tmp_path, np.arange(10), np.arange(5))
    with pytest.raises(D.DataError, match="fewer than block_size"):
        D.get_batch("val", tmp_path, 8, 2)
    with pytest.raises(D.DataError, match="split must be"):
        D.get_batch("test", tmp_path, 4, 2)
    with pytest.raises(D.DataError, match="altgrad.training.prepare"):
        D.get_batch("train", tmp_path / "nowhere", 4, 2)
    with pytest.raises(ValueError):
        D.get_batch("train", tmp_path, 0, 2)


def test_prepare_input_byte_level(tmp_path):
    text = "In the beginning was the Word. \u00e9\n" * 50
    src = tmp_path / "t.txt"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "data"
    meta = P.prepare(out, src, val_fraction=0.1)
    ids = np.concatenate([np.fromfile(out / "train.bin", dtype=np.uint16),
                          np.fromfile(out / "val.bin", dtype=np.uint16)])
    assert bytes(ids.astype(np.uint8)) == text.encode("utf-8")  # lossless, in order
    assert meta["vocab_size"] == 256 and meta["tokenizer"] == "byte"
    assert meta["val_tokens"] == round(len(ids) * 0.1)
    assert json.loads((out / "meta.json").read_text()) == meta
    assert D.check_vocab(out, 256) == meta
    with pytest.raises(D.DataError, match="vocab_size 50257 in the config.*--quick"):
        D.check_vocab(out, 50257)
    mtime = os.path.getmtime(out / "train.bin")
    assert P.prepare(out, src, val_fraction=0.1) == meta  # up to date: untouched
    assert os.path.getmtime(out / "train.bin") == mtime
    assert not [f for f in os.listdir(out) if "tmp" in f]


def test_prepare_errors(tmp_path, monkeypatch):
    empty = tmp_path / "e.txt"
    empty.write_text("  \n")
    with pytest.raises(P.PrepareError, match="empty"):
        P.prepare(tmp_path / "o", empty)
    with pytest.raises(ValueError, match="val_fraction"):
        P.prepare(tmp_path / "o", empty, val_fraction=1.5)
    with pytest.raises(FileNotFoundError):
        P.prepare(tmp_path / "o", tmp_path / "missing.txt")
    monkeypatch.setattr(P.shutil, "which", lambda name: None)
    with pytest.raises(P.PrepareError, match="apt-get install bible-kjv"):
        P.prepare(tmp_path / "o")
    (tmp_path / "t.txt").write_text("hello world, hello world")
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import fails
    with pytest.raises(P.PrepareError, match="pip install tiktoken"):
        P.prepare(tmp_path / "o", tmp_path / "t.txt", tokenizer="gpt2")


def test_prepare_command_default_bible(tmp_path, capsys):
    if shutil.which("bible") is None:
        pytest.skip("bible-kjv is not installed")
    assert P.main(["--out", str(tmp_path / "kjv")]) == 0
    assert "tokenizer byte (vocab_size 256)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "kjv" / "meta.json").read_text())
    assert meta["vocab_size"] == 256 and meta["train_tokens"] + meta["val_tokens"] > 4_000_000
    head = np.fromfile(tmp_path / "kjv" / "train.bin", dtype=np.uint16, count=200)
    assert b"In the beginning God created" in bytes(head.astype(np.uint8))


def test_prepare_command_bad_input(tmp_path, capsys):
    assert P.main(["--input", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
