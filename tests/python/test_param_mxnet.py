"""Parity with real MXNet 1.9.1 (run in a subprocess): the same scenarios on both,
and checkpoints of a real Gluon model (resnet18_v1) crossing in both directions."""

from __future__ import annotations

import re
from pathlib import Path

import mxparams as mp
import numpy as np
import pytest

pytestmark = pytest.mark.mxnet

# The scenario runs unchanged under MXNet (G = mx.gluon, M = mx) and mxparams
# (G = M = mxparams). Each step records a value or the category of its error;
# MXNet's AssertionError counts as ValueError (mxparams' documented choice).
SCENARIO = r"""
import re as _re
out = []
def norm(s):
    return _re.sub(r"<class 'numpy\.(\w+)'>", r"\1", str(s))
def step(label, fn):
    try:
        out.append([label, norm(fn())])
    except Exception as e:
        # mxparams' errors subclass MXParamsError (a RuntimeError) and the builtin
        # they stand for, so the builtin category is checked first.
        name = type(e).__name__
        if name == "DeferredInitializationError":
            cat = "deferred"
        elif isinstance(e, (AssertionError, ValueError)):
            cat = "value"
        elif isinstance(e, KeyError):
            cat = "key"
        elif isinstance(e, RuntimeError):
            cat = "runtime"
        else:
            cat = name
        out.append([label, "error:" + cat])

c0, c1, c2 = M.cpu(0), M.cpu(1), M.cpu(2)
p = G.Parameter("fc_weight", shape=(2, 3))
step("repr", lambda: repr(p))
step("data-uninit", lambda: p.data())
step("grad-uninit", lambda: p.grad())
step("list_ctx-uninit", lambda: p.list_ctx())
step("init", lambda: p.initialize(init=M.init.One(), ctx=[c0, c1]))
step("list_ctx", lambda: p.list_ctx())
step("data-c1", lambda: p.data(c1).asnumpy().tolist())
step("data-pinned", lambda: str(p.data(M.cpu_pinned(1)).context))
step("data-c2", lambda: p.data(c2))
step("grad", lambda: p.grad(c0).asnumpy().tolist())
step("list_grad", lambda: len(p.list_grad()))
step("shape-conflict", lambda: setattr(p, "shape", (2, 4)))
step("set_data", lambda: p.set_data(M.nd.array([[5.0] * 3] * 2)))
step("after-set", lambda: p.data(c1).asnumpy().tolist())
step("null", lambda: setattr(p, "grad_req", "null"))
step("grad-null", lambda: p.grad())
step("list_grad-null", lambda: p.list_grad())
step("add", lambda: setattr(p, "grad_req", "add"))
step("grad-add", lambda: p.grad(c1).asnumpy().tolist())
step("bad-req", lambda: setattr(p, "grad_req", "sum"))
step("cast", lambda: p.cast("float16"))
step("cast-dtype", lambda: str(p.data(c1).dtype) + " " + str(p.grad(c0).dtype))
step("reset_ctx", lambda: p.reset_ctx(c2))
step("reset-list", lambda: p.list_ctx())
step("reset-val", lambda: p.data().asnumpy().tolist())
step("init-again", lambda: p.initialize(init=M.init.Zero(), ctx=c0, force_reinit=True))
step("reinit-val", lambda: p.data().asnumpy().tolist())
q = G.Parameter("q", shape=(0, 3), allow_deferred_init=True)
step("q-init", lambda: q.initialize(init=M.init.One(), ctx=[c0, c1]))
step("q-data", lambda: q.data())
step("q-list_ctx", lambda: q.list_ctx())
step("q-shape", lambda: setattr(q, "shape", (4, 3)))
step("q-data-still", lambda: q.data())
step("q-finish", lambda: q._finish_deferred_init())
step("q-val", lambda: q.data(c1).asnumpy().tolist())
step("bad-shape-init", lambda: G.Parameter("x", shape=(0, 3)).initialize())
step("bad-req-ctor", lambda: G.Parameter("x", grad_req="bad"))
step("nodiff", lambda: G.Parameter("x", differentiable=False).grad_req)
v = G.Parameter("v", shape=(5,), dtype="float16", lr_mult=2, init="zeros").var()
KEYS = ("__shape__", "__dtype__", "__lr_mult__", "__wd_mult__", "__init__", "__storage_type__")
step("var", lambda: [v.attr(k) for k in KEYS])
step("var-json", lambda: v.tojson())
w = G.Parameter("fc_weight", shape=(64, 100)).var()
step("var-json2", lambda: w.tojson())
k = G.Constant("k", [[1, 2], [3, 4]])
step("const", lambda: "|".join([norm(repr(k)), k.grad_req, str(k.shape)]))
step("const-init", lambda: k.initialize(ctx=c0))
step("const-val", lambda: k.data().asnumpy().tolist())

pd = G.ParameterDict("net_")
step("pd-get", lambda: repr(pd.get("w", shape=(0, 4))))
step("pd-merge", lambda: pd.get("w", shape=(3, 0)).shape)
step("pd-conflict", lambda: pd.get("w", shape=(5, 4)))
step("pd-dtype-ok", lambda: pd.get("w", dtype="float32").name)
step("pd-dtype-bad", lambda: pd.get("w", dtype="float16"))
step("pd-lr-bad", lambda: pd.get("w", lr_mult=3.0))
step("pd-b", lambda: pd.get("b", shape=(4,)).name)
step("pd-repr", lambda: repr(pd))
step("pd-keys", lambda: list(pd.keys()))
step("pd-const-missing", lambda: pd.get_constant("c"))
step("pd-const", lambda: repr(pd.get_constant("c", [1.0, 2.0])))
step("pd-const-bad", lambda: pd.get_constant("c", np.array([1.0, 3.0])))
step("pd-const-notconst", lambda: pd.get_constant("w", [1.0]))
other = G.ParameterDict("net_")
other.get("w", shape=(3, 4))
step("pd-update-conflict", lambda: pd.update(other))
shared = G.ParameterDict("net_", shared=pd)
step("pd-shared", lambda: shared.get("w") is pd["net_w"])
step("pd-init", lambda: pd.initialize(init=M.init.One(), ctx=[c0, c1]))
step("pd-list_ctx", lambda: sorted(str(c) for c in pd.list_ctx()))
step("pd-zero_grad", lambda: pd.zero_grad())
step("pd-save-bad-prefix", lambda: pd.save(path + ".bad", strip_prefix="x_"))
step("pd-save", lambda: pd.save(path, strip_prefix="net_"))
# MXNet loads the parameters met before an extra one; mxparams checks first, so
# each failing load gets a dict of its own.
lonely = G.ParameterDict("net_")
lonely.get("w", shape=(0, 4))
step("pd-load-extra", lambda: lonely.load(path, restore_prefix="net_"))
step("pd-load-ignore", lambda: lonely.load(path, restore_prefix="net_", ignore_extra=True))
step("pd-lonely", lambda: lonely["net_w"].list_ctx())
needy = G.ParameterDict("net_")
needy.get("zz", shape=(1,))
step("pd-load-missing", lambda: needy.load(path, restore_prefix="net_", ignore_extra=True))
fresh = G.ParameterDict("net_")
fresh.get("w", shape=(0, 4))
fresh.get("b", shape=(4,))
fresh.get("c", shape=(2,))
step("pd-load-no-restore", lambda: fresh.load(path))
step("pd-load-bad-restore", lambda: fresh.load(path, restore_prefix="zz_"))
step("pd-load", lambda: fresh.load(path, ctx=c1, restore_prefix="net_"))
fw = lambda: fresh["net_w"]  # noqa: E731
step("pd-loaded", lambda: [fw().shape, fw().list_ctx(), fw().data().asnumpy().tolist()])
step("pd-load-wrong-ctx", lambda: fresh.load(path, ctx=c2, restore_prefix="net_"))
step("pd-reset", lambda: fresh.reset_ctx([c0, c2]))
step("pd-reset-ctx", lambda: sorted(str(c) for c in fresh.list_ctx()))
step("pd-setattr", lambda: fresh.setattr("grad_req", "null"))
step("pd-setattr-grad", lambda: fresh["net_b"].grad())
"""


def _mxparams_run(path: str) -> list[list[str]]:
    scope = {"G": mp, "M": mp, "path": path, "np": np}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(SCENARIO, scope)  # noqa: S102 - the shared scenario text
    return scope["out"]  # type: ignore[no-any-return]


def test_scenario_matches_mxnet(mxnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    theirs = mxnet(
        "G = mx.gluon\nM = mx\nexec(SCENARIO)\nresult = out\n",
        SCENARIO=SCENARIO,
        path=str(tmp_path / "mx.params"),
    )
    ours = _mxparams_run(str(tmp_path / "mp.params"))
    assert [s[0] for s in ours] == [s[0] for s in theirs]
    diffs = [(a, b) for a, b in zip(ours, theirs, strict=False) if a != b]
    assert not diffs, "\n".join(f"{a[0]}: mxparams={a[1]!r} mxnet={b[1]!r}" for a, b in diffs)
    # Both saved the same bytes.
    assert (tmp_path / "mp.params").read_bytes() == (tmp_path / "mx.params").read_bytes()


RESNET_MX = r"""
net = mx.gluon.model_zoo.vision.resnet18_v1()
net.initialize(mx.init.Xavier())
net(mx.nd.zeros((1, 3, 32, 32)))
params = net.collect_params()
if mode == "write":
    net.save_parameters(structural)
    params.save(full)
    np.savez(values, **{k: v.data().asnumpy() for k, v in params.items()})
    result = [[k, list(v.shape), str(np.dtype(v.dtype))] for k, v in params.items()]
else:
    net.load_parameters(structural)
    ok_structural = all(
        np.array_equal(v.data().asnumpy(), ref[k])
        for k, v in net._collect_params_with_prefix().items()
    )
    params.load(full)
    ok_full = all(np.array_equal(v.data().asnumpy(), ref2[k]) for k, v in params.items())
    result = [ok_structural, ok_full]
"""


def test_resnet18_checkpoints_cross_both_ways(mxnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    structural = tmp_path / "s.params"
    full = tmp_path / "f.params"
    values = tmp_path / "v.npz"
    meta = mxnet(
        RESNET_MX, mode="write", structural=str(structural), full=str(full), values=str(values)
    )
    ref = np.load(values)
    assert len(meta) > 50

    # MXNet -> mxparams, full names: a dict built with the same names and shapes.
    pd = mp.ParameterDict()
    for name, shape, dtype in meta:
        pd.get(name, shape=tuple(shape), dtype=dtype)
    pd.load(full, ctx=[mp.cpu(0), mp.cpu(1)])
    for name, _, _ in meta:
        assert np.array_equal(np.asarray(pd[name].data(mp.cpu(1))), ref[name]), name

    # MXNet's structural names (save_parameters): load by those names.
    structural_names = list(mp.nd.load(str(structural)).keys())
    sd = mp.ParameterDict()
    for sname, (_, shape, dtype) in zip(structural_names, meta, strict=False):
        sd.get(sname, shape=tuple(0 for _ in shape), dtype=dtype)
    sd.load(structural)
    for sname, (name, _, _) in zip(structural_names, meta, strict=False):
        assert np.array_equal(np.asarray(sd[sname].data()), ref[name]), sname

    # mxparams -> MXNet: new values saved by mxparams, read by load_parameters and
    # ParameterDict.load.
    rng = np.random.default_rng(0)
    new_full = {name: rng.standard_normal(shape).astype(dtype) for name, shape, dtype in meta}
    for name, arr in new_full.items():
        pd[name].set_data(arr)
        sd[structural_names[[m[0] for m in meta].index(name)]].set_data(arr)
    out_structural = tmp_path / "mp_s.params"
    out_full = tmp_path / "mp_f.params"
    sd.save(out_structural)
    pd.save(out_full)
    np.savez(
        tmp_path / "ref.npz",
        **{s: new_full[m[0]] for s, m in zip(structural_names, meta, strict=False)},
    )
    np.savez(tmp_path / "ref2.npz", **new_full)
    ok = mxnet(
        "ref = dict(np.load(r1))\nref2 = dict(np.load(r2))\n" + RESNET_MX,
        mode="read",
        structural=str(out_structural),
        full=str(out_full),
        values="",
        r1=str(tmp_path / "ref.npz"),
        r2=str(tmp_path / "ref2.npz"),
    )
    assert ok == [True, True]


def test_repr_dtype_follows_contract() -> None:
    # MXNet prints dtype=<class 'numpy.float32'>; the contract pins dtype=float32.
    p = mp.Parameter("fc_weight", shape=(64, 100))
    assert re.fullmatch(r"Parameter fc_weight \(shape=\(64, 100\), dtype=float32\)", repr(p))
