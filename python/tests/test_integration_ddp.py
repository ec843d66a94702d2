# SPDX-License-Identifier: MIT
"""A converted model under DistributedDataParallel (gloo, two processes on
localhost) gives the losses of one process on the same global batch: the
amaxes of inputs and output gradients are reduced with MAX over the group
(LinearConfig.sync_amax), so both see the global batch's scales."""
import datetime
import faulthandler
import gc
import os
import time
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from altgrad.integration import CastConfig, LinearConfig, quantize_model, stats

STEPS, BATCH = 4, 16


def make_model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.Linear(32, 5))
    cfg = LinearConfig(weight=CastConfig("float8_e4m3fn", history_len=4),
                       input=CastConfig("float8_e4m3fn", history_len=4),
                       grad_output=CastConfig("float8_e5m2", history_len=4))
    return quantize_model(m, config=cfg)


def data(step):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(BATCH, 12, generator=g) * (1 + step), torch.randint(0, 5, (BATCH,),
                                                                              generator=g)


def train(model, rank=0, world=1):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    per = BATCH // world
    for step in range(STEPS):
        x, y = data(step)
        x, y = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t = loss.detach().clone()
        if world > 1:  # the global batch's mean loss
            dist.all_reduce(t)
            t /= world
        losses.append(float(t))
    return losses


def _worker(rank, world, init_file, out_file):
    faulthandler.dump_traceback_later(90, exit=True)  # a hang says where, then ends
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    model = nn.parallel.DistributedDataParallel(make_model())
    losses = train(model, rank, world)
    scale = stats(model.module)["0"]["input"]["scale"]
    if rank == 0:
        torch.save({"losses": losses, "scale": scale}, out_file)
    # tear down in order: DDP (its reducer) while the group lives, then the group
    del model
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    faulthandler.cancel_dump_traceback_later()


def test_ddp_two_processes_match_one_process():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    single = make_model()
    ref = train(single)
    ref_scale = stats(single)["0"]["input"]["scale"]
    with tempfile.TemporaryDirectory() as d:
        init_file, out_file = os.path.join(d, "init"), os.path.join(d, "out.pt")
        ctx = mp.spawn(_worker, args=(2, init_file, out_file), nprocs=2, join=False)
        deadline = time.monotonic() + 240  # never hang the suite
        while not ctx.join(timeout=5):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.terminate()
                pytest.fail("the DDP workers did not finish in 240 s")
        res = torch.load(out_file)
    # the scales are those of the global batch, exactly
    assert res["scale"] == ref_scale
    # the losses agree to float32 rounding (sums in another order)
    for a, b in zip(res["losses"], ref):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), (res["losses"], ref)
    assert len(set(ref)) == STEPS  # the model moved
