"""Times filling a 64M-element float32 parameter with Xavier() and Normal(), vs numpy.

Run: ``python benches/python/bench_init.py [--elements N] [--repeat R]``. Prints the
best and median wall time of each, on an array that is already paged in (the
first touch of fresh memory costs the same for every method and is reported
separately).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import mxparams
import numpy as np
from mxparams import init


def bench(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Best and median wall ms, and median CPU ms (all threads: robust to a busy machine)."""
    times, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return min(times), statistics.median(times), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--elements", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.elements
    shape = (n // 4096, 4096)
    arr = np.empty(shape, np.float32)
    desc = init.InitDesc("fc_weight")
    mxparams.random.seed(0)

    t0 = time.perf_counter()
    init.Xavier()(desc, arr)
    first_touch = (time.perf_counter() - t0) * 1e3
    fresh = np.empty(shape, np.float32)
    t0 = time.perf_counter()
    fresh.fill(0.0)
    numpy_touch = (time.perf_counter() - t0) * 1e3
    del fresh

    gen = np.random.default_rng(0)
    scale = float(np.sqrt(3.0 / ((shape[0] + shape[1]) / 2.0)))
    rows = [
        ("mxparams Xavier() (uniform)", lambda: init.Xavier()(desc, arr)),
        ("mxparams Normal()", lambda: init.Normal()(desc, arr)),
        ("mxparams Xavier('gaussian')", lambda: init.Xavier("gaussian")(desc, arr)),
        ("numpy Generator.random(out=) + scale", lambda: _np_uniform(gen, arr, scale)),
        (
            "numpy Generator.standard_normal(out=)",
            lambda: gen.standard_normal(out=arr, dtype=np.float32),
        ),
    ]
    threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
    print(f"{n:,} float32 elements ({n * 4 / 2**20:.0f} MiB), rayon threads: {threads}")
    print(
        f"first fill of fresh memory (page faults): Xavier {first_touch:.0f} ms, "
        f"numpy fill(0) {numpy_touch:.0f} ms"
    )
    print(f"{'method':42s} {'best ms':>9s} {'median ms':>10s} {'CPU ms':>8s}")
    for name, fn in rows:
        best, med, cpu = bench(fn, args.repeat)
        print(f"{name:42s} {best:9.0f} {med:10.0f} {cpu:8.0f}")


def _np_uniform(gen: np.random.Generator, arr: np.ndarray, scale: float) -> None:
    gen.random(out=arr, dtype=np.float32)
    arr *= 2 * scale
    arr -= scale


if __name__ == "__main__":
    main()
