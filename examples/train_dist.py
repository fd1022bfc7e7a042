"""The demo network trained data-parallel on several processes with ``mxparams.Trainer``.

``torchrun --nproc_per_node=2 examples/train_dist.py`` trains the MLP of
``examples/demo.py`` (two interleaved spirals) on two processes with two
contexts each, ``cpu(0)`` and ``cpu(1)``: every global batch is split over
the processes, each process's share over its contexts; ``Trainer(...,
kvstore='dist_sync')`` sums the gradients over the contexts and all-reduces
them across the processes (Gloo). Halfway it saves a sharded checkpoint
(one shard per process, ``mxparams.dist_checkpoint.save_sharded``) and the
optimizer states, builds a fresh network and Trainer, loads both and
trains on. ``python examples/train_dist.py`` (no torchrun) runs the same on
one process; both print the same accuracies, e.g.::

    world 2 x contexts [cpu(0), cpu(1)]: 400 steps, checkpoint at step 200 (2 shards)
    train accuracy 0.997, test accuracy 0.996

(rank 0 prints; one process prints ``world 1`` and ``(1 shard)`` and the
same accuracies: the sums differ only in float rounding order).

Usage: ``[torchrun --nproc_per_node=N] python examples/train_dist.py [--epochs E] [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import mxparams as mp
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from mxparams import dist_checkpoint, distributed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import MLP, batches, spirals  # noqa: E402

CONTEXTS = [mp.cpu(0), mp.cpu(1)]


def build(args: argparse.Namespace, x0: torch.Tensor) -> MLP:
    """The network, initialised on every context (same seed on every rank;
    rank 0's values are broadcast anyway, so any seed would do)."""
    mp.random.seed(args.seed)
    net = MLP([args.hidden, args.hidden, 2])
    net.params.initialize(mp.init.Xavier(), ctx=CONTEXTS)
    with torch.no_grad():
        net(x0, CONTEXTS[0])  # shape inference finishes the deferred init
    return net


def trainer_for(net: MLP, args: argparse.Namespace, world: int) -> mp.Trainer:
    kvstore = "dist_sync" if world > 1 else "device"
    return mp.Trainer(net.params, "adam", {"learning_rate": args.lr}, kvstore=kvstore)


def run_steps(
    net: MLP,
    trainer: mp.Trainer,
    steps: list[np.ndarray],
    x: torch.Tensor,
    y: torch.Tensor,
    rank: int,
    world: int,
) -> None:
    for idx in steps:
        mine = np.array_split(idx, world)[rank]  # this process's share of the batch
        for ctx, part in zip(CONTEXTS, np.array_split(mine, len(CONTEXTS)), strict=True):
            out = net(x[part], ctx)
            F.cross_entropy(out, y[part], reduction="sum").backward()
        # Gradients are sums over the local batch: step(local batch) on W
        # processes equals one process stepping over the whole batch.
        trainer.step(len(mine))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: temporary)")
    ap.add_argument("--points", type=int, default=1000, help="training points per class")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=100, help="global batch size")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # the model is tiny: threads would only contend

    launched = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if launched:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if launched else 0
    world = dist.get_world_size() if launched else 1

    x_np, y_np = spirals(args.points, seed=args.seed)
    xt_np, yt_np = spirals(args.points // 2, seed=args.seed + 1)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    x_test, y_test = torch.from_numpy(xt_np), torch.from_numpy(yt_np)
    rng = np.random.default_rng(args.seed)  # the same batches on every rank
    steps = [idx for _ in range(args.epochs) for idx in batches(len(x), args.batch, rng)]
    half = len(steps) // 2

    if args.out is not None:
        out = args.out
    else:
        box = [tempfile.mkdtemp(prefix="mxparams-dist-") if rank == 0 else ""]
        if launched:
            dist.broadcast_object_list(box, src=0)
        out = Path(box[0])
    out.mkdir(parents=True, exist_ok=True)

    net = build(args, x[:1])
    if launched:
        distributed.broadcast_parameters(net.params)
    trainer = trainer_for(net, args, world)
    run_steps(net, trainer, steps[:half], x, y, rank, world)

    index = dist_checkpoint.save_sharded(net.params, out / "spiral_mlp")
    states = out / "spiral_mlp.states"
    if rank == 0:
        trainer.save_states(states)  # identical on every rank
    if launched:
        dist.barrier()

    # Resume: a fresh network and Trainer from the checkpoint.
    net = build(args, x[:1])
    dist_checkpoint.load_sharded(net.params, index)
    trainer = trainer_for(net, args, world)
    trainer.load_states(states)
    run_steps(net, trainer, steps[half:], x, y, rank, world)

    for k, p in net.params.items():
        a, b = (p.data(c).asnumpy() for c in CONTEXTS)
        if not np.array_equal(a, b):
            raise SystemExit(f"FAIL: copies of {k} diverged")
    if rank == 0:
        print(
            f"world {world} x contexts {CONTEXTS}: {len(steps)} steps, checkpoint at step "
            f"{half} ({world} shard{'s' if world > 1 else ''})"
        )
        print(
            f"train accuracy {net.accuracy(x, y, CONTEXTS[0]):.3f}, "
            f"test accuracy {net.accuracy(x_test, y_test, CONTEXTS[0]):.3f}",
            flush=True,
        )
    if launched:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
