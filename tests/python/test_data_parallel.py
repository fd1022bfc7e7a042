"""Data parallelism over contexts: allreduce_grads in Rust, identical copies, the demo."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import mxparams as mp
import mxparams.torch as mpt
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]


def fill_grads(pdict: mp.ParameterDict, seed: int) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    before = {}
    for name, p in pdict.items():
        if p.grad_req == "null":
            continue
        before[name] = []
        for g in p.list_grad():
            v = np.asarray(g)
            if v.dtype.kind == "f":
                v[...] = rng.standard_normal(v.shape).astype(v.dtype)
            else:
                v[...] = rng.integers(-1000, 1000, v.shape).astype(v.dtype)
            before[name].append(v.copy())
    return before


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int64"])
@pytest.mark.parametrize("n_ctx", [2, 3])
def test_allreduce_matches_numpy_sum(dtype: str, n_ctx: int) -> None:
    ctxs = [mp.cpu(i) for i in range(n_ctx)]
    pdict = mp.ParameterDict("ar_")
    # Sizes around the Rust work-chunk size (128 KiB), odd sizes, a scalar-ish one.
    for i, shape in enumerate([(1,), (7, 3), (40_000,), (300, 257)]):
        pdict.get(f"p{i}", shape=shape, dtype=dtype, init="zeros")
    pdict.initialize(ctx=ctxs)
    before = fill_grads(pdict, seed=n_ctx)
    pdict.allreduce_grads()
    for name, copies in before.items():
        want = copies[0]
        for c in copies[1:]:
            want = want + c  # numpy: same order, same dtype arithmetic
        for g in pdict[name].list_grad():
            got = g.asnumpy()
            assert got.dtype == np.dtype(dtype)
            if dtype == "float16":
                np.testing.assert_allclose(got, want, rtol=1e-3)
            else:
                np.testing.assert_array_equal(got, want)


def test_allreduce_skips_null_and_single_context() -> None:
    pdict = mp.ParameterDict()
    a = pdict.get("a", shape=(5,), init="zeros")
    n = pdict.get("n", shape=(5,), grad_req="null", init="zeros")
    a.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    n.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    s = mp.Parameter("s", shape=(3,), init="zeros")
    s.initialize(ctx=mp.cpu(0))
    np.asarray(a.grad(mp.cpu(0)))[:] = 1
    np.asarray(a.grad(mp.cpu(1)))[:] = 2
    np.asarray(s.grad())[:] = 4
    pdict.allreduce_grads()
    s.allreduce_grads()
    for g in a.list_grad():
        np.testing.assert_array_equal(g.asnumpy(), 3)
    np.testing.assert_array_equal(s.grad().asnumpy(), 4)
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        n.grad()
    a.allreduce_grads()  # Parameter-level: sums again
    np.testing.assert_array_equal(a.grad(mp.cpu(1)).asnumpy(), 6)


def test_allreduce_is_seen_through_torch_grad_views() -> None:
    p = mp.Parameter("w", shape=(4,), init="zeros")
    p.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    t0, t1 = mpt.tensor(p, mp.cpu(0)), mpt.tensor(p, mp.cpu(1))
    (t0 + 1).pow(2).sum().backward()  # grad 2
    (3 * t1).sum().backward()  # grad 3
    mp.ParameterDict().allreduce_grads()  # empty dict: nothing to do
    p.allreduce_grads()
    np.testing.assert_array_equal(t0.grad.numpy(), 5)
    np.testing.assert_array_equal(t1.grad.numpy(), 5)


def test_allreduce_runs_from_threads() -> None:
    pdicts = []
    for k in range(4):
        d = mp.ParameterDict(f"t{k}_")
        d.get("w", shape=(100_000,), init="zeros")
        d.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
        for i, g in enumerate(d[f"t{k}_w"].list_grad()):
            np.asarray(g)[:] = i + k
        pdicts.append(d)
    errors: list[BaseException] = []

    def work(d: mp.ParameterDict) -> None:
        try:
            d.allreduce_grads()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(d,)) for d in pdicts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for k, d in enumerate(pdicts):
        for g in d[f"t{k}_w"].list_grad():
            np.testing.assert_array_equal(g.asnumpy(), 2 * k + 1)


def _mlp(ctxs: list[mp.Context]) -> mp.ParameterDict:
    pdict = mp.ParameterDict("dp_")
    pdict.get("w0", shape=(16, 3), init=mp.init.Xavier())
    pdict.get("b0", shape=(16,), init="zeros")
    pdict.get("w1", shape=(2, 16), init=mp.init.Xavier())
    pdict.get("b1", shape=(2,), init="zeros")
    mp.random.seed(5)
    pdict.initialize(ctx=ctxs)
    return pdict


def _forward(pdict: mp.ParameterDict, x: torch.Tensor, ctx: mp.Context) -> torch.Tensor:
    t = {k[3:]: mpt.tensor(p, ctx) for k, p in pdict.items()}
    h = torch.relu(torch.nn.functional.linear(x, t["w0"], t["b0"]))
    return torch.nn.functional.linear(h, t["w1"], t["b1"])


def test_data_parallel_training_matches_single_context() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=gen)
    y = (x[:, 0] * x[:, 1] > 0).long()
    ctxs = [mp.cpu(0), mp.cpu(1)]
    dp, single = _mlp(ctxs), _mlp([mp.cpu(0)])
    opt_dp = torch.optim.SGD(mpt.parameters(dp, ctxs), lr=0.2, momentum=0.9)
    opt_1 = torch.optim.SGD(mpt.parameters(single), lr=0.2, momentum=0.9)
    ptrs = [t.data_ptr() for t in mpt.parameters(dp, ctxs)]
    for step in range(20):
        idx = torch.arange(16) + 16 * (step % 4)
        xb, yb = x[idx], y[idx]
        for ctx, part in zip(ctxs, (slice(0, 8), slice(8, 16)), strict=False):
            loss = (
                torch.nn.functional.cross_entropy(
                    _forward(dp, xb[part], ctx), yb[part], reduction="sum"
                )
                / 16
            )
            loss.backward()
        dp.allreduce_grads()
        opt_dp.step()
        torch.nn.functional.cross_entropy(_forward(single, xb, mp.cpu(0)), yb).backward()
        opt_1.step()
    assert [t.data_ptr() for t in mpt.parameters(dp, ctxs)] == ptrs
    for name, p in dp.items():
        a, b = (p.data(c).asnumpy() for c in ctxs)
        np.testing.assert_array_equal(a, b)  # the copies stay identical
        np.testing.assert_allclose(a, single[name].data().asnumpy(), rtol=1e-4, atol=1e-5)
        assert not np.allclose(a, _mlp([mp.cpu(0)])[name].data().asnumpy())  # it trained


def test_demo_runs_and_reaches_accuracy(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "demo.py"),
            "--epochs",
            "10",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc = float(re.search(r"test accuracy ([0-9.]+)", proc.stdout).group(1))  # type: ignore[union-attr]
    assert acc >= 0.95
    assert "outputs identical" in proc.stdout
    assert "checkpoint written by MXNet 1.9.1" in proc.stdout
    assert "1.running_var" in proc.stdout  # the MXNet checkpoint's table
    saved = mp.nd.load(tmp_path / "spiral_mlp.params")
    assert isinstance(saved, dict)
    assert saved["mlp_dense0_weight"].shape == (64, 2)
    assert len(saved) == 6


def test_demo_fails_when_accuracy_is_not_reached(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "demo.py"),
            "--epochs",
            "1",
            "--points",
            "50",
            "--out",
            str(tmp_path),
            "--min-acc",
            "0.999",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "FAIL: test accuracy" in proc.stderr
