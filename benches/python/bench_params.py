"""Parameter-system operations, mxparams vs MXNet 1.9.1, in one process, interleaved.

Run in the MXNet oracle venv with the mxparams wheel installed beside MXNet:
``python benches/python/bench_params.py [--rounds 5]``, or as part of the main
suite with ``python benches/python/bench.py --extra bench_params``. Each round
runs every contender of a case once (setup untimed), the table gives medians
and MXNet / mxparams ratios. MXNet's engine is asynchronous, so its timed
regions end with ``mx.nd.waitall()``.

Cases:
  S10k  a ParameterDict of 10,000 (64,) float32 parameters: initialize,
        zero_grad, set_data on all, save, load into an initialised dict,
        nd.load of the same file; p.data() and p.grad() per call
  2ctx  the same dict on cpu(0) and cpu(1): initialize, set_data, reset_ctx(cpu(0))
  64M   one (8192, 8192) parameter (grad_req='null'): initialize with Xavier(), Normal()
  R50   resnet50_v1 saved by MXNet's save_parameters: load into initialised
        mxparams parameters, MXNet's load_parameters, mx.nd.load
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import timeit
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mxparams as mp

try:
    import mxnet as mx
except ImportError:  # pragma: no cover - outside the oracle venv
    mx = None

__all__ = ["run"]

N_SMALL = 10_000
BIG = (8192, 8192)

# A case: name -> {contender: (setup, timed)}; setup's result is passed to timed.
Case = dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]]


def _wait() -> None:
    if mx is not None:
        mx.nd.waitall()


def _time_case(rounds: int, contenders: Case) -> dict[str, float]:
    """Median seconds of each contender, rounds interleaved."""
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, (setup, timed) in contenders.items():
            state = setup()
            _wait()
            gc.collect()
            t0 = time.perf_counter()
            timed(state)
            _wait()
            times[name].append(time.perf_counter() - t0)
            del state
    return {k: statistics.median(v) for k, v in times.items()}


# ---------------------------------------------------------------------------
# builders


def _mp_dict(n: int, prefix: str = "") -> mp.ParameterDict:
    pd = mp.ParameterDict(prefix)
    for i in range(n):
        pd.get(f"p{i}_weight", shape=(64,))
    return pd


def _mx_dict(n: int, prefix: str = "") -> Any:
    pd = mx.gluon.ParameterDict(prefix)
    for i in range(n):
        pd.get(f"p{i}_weight", shape=(64,))
    return pd


def _mp_ready(ctx: Any = None) -> mp.ParameterDict:
    pd = _mp_dict(N_SMALL)
    pd.initialize(ctx=ctx)
    return pd


def _mx_ready(ctx: Any = None) -> Any:
    pd = _mx_dict(N_SMALL)
    pd.initialize(ctx=ctx)
    return pd


def _set_all(pd: Any, value: Any) -> None:
    for p in pd.values():
        p.set_data(value)


def _ns_per_call(fn: Callable[[], Any], number: int = 200_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


# ---------------------------------------------------------------------------
# cases


def _small_cases(work: Path) -> dict[str, Case]:
    mp_file, mx_file = work / "s10k_mxp.params", work / "s10k_mx.params"
    _mp_ready().save(str(mp_file))
    cases: dict[str, Case] = {
        "S10k initialize": {"mxparams": (lambda: _mp_dict(N_SMALL), lambda pd: pd.initialize())},
        "S10k zero_grad": {"mxparams": (_mp_ready, lambda pd: pd.zero_grad())},
        "S10k set_data (all)": {
            "mxparams": (
                lambda: (_mp_ready(), mp.nd.ones((64,))),
                lambda s: _set_all(*s),
            )
        },
        "S10k save": {"mxparams": (_mp_ready, lambda pd: pd.save(str(mp_file)))},
        "S10k load into initialised dict": {
            "mxparams": (_mp_ready, lambda pd: pd.load(str(mp_file)))
        },
        "S10k nd.load": {"mxparams": (lambda: None, lambda _: mp.nd.load(str(mp_file)))},
        "2ctx initialize": {
            "mxparams": (
                lambda: _mp_dict(N_SMALL),
                lambda pd: pd.initialize(ctx=[mp.cpu(0), mp.cpu(1)]),
            )
        },
        "2ctx set_data (all)": {
            "mxparams": (
                lambda: (_mp_ready([mp.cpu(0), mp.cpu(1)]), mp.nd.ones((64,))),
                lambda s: _set_all(*s),
            )
        },
        "2ctx reset_ctx(cpu(0))": {
            "mxparams": (
                lambda: _mp_ready([mp.cpu(0), mp.cpu(1)]),
                lambda pd: pd.reset_ctx(mp.cpu(0)),
            )
        },
    }
    if mx is not None:
        _mx_ready().save(str(mx_file))
        mx_two = [mx.cpu(0), mx.cpu(1)]
        extra: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
            "S10k initialize": (lambda: _mx_dict(N_SMALL), lambda pd: pd.initialize()),
            "S10k zero_grad": (_mx_ready, lambda pd: pd.zero_grad()),
            "S10k set_data (all)": (
                lambda: (_mx_ready(), mx.nd.ones((64,))),
                lambda s: _set_all(*s),
            ),
            "S10k save": (_mx_ready, lambda pd: pd.save(str(mx_file))),
            "S10k load into initialised dict": (_mx_ready, lambda pd: pd.load(str(mx_file))),
            "S10k nd.load": (lambda: None, lambda _: mx.nd.load(str(mx_file))),
            "2ctx initialize": (lambda: _mx_dict(N_SMALL), lambda pd: pd.initialize(ctx=mx_two)),
            "2ctx set_data (all)": (
                lambda: (_mx_ready(mx_two), mx.nd.ones((64,))),
                lambda s: _set_all(*s),
            ),
            "2ctx reset_ctx(cpu(0))": (
                lambda: _mx_ready(mx_two),
                lambda pd: pd.reset_ctx(mx.cpu(0)),
            ),
        }
        for name, pair in extra.items():
            cases[name]["MXNet"] = pair
    return cases


def _big_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for label, mp_init, mx_init in [
        ("Xavier()", lambda: mp.init.Xavier(), lambda: mx.init.Xavier()),
        ("Normal()", lambda: mp.init.Normal(), lambda: mx.init.Normal()),
    ]:
        case: Case = {
            "mxparams": (
                lambda: mp.Parameter("big_weight", shape=BIG, grad_req="null"),
                lambda p, mk=mp_init: p.initialize(init=mk()),  # type: ignore[misc]
            )
        }
        if mx is not None:
            case["MXNet"] = (
                lambda: mx.gluon.Parameter("big_weight", shape=BIG, grad_req="null"),
                lambda p, mk=mx_init: p.initialize(init=mk()),  # type: ignore[misc]
            )
        cases[f"64M {label}"] = case
    return cases


def _resnet_case(work: Path) -> dict[str, Case]:
    if mx is None:
        return {}
    path = work / "r50.params"
    net = mx.gluon.model_zoo.vision.resnet50_v1()
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 224, 224)))
    net.save_parameters(str(path))
    shapes = {k: (v.shape, v.dtype) for k, v in mx.nd.load(str(path)).items()}

    def mp_ready() -> mp.ParameterDict:
        pd = mp.ParameterDict()
        for name, (shape, dtype) in shapes.items():
            pd.get(name, shape=shape, dtype=dtype)
        pd.initialize()
        return pd

    return {
        "R50 load into initialised params": {
            "mxparams": (mp_ready, lambda pd: pd.load(str(path))),
            "MXNet load_parameters": (lambda: net, lambda n: n.load_parameters(str(path))),
            "mx.nd.load": (lambda: None, lambda _: mx.nd.load(str(path))),
        }
    }


def _accessor_lines() -> list[str]:
    pd = _mp_ready()
    p = pd["p0_weight"]
    rows = [("p.data()", _ns_per_call(p.data)), ("p.grad()", _ns_per_call(p.grad))]
    ref: dict[str, float] = {}
    if mx is not None:
        q = _mx_ready()["p0_weight"]
        ref = {"p.data()": _ns_per_call(q.data), "p.grad()": _ns_per_call(q.grad)}
    lines = ["| call | mxparams ns | MXNet ns | MXNet / mxparams |", "|---|---:|---:|---:|"]
    for name, ns in rows:
        theirs = ref.get(name)
        lines.append(
            f"| {name} | {ns:.0f} | "
            + (f"{theirs:.0f} | {theirs / ns:.1f}x |" if theirs else "- | - |")
        )
    return lines


def run(bench: Any, workdir: Path) -> list[str]:
    """Runs every case (``bench.rounds`` rounds) and returns the markdown lines."""
    rounds = int(getattr(bench, "rounds", 5))
    warnings.filterwarnings("ignore")
    cases = {**_small_cases(workdir), **_big_cases(), **_resnet_case(workdir)}
    lines = [
        "### Parameter operations (bench_params)",
        "",
        f"{rounds} rounds, interleaved, medians; "
        "ratio = reference / mxparams (> 1: mxparams faster).",
        "",
        "| case | contender | median ms | ratio vs mxparams |",
        "|---|---|---:|---:|",
    ]
    for case, contenders in cases.items():
        med = _time_case(rounds, contenders)
        ours = med["mxparams"]
        for name, t in med.items():
            ratio = "1.00x" if name == "mxparams" else f"{t / ours:.2f}x"
            lines.append(f"| {case} | {name} | {t * 1e3:.2f} | {ratio} |")
            print(f"  {case:34s} {name:24s} {t * 1e3:10.2f} ms", flush=True)
        gc.collect()
    lines += ["", *_accessor_lines(), ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    class _Bench:
        rounds = args.rounds

    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(run(_Bench(), Path(tmp))))


if __name__ == "__main__":
    main()
