"""Autograd state and the adapter registry through which an autograd engine plugs in.

mxparams computes nothing itself: gradients come from an engine such as
PyTorch, through an *adapter* (see :class:`AutogradAdapter`). This module holds

* MXNet's recording/training state, per thread, with its API surface:
  :func:`record`, :func:`pause`, :func:`train_mode`, :func:`predict_mode`,
  :func:`is_recording`, :func:`is_training`, :func:`set_recording`,
  :func:`set_training`;
* the *paused* flag: inside ``with pause():`` (and not in a ``record()`` nested
  in it) :func:`is_paused` is true, and adapters must not deliver gradients
  into parameters' grad buffers. Outside any scope delivery is on (unlike
  MXNet's ``is_recording()``, which is false by default, because engines such
  as PyTorch record on their own);
* :func:`mark_variables`, validated as MXNet does, which hands the
  variable/gradient/grad_req association to every active adapter;
* the registry: :func:`register_adapter`, :func:`unregister_adapter`,
  :func:`get_adapter`, :func:`active_adapters`, and
  :func:`notify_grad_req_change`, which ``Parameter`` calls when its
  ``grad_req`` changes.

The state is thread-local, as MXNet's. An adapter whose gradient hooks run on
another thread (PyTorch runs CUDA backward passes on device threads) should
read :func:`is_paused` in the thread that builds or launches the graph, or
track :meth:`AutogradAdapter.on_pause`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from ._errors import MXParamsKeyError, MXParamsTypeError, MXParamsValueError

__all__ = [
    "GRAD_REQ_MAP",
    "AutogradAdapter",
    "active_adapters",
    "get_adapter",
    "is_paused",
    "is_recording",
    "is_training",
    "mark_variables",
    "notify_grad_req_change",
    "pause",
    "predict_mode",
    "record",
    "register_adapter",
    "set_recording",
    "set_training",
    "train_mode",
    "unregister_adapter",
]

#: MXNet's grad_req names and their OpReqType codes (``mxnet.ndarray._GRAD_REQ_MAP``).
GRAD_REQ_MAP = {"null": 0, "write": 1, "add": 3}


class AutogradAdapter:
    """Protocol of an autograd engine adapter; subclass it and override what you need.

    Every hook has a no-op default. Hooks run in the thread that triggered them.

    Attributes
    ----------
    name : str
        The name the adapter is registered under (set by :func:`register_adapter`).
    """

    name: str = ""

    def mark_variables(
        self, variables: list[Any], gradients: list[Any], grad_reqs: list[str]
    ) -> None:
        """Called by :func:`mark_variables` with validated, equal-length lists.

        From now on the engine's gradient for ``variables[i]`` is to be delivered into
        ``gradients[i]`` following ``grad_reqs[i]`` (``'write'`` overwrites, ``'add'``
        accumulates, ``'null'`` delivers nothing), except while :func:`is_paused`.
        A gradient delivered through ``Parameter._deliver_grad`` marks that copy
        fresh for ``Trainer.step``; an adapter writing the buffer in place sets
        ``param.data(ctx)._fresh_grad = True`` itself, as MXNet's backward does.
        """

    def on_grad_req_change(self, param: Any, old: str, new: str) -> None:
        """Called (through :func:`notify_grad_req_change`) when ``param.grad_req`` changes."""

    def on_pause(self, paused: bool) -> None:
        """Called when the calling thread's paused flag flips (entering/leaving ``pause()``)."""


class _State(threading.local):
    """Per-thread flags; fresh threads start not recording, predicting, not paused."""

    def __init__(self) -> None:
        self.recording = False
        self.training = False
        self.paused = False


_STATE = _State()
_ADAPTERS: dict[str, AutogradAdapter] = {}
_ADAPTERS_LOCK = threading.Lock()


def set_recording(is_recording: bool) -> bool:
    """Sets whether the calling thread records; returns the previous state."""
    prev = _STATE.recording
    _STATE.recording = bool(is_recording)
    return prev


def set_training(train_mode: bool) -> bool:
    """Sets training (True) or predicting (False) mode; returns the previous state."""
    prev = _STATE.training
    _STATE.training = bool(train_mode)
    return prev


def is_recording() -> bool:
    """Whether the calling thread is inside ``record()`` (MXNet semantics)."""
    return _STATE.recording


def is_training() -> bool:
    """Whether the calling thread is in training mode."""
    return _STATE.training


def is_paused() -> bool:
    """Whether gradient delivery is paused in the calling thread (inside ``pause()``)."""
    return _STATE.paused


def _set_paused(paused: bool) -> None:
    if _STATE.paused == paused:
        return
    _STATE.paused = paused
    for adapter in active_adapters():
        adapter.on_pause(paused)


class _RecordingStateScope:
    """Sets recording/training/paused state on entry and restores it on exit.

    ``None`` leaves that part of the state unchanged.
    """

    def __init__(
        self, is_record: bool | None, train_mode: bool | None, paused: bool | None
    ) -> None:
        self._enter_is_record = is_record
        self._enter_train_mode = train_mode
        self._enter_paused = paused
        self._prev_is_record: bool | None = None
        self._prev_train_mode: bool | None = None
        self._prev_paused: bool | None = None

    def __enter__(self) -> None:
        if self._enter_is_record is not None:
            self._prev_is_record = set_recording(self._enter_is_record)
        if self._enter_train_mode is not None:
            self._prev_train_mode = set_training(self._enter_train_mode)
        if self._enter_paused is not None:
            self._prev_paused = _STATE.paused
            _set_paused(self._enter_paused)

    def __exit__(
        self,
        ptype: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._enter_is_record is not None and self._prev_is_record is not None:
            set_recording(self._prev_is_record)
        if self._enter_train_mode is not None and self._prev_train_mode is not None:
            set_training(self._prev_train_mode)
        if self._enter_paused is not None and self._prev_paused is not None:
            _set_paused(self._prev_paused)


def record(train_mode: bool = True) -> _RecordingStateScope:
    """Scope that records (and resumes gradient delivery), in training mode by default.

    Examples
    --------
    >>> with autograd.record():
    ...     y = model(x)
    """
    return _RecordingStateScope(True, train_mode, False)


def pause(train_mode: bool = False) -> _RecordingStateScope:
    """Scope that stops recording and gradient delivery, in predicting mode by default.

    Adapters deliver no gradients into parameters while the calling thread is paused.

    Examples
    --------
    >>> with autograd.pause():
    ...     loss = model(x)  # no gradient reaches the parameters
    """
    return _RecordingStateScope(False, train_mode, True)


def train_mode() -> _RecordingStateScope:
    """Scope in training mode, leaving recording and delivery as they are."""
    return _RecordingStateScope(None, True, None)


def predict_mode() -> _RecordingStateScope:
    """Scope in predicting mode, leaving recording and delivery as they are."""
    return _RecordingStateScope(None, False, None)


def _is_sequence(x: Any) -> bool:
    return isinstance(x, (list, tuple))


def mark_variables(
    variables: Any, gradients: Any, grad_reqs: str | Sequence[str] = "write"
) -> None:
    """Marks arrays as variables whose gradients are delivered into ``gradients``.

    Parameters
    ----------
    variables : array or list of arrays
    gradients : array or list of arrays
        One gradient buffer per variable, of the variable's shape.
    grad_reqs : str or list of str
        ``'write'``, ``'add'`` or ``'null'``, for all variables or one each.

    Raises
    ------
    ValueError
        On a length mismatch or an unknown ``grad_req``.
    TypeError
        If ``variables`` is a single array but ``gradients`` is a list (or the reverse).
    """
    if not _is_sequence(variables):
        if _is_sequence(gradients):
            raise MXParamsTypeError(
                "gradients must be a single array when variables is a single array"
            )
        variables, gradients = [variables], [gradients]
    elif not _is_sequence(gradients):
        raise MXParamsTypeError("gradients must be a list of arrays when variables is a list")
    variables, gradients = list(variables), list(gradients)
    if len(variables) != len(gradients):
        raise MXParamsValueError(
            f"variables and gradients must have the same length, got {len(variables)} "
            f"and {len(gradients)}"
        )
    if isinstance(grad_reqs, str):
        reqs = [grad_reqs] * len(variables)
    else:
        reqs = list(grad_reqs)
        if len(reqs) != len(variables):
            raise MXParamsValueError(
                f"grad_reqs must have one entry per variable, got {len(reqs)} for "
                f"{len(variables)} variables"
            )
    for req in reqs:
        if not isinstance(req, str) or req not in GRAD_REQ_MAP:
            raise MXParamsValueError(
                f"invalid grad_req {req!r}: must be one of 'write', 'add', 'null'"
            )
    for adapter in active_adapters():
        adapter.mark_variables(variables, gradients, reqs)


def notify_grad_req_change(param: Any, old: str, new: str) -> None:
    """Tells every active adapter that ``param.grad_req`` went from ``old`` to ``new``."""
    for adapter in active_adapters():
        adapter.on_grad_req_change(param, old, new)


_HOOKS = ("mark_variables", "on_grad_req_change", "on_pause")


def register_adapter(name: str, adapter: Any) -> AutogradAdapter | None:
    """Registers (and activates) ``adapter`` under ``name``; returns the one it replaces.

    ``adapter`` is an :class:`AutogradAdapter` or any object with its three hooks.
    """
    if not isinstance(name, str) or not name:
        raise MXParamsTypeError("adapter name must be a non-empty str")
    if not isinstance(adapter, AutogradAdapter):
        missing = [h for h in _HOOKS if not callable(getattr(adapter, h, None))]
        if missing:
            raise MXParamsTypeError(
                f"adapter {name!r} lacks the AutogradAdapter hooks {', '.join(missing)}"
            )
    with _ADAPTERS_LOCK:
        prev = _ADAPTERS.get(name)
        _ADAPTERS[name] = adapter
    try:
        adapter.name = name
    except AttributeError:
        pass  # a read-only duck-typed adapter keeps its own name
    return prev


def unregister_adapter(name: str) -> AutogradAdapter:
    """Removes and returns the adapter registered under ``name`` (KeyError if none)."""
    with _ADAPTERS_LOCK:
        if name not in _ADAPTERS:
            raise MXParamsKeyError(f"no autograd adapter named {name!r}")
        return _ADAPTERS.pop(name)


def get_adapter(name: str) -> AutogradAdapter:
    """The adapter registered under ``name`` (KeyError if none)."""
    with _ADAPTERS_LOCK:
        if name not in _ADAPTERS:
            raise MXParamsKeyError(f"no autograd adapter named {name!r}")
        return _ADAPTERS[name]


def active_adapters() -> tuple[AutogradAdapter, ...]:
    """The registered adapters, in registration order."""
    with _ADAPTERS_LOCK:
        return tuple(_ADAPTERS.values())
