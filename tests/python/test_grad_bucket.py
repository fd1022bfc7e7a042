"""Gradients living in one bucket (``_native.bucket_grads``) and the
in-place gradient sync built on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams as mx  # noqa: E402
import mxparams.torch as mpt  # noqa: E402
from mxparams import _native, distributed  # noqa: E402

pytestmark = [pytest.mark.torch]
CTXS = [mx.cpu(0), mx.cpu(1)]


def _ptr(a: object) -> int:
    return int(np.asarray(a).__array_interface__["data"][0])


def _net() -> mx.ParameterDict:
    pd = mx.ParameterDict("n_")
    pd.get("w", shape=(3, 4))
    pd.get("b", shape=(3,))
    pd.initialize(ctx=CTXS)
    return pd


def _backward(pd: mx.ParameterDict, ctx: mx.Context, scale: float) -> None:
    out = torch.ones(2, 4) @ mpt.tensor(pd["n_w"], ctx).T + mpt.tensor(pd["n_b"], ctx)
    (scale * out).sum().backward()


def test_grads_are_ranges_of_the_bucket_and_backward_writes_there() -> None:
    pd = _net()
    _backward(pd, CTXS[0], 1.0)  # tensors handed out before bucketing
    before = {k: p.grad(CTXS[0]).asnumpy().copy() for k, p in pd.items()}
    bucket = _native.bucket_grads(list(pd.values()), CTXS[0])
    flat = np.asarray(bucket)
    lo, hi = _ptr(flat), _ptr(flat) + flat.nbytes
    for k, p in pd.items():
        g = np.asarray(p.grad(CTXS[0]))
        assert lo <= _ptr(g) and _ptr(g) + g.nbytes <= hi, k
        np.testing.assert_array_equal(g, before[k])
        assert _ptr(p.grad(CTXS[1])) not in range(lo, hi)
    _backward(pd, CTXS[0], 3.0)  # grad_req='write' lands in the bucket
    np.testing.assert_array_equal(pd["n_w"].grad(CTXS[0]).asnumpy(), 3 * before["n_w"])
    assert _ptr(mpt.tensor(pd["n_w"], CTXS[0]).grad) == _ptr(pd["n_w"].grad(CTXS[0]))
    torch.from_dlpack(bucket).mul_(0.5)  # the bucket is the gradients' memory
    np.testing.assert_array_equal(pd["n_b"].grad(CTXS[0]).asnumpy(), 1.5 * before["n_b"])


def test_bucket_refuses_mixed_dtypes_and_duplicates() -> None:
    pd = _net()
    with pytest.raises(ValueError, match="listed twice"):
        _native.bucket_grads([pd["n_w"], pd["n_w"]], CTXS[0])
    h = mx.Parameter("h", shape=(2,), dtype="float16")
    h.initialize(ctx=CTXS)
    with pytest.raises(ValueError, match="one dtype"):
        _native.bucket_grads([pd["n_w"], h], CTXS[0])


@pytest.fixture
def group(tmp_path: Path) -> Iterator[None]:
    dist = torch.distributed
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def test_sync_runs_on_the_bucket_in_place(group: None) -> None:
    pd = _net()
    sync = distributed.GradientSync(pd, average=False)
    for ctx, s in zip(CTXS, (1.0, 2.0), strict=True):
        _backward(pd, ctx, s)
    expect = {k: p.grad(CTXS[0]).asnumpy() + p.grad(CTXS[1]).asnumpy() for k, p in pd.items()}
    sync.sync()
    (bucket,) = sync._buckets
    assert bucket.in_place
    flat = bucket.flat
    for k, p in pd.items():
        for ctx in CTXS:
            np.testing.assert_allclose(p.grad(ctx).asnumpy(), expect[k], rtol=1e-6)
        g0 = torch.from_dlpack(p.grad(CTXS[0]))
        assert flat.data_ptr() <= g0.data_ptr() < flat.data_ptr() + flat.nbytes
    # A second step keeps the layout (no re-bucketing) and backward still lands there.
    for ctx in CTXS:
        _backward(pd, ctx, 1.0)
    sync.sync()
    assert sync._buckets[0] is bucket
    np.testing.assert_allclose(pd["n_b"].grad(CTXS[1]).asnumpy(), [4.0, 4.0, 4.0])
