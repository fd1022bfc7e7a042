"""GPU benchmark: loading a checkpoint onto gpu(0), saving from it, and
initializing many parameters there. Prints a markdown table.

Loads (the file is freshly written, so it is in the page cache: these are
warm-cache numbers):
  - mxparams ``nd.load(f, ctx=gpu(0))`` (memory-mapped file -> pinned ring -> device)
  - mxparams ``ParameterDict.load(f, ctx=gpu(0))``
  - ``safetensors.torch.load_file(device='cuda:0')`` when safetensors is installed
  - numpy views of the mmapped file, ``torch.from_numpy(a).cuda()`` per array
  - the same through a pinned tensor and ``.cuda(non_blocking=True)`` per array

Bounds measured in the same run: a pinned torch tensor copied to the GPU and
back (the PCIe bound), and a raw ``write()`` of the same bytes to a fresh file
(the bound for saving). ``--sweep`` also times ``nd.load(ctx=gpu(0))`` under
several shapes of the upload ring (``MXPARAMS_UPLOAD_SLOT_MB``,
``MXPARAMS_UPLOAD_SLOTS``, ``MXPARAMS_UPLOAD_THREADS``).

Run: ``python benches/python/bench_gpu.py [--gb 1.2] [--arrays 384] [--repeat 3] [--sweep]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import mxparams as mx
import numpy as np

__all__ = ["main"]


def best(fn: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
        del out
    return min(times)


def bounds(
    torch: Any, arrays: dict[str, np.ndarray[Any, Any]], tmp: str, repeat: int
) -> list[tuple[str, float, str]]:
    """The PCIe bound (one pinned tensor each way) and the raw write bound."""
    dev = torch.device("cuda", 0)
    sync = torch.cuda.synchronize
    flat = np.concatenate([a.view(np.uint8) for a in arrays.values()])
    gb = flat.nbytes / 1e9
    pinned = torch.empty(flat.nbytes, dtype=torch.uint8, pin_memory=True)
    pinned.copy_(torch.from_numpy(flat))
    on_dev = pinned.to(dev)
    out = []
    t = best(functools.partial(pinned.to, dev, non_blocking=True), repeat, sync)
    out.append(("bound: one pinned tensor -> cuda:0 (torch)", t, f"{gb / t:.2f}"))
    t = best(functools.partial(pinned.copy_, on_dev, non_blocking=True), repeat, sync)
    out.append(("bound: cuda:0 -> one pinned tensor (torch)", t, f"{gb / t:.2f}"))
    t = bounds_write(arrays, tmp, repeat)
    out.append(("bound: raw write() of the bytes to a fresh file", t, f"{gb / t:.2f}"))
    return out


def bounds_write(arrays: dict[str, np.ndarray[Any, Any]], tmp: str, repeat: int) -> float:
    """Best time of one ``write()`` of all the bytes to a fresh file in ``tmp``
    (replacing the previous one, as a save does)."""
    flat = np.concatenate([a.view(np.uint8) for a in arrays.values()])
    raw = os.path.join(tmp, "raw.bin")

    def raw_write() -> None:
        with open(raw + ".tmp", "wb") as fh:
            fh.write(memoryview(flat))
        os.replace(raw + ".tmp", raw)

    return best(raw_write, repeat, lambda: None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.2)
    ap.add_argument("--arrays", type=int, default=384)
    ap.add_argument("--params", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--save-dirs", nargs="*", default=[], help="also save into these folders")
    args = ap.parse_args()

    import torch

    if mx.num_gpus() == 0 or not torch.cuda.is_available():
        raise SystemExit("no GPU: mxparams.num_gpus() == 0 or torch.cuda unavailable")
    dev = torch.device("cuda", 0)
    sync = torch.cuda.synchronize
    gpu_name = torch.cuda.get_device_name(0)

    n = args.arrays
    per = int(args.gb * 1e9) // 4 // n
    rng = np.random.default_rng(0)
    base = rng.standard_normal(per).astype("float32")
    names = [f"layer{i}.weight" for i in range(n)]
    arrays = {k: base + np.float32(i) for i, k in enumerate(names)}
    nbytes = per * 4 * n
    gb = nbytes / 1e9
    rows: list[tuple[str, float, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        fparams = os.path.join(tmp, "model.params")
        mx.nd.save(fparams, {k: mx.nd.array(v) for k, v in arrays.items()})

        def mx_load() -> Any:
            return mx.nd.load(fparams, ctx=mx.gpu(0))

        rows.extend(bounds(torch, arrays, tmp, args.repeat))

        os.environ["MXPARAMS_CUDA_TRACE"] = "1"
        got = mx_load()
        del os.environ["MXPARAMS_CUDA_TRACE"]
        assert isinstance(got, dict)
        np.testing.assert_array_equal(got[names[-1]].asnumpy(), arrays[names[-1]])
        del got
        t = best(mx_load, args.repeat, sync)
        rows.append(("mxparams nd.load(ctx=gpu(0))", t, f"{gb / t:.2f}"))

        if args.sweep:
            sweep: list[tuple[str, float]] = []
            shapes = [("pread", mb, n) for mb in (16, 32, 64) for n in (2, 3, 4)]
            shapes += [("mmap", 16, 3), ("mmap", 64, 2), ("mmap", 64, 3)]
            for read, slot_mb, slots in shapes:
                for threads in (16,):
                    os.environ["MXPARAMS_UPLOAD_READ"] = read
                    os.environ["MXPARAMS_UPLOAD_SLOT_MB"] = str(slot_mb)
                    os.environ["MXPARAMS_UPLOAD_SLOTS"] = str(slots)
                    os.environ["MXPARAMS_UPLOAD_THREADS"] = str(threads)
                    t = best(mx_load, args.repeat, sync)
                    label = f"{read}, slot {slot_mb} MiB x {slots}, {threads} threads"
                    sweep.append((label, t))
            for k in ("READ", "SLOT_MB", "SLOTS", "THREADS"):
                del os.environ[f"MXPARAMS_UPLOAD_{k}"]
            print("| upload ring | seconds | GB/s |\n| --- | ---: | ---: |")
            for name, secs in sorted(sweep, key=lambda r: r[1]):
                print(f"| {name} | {secs:.4f} | {gb / secs:.2f} |")
            print(flush=True)

        def pd_load() -> Any:
            pd = mx.ParameterDict()
            for k in names:
                pd.get(k, shape=(per,))
            pd.load(fparams, ctx=mx.gpu(0))
            return pd

        t = best(pd_load, args.repeat, sync)
        rows.append(("mxparams ParameterDict.load(ctx=gpu(0))", t, f"{gb / t:.2f}"))
        if mx.num_gpus() >= 2:
            every = [mx.gpu(i) for i in range(mx.num_gpus())]

            def pd_load_all() -> Any:
                pd = mx.ParameterDict()
                for k in names:
                    pd.get(k, shape=(per,))
                pd.load(fparams, ctx=every)
                return pd

            t = best(pd_load_all, args.repeat, sync)
            label = f"mxparams ParameterDict.load(ctx={len(every)} GPUs), GB/s per copy"
            rows.append((label, t, f"{gb * len(every) / t:.2f}"))

        try:
            from safetensors.torch import load_file, save_file
        except ImportError:
            rows.append(("safetensors.torch.load_file(device='cuda:0')", float("nan"), "n/a"))
        else:
            fst = os.path.join(tmp, "model.safetensors")
            save_file({k: torch.from_numpy(v) for k, v in arrays.items()}, fst)
            t = best(lambda: load_file(fst, device="cuda:0"), args.repeat, sync)
            rows.append(("safetensors.torch.load_file(device='cuda:0')", t, f"{gb / t:.2f}"))

        def mmap_views() -> dict[str, np.ndarray[Any, Any]]:
            loaded = mx.nd.load(fparams, mmap=True)
            assert isinstance(loaded, dict)
            return {k: np.asarray(v) for k, v in loaded.items()}

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about read-only numpy views

            def per_array_cuda() -> Any:
                return {k: torch.from_numpy(v).cuda() for k, v in mmap_views().items()}

            t = best(per_array_cuda, args.repeat, sync)
            rows.append(("numpy mmap + torch .cuda() per array", t, f"{gb / t:.2f}"))

            def per_array_pinned() -> Any:
                out = {}
                for k, v in mmap_views().items():
                    pinned = torch.empty(v.shape, dtype=torch.float32, pin_memory=True)
                    pinned.copy_(torch.from_numpy(v))
                    out[k] = pinned.to(dev, non_blocking=True)
                return out

            t = best(per_array_pinned, args.repeat, sync)
            rows.append(("numpy mmap + pinned + non_blocking per array", t, f"{gb / t:.2f}"))

        on_gpu = mx.nd.load(fparams, ctx=mx.gpu(0))
        assert isinstance(on_gpu, dict)
        fout = os.path.join(tmp, "out.params")
        t = best(functools.partial(mx.nd.save, fout, on_gpu), args.repeat, sync)
        rows.append(("mxparams nd.save from gpu(0)", t, f"{gb / t:.2f}"))
        os.environ["MXPARAMS_SAVE_MAPPED"] = "0"
        t = best(functools.partial(mx.nd.save, fout, on_gpu), args.repeat, sync)
        del os.environ["MXPARAMS_SAVE_MAPPED"]
        rows.append(("mxparams nd.save from gpu(0), streamed write()", t, f"{gb / t:.2f}"))
        check = mx.nd.load(fout)
        assert isinstance(check, dict)
        np.testing.assert_array_equal(check[names[-1]].asnumpy(), arrays[names[-1]])
        del check

        def host_then_save(src: dict[str, Any] = on_gpu) -> None:
            mx.nd.save(fout, {k: mx.nd.array(v.asnumpy()) for k, v in src.items()})

        t = best(host_then_save, args.repeat, sync)
        rows.append(("asnumpy() per array, then nd.save", t, f"{gb / t:.2f}"))
        try:
            from safetensors.torch import save_file as st_save
        except ImportError:
            pass
        else:
            tensors = {k: torch.from_dlpack(v) for k, v in on_gpu.items()}
            fst2 = os.path.join(tmp, "out.safetensors")
            t = best(lambda: st_save(tensors, fst2), args.repeat, sync)
            rows.append(("safetensors.torch.save_file from cuda:0", t, f"{gb / t:.2f}"))
            del tensors
        for extra in args.save_dirs:
            if not os.path.isdir(extra):
                continue
            with tempfile.TemporaryDirectory(dir=extra) as other:
                where = f" (in {extra})"
                raw = bounds_write(arrays, other, args.repeat)
                rows.append(("bound: raw write() to a fresh file" + where, raw, f"{gb / raw:.2f}"))
                fo = os.path.join(other, "out.params")
                t = best(functools.partial(mx.nd.save, fo, on_gpu), args.repeat, sync)
                rows.append(("mxparams nd.save from gpu(0)" + where, t, f"{gb / t:.2f}"))
                os.environ["MXPARAMS_SAVE_MAPPED"] = "0"
                t = best(functools.partial(mx.nd.save, fo, on_gpu), args.repeat, sync)
                del os.environ["MXPARAMS_SAVE_MAPPED"]
                label = "mxparams nd.save from gpu(0), streamed write()" + where
                rows.append((label, t, f"{gb / t:.2f}"))
        del on_gpu

    with tempfile.TemporaryDirectory() as tmp:
        # Many small arrays (the S dataset of bench.py): per-array costs decide.
        small = {f"s{i}": rng.standard_normal(64).astype("float32") for i in range(args.small)}
        fsmall = os.path.join(tmp, "small.params")
        mx.nd.save(fsmall, {k: mx.nd.array(v) for k, v in small.items()})
        got_small = mx.nd.load(fsmall, ctx=mx.gpu(0))
        assert isinstance(got_small, dict)
        np.testing.assert_array_equal(got_small["s7"].asnumpy(), small["s7"])
        del got_small
        label = f"mxparams nd.load(ctx=gpu(0)), {args.small} arrays of 64 float32"
        t = best(lambda: mx.nd.load(fsmall, ctx=mx.gpu(0)), args.repeat, sync)
        rows.append((label, t, "-"))

        def small_torch() -> Any:
            loaded = mx.nd.load(fsmall, mmap=True)
            assert isinstance(loaded, dict)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return {k: torch.from_numpy(np.asarray(v)).cuda() for k, v in loaded.items()}

        t = best(small_torch, args.repeat, sync)
        rows.append(("  the same: numpy mmap + torch .cuda() per array", t, "-"))

    def init_time(ctx: Any) -> float:
        """Best time of ``ParameterDict.initialize`` alone (the dict is built first)."""
        times = []
        for _ in range(args.repeat):
            pd = mx.ParameterDict("net_")
            for i in range(args.params):
                pd.get(f"p{i}", shape=(64, 64))
            sync()
            t = time.perf_counter()
            pd.initialize(ctx=ctx)
            sync()
            times.append(time.perf_counter() - t)
            del pd
        return min(times)

    t = init_time(mx.gpu(0))
    rows.append((f"initialize {args.params} params (64x64) on gpu(0)", t, "-"))
    t = init_time(mx.cpu())
    rows.append((f"initialize {args.params} params (64x64) on cpu(0)", t, "-"))

    print(f"## mxparams GPU benchmark: {gpu_name}\n")
    print(f"{n} float32 arrays, {gb:.2f} GB in total; best of {args.repeat}; warm page cache.\n")
    print("| operation | seconds | GB/s |")
    print("| --- | ---: | ---: |")
    for name, secs, rate in rows:
        print(f"| {name} | {secs:.3f} | {rate} |")


if __name__ == "__main__":
    main()
