# SPDX-License-Identifier: MIT
"""Trainer on a small model and byte-level data: schedule, delayed gradient
scales, overflow/underflow/stall against plain recomputation, skipped NaN
steps, checkpoints and resume, the run directory."""
import json
import math
import os

import pytest
import torch

from altgrad.quantization import E3M4, E5M2, compute_scale, quantize
from altgrad.training.config import TrainConfig
from altgrad.training.data import DataError
from altgrad.training.prepare import prepare
from altgrad.training.trainer import Trainer, lr_at_step
from _training_models import TinyLM, wrap_all

TEXT = "And God said, Let there be light: and there was light. " * 40


@pytest.fixture
def data_dir(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text(TEXT)
    prepare(tmp_path / "data", src)
    return str(tmp_path / "data")


def cfg(tmp_path, **kw):
    base = dict(n_layer=1, n_head=1, n_embd=16, block_size=8, vocab_size=256, batch_size=4,
                max_steps=6, warmup_steps=2, eval_interval=3, eval_iters=2, log_interval=100,
                checkpoint_interval=4, checkpoint_dir=str(tmp_path / "ck"), seed=1)
    base.update(kw)
    return TrainConfig(**base)


def model(fmt=E5M2):
    torch.manual_seed(0)
    return wrap_all(TinyLM(vocab=256, d=16, n_layer=1, block_size=8), fmt)


def test_lr_schedule():
    c = TrainConfig(learning_rate=1.0, warmup_steps=4, max_steps=14, min_lr_ratio=0.1)
    assert [lr_at_step(c, s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at_step(c, 4) == pytest.approx(1.0) and lr_at_step(c, 14) == pytest.approx(0.1)
    assert lr_at_step(c, 9) == pytest.approx(0.55)  # cosine midpoint
    lin = TrainConfig(learning_rate=1.0, warmup_steps=0, max_steps=10, lr_schedule="linear",
                      min_lr_ratio=0.0)
    assert lr_at_step(lin, 5) == pytest.approx(0.5)


def test_fp8_step_metrics_against_recomputation(tmp_path, data_dir):
    c = cfg(tmp_path, use_fp8=True, fp8_format="E5M2")
    t = Trainer(c, model(), data_dir, verbose=False)
    x, y = torch.randint(256, (4, 8)), torch.randint(256, (4, 8))
    t.train_step(x, y)  # fills the gradient histories
    seen = {}
    inner = t._quantize_gradients

    def capture(metrics):
        seen["amax"] = {n: h.get_amax() for n, h in t.amax_histories.items()}
        seen["raw"] = {n: p.grad.clone() for n, p in t.model.named_parameters()}
        inner(metrics)

    t._quantize_gradients = capture
    m = t.train_step(x, y)
    hist_amax, raw = seen["amax"], seen["raw"]
    over = under = total = 0
    for name, p in t.model.named_parameters():
        if p.dim() < 2:
            continue
        canon = name.replace(".linear.", ".")
        g = raw[name]
        s = compute_scale(hist_amax[canon], E5M2)  # the previous steps' scale
        q = quantize(g, E5M2, s)
        over += int((g.abs() > E5M2.max_representable_value * s).sum())
        under += int(((g != 0) & (q == 0)).sum())
        total += g.numel()
    assert m["quantization/overflow_rate"] == over / total
    assert m["quantization/underflow_rate"] == under / total
    assert 0.0 <= m["quantization/bit_stall_rate"] <= 1.0
    assert m["learning_rate"] == lr_at_step(c, 0) == c.learning_rate / 2  # warm-up
    assert "grad_norm" in m and "grad_norm_l2/mean" in m


def test_delayed_scale_sees_overflow(tmp_path, data_dir):
    c = cfg(tmp_path, use_fp8=True, fp8_format="E3M4")
    t = Trainer(c, model(E3M4), data_dir, verbose=False)
    x, y = torch.randint(256, (4, 8)), torch.randint(256, (4, 8))
    t.train_step(x, y)
    for h in t.amax_histories.values():  # pretend earlier gradients were tiny
        h.reset()
        h.update(torch.tensor([1e-6]))
    m = t.train_step(x, y)
    assert m["quantization/overflow_rate"] > 0.5  # AltGrad's same-gradient scale: always 0


def test_stall_is_measured_on_the_real_update(tmp_path, data_dir):
    c = cfg(tmp_path, use_fp8=True, learning_rate=1e-9, warmup_steps=0)
    t = Trainer(c, model(), data_dir, verbose=False)
    x, y = torch.randint(256, (4, 8)), torch.randint(256, (4, 8))
    assert t.train_step(x, y)["quantization/bit_stall_rate"] == 1.0  # nothing moves
    c2 = cfg(tmp_path, use_fp8=True, learning_rate=0.5, warmup_steps=0, grad_clip=0.0)
    t2 = Trainer(c2, model(), data_dir, verbose=False)
    assert t2.train_step(x, y)["quantization/bit_stall_rate"] < 0.5


def test_nan_loss_skips_the_update(tmp_path, data_dir):
    t = Trainer(cfg(tmp_path), model(), data_dir, verbose=False)
    before = [p.detach().clone() for p in t.model.parameters()]
    with torch.no_grad():
        t.model.lm_head.weight[0, 0] = float("nan")
    before[-1][0, 0] = float("nan")
    m = t.train_step(torch.randint(256, (4, 8)), torch.randint(256, (4, 8)))
    assert math.isnan(m["loss"]) and m["skipped_step"] == 1 and t.skipped_steps == 1
    for a, b in zip(before, t.model.parameters()):
        assert torch.equal(torch.nan_to_num(a), torch.nan_to_num(b.detach()))


def test_train_checkpoint_resume_and_run_dir(tmp_path, data_dir):
    c = cfg(tmp_path, use_fp8=True, use_shadow=True, run_dir=str(tmp_path / "run"))
    t = Trainer(c, model(), data_dir, verbose=False)
    last = t.train()
    assert t.step == 6 and "val_loss" in last and math.isfinite(last["loss"])
    assert sorted(os.listdir(tmp_path / "ck")) == ["best.json", "best.pt", "step_4.pt",
                                                    "step_6.pt"]
    rows = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(6))
    assert "grad_cos_sim/mean" in rows[0] and "val_loss" in rows[2]
    assert (tmp_path / "run" / "metrics.csv").exists() and (tmp_path / "run" / "loss.svg").exists()
    # resume from step 4 and replay steps 4, 5: same weights as the first run
    c2 = cfg(tmp_path, use_fp8=True, use_shadow=True)
    t2 = Trainer(c2, model(), data_dir, verbose=False)
    t2.resume(str(tmp_path / "ck" / "step_4.pt"))
    assert t2.step == 4
    t2.train()
    for a, b in zip(t.model.parameters(), t2.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6), "resume did not continue the same run"
    other = cfg(tmp_path, use_fp8=True, fp8_format="E3M4")
    with pytest.raises(Exception, match="another config"):
        Trainer(other, model(E3M4), data_dir, verbose=False).resume(str(tmp_path / "ck" /
                                                                        "step_6.pt"))


def test_vocab_mismatch_and_missing_data(tmp_path, data_dir):
    with pytest.raises(DataError, match="vocab_size 50257"):
        Trainer(cfg(tmp_path, vocab_size=50257), model(), data_dir)
    t = Trainer(cfg(tmp_path), model(), str(tmp_path / "none"), verbose=False)
    with pytest.raises(DataError, match="prepare"):
        t.train()


def test_wandb_only_when_asked_and_alerts_reach_it(tmp_path, data_dir, monkeypatch):
    from unittest import mock

    from altgrad.training import callbacks

    wb = mock.MagicMock()
    monkeypatch.setattr(callbacks, "_get_wandb", lambda: wb)
    t = Trainer(cfg(tmp_path, max_steps=2), model(), data_dir, verbose=False)
    assert t.tracker is None  # the default: no W&B even with project set
    t = Trainer(cfg(tmp_path, max_steps=2, use_wandb=True, bit_stall_threshold=0.0,
                    use_fp8=True), model(), data_dir, verbose=False)
    t.train()
    assert wb.init.called and wb.log.call_count == 2 and wb.finish.called
    assert any("bit stall" in c.kwargs["title"].lower() for c in wb.alert.call_args_list)
