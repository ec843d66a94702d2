# SPDX-License-Identifier: MIT
"""AltGrad's shipped configs, unchanged, run with the quick override for a
few steps through the whole stack (GPT, altgrad.integration, optimizers),
and the experiments command end to end."""
import json
import math
import os

import pytest

pytest.importorskip("altgrad.training.model")
pytest.importorskip("altgrad.integration")

from altgrad.experiments import main, matrix_configs  # noqa: E402
from altgrad.training.format_runner import run_format_experiment  # noqa: E402
from altgrad.training.prepare import prepare  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "..", "experiments", "configs")
TEXT = "And the evening and the morning were the first day. " * 300


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    (d / "t.txt").write_text(TEXT)
    prepare(d / "data", d / "t.txt")
    return str(d / "data")


@pytest.mark.parametrize("name", ["bf16_baseline", "e3m4_uniform", "e5m2_manifold"])
def test_shipped_config_runs_quick(tmp_path, data_dir, name):
    if name == "e5m2_manifold":
        pytest.importorskip("altgrad.training.optimizer")
    res = run_format_experiment(os.path.join(CONFIGS, f"{name}.yaml"), data_dir=data_dir,
                                quick=True, verbose=False,
                                overrides={"max_steps": 3,
                                           "checkpoint_dir": str(tmp_path / "ck"),
                                           "run_dir": str(tmp_path / "run")})
    assert res.completed and res.steps_completed == 3
    assert math.isfinite(res.final_loss) and math.isfinite(res.final_val_loss)
    assert res.format_name == ("BF16" if name == "bf16_baseline" else name[:4].upper())
    assert os.path.exists(tmp_path / "ck" / "step_3.pt")
    rows = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl")]
    assert len(rows) == 3
    if name != "bf16_baseline":
        assert "grad_cos_sim/mean" in rows[0] and "quantization/bit_stall_rate" in rows[0]
    if name == "e5m2_manifold":
        assert "bit_position/mean" in rows[-1]


def test_command_run_and_matrix_subset(tmp_path, data_dir, capsys):
    pytest.importorskip("altgrad.training.optimizer")  # the matrix's ManifoldAdamW runs
    out = tmp_path / "runs"
    cfg = os.path.join(CONFIGS, "e5m2_short.yaml")
    assert main(["run", cfg, "--quick", "--steps", "2", "--quiet", "--data", data_dir,
                 "--out", str(out)]) == 0
    res = json.loads((out / "e5m2_short" / "result.json").read_text())
    assert res["completed"] and res["steps"] == 2 and res["format"] == "E5M2"
    assert "| e5m2_short | E5M2 | adamw | 2/2 |" in capsys.readouterr().out
    assert main(["matrix", "--quick", "--steps", "1", "--quiet", "--data", data_dir,
                 "--out", str(out), "--formats", "E7M0", "--configs", CONFIGS]) == 0
    table = (out / "matrix" / "results.md").read_text()
    assert "e7m0_adamw" in table and "e7m0_manifold" in table
    names = [n for n, _, _ in matrix_configs(CONFIGS)]
    assert len(names) == 11 and names[0] == "bf16_baseline"


def test_emergency_shift_rewraps_the_model(tmp_path, data_dir):
    pytest.importorskip("altgrad.quantization.stability")
    from altgrad.training.config import load_config, with_overrides
    from altgrad.training.format_runner import FormatExperimentRunner, apply_quick, build_model

    c = apply_quick(load_config(os.path.join(CONFIGS, "e1m6_uniform.yaml")))
    c = with_overrides(c, {"max_steps": 3, "use_shadow": False, "data_dir": data_dir,
                           "checkpoint_dir": str(tmp_path / "ck"),
                           "enable_emergency_shift": True,
                           "emergency_shift_stall_threshold": 0.0})
    runner = FormatExperimentRunner(c, build_model(c), data_dir, verbose=False)
    res = runner.run()
    assert res.format_name == "E1M6" and res.format_shifted and res.shifted_to == "E5M2"
    assert c.fp8_format == "E1M6"  # the caller's config untouched
    layers = runner.trainer.quantized_layers()
    assert layers and all(m.format.name == "E5M2" for _, m in layers)


def test_stall_uses_the_scale_the_layer_used(tmp_path, data_dir):
    import torch

    from altgrad.quantization import update_flips
    from altgrad.training.config import load_config, with_overrides
    from altgrad.training.format_runner import apply_quick, build_model
    from altgrad.training.trainer import Trainer

    c = apply_quick(load_config(os.path.join(CONFIGS, "e3m4_uniform.yaml")))
    c = with_overrides(c, {"use_shadow": False, "checkpoint_dir": str(tmp_path / "ck")})
    t = Trainer(c, build_model(c), data_dir, verbose=False)
    x, y = torch.randint(256, (2, 16)), torch.randint(256, (2, 16))
    t.train_step(x, y)
    seen = {}
    inner = t.optimizer.step

    def step():  # record the weights and the scales the forward used, then step
        for n, lay in t.quantized_layers():
            seen[n] = (lay.linear.weight.detach().clone(), float(lay.weight_cast.scale))
        inner()

    t.optimizer.step = step
    m = t.train_step(x, y)
    upd = flips = 0
    for n, lay in t.quantized_layers():
        before, scale = seen[n]
        u, f = update_flips(before, lay.linear.weight.detach(), lay.linear.weight.grad,
                            lay.format, scale)
        upd += u
        flips += f
    assert upd > 0 and m["quantization/bit_stall_rate"] == 1.0 - flips / upd
