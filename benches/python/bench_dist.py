"""Gradient sync across 2 processes (Gloo): mxparams against DDP and one flat all-reduce.

Run: ``python -m torch.distributed.run --nproc_per_node=2 benches/python/bench_dist.py``.
ResNet-50-sized gradients: 25.6M float32 in 161 tensors. Prints a Markdown
table (rank 0) with the ratios the issue targets.
"""

from __future__ import annotations

import time

import mxparams as mx
import numpy as np
import torch
import torch.distributed as dist
from mxparams import distributed

TOTAL = 25_600_000
NTENSORS = 161
REPEAT = 5


def sizes() -> list[int]:
    rng = np.random.RandomState(0)
    w = rng.uniform(0.1, 1.0, NTENSORS)
    s = np.maximum(1, (w / w.sum() * TOTAL).astype(int))
    s[-1] += TOTAL - s.sum()
    return [int(x) for x in s]


def best(fn: object) -> float:
    times = []
    for _ in range(REPEAT + 1):
        dist.barrier()
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    shapes = sizes()
    pd = mx.ParameterDict()
    for i, n in enumerate(shapes):
        pd.get(f"p{i:03d}", shape=(n,))
    pd.initialize(ctx=mx.cpu(0))
    for p in pd.values():
        np.asarray(p.grad())[:] = 1.0
    sync = distributed.GradientSync(pd)
    t_mx = best(sync.sync)

    mod = torch.nn.Module()
    mod.ps = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(n)) for n in shapes])
    ddp = torch.nn.parallel.DistributedDataParallel(mod, gradient_as_bucket_view=True)

    def ddp_step() -> None:
        loss = sum((p * 1.0).sum() for p in ddp.module.ps)
        loss.backward()  # type: ignore[union-attr]

    t_bwd_only = best(lambda: sum((p * 1.0).sum() for p in mod.ps).backward())  # type: ignore[union-attr]
    t_ddp = best(ddp_step)
    flat = torch.ones(TOTAL)
    t_flat = best(lambda: dist.all_reduce(flat))
    if rank == 0:
        ddp_comm = max(t_ddp - t_bwd_only, 1e-9)
        print("| gradient sync, 25.6M float32 in 161 tensors, 2 processes, Gloo | seconds |")
        print("|---|---|")
        print(f"| mxparams GradientSync.sync() | {t_mx:.3f} |")
        print(f"| DDP backward + all-reduce | {t_ddp:.3f} |")
        print(f"| (backward alone, no DDP) | {t_bwd_only:.3f} |")
        print(f"| one all_reduce of a flat tensor (bound) | {t_flat:.3f} |")
        print()
        print(f"- mxparams vs DDP (backward + sync): {t_ddp / t_mx:.2f}x")
        print(f"- mxparams vs DDP's sync share (DDP minus plain backward): {ddp_comm / t_mx:.2f}x")
        print(f"- mxparams vs flat all_reduce bound: {t_flat / t_mx:.0%}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
