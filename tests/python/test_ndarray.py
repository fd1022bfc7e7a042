"""mxparams.NDArray: attributes, numpy views, DLPack, copies, in-place writes, pickle."""

from __future__ import annotations

import gc
import pickle
import sys
from pathlib import Path

import ml_dtypes
import mxparams as mp
import numpy as np
import pytest
from mxparams import nd

DTYPES = [
    "float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool",
    "int16", "uint16", "uint32", "uint64", "bfloat16",
]  # fmt: skip


def test_attributes() -> None:
    a = nd.array([[1, 2, 3], [4, 5, 6]])
    assert a.shape == (2, 3)
    assert a.dtype == np.dtype("float32") and isinstance(a.dtype, np.dtype)
    assert a.context == a.ctx == mp.cpu(0)
    assert a.size == 6 and a.ndim == 2 and len(a) == 2
    assert a.stype == "default"
    assert isinstance(a, mp.NDArray) and type(a).__module__ == "mxparams"
    s = nd.array(np.float32(3))
    assert s.shape == () and s.ndim == 0 and s.size == 1
    with pytest.raises(TypeError, match="unsized"):
        len(s)
    z = nd.zeros((2, 0, 3))
    assert z.size == 0 and z.asnumpy().shape == (2, 0, 3)


def test_array_dtype_defaults_follow_mxnet() -> None:
    # MXNet 1.9.1: float32 for everything but an NDArray source
    assert nd.array(np.arange(3)).dtype == np.float32
    assert nd.array(np.arange(3, dtype=np.float16)).dtype == np.float32
    assert nd.array([1, 2]).dtype == np.float32
    assert nd.array(nd.array([1], dtype="int32")).dtype == np.int32
    assert nd.array([1, 2], dtype="int64").dtype == np.int64
    assert nd.array([1.5], dtype=np.float64).dtype == np.float64
    assert nd.array([1.5], dtype="bfloat16").dtype == ml_dtypes.bfloat16
    assert nd.array([1.5], dtype=ml_dtypes.bfloat16).dtype == ml_dtypes.bfloat16
    assert nd.array([1], dtype=np.dtype([("bfloat16", "<u2")])).dtype == ml_dtypes.bfloat16
    with pytest.raises(TypeError, match="not understood|unsupported"):
        nd.array([1], dtype="complex64")
    with pytest.raises(TypeError, match="array like"):
        nd.array([[1, 2], [3]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_creation_all_dtypes(dtype: str) -> None:
    z = nd.zeros((2, 3), dtype=dtype)
    o = nd.ones((2, 3), dtype=dtype)
    f = nd.full((4,), 1, dtype=dtype)
    e = nd.empty(3, dtype=dtype)
    npd = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    for a in (z, o, f, e):
        assert a.dtype == npd
    assert (z.asnumpy() == 0).all() and (o.asnumpy() == 1).all() and (f.asnumpy() == 1).all()
    assert nd.zeros_like(o).dtype == npd and (nd.zeros_like(o).asnumpy() == 0).all()
    assert nd.ones_like(z).shape == (2, 3) and (nd.ones_like(z).asnumpy() == 1).all()
    # zero-copy view and round trip through numpy
    v = np.asarray(o)
    assert v.dtype == npd and v.base is not None
    assert nd.array(v, dtype=dtype).asnumpy().tobytes() == v.tobytes()


def test_full_and_defaults() -> None:
    assert nd.zeros(3).dtype == np.float32
    assert nd.full((2,), 3).asnumpy().tolist() == [3.0, 3.0]
    assert nd.full((2,), 7, dtype="int64").asnumpy().tolist() == [7, 7]
    with mp.cpu(2):
        assert nd.ones((1,)).context == mp.cpu(2)
        assert nd.zeros_like(nd.zeros((1,), ctx=mp.cpu_pinned(1))).context == mp.cpu_pinned(1)
    with pytest.raises(ValueError, match="negative"):
        nd.zeros((2, -1))


def test_array_view_shares_memory_both_ways() -> None:
    a = nd.array([[1, 2], [3, 4]])
    v = np.asarray(a)
    assert v.flags.writeable and v.flags.c_contiguous and v.flags.aligned
    v[0, 0] = 10
    assert a.asnumpy()[0, 0] == 10
    a[1, 1] = 20
    assert v[1, 1] == 20
    assert np.shares_memory(v, np.asarray(a))
    # asnumpy copies
    c = a.asnumpy()
    c[:] = 0
    assert v[0, 0] == 10


def test_array_protocol_copy_and_dtype() -> None:
    a = nd.array([1.0, 2.0])
    assert not np.shares_memory(np.array(a, copy=True), np.asarray(a))
    d = a.__array__(np.float64)
    assert d.dtype == np.float64 and d.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="without a copy"):
        a.__array__(np.float64, copy=False)
    v = a.__array__(copy=False)
    v[0] = 5
    assert a.asnumpy()[0] == 5


def test_view_keeps_buffer_alive() -> None:
    a = nd.array(np.arange(1000))
    v = np.asarray(a)
    # numpy takes the buffer protocol first: the view's base is a memoryview of `a`.
    assert v.base is a or v.base.obj is a
    del a
    gc.collect()
    assert v.sum() == sum(range(1000))


BUFFER_FORMATS = {
    "float32": "f", "float64": "d", "float16": "e", "uint8": "B", "int32": "i", "int8": "b",
    "int64": "q", "bool": "?", "int16": "h", "uint16": "H", "uint32": "I", "uint64": "Q",
}  # fmt: skip


@pytest.mark.parametrize("dtype", sorted(BUFFER_FORMATS))
def test_buffer_protocol_shares_memory(dtype: str) -> None:
    a = nd.array(np.arange(6).reshape(2, 3), dtype=dtype)
    m = memoryview(a)
    itemsize = np.dtype(dtype).itemsize
    assert (m.format, m.itemsize, m.ndim) == (BUFFER_FORMATS[dtype], itemsize, 2)
    assert (m.shape, m.strides, m.readonly) == ((2, 3), (3 * itemsize, itemsize), False)
    assert m.c_contiguous and m.nbytes == 6 * itemsize
    assert np.array_equal(np.frombuffer(m, dtype=dtype).reshape(2, 3), a.asnumpy())
    np.asarray(m)[1, 2] = 1  # memoryview itself cannot assign every format
    assert a.asnumpy()[1, 2] == 1
    assert bytes(a) == a.asnumpy().tobytes()


def test_buffer_protocol_shapes_and_lifetime() -> None:
    s = nd.array(np.float32(2.5))
    assert memoryview(s).shape == () and memoryview(s)[()] == 2.5
    e = nd.zeros((0, 4))
    assert memoryview(e).shape == (0, 4) and memoryview(e).nbytes == 0
    a = nd.array(np.arange(100, dtype=np.float32))
    m = memoryview(a)
    assert m.obj is a
    del a
    gc.collect()
    assert m.tolist() == list(range(100))
    m.release()


def test_buffer_protocol_refuses_what_it_cannot_share(tmp_path: Path) -> None:
    bf = nd.zeros((3,), dtype="bfloat16")
    with pytest.raises(BufferError, match="bfloat16"):
        memoryview(bf)
    # numpy falls back to __array__, which knows ml_dtypes' bfloat16.
    assert np.asarray(bf).dtype == ml_dtypes.bfloat16
    sp = nd.sparse.zeros("row_sparse", (3, 2))
    with pytest.raises(BufferError, match="sparse"):
        memoryview(sp)
    assert np.asarray(sp).shape == (3, 2)
    f = tmp_path / "m.params"
    nd.save(f, {"w": nd.array(np.arange(4, dtype=np.float32))})
    mapped = nd.load(f, mmap=True)["w"]
    m = memoryview(mapped)
    assert m.readonly and m.tolist() == [0, 1, 2, 3]
    with pytest.raises(TypeError):
        m[0] = 5.0
    import ctypes

    with pytest.raises((BufferError, TypeError)):
        (ctypes.c_float * 4).from_buffer(mapped)


def test_buffer_protocol_on_unaligned_mapped_data(tmp_path: Path) -> None:
    # Names of odd lengths put array data at odd file offsets.
    arrays = {"x" * k: nd.array(np.arange(k + 3, dtype=np.float64)) for k in range(1, 6)}
    f = tmp_path / "odd.params"
    nd.save(f, arrays)
    for name, a in nd.load(f, mmap=True).items():
        assert memoryview(a).tolist() == arrays[name].asnumpy().tolist()
        assert np.array_equal(np.asarray(a), arrays[name].asnumpy())


def test_setitem_forms() -> None:
    a = nd.zeros((2, 3))
    a[:] = 1.5
    assert (a.asnumpy() == 1.5).all()
    a[:] = np.arange(6).reshape(2, 3)
    assert a.asnumpy().ravel().tolist() == [0, 1, 2, 3, 4, 5]
    a[:] = nd.full((2, 3), 7)
    assert (a.asnumpy() == 7).all()
    a[0] = np.array([1, 2, 3])
    a[1, 2] = -1
    assert a.asnumpy().tolist() == [[1, 2, 3], [7, 7, -1]]
    with pytest.raises(ValueError, match="broadcast"):
        a[:] = np.zeros((3, 3))


def test_getitem_returns_copies() -> None:
    a = nd.array(np.arange(12).reshape(3, 4))
    row = a[1]
    assert isinstance(row, mp.NDArray) and row.asnumpy().tolist() == [4, 5, 6, 7]
    row[:] = 0
    assert a.asnumpy()[1, 0] == 4
    assert a[1:, 2:].shape == (2, 2)
    assert a[:, ::2].asnumpy().tolist() == [[0, 2], [4, 6], [8, 10]]


def test_copyto_and_as_in_context() -> None:
    a = nd.array([1, 2, 3])
    b = a.copyto(mp.cpu(1))
    assert b.context == mp.cpu(1) and b.asnumpy().tolist() == [1, 2, 3]
    assert not np.shares_memory(np.asarray(a), np.asarray(b))
    dst = nd.zeros((3,))
    assert a.copyto(dst) is dst and dst.asnumpy().tolist() == [1, 2, 3]
    dst_i = nd.zeros((3,), dtype="int32")
    a.copyto(dst_i)
    assert dst_i.asnumpy().tolist() == [1, 2, 3] and dst_i.dtype == np.int32
    with pytest.raises(ValueError, match="shape mismatch"):
        a.copyto(nd.zeros((4,)))
    with pytest.raises(TypeError, match="copyto does not support"):
        a.copyto(3)  # type: ignore[arg-type]
    assert a.as_in_context(mp.cpu(0)) is a
    c = a.as_in_context(mp.cpu_pinned(0))
    assert c is not a and c.context == mp.cpu_pinned(0)


def test_astype_and_detach() -> None:
    a = nd.array([1.7, -2.2, 3.0])
    b = a.astype("int32")
    assert b.dtype == np.int32 and b.asnumpy().tolist() == [1, -2, 3]
    assert a.astype("float32", copy=False) is a
    c = a.astype("float32")
    assert c is not a
    c[:] = 0
    assert a.asnumpy()[0] == np.float32(1.7)
    h = a.astype("bfloat16")
    assert h.dtype == ml_dtypes.bfloat16
    assert h.astype(np.float32).asnumpy().tolist() == [1.703125, -2.203125, 3.0]
    a.wait_to_read()
    d = a.detach()
    assert d is not a
    d[0] = 9
    assert a.asnumpy()[0] == 9


def test_repr_matches_mxnet() -> None:
    assert repr(nd.array([[1, 2], [3, 4]])) == "\n[[1. 2.]\n [3. 4.]]\n<NDArray 2x2 @cpu(0)>"
    assert repr(nd.array(np.float32(5))) == "\n5.0\n<NDArray  @cpu(0)>"
    assert repr(nd.zeros((2, 0))) == "\n[]\n<NDArray 2x0 @cpu(0)>"
    assert repr(nd.ones((1,), ctx=mp.cpu_pinned(1))).endswith("<NDArray 1 @cpu_pinned(1)>")


def test_pickle_round_trip() -> None:
    for dtype in DTYPES:
        a = nd.array(np.arange(6).reshape(2, 3) % 2, dtype=dtype, ctx=mp.cpu(2))
        b = pickle.loads(pickle.dumps(a))
        assert b.dtype == a.dtype and b.shape == a.shape and b.context == mp.cpu(2)
        assert np.asarray(b).tobytes() == np.asarray(a).tobytes()
    s = pickle.loads(pickle.dumps(nd.array(np.float32(2.5))))
    assert s.shape == () and s.asscalar() == 2.5
    csr = nd.sparse.csr_matrix(([1.0, 2.0], [1, 0], [0, 1, 2]), shape=(2, 2))
    c2 = pickle.loads(pickle.dumps(csr))
    assert c2.stype == "csr" and c2.asnumpy().tolist() == [[0, 1], [2, 0]]


def test_sparse_attributes() -> None:
    csr = nd.sparse.csr_matrix(([1.0, 2.0, 3.0], [0, 2, 1], [0, 2, 2, 3]), shape=(3, 4))
    assert csr.stype == "csr" and csr.shape == (3, 4)
    assert csr.data.asnumpy().tolist() == [1, 2, 3]
    assert csr.indices.asnumpy().tolist() == [0, 2, 1] and csr.indices.dtype == np.int64
    assert csr.indptr.asnumpy().tolist() == [0, 2, 2, 3]
    dense = csr.tostype("default")
    assert dense.stype == "default"
    assert dense.asnumpy().tolist() == [[1, 0, 2, 0], [0, 0, 0, 0], [0, 3, 0, 0]]
    assert np.asarray(csr).tolist() == dense.asnumpy().tolist()
    assert repr(csr) == "\n<CSRNDArray 3x4 @cpu(0)>"
    c2 = csr.tostype("csr")
    assert c2.stype == "csr" and c2.asnumpy().tolist() == dense.asnumpy().tolist()
    assert dense.tostype("csr").indptr.asnumpy().tolist() == [0, 2, 2, 3]
    with pytest.raises(ValueError, match="not supported"):
        csr.tostype("row_sparse")
    with pytest.raises(ValueError, match="numeric types to CSRNDArray"):
        csr[:] = 0  # MXNet refuses scalars for csr
    with pytest.raises(ValueError, match="without a copy"):
        csr.__array__(copy=False)
    rsp = nd.sparse.row_sparse_array(([[1.0, 2.0]], [1]), shape=(3, 2))
    assert rsp.stype == "row_sparse" and repr(rsp) == "\n<RowSparseNDArray 3x2 @cpu(0)>"
    assert rsp.data.shape == (1, 2) and rsp.indices.asnumpy().tolist() == [1]
    assert rsp.astype("float64").asnumpy().tolist() == [[0, 0], [1, 2], [0, 0]]
    assert rsp.astype("float64").stype == "row_sparse"
    with pytest.raises(AttributeError, match="indptr"):
        rsp.indptr  # noqa: B018
    with pytest.raises(AttributeError, match="data"):
        nd.zeros(1).data  # noqa: B018


# --- DLPack -------------------------------------------------------------------


def test_dlpack_device() -> None:
    assert nd.zeros(1).__dlpack_device__() == (1, 0)
    assert nd.zeros(1, ctx=mp.cpu_pinned(2)).__dlpack_device__() == (1, 0)


@pytest.mark.parametrize("dtype", [d for d in DTYPES if d != "bfloat16"])
def test_np_from_dlpack_shares_memory(dtype: str) -> None:
    a = nd.array(np.arange(6).reshape(2, 3) % 2, dtype=dtype)
    x = np.from_dlpack(a)
    assert x.dtype == a.dtype and x.shape == (2, 3)
    assert np.shares_memory(x, np.asarray(a))
    x[1, 2] = 0
    a[0, 0] = 1
    assert np.asarray(a)[1, 2] == 0 and x[0, 0] == 1


def test_dlpack_capsules_and_versions() -> None:
    a = nd.array([1.0, 2.0])
    cap = a.__dlpack__()
    assert '"dltensor"' in repr(cap)
    vcap = a.__dlpack__(max_version=(1, 0))
    assert '"dltensor_versioned"' in repr(vcap)
    assert '"dltensor"' in repr(a.__dlpack__(max_version=(0, 8)))
    # unconsumed capsules are freed without leaking or crashing
    del cap, vcap
    gc.collect()
    with pytest.raises(BufferError, match="device"):
        a.__dlpack__(dl_device=(2, 0))
    c = np.from_dlpack(a, copy=True)
    c[0] = 9
    assert a.asnumpy()[0] == 1.0


def test_dlpack_keeps_storage_alive() -> None:
    a = nd.array(np.arange(10000))
    x = np.from_dlpack(a)
    before = sys.getrefcount(a)
    del a
    gc.collect()
    assert x.sum() == sum(range(10000))
    assert before >= 2


def test_dlpack_read_only_and_copies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "r.params"
    nd.save(p, [nd.array([1.0, 2.0, 3.0])])
    (m,) = nd.load(p, mmap=True)
    # memory-mapped data is never copied silently: without copy= it is refused
    # (torch ignores DLPack's read-only flag, so sharing could fault)
    with pytest.raises(BufferError, match="memory-mapped.*copy=True"):
        np.from_dlpack(m)
    x = np.from_dlpack(m, copy=True)
    assert x.flags.writeable and not np.shares_memory(x, np.asarray(m))
    x[0] = 5
    assert np.asarray(m).tolist() == [1.0, 2.0, 3.0]
    # copy=False: zero-copy with the read-only flag, which numpy honours
    y = np.from_dlpack(m, copy=False)
    assert not y.flags.writeable and np.shares_memory(y, np.asarray(m))
    with pytest.raises(ValueError, match="read-only"):
        y[0] = 5
    assert y.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(BufferError, match="without a copy"):
        m.__dlpack__(copy=False)  # a 0.x capsule cannot say read-only
    csr = nd.sparse.csr_matrix(([1.0], [1], [0, 1]), shape=(1, 2))
    assert np.from_dlpack(csr).tolist() == [[0.0, 1.0]]


def test_sparse_zeros_match_mxnet_encoding() -> None:
    data = Path(__file__).resolve().parent.parent / "data" / "sparse_zeros.params"
    golden = nd.load(data)
    assert isinstance(golden, dict)
    ours = {
        "csr0": nd.zeros((3, 4), stype="csr"),
        "rsp0": nd.sparse.zeros("row_sparse", (3, 4)),
        "dense": golden["dense"],
    }
    assert ours["csr0"].stype == "csr" and (ours["csr0"].asnumpy() == 0).all()
    assert ours["rsp0"].data.shape == (0, 4)
    assert nd.save_tobuffer(ours) == data.read_bytes()
    with pytest.raises(ValueError, match="2-D"):
        nd.zeros((3,), stype="csr")
    with pytest.raises(ValueError, match="unknown sparse"):
        nd.sparse.zeros("coo", (3,))
