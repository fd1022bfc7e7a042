"""mxparams.Parameter and Constant: every method and error path."""

from __future__ import annotations

import threading

import mxparams as mp
import numpy as np
import pytest
from mxparams import init as mpinit

C0, C1 = mp.cpu(0), mp.cpu(1)


class Fill(mpinit.Initializer):
    """Fills with a constant; records the descriptors it saw."""

    def __init__(self, value: float) -> None:
        super().__init__(value=value)
        self.value = value
        self.seen: list[str] = []

    def _init_weight(self, desc, arr):  # type: ignore[no-untyped-def]
        self.seen.append(str(desc))
        np.asarray(arr)[...] = self.value


def vals(a):  # type: ignore[no-untyped-def]
    return np.asarray(a).copy()


def make(shape=(2, 3), value=1.0, ctx=(C0, C1), **kw):  # type: ignore[no-untyped-def]
    p = mp.Parameter("w", shape=shape, **kw)
    p.initialize(init=Fill(value), ctx=list(ctx))
    return p


def test_constructor_defaults_and_repr() -> None:
    p = mp.Parameter("fc_weight", shape=(64, 100))
    assert repr(p) == "Parameter fc_weight (shape=(64, 100), dtype=float32)"
    assert p.name == "fc_weight"
    assert p.grad_req == "write"
    assert p.dtype == np.float32
    assert p.lr_mult == 1.0 and p.wd_mult == 1.0
    assert p.init is None
    assert mp.Parameter("b", shape=5).shape == (5,)
    assert mp.Parameter("n").shape is None
    q = mp.Parameter("h", dtype="float16", lr_mult=2, init="zeros")
    assert q.dtype == np.float16 and q.lr_mult == 2 and q.init == "zeros"
    with pytest.raises(ValueError, match="grad_req must be one of 'write', 'add', or 'null'"):
        mp.Parameter("x", grad_req="sum")
    with pytest.raises(ValueError, match="stype for Parameter 'x' must be one of"):
        mp.Parameter("x", stype="dense")
    with pytest.raises(ValueError, match="grad_stype for Parameter 'x'"):
        mp.Parameter("x", grad_stype="dense")


def test_uninitialised_errors() -> None:
    p = mp.Parameter("w", shape=(2,))
    with pytest.raises(RuntimeError, match="Parameter 'w' has not been initialized"):
        p.data()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        p.grad()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        p.list_data()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        p.list_ctx()
    with pytest.raises(RuntimeError, match="Cannot reset context for Parameter 'w'"):
        p.reset_ctx(C0)
    with pytest.raises(RuntimeError, match="has not been initialized"):
        p.set_data(np.ones(2))
    p.zero_grad()  # a no-op, as MXNet
    with pytest.raises(ValueError, match=r"invalid shape: \(0, 3\)\."):
        mp.Parameter("u", shape=(0, 3)).initialize(init=Fill(0))
    with pytest.raises(ValueError, match="invalid shape: None"):
        mp.Parameter("u").initialize(init=Fill(0))


def test_initialize_contexts_data_grad() -> None:
    p = make(value=3.0)
    assert p.list_ctx() == [C0, C1]
    assert np.all(vals(p.data(C1)) == 3.0)
    assert p.data(C1).context == C1
    assert p.data(mp.cpu_pinned(1)) is p.data(C1)  # host kinds share a slot
    assert p.data() is p.data(C0)  # several copies: current context
    with mp.cpu(1):
        assert p.data() is p.data(C1)
    assert [a.context for a in p.list_data()] == [C0, C1]
    assert np.all(vals(p.grad(C1)) == 0) and p.grad(C1).dtype == np.float32
    assert len(p.list_grad()) == 2
    with pytest.raises(
        RuntimeError,
        match=r"was not initialized on context cpu\(2\). It was only initialized on \[cpu\(0\), "
        r"cpu\(1\)\]",
    ):
        p.data(mp.cpu(2))
    with pytest.raises(RuntimeError, match="was not initialized on context"):
        p.grad(mp.cpu(5))
    single = make(ctx=(C1,))
    assert single.data().context == C1  # one copy: returned whatever the default is


def test_initialize_precedence_and_warning() -> None:
    own, passed, default = Fill(1.0), Fill(2.0), Fill(3.0)
    p = mp.Parameter("w", shape=(2,), init=own)
    p.initialize(ctx=C0, default_init=default)
    assert np.all(vals(p.data()) == 1.0)  # Parameter.init beats default_init
    with pytest.warns(UserWarning, match="Parameter 'w' is already initialized, ignoring"):
        p.initialize(ctx=C0)
    p.initialize(init=passed, ctx=C0, force_reinit=True)
    assert np.all(vals(p.data()) == 2.0)  # an explicit init beats Parameter.init
    q = mp.Parameter("q", shape=(2,))
    q.initialize(ctx=C0, default_init=default)
    assert np.all(vals(q.data()) == 3.0)
    assert default.seen == ["q"]
    r = mp.Parameter("r", shape=(2,), init="ones")
    r.initialize(ctx=C0)
    assert np.all(vals(r.data()) == 1.0)
    u = mp.Parameter("u", shape=(50,))
    u.initialize()  # default Uniform(0.07) on the current context
    assert u.list_ctx() == [mp.current_context()]
    assert np.abs(vals(u.data())).max() <= 0.07 and np.any(vals(u.data()) != 0)


def test_failing_initializer_keeps_parameter_uninitialised() -> None:
    class Boom(mpinit.Initializer):
        def _init_weight(self, desc, arr):  # type: ignore[no-untyped-def]
            raise KeyError("boom")

    p = mp.Parameter("w", shape=(2,))
    with pytest.raises(KeyError, match="boom"):
        p.initialize(init=Boom(), ctx=C0)
    p.initialize(init=Fill(4.0), ctx=C0)
    assert np.all(vals(p.data()) == 4.0)


def test_grad_req_state_machine() -> None:
    p = make()
    g = p.grad(C0)
    p.grad_req = "null"
    assert p.grad_req == "null"
    with pytest.raises(RuntimeError, match="because grad_req='null'"):
        p.grad()
    with pytest.raises(RuntimeError, match="because grad_req='null'"):
        p.list_grad()
    p.grad_req = "add"
    assert p.grad(C0) is not g and np.all(vals(p.grad(C0)) == 0)
    with pytest.raises(ValueError, match="but got 'bogus'"):
        p.grad_req = "bogus"
    nd = mp.Parameter("c", shape=(2,), differentiable=False)
    assert nd.grad_req == "null"
    nd.grad_req = "write"
    assert nd.grad_req == "null"
    u = mp.Parameter("u", shape=(2,))
    u.grad_req = "null"
    u.initialize(init=Fill(0), ctx=C0)
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        u.grad()


def test_deliver_grad_write_add_null() -> None:
    p = make(shape=(3,), ctx=(C0,))
    one = mp.nd.array(np.ones(3, np.float32))
    p._deliver_grad(one)
    p._deliver_grad(one)
    assert np.all(vals(p.grad()) == 1)
    p.grad_req = "add"
    p._deliver_grad(one)
    p._deliver_grad(one)
    assert np.all(vals(p.grad()) == 2)
    p.zero_grad()
    assert np.all(vals(p.grad()) == 0)
    p.grad_req = "null"
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        p._deliver_grad(one)


def test_shape_setter_fill_in_only() -> None:
    p = mp.Parameter("w", shape=(0, 3))
    p.shape = (4, 3)
    assert p.shape == (4, 3)
    with pytest.raises(
        ValueError, match=r"Expected shape \(5, 3\) is incompatible with given shape \(4, 3\)"
    ):
        p.shape = (5, 3)
    with pytest.raises(ValueError, match="incompatible"):
        p.shape = (4,)
    q = mp.Parameter("q")
    q.shape = (2, 2)
    assert q.shape == (2, 2)


def test_deferred_initialisation() -> None:
    p = mp.Parameter("w", shape=(0, 2), allow_deferred_init=True, init=Fill(5.0))
    p.initialize(ctx=[C0, C1])
    assert p.list_ctx() == [C0, C1]
    with pytest.raises(mp.DeferredInitializationError, match="initialization was deferred"):
        p.data()
    with pytest.raises(mp.DeferredInitializationError):
        p.grad()
    with pytest.raises(ValueError, match="invalid shape"):
        p.finish_deferred_init()
    p.shape = (3, 2)
    with pytest.raises(mp.DeferredInitializationError):
        p.data()  # setting the shape alone does not finish it
    p.reset_ctx([C1])
    assert p.list_ctx() == [C1]
    p._finish_deferred_init()
    assert np.all(vals(p.data(C1)) == 5.0) and p.data().shape == (3, 2)
    # set_data while deferred is kept and used instead of the initializer.
    q = mp.Parameter("q", shape=(0,), allow_deferred_init=True, init=Fill(1.0))
    q.initialize(ctx=C0)
    q.set_data(np.array([7.0, 8.0]))
    assert q.shape == (2,)
    q.finish_deferred_init()
    assert vals(q.data()).tolist() == [7.0, 8.0]
    # initialize() again after the shape is known also completes it.
    r = mp.Parameter("r", shape=(0,), allow_deferred_init=True)
    r.initialize(init=Fill(2.0), ctx=C0)
    r.shape = (4,)
    r.initialize(init=Fill(3.0), ctx=C0)
    assert np.all(vals(r.data()) == 3.0)
    mp.Parameter("n").finish_deferred_init()  # nothing deferred: no-op


def test_set_data_converts_and_checks() -> None:
    p = make(shape=(2,), value=0.0)
    p.set_data(np.array([1.5, 2.5], dtype=np.float64))
    assert vals(p.data(C1)).tolist() == [1.5, 2.5]
    p.set_data(mp.nd.array([3, 4], dtype="int32"))
    assert vals(p.data(C0)).tolist() == [3.0, 4.0] and p.dtype == np.float32
    with pytest.raises(ValueError, match="incompatible"):
        p.set_data(np.ones(3))


def test_reset_ctx_keeps_mean_value() -> None:
    p = make(shape=(2,), value=1.0)
    np.asarray(p.data(C1))[...] = 3.0
    p.reset_ctx([mp.cpu(2), mp.cpu(3)])
    assert p.list_ctx() == [mp.cpu(2), mp.cpu(3)]
    assert vals(p.data(mp.cpu(3))).tolist() == [2.0, 2.0]
    assert np.all(vals(p.grad(mp.cpu(2))) == 0)
    p.reset_ctx(C0)
    assert p.list_ctx() == [C0]


@pytest.mark.parametrize(
    "dtype", ["float16", "float64", "int32", "int8", "uint8", "int64", "bfloat16"]
)
def test_cast(dtype: str) -> None:
    p = make(shape=(2,), value=2.0)
    p.cast(dtype)
    assert str(p.dtype) == dtype
    assert str(p.data(C1).dtype) == dtype and str(p.grad(C0).dtype) == dtype
    assert vals(p.data(C1)).astype(np.float32).tolist() == [2.0, 2.0]
    p.dtype = "float32"
    assert p.data().dtype == np.float32


def test_data_cache_is_invalidated() -> None:
    p = make()
    d0 = p.data(C0)
    assert p.data(C0) is d0
    p.reset_ctx([C0])
    assert p.data(C0) is not d0
    p.cast("float64")
    assert p.data(C0).dtype == np.float64


def test_var_attributes() -> None:
    p = mp.Parameter("fc_weight", shape=(64, 100))
    v = p.var()
    assert v is p.var()
    assert v.name == "fc_weight" and v.shape == (64, 100) and v.dtype == np.float32
    assert v.attr("__shape__") == "(64, 100)"
    assert v.attr("__dtype__") == "0"
    assert v.attr("__lr_mult__") == "1.0" and v.attr("__wd_mult__") == "1.0"
    assert v.attr("__init__") is None
    q = mp.Parameter("b", shape=5, dtype="float16", lr_mult=2, init="zeros")
    assert q.var().attr("__dtype__") == "2"
    assert q.var().attr("__lr_mult__") == "2"
    assert q.var().attr("__init__") == "zeros"
    assert '"__shape__": "(5,)"' in q.var().tojson()


def test_private_aliases() -> None:
    p = mp.Parameter("w", shape=(2,))
    assert p._data is None and p._grad is None and p._ctx_list is None
    p.initialize(init=Fill(1.0), ctx=[C0, C1])
    assert len(p._data) == 2 and len(p._grad) == 2 and p._ctx_list == [C0, C1]


def test_constant() -> None:
    c = mp.Constant("k", [[1, 2], [3, 4]])
    assert repr(c) == "Constant k (shape=(2, 2), dtype=float32)"
    assert c.grad_req == "null"
    with pytest.warns(UserWarning, match='does not support grad_req other than "null"'):
        c.grad_req = "write"
    assert c.grad_req == "null"
    c.initialize(ctx=[C0, C1], default_init=Fill(9.0))
    assert vals(c.data(C1)).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        c.grad()


def test_threads_share_parameter() -> None:
    p = make(shape=(256,), value=1.0)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for _ in range(300):
                assert p.data(C0).shape == (256,)
                p.grad(C1)
                p.zero_grad()
                p.set_data(np.full(256, float(i), np.float32))
                v = vals(p._reduce())  # reads under the storage locks
                assert np.all(v == v[0])  # never a torn write
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors


def test_autograd_adapters_are_told_about_gradient_buffers() -> None:
    calls: list[tuple[str, object]] = []

    class Recorder(mp.autograd.AutogradAdapter):
        def mark_variables(self, variables, gradients, grad_reqs):  # type: ignore[no-untyped-def]
            calls.append(("mark", (len(variables), gradients[0].shape, grad_reqs[0])))

        def on_grad_req_change(self, param, old, new):  # type: ignore[no-untyped-def]
            calls.append(("req", (param.name, old, new)))

    mp.autograd.register_adapter("recorder", Recorder())
    try:
        p = make(shape=(3,))
        assert calls == [("mark", (2, (3,), "write"))]
        calls.clear()
        p.grad_req = "null"
        p.grad_req = "add"
        assert calls == [
            ("req", ("w", "write", "null")),
            ("req", ("w", "null", "add")),
            ("mark", (2, (3,), "add")),
        ]
        calls.clear()
        p.reset_ctx(C0)
        assert calls == [("mark", (1, (3,), "add"))]
    finally:
        mp.autograd.unregister_adapter("recorder")


def test_data_during_array_replacement_is_consistent() -> None:
    p = make(shape=(64,), value=1.0)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                d = p.data(C0)
                assert d.context == C0 and d.shape == (64,)
                g = p.grad(C0)
                assert g.context == C0
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def mover() -> None:
        try:
            for i in range(200):
                p.reset_ctx([C0, C1] if i % 2 else [C0])
                p.cast("float64" if i % 3 else "float32")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    m = threading.Thread(target=mover)
    for t in readers:
        t.start()
    m.start()
    m.join(timeout=60)
    stop.set()
    for t in readers:
        t.join(timeout=30)
    assert not m.is_alive() and not any(t.is_alive() for t in readers)
    assert not errors, errors
    assert np.all(vals(p.data(C0)) == 1.0)
