"""GPU contexts on a CUDA device: copies between every pair of contexts,
DLPack / ``__cuda_array_interface__`` export to PyTorch and CuPy, Parameter
and ParameterDict on GPUs, loading to and saving from GPUs. Skipped only when
no GPU is present (``num_gpus() == 0``); multi-GPU checks use every GPU there is."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

import ml_dtypes
import mxparams as mx
import numpy as np
import pytest

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(mx.num_gpus() == 0, reason="no CUDA device (num_gpus() == 0)"),
    # Third-party interop (torch, cupy) may deprecate entry points between releases.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def third_party(name: str) -> Any:
    """Imports torch or cupy inside a test, ignoring their import-time warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


DTYPES = ["float32", "float16", "float64", "int64", "int32", "uint8", "int8", "bool"]


def gpus() -> list[Any]:
    return [mx.gpu(i) for i in range(mx.num_gpus())]


def sample(dtype: Any, shape: tuple[int, ...] = (3, 5), seed: int = 0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 50).astype(dtype)


@pytest.mark.parametrize("dtype", [*DTYPES, ml_dtypes.bfloat16])
def test_host_device_round_trip(dtype: Any) -> None:
    x = sample(dtype)
    a = mx.nd.array(x, ctx=mx.gpu(0), dtype=dtype)
    assert a.context == mx.gpu(0)
    assert a.dtype == np.dtype(dtype) and a.shape == x.shape
    np.testing.assert_array_equal(a.asnumpy(), x)
    back = a.copyto(mx.cpu())
    assert back.context == mx.cpu()
    np.testing.assert_array_equal(np.asarray(back), x)
    pinned = a.as_in_context(mx.cpu_pinned())
    np.testing.assert_array_equal(pinned.asnumpy(), x)


def test_device_to_device_and_peer() -> None:
    x = sample("float32", (64, 33))
    a = mx.nd.array(x, ctx=mx.gpu(0))
    assert a.as_in_context(mx.gpu(0)) is a
    b = a.copyto(mx.gpu(0))
    assert b is not a
    b[:] = 0
    np.testing.assert_array_equal(a.asnumpy(), x)
    np.testing.assert_array_equal(b.asnumpy(), np.zeros_like(x))
    a.copyto(b)
    np.testing.assert_array_equal(b.asnumpy(), x)
    for ctx in gpus():
        c = a.copyto(ctx)
        assert c.context == ctx
        np.testing.assert_array_equal(c.asnumpy(), x)
        np.testing.assert_array_equal(c.copyto(mx.gpu(0)).asnumpy(), x)


def test_zeros_empty_and_setitem() -> None:
    z = mx.nd.zeros((4, 2), ctx=mx.gpu(0), dtype="float16")
    np.testing.assert_array_equal(z.asnumpy(), np.zeros((4, 2), "float16"))
    z[1] = 3
    z[:, 0] = mx.nd.array([1, 2, 3, 4], dtype="float16")
    assert z.asnumpy().tolist() == [[1, 0], [2, 3], [3, 0], [4, 0]]
    e = mx.nd.zeros((0, 3), ctx=mx.gpu(0))
    assert e.asnumpy().shape == (0, 3)
    f = mx.nd.full((2,), 2.5, ctx=mx.gpu(0))
    np.testing.assert_array_equal(f.astype("int32").asnumpy(), [2, 2])
    assert f.astype("int32").context == mx.gpu(0)


def test_numpy_access_to_gpu_array_raises() -> None:
    a = mx.nd.ones((2,), ctx=mx.gpu(0))
    with pytest.raises(TypeError, match=r"gpu\(0\).*asnumpy"):
        np.asarray(a)
    with pytest.raises(ValueError, match="no host view"):
        a[0]  # noqa: B018
    # No buffer either (numpy falls back to __array__, which raised above).
    with pytest.raises(BufferError, match=r"gpu\(0\) has no host buffer"):
        memoryview(a)


def test_dlpack_to_host_consumer_copies() -> None:
    x = sample("float32")
    a = mx.nd.array(x, ctx=mx.gpu(0))

    class OnHost:
        """A consumer asking for host memory (as ``from_dlpack(x, device='cpu')`` does)."""

        def __dlpack__(self, **kwargs: Any) -> Any:
            return a.__dlpack__(dl_device=(1, 0))

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    np.testing.assert_array_equal(np.from_dlpack(OnHost()), x)
    with pytest.raises(BufferError, match="without a copy|DLPack device"):
        a.__dlpack__(dl_device=(1, 0), copy=False)


def test_cuda_array_interface() -> None:
    a = mx.nd.array(sample("float32"), ctx=mx.gpu(0))
    cai = a.__cuda_array_interface__
    assert cai["version"] == 3
    assert cai["shape"] == (3, 5)
    assert cai["typestr"] == "<f4"
    assert cai["strides"] is None and cai["stream"] is None
    ptr, ro = cai["data"]
    assert ptr != 0 and ro is False
    assert mx.nd.zeros((0,), ctx=mx.gpu(0)).__cuda_array_interface__["data"][0] == 0
    assert a.__dlpack_device__() == (2, 0)


def test_dlpack_to_torch_shares_memory() -> None:
    torch = third_party("torch")

    x = sample("float32")
    a = mx.nd.array(x, ctx=mx.gpu(0))
    t = torch.from_dlpack(a)
    assert t.device == torch.device("cuda", 0)
    np.testing.assert_array_equal(t.cpu().numpy(), x)
    t.mul_(2)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(a.asnumpy(), x * 2)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        u = torch.from_dlpack(a.__dlpack__(stream=s.cuda_stream))
        np.testing.assert_array_equal(u.cpu().numpy(), x * 2)
    legacy = torch.utils.dlpack.from_dlpack(a.__dlpack__(stream=1))
    assert legacy.data_ptr() == t.data_ptr()
    with pytest.raises(TypeError, match="stream must be an int"):
        a.__dlpack__(stream="default")
    cai = torch.as_tensor(a, device="cuda:0")
    assert cai.data_ptr() == t.data_ptr()


def test_dlpack_and_cai_to_cupy() -> None:
    cupy = third_party("cupy")

    x = sample("int32")
    a = mx.nd.array(x, ctx=mx.gpu(0), dtype="int32")
    c = cupy.from_dlpack(a)
    np.testing.assert_array_equal(cupy.asnumpy(c), x)
    v = cupy.asarray(a)  # through __cuda_array_interface__
    assert v.data.ptr == c.data.ptr
    v += 1
    cupy.cuda.runtime.deviceSynchronize()
    np.testing.assert_array_equal(a.asnumpy(), x + 1)


def test_parameter_on_gpus() -> None:
    ctxs = gpus()
    p = mx.Parameter("fc_weight", shape=(8, 4))
    p.initialize(init=mx.init.Constant(0.5), ctx=ctxs)
    assert p.list_ctx() == ctxs
    for ctx in ctxs:
        d = p.data(ctx)
        assert d.context == ctx
        np.testing.assert_array_equal(d.asnumpy(), np.full((8, 4), 0.5, "float32"))
        assert p.grad(ctx).context == ctx
    p.set_data(mx.nd.ones((8, 4)))
    for d in p.list_data():
        np.testing.assert_array_equal(d.asnumpy(), np.ones((8, 4), "float32"))
    p.grad(mx.gpu(0))[:] = 3
    p.zero_grad()
    np.testing.assert_array_equal(p.grad(mx.gpu(0)).asnumpy(), np.zeros((8, 4), "float32"))
    p.grad_req = "null"
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        p.grad(mx.gpu(0))
    p.grad_req = "add"
    assert p.grad(mx.gpu(0)).context == mx.gpu(0)
    p.reset_ctx([mx.cpu(0), mx.gpu(0)])
    assert p.list_ctx() == [mx.cpu(0), mx.gpu(0)]
    np.testing.assert_array_equal(p.data(mx.gpu(0)).asnumpy(), np.ones((8, 4), "float32"))
    p.reset_ctx(mx.cpu())
    np.testing.assert_array_equal(p.data().asnumpy(), np.ones((8, 4), "float32"))
    c = mx.Constant("c", np.arange(3, dtype="float32"))
    c.initialize(ctx=mx.gpu(0))
    np.testing.assert_array_equal(c.data().asnumpy(), np.arange(3, dtype="float32"))


def test_parameter_grads_through_torch() -> None:
    torch = third_party("torch")

    p = mx.Parameter("w", shape=(3,), grad_req="add")
    p.initialize(init=mx.init.One(), ctx=mx.gpu(0))
    w = torch.from_dlpack(p.data())
    g = torch.from_dlpack(p.grad())
    assert w.is_cuda and g.is_cuda
    g += torch.tensor([1.0, 2.0, 3.0], device="cuda:0")
    torch.cuda.synchronize()
    np.testing.assert_array_equal(p.grad().asnumpy(), [1, 2, 3])
    p.zero_grad()
    assert torch.count_nonzero(g).item() == 0


def test_torch_adapter_on_gpu() -> None:
    import mxparams.torch as mxt

    torch = third_party("torch")

    p = mx.Parameter("w", shape=(3,), grad_req="write")
    p.initialize(init=mx.init.One(), ctx=mx.gpu(0))
    t = mxt.tensor(p, mx.gpu(0))
    assert t.is_cuda and t.is_leaf and t.requires_grad
    k = torch.tensor([1.0, 2.0, 3.0], device="cuda:0")
    (t * k).sum().backward()
    torch.cuda.synchronize()
    np.testing.assert_array_equal(p.grad().asnumpy(), [1, 2, 3])
    p.grad_req = "add"
    (t * k).sum().backward()
    (t * k).sum().backward()
    torch.cuda.synchronize()
    np.testing.assert_array_equal(p.grad().asnumpy(), [2, 4, 6])
    with torch.no_grad():
        t.mul_(5)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(p.data().asnumpy(), [5, 5, 5])


def test_allreduce_grads_across_gpus() -> None:
    ctxs = [*gpus(), mx.cpu(0)]
    pd = mx.ParameterDict("net_")
    pd.get("w", shape=(4,))
    pd.initialize(ctx=ctxs)
    for i, ctx in enumerate(ctxs):
        pd["net_w"].grad(ctx)[:] = i + 1
    pd.allreduce_grads()
    want = sum(range(1, len(ctxs) + 1))
    for ctx in ctxs:
        np.testing.assert_array_equal(pd["net_w"].grad(ctx).asnumpy(), np.full(4, want, "float32"))


def test_param_dict_save_load_on_gpu(tmp_path: Path) -> None:
    mx.random.seed(7)
    pd = mx.ParameterDict("net_")
    for i in range(5):
        pd.get(f"w{i}", shape=(16, 3 + i))
    pd.initialize(ctx=gpus())
    f = tmp_path / "net.params"
    pd.save(str(f))
    ref = {k: v.data(mx.gpu(0)).asnumpy() for k, v in pd.items()}
    on_cpu = mx.ParameterDict("net_")
    for i in range(5):
        on_cpu.get(f"w{i}", shape=(16, 3 + i))
    on_cpu.load(str(f), ctx=mx.cpu())
    on_gpu = mx.ParameterDict("net_")
    for i in range(5):
        on_gpu.get(f"w{i}", shape=(16, 3 + i))
    on_gpu.load(str(f), ctx=gpus())
    for k in ref:
        np.testing.assert_array_equal(on_cpu[k].data().asnumpy(), ref[k])
        for ctx in gpus():
            d = on_gpu[k].data(ctx)
            assert d.context == ctx
            np.testing.assert_array_equal(d.asnumpy(), ref[k])
    # Loading again copies into the existing device buffers.
    on_gpu.load(str(f), ctx=gpus())
    on_gpu.zero_grad()


def test_nd_load_to_gpu_equals_cpu_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {f"a{i}": rng.standard_normal(1000 + 37 * i).astype("float32") for i in range(50)}
    # Bigger than one 64 MiB staging buffer, so the ring wraps.
    arrays["big"] = rng.standard_normal(50 << 20).astype("float32")
    arrays["half"] = rng.standard_normal((7, 9)).astype("float16")
    arrays["empty"] = np.zeros((0,), "float32")
    f = tmp_path / "many.params"
    mx.nd.save(str(f), {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
    cpu = mx.nd.load(str(f))
    assert isinstance(cpu, dict)
    for ctx in gpus():
        got = mx.nd.load(str(f), ctx=ctx)
        assert isinstance(got, dict) and list(got) == list(cpu)
        for k, v in got.items():
            assert v.context == ctx
            np.testing.assert_array_equal(v.asnumpy(), cpu[k].asnumpy())
    lst = tmp_path / "list.params"
    mx.nd.save(str(lst), [mx.nd.array(arrays["a1"])])
    got_list = mx.nd.load(str(lst), ctx=mx.gpu(0))
    assert isinstance(got_list, list)
    np.testing.assert_array_equal(got_list[0].asnumpy(), arrays["a1"])


def test_save_from_gpu_matches_host_save(tmp_path: Path) -> None:
    x = {f"p{i}": sample("float32", (100, i + 1), seed=i) for i in range(20)}
    on_gpu = {k: mx.nd.array(v, ctx=mx.gpu(0)) for k, v in x.items()}
    f = tmp_path / "gpu.params"
    mx.nd.save(str(f), on_gpu)
    got = mx.nd.load(str(f))
    assert isinstance(got, dict)
    for k, v in x.items():
        np.testing.assert_array_equal(got[k].asnumpy(), v)
    # Same bytes as a host save except each record's device (gpu, as MXNet writes).
    host = mx.nd.save_tobuffer({k: mx.nd.array(v) for k, v in x.items()})
    dev = mx.nd.save_tobuffer(on_gpu)
    assert len(host) == len(dev)
    diff = [i for i, (a, b) in enumerate(zip(host, dev, strict=False)) if a != b]
    assert len(diff) == len(x)  # one byte per record: device type 1 -> 2


def test_pickle_gpu_array() -> None:
    import pickle

    a = mx.nd.array([1.0, 2.0], ctx=mx.gpu(0))
    b = pickle.loads(pickle.dumps(a))
    assert b.context == mx.gpu(0)
    np.testing.assert_array_equal(b.asnumpy(), [1.0, 2.0])


def test_save_streams_mixed_host_and_device_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 1 MiB ring of two buffers: arrays span several fills and fills span arrays.
    monkeypatch.setenv("MXPARAMS_UPLOAD_SLOT_MB", "1")
    monkeypatch.setenv("MXPARAMS_UPLOAD_SLOTS", "2")
    rng = np.random.default_rng(3)
    x = {
        "big": rng.standard_normal(700_000).astype("float32"),
        "empty": np.zeros((0, 3), "float32"),
        "host": rng.standard_normal((5, 7)).astype("float64"),
        "scalar": np.array(2.5, "float32"),
        "mid": rng.integers(0, 100, 300_001).astype("int64"),
        "tail_empty": np.zeros((0,), "int8"),
    }
    arrays = {
        k: mx.nd.array(v, dtype=v.dtype, ctx=mx.cpu() if k == "host" else mx.gpu(0))
        for k, v in x.items()
    }
    f = tmp_path / "mixed.params"
    mx.nd.save(str(f), arrays)
    got = mx.nd.load(str(f))
    assert isinstance(got, dict) and list(got) == list(x)
    for k, v in x.items():
        assert got[k].shape == v.shape
        np.testing.assert_array_equal(got[k].asnumpy(), v)
    host_only = mx.nd.save_tobuffer({k: mx.nd.array(v, dtype=v.dtype) for k, v in x.items()})
    streamed = f.read_bytes()
    assert len(streamed) == len(host_only)
    # Only the device-type bytes of the five GPU records differ.
    assert sum(a != b for a, b in zip(host_only, streamed, strict=False)) == 5
    # The same array listed twice (one storage, read twice).
    lst = tmp_path / "twice.params"
    mx.nd.save(str(lst), [arrays["big"], arrays["big"]])
    twice = mx.nd.load(str(lst))
    assert isinstance(twice, list)
    for a in twice:
        np.testing.assert_array_equal(a.asnumpy(), x["big"])


def test_load_through_a_small_ring_and_slab_lifetimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MXPARAMS_UPLOAD_SLOT_MB", "1")
    monkeypatch.setenv("MXPARAMS_UPLOAD_SLOTS", "3")
    monkeypatch.setenv("MXPARAMS_UPLOAD_THREADS", "3")
    rng = np.random.default_rng(4)
    x = {f"w{i}": rng.standard_normal(50_000 * (i + 1) + i).astype("float32") for i in range(8)}
    x["odd"] = rng.integers(0, 255, 12_345).astype("uint8")
    f = tmp_path / "ring.params"
    mx.nd.save(str(f), {k: mx.nd.array(v, dtype=v.dtype) for k, v in x.items()})
    got = mx.nd.load(str(f), ctx=mx.gpu(0))
    assert isinstance(got, dict)
    torch = third_party("torch")
    for k, v in x.items():
        np.testing.assert_array_equal(got[k].asnumpy(), v)
        t = torch.from_dlpack(got[k])
        assert t.device.type == "cuda"
        np.testing.assert_array_equal(t.cpu().numpy(), v)
    # Arrays of one load share one device block; each outlives the others.
    keep = got["odd"]
    del got, t
    import gc

    gc.collect()
    np.testing.assert_array_equal(keep.asnumpy(), x["odd"])
    keep[:] = 7
    assert (keep.asnumpy() == 7).all()


def _mixed_dict() -> Any:
    pd = mx.ParameterDict("net_")
    pd.get("w0", shape=(16, 3), init=mx.init.Zero())  # draws no random numbers
    for i in range(1, 40):
        pd.get(f"w{i}", shape=(16, 3 + i % 5), init=mx.init.Xavier() if i % 3 else None)
    pd.get("big", shape=(600, 700))  # bigger than the arena serves
    pd.get("frozen", shape=(5,), grad_req="null")
    pd.get("half", shape=(4, 4), dtype="float16")
    pd.get("later", shape=(0, 6), allow_deferred_init=True)  # unknown first dim
    pd.get_constant("const", np.arange(6, dtype="float32"))
    return pd


def test_dict_initialize_on_gpu_matches_host_values() -> None:
    mx.random.seed(11)
    host = _mixed_dict()
    host.initialize(ctx=mx.cpu())
    mx.random.seed(11)
    dev = _mixed_dict()
    dev["net_w0"].initialize(init=mx.init.One(), ctx=mx.gpu(0))  # skipped below
    mx.random.seed(11)
    with pytest.warns(UserWarning, match="already initialized"):
        dev.initialize(ctx=mx.gpu(0))
    for k, p in dev.items():
        if k == "net_later":
            assert p.list_ctx() == [mx.gpu(0)]  # recorded for the deferred init
            continue
        assert p.list_ctx() == [mx.gpu(0)], k
        d = p.data()
        assert d.context == mx.gpu(0) and d.dtype == host[k].dtype
        if k != "net_w0":
            np.testing.assert_array_equal(d.asnumpy(), host[k].data().asnumpy(), err_msg=k)
        if p.grad_req == "null":
            with pytest.raises(RuntimeError):
                p.grad()
        else:
            g = p.grad()
            assert g.context == mx.gpu(0) and g.shape == d.shape
            assert not g.asnumpy().any(), k
    np.testing.assert_array_equal(dev["net_w0"].data().asnumpy(), np.ones((16, 3), "float32"))
    dev["net_later"].shape = (2, 6)
    dev["net_later"]._finish_deferred_init()
    assert dev["net_later"].data().context == mx.gpu(0)
    # Gradients from the arena are independent buffers.
    dev["net_w1"].grad()[:] = 5
    assert not dev["net_w2"].grad().asnumpy().any()
    assert (dev["net_w1"].grad().asnumpy() == 5).all()
    dev.zero_grad()
    assert not dev["net_w1"].grad().asnumpy().any()


def test_dict_reset_ctx_batched_keeps_values() -> None:
    mx.random.seed(12)
    pd = _mixed_dict()
    pd.initialize(ctx=mx.cpu())
    ref = {k: p.data().asnumpy() for k, p in pd.items() if k != "net_later"}
    pd.reset_ctx([mx.cpu(0), mx.gpu(0)])
    for k, want in ref.items():
        assert pd[k].list_ctx() == [mx.cpu(0), mx.gpu(0)]
        for ctx in (mx.cpu(0), mx.gpu(0)):
            np.testing.assert_array_equal(pd[k].data(ctx).asnumpy(), want, err_msg=k)
    pd.reset_ctx(mx.gpu(0))
    for k, want in ref.items():
        np.testing.assert_array_equal(pd[k].data(mx.gpu(0)).asnumpy(), want, err_msg=k)
    assert pd["net_later"].list_ctx() == [mx.gpu(0)]
