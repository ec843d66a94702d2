# SPDX-License-Identifier: MIT
"""The command that runs AltGrad's experiment configs::

    python3 -m altgrad.experiments prepare [--input FILE] [--out DIR]
    python3 -m altgrad.experiments run CONFIG.yaml [--quick] [--steps N] [--set KEY=VALUE]...
                                   [--resume CHECKPOINT]
    python3 -m altgrad.experiments matrix [--quick] [--steps N] [--formats E5M2,E3M4,...]

``run`` trains one config (AltGrad's YAML, unchanged) and writes its run
directory ``OUT/<config name>/`` (default OUT = ``runs``): ``config.yaml``
(the config as run), ``metrics.jsonl`` / ``metrics.csv``, ``alerts.jsonl``,
``loss.svg`` (and ``loss.png`` with matplotlib), ``checkpoints/``, and
``result.json``. ``--quick`` makes it CPU-sized
(:func:`altgrad.training.format_runner.apply_quick`: a 2-layer, 128-wide
GPT, context 64, batch 8, at most 200 steps, the data's vocabulary).
Without ``--quick`` a config's ``vocab_size`` must match the data's
tokenizer: AltGrad's configs say 50257 (GPT-2 BPE), byte-level data has
256, so either prepare GPT-2 tokens (``prepare --tokenizer gpt2``, needs
tiktoken) or override (``--set vocab_size=256``).

``matrix`` runs AltGrad's experiment matrix: the BF16 baseline
(``bf16_baseline.yaml``) and E5M2, E3M4, E1M6, E0M7, E7M0 (from
``e5m2_short.yaml`` with the format changed), each of the five with AdamW
and with ManifoldAdamW (``manifold_mantissa_bits`` = the format's mantissa
bits), and writes ``OUT/matrix/results.{md,csv,json}``; it prints progress
with an ETA. Exit status: 0 done, 1 bad usage, 2 a run could not start or
failed.
"""
import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time

from ..utils.files import format_duration, json_value

__all__ = ["main", "matrix_configs", "results_table", "MATRIX_FORMATS"]

MATRIX_FORMATS = ("E5M2", "E3M4", "E1M6", "E0M7", "E7M0")
MANTISSA_BITS = {"E5M2": 2, "E3M4": 4, "E1M6": 6, "E0M7": 7, "E7M0": 0}
_HERE = os.path.dirname(os.path.abspath(__file__))


def default_config_dir():
    """``experiments/configs`` of the working directory, else of the
    source tree this package sits in."""
    for d in ("experiments/configs",
              os.path.join(_HERE, "..", "..", "..", "experiments", "configs")):
        if os.path.isdir(d):
            return os.path.normpath(d)
    return "experiments/configs"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 1 (the project's CLI convention)
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(1)


def _parse_set(items):
    """``KEY=VALUE`` pairs, VALUE read as YAML (numbers, true/false, lists)."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _result_row(name, optimizer, res):
    hist = res.metrics_history
    stall = [v for v in hist.get("bit_stall_rate", []) if math.isfinite(v)]
    over = [v for v in hist.get("overflow_rate", []) if math.isfinite(v)]
    return {"run": name, "format": res.format_name, "optimizer": optimizer,
            "completed": res.completed, "steps": res.steps_completed,
            "max_steps": res.max_steps, "final_loss": res.final_loss,
            "best_loss": res.best_loss, "final_val_loss": res.final_val_loss,
            "best_val_loss": res.best_val_loss,
            "bit_stall_rate": stall[-1] if stall else 0.0,
            "overflow_rate": max(over) if over else 0.0,
            "skipped_steps": res.skipped_steps, "collapse_reason": res.collapse_reason or "",
            "format_shifted_to": res.shifted_to or "", "wall_s": res.duration_seconds}


def results_table(rows):
    """A markdown table of result rows."""
    head = ["run", "format", "optimizer", "steps", "final_loss", "final_val_loss",
            "bit_stall_rate", "overflow_rate", "skipped_steps", "completed", "wall_s"]

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = dict(r, steps=f"{r['steps']}/{r['max_steps']}")
        lines.append("| " + " | ".join(cell(vals[h]) for h in head) + " |")
    return "\n".join(lines) + "\n"


def _write_result(run_dir, row):
    with open(os.path.join(run_dir, "result.json"), "w", encoding="utf-8") as f:
        json.dump({k: json_value(v) for k, v in row.items()}, f, indent=2)


def _run_one(config, name, out, args, optimizer="adamw"):
    from ..training.format_runner import run_format_experiment

    run_dir = os.path.join(out, name)
    overrides = {"run_dir": run_dir, "checkpoint_dir": os.path.join(run_dir, "checkpoints")}
    overrides.update(args.set_values)
    if args.steps is not None:
        overrides["max_steps"] = args.steps
    res = run_format_experiment(config, device=args.device, data_dir=args.data,
                                quick=args.quick, overrides=overrides,
                                verbose=not args.quiet, resume=getattr(args, "resume", None))
    row = _result_row(name, optimizer, res)
    _write_result(run_dir, row)
    return row


def matrix_configs(config_dir=None):
    """``[(run name, optimizer, TrainConfig)]`` of AltGrad's matrix (module
    docstring), from `config_dir` (default :func:`default_config_dir`)."""
    from ..training.config import load_config

    d = config_dir or default_config_dir()
    base = load_config(os.path.join(d, "bf16_baseline.yaml"))
    fp8 = load_config(os.path.join(d, "e5m2_short.yaml"))
    runs = [("bf16_baseline", "adamw", dataclasses.replace(base, max_steps=fp8.max_steps))]
    for fmt in MATRIX_FORMATS:
        for opt in ("adamw", "manifold"):
            c = dataclasses.replace(fp8, fp8_format=fmt, use_manifold_aware=opt == "manifold",
                                    manifold_mantissa_bits=MANTISSA_BITS[fmt],
                                    run_name=f"{fmt.lower()}-{opt}")
            runs.append((f"{fmt.lower()}_{opt}", opt, c))
    return runs


def cmd_run(args):
    from ..training.config import load_config

    config = load_config(args.config)
    name = os.path.splitext(os.path.basename(args.config))[0]
    opt = "manifold" if config.use_manifold_aware else "adamw"
    row = _run_one(config, name, args.out, args, opt)
    print(results_table([row]), end="")
    print(f"run directory: {os.path.join(args.out, name)}")
    return 0 if row["completed"] else 2


def cmd_matrix(args):
    runs = matrix_configs(args.configs)
    if args.formats:
        want = {f.strip().upper() for f in args.formats.split(",")}
        unknown = want - set(MATRIX_FORMATS) - {"BF16"}
        if unknown:
            raise ValueError(f"--formats: unknown {', '.join(sorted(unknown))} "
                             f"(known: BF16, {', '.join(MATRIX_FORMATS)})")
        runs = [r for r in runs if (r[2].fp8_format if r[2].use_fp8 else "BF16") in want]
    out = os.path.join(args.out, "matrix")
    rows = []
    t0 = time.perf_counter()
    for i, (name, opt, config) in enumerate(runs):
        elapsed = time.perf_counter() - t0
        eta = f", ETA {format_duration(elapsed / i * (len(runs) - i))}" if i else ""
        print(f"[{i + 1}/{len(runs)}] {name} (elapsed {format_duration(elapsed)}{eta})", flush=True)
        rows.append(_run_one(config, name, out, args, opt))
    os.makedirs(out, exist_ok=True)
    table = results_table(rows)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(table)
    with open(os.path.join(out, "results.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump([{k: json_value(v) for k, v in r.items()} for r in rows], f, indent=2)
    print(table, end="")
    print(f"results: {os.path.join(out, 'results.md')} ({format_duration(time.perf_counter() - t0)})")
    return 0


def main(argv=None):
    p = _Parser(prog="python3 -m altgrad.experiments",
                description="Run AltGrad's experiment configs on altgrad.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--quick", action="store_true",
                        help="CPU-sized model and run (2x128 GPT, context 64, <= 200 steps)")
    common.add_argument("--steps", type=int, help="max_steps override")
    common.add_argument("--set", dest="set_values", action="append", metavar="KEY=VALUE",
                        help="override a config key (repeatable)")
    common.add_argument("--data", help="token-file directory (default: the config's data_dir, "
                                       "data/kjv, prepared on first use)")
    common.add_argument("--out", default="runs", help="output directory (default runs)")
    common.add_argument("--device", default="cpu")
    common.add_argument("--quiet", action="store_true", help="no per-step lines")
    r = sub.add_parser("run", parents=[common], help="run one config")
    r.add_argument("config", help="a YAML config (e.g. experiments/configs/e5m2_fp8.yaml)")
    r.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue from a checkpoint of this run (same config and options)")
    m = sub.add_parser("matrix", parents=[common], help="run AltGrad's experiment matrix")
    m.add_argument("--formats", help="comma-separated subset of BF16,E5M2,E3M4,E1M6,E0M7,E7M0")
    m.add_argument("--configs", help="directory of AltGrad's configs (default "
                                     "experiments/configs)")
    pr = sub.add_parser("prepare", help="make token files (see altgrad.training.prepare)",
                        add_help=False)
    pr.add_argument("rest", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.command == "prepare":
        from ..training.prepare import main as prepare_main

        return prepare_main(args.rest)
    from ..training.checkpoint import CheckpointError
    from ..training.config import ConfigError
    from ..training.data import DataError
    from ..training.prepare import PrepareError
    from ..training.trainer import TrainerError

    try:
        args.set_values = _parse_set(args.set_values)
        if args.steps is not None and args.steps < 0:
            raise ValueError("--steps must be >= 0")
        return cmd_run(args) if args.command == "run" else cmd_matrix(args)
    except (ConfigError, DataError, PrepareError, TrainerError, CheckpointError,
            FileNotFoundError, ImportError, ValueError, RuntimeError) as e:
        print(f"altgrad.experiments: {e}", file=sys.stderr)
        return 2
