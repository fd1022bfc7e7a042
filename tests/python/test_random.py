"""mxparams.random: seeding, streams, dtypes, statistics and thread-count independence."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import textwrap

import ml_dtypes
import mxparams
import numpy as np
import pytest
from mxparams import _native
from mxparams import random as mxrandom

CHUNK = 1 << 16  # src/random.rs CHUNK: arrays above it are filled by several chunks


def test_seed_reproduces_sequence() -> None:
    mxrandom.seed(123)
    a = [mxrandom.uniform(-1, 1, (50,)), mxrandom.normal(0, 1, (3, 7)), mxrandom.uniform(shape=5)]
    mxrandom.seed(123)
    b = [mxrandom.uniform(-1, 1, (50,)), mxrandom.normal(0, 1, (3, 7)), mxrandom.uniform(shape=5)]
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)


def test_successive_fills_differ_and_seeds_differ() -> None:
    mxrandom.seed(5)
    first = mxrandom.uniform(shape=100)
    second = mxrandom.uniform(shape=100)
    assert not np.array_equal(first, second)
    mxrandom.seed(6)
    assert not np.array_equal(first, mxrandom.uniform(shape=100))


def test_large_and_negative_seeds() -> None:
    for s in (0, -1, 2**63, 2**64 - 1, np.int64(7), np.uint32(9)):
        mxrandom.seed(s)
        a = mxrandom.uniform(shape=10)
        mxrandom.seed(s)
        np.testing.assert_array_equal(a, mxrandom.uniform(shape=10))


def test_seed_rejects_non_int() -> None:
    for bad in (1.5, "3", None, np.float32(2)):
        with pytest.raises(ValueError, match="seed_state must be int"):
            mxrandom.seed(bad)  # type: ignore[arg-type]


def test_seed_accepts_ctx_for_compatibility() -> None:
    mxrandom.seed(3, ctx="all")
    a = mxrandom.uniform(shape=4)
    mxrandom.seed(3, ctx=None)
    np.testing.assert_array_equal(a, mxrandom.uniform(shape=4))


def test_entropy_seeded_at_import() -> None:
    code = "import mxparams.random as r; print(r.uniform(shape=4).tolist())"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(outs) == 2


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", ml_dtypes.bfloat16])
def test_uniform_bounds_and_moments_per_dtype(dtype: object) -> None:
    mxrandom.seed(0)
    a = mxrandom.uniform(-2.0, 3.0, (400, 500), dtype=dtype)
    assert a.dtype == np.dtype(dtype)
    v = a.astype(np.float64)
    assert v.min() >= -2.0 and v.max() < 3.0
    assert abs(v.mean() - 0.5) < 0.02
    assert abs(v.var() - 25 / 12) < 0.03


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", ml_dtypes.bfloat16])
def test_normal_moments_per_dtype(dtype: object) -> None:
    mxrandom.seed(1)
    a = mxrandom.normal(1.0, 2.0, (500, 400), dtype=dtype)
    assert a.dtype == np.dtype(dtype)
    v = a.astype(np.float64)
    assert abs(v.mean() - 1.0) < 0.02
    assert abs(v.std() - 2.0) < 0.02
    z = (v - 1.0) / 2.0
    assert abs(np.mean(z**3)) < 0.03
    assert abs(np.mean(z**4) - 3.0) < 0.06


def test_normal_matches_cdf() -> None:
    mxrandom.seed(2)
    z = mxrandom.normal(0.0, 1.0, 1 << 20).astype(np.float64)
    for x in (-3.0, -2.0, -1.0, -0.3, 0.0, 0.7, 1.5, 2.5, 3.7):
        cdf = 0.5 * (1 + math.erf(x / math.sqrt(2)))
        assert abs(np.mean(z < x) - cdf) < 0.002, x


def test_uniform_is_flat() -> None:
    mxrandom.seed(3)
    u = mxrandom.uniform(0.0, 1.0, 1 << 20)
    counts, _ = np.histogram(u, bins=64, range=(0.0, 1.0))
    expected = u.size / 64
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 120  # 63 dof: p(chi2 > 120) < 1e-5


def test_fill_in_place_and_noncontiguous() -> None:
    mxrandom.seed(4)
    base = np.zeros((20, 30), np.float32)
    view = base[:, ::2]
    out = mxrandom.fill_uniform(view, 1.0, 2.0)
    assert out is view
    assert np.all((base[:, ::2] >= 1.0) & (base[:, ::2] < 2.0))
    assert np.all(base[:, 1::2] == 0.0)
    f = np.zeros((7, 5), np.float64, order="F")
    mxrandom.fill_normal(f, 0.0, 1.0)
    assert np.count_nonzero(f) == f.size


def test_zero_size_fill_is_a_no_op() -> None:
    a = np.empty((0, 4), np.float32)
    assert mxrandom.fill_uniform(a).shape == (0, 4)


def test_degenerate_uniform_range() -> None:
    a = mxrandom.uniform(0.25, 0.25, 10)
    assert np.all(a == 0.25)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="low must be less or equal to high"):
        mxrandom.uniform(1.0, 0.0, 3)
    with pytest.raises(ValueError, match="has to be positive"):
        mxrandom.normal(0.0, 0.0, 3)
    with pytest.raises(ValueError, match="has to be positive"):
        mxrandom.normal(0.0, -1.0, 3)
    with pytest.raises(TypeError, match="float32/float64/float16/bfloat16"):
        mxrandom.fill_uniform(np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        mxrandom.fill_uniform([0.0, 1.0])  # type: ignore[arg-type]


def test_native_rejects_bad_arrays() -> None:
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.fill_uniform(np.zeros((4, 4), np.float32)[:, ::2], 0.0, 1.0, 1, 0)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _native.fill_normal(ro, 0.0, 1.0, 1, 0)
    with pytest.raises(TypeError, match="int64"):
        _native.fill_uniform(np.zeros(4, np.int64), 0.0, 1.0, 1, 0)
    with pytest.raises(TypeError, match="numpy"):
        _native.fill_uniform([1.0], 0.0, 1.0, 1, 0)
    with pytest.raises(ValueError, match="low <= high"):
        _native.fill_uniform(np.zeros(4), 1.0, 0.0, 1, 0)
    with pytest.raises(ValueError, match="std >= 0"):
        _native.fill_normal(np.zeros(4), 0.0, float("nan"), 1, 0)


def test_native_same_key_same_values_any_dtype_layout() -> None:
    for dtype in (np.float32, np.float64, np.float16, ml_dtypes.bfloat16):
        a = np.empty(CHUNK * 2 + 3, dtype)
        b = np.empty((CHUNK * 2 + 3, 1), dtype)
        _native.fill_normal(a, 0.0, 1.0, 99, 7)
        _native.fill_normal(b, 0.0, 1.0, 99, 7)
        np.testing.assert_array_equal(a, b.ravel())


def test_randint() -> None:
    mxrandom.seed(8)
    r = mxrandom.randint(-3, 4, (10000,))
    assert r.dtype == np.int32
    assert set(np.unique(r).tolist()) == set(range(-3, 4))
    with pytest.raises(ValueError, match="low < high"):
        mxrandom.randint(2, 2)


_THREAD_SCRIPT = """
import hashlib, numpy as np
import mxparams
from mxparams import init
mxparams.random.seed(2024)
h = hashlib.sha256()
for make, shape, dtype in [
    (init.Xavier, (700, 300), "float32"),
    (lambda: init.Xavier(rnd_type="gaussian"), (64, 32, 3, 3), "float32"),
    (init.Normal, (300001,), "float64"),
    (init.Uniform, (200003,), "float16"),
    (init.MSRAPrelu, (256, 512), "float32"),
    (init.Orthogonal, (96, 48), "float32"),
]:
    a = np.empty(shape, dtype)
    make()(init.InitDesc("x_weight"), a)
    h.update(a.tobytes())
print(h.hexdigest())
"""


def _run_with_threads(threads: int) -> str:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_THREAD_SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return proc.stdout.strip()


def test_values_independent_of_thread_count() -> None:
    digests = {t: _run_with_threads(t) for t in (1, 2, 3)}
    assert len(set(digests.values())) == 1, digests
    # and the digest is a real hash of data, not an empty run
    assert len(digests[1]) == 64 and digests[1] != hashlib.sha256().hexdigest()


def test_package_exports_random() -> None:
    assert mxparams.random is mxrandom
