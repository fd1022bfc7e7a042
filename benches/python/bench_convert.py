"""The `mxparams` command and safetensors loads, measured in one run, interleaved.

Run in the MXNet oracle venv (it has MXNet 1.9.1, numpy 1.23 and safetensors)
with this checkout's package on the path:

    PYTHONPATH=python ~/.cache/mxparams/venv-mxnet/bin/python benches/python/bench_convert.py

Rows (medians; each round runs every contender of a row group once, so load
from other jobs hits all of them alike):
  * ``mxparams inspect`` of dataset L saved as .params (~1.2 GB), a fresh
    process each time, against ``python -c 'import mxparams'``;
  * convert of that file to safetensors (``mxparams.cli.main``, in process, so
    that it compares with the in-process MXNet + safetensors pipeline), against
    a raw write of the same number of bytes and ``mx.nd.load`` +
    ``safetensors.numpy.save_file``;
  * loading the L, R and S datasets (see bench.py) from safetensors: mxparams
    copying and memory-mapped, ``safetensors.numpy.load_file`` and ``safe_open``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import safetensors.numpy as st_np  # noqa: E402
from mxparams import nd  # noqa: E402
from mxparams.cli import main as cli_main  # noqa: E402
from safetensors import safe_open  # noqa: E402


def timed(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each function, the functions interleaved round by round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            res = fn()
            times[name].append(time.perf_counter() - t0)
            del res
            mx.nd.waitall()
    return {k: statistics.median(v) for k, v in times.items()}


def run_cmd(args: list[str]) -> Callable[[], None]:
    env = dict(os.environ)

    def go() -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)

    return go


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    lines: list[str] = []

    def row(what: str, ms: float, base: str, base_ms: float, target: str) -> None:
        lines.append(
            f"| {what} | {ms:.1f} | {base} | {base_ms:.1f} | {ms / base_ms:.2f}x | {target} |"
        )
        print(lines[-1], flush=True)

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        load_before = loadavg()
        big = work / "L.params"
        arrays_l = bench.dataset_l()
        nd.save(big, {k: nd.array(v) for k, v in arrays_l.items()})
        nbytes = sum(v.nbytes for v in arrays_l.values())
        payload = np.concatenate([v.ravel() for v in arrays_l.values()]).tobytes()
        del arrays_l

        py = sys.executable
        t = timed(
            {
                "inspect": run_cmd([py, "-m", "mxparams", "inspect", str(big)]),
                "import": run_cmd([py, "-c", "import mxparams"]),
            },
            args.rounds * 2,
        )
        lines.append("| measurement | ms | baseline | baseline ms | ratio | target |")
        lines.append("|---|---:|---|---:|---:|---|")
        row(
            "`mxparams inspect` L.params (1.2 GB)",
            t["inspect"] * 1e3,
            "`python -c 'import mxparams'`",
            t["import"] * 1e3,
            f"<= +50 ms (measured {(t['inspect'] - t['import']) * 1e3:+.0f} ms)",
        )

        out = work / "L.safetensors"
        raw = work / "raw.bin"
        other = work / "mx.safetensors"

        def convert() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli_main(["convert", str(big), str(out)]) == 0

        def raw_write() -> None:
            with open(raw, "wb") as f:
                f.write(payload)

        def mxnet_way() -> None:
            loaded = mx.nd.load(str(big))
            st_np.save_file({k: v.asnumpy() for k, v in loaded.items()}, str(other))

        t = timed({"convert": convert, "raw": raw_write, "mxnet": mxnet_way}, args.rounds)
        row(
            "convert L.params -> .safetensors",
            t["convert"] * 1e3,
            f"raw write of {nbytes / 1e9:.2f} GB",
            t["raw"] * 1e3,
            "<= 1.2x",
        )
        row(
            "convert L.params -> .safetensors",
            t["convert"] * 1e3,
            "mx.nd.load + safetensors save_file",
            t["mxnet"] * 1e3,
            "<= 0.33x",
        )
        payload = b""  # frees the copy before the load rows
        for p in (raw, other):
            p.unlink()

        datasets: dict[str, Path] = {"L": out}
        arrays_r, _ = bench.dataset_r(work)
        datasets["R"] = work / "R.safetensors"
        st_np.save_file(arrays_r, str(datasets["R"]))
        datasets["S"] = work / "S.safetensors"
        st_np.save_file(bench.dataset_s(), str(datasets["S"]))
        del arrays_r
        for name, path in datasets.items():

            def st_open(path: Path = path) -> Any:
                with safe_open(str(path), framework="np") as f:
                    return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118

            rounds = args.rounds if name != "L" else max(3, args.rounds // 2 + 1)
            t = timed(
                {
                    "copy": lambda path=path: nd.load(path),
                    "mmap": lambda path=path: nd.load(path, mmap=True),
                    "load_file": lambda path=path: st_np.load_file(str(path)),
                    "safe_open": st_open,
                },
                rounds,
            )
            for mine in ("copy", "mmap"):
                for theirs in ("load_file", "safe_open"):
                    target = ">= 1.2x faster" if mine == "copy" and name in "LR" else "not slower"
                    row(
                        f"load {name} .safetensors, mxparams {mine}",
                        t[mine] * 1e3,
                        f"safetensors {theirs}",
                        t[theirs] * 1e3,
                        f"{target} (ratio {'<= 0.83' if target.startswith('>=') else '<= 1'})",
                    )
        lines.append("")
        lines.append(
            f"Machine: {bench.machine()}, safetensors {safetensors.__version__}; "
            f"load average {load_before} before, {loadavg()} after; medians of "
            f"{args.rounds} interleaved rounds (inspect/import: {args.rounds * 2})."
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
