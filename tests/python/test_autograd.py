"""mxparams.autograd: recording state, pause, mark_variables and the adapter registry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import mxparams
import numpy as np
import pytest
from mxparams import autograd


class Recorder(autograd.AutogradAdapter):
    """Adapter that logs every hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def mark_variables(
        self, variables: list[Any], gradients: list[Any], grad_reqs: list[str]
    ) -> None:
        self.calls.append(("mark", variables, gradients, grad_reqs))

    def on_grad_req_change(self, param: Any, old: str, new: str) -> None:
        self.calls.append(("grad_req", param, old, new))

    def on_pause(self, paused: bool) -> None:
        self.calls.append(("pause", paused))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    autograd.register_adapter("recorder", rec)
    yield rec
    autograd.unregister_adapter("recorder")


def test_default_state() -> None:
    assert autograd.is_recording() is False
    assert autograd.is_training() is False
    assert autograd.is_paused() is False


def test_record_and_pause_scopes_nest_and_restore() -> None:
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training() and not autograd.is_paused()
        with autograd.pause():
            assert not autograd.is_recording() and not autograd.is_training()
            assert autograd.is_paused()
            with autograd.record(train_mode=False):
                assert autograd.is_recording() and not autograd.is_training()
                assert not autograd.is_paused()
            assert autograd.is_paused() and not autograd.is_recording()
        assert autograd.is_recording() and autograd.is_training() and not autograd.is_paused()
        with autograd.pause(train_mode=True):
            assert autograd.is_training() and autograd.is_paused()
    assert not autograd.is_recording() and not autograd.is_training() and not autograd.is_paused()


def test_train_and_predict_mode_leave_recording() -> None:
    with autograd.record():
        with autograd.predict_mode():
            assert autograd.is_recording() and not autograd.is_training()
        with autograd.pause(), autograd.train_mode():
            assert autograd.is_training() and autograd.is_paused() and not autograd.is_recording()
    with autograd.train_mode():
        assert autograd.is_training() and not autograd.is_recording()
    assert not autograd.is_training()


def test_scope_restores_on_exception() -> None:
    with pytest.raises(RuntimeError, match="boom"), autograd.pause():
        raise RuntimeError("boom")
    assert not autograd.is_paused()


def test_set_recording_and_training_return_previous() -> None:
    assert autograd.set_recording(True) is False
    assert autograd.set_recording(False) is True
    assert autograd.set_training(True) is False
    assert autograd.set_training(False) is True


def test_state_is_thread_local() -> None:
    seen: dict[str, bool] = {}

    def worker() -> None:
        seen["paused"] = autograd.is_paused()
        seen["recording"] = autograd.is_recording()
        with autograd.pause():
            seen["inner"] = autograd.is_paused()

    with autograd.record(), autograd.pause():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert autograd.is_paused()
    assert seen == {"paused": False, "recording": False, "inner": True}


def test_pause_notifies_adapters_on_flips_only(recorder: Recorder) -> None:
    with autograd.pause():
        with autograd.pause():
            pass
        with autograd.record():
            pass
    assert recorder.calls == [("pause", True), ("pause", False), ("pause", True), ("pause", False)]


def test_mark_variables_single_and_lists(recorder: Recorder) -> None:
    v, g = np.zeros(3), np.zeros(3)
    autograd.mark_variables(v, g)
    assert recorder.calls[-1] == ("mark", [v], [g], ["write"])
    vs, gs = [np.zeros(2), np.zeros(4)], (np.zeros(2), np.zeros(4))
    autograd.mark_variables(vs, gs, "add")
    assert recorder.calls[-1][3] == ["add", "add"]
    autograd.mark_variables(vs, gs, ["null", "write"])
    assert recorder.calls[-1][3] == ["null", "write"]
    assert recorder.calls[-1][1] == vs and isinstance(recorder.calls[-1][2], list)


def test_mark_variables_errors(recorder: Recorder) -> None:
    v = np.zeros(2)
    with pytest.raises(ValueError, match="invalid grad_req 'read'"):
        autograd.mark_variables(v, v, "read")
    with pytest.raises(ValueError, match="invalid grad_req 'bogus'"):
        autograd.mark_variables([v, v], [v, v], ["write", "bogus"])
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        autograd.mark_variables([v, v], [v])
    with pytest.raises(ValueError, match="one entry per variable, got 1 for 2"):
        autograd.mark_variables([v, v], [v, v], ["write"])
    with pytest.raises(TypeError, match="gradients must be a single array"):
        autograd.mark_variables(v, [v])
    with pytest.raises(TypeError, match="gradients must be a list"):
        autograd.mark_variables([v], v)
    with pytest.raises(ValueError, match="invalid grad_req"):
        autograd.mark_variables(v, v, [1])  # type: ignore[list-item]
    assert recorder.calls == []


class ToyEngine(autograd.AutogradAdapter):
    """A minimal engine: ``backward(grad)`` delivers into the marked buffers per grad_req."""

    def __init__(self) -> None:
        self.marked: list[tuple[np.ndarray, np.ndarray, str]] = []

    def mark_variables(
        self, variables: list[Any], gradients: list[Any], grad_reqs: list[str]
    ) -> None:
        self.marked += list(zip(variables, gradients, grad_reqs, strict=False))

    def backward(self, grad: float) -> None:
        if autograd.is_paused():
            return
        for _, buf, req in self.marked:
            if req == "write":
                buf[...] = grad
            elif req == "add":
                buf += grad


def test_pause_stops_delivery_through_an_adapter() -> None:
    engine = ToyEngine()
    autograd.register_adapter("toy", engine)
    try:
        gw, ga, gn = np.zeros(2), np.zeros(2), np.zeros(2)
        autograd.mark_variables([np.ones(2)] * 3, [gw, ga, gn], ["write", "add", "null"])
        engine.backward(1.0)
        engine.backward(2.0)
        with autograd.pause():
            engine.backward(100.0)
        assert gw.tolist() == [2.0, 2.0] and ga.tolist() == [3.0, 3.0] and gn.tolist() == [0, 0]
    finally:
        autograd.unregister_adapter("toy")


def test_grad_req_map_matches_mxnet() -> None:
    assert autograd.GRAD_REQ_MAP == {"null": 0, "write": 1, "add": 3}


def test_notify_grad_req_change(recorder: Recorder) -> None:
    param = object()
    autograd.notify_grad_req_change(param, "write", "null")
    assert recorder.calls == [("grad_req", param, "write", "null")]


def test_registry() -> None:
    a, b = Recorder(), Recorder()
    before = autograd.active_adapters()  # e.g. the torch adapter, once another test used it
    assert autograd.register_adapter("a", a) is None
    assert a.name == "a"
    try:
        assert autograd.get_adapter("a") is a
        assert autograd.register_adapter("a", b) is a
        assert autograd.get_adapter("a") is b
        assert autograd.active_adapters() == (*before, b)
    finally:
        assert autograd.unregister_adapter("a") is b
    assert autograd.active_adapters() == before
    with pytest.raises(KeyError, match="no autograd adapter named 'a'"):
        autograd.get_adapter("a")
    with pytest.raises(KeyError, match="no autograd adapter named 'a'"):
        autograd.unregister_adapter("a")


def test_registry_order_and_duck_typing() -> None:
    class Duck:
        def __init__(self) -> None:
            self.marked = 0

        def mark_variables(self, *args: Any) -> None:
            self.marked += 1

        def on_grad_req_change(self, *args: Any) -> None:
            pass

        def on_pause(self, paused: bool) -> None:
            pass

    first, duck = Recorder(), Duck()
    autograd.register_adapter("first", first)
    autograd.register_adapter("duck", duck)
    try:
        assert autograd.active_adapters()[-2:] == (first, duck)
        autograd.mark_variables(np.zeros(1), np.zeros(1))
        assert duck.marked == 1 and len(first.calls) == 1
    finally:
        autograd.unregister_adapter("first")
        autograd.unregister_adapter("duck")


def test_register_rejects_bad_adapters() -> None:
    class Partial:
        def mark_variables(self, *args: Any) -> None:
            pass

    before = autograd.active_adapters()
    with pytest.raises(
        TypeError, match="lacks the AutogradAdapter hooks on_grad_req_change, on_pause"
    ):
        autograd.register_adapter("p", Partial())
    with pytest.raises(TypeError, match="non-empty str"):
        autograd.register_adapter("", Recorder())
    assert autograd.active_adapters() == before


def test_base_adapter_hooks_are_no_ops() -> None:
    base = autograd.AutogradAdapter()
    base.mark_variables([], [], [])
    base.on_grad_req_change(None, "write", "add")
    base.on_pause(True)
    assert base.name == ""


def test_package_exports_autograd() -> None:
    assert mxparams.autograd is autograd
    assert set(autograd.__all__) <= set(dir(autograd))
