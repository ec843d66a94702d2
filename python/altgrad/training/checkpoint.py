# SPDX-License-Identifier: MIT
"""Checkpoints (ALTGRAD_API.md section 10) that load without running code.

A checkpoint is one ``torch.save`` file holding a dict with AltGrad's keys:
``model_state_dict``, ``optimizer_state_dict``, ``step``, ``config`` (a plain
dict), ``rng_state`` (the schema of :mod:`altgrad.utils.reproducibility`),
``scaler_state_dict`` (when a scaler was given: anything with
``state_dict()``), ``quantization_state`` (when given). Whatever the model's
state_dict carries (quantizer scale histories kept as buffers included) is
saved with it.

Safety: only tensors, ``None``, bools, ints, floats, strings and
lists/tuples/dicts of them may be saved (anything else is a TypeError
naming where it sits, at save time), and :func:`load_checkpoint` unpickles
through a restricted unpickler that resolves only torch's tensor and
storage rebuilders, dtypes and ``OrderedDict``: a file that asks for any
other global (``os.system``, ...) is refused with :class:`CheckpointError`
before anything runs; a file in torch's legacy (non-zip) format is refused.
(torch 1.13's ``weights_only`` cannot read floats, and its ``torch.load``
ignores ``pickle_module`` without it, so the archive is read with torch's
zip reader and this unpickler.)

Writes are atomic: a temporary file in the same directory, fsync, rename.
Fixes over AltGrad: non-finite validation losses never become the best
(D-CKPT-1), saving a step twice replaces it, rotation never deletes the
newest file and the list is rebuilt from the directory when a manager is
created on an existing one (D-CKPT-2), ``best.pt`` is a hard link (or
copy) of the step file, not a second serialization (D-CKPT-3), and a
checkpoint written for another model or format is a clear error.
"""
import dataclasses
import json
import math
import os
import pickle
import re
import shutil

import torch

from ..utils.files import atomic_write
from ..utils.reproducibility import get_rng_state, set_rng_state

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "CheckpointManager",
           "CheckpointError", "IDENTITY_FIELDS"]

# Config fields a checkpoint cannot be resumed across: the model's shape
# and what is simulated / how it is optimized.
IDENTITY_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "use_fp8",
                   "fp8_format", "use_manifold_aware", "manifold_mantissa_bits",
                   "quantize_input", "quantize_grads")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: not a checkpoint, unsafe content,
    or written for another config/model (the message says which)."""


# --- safe serialization ----------------------------------------------------

_PLAIN = (type(None), bool, int, float, str)


def _check_plain(obj, where):
    if isinstance(obj, _PLAIN) or isinstance(obj, torch.Tensor):
        return
    if isinstance(obj, torch.dtype):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} ({type(k).__name__}) cannot be saved")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be saved in a checkpoint "
                    "(only tensors, numbers, strings, None and lists/tuples/dicts of them)")


_ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_parameter"),
            ("torch", "Size")}
_DTYPES = {name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype)}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and name in _DTYPES:
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


class _SafePickle:
    """A `pickle_module` for torch.load that resolves only allowed globals."""
    __name__ = "altgrad_safe_pickle"
    Unpickler = _SafeUnpickler

    @staticmethod
    def load(f, **kw):
        return _SafeUnpickler(f, **kw).load()


def _safe_torch_load(filepath):
    # torch 1.13's torch.load ignores `pickle_module` unless weights_only,
    # and its weights_only unpickler cannot read floats: read the zip
    # archive that torch.save writes with torch's own reader and our
    # unpickler. Legacy (non-zip) files are refused outright.
    from torch.serialization import _is_zipfile, _load, _open_zipfile_reader

    with open(filepath, "rb") as f:
        if not _is_zipfile(f):
            raise CheckpointError(f"{filepath}: not a checkpoint (torch.save's zip format "
                                  "expected)")
        with _open_zipfile_reader(f) as zf:
            return _load(zf, "cpu", _SafePickle, encoding="utf-8")


def read_checkpoint(filepath):
    """The checkpoint dict of `filepath`, read safely (see the module
    docstring). FileNotFoundError when missing; CheckpointError when it is
    not a checkpoint or asks for code."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"{filepath}: no such checkpoint")
    try:
        ck = _safe_torch_load(filepath)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{filepath}: not loaded: {e} (a checkpoint holds only "
                              "tensors and plain values)") from None
    except Exception as e:  # truncated or foreign files: torch raises many kinds
        raise CheckpointError(f"{filepath}: not a readable checkpoint: "
                              f"{type(e).__name__}: {e}") from None
    if not isinstance(ck, dict) or "model_state_dict" not in ck:
        raise CheckpointError(f"{filepath}: not an altgrad checkpoint (no model_state_dict)")
    return ck


def _config_dict(config):
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    return {"raw": str(config)}


def save_checkpoint(filepath, model, optimizer, scaler, step, config,
                    quantization_state=None):
    """Write a checkpoint of `model`, `optimizer` (anything with
    ``state_dict()``; None allowed), `scaler` (same; None: not saved), `step`,
    `config` (dataclass or dict) and the RNG states, atomically. TypeError
    (nothing written) when a state holds something other than tensors and
    plain values."""
    ck = {
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "config": _config_dict(config),
        "rng_state": get_rng_state(),
    }
    if scaler is not None:
        ck["scaler_state_dict"] = scaler.state_dict()
    if quantization_state is not None:
        ck["quantization_state"] = quantization_state
    for key, value in ck.items():
        _check_plain(value, key)
    with atomic_write(filepath) as f:
        torch.save(ck, f)


def _check_identity(filepath, saved, config):
    now = _config_dict(config)
    diffs = [f"{k}: {saved[k]!r} in the checkpoint, {now[k]!r} now"
             for k in IDENTITY_FIELDS if k in saved and k in now and saved[k] != now[k]]
    if diffs:
        raise CheckpointError(f"{filepath} was written for another config ({'; '.join(diffs)})")


def load_checkpoint(filepath, model, optimizer, scaler=None, config=None, restore_rng=True):
    """Restore `model` (strict), `optimizer` and `scaler` (when both given and
    saved) and the RNG states from `filepath`; returns ``(step, config dict,
    quantization_state or None)``. With `config`, the checkpoint's config
    must agree on :data:`IDENTITY_FIELDS`. CheckpointError for a foreign,
    unsafe or mismatched checkpoint (model and optimizer untouched in the
    config case)."""
    filepath = os.fspath(filepath)
    ck = read_checkpoint(filepath)
    saved_cfg = ck.get("config") or {}
    if config is not None:
        _check_identity(filepath, saved_cfg, config)
    try:
        model.load_state_dict(ck["model_state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{filepath}: does not fit this model: {e}") from None
    if optimizer is not None and ck.get("optimizer_state_dict") is not None:
        try:
            optimizer.load_state_dict(ck["optimizer_state_dict"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{filepath}: optimizer state does not fit: {e}") from None
    if scaler is not None and "scaler_state_dict" in ck:
        scaler.load_state_dict(ck["scaler_state_dict"])
    if restore_rng and "rng_state" in ck:
        set_rng_state(ck["rng_state"])
    return int(ck.get("step", 0)), saved_cfg, ck.get("quantization_state")


_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class CheckpointManager:
    """Rotating checkpoints in `checkpoint_dir` (created): ``step_<n>.pt``
    (the newest `max_checkpoints` kept), ``best.pt`` (lowest finite
    validation loss; ``best.json`` records its step and loss so that a new
    manager on the same directory keeps it), ``anomaly_<n>.pt`` (never
    rotated). Attributes as AltGrad's: ``checkpoint_dir`` (Path),
    ``max_checkpoints``, ``checkpoints`` (list of (step, path), oldest first),
    ``best_loss``, ``best_path``."""

    def __init__(self, checkpoint_dir, max_checkpoints=3):
        import pathlib

        if int(max_checkpoints) < 1:
            raise ValueError(f"max_checkpoints must be >= 1, got {max_checkpoints}")
        self.checkpoint_dir = pathlib.Path(checkpoint_dir)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.max_checkpoints = int(max_checkpoints)
        found = []
        for name in os.listdir(self.checkpoint_dir):
            m = _STEP_FILE.match(name)
            if m:
                found.append((int(m.group(1)), str(self.checkpoint_dir / name)))
        self.checkpoints = sorted(found)
        self.best_loss = None
        self.best_path = None
        try:
            with open(self.checkpoint_dir / "best.json", encoding="utf-8") as f:
                best = json.load(f)
            if os.path.exists(self.checkpoint_dir / "best.pt"):
                self.best_loss = float(best["val_loss"])
                self.best_path = str(self.checkpoint_dir / "best.pt")
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def _path(self, name):
        return str(self.checkpoint_dir / name)

    def save(self, step, model, optimizer, scaler, config, val_loss, quantization_state=None):
        """Write ``step_<step>.pt`` (replacing an earlier save of that step),
        make it ``best.pt`` when `val_loss` is finite and below the best so
        far, then delete the oldest step files beyond `max_checkpoints`.
        Returns the step file's path."""
        path = self._path(f"step_{int(step)}.pt")
        save_checkpoint(path, model, optimizer, scaler, step, config, quantization_state)
        self.checkpoints = [(s, p) for s, p in self.checkpoints if s != int(step)]
        self.checkpoints.append((int(step), path))
        self.checkpoints.sort()
        if val_loss is not None and math.isfinite(val_loss) and (
                self.best_loss is None or val_loss < self.best_loss):
            self._make_best(path, int(step), float(val_loss))
        while len(self.checkpoints) > self.max_checkpoints:
            _, old = self.checkpoints.pop(0)
            if old != path and os.path.exists(old):
                os.remove(old)
        return path

    def _make_best(self, path, step, val_loss):
        best = self._path("best.pt")
        tmp = self._path(f".best.pt.tmp.{os.getpid()}")
        if os.path.exists(tmp):
            os.remove(tmp)
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, best)
        with atomic_write(self._path("best.json"), "w", encoding="utf-8") as f:
            json.dump({"step": step, "val_loss": val_loss}, f)
        self.best_loss, self.best_path = val_loss, best

    def save_on_anomaly(self, step, model, optimizer, scaler, config, quantization_state=None):
        """Write ``anomaly_<step>.pt`` (not tracked, never rotated); returns its path."""
        path = self._path(f"anomaly_{int(step)}.pt")
        save_checkpoint(path, model, optimizer, scaler, step, config, quantization_state)
        return path

    def latest(self):
        """The newest step file's path, or None."""
        return self.checkpoints[-1][1] if self.checkpoints else None

    def best(self):
        """``best.pt``'s path, or None before any finite validation loss."""
        return self.best_path
