"""CUDA paths that run on every machine: the wheel is built with the ``cuda``
feature, and a GPU context that does not exist (every ``gpu(i)`` on a machine
without a driver, ``gpu(num_gpus())`` on any machine) raises ``MXParamsError``
naming the context and the cause, never a panic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mxparams as mx
import numpy as np
import pytest
from mxparams import MXParamsError

N = mx.num_gpus()
MISSING = mx.gpu(N)  # never exists


def test_num_gpus_is_a_count() -> None:
    assert isinstance(N, int) and N >= 0
    assert mx.num_gpus() == N  # cached probe, stable


def test_wheel_is_built_with_cuda() -> None:
    with pytest.raises(MXParamsError) as e:
        mx.nd.zeros((2,), ctx=MISSING)
    assert "without the 'cuda' feature" not in str(e.value)


def test_zeros_on_missing_gpu_raises() -> None:
    with pytest.raises(MXParamsError, match=rf"CUDA is not available: gpu\({N}\) requested"):
        mx.nd.zeros((2,), ctx=MISSING)
    if N == 0:
        with pytest.raises(MXParamsError, match=r"libcuda|driver|no devices"):
            mx.nd.zeros((2,), ctx=mx.gpu(0))


def test_every_way_onto_a_missing_gpu_raises() -> None:
    a = mx.nd.array([1.0, 2.0])
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        mx.nd.array([1.0, 2.0], ctx=MISSING)
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        a.copyto(MISSING)
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        a.as_in_context(MISSING)
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        mx.nd.ones((3,), ctx=MISSING)
    with MISSING:
        with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
            mx.nd.zeros((1,))


def test_parameter_initialize_on_missing_gpu_raises() -> None:
    p = mx.Parameter("w", shape=(2, 3))
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        p.initialize(ctx=MISSING)
    with pytest.raises(RuntimeError, match="has not been initialized"):
        p.data()
    p.initialize(ctx=mx.cpu())
    assert p.data().shape == (2, 3)
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        p.reset_ctx(MISSING)
    assert p.list_ctx() == [mx.cpu()]


def test_param_dict_on_missing_gpu_raises(tmp_path: Path) -> None:
    pd = mx.ParameterDict("net_")
    pd.get("w", shape=(4,))
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        pd.initialize(ctx=[MISSING])
    pd.initialize(ctx=mx.cpu())
    f = tmp_path / "w.params"
    pd.save(str(f))
    other = mx.ParameterDict("net_")
    other.get("w", shape=(4,))
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        other.load(str(f), ctx=MISSING)


def test_nd_load_ctx(tmp_path: Path) -> None:
    f = tmp_path / "a.params"
    mx.nd.save(str(f), {"a": mx.nd.array(np.arange(6, dtype="float32"))})
    with pytest.raises(MXParamsError, match=rf"gpu\({N}\)"):
        mx.nd.load(str(f), ctx=MISSING)
    got = mx.nd.load(str(f), ctx=mx.cpu(1))
    assert isinstance(got, dict)
    assert got["a"].context == mx.cpu(1)
    np.testing.assert_array_equal(got["a"].asnumpy(), np.arange(6, dtype="float32"))
    default = mx.nd.load(str(f), ctx=None)
    assert isinstance(default, dict)
    assert default["a"].context == mx.cpu(0)
    mapped = mx.nd.load(str(f), mmap=True, ctx=mx.cpu(0))
    assert isinstance(mapped, dict)
    assert mapped["a"].readonly


def test_cpu_pinned_works_without_a_gpu() -> None:
    a = mx.nd.array([[1, 2], [3, 4]], ctx=mx.cpu_pinned())
    assert a.context == mx.cpu_pinned()
    np.testing.assert_array_equal(np.asarray(a), [[1, 2], [3, 4]])
    a[:] = 7
    assert a.asnumpy().tolist() == [[7, 7], [7, 7]]
    b = mx.nd.zeros((3,), ctx=mx.cpu_pinned(0))
    np.testing.assert_array_equal(b.asnumpy(), np.zeros(3, "float32"))
    c = a.copyto(mx.cpu())
    assert c.context == mx.cpu() and c.asnumpy().tolist() == [[7, 7], [7, 7]]
    p = mx.Parameter("p", shape=(2,))
    p.initialize(init=mx.init.One(), ctx=mx.cpu_pinned())
    p.zero_grad()
    assert p.data().asnumpy().tolist() == [1.0, 1.0]
    assert p.grad().asnumpy().tolist() == [0.0, 0.0]


def test_host_arrays_have_no_cuda_array_interface() -> None:
    a = mx.nd.zeros((2,))
    assert not hasattr(a, "__cuda_array_interface__")
    assert a.__dlpack_device__() == (1, 0)


def test_no_panic_reaches_python() -> None:
    code = (
        "import mxparams as mx\n"
        "n = mx.num_gpus()\n"
        "try:\n"
        "    mx.nd.zeros((2,), ctx=mx.gpu(n))\n"
        "except mx.MXParamsError as e:\n"
        "    print('raised', e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    assert "raised CUDA is not available" in r.stdout
    assert "panicked" not in r.stderr and "PanicException" not in r.stderr
