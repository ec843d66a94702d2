# SPDX-License-Identifier: MIT
"""FormatExperimentRunner / run_format_experiment on a small model, the
collapse path (failure report, checkpoint), and the experiments command's
error handling."""
import math
import os

import pytest
import torch

from altgrad.training.config import TrainConfig, save_config
from altgrad.training.format_runner import (FormatExperimentRunner, apply_quick,
                                            run_format_experiment)
from altgrad.training.prepare import prepare
from _training_models import TinyLM, wrap_all

TEXT = "In the beginning God created the heaven and the earth. " * 40


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    prepare(tmp_path / "data", tmp_path / "t.txt")
    return str(tmp_path / "data")


def cfg(tmp_path, **kw):
    base = dict(n_layer=1, n_head=1, n_embd=16, block_size=8, vocab_size=256, batch_size=4,
                max_steps=5, warmup_steps=1, eval_interval=5, eval_iters=1, log_interval=100,
                checkpoint_interval=100, checkpoint_dir=str(tmp_path / "ck"), use_fp8=True,
                diagnostic_interval=2, log_stiffness=True, log_ulp=True)
    base.update(kw)
    return TrainConfig(**base)


def small():
    torch.manual_seed(0)
    return wrap_all(TinyLM(vocab=256, d=16, n_layer=1, block_size=8))


def test_runner_completes_with_diagnostics(tmp_path, data_dir):
    c = cfg(tmp_path)
    res = FormatExperimentRunner(c, small(), data_dir, verbose=False).run()
    assert res.completed and res.steps_completed == 5 and res.format_name == "E5M2"
    assert len(res.metrics_history["loss"]) == 5 and math.isfinite(res.final_val_loss)
    assert [d.step for d in res.diagnostics] == [0, 2, 4]
    assert all(d.stiffness_mean > 0 for d in res.diagnostics)
    assert res.diagnostics[1].ulp_mean >= 0 and res.failure_report_path is None
    assert c.fp8_format == "E5M2"  # the caller's config is not changed


def test_nan_collapse_writes_report_and_checkpoint(tmp_path, data_dir):
    c = cfg(tmp_path, nan_patience=2)
    m = small()
    with torch.no_grad():
        m.lm_head.weight.fill_(float("nan"))
    res = FormatExperimentRunner(c, m, data_dir, verbose=False).run()
    assert not res.completed and res.collapse_step == 1
    assert res.collapse_reason == "NaN/Inf loss" and res.skipped_steps == 2
    text = open(res.failure_report_path).read()
    assert "| Collapse Step | 1 |" in text and "| Total Steps | 2 / 5 |" in text
    assert os.path.exists(tmp_path / "ck" / "collapse_step_1.pt")
    assert os.path.exists(tmp_path / "ck" / "anomaly_0.pt")


def test_missing_data_is_an_error_not_a_collapse(tmp_path, data_dir):
    from altgrad.training.data import DataError

    runner = FormatExperimentRunner(cfg(tmp_path), small(), str(tmp_path / "none"),
                                    verbose=False)
    with pytest.raises(DataError, match="no such token file"):
        runner.run()
    with pytest.raises(DataError, match="no token files"):  # not filled with the Bible
        run_format_experiment(cfg(tmp_path), data_dir=tmp_path / "mine", model=small(),
                              verbose=False)
    assert not (tmp_path / "mine").exists()


def test_run_format_experiment_from_yaml_with_quick(tmp_path, data_dir):
    p = tmp_path / "c.yaml"
    save_config(cfg(tmp_path, vocab_size=50257, max_steps=2000), p)
    res = run_format_experiment(str(p), data_dir=data_dir, quick=True, verbose=False,
                                overrides={"max_steps": 3, "n_layer": 1, "block_size": 8, "n_embd": 16, "n_head": 1},
                                model=small())
    assert res.completed and res.max_steps == 3


def test_apply_quick():
    q = apply_quick(TrainConfig(max_steps=2000, vocab_size=50257, use_fp8=True))
    assert (q.n_layer, q.n_embd, q.block_size, q.vocab_size, q.max_steps) == (2, 128, 64, 256,
                                                                               200)
    assert q.use_fp8 and q.eval_interval == 50
    assert apply_quick(TrainConfig(max_steps=30)).max_steps == 30


@pytest.mark.parametrize("text,args,match", [
    (None, [], "none.yaml"),
    ("n_layer: [\n", [], "malformed YAML"),
    ("fp8_format: E4M4\n", [], "unknown format 'E4M4'"),
    ("use_fp8: true\n", ["--set", "novalue"], "KEY=VALUE"),
    ("use_fp8: true\n", ["--set", "colour=red"], "unknown key"),
])
def test_cli_bad_input_exits_2(tmp_path, capsys, text, args, match):
    from altgrad.experiments import main

    p = tmp_path / ("none.yaml" if text is None else "c.yaml")
    if text is not None:
        p.write_text(text)
    assert main(["run", str(p), "--out", str(tmp_path / "runs"), *args]) == 2
    assert match in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["run"])
    assert e.value.code == 1
    assert main(["matrix", "--formats", "E9M9"]) == 2
    assert "E9M9" in capsys.readouterr().err
