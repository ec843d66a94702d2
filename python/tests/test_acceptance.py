# SPDX-License-Identifier: MIT
"""Issue 4's acceptance script, run verbatim in a fresh interpreter: a shell
runs the command line exactly as written, with `python3` on PATH being the
interpreter that runs these tests and PYTHONPATH pointing at python/ (the
README's set-up after `make python`)."""
import os
import subprocess
import sys

from conftest import PYDIR

SCRIPT = '''python3 -c "
import torch
from altgrad.quantization import quantize, E5M2
x = torch.randn(10, requires_grad=True)
y = quantize(x, E5M2, torch.tensor(1.0))
y.sum().backward()
print('Gradient shape:', x.grad.shape)
print('Gradient matches ones:', torch.allclose(x.grad, torch.ones_like(x)))
"
'''


def test_acceptance_script_verbatim(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(sys.executable, bindir / "python3")
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = PYDIR
    res = subprocess.run(["sh", "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "Gradient shape: torch.Size([10])" in lines
    assert "Gradient matches ones: True" in lines


def test_import_from_repo_root_without_torch_import():
    """`import altgrad` works from the repository root and does not need
    torch for the numpy layer."""
    code = ("import sys, altgrad, numpy as np; "
            "y = altgrad.quantize_array(np.ones(3, np.float32) * 1.1, 'E5M2'); "
            "print(y.tolist(), 'torch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=PYDIR)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, cwd=os.path.dirname(PYDIR))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["[1.0,", "1.0,", "1.0]", "False"]
