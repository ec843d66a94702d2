# SPDX-License-Identifier: MIT
"""Run logging and alerts (ALTGRAD_API.md section 13).

- :class:`AlertRules`: AltGrad's alert rules, apart from any logger so that
  they act whether or not W&B is used (AltGrad kept them inside its W&B
  class: without W&B there was no NaN stop, D-DEP-5).
- :class:`RunLogger`: a local run directory (the default): ``config.yaml``,
  ``metrics.jsonl`` (one JSON object per logged step, written as it goes),
  ``metrics.csv`` (every key seen, one row per step, written at close),
  ``alerts.jsonl``, and plots ``loss.svg`` / ``loss.png`` (train and
  validation loss, gradient norm, learning rate, bit-stall and overflow
  rates where present) drawn with matplotlib's Agg canvas; without
  matplotlib, ``loss.svg`` alone, drawn by this module.
- :class:`WandbTracker`: W&B, only when installed and asked for; wandb is
  looked up through :func:`_get_wandb` at call time (tests patch it).

The alert rules, fixed (D-CB-1, D-CB-2): a non-finite loss (NaN or +-inf)
counts toward ``nan_patience``; every rule is evaluated each step and the
strongest action wins (``stop`` > ``save_checkpoint`` > ``continue``): the
first non-finite loss asks for an anomaly checkpoint, ``nan_patience``
consecutive ones stop (with ``nan_patience == 1`` the run stops after
saving); bit stall and overflow are read under both their names
(``bit_stall_rate`` / ``quantization/bit_stall_rate``, ``overflow_rate`` /
``quantization/overflow_rate``) and raise warnings above
``bit_stall_threshold`` / ``overflow_threshold`` when they cross it (once
per excursion, not on every step above it).
"""
import csv
import dataclasses
import json
import math
import os

from ..utils.files import atomic_write, json_value

__all__ = ["AlertRules", "Alert", "RunLogger", "WandbTracker", "ACTIONS"]

ACTIONS = ("continue", "save_checkpoint", "stop")
_wandb = None


def _get_wandb():
    """The wandb module (imported on first use). ImportError saying how to
    get it when it is not installed."""
    global _wandb
    if _wandb is None:
        try:
            import wandb
        except ImportError:
            raise ImportError("W&B logging needs wandb (`pip install wandb`, then `wandb "
                              "login`); without it the run directory keeps every metric "
                              "(leave use_wandb off)") from None
        _wandb = wandb
    return _wandb


@dataclasses.dataclass
class Alert:
    """One alert: ``level`` is ``"error"`` or ``"warn"``."""
    step: int
    level: str
    title: str
    text: str


def _first(metrics, *keys):
    for k in keys:
        if k in metrics and metrics[k] is not None:
            return float(metrics[k])
    return None


class AlertRules:
    """AltGrad's alert rules (module docstring) over a config's
    ``nan_patience``, ``bit_stall_threshold`` and ``overflow_threshold``
    (AltGrad's defaults 10, 0.5, 0.01 when absent).

    ``check(step, metrics) -> (action, alerts)``; attribute
    ``consecutive_nan_steps``."""

    def __init__(self, config=None):
        self.nan_patience = int(getattr(config, "nan_patience", 10))
        self.bit_stall_threshold = float(getattr(config, "bit_stall_threshold", 0.5))
        self.overflow_threshold = float(getattr(config, "overflow_threshold", 0.01))
        self.consecutive_nan_steps = 0
        self._high = set()

    def check(self, step, metrics):
        action, alerts = "continue", []
        loss = metrics.get("loss")
        if loss is not None:
            if math.isfinite(loss):
                self.consecutive_nan_steps = 0
            else:
                self.consecutive_nan_steps += 1
                n = self.consecutive_nan_steps
                if n == 1:
                    action = "save_checkpoint"
                if n >= self.nan_patience:
                    action = "stop"
                    alerts.append(Alert(step, "error", "Training stopped: NaN loss",
                                        f"Loss was non-finite ({loss}) for {n} consecutive "
                                        f"steps (nan_patience {self.nan_patience})"))
        stall = _first(metrics, "bit_stall_rate", "quantization/bit_stall_rate")
        if self._edge("stall", stall is not None and stall > self.bit_stall_threshold):
            alerts.append(Alert(step, "warn", "High bit stall rate",
                                f"Bit stall rate {stall:.1%} exceeds {self.bit_stall_threshold:.1%}"
                                f" at step {step}"))
        over = _first(metrics, "overflow_rate", "quantization/overflow_rate")
        if self._edge("overflow", over is not None and over > self.overflow_threshold):
            alerts.append(Alert(step, "warn", "High overflow rate",
                                f"Overflow rate {over:.2%} exceeds {self.overflow_threshold:.2%}"
                                f" at step {step}"))
        return action, alerts

    def _edge(self, name, high):
        # a warning is raised when its condition becomes true, not on every
        # step it stays true (W&B's wait_duration does the same there)
        fire = high and name not in self._high
        if high:
            self._high.add(name)
        else:
            self._high.discard(name)
        return fire


class RunLogger:
    """A run directory (created): see the module docstring. ``log_step(step,
    metrics)``, ``alert(alert)``, ``close()`` (writes metrics.csv and the
    plots; also on ``with`` exit). ``config`` is a TrainConfig (or None)."""

    PLOT_KEYS = (("loss", "val_loss"), ("grad_norm",), ("learning_rate",),
                 ("quantization/bit_stall_rate", "quantization/overflow_rate"))

    def __init__(self, run_dir, config=None):
        self.run_dir = os.fspath(run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        if config is not None:
            from .config import save_config

            save_config(config, os.path.join(self.run_dir, "config.yaml"))
        self.rows = []
        self._jsonl = open(os.path.join(self.run_dir, "metrics.jsonl"), "w", encoding="utf-8")
        self._alerts = open(os.path.join(self.run_dir, "alerts.jsonl"), "w", encoding="utf-8")
        self.closed = False

    def log_step(self, step, metrics):
        row = {"step": int(step)}
        row.update(metrics)
        row["step"] = int(step)
        self.rows.append(row)
        self._jsonl.write(json.dumps({k: json_value(v) for k, v in row.items()}) + "\n")
        self._jsonl.flush()

    def alert(self, alert):
        self._alerts.write(json.dumps(dataclasses.asdict(alert)) + "\n")
        self._alerts.flush()

    def write_csv(self):
        keys = []
        seen = set()
        for r in self.rows:
            for k in r:
                if k not in seen:
                    seen.add(k)
                    keys.append(k)
        path = os.path.join(self.run_dir, "metrics.csv")
        with atomic_write(path, "w", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys, restval="")
            w.writeheader()
            w.writerows(self.rows)
        return path

    def _series(self, ks):
        out = []
        for k in ks:
            pts = [(r["step"], float(r[k])) for r in self.rows
                   if isinstance(r.get(k), (int, float)) and not isinstance(r[k], bool)
                   and math.isfinite(r[k])]
            if pts:
                out.append((k, pts))
        return out

    def plot(self):
        """Draw ``loss.svg`` and ``loss.png`` with matplotlib (Agg canvas, no
        global backend change); without matplotlib, ``loss.svg`` alone, drawn
        by :func:`_svg_plot`. Returns the paths written ([] with no rows)."""
        panels = [p for p in (self._series(ks) for ks in self.PLOT_KEYS) if p]
        if not panels:
            return []
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            path = os.path.join(self.run_dir, "loss.svg")
            with open(path, "w", encoding="utf-8") as f:
                f.write(_svg_plot(panels))
            return [path]
        fig = Figure(figsize=(6.0, 2.4 * len(panels)))
        FigureCanvasAgg(fig)
        for i, series in enumerate(panels):
            ax = fig.add_subplot(len(panels), 1, i + 1)
            for k, pts in series:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k,
                        marker="o" if k == "val_loss" else None, markersize=3)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        fig.axes[-1].set_xlabel("step")
        fig.tight_layout()
        paths = [os.path.join(self.run_dir, f"loss.{ext}") for ext in ("svg", "png")]
        for p in paths:
            fig.savefig(p)
        return paths

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._jsonl.close()
        self._alerts.close()
        self.write_csv()
        self.plot()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _svg_plot(panels, width=600, height=200):
    """A plain SVG of stacked line panels, each a list of (key, [(x, y)])."""
    pad = 40
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height * len(panels)}" font-family="sans-serif" '
             f'font-size="10">']
    for i, series in enumerate(panels):
        top = i * height
        xs = [x for _, pts in series for x, _ in pts]
        ys = [y for _, pts in series for _, y in pts]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

        parts.append(f'<rect x="{pad}" y="{top + pad}" width="{width - 2 * pad}" '
                     f'height="{height - 2 * pad}" fill="none" stroke="#888"/>')
        parts.append(f'<text x="{pad}" y="{top + pad - 4}">{y1:.4g}</text>'
                     f'<text x="{pad}" y="{top + height - pad + 12}">{y0:.4g} '
                     f'(steps {x0}..{x1})</text>')
        for j, (k, pts) in enumerate(series):
            c = _COLOURS[j % len(_COLOURS)]
            pl = " ".join(f"{pad + (x - x0) / (x1 - x0) * (width - 2 * pad):.1f},"
                          f"{top + height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad):.1f}"
                          for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{c}" points="{pl}"/>')
            parts.append(f'<text x="{width - pad - 150}" y="{top + pad + 12 + 12 * j}" '
                         f'fill="{c}">{k}</text>')
    parts.append("</svg>\n")
    return "\n".join(parts)


class WandbTracker:
    """AltGrad's W&B tracker: ``wandb.init(project=..., config=..., [name],
    [tags], [id, resume="allow"])`` at construction; ``log_step(step,
    metrics)`` -> ``wandb.log(metrics, step=step)``; ``check_alerts(step,
    metrics, config) -> action`` (:class:`AlertRules`, each alert also sent
    with ``wandb.alert``); ``finish()``. ImportError (with how to install)
    when wandb is missing."""

    def __init__(self, config, run_id=None):
        wandb = _get_wandb()
        if dataclasses.is_dataclass(config):
            cfg = dataclasses.asdict(config)
        else:
            try:
                cfg = dict(config)
            except TypeError:
                cfg = {}
        kwargs = {"project": getattr(config, "project", "altgrad") or "altgrad", "config": cfg}
        if getattr(config, "run_name", None):
            kwargs["name"] = config.run_name
        if getattr(config, "tags", None):
            kwargs["tags"] = config.tags
        if run_id:
            kwargs["id"] = run_id
            kwargs["resume"] = "allow"
        self._run = wandb.init(**kwargs)
        self.rules = AlertRules(config)
        self.loss_history = []

    @property
    def consecutive_nan_steps(self):
        return self.rules.consecutive_nan_steps

    @property
    def run_id(self):
        return self._run.id

    def log_step(self, step, metrics):
        _get_wandb().log(metrics, step=step)

    def send_alert(self, alert):
        wandb = _get_wandb()
        level = wandb.AlertLevel.ERROR if alert.level == "error" else wandb.AlertLevel.WARN
        kw = {} if alert.level == "error" else {"wait_duration": 300}
        wandb.alert(title=alert.title, text=alert.text, level=level, **kw)

    def check_alerts(self, step, metrics, config=None):
        if config is not None:
            fresh = AlertRules(config)
            fresh.consecutive_nan_steps = self.rules.consecutive_nan_steps
            fresh._high = self.rules._high
            self.rules = fresh
        action, alerts = self.rules.check(step, metrics)
        for a in alerts:
            self.send_alert(a)
        return action

    def finish(self):
        _get_wandb().finish()
