"""Gradient freshness and ``Trainer.step(..., ignore_stale_grad=...)`` against
MXNet 1.9.1 (the oracle).

One scenario runs unchanged under both: three parameters on one or two
contexts, gradients written by hand each step and only some copies marked
fresh (``p.data(ctx)._fresh_grad = True``, as a backward pass marks them),
steps with and without ``ignore_stale_grad``. Weights, flags and the raised
message are compared after every step, for a local update (one context,
``update_on_kvstore=False``) and MXNet's default kvstore update (two contexts).
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams as mx  # noqa: E402
from mxnet_oracle import run_mxnet  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.torch]

# Which copies are marked fresh before each step ([param][ctx]), and whether
# the step ignores stale gradients. Flags left set by a step stay set.
_STEPS_1 = [
    ([[1], [1], [1]], False),
    ([[1], [0], [1]], False),  # raises at b; a's flag was consumed, c's not
    ([[1], [0], [0]], True),
    ([[0], [0], [0]], True),
    ([[1], [1], [1]], False),
    ([[0], [1], [0]], True),
]
_STEPS_2 = [
    ([[1, 1], [1, 1], [1, 1]], False),
    ([[1, 1], [0, 1], [1, 1]], False),  # raises naming b on cpu(0)
    ([[1, 1], [1, 0], [0, 0]], True),  # b fresh on cpu(0) only
    ([[0, 1], [0, 0], [1, 1]], True),
    ([[1, 1], [1, 1], [1, 1]], False),
    ([[1, 1], [0, 1], [0, 0]], True),
]

# MXNet's kvstore never clears the flags: only steps before every copy was
# fresh once can raise.
_STEPS_KV = [
    ([[1, 1], [0, 1], [1, 1]], False),  # updates everything, then raises
    ([[1, 1], [1, 0], [0, 0]], True),
    ([[0, 0], [1, 1], [0, 0]], False),  # raises for c
    ([[0, 0], [0, 0], [1, 1]], False),
    ([[0, 0], [0, 0], [0, 0]], True),
]

# name, contexts, Trainer kwargs, optimizer, its params, steps, use update()
_CASES: list[tuple[str, int, dict[str, Any], str, dict[str, Any], Any, bool]] = [
    ("one_ctx_sgd", 1, {}, "sgd", {"learning_rate": 0.1, "momentum": 0.9}, _STEPS_1, False),
    ("one_ctx_adam_update", 1, {}, "adam", {"learning_rate": 0.1}, _STEPS_1, True),
    ("two_ctx_kvstore", 2, {}, "adam", {"learning_rate": 0.1}, _STEPS_KV, False),
    (
        "two_ctx_local",
        2,
        {"update_on_kvstore": False},
        "adam",
        {"learning_rate": 0.1, "wd": 0.01},
        _STEPS_2,
        False,
    ),
    # kvstore=None: MXNet makes no kvstore, sums nothing over the contexts and
    # updates each copy with its own gradient and its own optimizer state.
    (
        "two_ctx_no_kvstore",
        2,
        {"kvstore": None},
        "sgd",
        {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01},
        _STEPS_2,
        False,
    ),
    (
        "two_ctx_no_kvstore_update",
        2,
        {"kvstore": None},
        "adam",
        {"learning_rate": 0.1},
        _STEPS_2,
        True,
    ),
    (
        "two_ctx_local_update",
        2,
        {"update_on_kvstore": False},
        "sgd",
        {"learning_rate": 0.1, "momentum": 0.9},
        _STEPS_2,
        True,
    ),
]

# Runs under MXNet (gluon = mxnet.gluon) and here (gluon = mxparams).
_SCENARIO = """
def scenario(nctx, kw, optname, oparams, steps, use_update):
    ctxs = [mx.cpu(i) for i in range(nctx)]
    ps = []
    for i, n in enumerate("abc"):
        p = gluon.Parameter(n, shape=(4,))
        p.initialize(ctx=ctxs, init="zeros")
        p.set_data(mx.nd.array(np.linspace(-1, 1, 4) * (i + 1), dtype="float32"))
        ps.append(p)
    tr = gluon.Trainer(ps, optname, oparams, **kw)
    out = []
    for s, (fresh, ignore) in enumerate(steps):
        for i, p in enumerate(ps):
            for j, c in enumerate(ctxs):
                g = np.cos(np.arange(4) + 3 * s + 5 * i + 7 * j).astype("float32")
                p.grad(c)[:] = mx.nd.array(g, dtype="float32")
                if fresh[i][j]:
                    p.data(c)._fresh_grad = True
        err = None
        try:
            if use_update:
                tr.allreduce_grads()
                tr.update(2, ignore_stale_grad=ignore)
            else:
                tr.step(2, ignore_stale_grad=ignore)
        except UserWarning as e:
            err = str(e)
        out.append({
            "err": err,
            "w": [[p.data(c).asnumpy().tolist() for c in ctxs] for p in ps],
            "fresh": [[bool(p.data(c)._fresh_grad) for c in ctxs] for p in ps],
        })
    return out
"""


@pytest.fixture(scope="module")
def oracle() -> Any:
    script = (
        "from mxnet import gluon\n"
        + _SCENARIO
        + textwrap.dedent(
            """
            result = {name: scenario(nctx, kw, opt, op, steps, upd)
                      for name, nctx, kw, opt, op, steps, upd in cases}
            """
        )
    )
    return run_mxnet(script, cases=_CASES)


def _ours() -> Any:
    scope: dict[str, Any] = {"mx": mx, "gluon": mx, "np": np}
    exec(_SCENARIO, scope)
    return scope["scenario"]


@pytest.mark.parametrize("case", _CASES, ids=[c[0] for c in _CASES])
def test_steps_match_mxnet(case: Any, oracle: Any) -> None:
    name, nctx, kw, opt, oparams, steps, use_update = case
    got = _ours()(nctx, kw, opt, oparams, steps, use_update)
    for s, (ours, theirs) in enumerate(zip(got, oracle[name], strict=True)):
        assert ours["err"] == theirs["err"], f"step {s}"
        assert ours["fresh"] == theirs["fresh"], f"step {s}"
        np.testing.assert_allclose(
            ours["w"], theirs["w"], rtol=1e-5, atol=1e-6, err_msg=f"step {s}"
        )
    # Every scenario raises at least once: not a run that tests nothing.
    assert any(r["err"] for r in got)


def test_stale_error_is_a_user_warning_and_an_mxparams_error() -> None:
    p = mx.Parameter("w", shape=(2,))
    p.initialize(ctx=[mx.cpu(0), mx.cpu(1)], init="ones")
    tr = mx.Trainer([p], "sgd", {"learning_rate": 1.0}, update_on_kvstore=False)
    p.data(mx.cpu(0))._fresh_grad = True
    with pytest.raises(mx.StaleGradientError, match=r"Parameter `w` on context cpu\(1\)") as e:
        tr.step(1)
    assert isinstance(e.value, UserWarning) and isinstance(e.value, mx.MXParamsError)
    np.testing.assert_array_equal(p.data(mx.cpu(0)).asnumpy(), np.ones(2, "f4"))


_FLAG_SCRIPT = """
def flags(p):
    return [bool(d._fresh_grad) for d in p.list_data()]

ctxs = [mx.cpu(0), mx.cpu(1)]
p = gluon.Parameter("w", shape=(2,))
p.initialize(ctx=ctxs, init="ones")
out = {"init": flags(p)}
p.data(mx.cpu(0))._fresh_grad = True
out["set"] = flags(p)
p.set_data(mx.nd.array([3.0, 4.0]))
p.zero_grad()
out["set_data"] = flags(p)
p.grad_req = "add"
out["grad_req"] = flags(p)
p.data(mx.cpu(1))._fresh_grad = True
p.cast("float64")
out["cast"] = flags(p)
p.data(mx.cpu(1))._fresh_grad = True
p.reset_ctx(ctxs)
out["reset_ctx"] = flags(p)
p.data(mx.cpu(0))._fresh_grad = True
p.initialize(ctx=ctxs, init="ones", force_reinit=True)
out["reinit"] = flags(p)
p.grad_req = "null"
out["null"] = flags(p)
for name, arr in (("null_set", p.data(mx.cpu(0))), ("plain_set", mx.nd.ones((2,)))):
    try:
        arr._fresh_grad = True
        out[name] = "ok"
    except Exception as e:
        out[name] = "error" if "not been marked as a variable" in str(e) else str(e)
out["plain_get"] = bool(mx.nd.ones((2,))._fresh_grad)
"""


def test_flags_follow_buffers_as_in_mxnet() -> None:
    theirs = run_mxnet("from mxnet import gluon\n" + _FLAG_SCRIPT + "result = out\n")
    scope: dict[str, Any] = {"mx": mx, "gluon": mx}
    exec(_FLAG_SCRIPT, scope)
    assert scope["out"] == theirs
    assert theirs["set_data"] == [True, False] and theirs["null_set"] == "error"


def test_torch_backward_marks_fresh_but_not_when_paused() -> None:
    import mxparams.torch as mpt

    pd = mx.ParameterDict()
    w = pd.get("w", shape=(3,), init="ones")
    b = pd.get("b", shape=(3,), init="ones")
    pd.initialize(ctx=mx.cpu(0))
    tr = mx.Trainer(pd, "sgd", {"learning_rate": 1.0})
    tw = mpt.tensor(w)
    with mx.autograd.pause():
        (tw * 2.0).sum().backward()
    assert not w.data()._fresh_grad
    (tw * 2.0).sum().backward()  # b takes no part
    assert w.data()._fresh_grad and not b.data()._fresh_grad
    with pytest.raises(mx.StaleGradientError, match="`b`"):
        tr.step(1)
    assert w.data()._fresh_grad  # b comes first (sorted names): nothing consumed
    tr.step(1, ignore_stale_grad=True)
    np.testing.assert_array_equal(w.data().asnumpy(), np.full(3, -1.0, "f4"))
    np.testing.assert_array_equal(b.data().asnumpy(), np.ones(3, "f4"))
    assert not w.data()._fresh_grad and not b.data()._fresh_grad


def test_sparse_gradient_delivery_marks_fresh() -> None:
    import mxparams.torch as mpt

    e = mx.Parameter("e", shape=(5, 3), grad_stype="row_sparse")
    e.initialize(ctx=mx.cpu(0), init="ones")
    te = mpt.tensor(e)
    with mx.autograd.pause():
        torch.nn.functional.embedding(torch.tensor([1, 3]), te, sparse=True).sum().backward()
    assert not e.data()._fresh_grad
    torch.nn.functional.embedding(torch.tensor([1, 3]), te, sparse=True).sum().backward()
    assert e.data()._fresh_grad and e._fresh_grads() == [True]


def test_torch_optimizer_skips_parameters_stale_everywhere() -> None:
    import mxparams.torch as mpt

    pd = mx.ParameterDict()
    w = pd.get("w", shape=(3,), init="ones")
    b = pd.get("b", shape=(3,), init="ones")
    pd.initialize(ctx=mx.cpu(0))
    tr = mx.Trainer(pd, torch.optim.SGD, {"lr": 1.0})
    np.asarray(b.grad())[:] = 5.0  # stale: written by no backward pass
    (mpt.tensor(w) * 2.0).sum().backward()
    with pytest.raises(mx.StaleGradientError, match="`b`"):
        tr.step(1)
    tr.step(1, ignore_stale_grad=True)
    np.testing.assert_array_equal(w.data().asnumpy(), np.full(3, -1.0, "f4"))
    np.testing.assert_array_equal(b.data().asnumpy(), np.ones(3, "f4"))
    np.testing.assert_array_equal(b.grad().asnumpy(), np.full(3, 5.0, "f4"))
