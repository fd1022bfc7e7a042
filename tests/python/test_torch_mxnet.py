"""mxparams.torch gradients against MXNet 1.9.1's own autograd and Gluon Parameters.

The same scripted sequences (backward passes on given contexts and inputs,
``zero_grad``, ``grad_req`` changes) run under real MXNet (``autograd.record``
+ ``backward`` on Gluon ``Parameter`` data) and under mxparams with PyTorch
computing the gradients; the gradient buffers must agree after every step.
Also runs examples/mxnet_forward.py (a checkpoint written by MXNet, evaluated
in PyTorch, checked against MXNet's recorded output).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import mxparams as mp
import mxparams.torch as mpt
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]

_rng = np.random.default_rng(3)
W = _rng.standard_normal((3, 4)).astype(np.float32)
B = _rng.standard_normal(3).astype(np.float32)
C = _rng.standard_normal(3).astype(np.float32)
X = [_rng.standard_normal((5, 4)).astype(np.float32) for _ in range(3)]

# Steps: ["bw", ctx_index, x_index] | ["zero"] | ["req", name, grad_req] | ["snap"].
SCENARIOS: dict[str, dict[str, Any]] = {
    "write_overwrites": {
        "reqs": {"w": "write", "b": "write"},
        "ctx": 1,
        "steps": [["bw", 0, 0], ["snap"], ["bw", 0, 1], ["snap"], ["bw", 0, 1], ["snap"]],
    },
    "add_accumulates_until_zero_grad": {
        "reqs": {"w": "add", "b": "add"},
        "ctx": 1,
        "steps": [
            ["bw", 0, 0],
            ["snap"],
            ["bw", 0, 1],
            ["snap"],
            ["bw", 0, 2],
            ["snap"],
            ["zero"],
            ["snap"],
            ["bw", 0, 1],
            ["snap"],
        ],
    },
    "null_has_no_gradient": {
        "reqs": {"w": "write", "b": "null"},
        "ctx": 1,
        "steps": [["bw", 0, 0], ["snap"], ["bw", 0, 1], ["snap"]],
    },
    "mixed_write_and_add": {
        "reqs": {"w": "add", "b": "write"},
        "ctx": 1,
        "steps": [["bw", 0, 0], ["bw", 0, 1], ["snap"], ["zero"], ["bw", 0, 2], ["snap"]],
    },
    "grad_req_changes_between_passes": {
        "reqs": {"w": "write", "b": "write"},
        "ctx": 1,
        "steps": [
            ["bw", 0, 0],
            ["snap"],
            ["req", "w", "add"],
            ["snap"],
            ["bw", 0, 0],
            ["bw", 0, 1],
            ["snap"],
            ["req", "w", "null"],
            ["snap"],
            ["bw", 0, 2],
            ["snap"],
            ["req", "w", "write"],
            ["snap"],
            ["bw", 0, 2],
            ["snap"],
            ["req", "b", "add"],
            ["bw", 0, 0],
            ["bw", 0, 0],
            ["snap"],
        ],
    },
    "two_contexts_are_independent": {
        "reqs": {"w": "add", "b": "write"},
        "ctx": 2,
        "steps": [
            ["bw", 0, 0],
            ["bw", 1, 1],
            ["snap"],
            ["bw", 1, 2],
            ["snap"],
            ["zero"],
            ["bw", 0, 2],
            ["snap"],
        ],
    },
}

MXNET_SCRIPT = """
def run(sc):
    ctxs = [mx.cpu(i) for i in range(sc["ctx"])]
    params = {}
    for name, value in (("w", W), ("b", B)):
        p = mx.gluon.Parameter(name, shape=np.array(value).shape, grad_req=sc["reqs"][name])
        p.initialize(ctx=ctxs)
        p.set_data(mx.nd.array(value))
        params[name] = p
    c = mx.nd.array(C)
    snaps = []
    for step in sc["steps"]:
        if step[0] == "bw":
            ctx = ctxs[step[1]]
            x = mx.nd.array(X[step[2]], ctx=ctx)
            with mx.autograd.record():
                w, b = params["w"].data(ctx), params["b"].data(ctx)
                y = mx.nd.broadcast_add(mx.nd.dot(x, w, transpose_b=True), b.reshape((1, -1)))
                loss = (mx.nd.tanh(y) * c.as_in_context(ctx).reshape((1, -1))).sum()
            loss.backward()
        elif step[0] == "zero":
            for p in params.values():
                p.zero_grad()
        elif step[0] == "req":
            params[step[1]].grad_req = step[2]
        elif step[0] == "snap":
            snaps.append({
                n: None if p.grad_req == "null" else [g.asnumpy().tolist() for g in p.list_grad()]
                for n, p in params.items()
            })
    return snaps

result = {name: run(sc) for name, sc in scenarios.items()}
"""


def run_mxparams(sc: dict[str, Any]) -> list[dict[str, Any]]:
    ctxs = [mp.cpu(i) for i in range(sc["ctx"])]
    params: dict[str, mp.Parameter] = {}
    for name, value in (("w", W), ("b", B)):
        p = mp.Parameter(name, shape=value.shape, grad_req=sc["reqs"][name])
        p.initialize(ctx=ctxs)
        p.set_data(value)
        params[name] = p
    c = torch.from_numpy(C)
    snaps: list[dict[str, Any]] = []
    for step in sc["steps"]:
        if step[0] == "bw":
            ctx = ctxs[step[1]]
            x = torch.from_numpy(X[step[2]])
            w, b = mpt.tensor(params["w"], ctx), mpt.tensor(params["b"], ctx)
            loss = (torch.tanh(x @ w.T + b) * c).sum()
            loss.backward()
        elif step[0] == "zero":
            for p in params.values():
                p.zero_grad()
        elif step[0] == "req":
            params[step[1]].grad_req = step[2]
        elif step[0] == "snap":
            snap: dict[str, Any] = {}
            for n, p in params.items():
                if p.grad_req == "null":
                    snap[n] = None
                    for ctx in ctxs:
                        t = mpt.tensor(p, ctx)
                        assert not t.requires_grad and t.grad is None
                    continue
                snap[n] = [g.asnumpy() for g in p.list_grad()]
                for ctx, g in zip(ctxs, snap[n], strict=False):
                    t = mpt.tensor(p, ctx)  # the tensor handed out earlier, same view
                    assert t.requires_grad
                    np.testing.assert_array_equal(t.grad.numpy(), g)
            snaps.append(snap)
    return snaps


@pytest.fixture(scope="module")
def mxnet_grads(mxnet: Any) -> dict[str, Any]:
    return mxnet(  # type: ignore[no-any-return]
        MXNET_SCRIPT,
        scenarios=SCENARIOS,
        W=W.tolist(),
        B=B.tolist(),
        C=C.tolist(),
        X=[x.tolist() for x in X],
    )


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_gradients_match_mxnet(name: str, mxnet_grads: dict[str, Any]) -> None:
    want = mxnet_grads[name]
    got = run_mxparams(SCENARIOS[name])
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g.keys() == w.keys()
        for pname in g:
            if w[pname] is None:
                assert g[pname] is None, f"snapshot {i}: {pname} should have no gradient"
                continue
            assert g[pname] is not None, f"snapshot {i}: {pname} should have a gradient"
            assert len(g[pname]) == len(w[pname])
            for gc, wc in zip(g[pname], w[pname], strict=False):
                np.testing.assert_allclose(
                    gc,
                    np.asarray(wc, dtype=np.float32),
                    rtol=1e-5,
                    atol=1e-6,
                    err_msg=f"{name}: snapshot {i}, parameter {pname}",
                )


def test_scenarios_are_not_trivial(mxnet_grads: dict[str, Any]) -> None:
    # Guards the comparison above: write and add must give different numbers.
    add = mxnet_grads["add_accumulates_until_zero_grad"]
    write = mxnet_grads["write_overwrites"]
    assert not np.allclose(add[1]["w"][0], write[1]["w"][0])
    assert np.allclose(add[3]["w"][0], 0.0)


def test_mxnet_forward_example() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mxnet_forward.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "max abs err vs MXNet" in proc.stdout
    err = float(proc.stdout.split("max abs err vs MXNet:")[1].split()[0])
    assert err < 1e-5


def test_mxnet_forward_detects_a_wrong_answer(tmp_path: Path) -> None:
    # The example's check can fail: perturb MXNet's recorded output.
    data = ROOT / "examples" / "data"
    (tmp_path / "mxnet_net.params").write_bytes((data / "mxnet_net.params").read_bytes())
    io = mp.nd.load(data / "mxnet_net_io.params")
    assert isinstance(io, dict)
    out = io["output"].asnumpy()
    out[0, 0] += 1e-3
    mp.nd.save(tmp_path / "mxnet_net_io.params", {"input": io["input"], "output": mp.nd.array(out)})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mxnet_forward.py"), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "FAIL" in proc.stderr
