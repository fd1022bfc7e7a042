"""mxparams across processes against torch DDP: gradient sync, training steps/s, checkpoints.

Run: ``python -m torch.distributed.run --nproc_per_node=2 benches/python/bench_dist.py``
(Gloo; ``--repeat N`` rounds after a warm-up round, each running every
variant of a table once, interleaved so that all see the same load of a busy
machine; medians reported). Rank 0 prints Markdown tables with the ratios the issue targets:

(a) Gradient sync of ResNet-50-sized gradients (25.6M float32 in 161 tensors):
    ``GradientSync.sync()`` (gradients live in the buckets, the all-reduce runs
    in place) against DDP's reducer on the same gradients, timed two ways --
    its comm hook's all-reduces from the first bucket's launch to the last
    one's completion, and DDP backward minus the same backward under
    ``no_sync()`` -- and against one ``all_reduce`` of one flat tensor of the
    same bytes (the bound: no bucketing at all).
(b) Training steps/s of the demo MLP (examples/demo.py, global batch 100, Adam,
    one context per process): mxparams.torch + ``Trainer(kvstore='dist_sync')``
    against the same network in ``torch.nn`` under DDP with ``torch.optim.Adam``.
(c) Checkpoints of 25.6M float32 parameters: ``dist_checkpoint.save_sharded``
    (every rank writes its shard) against ``dist_checkpoint.save`` (rank 0
    writes the file), and the matching loads.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mxparams as mx
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from mxparams import dist_checkpoint, distributed

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from demo import MLP, spirals  # noqa: E402

TOTAL = 25_600_000
NTENSORS = 161


def sizes() -> list[int]:
    rng = np.random.RandomState(0)
    w = rng.uniform(0.1, 1.0, NTENSORS)
    s = np.maximum(1, (w / w.sum() * TOTAL).astype(int))
    s[-1] += TOTAL - s.sum()
    return [int(x) for x in s]


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of one run of ``fn`` started together on all ranks (the
    slowest rank's)."""
    dist.barrier()
    t0 = time.perf_counter()
    fn()
    t = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def medians(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median time of each of ``fns`` over ``repeat`` rounds after a warm-up
    round; each round runs every one once, so that all see the same load of
    a busy machine."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeat + 1):
        for k, fn in fns.items():
            t = timed(fn)
            if i:
                times[k].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


# -- (a) gradient sync --------------------------------------------------------


class HookTimer:
    """DDP comm hook: plain all-reduce (DDP's default), recording when the
    first bucket is launched and the last one completes."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.start: float | None = None
        self.end = 0.0

    # No annotations: DDP compares them with its own classes, and this
    # module's are strings (postponed evaluation).
    def __call__(self, state, bucket):  # type: ignore[no-untyped-def]
        if self.start is None:
            self.start = time.perf_counter()
        buf = bucket.buffer()
        fut = dist.all_reduce(buf, async_op=True).get_future()  # type: ignore[union-attr]

        def done(f: torch.futures.Future[Any]) -> torch.Tensor:
            self.end = time.perf_counter()
            out: torch.Tensor = f.value()[0].div_(self.world)
            return out

        return fut.then(done)


class Grads(torch.nn.Module):
    """Parameters of the given sizes whose gradients are all ones."""

    def __init__(self, shapes: list[int]) -> None:
        super().__init__()
        self.ps = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(n)) for n in shapes])

    def forward(self) -> torch.Tensor:
        return torch.stack([p.sum() for p in self.ps]).sum()


def bench_sync(repeat: int, world: int, bucket_mb: float) -> dict[str, float]:
    shapes = sizes()
    pd = mx.ParameterDict()
    for i, n in enumerate(shapes):
        pd.get(f"p{i:03d}", shape=(n,))
    pd.initialize(ctx=mx.cpu(0))
    for p in pd.values():
        np.asarray(p.grad())[:] = 1.0
    sync = distributed.GradientSync(pd, bucket_cap_mb=bucket_mb)  # averages, as DDP does

    def summing() -> None:
        # The Trainer's way: it sums and folds 1/W into rescale_grad. The same
        # object, as a second GradientSync over these parameters would take
        # the gradients into its own buckets (a copy) on every alternation.
        sync.average = False
        try:
            sync.sync()
        finally:
            sync.average = True

    mod = Grads(shapes)
    ddp = torch.nn.parallel.DistributedDataParallel(
        mod, gradient_as_bucket_view=True, bucket_cap_mb=bucket_mb
    )
    timer = HookTimer(world)
    ddp.register_comm_hook(None, timer.__call__)

    def backward() -> None:
        ddp().backward()  # through DDP's forward, which arms its reducer

    spans = []

    def ddp_step() -> None:
        timer.start = None
        backward()
        assert timer.start is not None
        spans.append(timer.end - timer.start)

    def nosync_step() -> None:
        with ddp.no_sync():
            backward()

    flat = torch.ones(TOTAL)
    m = medians(
        {
            "mx": sync.sync,
            "mx_sum": summing,
            "ddp_bwd": ddp_step,
            "nosync_bwd": nosync_step,
            "flat": lambda: dist.all_reduce(flat),
        },
        repeat,
    )
    hook = torch.tensor([statistics.median(spans[1:])], dtype=torch.float64)
    dist.all_reduce(hook, op=dist.ReduceOp.MAX)
    return {**m, "ddp_hook": float(hook), "ddp_diff": max(m["ddp_bwd"] - m["nosync_bwd"], 1e-9)}


# -- (b) training steps/s -----------------------------------------------------


def _data(rank: int, world: int, steps: int, batch: int) -> list[tuple[torch.Tensor, ...]]:
    x_np, y_np = spirals(1000, seed=0)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        idx = rng.choice(len(x_np), batch, replace=False)
        mine = np.array_split(idx, world)[rank]
        out.append((torch.from_numpy(x_np[mine]), torch.from_numpy(y_np[mine])))
    return out


def bench_train(repeat: int, rank: int, world: int, steps: int) -> dict[str, float]:
    data = _data(rank, world, steps, 100)
    ctx = mx.cpu(0)
    mx.random.seed(0)
    net = MLP([64, 64, 2])
    net.params.initialize(mx.init.Xavier(), ctx=ctx)
    with torch.no_grad():
        net(data[0][0][:1], ctx)
    distributed.broadcast_parameters(net.params)
    trainer = mx.Trainer(net.params, "adam", {"learning_rate": 0.01}, kvstore="dist_sync")

    def mx_run() -> None:
        for x, y in data:
            F.cross_entropy(net(x, ctx), y, reduction="sum").backward()
            trainer.step(len(x))

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 2),
    )
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=0.01)

    def ddp_run() -> None:
        for x, y in data:
            opt.zero_grad()
            F.cross_entropy(ddp(x), y).backward()
            opt.step()

    m = medians({"mx": mx_run, "ddp": ddp_run}, repeat)
    return {"mx": steps / m["mx"], "ddp": steps / m["ddp"]}


# -- (c) checkpoints ----------------------------------------------------------


def bench_checkpoint(repeat: int, rank: int, folder: Path) -> dict[str, float]:
    pd = mx.ParameterDict()
    for i, n in enumerate(sizes()):
        pd.get(f"p{i:03d}", shape=(n,))
    pd.initialize(mx.init.Uniform(), ctx=mx.cpu(0))
    sharded = folder / "sharded"
    single = folder / "single.params"
    index = folder / "sharded.params.index.json"
    dist_checkpoint.save_sharded(pd, sharded)  # so the loads below find files
    dist_checkpoint.save(pd, single)
    m = medians(
        {
            "save_sh": lambda: dist_checkpoint.save_sharded(pd, sharded),
            "save_r0": lambda: dist_checkpoint.save(pd, single),
            "load_sh": lambda: dist_checkpoint.load_sharded(pd, index),
            "load_r0": lambda: dist_checkpoint.load(pd, single),
        },
        repeat,
    )
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="bucket cap, both sides")
    ap.add_argument("--only", choices=["sync", "train", "checkpoint"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    box = [tempfile.mkdtemp(prefix="mxparams-bench-dist-") if rank == 0 else ""]
    dist.broadcast_object_list(box)
    folder = Path(box[0])
    s = t = c = None
    try:
        if args.only in (None, "sync"):
            s = bench_sync(args.repeat, world, args.bucket_mb)
        if args.only in (None, "train"):
            t = bench_train(args.repeat, rank, world, args.steps)
        if args.only in (None, "checkpoint"):
            c = bench_checkpoint(max(3, args.repeat // 2), rank, folder)
    finally:
        dist.barrier()
        if rank == 0:
            shutil.rmtree(folder, ignore_errors=True)
    if rank == 0:
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{world} processes, Gloo over loopback, torch {torch.__version__}; "
            f"medians of {args.repeat} interleaved rounds\n"
        )
        if s is not None:
            print(
                f"| (a) gradient sync, 25.6M float32 in 161 tensors, {args.bucket_mb:g} MiB "
                "buckets | seconds |"
            )
            print("|---|---|")
            print(f"| mxparams `GradientSync.sync()` (in place in the buckets) | {s['mx']:.3f} |")
            print(
                f"| the same, summing (`average=False`, as the Trainer does) | {s['mx_sum']:.3f} |"
            )
            print(
                f"| DDP reducer, comm-hook all-reduces (first launch to last done) | "
                f"{s['ddp_hook']:.3f} |"
            )
            print(
                f"| DDP backward minus `no_sync()` backward | {s['ddp_diff']:.3f} "
                f"({s['ddp_bwd']:.3f} - {s['nosync_bwd']:.3f}) |"
            )
            print(f"| one `all_reduce` of one flat tensor (the bound) | {s['flat']:.3f} |")
            print()
            print(f"- vs DDP (hook-timed): {s['ddp_hook'] / s['mx']:.2f}x (target >= 1.0x)")
            print(f"- vs DDP (backward difference): {s['ddp_diff'] / s['mx']:.2f}x")
            print(
                f"- vs the flat bound: {s['flat'] / s['mx']:.0%} averaging, "
                f"{s['flat'] / s['mx_sum']:.0%} summing (target >= 90%)\n"
            )
        if t is not None:
            print(f"| (b) demo MLP, global batch 100, Adam, {args.steps} steps | steps/s |")
            print("|---|---|")
            print(f"| mxparams.torch + `Trainer(kvstore='dist_sync')` | {t['mx']:.0f} |")
            print(f"| torch.nn + DDP + torch.optim.Adam | {t['ddp']:.0f} |")
            print()
            print(f"- mxparams / DDP: {t['mx'] / t['ddp']:.2f}x (target >= 0.95x)\n")
        if c is not None:
            print("| (c) checkpoint of 25.6M float32 (102 MB) | sharded (every rank) | rank 0 |")
            print("|---|---|---|")
            print(f"| save | {c['save_sh']:.3f} s | {c['save_r0']:.3f} s |")
            print(f"| load | {c['load_sh']:.3f} s | {c['load_r0']:.3f} s |")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
