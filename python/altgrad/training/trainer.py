# SPDX-License-Identifier: MIT
"""AltGrad's ``Trainer`` (ALTGRAD_API.md section 14), with FP8 simulated
through :mod:`altgrad.integration` instead of overwriting ``param.data``.

``Trainer(config, model, data_dir=None, device="cpu")`` trains a model with
the nanoGPT interface (``model(x, y) -> (logits, loss)``) on the token files
of `data_dir` (default ``config.data_dir``).

What happens to a model with ``use_fp8``: unless it already holds
quantized wrappers, :func:`altgrad.integration.quantize_model` wraps every
``nn.Linear`` (except names containing one of ``config.skip_patterns``,
default ``lm_head``) so that the forward pass uses the weights on the
format's grid (per-tensor scale from an amax history) and, with
``quantize_input``, the inputs too; autograd then saves the quantized
tensors, so the backward pass is consistent with the forward (AltGrad's
``param.data`` swap made backward use full-precision weights, D-TR-1).
With ``quantize_grads`` each parameter gradient (dim >= 2) is quantized to
the format with a delayed scale: the scale comes from the amax history of
the previous steps' gradients, and overflow / underflow are counted
against that scale (AltGrad's scale came from the same gradient, so its
overflow rate was always 0, D-TR-3): overflow = ``|g| > max_finite *
scale``, underflow = ``g != 0`` and ``quantize(g) == 0``.

Each step (:meth:`train_step`): learning rate from the schedule (linear
warm-up over ``warmup_steps``, then ``lr_schedule`` down to
``learning_rate * min_lr_ratio``; AltGrad ignored ``warmup_steps``), forward,
a non-finite loss skips the step (no backward, no update, counted in
``skipped_steps``; AltGrad stepped NaN into the weights, D-TR-11),
backward, gradient quantization, the FP32 shadow's comparison, gradient
statistics, clipping, the ``grad_hooks`` (e.g. partition clipping, before
the update), a non-finite gradient norm skips the update, the optimizer
step, and bit stall measured on that real update: the share of the
quantized weights with a nonzero gradient whose grid point did not move
(``1 - flips / updates`` of :func:`altgrad.quantization.update_flips`, with
the scale the forward used; AltGrad modelled an SGD step after the fact,
D-TR-4). Evaluation runs the quantized model (AltGrad evaluated the FP32
masters, D-TR-6) on the same validation batches every time.

Checkpoints store the number of steps completed; :meth:`resume` continues
from there (AltGrad's final checkpoint and ``resume`` disagreed by one,
D-TR-8). The quantizers' state (amax windows as their maxima, counters,
the data stream) is saved as ``quantization_state`` (D-CKPT-5).
"""
import math
import sys
import time

import torch

from ..quantization import FORMAT_REGISTRY, AmaxHistory, compute_scale, quantize, update_flips
from ..utils.files import format_duration
from .callbacks import AlertRules, RunLogger, WandbTracker
from .checkpoint import CheckpointManager, load_checkpoint
from .config import TrainConfig
from .data import check_vocab, get_batch
from .metrics import (StepTimer, compute_gradient_stats, compute_stability_metrics,
                      global_grad_norm)
from .shadow import FP32ShadowModel, canonical_names, is_quantized_wrapper

__all__ = ["Trainer", "lr_at_step", "TrainerError", "weight_scale"]


class TrainerError(RuntimeError):
    """A run that cannot start (missing module, data/config mismatch)."""


def lr_at_step(config, step):
    """The learning rate of step `step` (0-based): ``learning_rate * (step +
    1) / warmup_steps`` during warm-up, then ``constant``, ``cosine`` or
    ``linear`` decay to ``learning_rate * min_lr_ratio`` at ``max_steps``."""
    lr, warm, total = config.learning_rate, config.warmup_steps, config.max_steps
    if step < warm:
        return lr * (step + 1) / warm
    if config.lr_schedule == "constant" or total <= warm:
        return lr
    frac = min(1.0, (step - warm) / max(1, total - warm))
    low = lr * config.min_lr_ratio
    if config.lr_schedule == "linear":
        return lr - (lr - low) * frac
    return low + 0.5 * (lr - low) * (1.0 + math.cos(math.pi * frac))


def weight_scale(wrapper):
    """The scale a quantized wrapper's last forward used for its weight: the
    ``scale`` its weight caster recorded (altgrad.integration), else
    ``compute_scale`` of its ``weight_history`` (AltGrad's wrapper), else of
    the weight's own amax."""
    used = getattr(getattr(wrapper, "weight_cast", None), "scale", None)
    if isinstance(used, torch.Tensor) and used.numel() == 1 and float(used) > 0:
        return float(used)
    hist = getattr(wrapper, "weight_history", None)
    w = wrapper.linear.weight
    amax = hist.get_amax() if hist is not None and len(hist) else float(w.detach().abs().max())
    return compute_scale(amax, wrapper.format)


def _param_groups(model, weight_decay):
    named = sorted((n, p) for n, p in model.named_parameters() if p.requires_grad)
    decay = [p for n, p in named if p.dim() >= 2]
    other = [p for n, p in named if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": other, "weight_decay": 0.0}]


def _integration():
    try:
        from .. import integration
    except ImportError as e:
        raise TrainerError(f"use_fp8 needs altgrad.integration (quantize_model): {e}") from None
    return integration


class Trainer:
    """See the module docstring. Attributes (AltGrad's names): ``config``,
    ``model``, ``optimizer``, ``scaler`` (None: no fp16 loss scaling is
    needed for float32/bfloat16 compute, D-TR-12), ``checkpoint_manager``,
    ``tracker`` (W&B, only with ``use_wandb``), ``logger`` (the run
    directory, with ``run_dir``), ``alerts``, ``shadow``, ``fp8_format``,
    ``amax_histories`` (the gradients' delayed-scale windows),
    ``overflow_count``, ``underflow_count``, ``total_quant_ops``,
    ``stall_updates``, ``stall_flips``, ``skipped_steps``, ``step`` (steps
    completed), ``best_val_loss``; ``grad_hooks``: callables ``hook(trainer,
    metrics)`` run after clipping, before the update."""

    def __init__(self, config, model, data_dir=None, device="cpu", verbose=True):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, not {type(config).__name__}")
        self.config = config
        self.device = str(device)
        self.device_type = "cuda" if "cuda" in self.device else "cpu"
        self.data_dir = config.data_dir if data_dir is None else data_dir
        self.verbose = verbose
        check_vocab(self.data_dir, config.vocab_size)
        self.model = model.to(device)
        self.fp8_format = FORMAT_REGISTRY[config.fp8_format] if config.use_fp8 else None
        if config.use_fp8 and not self.quantized_layers():
            _integration().quantize_model(self.model, format=self.fp8_format,
                                          skip_patterns=list(config.skip_patterns),
                                          quantize_input=config.quantize_input,
                                          history_len=config.history_len)
        self.optimizer = self._make_optimizer()
        self.scaler = None
        self.checkpoint_manager = CheckpointManager(config.checkpoint_dir,
                                                    config.max_checkpoints)
        self.tracker = WandbTracker(config) if config.use_wandb else None
        self.logger = RunLogger(config.run_dir, config) if config.run_dir else None
        self.alerts = AlertRules(config)
        self.shadow = FP32ShadowModel(self.model) if config.use_shadow else None
        names = canonical_names(self.model)
        self._tracked = [(names[n], p) for n, p in self.model.named_parameters()
                         if p.requires_grad and p.dim() >= 2]
        self.amax_histories = ({n: AmaxHistory(config.history_len) for n, _ in self._tracked}
                               if config.use_fp8 and config.quantize_grads else {})
        self.overflow_count = self.underflow_count = self.total_quant_ops = 0
        self.stall_updates = self.stall_flips = 0
        self.skipped_steps = 0
        self.step = 0
        self.best_val_loss = math.inf
        self.grad_hooks = []
        self.data_generator = torch.Generator().manual_seed(config.seed)
        self.start_time = None

    # --- construction helpers -----------------------------------------
    def _make_optimizer(self):
        c = self.config
        betas = (c.beta1, c.beta2)
        if c.use_manifold_aware:
            try:
                from .optimizer import ManifoldAdamW
            except ImportError as e:
                raise TrainerError(f"use_manifold_aware needs "
                                   f"altgrad.training.optimizer.ManifoldAdamW: {e}") from None
            return ManifoldAdamW(_param_groups(self.model, c.weight_decay), lr=c.learning_rate,
                                 betas=betas, manifold_aware=True,
                                 mantissa_bits=c.manifold_mantissa_bits,
                                 max_stiffness=c.manifold_max_stiffness)
        if hasattr(self.model, "configure_optimizers"):
            return self.model.configure_optimizers(weight_decay=c.weight_decay,
                                                   learning_rate=c.learning_rate, betas=betas,
                                                   device_type=self.device_type)
        return torch.optim.AdamW(_param_groups(self.model, c.weight_decay), lr=c.learning_rate,
                                 betas=betas)

    def quantized_layers(self):
        """``[(name, wrapper)]`` of the model's quantized linear wrappers."""
        return [(n, m) for n, m in self.model.named_modules() if is_quantized_wrapper(m)]

    # --- one step -----------------------------------------------------
    def _set_lr(self, step):
        lr = lr_at_step(self.config, step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def _forward(self, x, y):
        # FP8 simulation runs in float32 (AltGrad's float32 "autocast" was a
        # no-op with a warning, D-TR-2); the baseline in bfloat16 autocast
        if self.config.use_fp8:
            return self.model(x, y)
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model(x, y)

    def _quantize_gradients(self, metrics):
        fmt = self.fp8_format
        over = under = total = 0
        for name, p in self._tracked:
            if p.grad is None:
                continue
            g = p.grad.detach().float().contiguous()
            hist = self.amax_histories[name]
            if len(hist) == 0:  # first step: no history yet, the gradient's own amax
                hist.update(g)
            scale = compute_scale(hist.get_amax(), fmt)
            q = quantize(g.cpu(), fmt, scale).to(g.device)
            nz = g != 0
            over += int((g.abs() > fmt.max_representable_value * scale).sum())
            under += int((nz & (q == 0)).sum())
            total += g.numel()
            hist.update(g)  # the next step's scale
            p.grad.copy_(q)
        self.overflow_count += over
        self.underflow_count += under
        self.total_quant_ops += total
        metrics["quantization/overflow_rate"] = over / max(total, 1)
        metrics["quantization/underflow_rate"] = under / max(total, 1)

    def _weight_snapshots(self):
        snaps = []
        for _, m in self.quantized_layers():
            w = m.linear.weight
            if w.grad is not None:
                snaps.append((w, w.detach().clone(), weight_scale(m), m.format))
        return snaps

    def _stall(self, snaps, metrics):
        upd = flips = 0
        for w, before, scale, fmt in snaps:
            u, f = update_flips(before.cpu(), w.detach().cpu(), w.grad.detach().float().cpu(),
                                fmt, scale)
            upd += u
            flips += f
        self.stall_updates += upd
        self.stall_flips += flips
        metrics["quantization/bit_stall_rate"] = 1.0 - flips / upd if upd else 0.0
        metrics["quantization/flips"] = flips

    def train_step(self, x, y):
        """One optimization step on batch (x, y); returns its metrics."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        lr = self._set_lr(self.step)
        _, loss = self._forward(x, y)
        loss_value = float(loss.detach())
        metrics = {"loss": loss_value,
                   "perplexity": math.exp(loss_value) if loss_value < 20 else math.inf,
                   "learning_rate": lr}
        if not math.isfinite(loss_value):
            self.skipped_steps += 1
            metrics["skipped_step"] = 1
            return metrics
        loss.backward()
        if self.config.use_fp8 and self.config.quantize_grads:
            self._quantize_gradients(metrics)
        if self.shadow is not None:
            self.shadow.sync_weights(self.model)
            sl = self.shadow.forward_backward(x, y)
            metrics["shadow_loss"] = float(sl.detach()) if sl is not None else 0.0
            metrics.update(self.shadow.compute_gradient_similarity(self.model))
        metrics.update(compute_gradient_stats(self.model))
        if self.config.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                        self.config.grad_clip))
        else:
            norm = global_grad_norm(self.model)
        metrics["grad_norm"] = norm
        for hook in self.grad_hooks:
            hook(self, metrics)
        if not math.isfinite(norm):
            self.skipped_steps += 1
            metrics["skipped_step"] = 1
            return metrics
        snaps = self._weight_snapshots() if self.config.use_fp8 else []
        self.optimizer.step()
        if self.config.use_fp8:
            self._stall(snaps, metrics)
        return metrics

    # --- evaluation ---------------------------------------------------
    @torch.no_grad()
    def eval_step(self):
        """Mean validation loss over ``eval_iters`` batches, the same batches
        at every evaluation, through the quantized model."""
        self.model.eval()
        g = torch.Generator().manual_seed(self.config.seed + 1)
        losses = []
        for _ in range(self.config.eval_iters):
            x, y = get_batch("val", self.data_dir, self.config.block_size,
                             self.config.batch_size, self.device, generator=g)
            losses.append(float(self._forward(x, y)[1]))
        self.model.train()
        return math.fsum(losses) / len(losses)

    # --- state --------------------------------------------------------
    def quantization_state(self):
        """The trainer's own quantizer state for a checkpoint (plain values)."""
        weight = {}
        for n, m in self.quantized_layers():
            hist = getattr(m, "weight_history", None)
            # a wrapper that keeps its window in buffers is in the model's
            # state_dict already (whole window); others: their maximum
            if hist is not None and len(hist) and not any(True for _ in m.buffers()):
                weight[n] = float(hist.get_amax())
        return {"grad_amax": {n: float(h.get_amax()) for n, h in self.amax_histories.items()
                              if len(h)},
                "weight_amax": weight,
                "counters": {k: getattr(self, k) for k in (
                    "overflow_count", "underflow_count", "total_quant_ops", "stall_updates",
                    "stall_flips", "skipped_steps")},
                "best_val_loss": self.best_val_loss,
                "data_generator": self.data_generator.get_state()}

    def _restore_quantization_state(self, qs):
        if not qs:
            return
        for n, a in qs.get("grad_amax", {}).items():
            if n in self.amax_histories:
                self.amax_histories[n].reset()
                self.amax_histories[n].update(torch.tensor([a]))
        layers = dict(self.quantized_layers())
        for n, a in qs.get("weight_amax", {}).items():
            hist = getattr(layers.get(n), "weight_history", None)
            if hist is not None:
                hist.reset()
                hist.update(torch.tensor([a]))
        for k, v in qs.get("counters", {}).items():
            setattr(self, k, v)
        self.best_val_loss = qs.get("best_val_loss", self.best_val_loss)
        if "data_generator" in qs:
            self.data_generator.set_state(qs["data_generator"])

    def save(self, val_loss=None):
        """Checkpoint after ``self.step`` completed steps; returns the path."""
        return self.checkpoint_manager.save(self.step, self.model, self.optimizer, self.scaler,
                                            self.config, val_loss, self.quantization_state())

    def resume(self, checkpoint_path):
        """Load a checkpoint of this config and continue after its steps."""
        step, _, qs = load_checkpoint(checkpoint_path, self.model, self.optimizer, self.scaler,
                                      config=self.config)
        self._restore_quantization_state(qs)
        if self.shadow is not None:
            self.shadow.sync_weights(self.model)
        self.step = step
        self._say(f"Resumed from step {step}")

    # --- loop ---------------------------------------------------------
    def _say(self, text):
        if self.verbose:
            print(text, file=sys.stderr if self.verbose == "stderr" else sys.stdout, flush=True)

    def _log(self, metrics, max_steps):
        step = metrics["step"] if "step" in metrics else self.step
        if self.logger is not None:
            self.logger.log_step(step, metrics)
        if self.tracker is not None:
            self.tracker.log_step(step, metrics)
        if step % self.config.log_interval == 0 or step == max_steps - 1:
            done = step + 1 - self._first_step
            elapsed = time.perf_counter() - self.start_time
            eta = elapsed / max(done, 1) * (max_steps - step - 1)
            parts = [f"Step {step}: loss={metrics['loss']:.4f}",
                     f"ppl={metrics['perplexity']:.2f}",
                     f"grad_norm={metrics.get('grad_norm', math.nan):.3f}",
                     f"tok/s={metrics.get('throughput_tokens_sec', 0.0):.0f}"]
            if "grad_cos_sim/mean" in metrics:
                parts.append(f"grad_sim={metrics['grad_cos_sim/mean']:.3f}")
            if "quantization/bit_stall_rate" in metrics:
                parts.append(f"stall={metrics['quantization/bit_stall_rate']:.3f}")
                parts.append(f"overflow={metrics.get('quantization/overflow_rate', 0.0):.4f}")
            if "val_loss" in metrics:
                parts.append(f"val_loss={metrics['val_loss']:.4f}")
            parts.append(f"eta={format_duration(eta)}")
            self._say(", ".join(parts))

    def bit_position_stats(self):
        """``bit_position/mean|std|min|max`` over every ``bit_position``
        tensor in the optimizer's state (ManifoldAdamW keeps one per
        parameter); {} when there is none."""
        parts = [st["bit_position"].detach().float().reshape(-1).cpu()
                 for st in self.optimizer.state.values()
                 if isinstance(st.get("bit_position"), torch.Tensor)]
        if not parts:
            return {}
        v = torch.cat(parts)
        return {"bit_position/mean": float(v.mean()),
                "bit_position/std": float(v.std()) if v.numel() > 1 else 0.0,
                "bit_position/min": float(v.min()), "bit_position/max": float(v.max())}

    def handle_alerts(self, metrics):
        """Apply the alert rules (logged to the run directory and W&B);
        returns the action (continue / save_checkpoint / stop)."""
        action, alerts = self.alerts.check(self.step, metrics)
        for a in alerts:
            if self.logger is not None:
                self.logger.alert(a)
            if self.tracker is not None:
                self.tracker.send_alert(a)
            self._say(f"[{a.level}] step {a.step}: {a.title}: {a.text}")
        if action in ("save_checkpoint", "stop"):
            self.checkpoint_manager.save_on_anomaly(self.step, self.model, self.optimizer,
                                                    self.scaler, self.config,
                                                    self.quantization_state())
        return action

    def run_one(self, max_steps):
        """Draw a batch, train one step, evaluate/alert/log/checkpoint as the
        config says; returns ``(metrics, action)``. ``self.step`` advances."""
        c = self.config
        x, y = get_batch("train", self.data_dir, c.block_size, c.batch_size, self.device,
                         generator=self.data_generator)
        with StepTimer(self.device) as t:
            metrics = self.train_step(x, y)
        metrics["step"] = self.step
        metrics["throughput_tokens_sec"] = c.batch_size * c.block_size / max(t.seconds, 1e-12)
        metrics["step_time_ms"] = t.seconds * 1000.0
        metrics.update(compute_stability_metrics(self.model))
        if c.use_fp8:
            metrics["bit_stall_rate"] = (1.0 - self.stall_flips / self.stall_updates
                                         if self.stall_updates else 0.0)
        if c.use_manifold_aware and c.log_bit_position:
            metrics.update(self.bit_position_stats())
        action = self.handle_alerts(metrics)
        last = self.step == max_steps - 1
        val_loss = None
        if (self.step + 1) % c.eval_interval == 0 or last:
            val_loss = self.eval_step()
            metrics["val_loss"] = val_loss
            metrics["val_perplexity"] = math.exp(val_loss) if val_loss < 20 else math.inf
            if math.isfinite(val_loss) and val_loss < self.best_val_loss:
                self.best_val_loss = val_loss
        self._log(metrics, max_steps)
        self.step += 1
        if self.step % c.checkpoint_interval == 0 and not last:
            self.save(val_loss)
        return metrics, action

    def train(self, max_steps=None):
        """Run until ``max_steps`` steps are completed (default
        ``config.max_steps``) or the alert rules stop it; saves a final
        checkpoint. Returns the last step's metrics (None when no step ran)."""
        max_steps = self.config.max_steps if max_steps is None else int(max_steps)
        self.start_time = time.perf_counter()
        self._first_step = self.step
        metrics = None
        try:
            while self.step < max_steps:
                metrics, action = self.run_one(max_steps)
                if action == "stop":
                    self._say(f"Stopping at step {self.step - 1}: non-finite loss for "
                              f"{self.alerts.consecutive_nan_steps} steps")
                    break
            if self.step > 0:
                self.save(metrics.get("val_loss") if metrics else None)
        finally:
            self.close()
        return metrics

    def close(self):
        """Write the run directory's CSV and plots; finish W&B."""
        if self.logger is not None:
            self.logger.close()
        if self.tracker is not None:
            self.tracker.finish()
            self.tracker = None

