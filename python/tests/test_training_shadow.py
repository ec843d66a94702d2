# SPDX-License-Identifier: MIT
"""FP32ShadowModel: an unquantized float32 copy, name-paired sync, AltGrad's
similarity keys; and altgrad.utils.reproducibility."""
import random

import numpy as np
import pytest
import torch

from altgrad.training.metrics import grad_snr
from altgrad.training.shadow import FP32ShadowModel, canonical_names
from altgrad.utils import (create_reproducible_dataloader, get_rng_state, set_rng_state,
                           set_seed_for_reproducibility)
from _training_models import TinyLM, WrapLinear, wrap_all


def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(32, (4, 8), generator=g)
    return x, torch.roll(x, -1, 1)


def test_shadow_of_wrapped_model_is_unwrapped_and_paired_by_name():
    torch.manual_seed(0)
    m = wrap_all(TinyLM(), own_buffer=True)
    assert canonical_names(m)["h.0.mlp.c_fc.linear.weight"] == "h.0.mlp.c_fc.weight"
    sh = FP32ShadowModel(m)
    assert not any(isinstance(x, WrapLinear) for x in sh.model.modules())
    assert set(dict(sh.model.named_parameters())) == set(canonical_names(m).values())
    with torch.no_grad():
        m.h[0].mlp["c_fc"].linear.weight.add_(1.0)
        m.h[1].seen.fill_(7.0)
    sh.sync_weights(m)
    assert torch.equal(sh.model.h[0].mlp["c_fc"].weight, m.h[0].mlp["c_fc"].linear.weight)
    assert float(sh.model.h[1].seen) == 7.0  # buffers synced


def test_similarity_keys_and_values():
    torch.manual_seed(0)
    m = TinyLM()
    sh = FP32ShadowModel(m)
    x, y = batch()
    m(x, y)[1].backward()
    sh.sync_weights(m)
    loss = sh.forward_backward(x, y)
    assert loss.item() > 0
    s = sh.compute_gradient_similarity(m)
    assert s["grad_cos_sim/mean"] > 0.9999 and abs(s["grad_snr/mean_diff"]) < 1e-5
    assert s["grad_snr/h/0/mlp/c_fc/weight_fp8"] == pytest.approx(
        grad_snr(m.h[0].mlp["c_fc"].weight.grad))
    assert "grad_cos_sim/h.0.mlp.c_fc.weight" in s
    # a quantized model's gradients differ from the shadow's
    torch.manual_seed(0)
    q = wrap_all(TinyLM())
    shq = FP32ShadowModel(q)
    q(x, y)[1].backward()
    shq.sync_weights(q)
    shq.forward_backward(x, y)
    sq = shq.compute_gradient_similarity(q)
    assert "grad_cos_sim/h.0.mlp.c_fc.weight" in sq and sq["grad_cos_sim/mean"] < 1.0


def test_sync_rejects_a_different_model():
    sh = FP32ShadowModel(TinyLM())
    with pytest.raises(ValueError, match="differ"):
        sh.sync_weights(TinyLM(n_layer=3))
    with pytest.raises(ValueError, match="shape"):
        sh.sync_weights(TinyLM(d=8))


def test_rng_state_round_trip_and_seed():
    set_seed_for_reproducibility(123, deterministic=False)
    a = (random.random(), np.random.rand(), torch.rand(1))
    set_seed_for_reproducibility(123, deterministic=False)
    assert (random.random(), np.random.rand()) == a[:2] and torch.equal(torch.rand(1), a[2])
    st = get_rng_state()
    assert set(st) >= {"python", "numpy", "torch_cpu"}
    b = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(st)
    assert (random.random(), np.random.rand()) == b[:2] and torch.equal(torch.rand(1), b[2])
    with pytest.raises(KeyError, match="numpy"):
        set_rng_state({"python": st["python"], "torch_cpu": st["torch_cpu"]})


def test_reproducible_dataloader():
    data = list(range(20))
    one = [b.tolist() for b in create_reproducible_dataloader(data, 5, seed=3)]
    two = [b.tolist() for b in create_reproducible_dataloader(data, 5, seed=3)]
    other = [b.tolist() for b in create_reproducible_dataloader(data, 5, seed=4)]
    assert one == two and one != other and sorted(sum(one, [])) == data


def test_imports_need_no_optional_extras():
    import subprocess
    import sys

    from conftest import PYDIR

    code = ("import sys\n"
            "for m in ('tiktoken', 'wandb', 'datasets', 'transformers', 'matplotlib'):\n"
            "    sys.modules[m] = None  # importing any of them now fails\n"
            "import altgrad.training as T\n"
            "from altgrad.training import (TrainConfig, Trainer, FormatExperimentRunner,\n"
            "    CheckpointManager, FP32ShadowModel, RunLogger, get_batch,\n"
            "    compute_gradient_stats, run_format_experiment)\n"
            "import altgrad.utils, altgrad.experiments, altgrad.training.prepare\n"
            "print('ok', flush=True)\n"
            "import runpy\n"  # and the command's real entry point: a usage error exits 1
            "sys.argv = ['altgrad.experiments', 'run']\n"
            "runpy.run_module('altgrad.experiments', run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": PYDIR, "PATH": "/usr/bin:/bin"})
    assert r.stdout.strip() == "ok", r.stderr
    assert r.returncode == 1 and "usage: python3 -m altgrad.experiments run" in r.stderr
