# SPDX-License-Identifier: MIT
"""Alert rules (fixed AltGrad semantics), the local run directory, and the
W&B tracker through a patched _get_wandb."""
import csv
import importlib.util
import json
import math
import sys
from unittest import mock

import pytest

from altgrad.training import callbacks as CB
from altgrad.training.config import TrainConfig, load_config


def test_nan_patience_and_actions():
    r = CB.AlertRules(TrainConfig(nan_patience=3))
    assert r.check(0, {"loss": 1.0}) == ("continue", [])
    assert r.check(1, {"loss": math.nan})[0] == "save_checkpoint"
    assert r.check(2, {"loss": math.inf})[0] == "continue"  # inf counts too
    action, alerts = r.check(3, {"loss": -math.inf})
    assert action == "stop" and alerts[0].level == "error" and "3 consecutive" in alerts[0].text
    r.check(4, {"loss": 2.0})
    assert r.consecutive_nan_steps == 0
    one = CB.AlertRules(TrainConfig(nan_patience=1))
    assert one.check(0, {"loss": math.nan})[0] == "stop"


def test_stall_and_overflow_under_both_names():
    r = CB.AlertRules(TrainConfig(bit_stall_threshold=0.5, overflow_threshold=0.01))
    for keys in (("bit_stall_rate", "overflow_rate"),
                 ("quantization/bit_stall_rate", "quantization/overflow_rate")):
        action, alerts = r.check(5, {"loss": math.nan, keys[0]: 0.6, keys[1]: 0.02})
        # the first NaN no longer skips the other rules
        assert action == "save_checkpoint"
        assert [a.title for a in alerts] == ["High bit stall rate", "High overflow rate"]
        # still high: no repeat; back below, then high again: raised again
        assert r.check(6, {"loss": 1.0, keys[0]: 0.7, keys[1]: 0.03}) == ("continue", [])
        assert r.check(7, {keys[0]: 0.1, keys[1]: 0.0}) == ("continue", [])
    assert r.check(8, {"bit_stall_rate": 0.5, "overflow_rate": 0.01}) == ("continue", [])
    assert len(r.check(9, {"bit_stall_rate": 0.51})[1]) == 1


def test_run_logger_files(tmp_path):
    cfg = TrainConfig(n_layer=1, n_head=1, n_embd=8)
    with CB.RunLogger(tmp_path / "run", cfg) as lg:
        for s in range(5):
            m = {"loss": 3.0 - s * 0.1, "grad_norm": 1.0, "learning_rate": 1e-3}
            if s == 4:
                m["val_loss"] = 2.9
                m["loss"] = math.nan
            lg.log_step(s, m)
        lg.alert(CB.Alert(4, "warn", "High bit stall rate", "x"))
    d = tmp_path / "run"
    assert load_config(d / "config.yaml") == cfg
    lines = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and lines[4]["loss"] == "nan" and lines[4]["val_loss"] == 2.9
    rows = list(csv.DictReader(open(d / "metrics.csv")))
    assert rows[0].keys() >= {"step", "loss", "grad_norm", "val_loss"}
    assert rows[0]["val_loss"] == "" and float(rows[4]["val_loss"]) == 2.9
    assert json.loads((d / "alerts.jsonl").read_text())["title"] == "High bit stall rate"
    svg = (d / "loss.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    if importlib.util.find_spec("matplotlib") is None:
        assert not (d / "loss.png").exists() and "<polyline" in svg  # the plain-SVG fallback
    else:
        assert (d / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_svg_fallback_draws_every_series():
    svg = CB._svg_plot([[("loss", [(0, 3.0), (1, 2.0)]), ("val_loss", [(1, 2.5)])],
                        [("grad_norm", [(0, 1.0), (1, 1.0)])]])
    assert svg.count("<polyline") == 3 and "val_loss" in svg and svg.rstrip().endswith("</svg>")


def test_wandb_tracker_with_mock(monkeypatch):
    wb = mock.MagicMock()
    monkeypatch.setattr(CB, "_get_wandb", lambda: wb)
    cfg = TrainConfig(run_name="r1", tags=["a"], nan_patience=2)
    t = CB.WandbTracker(cfg, run_id="abc")
    kw = wb.init.call_args.kwargs
    assert kw["project"] == "altgrad" and kw["name"] == "r1" and kw["tags"] == ["a"]
    assert kw["id"] == "abc" and kw["resume"] == "allow" and kw["config"]["n_layer"] == 6
    t.log_step(3, {"loss": 1.0})
    wb.log.assert_called_with({"loss": 1.0}, step=3)
    assert t.check_alerts(1, {"loss": math.nan}, cfg) == "save_checkpoint"
    assert t.check_alerts(2, {"loss": math.nan, "bit_stall_rate": 0.9}, cfg) == "stop"
    titles = [c.kwargs["title"].lower() for c in wb.alert.call_args_list]
    assert any("bit stall" in x for x in titles) and any("nan" in x for x in titles)
    assert t.consecutive_nan_steps == 2
    n = wb.alert.call_count
    assert t.check_alerts(3, {"loss": 1.0, "bit_stall_rate": 0.9}, cfg) == "continue"
    assert wb.alert.call_count == n  # still high: not sent again
    t.finish()
    wb.finish.assert_called_once()


def test_missing_wandb_says_how(monkeypatch):
    monkeypatch.setattr(CB, "_wandb", None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match="pip install wandb"):
        CB.WandbTracker(TrainConfig())
