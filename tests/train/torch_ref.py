#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""torch_ref.py IN OUT — the PyTorch reference of the training bench's MLP.

Reads IN (written by tests/train/test_train_torch.c): the network's sizes and
float32 weights (layout of the C bench: per linear layer W[out,in] then
b[out]), one batch, the optimizer settings and, for the quantized variant,
the per-layer formats (weights, inputs, output gradient). Builds the same
model in torch (nn.Linear layers, ReLU, cross-entropy; for the quantized
variant altgrad.quantization.quantize with the straight-through estimator
on weights and inputs, and a gradient quantizer on each layer's output
gradient, every quantizer with delayed scaling from an amax history exactly
as train/nn.c does: altgrad.quantization.DelayedScaler), then writes OUT: the loss and every gradient of one
forward/backward, and the loss of each of N optimizer steps on the batch.

Exit status 77 when torch (or, for the quantized variant, altgrad's Python
package) cannot be imported: the C test reports a skip.
"""
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print(f"torch_ref.py: cannot import torch/numpy: {e}", file=sys.stderr)
    sys.exit(77)

MAGIC = b"AGTT"


def read_input(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != MAGIC:
        raise SystemExit(f"{path}: bad magic")
    off = 4
    (version, B, ndims) = struct.unpack_from("<iii", data, off)
    off += 12
    if version != 1:
        raise SystemExit(f"{path}: version {version}")
    dims = list(struct.unpack_from(f"<{ndims}i", data, off))
    off += 4 * ndims
    nsteps, optimizer, quantized, hist_len = struct.unpack_from("<iiii", data, off)
    off += 16
    lr, wd = struct.unpack_from("<ff", data, off)
    off += 8
    nlin = ndims - 1
    specs = []
    for _ in range(nlin):
        layer = []
        for _ in range(3):
            layer.append(data[off:off + 48].split(b"\0")[0].decode())
            off += 48
        specs.append(layer)
    nparams = sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(nlin))
    params = np.frombuffer(data, dtype="<f4", count=nparams, offset=off).copy()
    off += 4 * nparams
    x = np.frombuffer(data, dtype="<f4", count=B * dims[0], offset=off).copy()
    off += 4 * B * dims[0]
    y = np.frombuffer(data, dtype="<i4", count=B, offset=off).copy()
    off += 4 * B
    if off != len(data):
        raise SystemExit(f"{path}: {len(data) - off} unexpected bytes")
    return dict(B=B, dims=dims, nsteps=nsteps, optimizer=optimizer,
                quantized=quantized, hist_len=hist_len, lr=lr, wd=wd,
                specs=specs, params=params, x=x.reshape(B, dims[0]), y=y)


class Quantizer:
    """One tensor's quantizer with delayed scaling: the library's delayed
    scaler (altgrad.quantization.DelayedScaler, ag_scaler) with the empty
    window read as the tensor's own amax (first="current"), the policy of
    train/nn.c. No scale is computed here."""

    def __init__(self, spec, hist_len):
        self.fmt = None if spec == "fp32" else spec
        if self.fmt is not None:
            from altgrad.quantization import DelayedScaler
            self.scaler = DelayedScaler(spec, hist_len, first="current")

    def reset(self):
        if self.fmt is not None:
            self.scaler.reset()

    def forward(self, t):
        if self.fmt is None:
            return t
        return self.scaler.quantize(t)


class GradQuant(torch.autograd.Function):
    """Identity forward; the output gradient is quantized in backward."""

    @staticmethod
    def forward(ctx, t, q):
        ctx.q = q
        return t.view_as(t)

    @staticmethod
    def backward(ctx, dy):
        q = ctx.q
        if q.fmt is None:
            return dy, None
        with torch.no_grad():
            return q.forward(dy.contiguous()), None


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: torch_ref.py IN OUT")
    inp = read_input(sys.argv[1])
    if inp["quantized"]:
        try:
            import altgrad.quantization  # noqa: F401
        except ImportError as e:
            print(f"torch_ref.py: cannot import altgrad.quantization: {e}",
                  file=sys.stderr)
            sys.exit(77)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dims, specs = inp["dims"], inp["specs"]
    nlin = len(dims) - 1
    layers = []
    off = 0
    p = torch.from_numpy(inp["params"])
    for i in range(nlin):
        lin = torch.nn.Linear(dims[i], dims[i + 1])
        n = dims[i] * dims[i + 1]
        with torch.no_grad():
            lin.weight.copy_(p[off:off + n].view(dims[i + 1], dims[i]))
            off += n
            lin.bias.copy_(p[off:off + dims[i + 1]])
            off += dims[i + 1]
        q = [Quantizer(s, inp["hist_len"]) for s in specs[i]]
        layers.append((lin, q))
    params = [t for lin, _ in layers for t in (lin.weight, lin.bias)]
    x = torch.from_numpy(inp["x"])
    y = torch.from_numpy(inp["y"]).long()

    def forward():
        h = x
        for i, (lin, (qw, qx, qg)) in enumerate(layers):
            w = qw.forward(lin.weight)
            hq = qx.forward(h)
            h = torch.nn.functional.linear(hq, w, lin.bias)
            h = GradQuant.apply(h, qg)
            if i + 1 < nlin:
                h = torch.relu(h)
        return torch.nn.functional.cross_entropy(h, y)

    loss0 = forward()
    loss0.backward()
    grads = torch.cat([t.grad.reshape(-1) for t in params])
    for t in params:
        t.grad = None
    # the trajectory restarts from the same weights: histories restart too
    for _, qs in layers:
        for q in qs:
            q.reset()
    if inp["optimizer"] == 0:
        opt = torch.optim.AdamW(params, lr=inp["lr"], betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=inp["wd"])
    else:
        opt = torch.optim.SGD(params, lr=inp["lr"], momentum=0.9, weight_decay=inp["wd"])
    losses = []
    for _ in range(inp["nsteps"]):
        opt.zero_grad()
        loss = forward()
        losses.append(float(loss))
        loss.backward()
        opt.step()
    with open(sys.argv[2], "wb") as f:
        f.write(struct.pack("<f", float(loss0)))
        f.write(grads.detach().numpy().astype("<f4").tobytes())
        f.write(np.asarray(losses, dtype="<f4").tobytes())


if __name__ == "__main__":
    main()
