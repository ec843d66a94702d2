#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""gpt_ref.py IN OUT — the PyTorch reference of the training bench's GPT.

Reads IN (written by tests/train/test_gpt_torch.c): the GPT's sizes, the
C bench's parameter table (the twin's parameter names, sizes, float32
values), one batch of byte tokens and targets, the optimizer settings and,
for the quantized variant, the formats per layer type and role. Builds
``altgrad.training.model.GPT`` with those weights (for the quantized
variant converted with ``altgrad.integration.quantize_model``: the same
formats, delayed scaling over the same window with the empty window read
as the current amax, nearest-even rounding), then writes OUT (float32):
the loss and every gradient (in the table's order) of one
forward/backward, and the loss of each of N AdamW steps on the batch (the
twin's configure_optimizers: 2-D tensors decayed, the rest not).

Exit status 77 when torch, the twin or (quantized) altgrad.integration
cannot be imported: the C test reports a skip.
"""
import struct
import sys

try:
    import numpy as np
    import torch
    from altgrad.training.model import GPT, GPTConfig
except ImportError as e:  # pragma: no cover
    print(f"gpt_ref.py: cannot import torch or altgrad.training.model: {e}",
          file=sys.stderr)
    sys.exit(77)

MAGIC = b"AGTG"
TYPES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "lm_head")
ROLES = ("weight", "input", "grad_output")


def read_input(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != MAGIC:
        raise SystemExit(f"{path}: bad magic")
    off = 4
    keys = ("version", "n_layer", "n_head", "n_embd", "block_size", "vocab_size",
            "B", "T", "nsteps", "quantized", "hist_len", "ntensors")
    vals = struct.unpack_from(f"<{len(keys)}i", data, off)
    off += 4 * len(keys)
    d = dict(zip(keys, vals))
    if d["version"] != 1:
        raise SystemExit(f"{path}: version {d['version']}")
    d["lr"], d["wd"] = struct.unpack_from("<ff", data, off)
    off += 8
    specs = []
    for _ in TYPES:
        row = []
        for _ in ROLES:
            row.append(data[off:off + 48].split(b"\0")[0].decode())
            off += 48
        specs.append(row)
    d["specs"] = specs
    tensors = []
    for _ in range(d["ntensors"]):
        name = data[off:off + 48].split(b"\0")[0].decode()
        off += 48
        (n,) = struct.unpack_from("<q", data, off)
        off += 8
        tensors.append((name, n))
    d["tensors"] = tensors
    nparams = sum(n for _, n in tensors)
    d["params"] = np.frombuffer(data, dtype="<f4", count=nparams, offset=off).copy()
    off += 4 * nparams
    N = d["B"] * d["T"]
    d["tok"] = np.frombuffer(data, dtype=np.uint8, count=N, offset=off).copy()
    off += N
    d["tgt"] = np.frombuffer(data, dtype=np.uint8, count=N, offset=off).copy()
    off += N
    if off != len(data):
        raise SystemExit(f"{path}: {len(data) - off} unexpected bytes")
    return d


def convert(model, d):
    """The twin converted as the C model is configured: one rule per layer
    type, each role its format or float32."""
    try:
        from altgrad.integration import (CastConfig, LayerPrecisionRule, LinearConfig,
                                         QuantizationConfig, quantize_model)
    except ImportError as e:
        print(f"gpt_ref.py: cannot import altgrad.integration: {e}", file=sys.stderr)
        sys.exit(77)
    rules = []
    for ty, row in zip(TYPES, d["specs"]):
        casts = {}
        for role, spec in zip(ROLES, row):
            casts[role] = (None if spec == "fp32" else
                           CastConfig(spec, "delayed", d["hist_len"], include_current=False))
        if all(c is None for c in casts.values()):
            rules.append(LayerPrecisionRule(ty.replace(".", r"\.") + "$", None))
        else:
            rules.append(LayerPrecisionRule(ty.replace(".", r"\.") + "$", None,
                                            config=LinearConfig(**casts)))
    cfg = QuantizationConfig(default_format=None, layer_rules=rules)
    quantize_model(model, config=cfg)


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: gpt_ref.py IN OUT")
    d = read_input(sys.argv[1])
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = GPTConfig(n_layer=d["n_layer"], n_head=d["n_head"], n_embd=d["n_embd"],
                    block_size=d["block_size"], vocab_size=d["vocab_size"],
                    dropout=0.0, bias=True)

    def build():
        """The twin with the C weights (then converted); its parameters by
        name, taken before the conversion (the wrapper keeps them)."""
        model = GPT(cfg, seed=0)
        params = dict(model.named_parameters())
        off = 0
        with torch.no_grad():
            for name, n in d["tensors"]:
                p = params.get(name)
                if p is None or p.numel() != n:
                    raise SystemExit(f"{name}: C has {n} elements, torch "
                                     f"{None if p is None else p.numel()}")
                p.copy_(torch.from_numpy(d["params"][off:off + n]).view_as(p))
                off += n
        missing = set(params) - {n for n, _ in d["tensors"]}
        if missing:
            raise SystemExit(f"parameters the C table lacks: {sorted(missing)}")
        if d["quantized"]:
            convert(model, d)
        model.train()
        return model, params

    idx = torch.from_numpy(d["tok"].astype(np.int64)).view(d["B"], d["T"])
    tgt = torch.from_numpy(d["tgt"].astype(np.int64)).view(d["B"], d["T"])
    model, params = build()
    _, loss = model(idx, tgt)
    loss.backward()
    out = [loss.item()]
    grads = [params[n].grad.detach().reshape(-1).numpy() for n, _ in d["tensors"]]
    # the steps start again from the same weights with fresh histories
    model, params = build()
    opt = model.configure_optimizers(d["wd"], d["lr"], (0.9, 0.999), "cpu")
    losses = []
    for _ in range(d["nsteps"]):
        opt.zero_grad(set_to_none=True)
        _, loss = model(idx, tgt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    res = np.concatenate([np.array(out, dtype=np.float32)] +
                         [g.astype(np.float32) for g in grads] +
                         [np.array(losses, dtype=np.float32)])
    with open(sys.argv[2], "wb") as f:
        f.write(res.astype("<f4").tobytes())


if __name__ == "__main__":
    main()
