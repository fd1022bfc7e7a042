"""One rank of the multi-process tests (run by torchrun or test_distributed.py).

``python dist_worker.py SCENARIO OUT_DIR``; the rank writes
``OUT_DIR/SCENARIO-rank{R}.json`` with what it observed.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import mxparams as mx
import mxparams.torch as T
import numpy as np
import torch
import torch.distributed as dist
from mxparams import dist_checkpoint, distributed

B = 3  # samples per copy
STEPS = 4


def build(ctxs: list[Any], seed: int) -> mx.ParameterDict:
    rng = np.random.RandomState(seed)
    pd = mx.ParameterDict()
    pd.get("l1_weight", shape=(8, 4))
    pd.get("l1_bias", shape=(8,), lr_mult=2.0, wd_mult=0.0)
    pd.get("l2_weight", shape=(3, 8), dtype="float16")
    pd.get("out_bias", shape=(3,), grad_req="null")
    pd.initialize(ctx=ctxs)
    for p in pd.values():
        p.set_data(rng.uniform(-0.5, 0.5, p.shape).astype(p.dtype))
    pd["l1_bias"].grad_req = "add"
    return pd


def loss_on(pd: mx.ParameterDict, ctx: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w1 = T.tensor(pd["l1_weight"], ctx)
    b1 = T.tensor(pd["l1_bias"], ctx)
    w2 = T.tensor(pd["l2_weight"], ctx)
    b2 = T.tensor(pd["out_bias"], ctx)
    h = torch.tanh(x @ w1.T + b1)
    out = h @ w2.float().T + b2
    return ((out - y) ** 2).sum()


def data(n: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.RandomState(100 + step)
    return torch.from_numpy(rng.randn(n, 4).astype("f4")), torch.from_numpy(
        rng.randn(n, 3).astype("f4")
    )


OPTS = {
    "sgd": ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3, "multi_precision": True}),
    "adam": ("adam", {"learning_rate": 0.01, "wd": 1e-3, "multi_precision": True}),
}


def train_dist(opt: str, rank: int, world: int, nctx: int, overlap: bool) -> dict[str, Any]:
    ctxs = [mx.cpu(i) for i in range(nctx)]
    pd = build(ctxs, seed=rank)  # different on every rank until the broadcast
    distributed.broadcast_parameters(pd)
    init = {k: p.data(ctxs[0]).asnumpy().astype("f4").tolist() for k, p in pd.items()}
    name, params = OPTS[opt]
    sync = None
    if overlap:
        sync = distributed.OverlappedGradSync(pd, average=False, bucket_cap_mb=1e-4)
    tr = mx.Trainer(pd, name, dict(params), kvstore="dist_sync", grad_sync=sync)
    n = world * nctx * B
    for s in range(STEPS):
        x, y = data(n, s)
        losses = []
        for c, ctx in enumerate(ctxs):
            lo = (rank * nctx + c) * B
            losses.append(loss_on(pd, ctx, x[lo : lo + B], y[lo : lo + B]))
        torch.stack(losses).sum().backward()
        tr.step(nctx * B)
        pd.zero_grad()
    final = {k: [p.data(c).asnumpy().astype("f4").tolist() for c in ctxs] for k, p in pd.items()}
    out: dict[str, Any] = {"init": init, "final": final}
    if sync is not None:
        out["timeline"] = sync.timeline
    return out


def reference(opt: str, init: dict[str, Any], n: int) -> dict[str, Any]:
    """One process, one context, the whole batch."""
    ctx = mx.cpu(0)
    pd = build([ctx], seed=0)
    for k, p in pd.items():
        p.set_data(np.asarray(init[k], dtype=p.dtype))
    name, params = OPTS[opt]
    tr = mx.Trainer(pd, name, dict(params))
    for s in range(STEPS):
        x, y = data(n, s)
        loss_on(pd, ctx, x, y).backward()
        tr.step(n)
        pd.zero_grad()
    return {k: p.data(ctx).asnumpy().astype("f4").tolist() for k, p in pd.items()}


def scenario_train(rank: int, world: int, out: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for opt in ("sgd", "adam"):
        got = train_dist(opt, rank, world, 2, overlap=False)
        res[opt] = {"final": got["final"], "ref": reference(opt, got["init"], world * 2 * B)}
    got = train_dist("sgd", rank, world, 2, overlap=True)
    res["sgd_overlap"] = {
        "final": got["final"],
        "ref": reference("sgd", got["init"], world * 2 * B),
        "timeline": got["timeline"],
    }
    # no_sync: accumulate two backward passes, sync once.
    pd = build([mx.cpu(0)], seed=0)
    pd.setattr("grad_req", "add")
    sync = distributed.OverlappedGradSync(pd, average=True)
    x, y = data(4, 0)
    with sync.no_sync():
        loss_on(pd, mx.cpu(0), x[rank : rank + 1], y[rank : rank + 1]).backward()
    launched_inside = len(sync.timeline)
    loss_on(pd, mx.cpu(0), x[2 + rank : 3 + rank], y[2 + rank : 3 + rank]).backward()
    sync.wait()
    res["no_sync"] = {
        "launched_inside": launched_inside,
        "grad": pd["l1_weight"].grad().asnumpy().tolist(),
    }
    # Sharded checkpoint of a trained dict.
    pd = build([mx.cpu(0), mx.cpu(1)], seed=7)
    distributed.broadcast_parameters(pd)
    dist_checkpoint.save_sharded(pd, out / "ckpt")
    dist_checkpoint.save(pd, out / "whole.params")
    # A mismatch is a named error on every rank.
    bad = mx.ParameterDict()
    bad.get("w", shape=(2, 3 + rank)).initialize()
    try:
        distributed.broadcast_parameters(bad)
        res["mismatch"] = "no error"
    except distributed.DistributedError as err:
        res["mismatch"] = str(err)
    return res


def scenario_load(rank: int, world: int, out: Path) -> dict[str, Any]:
    pd = build([mx.cpu(0)], seed=123)
    dist_checkpoint.load_sharded(pd, out / "ckpt.params.index.json")
    return {k: p.data().asnumpy().astype("f4").tolist() for k, p in pd.items()}


def scenario_nodes(rank: int, world: int, out: Path) -> dict[str, Any]:
    got = train_dist("sgd", rank, world, 1, overlap=False)
    return {"final": got["final"], "ref": reference("sgd", got["init"], world * B)}


def scenario_kill(rank: int, world: int, out: Path) -> dict[str, Any]:
    pd = build([mx.cpu(0)], seed=1)
    dist_checkpoint.save_sharded(pd, out / "ckpt")  # the previous checkpoint
    for p in pd.values():
        p.set_data(np.zeros(p.shape, dtype=p.dtype))
    if rank == 1:
        real_save = dist_checkpoint._nd.save

        def dying_save(fname: Any, data: Any, **kw: Any) -> None:
            real_save(fname, data, **kw)
            os.kill(os.getpid(), signal.SIGKILL)

        dist_checkpoint._nd.save = dying_save  # type: ignore[assignment]
    t0 = time.monotonic()
    try:
        dist_checkpoint.save_sharded(pd, out / "ckpt")
        return {"error": None}
    except Exception as err:  # noqa: BLE001 - the test reads the message
        return {"error": f"{type(err).__name__}: {err}", "seconds": time.monotonic() - t0}


def scenario_exit(rank: int, world: int, out: Path) -> dict[str, Any]:
    pd = build([mx.cpu(0)], seed=1)
    sync = distributed.GradientSync(pd)
    sync.sync()
    if rank == 1:
        dist.destroy_process_group()
        os._exit(0)
    t0 = time.monotonic()
    try:
        sync.sync()
        return {"error": None}
    except Exception as err:  # noqa: BLE001 - the test reads the message
        return {"error": f"{type(err).__name__}: {err}", "seconds": time.monotonic() - t0}


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    timeout = float(os.environ.get("MXP_TEST_PG_TIMEOUT", "60"))
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    res = globals()[f"scenario_{scenario}"](rank, world, out)
    (out / f"{scenario}-rank{rank}.json").write_text(json.dumps(res))
    if dist.is_initialized():
        dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
