# SPDX-License-Identifier: MIT
"""AltGrad's format experiments (ALTGRAD_API.md section 15): one run of one
format with collapse detection, optional stability interventions,
diagnostics, and a failure report when it collapses.

Fixes over AltGrad (section 21.9): the collapse checkpoint is written
(AltGrad passed its arguments in the wrong order and crashed on the first
NaN, D-RUN-1); partition clipping runs between backward and the update, as
a Trainer gradient hook (AltGrad clipped after the step, D-RUN-2); a
non-finite loss is a collapse only after ``nan_patience`` consecutive
steps, and those steps reach the emergency shifter first (D-RUN-3); the
shifter reads the per-step stall rate and the gradient windows restart on
a shift (D-RUN-4); the caller's config is never changed and the result
keeps the configured format, the shift recorded beside it (D-RUN-5);
diagnostics use the format and the scale the layer used (D-RUN-6); the
model is built after seeding and data are prepared once (D-RUN-7); a
ValueError / FloatingPointError from the numerics is a collapse too
(D-RUN-8).
"""
import dataclasses
import datetime
import math
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from ..quantization import FORMAT_REGISTRY, stiffness, ulp_distance_stats
from .config import TrainConfig, load_config, with_overrides
from .data import DataError
from .trainer import Trainer, weight_scale

__all__ = ["FormatExperimentRunner", "ExperimentResult", "DiagnosticSnapshot",
           "run_format_experiment", "build_model", "apply_quick"]


@dataclass
class DiagnosticSnapshot:
    step: int
    stiffness_mean: float = 0.0
    stiffness_max: float = 0.0
    stiffness_std: float = 0.0
    grid_error_mean: float = 0.0
    grid_error_max: float = 0.0
    on_grid_frac: float = 0.0
    ulp_mean: float = 0.0
    ulp_median: float = 0.0
    ulp_zero_frac: float = 0.0
    grad_stiff_correlation: float = 0.0
    grad_below_stiffness_frac: float = 0.0


@dataclass
class ExperimentResult:
    format_name: str
    completed: bool
    steps_completed: int
    max_steps: int
    final_loss: float
    best_loss: float
    collapse_step: Optional[int] = None
    collapse_reason: Optional[str] = None
    format_shifted: bool = False
    shifted_to: Optional[str] = None
    diagnostics: List[DiagnosticSnapshot] = field(default_factory=list)
    failure_report_path: Optional[str] = None
    duration_seconds: float = 0.0
    metrics_history: Dict[str, List[float]] = field(default_factory=dict)
    # this project's additions
    final_val_loss: float = math.nan
    best_val_loss: float = math.nan
    skipped_steps: int = 0


class FormatExperimentRunner:
    """``FormatExperimentRunner(config, model, data_dir=None, device="cpu")``;
    ``run(max_steps=None) -> ExperimentResult``. Attributes (AltGrad's):
    ``config`` (a copy: the caller's is never changed), ``trainer``,
    ``clipper``, ``shifter``, ``current_format``, ``format_shifted``,
    ``shifted_to``, ``diagnostics``, ``metrics_history``, ``best_loss``,
    ``collapse_step``, ``collapse_reason``."""

    def __init__(self, config, model, data_dir=None, device="cpu", verbose=True):
        self.config = dataclasses.replace(config)
        self.model = model
        self.device = str(device)
        self.trainer = Trainer(self.config, model, data_dir, device, verbose=verbose)
        self.data_dir = self.trainer.data_dir
        self.clipper = self.shifter = None
        if self.config.use_fp8 and (self.config.enable_partition_clipping
                                    or self.config.enable_emergency_shift):
            try:
                from ..quantization import stability
            except ImportError as e:
                raise RuntimeError(f"stability interventions need "
                                   f"altgrad.quantization.stability: {e}") from None
            if self.config.enable_partition_clipping:
                self.clipper = stability.PartitionRelativeClipper(
                    FORMAT_REGISTRY[self.config.fp8_format],
                    base_clip=self.config.partition_clip_base,
                    overflow_threshold=self.config.overflow_threshold)
                self.trainer.grad_hooks.append(self._clip_hook)
            if self.config.enable_emergency_shift:
                self.shifter = stability.EmergencyMantissaShift(
                    nan_patience=self.config.emergency_shift_nan_patience,
                    stall_threshold=self.config.emergency_shift_stall_threshold)
        self.current_format = self.config.fp8_format
        self.format_shifted = False
        self.shifted_to = None
        self.diagnostics = []
        self.metrics_history = {k: [] for k in ("loss", "perplexity", "grad_norm",
                                                "bit_stall_rate", "overflow_rate")}
        self.best_loss = math.inf
        self.collapse_step = None
        self.collapse_reason = None
        self.start_time = None
        self._prev_weights = None

    def _clip_hook(self, trainer, metrics):
        over = metrics.get("quantization/overflow_rate", 0.0)
        metrics["partition_clipped"] = int(bool(self.clipper.clip_if_needed(trainer.model,
                                                                            over)))

    # --- diagnostics --------------------------------------------------
    def _layer_scales(self):
        return [(name, m.linear.weight, m.format, weight_scale(m))
                for name, m in self.trainer.quantized_layers()]

    def _collect_diagnostics(self, step):
        c = self.config
        snap = DiagnosticSnapshot(step=step)
        layers = self._layer_scales()
        if not layers:
            return snap
        stiff = [stiffness(w.detach().cpu(), fmt, s) for _, w, fmt, s in layers]
        if c.log_stiffness:
            allv = torch.cat([t.reshape(-1) for t in stiff]).double()
            allv = allv[torch.isfinite(allv)]
            if allv.numel():
                snap.stiffness_mean = float(allv.mean())
                snap.stiffness_max = float(allv.max())
                snap.stiffness_std = float(allv.std()) if allv.numel() > 1 else 0.0
        if c.log_ulp and self._prev_weights is not None:
            tot = n = 0.0
            for name, w, fmt, s in layers:
                if name in self._prev_weights:
                    st = ulp_distance_stats(self._prev_weights[name], w.detach().cpu(), fmt, s)
                    tot += st["sum_abs"]
                    n += st["count"] - st["nan_pairs"]
            snap.ulp_mean = tot / n if n else 0.0
        below = total = 0
        for (_, w, _, _), st in zip(layers, stiff):
            if w.grad is None:
                continue
            g = w.grad.detach().abs().cpu()
            ok = torch.isfinite(st) & (st > 0)
            below += int((g[ok] < st[ok]).sum())
            total += int(ok.sum())
        snap.grad_below_stiffness_frac = below / total if total else 0.0
        return snap

    # --- interventions ------------------------------------------------
    def _apply_format_shift(self, name):
        """Re-wrap the model's linears on format `name` (fresh scale windows;
        the Parameters, so the optimizer state, stay the same) and restart the
        gradient windows."""
        from .trainer import _integration

        fmt = FORMAT_REGISTRY[name]
        integration = _integration()
        c = self.config
        integration.dequantize_model(self.trainer.model)
        integration.quantize_model(self.trainer.model, format=fmt,
                                   skip_patterns=list(c.skip_patterns),
                                   quantize_input=c.quantize_input, history_len=c.history_len)
        self.trainer.fp8_format = fmt
        for h in self.trainer.amax_histories.values():
            h.reset()
        self.current_format = name
        self.format_shifted = True
        self.shifted_to = name
        if self.clipper is not None:
            from ..quantization import stability

            self.clipper = stability.PartitionRelativeClipper(
                fmt, base_clip=c.partition_clip_base, overflow_threshold=c.overflow_threshold)

    # --- the run ------------------------------------------------------
    def _collapse(self, step, reason, metrics):
        self.collapse_step, self.collapse_reason = step, reason
        t = self.trainer
        path = os.path.join(self.config.checkpoint_dir, f"collapse_step_{step}.pt")
        from .checkpoint import save_checkpoint

        save_checkpoint(path, t.model, t.optimizer, t.scaler, t.step, self.config,
                        t.quantization_state())

    def run(self, max_steps=None):
        c = self.config
        t = self.trainer
        max_steps = c.max_steps if max_steps is None else int(max_steps)
        self.start_time = time.perf_counter()
        t.start_time = self.start_time
        t._first_step = t.step
        metrics = {}
        try:
            while t.step < max_steps:
                step = t.step
                if c.log_ulp and step % c.diagnostic_interval == 0:
                    self._prev_weights = {n: w.detach().cpu().clone()
                                          for n, w, _, _ in self._layer_scales()}
                try:
                    metrics, action = t.run_one(max_steps)
                except DataError:
                    raise  # missing or short token files: an error, not a collapse
                except (RuntimeError, ValueError, FloatingPointError) as e:
                    self.collapse_step = step
                    self.collapse_reason = f"{type(e).__name__}: {str(e)[:100]}"
                    break
                loss = metrics["loss"]
                self.metrics_history["loss"].append(loss)
                self.metrics_history["perplexity"].append(metrics.get("perplexity", math.nan))
                self.metrics_history["grad_norm"].append(metrics.get("grad_norm", math.nan))
                self.metrics_history["bit_stall_rate"].append(
                    metrics.get("quantization/bit_stall_rate", 0.0))
                self.metrics_history["overflow_rate"].append(
                    metrics.get("quantization/overflow_rate", 0.0))
                if math.isfinite(loss):
                    self.best_loss = min(self.best_loss, loss)
                if step % c.diagnostic_interval == 0 and c.use_fp8:
                    snap = self._collect_diagnostics(step)
                    self.diagnostics.append(snap)
                    if t.tracker is not None:
                        d = {"diagnostics/grad_below_stiffness_frac":
                             snap.grad_below_stiffness_frac}
                        if c.log_stiffness:
                            d.update({f"diagnostics/stiffness_{k}": getattr(
                                snap, f"stiffness_{k}") for k in ("mean", "max", "std")})
                        if c.log_ulp:
                            d["diagnostics/ulp_mean"] = snap.ulp_mean
                        t.tracker.log_step(step, d)
                if self.shifter is not None:
                    new = self.shifter.check_and_shift(
                        self.current_format, not math.isfinite(loss),
                        metrics.get("quantization/bit_stall_rate", 0.0))
                    if new is not None:
                        t._say(f"Step {step}: format {self.current_format} -> {new}")
                        self._apply_format_shift(new)
                        t.alerts.consecutive_nan_steps = 0
                        continue
                if action == "stop":
                    self._collapse(step, "NaN/Inf loss", metrics)
                    break
            if t.step > 0:
                t.save(metrics.get("val_loss"))
        finally:
            t.close()
        losses = self.metrics_history["loss"]
        completed = t.step >= max_steps and self.collapse_step is None
        val = [v for v in [metrics.get("val_loss")] if v is not None]
        result = ExperimentResult(
            format_name=c.fp8_format if c.use_fp8 else "BF16", completed=completed,
            steps_completed=t.step, max_steps=max_steps,
            final_loss=losses[-1] if losses else math.inf, best_loss=self.best_loss,
            collapse_step=self.collapse_step, collapse_reason=self.collapse_reason,
            format_shifted=self.format_shifted, shifted_to=self.shifted_to,
            diagnostics=list(self.diagnostics),
            duration_seconds=time.perf_counter() - self.start_time,
            metrics_history={k: list(v) for k, v in self.metrics_history.items()},
            final_val_loss=val[0] if val else math.nan,
            best_val_loss=t.best_val_loss if math.isfinite(t.best_val_loss) else math.nan,
            skipped_steps=t.skipped_steps)
        if self.collapse_step is not None:
            result.failure_report_path = self._generate_failure_report(result, metrics)
        t._say(f"{result.format_name}: {'completed' if completed else 'collapsed'} "
               f"{t.step}/{max_steps} steps, final loss {result.final_loss:.4f}, "
               f"best {result.best_loss:.4f}, {result.duration_seconds:.1f} s")
        return result

    def _generate_failure_report(self, result, final_metrics):
        """A markdown report in ``<checkpoint_dir>/failure_reports/`` in
        AltGrad's layout (``| Label | value |`` rows); returns its path."""
        c = self.config
        model = self.trainer.model
        grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        near = total = 0
        sparse_layers = []
        for n, g in grads:
            z = int((g.abs() < 1e-8).sum())
            near += z
            total += g.numel()
            if g.numel() and z / g.numel() > 0.9:
                sparse_layers.append((n, z / g.numel()))
        sparsity = near / total if total else 0.0
        fm = final_metrics or {}
        when = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        d = os.path.join(c.checkpoint_dir, "failure_reports")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{result.format_name}_{when}_failure_report.md")
        hist = result.metrics_history.get("loss", [])
        stride = max(1, len(hist) // 20)
        lines = [f"# Failure report: {result.format_name}", "", "## Summary", "",
                 "| Metric | Value |", "|---|---|",
                 f"| Format | {result.format_name} |",
                 f"| Collapse Step | {result.collapse_step} |",
                 f"| Collapse Reason | {result.collapse_reason} |",
                 f"| Final Loss | {result.final_loss:.4f} |",
                 f"| Best Loss | {result.best_loss:.4f} |",
                 f"| Total Steps | {result.steps_completed} / {result.max_steps} |",
                 f"| Duration | {result.duration_seconds:.1f}s |", "",
                 "## Gradient sparsity", "",
                 f"Gradient sparsity: {sparsity:.1%} of gradient elements below 1e-8", ""]
        if sparse_layers:
            lines += ["Layers with > 90% near-zero gradients:", ""]
            lines += [f"- {n}: {f:.1%}" for n, f in sparse_layers[:10]] + [""]
        lines += ["## Quantization", "", "| Metric | Value |", "|---|---|",
                  f"| Bit-Stall Rate | {100 * fm.get('quantization/bit_stall_rate', 0.0):.2f}% |",
                  f"| Overflow Rate | {100 * fm.get('quantization/overflow_rate', 0.0):.2f}% |",
                  f"| Underflow Rate | {100 * fm.get('quantization/underflow_rate', 0.0):.2f}% |",
                  "", "## Diagnostics (last 5)", ""]
        for s in result.diagnostics[-5:]:
            lines.append(f"- step {s.step}: stiffness_mean={s.stiffness_mean:.3g}, "
                         f"ulp_mean={s.ulp_mean:.3g}, "
                         f"grad_below_stiffness_frac={s.grad_below_stiffness_frac:.3f}")
        lines += ["", "## Config", "", "```yaml"]
        lines += [f"{k}: {getattr(c, k)}" for k in (
            "fp8_format", "use_fp8", "learning_rate", "batch_size", "max_steps",
            "warmup_steps", "grad_clip", "use_manifold_aware", "seed")]
        lines += ["```", "", "## Loss trend", ""]
        lines += [f"- step {i}: {hist[i]:.4f}" for i in range(0, len(hist), stride)]
        lines += ["", "## Recommendations", ""]
        if sparsity > 0.7:
            lines.append("- Most gradients vanish: try a format with more range (more exponent "
                         "bits) or a smaller learning rate.")
        elif result.collapse_reason and "NaN" in result.collapse_reason:
            lines.append("- The loss became non-finite: lower the learning rate, enable "
                         "partition clipping, or use a format with more range.")
        else:
            lines.append("- Inspect the metrics of the steps before the collapse.")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return path


def apply_quick(config, vocab_size=256, max_steps=None):
    """A CPU-sized copy of `config` (every other field kept): 2 layers of
    width 128 with 4 heads, context 64, batch 8, ``max_steps`` (default
    min(config's, 200)), warm-up 10% of that, evaluation and checkpoints
    every quarter of the run, 4 validation batches, and the data's
    `vocab_size`. What ``--quick`` applies."""
    steps = min(config.max_steps, 200) if max_steps is None else int(max_steps)
    quarter = max(1, steps // 4)
    return with_overrides(config, dict(
        n_layer=2, n_head=4, n_embd=128, block_size=64, batch_size=8, vocab_size=vocab_size,
        max_steps=steps, warmup_steps=max(1, steps // 10), eval_interval=quarter,
        checkpoint_interval=quarter, eval_iters=4, diagnostic_interval=quarter,
        log_interval=max(1, steps // 20)), source="--quick")


def build_model(config):
    """altgrad.training.model's GPT for `config`, initialized from
    ``config.seed`` (the same weights for every format of a comparison)."""
    try:
        from .model import GPT, GPTConfig
    except ImportError as e:
        raise RuntimeError(f"the experiments need altgrad.training.model (GPT): {e}") from None
    return GPT(GPTConfig(n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                         block_size=config.block_size, vocab_size=config.vocab_size,
                         dropout=config.dropout), seed=config.seed)


def run_format_experiment(config_path, device="cpu", data_dir=None, quick=False,
                          overrides=None, verbose=True, model=None, resume=None):
    """Load a config (path or TrainConfig), apply `overrides` (a dict) and
    `quick` (:func:`apply_quick` with the data's vocabulary), make sure the
    token files exist (the default ``data/kjv`` is prepared from the King
    James Bible when empty; another empty directory is a DataError), seed, build the GPT (or take `model`),
    restore the checkpoint `resume` when given, and run
    :class:`FormatExperimentRunner`."""
    from ..utils.reproducibility import set_seed_for_reproducibility
    from .data import load_meta
    from .prepare import prepare

    config = config_path if isinstance(config_path, TrainConfig) else load_config(config_path)
    if data_dir is not None:
        config = with_overrides(config, {"data_dir": os.fspath(data_dir)})
    if overrides:
        config = with_overrides(config, overrides)
    if load_meta(config.data_dir) is None and not os.path.exists(
            os.path.join(config.data_dir, "train.bin")):
        if os.path.normpath(config.data_dir) != os.path.normpath(TrainConfig().data_dir):
            raise DataError(f"{config.data_dir}: no token files; make them with "
                            f"`python3 -m altgrad.training.prepare --input TEXT --out "
                            f"{config.data_dir}` (only the default {TrainConfig().data_dir} "
                            f"is prepared automatically, from the King James Bible)")
        prepare(config.data_dir)
    meta = load_meta(config.data_dir)
    if quick:
        keep = dict(overrides or {})
        config = apply_quick(config, vocab_size=meta["vocab_size"] if meta else
                             config.vocab_size, max_steps=keep.get("max_steps"))
        if keep:
            config = with_overrides(config, keep)
    set_seed_for_reproducibility(config.seed, deterministic=False)
    if model is None:
        model = build_model(config)
    runner = FormatExperimentRunner(config, model, config.data_dir, device, verbose=verbose)
    if resume is not None:
        runner.trainer.resume(resume)
    return runner.run()
