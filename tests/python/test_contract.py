"""docs/api.md, row by row: every public name, signature, default and pinned
detail of the contract, with MXNet 1.9.1 (through the oracle) where the
contract defers to it."""

from __future__ import annotations

import inspect
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import ml_dtypes
import mxparams as mp
import numpy as np
import pytest

# ---------------------------------------------------------------------------
# helpers


def _params(fn: Any) -> list[tuple[str, Any]]:
    """(name, default) of each parameter except self; inspect.Parameter.empty when none."""
    sig = inspect.signature(fn)
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


def _defaults(fn: Any) -> dict[str, Any]:
    return dict(_params(fn))


E = inspect.Parameter.empty


def _dict(prefix: str = "", **shapes: Any) -> mp.ParameterDict:
    pd = mp.ParameterDict(prefix)
    for name, shape in shapes.items():
        pd.get(name, shape=shape)
    return pd


# ---------------------------------------------------------------------------
# Module layout: contexts


def test_context_names_and_signatures() -> None:
    assert [n for n, _ in _params(mp.Context)][:2] == ["device_type", "device_id"]
    assert _defaults(mp.Context)["device_id"] == 0
    for fn in (mp.cpu, mp.gpu, mp.cpu_pinned, mp.cpu_shared):
        # MXNet's positional device_id, and the contract's name for it, i.
        assert _params(fn) == [("device_id", 0), ("i", None)]
        assert fn(i=1) == fn(1)
    assert _params(mp.current_context) == []
    assert _params(mp.num_gpus) == []
    assert isinstance(mp.num_gpus(), int)


@pytest.mark.parametrize(
    ("make", "device_type", "typeid"),
    [
        (mp.cpu, "cpu", 1),
        (mp.gpu, "gpu", 2),
        (mp.cpu_pinned, "cpu_pinned", 3),
        (mp.cpu_shared, "cpu_shared", 5),
    ],
)
def test_context_attributes(make: Any, device_type: str, typeid: int) -> None:
    ctx = make(3)
    assert ctx.device_type == device_type
    assert ctx.device_id == 3
    assert ctx.device_typeid == typeid
    assert repr(ctx) == f"{device_type}(3)"
    assert make() == make(0)
    assert ctx == mp.Context(device_type, 3)
    assert ctx == mp.Context(ctx)
    assert hash(ctx) == hash(mp.Context(device_type, 3))
    assert ctx != make(4)


def test_context_repr_and_default() -> None:
    assert repr(mp.cpu()) == "cpu(0)"
    assert repr(mp.gpu(1)) == "gpu(1)"
    assert mp.current_context() == mp.cpu(0)
    with mp.cpu(2):
        assert mp.current_context() == mp.cpu(2)
        with mp.cpu_pinned(1):
            assert mp.current_context() == mp.cpu_pinned(1)
        assert mp.current_context() == mp.cpu(2)
    assert mp.current_context() == mp.cpu(0)
    assert len({mp.cpu(0), mp.cpu(0), mp.cpu(1)}) == 2


def test_context_bad_device_type() -> None:
    with pytest.raises(ValueError, match="tpu"):
        mp.Context("tpu", 0)


# ---------------------------------------------------------------------------
# NDArray


def test_ndarray_attributes() -> None:
    a = mp.nd.array(np.arange(6, dtype=np.float32).reshape(2, 3), ctx=mp.cpu(1))
    assert isinstance(a, mp.NDArray)
    assert a.shape == (2, 3) and isinstance(a.shape, tuple)
    assert a.dtype == np.dtype("float32") and isinstance(a.dtype, np.dtype)
    assert a.context == mp.cpu(1) and a.ctx == mp.cpu(1)
    assert a.size == 6 and a.ndim == 2 and a.stype == "default"


def test_ndarray_asnumpy_is_a_copy_array_is_zero_copy() -> None:
    a = mp.nd.zeros((4,))
    copy = a.asnumpy()
    copy[0] = 5
    assert a.asnumpy()[0] == 0
    view = np.asarray(a)
    view[1] = 7
    assert a.asnumpy()[1] == 7
    assert np.shares_memory(np.asarray(a), np.asarray(a))


def test_ndarray_dlpack() -> None:
    a = mp.nd.array([1.0, 2.0, 3.0])
    assert a.__dlpack_device__() == (1, 0)
    b = np.from_dlpack(a)
    b[0] = 9
    assert a.asnumpy()[0] == 9


def test_ndarray_copyto_as_in_context_astype_detach() -> None:
    a = mp.nd.array([1.0, 2.0])
    b = a.copyto(mp.cpu(1))
    assert b.context == mp.cpu(1)
    np.asarray(b)[0] = 5
    assert a.asnumpy()[0] == 1
    target = mp.nd.zeros((2,))
    out = a.copyto(target)
    assert out is target or np.array_equal(out.asnumpy(), [1, 2])
    np.testing.assert_array_equal(target.asnumpy(), [1, 2])
    assert a.as_in_context(a.context) is a
    c = a.as_in_context(mp.cpu(2))
    assert c.context == mp.cpu(2)
    np.testing.assert_array_equal(c.asnumpy(), [1, 2])
    d = a.astype("float16")
    assert d.dtype == np.float16
    np.testing.assert_array_equal(d.asnumpy(), [1, 2])
    e = a.detach()
    np.testing.assert_array_equal(e.asnumpy(), [1, 2])


def test_ndarray_slice_assignment() -> None:
    a = mp.nd.zeros((2, 2))
    a[:] = 3
    np.testing.assert_array_equal(a.asnumpy(), np.full((2, 2), 3))
    a[:] = np.arange(4).reshape(2, 2)
    np.testing.assert_array_equal(a.asnumpy(), np.arange(4).reshape(2, 2))
    a[:] = mp.nd.ones((2, 2))
    np.testing.assert_array_equal(a.asnumpy(), np.ones((2, 2)))


# ---------------------------------------------------------------------------
# nd module


def test_nd_signatures() -> None:
    assert [n for n, _ in _params(mp.nd.array)] == [
        _params(mp.nd.array)[0][0],
        "ctx",
        "dtype",
    ]
    assert _defaults(mp.nd.array)["ctx"] is None and _defaults(mp.nd.array)["dtype"] is None
    assert _defaults(mp.nd.load)["mmap"] is False
    for name in (
        "array",
        "zeros",
        "ones",
        "full",
        "empty",
        "zeros_like",
        "ones_like",
        "save",
        "load",
        "load_frombuffer",
        "save_tobuffer",
    ):
        assert callable(getattr(mp.nd, name))


def test_nd_constructors() -> None:
    assert mp.nd.zeros((2, 3)).asnumpy().sum() == 0
    assert mp.nd.ones((2, 3)).asnumpy().sum() == 6
    np.testing.assert_array_equal(mp.nd.full((2,), 7).asnumpy(), [7, 7])
    assert mp.nd.empty((3,)).shape == (3,)
    a = mp.nd.array([[1, 2]], dtype="float16", ctx=mp.cpu(1))
    assert a.dtype == np.float16 and a.context == mp.cpu(1)
    assert mp.nd.zeros_like(a).asnumpy().tolist() == [[0, 0]]
    assert mp.nd.ones_like(a).asnumpy().tolist() == [[1, 1]]
    assert mp.nd.zeros_like(a).dtype == np.float16
    for fn in (mp.nd.zeros, mp.nd.ones, mp.nd.empty):
        assert fn((2,)).dtype == np.float32


def test_nd_array_float64_becomes_float32() -> None:
    assert mp.nd.array(np.zeros(3, dtype=np.float64)).dtype == np.float32
    assert mp.nd.array([1.5, 2.5]).dtype == np.float32
    assert mp.nd.array(np.zeros(3, dtype=np.float64), dtype="float64").dtype == np.float64


def test_bfloat16_dtype_is_ml_dtypes() -> None:
    a = mp.nd.zeros((2,), dtype="bfloat16")
    assert a.dtype == np.dtype(ml_dtypes.bfloat16)
    p = mp.Parameter("w", shape=(2,), dtype="bfloat16")
    assert p.dtype == np.dtype(ml_dtypes.bfloat16)
    p.initialize(init="ones")
    assert p.data().dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(p.data().asnumpy().astype(np.float32), [1, 1])


def test_nd_save_load_forms(tmp_path: Path) -> None:
    a, b = mp.nd.array([1.0, 2.0]), mp.nd.array([[3]], dtype="int32")
    single = tmp_path / "one.params"
    mp.nd.save(str(single), a)
    (got,) = mp.nd.load(str(single))
    np.testing.assert_array_equal(got.asnumpy(), [1, 2])
    lst = tmp_path / "list.params"
    mp.nd.save(str(lst), [a, b])
    got_list = mp.nd.load(str(lst))
    assert isinstance(got_list, list) and len(got_list) == 2
    assert got_list[1].dtype == np.int32
    dct = tmp_path / "dict.params"
    mp.nd.save(dct, {"a": a, "b": b})
    got_dict = mp.nd.load(dct, mmap=True)
    assert isinstance(got_dict, dict) and list(got_dict) == ["a", "b"]
    np.testing.assert_array_equal(got_dict["b"].asnumpy(), [[3]])
    buf = mp.nd.save_tobuffer({"a": a})
    assert isinstance(buf, bytes)
    assert buf == dct.read_bytes()[: len(buf)] or mp.nd.load_frombuffer(buf)["a"].shape == (2,)
    np.testing.assert_array_equal(mp.nd.load_frombuffer(buf)["a"].asnumpy(), [1, 2])


def test_nd_load_matches_mxnet(tmp_path: Path, mxnet: Any) -> None:
    path = tmp_path / "x.params"
    mp.nd.save(str(path), {"w": mp.nd.array(np.arange(6).reshape(2, 3)), "i": mp.nd.ones((1,))})
    res = mxnet(
        "d = mx.nd.load(path); result = {k: [v.shape, np.dtype(v.dtype).name, v.asnumpy().tolist()]"
        " for k, v in d.items()}",
        path=str(path),
    )
    mine = {
        k: [list(v.shape), str(v.dtype), v.asnumpy().tolist()]
        for k, v in mp.nd.load(str(path)).items()
    }
    assert {k: [list(v[0]), v[1], v[2]] for k, v in res.items()} == mine


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        mp.nd.load(str(tmp_path / "nope.params"))
    pd = _dict(w=(2,))
    pd.initialize()
    with pytest.raises(FileNotFoundError):
        pd.load(str(tmp_path / "nope.params"))
    with pytest.raises(FileNotFoundError):
        mp.init.Load(str(tmp_path / "nope.params"))


# ---------------------------------------------------------------------------
# Sparse arrays


def test_sparse_row_sparse_and_csr(tmp_path: Path, mxnet: Any) -> None:
    path = tmp_path / "sp.params"
    mxnet(
        """
vals = np.array([[1, 2], [3, 4]], dtype='float32')
rs = mx.nd.sparse.row_sparse_array((vals, [0, 2]), shape=(4, 2))
vals = np.array([5, 6], dtype='float32')
csr = mx.nd.sparse.csr_matrix((vals, [1, 0], [0, 1, 1, 2]), shape=(3, 2))
mx.nd.save(path, {'rs': rs, 'csr': csr})
result = 0
""",
        path=str(path),
    )
    d = mp.nd.load(str(path))
    rs, csr = d["rs"], d["csr"]
    assert rs.stype == "row_sparse" and csr.stype == "csr"
    np.testing.assert_array_equal(rs.indices.asnumpy(), [0, 2])
    np.testing.assert_array_equal(rs.data.asnumpy(), [[1, 2], [3, 4]])
    assert isinstance(rs.data, mp.NDArray) and isinstance(rs.indices, mp.NDArray)
    np.testing.assert_array_equal(csr.indptr.asnumpy(), [0, 1, 1, 2])
    np.testing.assert_array_equal(csr.indices.asnumpy(), [1, 0])
    dense = rs.tostype("default")
    assert dense.stype == "default"
    np.testing.assert_array_equal(dense.asnumpy(), [[1, 2], [0, 0], [3, 4], [0, 0]])
    np.testing.assert_array_equal(rs.asnumpy(), dense.asnumpy())
    np.testing.assert_array_equal(csr.asnumpy(), [[0, 5], [0, 0], [6, 0]])


# ---------------------------------------------------------------------------
# Parameter


PARAM_DEFAULTS = [
    ("name", E),
    ("grad_req", "write"),
    ("shape", None),
    ("dtype", "float32"),
    ("lr_mult", 1.0),
    ("wd_mult", 1.0),
    ("init", None),
    ("allow_deferred_init", False),
    ("differentiable", True),
    ("stype", "default"),
    ("grad_stype", "default"),
]


def test_parameter_signature() -> None:
    assert _params(mp.Parameter) == PARAM_DEFAULTS
    d = _defaults(mp.Parameter.initialize)
    assert list(d) == ["init", "ctx", "default_init", "force_reinit"]
    assert d["init"] is None and d["ctx"] is None and d["force_reinit"] is False
    assert isinstance(d["default_init"], mp.init.Uniform) and d["default_init"].scale == 0.07
    assert list(_defaults(mp.Parameter.reset_ctx)) == ["ctx"]
    assert list(_defaults(mp.Parameter.set_data)) == ["data"]
    assert _defaults(mp.Parameter.data) == {"ctx": None}
    assert _defaults(mp.Parameter.grad) == {"ctx": None}
    assert list(_defaults(mp.Parameter.cast)) == ["dtype"]
    for name in ("list_data", "list_grad", "list_ctx", "zero_grad", "var"):
        assert _params(getattr(mp.Parameter, name)) == []
    assert callable(mp.Parameter.finish_deferred_init)
    assert callable(mp.Parameter._finish_deferred_init)


def test_parameter_attributes() -> None:
    init = mp.init.Xavier()
    p = mp.Parameter("fc_weight", shape=(64, 100), lr_mult=2.0, wd_mult=0.5, init=init)
    assert p.name == "fc_weight"
    assert p.shape == (64, 100)
    assert p.dtype == np.float32 and isinstance(p.dtype, np.dtype)
    assert p.grad_req == "write"
    assert p.lr_mult == 2.0 and p.wd_mult == 0.5
    assert p.init is init
    assert repr(p) == "Parameter fc_weight (shape=(64, 100), dtype=float32)"
    p.lr_mult = 3.0
    p.wd_mult = 0.0
    assert (p.lr_mult, p.wd_mult) == (3.0, 0.0)


def test_parameter_init_keeps_what_was_given() -> None:
    assert mp.Parameter("a", init="xavier").init == "xavier"
    u = mp.init.Uniform(0.5)
    assert mp.Parameter("b", init=u).init is u
    assert mp.Parameter("c").init is None
    p = mp.Parameter("d", shape=(2, 2), init="ones")
    p.initialize()
    assert p.init == "ones"
    np.testing.assert_array_equal(p.data().asnumpy(), np.ones((2, 2)))


def test_parameter_repr_shapes() -> None:
    assert repr(mp.Parameter("x")) == "Parameter x (shape=None, dtype=float32)"
    assert repr(mp.Parameter("x", shape=5, dtype="float16")) == (
        "Parameter x (shape=(5,), dtype=float16)"
    )


def test_parameter_shape_setter() -> None:
    p = mp.Parameter("w", shape=(0, 3))
    p.shape = (4, 3)
    assert p.shape == (4, 3)
    p.shape = (4, 3)
    with pytest.raises(ValueError):
        p.shape = (5, 3)
    with pytest.raises(ValueError):
        p.shape = (4, 3, 1)
    q = mp.Parameter("q")
    q.shape = (2, 2)
    assert q.shape == (2, 2)


def test_parameter_grad_req_state_machine() -> None:
    p = mp.Parameter("w", shape=(2,))
    p.initialize()
    assert p.grad().shape == (2,)
    p.grad()[:] = 1
    p.grad_req = "add"
    assert p.grad_req == "add"
    p.grad_req = "null"
    assert p.grad_req == "null"
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        p.grad()
    with pytest.raises(RuntimeError):
        p.list_grad()
    p.grad_req = "write"
    np.testing.assert_array_equal(p.grad().asnumpy(), [0, 0])
    with pytest.raises(ValueError):
        p.grad_req = "bogus"
    with pytest.raises(ValueError):
        mp.Parameter("x", grad_req="sometimes")


def test_parameter_not_differentiable_pins_null() -> None:
    p = mp.Parameter("w", shape=(2,), differentiable=False)
    assert p.grad_req == "null"
    p.grad_req = "write"
    assert p.grad_req == "null"


def test_parameter_data_grad_lists(tmp_path: Path) -> None:
    p = mp.Parameter("w", shape=(3,))
    p.initialize(init=mp.init.Constant(2.0), ctx=[mp.cpu(0), mp.cpu(1)])
    assert p.list_ctx() == [mp.cpu(0), mp.cpu(1)]
    assert [d.context for d in p.list_data()] == [mp.cpu(0), mp.cpu(1)]
    assert [g.context for g in p.list_grad()] == [mp.cpu(0), mp.cpu(1)]
    assert p.data(mp.cpu(1)).context == mp.cpu(1)
    assert p.data() is p.data()  # cached
    for g in p.list_grad():
        g[:] = 1
    p.zero_grad()
    assert all(g.asnumpy().sum() == 0 for g in p.list_grad())
    with pytest.raises(RuntimeError, match="cpu\\(2\\)"):
        p.data(mp.cpu(2))
    with pytest.raises(RuntimeError):
        p.grad(mp.cpu(3))


def test_parameter_data_default_context() -> None:
    p = mp.Parameter("w", shape=(1,))
    p.initialize(ctx=mp.cpu(1))
    with mp.cpu(1):
        assert p.data().context == mp.cpu(1)
    # As MXNet: with a single context, data() returns that copy.
    assert p.data().context == mp.cpu(1)
    p.reset_ctx([mp.cpu(1), mp.cpu(2)])
    with pytest.raises(RuntimeError, match="cpu\\(0\\)"):
        p.data()
    with mp.cpu(2):
        assert p.data().context == mp.cpu(2)


@pytest.mark.parametrize(
    "method", ["data", "grad", "list_data", "list_grad", "reset_ctx", "set_data"]
)
def test_use_before_initialize_is_runtime_error(method: str) -> None:
    p = mp.Parameter("w", shape=(2,))
    args: dict[str, tuple[Any, ...]] = {"reset_ctx": (mp.cpu(1),), "set_data": (np.zeros(2),)}
    with pytest.raises(RuntimeError, match="w"):
        getattr(p, method)(*args.get(method, ()))


def test_dict_save_before_initialize_is_runtime_error(tmp_path: Path) -> None:
    pd = _dict(w=(2,))
    with pytest.raises(RuntimeError):
        pd.save(str(tmp_path / "x.params"))
    assert not (tmp_path / "x.params").exists()


def test_parameter_set_data() -> None:
    p = mp.Parameter("w", shape=(2, 2))
    p.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    p.set_data(np.arange(4).reshape(2, 2))
    for d in p.list_data():
        np.testing.assert_array_equal(d.asnumpy(), np.arange(4).reshape(2, 2))
    p.set_data(mp.nd.ones((2, 2)))
    np.testing.assert_array_equal(p.data(mp.cpu(1)).asnumpy(), np.ones((2, 2)))
    with pytest.raises(ValueError):
        p.set_data(np.zeros((3, 3)))


def test_parameter_reset_ctx_keeps_value() -> None:
    p = mp.Parameter("w", shape=(2,))
    p.initialize(init="ones", ctx=mp.cpu(0))
    p.reset_ctx([mp.cpu(1), mp.cpu(2)])
    assert p.list_ctx() == [mp.cpu(1), mp.cpu(2)]
    np.testing.assert_array_equal(p.data(mp.cpu(2)).asnumpy(), [1, 1])
    with pytest.raises(RuntimeError):
        p.data(mp.cpu(0))


def test_parameter_cast() -> None:
    p = mp.Parameter("w", shape=(2,))
    p.initialize(init="ones")
    p.cast("float16")
    assert p.dtype == np.float16
    assert p.data().dtype == np.float16 and p.grad().dtype == np.float16
    np.testing.assert_array_equal(p.data().asnumpy(), [1, 1])
    assert repr(p) == "Parameter w (shape=(2,), dtype=float16)"


def test_parameter_initialize_twice_warns_and_force_reinit() -> None:
    p = mp.Parameter("w", shape=(3,))
    p.initialize(init="zeros")
    with pytest.warns(UserWarning, match="already initialized"):
        p.initialize(init="ones")
    np.testing.assert_array_equal(p.data().asnumpy(), [0, 0, 0])
    p.initialize(init="ones", force_reinit=True)
    np.testing.assert_array_equal(p.data().asnumpy(), [1, 1, 1])


def test_parameter_invalid_shape_for_init_is_value_error() -> None:
    with pytest.raises(ValueError, match="invalid shape"):
        mp.Parameter("w", shape=(0, 3)).initialize()
    with pytest.raises(ValueError):
        mp.Parameter("w").initialize()


def test_failed_initialize_leaves_parameter_uninitialised() -> None:
    class Boom(mp.init.Initializer):
        def _init_weight(self, _: Any, arr: Any) -> None:
            raise KeyError("boom")

    for init, ctx, err in [(Boom(), mp.cpu(0), KeyError), ("ones", mp.gpu(0), RuntimeError)]:
        p = mp.Parameter("w", shape=(2,))
        if ctx == mp.gpu(0) and mp.num_gpus() > 0:
            continue
        with pytest.raises(err):
            p.initialize(init=init, ctx=ctx)
        with pytest.raises(RuntimeError, match="not been initialized") as info:
            p.data()
        assert not isinstance(info.value, mp.DeferredInitializationError)
        p.initialize(init="ones", ctx=mp.cpu(0))
        np.testing.assert_array_equal(p.data().asnumpy(), [1, 1])


# ---------------------------------------------------------------------------
# Deferred initialisation


def _deferred(**kw: Any) -> mp.Parameter:
    p = mp.Parameter("w", shape=(0, 3), allow_deferred_init=True, **kw)
    p.initialize(init="ones", ctx=[mp.cpu(0), mp.cpu(1)])
    return p


@pytest.mark.parametrize("access", ["data", "grad", "list_data", "list_grad"])
def test_deferred_access_raises(access: str) -> None:
    p = _deferred()
    with pytest.raises(mp.DeferredInitializationError, match="w"):
        getattr(p, access)()
    assert issubclass(mp.DeferredInitializationError, mp.MXParamsError)


def test_deferred_setting_shape_alone_does_not_complete() -> None:
    p = _deferred()
    p.shape = (2, 3)
    with pytest.raises(mp.DeferredInitializationError):
        p.data()


def test_deferred_finish_deferred_init() -> None:
    p = _deferred()
    with pytest.raises(ValueError):
        p.finish_deferred_init()  # shape still unknown
    p.shape = (2, 3)
    p.finish_deferred_init()
    assert p.list_ctx() == [mp.cpu(0), mp.cpu(1)]
    np.testing.assert_array_equal(p.data(mp.cpu(1)).asnumpy(), np.ones((2, 3)))
    p.finish_deferred_init()  # nothing pending: a no-op
    assert p._finish_deferred_init == p.finish_deferred_init


def test_deferred_private_alias() -> None:
    p = _deferred()
    p.shape = (4, 3)
    p._finish_deferred_init()
    assert p.data().shape == (4, 3)


def test_deferred_initialize_again_after_shape_known() -> None:
    p = _deferred()
    p.shape = (2, 3)
    p.initialize(init="ones", ctx=mp.cpu(0))
    np.testing.assert_array_equal(p.data().asnumpy(), np.ones((2, 3)))


def test_deferred_completed_by_dict_load(tmp_path: Path) -> None:
    path = tmp_path / "w.params"
    mp.nd.save(str(path), {"w": mp.nd.array(np.arange(6).reshape(2, 3))})
    pd = mp.ParameterDict()
    p = pd.get("w", shape=(0, 3), allow_deferred_init=True)
    pd.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    with pytest.raises(mp.DeferredInitializationError):
        p.data()
    pd.load(str(path))
    assert p.shape == (2, 3)
    assert p.list_ctx() == [mp.cpu(0), mp.cpu(1)]
    np.testing.assert_array_equal(p.data(mp.cpu(1)).asnumpy(), np.arange(6).reshape(2, 3))


def test_deferred_set_data_kept_until_finish() -> None:
    p = _deferred()
    p.set_data(np.full((2, 3), 5.0))
    assert p.shape == (2, 3)
    p.finish_deferred_init()
    np.testing.assert_array_equal(p.data().asnumpy(), np.full((2, 3), 5.0))


# ---------------------------------------------------------------------------
# Host contexts share a slot


def test_host_contexts_share_a_slot() -> None:
    p = mp.Parameter("w", shape=(2,))
    p.initialize(init="zeros", ctx=mp.cpu(1))
    d = p.data(mp.cpu(1))
    assert p.data(mp.cpu_pinned(1)) is d or np.shares_memory(
        np.asarray(p.data(mp.cpu_pinned(1))), np.asarray(d)
    )
    p.data(mp.cpu_shared(1))[:] = 4
    np.testing.assert_array_equal(p.data(mp.cpu(1)).asnumpy(), [4, 4])
    with pytest.raises(RuntimeError):
        p.data(mp.cpu(0))
    with pytest.raises(RuntimeError):
        p.data(mp.gpu(1))


def test_host_slot_matches_mxnet(mxnet: Any) -> None:
    script = """
p = G.Parameter('w', shape=(2,))
p.initialize(init='zeros', ctx=M.cpu(1))
p.data(M.cpu_pinned(1))[:] = 3
out = [p.data(M.Context('cpu_shared', 1)).asnumpy().tolist()]
try:
    p.data(M.cpu(0)); out.append('ok')
except Exception as e:
    out.append('error')
result = out
"""
    expected = mxnet("G = mx.gluon; M = mx\n" + script)
    ns: dict[str, Any] = {"G": mp, "M": mp}
    exec(script, ns)
    assert ns["result"] == expected


# ---------------------------------------------------------------------------
# var()


def test_var_attributes() -> None:
    p = mp.Parameter(
        "fc_weight", shape=(4, 5), dtype="float16", lr_mult=2, wd_mult=0.5, init="xavier"
    )
    v = p.var()
    assert isinstance(v, mp.Variable)
    assert v.name == "fc_weight" and v.shape == (4, 5) and v.dtype == np.float16
    assert v.lr_mult == 2 and v.wd_mult == 0.5 and v.init == "xavier"
    assert v.attr("__shape__") == "(4, 5)"
    assert v.attr("__dtype__") == "2"
    assert v.attr("__lr_mult__") == "2"
    assert v.attr("__wd_mult__") == "0.5"
    assert v.attr("__init__") == "xavier"
    assert p.var() is v


def test_var_matches_mxnet(mxnet: Any) -> None:
    script = """
p = G.Parameter('fc_weight', shape=(4, 5), dtype='float16', lr_mult=2, wd_mult=0.5,
                init=M.init.Normal(0.5))
v = p.var()
keys = ['__shape__', '__dtype__', '__lr_mult__', '__wd_mult__', '__init__']
result = [v.name, {k: v.attr(k) for k in keys}, json.loads(v.tojson())]
"""
    expected = mxnet("G = mx.gluon; M = mx\n" + script)
    ns: dict[str, Any] = {"G": mp, "M": mp, "json": __import__("json")}
    exec(script, ns)
    assert ns["result"] == expected


# ---------------------------------------------------------------------------
# Constant


def test_constant() -> None:
    c = mp.Constant("c", [[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(c, mp.Parameter)
    assert c.grad_req == "null"
    assert c.shape == (2, 2) and c.dtype == np.float32
    assert repr(c) == "Constant c (shape=(2, 2), dtype=float32)"
    c.initialize()
    np.testing.assert_array_equal(c.data().asnumpy(), [[1, 2], [3, 4]])
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        c.grad()
    with pytest.warns(UserWarning, match="does not support grad_req"):
        c.grad_req = "write"
    assert c.grad_req == "null"
    assert _params(mp.Constant) == [("name", E), ("value", E)]


def test_constant_init_is_a_registered_name() -> None:
    c = mp.Constant("cst", mp.nd.array([1, 2], dtype="int32"))
    assert isinstance(c.init, str) and c.init.startswith("Constant_cst_")
    assert c.var().attr("__init__") == c.init
    out = np.zeros(2, np.int32)
    mp.init.create(c.init)._init_weight("cst", out)
    np.testing.assert_array_equal(out, [1, 2])
    assert c.dtype == np.int32


def test_constant_ignores_initializer_like_mxnet(mxnet: Any) -> None:
    script = """
c = G.Constant('c', M.nd.array([1.0, 2.0]))
c.initialize(init=M.init.Zero())
pd = G.ParameterDict()
pd.update({'c': c}) if False else None
d = G.ParameterDict()
k = d.get_constant('k', [3.0, 4.0])
d.initialize(init=M.init.One())
result = [c.data().asnumpy().tolist(), k.data().asnumpy().tolist(), k.grad_req,
          np.dtype(k.dtype).name]
"""
    expected = mxnet("G = mx.gluon; M = mx\n" + script)
    ns: dict[str, Any] = {"G": mp, "M": mp, "np": np}
    exec(script, ns)
    assert ns["result"] == expected


# ---------------------------------------------------------------------------
# ParameterDict


def test_parameter_dict_signatures() -> None:
    assert _params(mp.ParameterDict) == [("prefix", ""), ("shared", None)]
    assert [n for n, _ in _params(mp.ParameterDict.get)] == ["name", "kwargs"]
    assert _params(mp.ParameterDict.get_constant) == [("name", E), ("value", None)]
    assert _params(mp.ParameterDict.update) == [("other", E)]
    d = _defaults(mp.ParameterDict.initialize)
    assert list(d) == ["init", "ctx", "verbose", "force_reinit"]
    assert isinstance(d["init"], mp.init.Uniform) and d["init"].scale == 0.07
    assert d["ctx"] is None and d["verbose"] is False and d["force_reinit"] is False
    assert _params(mp.ParameterDict.zero_grad) == []
    assert _params(mp.ParameterDict.reset_ctx) == [("ctx", E)]
    assert _params(mp.ParameterDict.setattr) == [("name", E), ("value", E)]
    assert _params(mp.ParameterDict.list_ctx) == []
    assert _params(mp.ParameterDict.save) == [("filename", E), ("strip_prefix", "")]
    assert _params(mp.ParameterDict.load) == [
        ("filename", E),
        ("ctx", None),
        ("allow_missing", False),
        ("ignore_extra", False),
        ("restore_prefix", ""),
        ("cast_dtype", False),
        ("dtype_source", "current"),
    ]


def test_parameter_dict_mapping_protocol() -> None:
    pd = mp.ParameterDict("net_")
    assert pd.prefix == "net_"
    w = pd.get("w", shape=(2,))
    b = pd.get("b", shape=(3,))
    assert w.name == "net_w"
    assert pd["net_w"] is w
    assert "net_b" in pd and "b" not in pd
    assert len(pd) == 2
    assert list(pd) == ["net_w", "net_b"]
    assert list(pd.keys()) == ["net_w", "net_b"]
    assert list(pd.values()) == [w, b]
    assert list(pd.items()) == [("net_w", w), ("net_b", b)]
    with pytest.raises(KeyError):
        pd["w"]
    assert pd.get("w") is w


def test_parameter_dict_repr_matches_mxnet(mxnet: Any) -> None:
    script = """
pd = G.ParameterDict('net_')
pd.get('w', shape=(2, 3))
pd.get('b', shape=(3,), dtype='float16')
pd.get_constant('c', [1.0, 2.0])
empty = G.ParameterDict()
result = [repr(pd), repr(empty)]
"""
    expected = mxnet("G = mx.gluon\n" + script)
    expected = [re.sub(r"<class 'numpy\.(\w+)'>", r"\1", s) for s in expected]
    ns: dict[str, Any] = {"G": mp}
    exec(script, ns)
    assert ns["result"] == expected


GET_SCENARIO = """
out = []
def step(fn):
    try:
        r = fn()
        out.append(r)
    except Exception as e:
        # The builtin each error stands for (mxparams raises subclasses of it).
        name = next(c.__name__ for c in type(e).__mro__ if c.__module__ == 'builtins')
        value = isinstance(e, (AssertionError, ValueError))
        out.append('error:' + ('value' if value else name))
pd = G.ParameterDict('p_')
w = pd.get('w', shape=(2, 0), init='ones')
step(lambda: pd.get('w', shape=(2, 3)) is w)
step(lambda: list(w.shape))
step(lambda: pd.get('w', shape=(2, 0)).shape == (2, 3))
step(lambda: pd.get('w', shape=(2, 4)))
step(lambda: pd.get('w', shape=(2,)))
step(lambda: pd.get('w', dtype='float16'))
step(lambda: pd.get('w', dtype=np.float32) is w)
step(lambda: pd.get('w', lr_mult=2.0))
step(lambda: pd.get('w', lr_mult=1.0) is w)
step(lambda: pd.get('w', init='zeros'))
step(lambda: pd.get('w', init='ones') is w)
step(lambda: pd.get('w', grad_req='add'))
x = pd.get('x')
step(lambda: pd.get('x', shape=(5,)).shape == (5,))
step(lambda: pd.get('x', init='zeros').init)
step(lambda: pd.get('x', allow_deferred_init=True) is x)
shared = G.ParameterDict('p_', shared=pd)
step(lambda: shared.get('w') is w)
step(lambda: list(shared.keys()))
other = G.ParameterDict('q_', shared=pd)
step(lambda: other.get('w') is w)
# get_constant
c = pd.get_constant('c', [1.0, 2.0])
step(lambda: pd.get_constant('c') is c)
step(lambda: pd.get_constant('c', np.array([1.0, 2.0])) is c)
step(lambda: pd.get_constant('c', np.array([1.0, 3.0])))
step(lambda: pd.get_constant('c', np.array([1.0, 2.0, 3.0])))
step(lambda: pd.get_constant('w', np.array([1.0])))
step(lambda: pd.get_constant('missing'))
# update
a = G.ParameterDict('p_')
a.get('w', shape=(2, 3))
step(lambda: pd.update(a))
b = G.ParameterDict()
b._params['p_w'] = w
step(lambda: pd.update(b))
z = G.ParameterDict('z_')
z.get('new', shape=(1,))
step(lambda: pd.update(z))
step(lambda: list(pd.keys()))
result = out
"""


def test_parameter_dict_get_update_semantics_match_mxnet(mxnet: Any) -> None:
    expected = mxnet("G = mx.gluon\n" + GET_SCENARIO)
    ns: dict[str, Any] = {"G": mp, "np": np}
    exec(GET_SCENARIO, ns)
    assert ns["result"] == expected


def test_parameter_dict_exception_pins() -> None:
    pd = mp.ParameterDict()
    pd.get("w", shape=(2,))
    with pytest.raises(ValueError, match="shape"):
        pd.get("w", shape=(3,))
    c = pd.get_constant("c", [1.0])
    assert pd.get_constant("c") is c
    with pytest.raises(ValueError):
        pd.get_constant("c", [2.0])
    other = mp.ParameterDict()
    other.get("w", shape=(2,))
    with pytest.raises(ValueError, match="w"):
        pd.update(other)
    with pytest.raises(KeyError):
        pd.get_constant("nothing")


def test_parameter_dict_initialize_and_ctx_ops() -> None:
    pd = _dict("n_", w=(2, 3), b=(3,))
    pd.initialize(ctx=[mp.cpu(1), mp.cpu(0)])
    assert set(pd.list_ctx()) == {mp.cpu(0), mp.cpu(1)}
    assert pd["n_w"].list_ctx() == [mp.cpu(1), mp.cpu(0)]
    with pytest.warns(UserWarning, match="already initialized"):
        pd.initialize()
    for p in pd.values():
        for g in p.list_grad():
            g[:] = 3
    pd.zero_grad()
    assert all(g.asnumpy().sum() == 0 for p in pd.values() for g in p.list_grad())
    before = pd["n_w"].data(mp.cpu(1)).asnumpy()
    pd.reset_ctx(mp.cpu(2))
    assert pd.list_ctx() == [mp.cpu(2)]
    np.testing.assert_array_equal(pd["n_w"].data(mp.cpu(2)).asnumpy(), before)
    pd.setattr("grad_req", "null")
    assert all(p.grad_req == "null" for p in pd.values())
    pd.setattr("lr_mult", 0.5)
    assert all(p.lr_mult == 0.5 for p in pd.values())
    pd.initialize(init=mp.init.One(), force_reinit=True)
    np.testing.assert_array_equal(pd["n_b"].data().asnumpy(), [1, 1, 1])


def test_parameter_dict_initialize_own_init_wins() -> None:
    pd = mp.ParameterDict()
    pd.get("a", shape=(4,), init="ones")
    pd.get("b", shape=(4,))
    pd.initialize(init=mp.init.Zero())
    np.testing.assert_array_equal(pd["a"].data().asnumpy(), np.ones(4))
    np.testing.assert_array_equal(pd["b"].data().asnumpy(), np.zeros(4))


def test_parameter_dict_save_load(tmp_path: Path) -> None:
    pd = _dict("net_", w=(2, 3), b=(3,))
    pd.initialize()
    path = tmp_path / "p.params"
    pd.save(str(path), strip_prefix="net_")
    assert sorted(mp.nd.load(str(path))) == ["b", "w"]
    with pytest.raises(ValueError, match="(?i)prefix"):
        pd.save(str(tmp_path / "bad.params"), strip_prefix="other_")
    fresh = _dict("net_", w=(2, 3), b=(3,))
    fresh.initialize(init="zeros")
    fresh.load(str(path), restore_prefix="net_")
    np.testing.assert_array_equal(fresh["net_w"].data().asnumpy(), pd["net_w"].data().asnumpy())
    with pytest.raises(ValueError):
        fresh.load(str(path))  # names lack the prefix: missing and extra
    mismatch = _dict("net_", w=(3, 3), b=(3,))
    with pytest.raises(ValueError, match="shape"):
        mismatch.load(str(path), restore_prefix="net_")
    missing = _dict("net_", w=(2, 3), b=(3,), extra=(1,))
    with pytest.raises(ValueError, match="extra"):
        missing.load(str(path), restore_prefix="net_")
    missing.load(str(path), restore_prefix="net_", allow_missing=True)
    small = _dict("net_", w=(2, 3))
    with pytest.raises(ValueError, match="'b'"):
        small.load(str(path), restore_prefix="net_")
    small.load(str(path), restore_prefix="net_", ignore_extra=True)
    with pytest.raises(ValueError, match="(?i)prefix"):
        _dict("x_", w=(1,)).load(str(path), restore_prefix="net_")


def test_parameter_dict_load_dtype(tmp_path: Path) -> None:
    path = tmp_path / "h.params"
    mp.nd.save(str(path), {"w": mp.nd.ones((2,), dtype="float16")})
    pd = _dict(w=(2,))
    with pytest.raises(ValueError):
        pd.load(str(path))
    pd.load(str(path), cast_dtype=True)
    assert pd["w"].dtype == np.float32
    pd2 = _dict(w=(2,))
    pd2.load(str(path), cast_dtype=True, dtype_source="saved")
    assert pd2["w"].dtype == np.float16


def test_list_format_file_into_dict_is_value_error(tmp_path: Path) -> None:
    path = tmp_path / "list.params"
    mp.nd.save(str(path), [mp.nd.ones((2,))])
    pd = _dict(w=(2,))
    with pytest.raises(ValueError):
        pd.load(str(path))


# ---------------------------------------------------------------------------
# init


INIT_SIGNATURES = {
    "Uniform": [("scale", 0.07)],
    "Normal": [("sigma", 0.01)],
    "Constant": [("value", E)],
    "Zero": [],
    "One": [],
    "Xavier": [("rnd_type", "uniform"), ("factor_type", "avg"), ("magnitude", 3)],
    "MSRAPrelu": [("factor_type", "avg"), ("slope", 0.25)],
    "Orthogonal": [("scale", 1.414), ("rand_type", "uniform")],
    "Bilinear": [],
    "LSTMBias": [("forget_bias", 1.0)],
    "Mixed": [("patterns", E), ("initializers", E)],
    "Load": [("param", E), ("default_init", None), ("verbose", False)],
}


@pytest.mark.parametrize("name", sorted(INIT_SIGNATURES))
def test_init_signatures(name: str) -> None:
    assert _params(getattr(mp.init, name)) == INIT_SIGNATURES[name]


def test_init_module_names_and_alias() -> None:
    assert mp.initializer is mp.init
    for name in ("Initializer", "InitDesc", "register", "create", *INIT_SIGNATURES):
        assert hasattr(mp.init, name)
    for name in ("Uniform", "Normal", "Constant", "Zero", "One", "Xavier", "MSRAPrelu"):
        assert issubclass(getattr(mp.init, name), mp.init.Initializer)
    desc = mp.init.InitDesc("w", {"__init__": "zeros"})
    assert isinstance(desc, str) and desc == "w" and desc.attrs == {"__init__": "zeros"}
    assert desc.global_init is None


def test_init_create() -> None:
    assert isinstance(mp.init.create("xavier"), mp.init.Xavier)
    assert isinstance(mp.init.create("Uniform"), mp.init.Uniform)
    assert mp.init.create("normal", sigma=0.5).sigma == 0.5
    u = mp.init.Uniform(0.3)
    assert mp.init.create(u) is u
    assert mp.init.create(u.dumps()) == u
    assert isinstance(mp.init.create("zeros"), mp.init.Zero)
    assert isinstance(mp.init.create("ones"), mp.init.One)
    with pytest.raises(ValueError, match="not registered"):
        mp.init.create("no_such_initializer")
    with pytest.raises(ValueError, match="string type"):
        mp.init.create(3)  # MXNet: AssertionError


def test_init_register() -> None:
    try:

        @mp.init.register
        class HalfInit(mp.init.Initializer):
            def _init_weight(self, _: Any, arr: Any) -> None:
                arr[:] = 0.5

        assert isinstance(mp.init.create("halfinit"), HalfInit)
        p = mp.Parameter("x", shape=(3,), init="halfinit")
        p.initialize()
        np.testing.assert_array_equal(p.data().asnumpy(), [0.5] * 3)
    finally:
        mp.init._REGISTRY.pop("halfinit", None)


def test_init_values() -> None:
    def run(init: Any, shape: tuple[int, ...] = (4, 6), name: str = "x") -> np.ndarray:
        p = mp.Parameter(name, shape=shape, init=init)
        p.initialize()
        return p.data().asnumpy()

    assert (run(mp.init.Zero()) == 0).all()
    assert (run(mp.init.One()) == 1).all()
    assert (run(mp.init.Constant(2.5)) == 2.5).all()
    assert np.abs(run(mp.init.Uniform(0.2))).max() <= 0.2
    big = run(mp.init.Normal(2.0), shape=(100_000,))
    assert abs(big.std() - 2.0) < 0.05
    lstm = run(mp.init.LSTMBias(3.0), shape=(8,))
    np.testing.assert_array_equal(lstm, [0, 0, 3, 3, 0, 0, 0, 0])
    orth = run(mp.init.Orthogonal(scale=1.0), shape=(4, 4))
    np.testing.assert_allclose(orth @ orth.T, np.eye(4), atol=1e-5)
    xav = run(mp.init.Xavier(magnitude=3), shape=(50, 70))
    assert np.abs(xav).max() <= np.sqrt(3 / 60)
    bil = run(mp.init.Bilinear(), shape=(1, 1, 4, 4))
    assert bil.shape == (1, 1, 4, 4) and bil.max() <= 1


def test_init_mixed_and_load(tmp_path: Path) -> None:
    mixed = mp.init.Mixed([".*bias", ".*"], [mp.init.Zero(), mp.init.One()])
    a, b = np.full(3, 7.0, np.float32), np.full(3, 7.0, np.float32)
    mixed(mp.init.InitDesc("fc_bias"), a)
    mixed(mp.init.InitDesc("fc_weight"), b)
    assert (a == 0).all() and (b == 1).all()
    with pytest.raises(ValueError):
        mp.init.Mixed(["^a"], [mp.init.One()])(mp.init.InitDesc("b"), a)
    path = tmp_path / "l.params"
    mp.nd.save(str(path), {"arg:w": mp.nd.array([1.0, 2.0])})
    load = mp.init.Load(str(path))
    out = np.zeros(2, np.float32)
    load(mp.init.InitDesc("w"), out)
    np.testing.assert_array_equal(out, [1, 2])
    with pytest.raises(ValueError, match="missing"):
        load(mp.init.InitDesc("missing"), out)
    with_default = mp.init.Load(str(path), default_init=mp.init.One())
    with_default(mp.init.InitDesc("missing_weight"), out)
    np.testing.assert_array_equal(out, [1, 1])


def test_name_suffix_rules_apply_without_init_attr() -> None:
    init = mp.init.Uniform(0.5)
    for name, expected in [
        ("fc_bias", 0),
        ("bn_gamma", 1),
        ("bn_beta", 0),
        ("q_min", 0),
        ("q_max", 1),
    ]:
        arr = np.full(5, 9.0, np.float32)
        init(mp.init.InitDesc(name), arr)
        assert (arr == expected).all(), name
    w = np.zeros(1000, np.float32)
    init(mp.init.InitDesc("fc_weight"), w)
    assert np.abs(w).max() <= 0.5 and w.std() > 0.2
    with pytest.raises(ValueError, match="Unknown initialization pattern"):
        init(mp.init.InitDesc("fc_other"), w)
    # With __init__, the named initializer decides whatever the suffix.
    arr = np.full(5, 9.0, np.float32)
    init(mp.init.InitDesc("fc_bias", {"__init__": "ones"}), arr)
    assert (arr == 1).all()


def test_gluon_initialize_never_applies_suffix_rules() -> None:
    # A bare fc_bias gets the default Uniform(0.07), not zeros.
    pd = mp.ParameterDict()
    for i in range(20):
        pd.get(f"l{i}_bias", shape=(500,))
        pd.get(f"l{i}_gamma", shape=(500,))
    pd.initialize()
    values = np.concatenate([p.data().asnumpy() for p in pd.values()])
    assert np.abs(values).max() <= 0.07
    assert abs(values.mean()) < 0.002
    assert abs(values.std() - 0.07 / np.sqrt(3)) < 0.002
    p = mp.Parameter("fc_bias", shape=(10_000,))
    p.initialize()
    assert p.data().asnumpy().std() > 0.03


def test_gluon_suffix_rules_match_mxnet(mxnet: Any) -> None:
    script = """
out = []
for name in ['fc_bias', 'bn_gamma', 'bn_beta', 'fc_weight', 'thing']:
    p = G.Parameter(name, shape=(4000,))
    p.initialize()
    a = p.data().asnumpy()
    out.append([name, bool(abs(a).max() <= 0.07 + 1e-7), bool(a.std() > 0.03)])
result = out
"""
    expected = mxnet("G = mx.gluon\n" + script)
    ns: dict[str, Any] = {"G": mp}
    exec(script, ns)
    assert ns["result"] == expected
    assert all(r[1] and r[2] for r in expected)


def test_init_load_missing_name_is_value_error() -> None:
    load = mp.init.Load({"a": mp.nd.ones((1,))})
    with pytest.raises(ValueError, match="b"):
        load(mp.init.InitDesc("b"), np.zeros(1, np.float32))


def test_random_seed_reproducible() -> None:
    def draw() -> list[np.ndarray]:
        pd = _dict(a=(100,), b=(10, 10))
        pd.get("c", shape=(10, 10), init=mp.init.Xavier())
        pd.get("d", shape=(50,), init=mp.init.Normal(1.0))
        pd.initialize()
        return [p.data().asnumpy() for p in pd.values()]

    mp.random.seed(42)
    first = draw()
    mp.random.seed(42)
    second = draw()
    for x, y in zip(first, second, strict=False):
        np.testing.assert_array_equal(x, y)
    third = draw()
    assert not np.array_equal(first[0], third[0])
    assert _params(mp.random.seed)[0][0] == "seed_state"


def test_random_seed_same_values_fast_and_general_paths() -> None:
    class SlowUniform(mp.init.Uniform):
        """A subclass: initialize cannot use its native fast path."""

    for make in (lambda: mp.init.Uniform(0.3), lambda: mp.init.Normal(0.3)):
        base = make()
        slow = type("Slow", (type(base),), {})(0.3)
        mp.random.seed(7)
        a = mp.Parameter("a", shape=(1000,), init=base)
        a.initialize()
        mp.random.seed(7)
        b = mp.Parameter("b", shape=(1000,), init=slow)
        b.initialize()
        np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())
        mp.random.seed(7)
        raw = np.zeros(1000, np.float32)
        base(mp.init.InitDesc("a", {"__init__": base}), raw)
        np.testing.assert_array_equal(raw, a.data().asnumpy())
    assert SlowUniform(0.1).scale == 0.1


def test_xavier_fast_path_matches_general_path() -> None:
    class Wrapped(mp.init.Initializer):
        def _init_weight(self, desc: Any, arr: Any) -> None:
            mp.init.Xavier("gaussian", "in", 2)._init_weight(desc, arr)

    mp.random.seed(3)
    a = mp.Parameter("a", shape=(30, 4, 3, 3), init=mp.init.Xavier("gaussian", "in", 2))
    a.initialize()
    mp.random.seed(3)
    b = mp.Parameter("b", shape=(30, 4, 3, 3), init=Wrapped())
    b.initialize()
    np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())


def test_builtin_fills_on_every_dtype_and_invalid_arguments() -> None:
    for dtype in ("float32", "float64", "float16", "bfloat16", "int32", "int8"):
        for init, check in [
            (mp.init.One(), lambda a: (a == 1).all()),
            (mp.init.Constant(3), lambda a: (a == 3).all()),
            (mp.init.Zero(), lambda a: (a == 0).all()),
            (mp.init.Uniform(5.0), lambda a: (np.abs(a) <= 5).all()),
        ]:
            p = mp.Parameter("w", shape=(64,), dtype=dtype, init=init)
            p.initialize()
            values = p.data().asnumpy().astype(np.float64)
            assert p.data().dtype == p.dtype and check(values), (dtype, init)
    with pytest.raises(ValueError, match="low must be less"):
        mp.Parameter("w", shape=(2,), init=mp.init.Uniform(-1.0)).initialize()
    with pytest.raises(ValueError, match="positive"):
        mp.Parameter("w", shape=(2,), init=mp.init.Normal(-1.0)).initialize()
    with pytest.raises(ValueError, match="vector"):
        mp.Parameter("w", shape=(2,), init=mp.init.Xavier()).initialize()
    with pytest.raises(ValueError, match="not registered"):
        mp.Parameter("w", shape=(2,), init="nope").initialize()
    p = mp.Parameter("w", shape=(0,), allow_deferred_init=True, init=mp.init.Xavier())
    p.initialize()
    p.shape = (3,)
    with pytest.raises(ValueError, match="vector"):
        p.finish_deferred_init()


# ---------------------------------------------------------------------------
# autograd


def test_autograd_pause_and_mark_variables() -> None:
    assert _params(mp.autograd.mark_variables) == [
        ("variables", E),
        ("gradients", E),
        ("grad_reqs", "write"),
    ]
    with mp.autograd.pause():
        pass
    x, g = mp.nd.zeros((2,)), mp.nd.zeros((2,))
    mp.autograd.mark_variables([x], [g])
    mp.autograd.mark_variables(x, g, grad_reqs="add")


class _Recorder(mp.autograd.AutogradAdapter):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def mark_variables(self, variables: Any, gradients: Any, grad_reqs: Any) -> None:
        self.events.append(("mark", len(variables), list(grad_reqs)))

    def on_grad_req_change(self, param: Any, old: str, new: str) -> None:
        self.events.append(("req", param.name, old, new))

    def on_pause(self, paused: bool) -> None:
        self.events.append(("pause", paused))


def test_autograd_adapter_registry_sees_gluon_events() -> None:
    rec = _Recorder()
    assert mp.autograd.register_adapter("contract-test", rec) is None
    try:
        assert mp.autograd.get_adapter("contract-test") is rec
        assert rec in mp.autograd.active_adapters()
        p = mp.Parameter("w", shape=(2,))
        p.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
        assert ("mark", 2, ["write", "write"]) in rec.events
        rec.events.clear()
        p.grad_req = "add"
        assert ("req", "w", "write", "add") in rec.events
        assert ("mark", 2, ["add", "add"]) in rec.events
        rec.events.clear()
        with mp.autograd.pause():
            assert mp.autograd.is_paused()
        assert rec.events == [("pause", True), ("pause", False)]
        rec.events.clear()
        pd = _dict(a=(3,), b=(4,))
        pd.initialize()
        assert sum(1 for e in rec.events if e[0] == "mark") >= 1
        marked = sum(e[1] for e in rec.events if e[0] == "mark")
        assert marked == 2
    finally:
        assert mp.autograd.unregister_adapter("contract-test") is rec
    assert rec not in mp.autograd.active_adapters()


# ---------------------------------------------------------------------------
# Exceptions


def test_exception_hierarchy() -> None:
    assert issubclass(mp.MXParamsError, RuntimeError)
    assert issubclass(mp.DeferredInitializationError, mp.MXParamsError)
    assert issubclass(mp.ParamsFormatError, mp.MXParamsError)
    assert issubclass(mp.ParamsFormatError, ValueError)


def test_params_format_error_is_picklable_and_names_offset() -> None:
    with pytest.raises(mp.ParamsFormatError) as info:
        mp.nd.load_frombuffer(b"\x12\x01\x00\x00\x00\x00\x00\x00junk")
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, RuntimeError)
    assert re.search(r"offset \d+", str(err)) and "expected" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is mp.ParamsFormatError and str(again) == str(err)
    d = pickle.loads(pickle.dumps(mp.DeferredInitializationError("x")))
    assert type(d) is mp.DeferredInitializationError


def test_bad_grad_req_is_value_error() -> None:
    with pytest.raises(ValueError, match="grad_req"):
        mp.Parameter("w", grad_req="maybe")


# ---------------------------------------------------------------------------
# Lenient where MXNet is lenient


def _dict_file(entries: dict[str, np.ndarray]) -> bytes:
    return mp.nd.save_tobuffer({k: mp.nd.array(v) for k, v in entries.items()})


def test_lenient_trailing_bytes_and_reserved_word(tmp_path: Path) -> None:
    buf = _dict_file({"a": np.ones(2, np.float32)})
    got = mp.nd.load_frombuffer(buf + b"\x00garbage")
    np.testing.assert_array_equal(got["a"].asnumpy(), [1, 1])
    header, reserved = struct.unpack_from("<QQ", buf)
    assert header == 0x112
    patched = buf[:8] + struct.pack("<Q", 12345) + buf[16:]
    got = mp.nd.load_frombuffer(patched)
    np.testing.assert_array_equal(got["a"].asnumpy(), [1, 1])
    path = tmp_path / "t.params"
    path.write_bytes(patched + b"tail")
    pd = _dict(a=(2,))
    pd.initialize()
    pd.load(str(path))
    np.testing.assert_array_equal(pd["a"].data().asnumpy(), [1, 1])


def test_lenient_duplicate_names_last_wins(tmp_path: Path) -> None:
    a = mp.nd.save_tobuffer([mp.nd.array([1.0]), mp.nd.array([2.0])])
    # A list file ends with a zero name count: name both arrays "w".
    assert a[-8:] == struct.pack("<Q", 0)
    buf = a[:-8] + struct.pack("<Q", 2) + (struct.pack("<Q", 1) + b"w") * 2
    got = mp.nd.load_frombuffer(buf)
    assert list(got) == ["w"]
    np.testing.assert_array_equal(got["w"].asnumpy(), [2.0])
    path = tmp_path / "dup.params"
    path.write_bytes(buf)
    pd = _dict(w=(1,))
    pd.initialize()
    pd.load(str(path))
    np.testing.assert_array_equal(pd["w"].data().asnumpy(), [2.0])


def test_strict_on_unsafe_input() -> None:
    buf = _dict_file({"a": np.ones(2, np.float32)})
    with pytest.raises(mp.ParamsFormatError):
        mp.nd.load_frombuffer(buf[:-5])
    huge = struct.pack("<QQQ", 0x112, 0, 1 << 60)
    with pytest.raises(mp.ParamsFormatError, match="offset"):
        mp.nd.load_frombuffer(huge)
