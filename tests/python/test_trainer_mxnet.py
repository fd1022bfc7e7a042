"""Trainer and optimizers against MXNet 1.9.1's ``gluon.Trainer`` (the oracle).

The same initial values and gradient sequence go through both for every
optimizer, with learning-rate changes (schedulers or ``set_learning_rate``),
``lr_mult``/``wd_mult``, ``clip_gradient``, ``multi_precision`` and two
contexts. MXNet also saves its states after 10 steps; mxparams loads them and
continues to MXNet's final values.
"""

from __future__ import annotations

import pickle
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams as mx  # noqa: E402
from mxnet_oracle import run_mxnet  # noqa: E402
from mxparams import lr_scheduler  # noqa: E402
from mxparams.trainer_states import TrainerStatesError  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.torch]

STEPS = 20
SAVE_AT = 10

# name, optimizer, params, scheduler spec, fp16 param?, contexts
CONFIGS: list[tuple[str, str, dict[str, Any], Any, bool, int]] = [
    (
        "sgd_mom_clip_2ctx",
        "sgd",
        {"momentum": 0.9, "wd": 1e-3, "clip_gradient": 0.5, "learning_rate": 0.1},
        None,
        False,
        2,
    ),
    (
        "sgd_factor",
        "sgd",
        {"wd": 1e-2},
        ("FactorScheduler", {"step": 5, "factor": 0.5, "base_lr": 0.2}),
        False,
        1,
    ),
    (
        "sgd_mp",
        "sgd",
        {"momentum": 0.9, "multi_precision": True, "learning_rate": 0.1, "wd": 1e-3},
        None,
        True,
        1,
    ),
    (
        "nag_clip",
        "nag",
        {"momentum": 0.9, "clip_gradient": 0.3, "wd": 1e-3, "learning_rate": 0.05},
        None,
        False,
        1,
    ),
    (
        "nag_mp",
        "nag",
        {"momentum": 0.8, "multi_precision": True, "learning_rate": 0.05, "wd": 1e-2},
        None,
        True,
        2,
    ),
    (
        "adam_cos",
        "adam",
        {"wd": 1e-3, "clip_gradient": 0.4},
        ("CosineScheduler", {"max_update": 20, "base_lr": 0.01, "warmup_steps": 3}),
        False,
        1,
    ),
    ("adam_mp_2ctx", "adam", {"multi_precision": True, "learning_rate": 0.01}, None, True, 2),
    (
        "rmsprop_poly",
        "rmsprop",
        {"wd": 1e-3},
        ("PolyScheduler", {"max_update": 20, "base_lr": 0.01, "pwr": 2}),
        False,
        1,
    ),
    (
        "rmsprop_centered",
        "rmsprop",
        {"centered": True, "clip_weights": 0.8, "learning_rate": 0.01, "clip_gradient": 1.0},
        None,
        False,
        1,
    ),
    (
        "adagrad",
        "adagrad",
        {"learning_rate": 0.1, "wd": 1e-3, "clip_gradient": 0.5},
        None,
        False,
        1,
    ),
    ("adadelta", "adadelta", {"wd": 1e-3, "rho": 0.9}, None, False, 1),
    (
        "signum",
        "signum",
        {"momentum": 0.9, "wd_lh": 0.01, "wd": 1e-3, "learning_rate": 0.01},
        None,
        False,
        1,
    ),
    ("signsgd", "signum", {"momentum": 0.0, "wd": 1e-3, "learning_rate": 0.01}, None, False, 1),
    ("ftrl", "ftrl", {"lamda1": 0.01, "learning_rate": 0.1, "beta": 1, "wd": 1e-3}, None, False, 1),
    (
        "lamb_multifactor",
        "lamb",
        {"wd": 1e-3, "clip_gradient": 0.6},
        ("MultiFactorScheduler", {"step": [4, 12], "factor": 0.5, "base_lr": 0.01}),
        False,
        1,
    ),
    (
        "lamb_mp_bounds",
        "lamb",
        {"multi_precision": True, "learning_rate": 0.01, "lower_bound": 0.1, "upper_bound": 2.0},
        None,
        True,
        1,
    ),
]

PARAMS = [
    # name, shape, dtype, lr_mult, wd_mult
    ("a_weight", (4, 5), "float32", 1.0, 1.0),
    ("b_bias", (5,), "float32", 2.0, 0.5),
    ("c_weight", (3, 4), "float16", 0.5, 1.0),
]

_MXNET = """
import tempfile
res = {}
for name, optname, oparams, sched, fp16, nctx in configs:
    ctxs = [mx.cpu(i) for i in range(nctx)]
    pd = mx.gluon.ParameterDict()
    for pname, shape, dtype, lrm, wdm in params:
        if dtype == "float16" and not fp16:
            continue
        p = pd.get(pname, shape=tuple(shape), dtype=dtype, lr_mult=lrm, wd_mult=wdm)
    pd.initialize(ctx=ctxs)
    for pname, p in pd.items():
        p.set_data(mx.nd.array(init[pname], dtype=p.dtype))
    oparams = dict(oparams)
    if sched is not None:
        oparams["lr_scheduler"] = getattr(mx.lr_scheduler, sched[0])(**sched[1])
    tr = mx.gluon.Trainer(pd, optname, oparams)
    out = {}
    for s in range(steps):
        for pname, p in pd.items():
            for k, c in enumerate(ctxs):
                p.grad(c)[:] = mx.nd.array(grads[pname][s][k], dtype=p.dtype)
                p.data(c)._fresh_grad = True
        if s == 10 and sched is None:
            tr.set_learning_rate(tr.learning_rate * 0.5)
        tr.step(batch)
        if s + 1 == save_at:
            f = os.path.join(tmp, name + ".states")
            tr.save_states(f)
            out["mid"] = {k: p.data(ctxs[-1]).astype("float32").asnumpy().tolist()
                          for k, p in pd.items()}
    out["final"] = {k: p.data(ctxs[-1]).astype("float32").asnumpy().tolist()
                    for k, p in pd.items()}
    out["lr"] = tr.learning_rate
    res[name] = out
result = res
"""


def _data() -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.RandomState(42)
    init = {}
    grads = {}
    for name, shape, dtype, _, _ in PARAMS:
        init[name] = rng.uniform(-1, 1, shape).astype(dtype).tolist()
        grads[name] = (
            rng.uniform(-2, 2, (STEPS, 2, *shape)).astype(dtype).astype("float64").tolist()
        )
    return init, grads


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("mxstates")
    init, grads = _data()
    res = run_mxnet(
        _MXNET,
        configs=CONFIGS,
        params=PARAMS,
        init=init,
        grads=grads,
        steps=STEPS,
        save_at=SAVE_AT,
        batch=3,
        tmp=str(tmp),
    )
    return res, tmp


def _make(
    optname: str, oparams: dict[str, Any], sched: Any, fp16: bool, nctx: int
) -> tuple[mx.ParameterDict, list[mx.Context], mx.Trainer]:
    init, _ = _data()
    ctxs = [mx.cpu(i) for i in range(nctx)]
    pd = mx.ParameterDict()
    for name, shape, dtype, lrm, wdm in PARAMS:
        if dtype == "float16" and not fp16:
            continue
        pd.get(name, shape=shape, dtype=dtype, lr_mult=lrm, wd_mult=wdm)
    pd.initialize(ctx=ctxs)
    for name, p in pd.items():
        p.set_data(np.asarray(init[name], dtype=p.dtype))
    oparams = dict(oparams)
    if sched is not None:
        oparams["lr_scheduler"] = getattr(lr_scheduler, sched[0])(**sched[1])
    return pd, ctxs, mx.Trainer(pd, optname, oparams)


def _run(
    pd: mx.ParameterDict,
    ctxs: list[mx.Context],
    tr: mx.Trainer,
    sched: Any,
    start: int,
    stop: int,
) -> None:
    _, grads = _data()
    for s in range(start, stop):
        for name, p in pd.items():
            for k, c in enumerate(ctxs):
                np.asarray(p.grad(c))[...] = np.asarray(grads[name][s][k], dtype=p.dtype)
                p.data(c)._fresh_grad = True  # as the oracle: written by hand
        if s == 10 and sched is None:
            tr.set_learning_rate(tr.learning_rate * 0.5)
        tr.step(3)


def _check(pd: mx.ParameterDict, ctxs: list[mx.Context], want: dict[str, Any]) -> None:
    for name, p in pd.items():
        for c in ctxs:
            got = p.data(c).asnumpy().astype(np.float32)
            tol = 2e-2 if p.dtype == np.float16 else 2e-5
            np.testing.assert_allclose(
                got, np.asarray(want[name]), rtol=tol, atol=tol, err_msg=name
            )


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_mxnet(cfg: Any, oracle: Any) -> None:
    name, optname, oparams, sched, fp16, nctx = cfg
    res, _ = oracle
    pd, ctxs, tr = _make(optname, oparams, sched, fp16, nctx)
    _run(pd, ctxs, tr, sched, 0, SAVE_AT)
    _check(pd, ctxs, res[name]["mid"])
    _run(pd, ctxs, tr, sched, SAVE_AT, STEPS)
    _check(pd, ctxs, res[name]["final"])
    assert tr.learning_rate == pytest.approx(res[name]["lr"])


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_resumes_from_mxnet_states(cfg: Any, oracle: Any, tmp_path: Path) -> None:
    """MXNet's states after 10 steps, loaded here, continue to MXNet's values;
    our own save/load round trip resumes exactly as well."""
    name, optname, oparams, sched, fp16, nctx = cfg
    res, tmp = oracle
    pd, ctxs, tr = _make(optname, oparams, sched, fp16, nctx)
    for pname, p in pd.items():
        p.set_data(np.asarray(res[name]["mid"][pname], dtype=p.dtype))
    tr.load_states(tmp / f"{name}.states")
    ours = tmp_path / "ours.states"
    tr.save_states(ours)
    tr2 = mx.Trainer(pd, optname, dict(oparams, lr_scheduler=None) if sched else oparams)
    tr2.load_states(ours)
    _run(pd, ctxs, tr2, sched, SAVE_AT, STEPS)
    _check(pd, ctxs, res[name]["final"])


class _Evil:
    def __reduce__(self) -> Any:
        return (print, ("ran",))


def test_states_naming_other_classes_are_refused(tmp_path: Path, capsys: Any) -> None:
    pd, ctxs, tr = _make("sgd", {"momentum": 0.9}, None, False, 1)
    bad = tmp_path / "evil.states"
    bad.write_bytes(pickle.dumps(({0: _Evil()}, None)))
    with pytest.raises(TrainerStatesError, match="builtins.print"):
        tr.load_states(bad)
    assert "ran" not in capsys.readouterr().out
    assert isinstance(TrainerStatesError("x"), mx.MXParamsError)
    bad.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(TrainerStatesError):
        tr.load_states(bad)


def test_step_follows_grad_req_and_context_changes() -> None:
    """What a step touches is kept between steps; a grad_req change or a
    re-initialisation on other contexts is seen at the next step."""
    pd = mx.ParameterDict()
    w = pd.get("w", shape=(3,), init="ones")
    b = pd.get("b", shape=(3,), init="ones")
    pd.initialize(ctx=mx.cpu(0))
    tr = mx.Trainer(pd, "sgd", {"learning_rate": 1.0})
    for p in (w, b):
        np.asarray(p.grad())[:] = 1.0
        p.data()._fresh_grad = True
    tr.step(1)
    np.testing.assert_array_equal(w.data().asnumpy(), np.zeros(3, "f4"))
    b.grad_req = "null"  # new buffers, and no longer trained
    np.asarray(w.grad())[:] = 1.0
    w.data()._fresh_grad = True
    tr.step(1)
    np.testing.assert_array_equal(w.data().asnumpy(), np.full(3, -1.0, "f4"))
    np.testing.assert_array_equal(b.data().asnumpy(), np.zeros(3, "f4"))
    b.grad_req = "write"
    pd.initialize(ctx=[mx.cpu(0), mx.cpu(1)], force_reinit=True)  # ones on both
    for p in (w, b):
        for c, g in ((mx.cpu(0), 1.0), (mx.cpu(1), 3.0)):
            np.asarray(p.grad(c))[:] = g
            p.data(c)._fresh_grad = True
    tr.step(1)  # the sum over both contexts, on both contexts
    for p in (w, b):
        for c in (mx.cpu(0), mx.cpu(1)):
            np.testing.assert_array_equal(p.data(c).asnumpy(), np.full(3, -3.0, "f4"))


def test_step_keeps_the_torch_tensors_of_a_forward_pass() -> None:
    """A model calling mxparams.torch.tensor() in every forward pass gets the
    same tensor each step once a Trainer holds the parameters."""
    import mxparams.torch as mpt

    pd = mx.ParameterDict()
    w = pd.get("w", shape=(3,), init="ones")
    pd.initialize(ctx=mx.cpu(0))
    tr = mx.Trainer(pd, "sgd", {"learning_rate": 0.5})
    refs = []
    for _ in range(3):
        t = mpt.tensor(w)
        refs.append(weakref.ref(t))
        (t * 2.0).sum().backward()
        del t  # as when the graph goes with the loss
        tr.step(1)
    assert refs[1]() is not None and refs[2]() is refs[1]()
    np.testing.assert_array_equal(w.data().asnumpy(), np.full(3, -2.0, "f4"))
