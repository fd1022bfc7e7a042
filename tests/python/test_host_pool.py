"""The host block cache behind large copying loads."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import pytest
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


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_released_blocks_go_back_to_the_os(tmp_path: Path) -> None:
    # Big blocks bypass the extension's small-object allocator, which keeps
    # freed pages: releasing the pool must shrink the process.
    f = tmp_path / "big.params"
    values = np.ones(16 << 20, dtype=np.float32)  # 64 MiB
    nd.save(f, {"w": nd.array(values)})
    del values
    nd.release_host_pool()
    gc.collect()
    loaded = nd.load(f)["w"]
    assert float(np.asarray(loaded)[-1]) == 1.0
    del loaded
    gc.collect()
    before = _rss_bytes()
    assert nd.release_host_pool() >= 64 << 20
    assert before - _rss_bytes() >= 48 << 20
