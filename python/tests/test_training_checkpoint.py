# SPDX-License-Identifier: MIT
"""Checkpoints: round trip (model, optimizer, scaler, RNG, quantization
state), safe loading, atomic writes, rotation and best-by-loss with NaN,
mismatched configs."""
import dataclasses
import os
import pickle
import random

import numpy as np
import pytest
import torch

from altgrad.training.checkpoint import (CheckpointError, CheckpointManager, load_checkpoint,
                                         read_checkpoint, save_checkpoint)
from altgrad.training.config import TrainConfig
from _training_models import TinyLM


class Scaler:  # anything with state_dict / load_state_dict
    def __init__(self):
        self.s = {"scale": torch.tensor([2.0, 4.0]), "history": [1.0, 3.5], "step": 7}

    def state_dict(self):
        return self.s

    def load_state_dict(self, s):
        self.s = s


def trained(seed=0):
    torch.manual_seed(seed)
    m = TinyLM()
    opt = m.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
    x = torch.randint(32, (2, 8))
    for _ in range(2):
        opt.zero_grad()
        m(x, x)[1].backward()
        opt.step()
    return m, opt


def test_round_trip_everything(tmp_path):
    m, opt = trained()
    sc = Scaler()
    cfg = TrainConfig(n_layer=2)
    qs = {"amax": {"h.0.mlp.c_fc.weight": 0.5}, "counts": [1, 2], "nan": float("nan")}
    p = tmp_path / "deep" / "ck.pt"
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(p, m, opt, sc, 17, cfg, qs)
    expect = (random.random(), np.random.rand(), torch.rand(1))
    m2, opt2 = trained(seed=5)
    sc2 = Scaler()
    sc2.s = {}
    step, c, q = load_checkpoint(p, m2, opt2, sc2, config=cfg)
    assert step == 17 and c == dataclasses.asdict(cfg)
    assert q["amax"] == qs["amax"] and q["counts"] == [1, 2] and np.isnan(q["nan"])
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        assert torch.equal(s1["state"][k]["exp_avg"], s2["state"][k]["exp_avg"])
    assert torch.equal(sc2.s["scale"], sc.s["scale"]) and sc2.s["step"] == 7
    assert (random.random(), np.random.rand()) == expect[:2] and torch.equal(torch.rand(1),
                                                                             expect[2])


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickles_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"model_state_dict": Evil()}))
    zipped = tmp_path / "zip.pt"
    torch.save({"model_state_dict": {"w": torch.ones(1)}, "x": Evil()}, zipped)
    with pytest.raises(CheckpointError, match="zip format"):
        read_checkpoint(raw)
    with pytest.raises(CheckpointError, match="refused global posix.system"):
        read_checkpoint(zipped)
    assert not (tmp_path / "PWNED").exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        read_checkpoint(junk)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "none.pt")


def test_unsafe_state_not_saved(tmp_path):
    m, opt = trained()
    p = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=r"quantization_state\['obj'\]"):
        save_checkpoint(p, m, opt, None, 1, {}, {"obj": object()})
    assert not os.listdir(tmp_path)  # nothing half-written


def test_other_config_is_a_clear_error(tmp_path):
    m, opt = trained()
    p = tmp_path / "ck.pt"
    save_checkpoint(p, m, opt, None, 3, TrainConfig(use_fp8=True, fp8_format="E5M2"))
    before = [t.clone() for t in m.state_dict().values()]
    with pytest.raises(CheckpointError, match="fp8_format: 'E5M2' in the checkpoint, 'E3M4'"):
        load_checkpoint(p, m, opt, config=TrainConfig(use_fp8=True, fp8_format="E3M4"))
    assert all(torch.equal(a, b) for a, b in zip(before, m.state_dict().values()))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(p, TinyLM(d=8), None)


def test_manager_rotation_best_and_nan(tmp_path):
    m, opt = trained()
    cm = CheckpointManager(tmp_path / "ck", max_checkpoints=2)
    assert cm.latest() is None and cm.best() is None
    cm.save(100, m, opt, None, {}, float("nan"))  # NaN never becomes the best
    assert cm.best_loss is None
    cm.save(200, m, opt, None, {}, 2.0)
    cm.save(300, m, opt, None, {}, float("inf"))
    cm.save(400, m, opt, None, {}, 1.5)
    cm.save(400, m, opt, None, {}, 9.0)  # same step again: replaced, not duplicated
    files = sorted(os.listdir(tmp_path / "ck"))
    assert files == ["best.json", "best.pt", "step_300.pt", "step_400.pt"]
    assert [s for s, _ in cm.checkpoints] == [300, 400] and cm.best_loss == 1.5
    assert read_checkpoint(cm.best())["step"] == 400
    anomaly = cm.save_on_anomaly(401, m, opt, None, {})
    assert os.path.basename(anomaly) == "anomaly_401.pt"
    again = CheckpointManager(tmp_path / "ck", max_checkpoints=2)  # rebuilt from disk
    assert [s for s, _ in again.checkpoints] == [300, 400] and again.best_loss == 1.5
    again.save(500, m, opt, None, {}, 3.0)
    assert again.best_loss == 1.5 and not (tmp_path / "ck" / "step_300.pt").exists()
    assert not [f for f in os.listdir(tmp_path / "ck") if "tmp" in f]
