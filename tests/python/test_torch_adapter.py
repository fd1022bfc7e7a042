"""mxparams.torch: leaf tensors sharing memory with Parameters, grad_req delivery."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

import mxparams as mp
import mxparams.torch as mpt
import numpy as np
import pytest
import torch
from mxparams import autograd

pytestmark = pytest.mark.torch


def addr(arr: mp.NDArray) -> int:
    return int(np.asarray(arr).ctypes.data)


def make(
    grad_req: str = "write", ctx: object = None, shape: tuple[int, ...] = (3, 4)
) -> mp.Parameter:
    p = mp.Parameter("w", shape=shape, grad_req=grad_req)
    p.initialize(mp.init.Normal(1.0), ctx=ctx if ctx is not None else mp.cpu(0))
    return p


def loss_of(t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return (t * t).sum() * scale  # gradient 2 * scale * t


def test_import_is_on_demand() -> None:
    code = (
        "import sys, mxparams; "
        "assert 'torch' not in sys.modules and 'mxparams.torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensor_is_a_cached_leaf_sharing_memory() -> None:
    p = make()
    t = mpt.tensor(p)
    assert t.is_leaf and t.requires_grad
    assert t.dtype == torch.float32 and tuple(t.shape) == (3, 4)
    assert t.data_ptr() == addr(p.data())
    assert t.grad is not None and t.grad.data_ptr() == addr(p.grad())
    assert mpt.tensor(p) is t
    assert mpt.tensor(p, mp.cpu(0)) is t


def test_memory_is_shared_both_ways() -> None:
    p = make()
    t = mpt.tensor(p)
    with torch.no_grad():
        t.mul_(0).add_(3.0)  # in-place torch update seen by the Parameter
    np.testing.assert_array_equal(p.data().asnumpy(), np.full((3, 4), 3.0, np.float32))
    p.set_data(np.arange(12, dtype=np.float32).reshape(3, 4))  # seen by the tensor
    np.testing.assert_array_equal(t.detach().numpy(), np.arange(12).reshape(3, 4))
    assert mpt.tensor(p) is t


def test_write_overwrites_and_add_accumulates() -> None:
    pw, pa = make("write"), make("add")
    pa.set_data(pw.data())
    tw, ta = mpt.tensor(pw), mpt.tensor(pa)
    v = pw.data().asnumpy()
    for k in (1, 2):
        loss_of(tw, k).backward()
        loss_of(ta, k).backward()
        np.testing.assert_allclose(pw.grad().asnumpy(), 2 * k * v, rtol=1e-6)
    np.testing.assert_allclose(pa.grad().asnumpy(), 2 * 3 * v, rtol=1e-6)
    np.testing.assert_array_equal(ta.grad.numpy(), pa.grad().asnumpy())
    pa.zero_grad()
    assert not ta.grad.numpy().any()
    loss_of(ta).backward()
    np.testing.assert_allclose(pa.grad().asnumpy(), 2 * v, rtol=1e-6)


def test_null_has_no_gradient() -> None:
    p = make("null")
    t = mpt.tensor(p)
    assert not t.requires_grad and t.grad is None
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        p.grad()


def test_grad_req_changes_reach_tensors_handed_out() -> None:
    p = make("null")
    t = mpt.tensor(p)
    p.grad_req = "write"
    assert t.requires_grad and t.grad is not None
    assert t.grad.data_ptr() == addr(p.grad())
    loss_of(t).backward()
    np.testing.assert_allclose(p.grad().asnumpy(), 2 * p.data().asnumpy(), rtol=1e-6)
    p.grad_req = "add"  # MXNet re-creates zeroed gradients
    assert t.grad.data_ptr() == addr(p.grad()) and not t.grad.numpy().any()
    loss_of(t).backward()
    loss_of(t).backward()
    np.testing.assert_allclose(p.grad().asnumpy(), 4 * p.data().asnumpy(), rtol=1e-6)
    p.grad_req = "null"
    assert not t.requires_grad and t.grad is None
    assert mpt.tensor(p) is t


def test_grad_req_change_inside_a_graph_is_honoured_at_backward() -> None:
    p = make("write")
    t = mpt.tensor(p)
    loss = loss_of(t)  # graph built while 'write'
    p.grad_req = "null"
    loss.backward()  # nothing lands, no error
    assert t.grad is None


def test_pause_stops_delivery() -> None:
    p = make("add")
    t = mpt.tensor(p)
    loss_of(t).backward()
    before = p.grad().asnumpy().copy()
    with autograd.pause():
        loss_of(t).backward()
    np.testing.assert_array_equal(p.grad().asnumpy(), before)
    np.testing.assert_array_equal(t.grad.numpy(), before)
    with autograd.pause(), autograd.record():  # record() inside pause resumes delivery
        loss_of(t).backward()
    np.testing.assert_allclose(p.grad().asnumpy(), 2 * before, rtol=1e-6)


def test_pause_under_write_keeps_the_old_gradient() -> None:
    p = make("write")
    t = mpt.tensor(p)
    loss_of(t).backward()
    before = p.grad().asnumpy().copy()
    with autograd.pause():
        loss_of(t, 5.0).backward()
    np.testing.assert_array_equal(p.grad().asnumpy(), before)


@pytest.mark.parametrize("req", ["write", "add"])
def test_optimizer_sees_the_gradient_and_updates_parameter_memory(req: str) -> None:
    p = make(req)
    t = mpt.tensor(p)
    opt = torch.optim.SGD([t], lr=0.1)
    ptr, gptr = t.data_ptr(), addr(p.grad())
    for _ in range(3):
        v = p.data().asnumpy().copy()
        opt.zero_grad()  # sets t.grad to None: the next backward starts from zero
        loss_of(t).backward()
        assert t.grad.data_ptr() == gptr == addr(p.grad())
        np.testing.assert_array_equal(t.grad.numpy(), p.grad().asnumpy())
        np.testing.assert_allclose(p.grad().asnumpy(), 2 * v, rtol=1e-6)
        opt.step()
        np.testing.assert_allclose(p.data().asnumpy(), v - 0.1 * 2 * v, rtol=1e-6)
        assert t.data_ptr() == ptr == addr(p.data())  # no copy per step


def test_save_writes_what_the_optimizer_updated(tmp_path: object) -> None:
    pdict = mp.ParameterDict("net_")
    pdict.get("w", shape=(2, 3))
    pdict.initialize(mp.init.One(), ctx=mp.cpu(0))
    t = mpt.parameters(pdict)[0]
    opt = torch.optim.SGD([t], lr=0.5)
    t.sum().backward()
    opt.step()
    path = f"{tmp_path}/p.params"
    pdict.save(path)
    np.testing.assert_array_equal(mp.nd.load(path)["net_w"].asnumpy(), np.full((2, 3), 0.5))


def test_create_graph_keeps_graph_and_fills_buffer() -> None:
    p = make("write")
    t = mpt.tensor(p)
    with pytest.warns(UserWarning, match="create_graph=True"):
        (t**3).sum().backward(create_graph=True)
    assert t.grad.requires_grad  # second-order graph kept
    np.testing.assert_allclose(p.grad().asnumpy(), 3 * p.data().asnumpy() ** 2, rtol=1e-5)


def test_two_contexts_have_separate_tensors_and_buffers() -> None:
    p = make("write", ctx=[mp.cpu(0), mp.cpu(1)])
    t0, t1 = mpt.tensor(p, mp.cpu(0)), mpt.tensor(p, mp.cpu(1))
    assert t0 is not t1 and t0.data_ptr() != t1.data_ptr()
    assert t1.data_ptr() == addr(p.data(mp.cpu(1)))
    loss_of(t0).backward()
    loss_of(t1, 3.0).backward()
    v = p.data(mp.cpu(0)).asnumpy()
    np.testing.assert_allclose(p.grad(mp.cpu(0)).asnumpy(), 2 * v, rtol=1e-6)
    np.testing.assert_allclose(p.grad(mp.cpu(1)).asnumpy(), 6 * v, rtol=1e-6)
    with pytest.raises(RuntimeError, match="was not initialized on context"):
        mpt.tensor(p, mp.cpu(2))


def test_reinitialised_parameter_makes_old_tensor_stale() -> None:
    p = make("write")
    t = mpt.tensor(p)
    p.initialize(mp.init.One(), ctx=mp.cpu(0), force_reinit=True)
    t2 = mpt.tensor(p)
    assert t2 is not t and t2.data_ptr() == addr(p.data())
    assert float(t2.detach().sum()) == 12.0
    with pytest.raises(mpt.StaleTensorError, match="stale"):
        loss_of(t).backward()
    loss_of(t2).backward()
    np.testing.assert_allclose(p.grad().asnumpy(), 2.0)


@pytest.mark.parametrize("change", ["cast", "reset_ctx"])
def test_buffer_replacement_is_detected(change: str) -> None:
    p = make("write")
    t = mpt.tensor(p)
    if change == "cast":
        p.cast("float64")
    else:
        p.reset_ctx(mp.cpu(1))
    with pytest.raises(mp.MXParamsError, match="stale"):
        loss_of(t).backward()
    t2 = mpt.tensor(p)
    assert t2 is not t and t2.data_ptr() == addr(p.data())


def test_errors() -> None:
    with pytest.raises(TypeError, match="Parameter"):
        mpt.tensor(torch.zeros(2))  # type: ignore[arg-type]
    p = mp.Parameter("u", shape=(2,))
    with pytest.raises(RuntimeError, match="has not been initialized"):
        mpt.tensor(p)
    d = mp.Parameter("d", shape=(2, 0), allow_deferred_init=True)
    d.initialize(ctx=mp.cpu(0))
    with pytest.raises(mp.DeferredInitializationError):
        mpt.tensor(d)


def test_tensor_keeps_parameter_alive() -> None:
    def build() -> torch.Tensor:
        return mpt.tensor(make("write"))

    t = build()
    gc.collect()
    loss_of(t).backward()
    assert t.grad is not None and t.grad.abs().sum() > 0


def test_parameters_and_param_groups() -> None:
    pdict = mp.ParameterDict("m_")
    pdict.get("w", shape=(4, 2), lr_mult=2.0)
    pdict.get("b", shape=(4,), wd_mult=0.0, init="zeros")
    pdict.get("v", shape=(4,), init="zeros")
    pdict.get_constant("c", np.ones(3))
    pdict.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    ts = mpt.parameters(pdict)
    assert ts == [mpt.tensor(p) for p in pdict.values()]
    assert [t.requires_grad for t in ts] == [True, True, True, False]
    both = mpt.parameters(pdict, [mp.cpu(0), mp.cpu(1)])
    assert len(both) == 8 and both[4] is mpt.tensor(pdict["m_w"], mp.cpu(1))
    groups = mpt.param_groups(pdict, lr=0.1, weight_decay=0.01)
    by_names = {tuple(g["param_names"]): g for g in groups}
    assert set(by_names) == {("m_w",), ("m_b",), ("m_v", "m_c")}
    assert by_names[("m_w",)]["lr"] == pytest.approx(0.2)
    assert by_names[("m_w",)]["weight_decay"] == pytest.approx(0.01)
    assert by_names[("m_b",)]["weight_decay"] == 0.0 and by_names[("m_b",)]["lr"] == 0.1
    opt = torch.optim.SGD(groups, lr=1.0)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in groups]
    # The scaled learning rate is what the step uses.
    w = pdict["m_w"]
    v = w.data().asnumpy().copy()
    opt.zero_grad()
    mpt.tensor(w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.data().asnumpy(), v - 0.2 * (1 + 0.01 * v), rtol=1e-5)
    assert len(mpt.param_groups(pdict, [mp.cpu(0), mp.cpu(1)], lr=0.1)[0]["params"]) == 2


def test_adapter_is_registered_once_tensors_exist() -> None:
    mpt.tensor(make())
    adapter = autograd.get_adapter("torch")
    assert isinstance(adapter, mpt.TorchAdapter)
    mpt.tensor(make())
    assert autograd.get_adapter("torch") is adapter
    assert autograd.active_adapters().count(adapter) == 1


def test_load_into_initialised_parameters_is_seen_by_tensors(tmp_path: object) -> None:
    pdict = mp.ParameterDict("l_")
    pdict.get("w", shape=(2, 2))
    pdict.initialize(mp.init.Zero(), ctx=mp.cpu(0))
    t = mpt.tensor(pdict["l_w"])
    path = f"{tmp_path}/w.params"
    mp.nd.save(path, {"l_w": mp.nd.array(np.arange(4, dtype=np.float32).reshape(2, 2))})
    pdict.load(path, ctx=mp.cpu(0))
    assert mpt.tensor(pdict["l_w"]) is t
    np.testing.assert_array_equal(t.detach().numpy(), np.arange(4).reshape(2, 2))


def test_tensor_from_many_threads_is_one_tensor() -> None:
    p = make()
    got: list[torch.Tensor] = []
    threads = [threading.Thread(target=lambda: got.append(mpt.tensor(p))) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 8 and all(t is got[0] for t in got)
