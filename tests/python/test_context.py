"""mxparams.Context and the context functions."""

from __future__ import annotations

import pickle
import threading

import mxparams as mp
import pytest


def test_constructors_and_attributes() -> None:
    for f, name, typeid in [
        (mp.cpu, "cpu", 1),
        (mp.gpu, "gpu", 2),
        (mp.cpu_pinned, "cpu_pinned", 3),
        (mp.cpu_shared, "cpu_shared", 5),
    ]:
        c = f(3)
        assert c.device_type == name
        assert c.device_id == 3
        assert c.device_typeid == typeid
        assert repr(c) == str(c) == f"{name}(3)"
        assert c == mp.Context(name, 3)
        assert f() == mp.Context(name) == mp.Context(name, 0)
    assert mp.Context(mp.gpu(1)) == mp.gpu(1)
    assert mp.Context(2, 1) == mp.gpu(1)


def test_device_id_keywords() -> None:
    # The contract names the argument `i`; MXNet names it `device_id`.
    for f in (mp.cpu, mp.gpu, mp.cpu_pinned, mp.cpu_shared):
        assert f(i=2) == f(device_id=2) == f(2)
        assert f(i=0) == f()
        with pytest.raises(TypeError, match="once"):
            f(1, i=2)
        with pytest.raises(ValueError, match="invalid device id"):
            f(i=-1)


def test_equality_and_hashing() -> None:
    assert mp.cpu(0) != mp.cpu(1)
    assert mp.cpu(0) != mp.cpu_pinned(0)
    assert mp.cpu(0) != "cpu(0)"
    assert len({mp.cpu(0), mp.Context("cpu", 0), mp.gpu(0), mp.cpu(1)}) == 3
    assert {mp.cpu(1): "x"}[mp.Context("cpu", 1)] == "x"


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="unknown device type 'tpu'"):
        mp.Context("tpu")
    with pytest.raises(ValueError, match="invalid device id"):
        mp.cpu(-1)
    with pytest.raises(TypeError, match="device_type must be"):
        mp.Context(1.5)  # type: ignore[arg-type]


def test_class_tables() -> None:
    assert mp.Context.devtype2str == {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
    assert mp.Context.devstr2type == {"cpu": 1, "gpu": 2, "cpu_pinned": 3, "cpu_shared": 5}


def test_with_sets_default_nested_and_restores() -> None:
    assert mp.current_context() == mp.cpu(0)
    with mp.cpu(1) as c:
        assert c == mp.cpu(1)
        assert mp.current_context() == mp.cpu(1)
        with mp.gpu(2):
            assert mp.current_context() == mp.gpu(2)
            assert mp.nd.zeros((1,), ctx=mp.cpu()).context == mp.cpu(0)
        assert mp.current_context() == mp.cpu(1)
        assert mp.nd.zeros((2,)).context == mp.cpu(1)
        assert mp.nd.array([1.0]).context == mp.cpu(1)
    assert mp.current_context() == mp.cpu(0)


def test_with_restores_on_exception() -> None:
    with pytest.raises(KeyError, match="boom"):
        with mp.cpu_shared(4):
            raise KeyError("boom")
    assert mp.current_context() == mp.cpu(0)


def test_default_is_thread_local() -> None:
    seen: list[mp.Context] = []
    ready = threading.Event()
    go = threading.Event()

    def worker() -> None:
        ready.set()
        go.wait()
        seen.append(mp.current_context())
        with mp.cpu(7):
            seen.append(mp.current_context())

    t = threading.Thread(target=worker)
    t.start()
    ready.wait()
    with mp.cpu(5):
        go.set()
        t.join()
        assert mp.current_context() == mp.cpu(5)
    assert seen == [mp.cpu(0), mp.cpu(7)]


def test_pickle() -> None:
    for c in [mp.cpu(0), mp.gpu(3), mp.cpu_pinned(1), mp.cpu_shared(2)]:
        assert pickle.loads(pickle.dumps(c)) == c


def test_num_gpus_without_cuda() -> None:
    assert mp.num_gpus() == 0
    assert mp.context.num_gpus() == 0


def test_gpu_arrays_need_cuda() -> None:
    with pytest.raises(mp.MXParamsError, match="CUDA"):
        mp.nd.zeros((2,), ctx=mp.gpu(0))
    with pytest.raises(mp.MXParamsError, match="CUDA"):
        mp.nd.ones((2,)).copyto(mp.gpu(0))
    with pytest.raises(mp.MXParamsError, match="CUDA"):
        mp.nd.array([1.0], ctx=mp.gpu(0))
    with mp.gpu(0), pytest.raises(mp.MXParamsError, match="CUDA"):
        mp.nd.ones((1,))
