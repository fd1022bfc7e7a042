"""Benchmarks of the PyTorch adapter and the gradient all-reduce.

1. Per-step cost of training an MLP (~1M parameters) whose weights are
   ``mxparams.torch`` tensors versus the same MLP on plain
   ``torch.nn.Parameter`` (forward, backward, ``optimizer.step``,
   ``optimizer.zero_grad``), in interleaved rounds; target <= 5 % overhead.
2. ``ParameterDict.allreduce_grads`` over two contexts versus a numpy sum of
   the same buffers, as GB/s of gradient bytes reduced (all copies), next to
   the memcpy bandwidth of the same bytes; target >= 80 % of memcpy.

Prints a markdown table. Usage: ``python benches/python/bench_torch.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mxparams as mp
import mxparams.torch as mpt
import numpy as np
import torch

SIZES = (1024, 512, 512, 256, 10)


def _mxparams_model(batch: int) -> tuple[Callable[[], None], int]:
    pdict = mp.ParameterDict("mlp_")
    for i, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:], strict=False)):
        pdict.get(f"dense{i}_weight", shape=(n_out, n_in), init=mp.init.Xavier())
        pdict.get(f"dense{i}_bias", shape=(n_out,), init="zeros")
    pdict.initialize(ctx=mp.cpu(0))
    tensors = mpt.parameters(pdict)
    return _train_step(tensors, batch), sum(t.numel() for t in tensors)


def _torch_model(batch: int) -> tuple[Callable[[], None], int]:
    tensors: list[torch.Tensor] = []
    for n_in, n_out in zip(SIZES, SIZES[1:], strict=False):
        w = torch.empty(n_out, n_in)
        torch.nn.init.xavier_uniform_(w)
        tensors += [torch.nn.Parameter(w), torch.nn.Parameter(torch.zeros(n_out))]
    return _train_step(tensors, batch), sum(t.numel() for t in tensors)


def _train_step(tensors: list[Any], batch: int) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (batch,), generator=gen)
    opt = torch.optim.SGD(tensors, lr=1e-3, momentum=0.9)
    layers = list(zip(tensors[::2], tensors[1::2], strict=False))

    def step() -> None:
        h = x
        for i, (w, b) in enumerate(layers):
            h = torch.nn.functional.linear(h, w, b)
            if i + 1 < len(layers):
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _time_steps(step: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def bench_adapter(rounds: int, steps: int, batch: int) -> dict[str, float]:
    """Alternates short runs of each model; per-step times are summarised by
    their minimum (robust to other load on the machine) and median."""
    ours, n_ours = _mxparams_model(batch)
    plain, n_plain = _torch_model(batch)
    assert n_ours == n_plain
    for f in (plain, ours):
        _time_steps(f, 3)  # warm up
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(_time_steps(plain, steps))
        b.append(_time_steps(ours, steps))
    return {
        "params": float(n_ours),
        "plain": 1.0 / min(a),
        "ours": 1.0 / min(b),
        "overhead": min(b) / min(a) - 1.0,
        "overhead_median": statistics.median(b) / statistics.median(a) - 1.0,
    }


def _best_time(fn: Callable[[], None], reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_allreduce(n_params: int, numel: int, reps: int) -> dict[str, float]:
    ctxs = [mp.cpu(0), mp.cpu(1)]
    pdict = mp.ParameterDict("ar_")
    for i in range(n_params):
        pdict.get(f"w{i}", shape=(numel,), init="zeros")
    pdict.initialize(ctx=ctxs)
    rng = np.random.default_rng(0)
    grads = [np.asarray(g) for p in pdict.values() for g in p.list_grad()]
    for g in grads:
        g[:] = rng.standard_normal(g.shape, dtype=np.float32)
    pairs = [(np.asarray(p.grad(ctxs[0])), np.asarray(p.grad(ctxs[1]))) for p in pdict.values()]
    total = sum(g.nbytes for g in grads)
    scratch = [np.empty_like(g) for g in grads]

    def numpy_sum() -> None:
        for g0, g1 in pairs:
            np.add(g0, g1, out=g0)
            np.copyto(g1, g0)

    def memcpy() -> None:
        for s, g in zip(scratch, grads, strict=False):
            np.copyto(s, g)

    pool = ThreadPoolExecutor(max(2, os.cpu_count() or 1))

    def memcpy_parallel() -> None:  # numpy releases the GIL while copying
        list(pool.map(lambda sg: np.copyto(sg[0], sg[1]), zip(scratch, grads, strict=False)))

    t_rust = _best_time(pdict.allreduce_grads, reps)
    t_numpy = _best_time(numpy_sum, reps)
    t_copy = min(_best_time(memcpy, reps), _best_time(memcpy_parallel, reps))
    pool.shutdown()
    gb = total / 1e9
    # Same traffic as a copy of the same bytes: every copy read once, written once.
    return {
        "bytes": float(total),
        "rust": gb / t_rust,
        "numpy": gb / t_numpy,
        "memcpy": gb / t_copy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short rounds (smoke run)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds, steps, reps = (5, 3, 3) if args.quick else (40, 5, 10)
    ad = bench_adapter(rounds, steps, args.batch)
    ar = bench_allreduce(16, 1 << 20, reps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")
    print("| benchmark | baseline | mxparams | ratio |")
    print("| --- | --- | --- | --- |")
    print(
        f"| MLP train step, {ad['params'] / 1e6:.2f}M params, batch {args.batch} "
        f"(steps/s, best of {rounds} interleaved rounds) | {ad['plain']:.1f} (nn.Parameter) "
        f"| {ad['ours']:.1f} | overhead {100 * ad['overhead']:+.1f}% "
        f"(median {100 * ad['overhead_median']:+.1f}%) |"
    )
    print(
        f"| allreduce_grads, 2 contexts, {ar['bytes'] / 2**20:.0f} MiB of grads (GB/s) "
        f"| {ar['numpy']:.2f} (numpy add+copy) | {ar['rust']:.2f} | "
        f"{100 * ar['rust'] / ar['memcpy']:.0f}% of memcpy ({ar['memcpy']:.2f} GB/s, best of "
        "1 and N threads) |"
    )


if __name__ == "__main__":
    main()
