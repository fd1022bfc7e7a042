"""The host block cache behind large copying loads."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
from mxparams import nd


def _address(arr: nd.NDArray) -> int:
    return int(np.asarray(arr).ctypes.data)


def test_large_loads_reuse_freed_blocks_and_release_returns_them(tmp_path: Path) -> None:
    f = tmp_path / "big.params"
    values = np.arange(3 << 20, dtype=np.float32)  # 12 MiB
    nd.save(f, {"w": nd.array(values)})
    nd.release_host_pool()

    first = nd.load(f)["w"]
    addr = _address(first)
    np.testing.assert_array_equal(np.asarray(first), values)
    del first
    gc.collect()

    second = nd.load(f)["w"]
    assert _address(second) == addr  # warm block reused, not a fresh allocation
    np.testing.assert_array_equal(np.asarray(second), values)
    del second
    gc.collect()
    assert nd.release_host_pool() >= values.nbytes
    assert nd.release_host_pool() == 0


def test_reused_blocks_are_zeroed_for_zeros(tmp_path: Path) -> None:
    a = nd.array(np.full(1 << 20, 7.0, dtype=np.float32))  # 4 MiB of sevens
    del a
    gc.collect()
    z = nd.zeros((1 << 20,))
    assert not np.asarray(z).any()
