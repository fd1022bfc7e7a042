"""mxparams vs MXNet 1.9.1 vs safetensors, measured in one process, interleaved.

Run it in the MXNet oracle venv (numpy 1.23) with mxparams installed beside MXNet
(``make bench``). Every round runs each contender once on the same dataset, so a
noisy neighbour or a page-cache hiccup hits all of them alike; the table gives
medians, ratios against MXNet and safetensors, and minor page faults per call.

Datasets (as the issues define them):
  L  386 float32 arrays, ~1.21 GB: 24 transformer-like layers plus embeddings
  R  resnet50_v1's parameters saved by MXNet's ``save_parameters`` (~103 MB)
  S  20,000 arrays of 64 float32
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mxparams
import numpy as np
from mxparams import nd as mxp_nd

try:  # the oracle venv has both; the table says which contenders ran
    import mxnet as mx
except ImportError:  # pragma: no cover - bench outside the oracle venv
    mx = None
try:
    import safetensors.numpy as st_np
    from safetensors import safe_open
except ImportError:  # pragma: no cover
    st_np = None

Row = dict[str, Any]


def dataset_l() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    h, f = 1024, 4096
    out: dict[str, np.ndarray] = {
        "embed.weight": rng.standard_normal((14800, h), dtype=np.float32),
        "embed.pos": rng.standard_normal((512, h), dtype=np.float32),
    }
    for i in range(24):
        p = f"layers.{i}."
        for n in ("q", "k", "v", "o"):
            out[p + n + ".weight"] = rng.standard_normal((h, h), dtype=np.float32)
            out[p + n + ".bias"] = rng.standard_normal((h,), dtype=np.float32)
        out[p + "ffn1.weight"] = rng.standard_normal((f, h), dtype=np.float32)
        out[p + "ffn1.bias"] = rng.standard_normal((f,), dtype=np.float32)
        out[p + "ffn2.weight"] = rng.standard_normal((h, f), dtype=np.float32)
        out[p + "ffn2.bias"] = rng.standard_normal((h,), dtype=np.float32)
        for ln in ("ln1", "ln2"):
            out[p + ln + ".gamma"] = np.ones((h,), np.float32)
            out[p + ln + ".beta"] = np.zeros((h,), np.float32)
    return out


def dataset_s() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {f"p{i}_weight": rng.standard_normal(64).astype(np.float32) for i in range(20000)}


def dataset_r(workdir: Path) -> tuple[dict[str, np.ndarray], Path]:
    """resnet50_v1 saved by MXNet's save_parameters (random init, no download)."""
    path = workdir / "resnet50_v1.params"
    if mx is None:
        raise SystemExit("dataset R needs MXNet 1.9.1 (run in the oracle venv)")
    net = mx.gluon.model_zoo.vision.resnet50_v1()
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 224, 224)))
    net.save_parameters(str(path))
    arrays = {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}
    return arrays, path


def minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def quiesce() -> None:
    """Waits for MXNet's engine threads: they free arrays asynchronously, and on a
    small machine that work would otherwise run inside the next contender's timing."""
    if mx is not None:
        mx.nd.waitall()


class Bench:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.rows: list[Row] = []

    def run(
        self,
        case: str,
        contenders: dict[str, Callable[[], Any]],
        nbytes: int,
        settle: Callable[[], None] | None = None,
    ) -> None:
        times: dict[str, list[float]] = {k: [] for k in contenders}
        faults: dict[str, list[int]] = {k: [] for k in contenders}
        peak: dict[str, int] = {k: 0 for k in contenders}
        for _ in range(self.rounds):
            for name, fn in contenders.items():
                if settle is not None:
                    settle()
                gc.collect()
                base_rss = rss_bytes()
                f0 = minflt()
                t0 = time.perf_counter()
                res = fn()
                dt = time.perf_counter() - t0
                faults[name].append(minflt() - f0)
                peak[name] = max(peak[name], rss_bytes() - base_rss)
                times[name].append(dt)
                # Free the result here, untimed: left bound to `res`, it would be
                # freed inside the next contender's timed call.
                del res
                gc.collect()
                quiesce()
        for name in contenders:
            self.rows.append(
                {
                    "case": case,
                    "contender": name,
                    "median_ms": statistics.median(times[name]) * 1e3,
                    "min_ms": min(times[name]) * 1e3,
                    "faults": int(statistics.median(faults[name])),
                    "rss_growth_mb": peak[name] / 1e6,
                    "nbytes": nbytes,
                }
            )
            r = self.rows[-1]
            print(
                f"  {case:10s} {name:34s} {r['median_ms']:9.2f} ms  "
                f"faults {r['faults']:8d}  rss +{r['rss_growth_mb']:8.1f} MB",
                flush=True,
            )


def load_contenders(path: Path, st_path: Path | None, nbytes: int) -> dict[str, Callable[[], Any]]:
    c: dict[str, Callable[[], Any]] = {
        "mxparams nd.load": lambda: mxp_nd.load(str(path)),
        "mxparams nd.load(mmap=True)": lambda: mxp_nd.load(str(path), mmap=True),
    }
    if mx is not None:
        c["mx.nd.load"] = lambda: mx.nd.load(str(path))
    if st_np is not None and st_path is not None:
        c["safetensors load_file"] = lambda: st_np.load_file(str(st_path))

        def lazy() -> Any:
            with safe_open(str(st_path), framework="np") as f:
                return list(f.keys())

        c["safetensors safe_open (lazy)"] = lazy
    src = np.fromfile(str(path), dtype=np.uint8)
    prefaulted = np.empty_like(src)
    prefaulted[:] = 1
    c["bound: memcpy, pre-faulted dst"] = lambda: np.copyto(prefaulted, src)
    c["bound: memcpy, fresh dst"] = lambda: src.copy()

    def raw_read() -> Any:
        with open(path, "rb") as f:
            return f.read()

    c["bound: read() whole file"] = raw_read
    return c


def save_contenders(
    workdir: Path, arrays: dict[str, np.ndarray], nbytes: int
) -> dict[str, Callable[[], Any]]:
    mxp_arrays = {k: mxp_nd.array(v, dtype=v.dtype) for k, v in arrays.items()}
    c: dict[str, Callable[[], Any]] = {
        "mxparams nd.save": lambda: mxp_nd.save(str(workdir / "o_mxp.params"), mxp_arrays),
    }
    if mx is not None:
        mx_arrays = {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()}
        mx.nd.waitall()
        c["mx.nd.save"] = lambda: mx.nd.save(str(workdir / "o_mx.params"), mx_arrays)
    if st_np is not None:
        c["safetensors save_file"] = lambda: st_np.save_file(arrays, str(workdir / "o.st"))
    blob = b"".join(v.tobytes() for v in arrays.values())

    def raw_write() -> None:
        with open(workdir / "o.raw", "wb") as f:
            f.write(blob)

    c["bound: write() same bytes"] = raw_write
    return c


def ratio_lines(rows: list[Row]) -> list[str]:
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        in_case = [r for r in rows if r["case"] == case]
        refs = [r for r in in_case if r["contender"].startswith(("mx.", "safetensors"))]
        for ours in (r for r in in_case if r["contender"].startswith("mxparams")):
            for ref in refs:
                speedup = ref["median_ms"] / max(ours["median_ms"], 1e-9)
                out.append(
                    f"| {case} | {ours['contender']} | {ref['contender']} | {speedup:.2f}x |"
                )
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, numpy {np.__version__}"
        + (f", MXNet {mx.__version__}" if mx is not None else "")
        + f", mxparams {mxparams.__version__}"
    )


def render(rows: list[Row], extra: list[str]) -> str:
    lines = [
        "| case | contender | median ms | min ms | minor faults | RSS growth MB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['contender']} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | "
            f"{r['faults']} | {r['rss_growth_mb']:.1f} |"
        )
    lines += ["", "Ratios (reference median / mxparams median; > 1 means mxparams is faster):", ""]
    lines += ["| case | mxparams | reference | speed-up |", "|---|---|---|---:|"]
    lines += ratio_lines(rows)
    return "\n".join(lines + [""] + extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--datasets", default="L,R,S")
    ap.add_argument("--write", type=Path, help="write the table into this markdown file")
    ap.add_argument("--extra", action="append", default=[], help="extra benchmark modules")
    args = ap.parse_args()
    bench = Bench(args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for ds in args.datasets.split(","):
            print(f"dataset {ds}", flush=True)
            if ds == "R":
                arrays, path = dataset_r(work)
            else:
                arrays = dataset_l() if ds == "L" else dataset_s()
                path = work / f"{ds}.params"
                mxp_nd.save(
                    str(path), {k: mxp_nd.array(v, dtype=v.dtype) for k, v in arrays.items()}
                )
            st_path = None
            if st_np is not None:
                st_path = work / f"{ds}.safetensors"
                st_np.save_file(arrays, str(st_path))
            nbytes = path.stat().st_size
            bench.run(f"{ds} load", load_contenders(path, st_path, nbytes), nbytes)
            # Flush earlier writes first: otherwise each save pays for the previous
            # contender's dirty pages being written back.
            bench.run(f"{ds} save", save_contenders(work, arrays, nbytes), nbytes, settle=os.sync)
            del arrays
            gc.collect()
            # The next dataset should not run beside gigabytes of this one's files
            # in the page cache, which the kernel would be reclaiming meanwhile.
            for f in work.iterdir():
                if f.is_file():
                    f.unlink()
        extra: list[str] = []
        for mod in args.extra:
            sys.path.insert(0, str(Path(__file__).parent))
            extra += __import__(mod).run(bench, work)
    table = render(bench.rows, extra)
    print(table)
    if args.write:
        header = (
            "# Benchmarks\n\nProduced by `make bench` (`benches/python/bench.py`): mxparams, "
            "MXNet 1.9.1 and safetensors in one process, interleaved round by round, "
            f"{args.rounds} rounds, medians; warm page cache.\n\nMachine: {machine()}\n\n"
        )
        args.write.write_text(header + table + "\n")


if __name__ == "__main__":
    main()
