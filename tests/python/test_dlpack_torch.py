"""DLPack exchange with PyTorch: torch.from_dlpack(arr) shares the NDArray's memory."""

from __future__ import annotations

import gc
from pathlib import Path

import mxparams as mp
import numpy as np
import pytest
import torch
from mxparams import nd

pytestmark = pytest.mark.torch

TORCH_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_torch_from_dlpack_shares_memory(dtype: str) -> None:
    a = nd.zeros((2, 3), dtype=dtype)
    t = torch.from_dlpack(a)
    assert t.dtype == TORCH_DTYPES[dtype]
    assert tuple(t.shape) == (2, 3)
    assert t.device.type == "cpu"
    t[1, 2] = 1
    assert np.asarray(a).astype(np.float32)[1, 2] == 1
    a[0, 0] = 1
    assert float(t[0, 0]) == 1.0
    assert t.data_ptr() == torch.from_dlpack(a).data_ptr()


def test_torch_tensor_outlives_the_array() -> None:
    a = nd.array(np.arange(10000), dtype="int64")
    t = torch.from_dlpack(a)
    del a
    gc.collect()
    assert int(t.sum()) == sum(range(10000))


def test_torch_zero_d_and_zero_size() -> None:
    s = torch.from_dlpack(nd.array(np.float32(2.5)))
    assert s.shape == () and float(s) == 2.5
    z = torch.from_dlpack(nd.zeros((2, 0, 3)))
    assert tuple(z.shape) == (2, 0, 3)


def test_torch_gets_copies_of_unaligned_mmap_data_when_asked() -> None:
    path = Path(__file__).resolve().parent.parent / "data" / "dtypes_all_dict.params"
    mapped = nd.load(path, mmap=True)
    owned = nd.load(path)
    assert isinstance(mapped, dict) and isinstance(owned, dict)
    # these sit at offsets that are not multiples of their item size
    for k in ["f64", "i64", "i32", "bf16"]:
        with pytest.raises(BufferError, match="copy=True"):
            torch.from_dlpack(mapped[k])
        with pytest.raises(BufferError, match="without a copy"):
            torch.from_dlpack(mapped[k], copy=False)
        t = torch.from_dlpack(mapped[k], copy=True)
        assert t.view(torch.int8).numpy().tobytes() == np.asarray(owned[k]).tobytes()


def test_torch_round_trip_into_ndarray() -> None:
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    a = nd.array(t.numpy(), dtype="float32")
    assert a.asnumpy().tolist() == t.tolist()
    assert a.context == mp.cpu(0)


def test_mmap_data_is_not_copied_silently(tmp_path: Path) -> None:
    # torch ignores DLPack's read-only flag: a tensor over the read-only mapping
    # would fault on its first write, and a silent copy would hide the cost.
    p = tmp_path / "m.params"
    nd.save(p, {"w": nd.array([1.0, 2.0, 3.0, 4.0])})
    m = nd.load(p, mmap=True)
    assert isinstance(m, dict)
    with pytest.raises(mp.MXParamsError, match="memory-mapped.*copy=True"):
        torch.from_dlpack(m["w"])
    t = torch.from_dlpack(m["w"], copy=True)
    t[0] = 10.0
    assert np.asarray(m["w"]).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert t.tolist() == [10.0, 2.0, 3.0, 4.0]
    # numpy honours the read-only flag: it shares the mapped memory.
    shared = np.from_dlpack(m["w"], copy=False)
    assert not shared.flags.writeable
    assert shared.ctypes.data == np.asarray(m["w"]).ctypes.data
    with pytest.raises(ValueError, match="read-only"):
        shared[0] = 5.0
